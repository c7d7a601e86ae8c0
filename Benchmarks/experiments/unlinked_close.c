// What closing an unlinked file costs, and on which call (BENCHMARKS.md,
// session 8: the TTL case). The filesystem frees a file's blocks when its
// last name and last descriptor are gone; on a filesystem mounted with
// `discard` that waits for the device to trim them.
//
//   cc -O2 -o unlinked_close unlinked_close.c -lpthread
//   ./unlinked_close MODE DIR [FILES] [BYTES]   # defaults: 22 files of 3.4 MB
//
// Writes and syncs FILES files in DIR, opens each for reading, then unlinks
// them all and closes the descriptors, timing both steps. Modes: 0 close on
// this thread; 1 close on two threads at once; 2 truncate each file to 0
// before its unlink (the freeing moves to the truncate).
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int descriptors[1024];
static int files = 22;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *closer(void *first) {
    for (long i = (long)first; i < files; i += 2) close(descriptors[i]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODE(0-2) DIR [FILES] [BYTES]\n", argv[0]);
        return 2;
    }
    int mode = atoi(argv[1]);
    if (argc > 3) files = atoi(argv[3]);
    size_t bytes = argc > 4 ? (size_t)atol(argv[4]) : 3400000;
    if (files < 1 || files > 1024) { fprintf(stderr, "FILES: 1 to 1024\n"); return 2; }
    char path[4096];
    char *contents = malloc(bytes);
    memset(contents, 'x', bytes);
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/unlinked-close-%d", argv[2], i);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, contents, bytes) != (ssize_t)bytes) { perror(path); return 1; }
        fdatasync(fd);
        close(fd);
    }
    sync();
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/unlinked-close-%d", argv[2], i);
        descriptors[i] = open(path, O_RDONLY);
    }
    double start = now();
    for (int i = 0; i < files; i++) {
        snprintf(path, sizeof path, "%s/unlinked-close-%d", argv[2], i);
        if (mode == 2) {
            int fd = open(path, O_WRONLY);
            if (ftruncate(fd, 0) != 0) perror("ftruncate");
            close(fd);
        }
        unlink(path);
    }
    double unlinked = now();
    if (mode == 1) {
        pthread_t a, b;
        pthread_create(&a, NULL, closer, (void *)0);
        pthread_create(&b, NULL, closer, (void *)1);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
    } else {
        for (int i = 0; i < files; i++) close(descriptors[i]);
    }
    printf("mode %d  %d files of %zu bytes: unlink %.1f ms, close %.1f ms\n", mode, files, bytes,
           (unlinked - start) * 1e3, (now() - unlinked) * 1e3);
    return 0;
}
