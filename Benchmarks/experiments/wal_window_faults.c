// What does the writer of a mapped WAL window pay in page faults, and what
// does prefaulting the window from another thread leave it? (The question
// behind WindowPrefaulter, session 22.)
//
//   cc -O2 -o wal_window_faults wal_window_faults.c
//   ./wal_window_faults MODE FILE [WINDOWS]
//
// Each of WINDOWS (default 64) 1 MiB windows is fallocated and mapped
// (MAP_SHARED), then filled with 110-byte record copies; prints the mean
// time of the copies per window. MODE 0: nothing beforehand (a fault per
// page); 1: MADV_POPULATE_READ first; 2: MADV_POPULATE_WRITE first; 3:
// POPULATE_WRITE, then fdatasync (a periodic sync wrote the window back
// before the writer arrived, write-protecting its pages again). MODE 4
// times the populate (MADV_POPULATE_WRITE) and the munmap themselves.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define WINDOW (1 << 20)
#define POPULATE_READ 22
#define POPULATE_WRITE 23

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODE FILE [WINDOWS]\n", argv[0]);
        return 2;
    }
    int mode = atoi(argv[1]), windows = argc > 3 ? atoi(argv[3]) : 64;
    int fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    char record[110];
    memset(record, 'r', sizeof record);
    double copies = 0, populate = 0, unmap = 0;
    for (int w = 0; w < windows; w++) {
        if (posix_fallocate(fd, (off_t)w * WINDOW, WINDOW) != 0) { perror("fallocate"); return 1; }
        char *m = mmap(NULL, WINDOW, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)w * WINDOW);
        if (m == MAP_FAILED) { perror("mmap"); return 1; }
        double t0 = now();
        if (mode == 1) madvise(m, WINDOW, POPULATE_READ);
        if (mode >= 2) madvise(m, WINDOW, POPULATE_WRITE);
        populate += now() - t0;
        if (mode == 3) fdatasync(fd);
        if (mode != 4) {
            double t1 = now();
            for (size_t o = 0; o + sizeof record <= WINDOW; o += sizeof record) memcpy(m + o, record, sizeof record);
            copies += now() - t1;
        }
        double t2 = now();
        munmap(m, WINDOW);
        unmap += now() - t2;
    }
    if (mode == 4) {
        printf("populate %.1f us, munmap %.1f us per window\n", populate / windows * 1e6, unmap / windows * 1e6);
    } else {
        printf("mode %d: %.1f us of copies per window (%.3f us per record)\n", mode, copies / windows * 1e6,
               copies / windows * 1e6 / (WINDOW / sizeof record));
    }
    close(fd);
    unlink(argv[2]);
    return 0;
}
