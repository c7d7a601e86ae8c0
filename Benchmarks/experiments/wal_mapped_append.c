// What does an unsynced log append cost through write(2) and through a
// shared mapping of the file? (The question behind the mapped WAL of
// session 9: an acknowledged put under --fsync never/everysec must be in
// the page cache — survive kill -9 — and LevelDB and RocksDB pay one
// write(2) per put for that.)
//
//   cc -O2 -o wal_mapped_append wal_mapped_append.c
//   ./wal_mapped_append MODE FILE [RECORDS [SYNC_EVERY]]   # MODE 0 pwrite, 1 mapped
//
// Appends RECORDS (default 1,000,000) 110-byte records to FILE, then one
// fdatasync, and prints the mean time per append (the sync apart); with
// SYNC_EVERY, an fdatasync after every SYNC_EVERY appends too (as group
// commit under --fsync always does), timed with the appends. Mode 1
// grows the file with fallocate 1 MiB at a time and maps each 1 MiB
// window in turn (MAP_SHARED: the bytes are in the page cache as soon as
// they are copied), as the engine's mapped segment file does. Mode 2 is
// mode 1 with each window written with zeros (pwrite) instead of
// fallocated: the extents are then written ones, and a sync of records
// copied into them changes no file metadata. Mode 3 is mode 1 with each
// window's pages faulted in at once when it is mapped (madvise
// MADV_POPULATE_WRITE, Linux 5.14) instead of one page fault per page.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODE FILE [RECORDS]\n", argv[0]);
        return 2;
    }
    int mode = atoi(argv[1]);
    long records = argc > 3 ? atol(argv[3]) : 1000000;
    long syncEvery = argc > 4 ? atol(argv[4]) : 0;
    int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    char record[110];
    memset(record, 'r', sizeof record);
    const long window = 1 << 20;
    char *map = NULL;
    long mapStart = 0, offset = 0;
    double start = now();
    for (long i = 0; i < records; i++) {
        record[0] = (char)i;
        if (mode == 0) {
            if (pwrite(fd, record, sizeof record, offset) != sizeof record) { perror("pwrite"); return 1; }
        } else {
            long done = 0;
            while (done < (long)sizeof record) {
                if (map == NULL || offset + done >= mapStart + window) {
                    if (map) munmap(map, window);
                    mapStart = (offset + done) / window * window;
                    if ((mode == 1 || mode == 3) && fallocate(fd, 0, mapStart, window) != 0) { perror("fallocate"); return 1; }
                    if (mode == 2) {
                        static char zeros[1 << 20];
                        if (pwrite(fd, zeros, window, mapStart) != window) { perror("pwrite zeros"); return 1; }
                    }
                    map = mmap(NULL, window, PROT_READ | PROT_WRITE, MAP_SHARED, fd, mapStart);
                    if (map == MAP_FAILED) { perror("mmap"); return 1; }
                    if (mode == 3 && madvise(map, window, 23 /* MADV_POPULATE_WRITE */) != 0) { perror("madvise"); return 1; }
                }
                long room = mapStart + window - (offset + done);
                long n = (long)sizeof record - done < room ? (long)sizeof record - done : room;
                memcpy(map + (offset + done - mapStart), record + done, n);
                done += n;
            }
        }
        offset += sizeof record;
        if (syncEvery > 0 && (i + 1) % syncEvery == 0 && fdatasync(fd) != 0) { perror("fdatasync"); return 1; }
    }
    double appended = now();
    if (fdatasync(fd) != 0) { perror("fdatasync"); return 1; }
    double synced = now();
    printf("mode %d: %ld appends, %.3f us each; then fdatasync %.1f ms\n", mode, records,
           (appended - start) * 1e6 / records, (synced - appended) * 1e3);
    if (map) munmap(map, window);
    close(fd);
    unlink(argv[2]);
    return 0;
}
