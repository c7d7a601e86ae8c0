// How long a WAL fdatasync waits while another file (a table being
// flushed) is written and synced, with and without starting writeback of
// the table every CHUNK bytes (sync_file_range, as PosixWritableFile does).
//
//   gcc -O2 -o /tmp/wal_stall Benchmarks/compare/wal_stall.c -lpthread
//   /tmp/wal_stall DIR 0 0          # no early writeback
//   /tmp/wal_stall DIR 1 262144     # writeback every 256 KiB
//
// One thread appends 100-byte records to DIR/wal and fdatasyncs each (as
// the commit thread under --fsync always); another writes four 64 MiB
// files (64 KiB every 200 µs) and fdatasyncs each at its end. Prints the
// WAL sync latencies. On ext4 (data=ordered) a journal commit waits for
// the data of every file with blocks allocated in its transaction, so a
// WAL sync that meets the table's final sync waits for the whole table.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { maxSyncs = 400000, tables = 4, tableChunks = 1024, chunkBytes = 1 << 16 };

static volatile int done;
static const char *directory;
static int earlyWriteback;
static long writebackChunk;

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *writeTables(void *unused) {
    (void)unused;
    char *buffer = malloc(chunkBytes);
    memset(buffer, 'x', chunkBytes);
    for (int table = 0; table < tables; table++) {
        char name[4096];
        snprintf(name, sizeof name, "%s/table%d", directory, table);
        int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
        long offset = 0, unstarted = 0;
        for (int chunk = 0; chunk < tableChunks; chunk++) {
            if (pwrite(fd, buffer, chunkBytes, offset) != chunkBytes) { perror("pwrite"); exit(1); }
            offset += chunkBytes;
            if (earlyWriteback && offset - unstarted >= writebackChunk) {
                sync_file_range(fd, unstarted, offset - unstarted, SYNC_FILE_RANGE_WRITE);
                unstarted = offset;
            }
            usleep(200);
        }
        fdatasync(fd);
        close(fd);
        unlink(name);
        usleep(200000);
    }
    free(buffer);
    done = 1;
    return NULL;
}

static int byValue(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s DIR EARLY_WRITEBACK(0|1) CHUNK_BYTES\n", argv[0]); return 2; }
    directory = argv[1];
    earlyWriteback = atoi(argv[2]);
    writebackChunk = atol(argv[3]);
    char walName[4096];
    snprintf(walName, sizeof walName, "%s/wal", directory);
    int wal = open(walName, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (wal < 0) { perror("open"); return 1; }
    static double latency[maxSyncs];
    pthread_t writer;
    pthread_create(&writer, NULL, writeTables, NULL);
    char record[100];
    memset(record, 'r', sizeof record);
    long offset = 0;
    int count = 0;
    while (!done && count < maxSyncs) {
        double start = seconds();
        if (pwrite(wal, record, sizeof record, offset) != sizeof record) { perror("pwrite"); return 1; }
        offset += sizeof record;
        fdatasync(wal);
        latency[count++] = seconds() - start;
    }
    pthread_join(writer, NULL);
    qsort(latency, count, sizeof latency[0], byValue);
    printf("early writeback %s: %d WAL syncs, p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.2f ms\n",
           earlyWriteback ? argv[3] : "off", count, latency[count / 2] * 1e3, latency[count * 99 / 100] * 1e3,
           latency[count * 999 / 1000] * 1e3, latency[count - 1] * 1e3);
    close(wal);
    unlink(walName);
    return 0;
}
