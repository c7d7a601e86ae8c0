// Does a log file created at full size ahead of need make appends cheaper
// while another thread runs fdatasync? (The question behind the open-loop
// tail under --fsync everysec; BENCHMARKS.md, session 8.)
//
//   cc -O2 -o wal_append_latency wal_append_latency.c -lpthread
//   ./wal_append_latency MODE FILE     # MODE 0..3, FILE on the disk to test
//
// One thread appends 120-byte records with pwrite every ~20 us (200,000 of
// them) while a second thread calls fdatasync every 100 ms. Prints the
// pwrite latency percentiles. Modes: 0 append to an empty file (each write
// extends it); 1 the file written with zeros and synced first; 2 fallocate
// of the full size; 3 fallocate with FALLOC_FL_KEEP_SIZE.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fd;
static volatile int stop;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *syncer(void *unused) {
    (void)unused;
    while (!stop) {
        usleep(100000);
        fdatasync(fd);
    }
    return NULL;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODE(0-3) FILE\n", argv[0]);
        return 2;
    }
    int mode = atoi(argv[1]);
    const size_t size = 64 << 20;
    fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    if (mode == 1) {
        char *zeros = calloc(1, 1 << 20);
        for (int i = 0; i < 64; i++) if (write(fd, zeros, 1 << 20) != 1 << 20) { perror("write"); return 1; }
        fdatasync(fd);
        free(zeros);
    } else if (mode == 2 || mode == 3) {
        if (fallocate(fd, mode == 3 ? FALLOC_FL_KEEP_SIZE : 0, 0, size) != 0) { perror("fallocate"); return 1; }
        fsync(fd);
    }
    pthread_t thread;
    pthread_create(&thread, NULL, syncer, NULL);
    char record[120];
    memset(record, 'a', sizeof record);
    enum { count = 200000 };
    double *latency = malloc(count * sizeof(double));
    off_t offset = 0;
    for (int i = 0; i < count; i++) {
        double start = now();
        if (pwrite(fd, record, sizeof record, offset) != sizeof record) { perror("pwrite"); return 1; }
        latency[i] = now() - start;
        offset += sizeof record;
        usleep(20);
    }
    stop = 1;
    pthread_join(thread, NULL);
    qsort(latency, count, sizeof(double), compare);
    printf("mode %d  p50 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us\n", mode, latency[count / 2] * 1e6,
           latency[count * 99 / 100] * 1e6, latency[count * 999 / 1000] * 1e6, latency[count - 1] * 1e6);
    close(fd);
    unlink(argv[2]);
    return 0;
}
