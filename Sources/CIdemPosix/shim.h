// Linux calls the Glibc module does not import (it is built without
// _GNU_SOURCE, and defining it here would make this module's view of the
// system headers clash with Glibc's). Header only: nothing to link.
#ifndef IDEM_POSIX_SHIM_H
#define IDEM_POSIX_SHIM_H

#if defined(__linux__) && defined(__LP64__)
#include <stddef.h>

struct idem_iovec {
    void *base;
    size_t length;
};

// glibc's preadv2 (since 2.26), under a name of our own.
extern long idem_preadv2(int fd, const struct idem_iovec *vector, int count, long offset, int flags)
    __asm__("preadv2");

// RWF_NOWAIT from <linux/fs.h>: fail with EAGAIN rather than wait for I/O.
#define IDEM_RWF_NOWAIT 0x00000008

// pread that never waits for the disk: the bytes only if the page cache
// holds all of them, else -1 with errno EAGAIN (EOPNOTSUPP on kernels
// older than 4.14) — or a short count.
static inline long idem_pread_resident(int fd, void *buffer, size_t count, long offset) {
    struct idem_iovec vector = { buffer, count };
    return idem_preadv2(fd, &vector, 1, offset, IDEM_RWF_NOWAIT);
}

// glibc's getrandom (since 2.25): many CSPRNG bytes in one system call.
extern long idem_getrandom(void *buffer, size_t count, unsigned int flags) __asm__("getrandom");
#endif

#endif
