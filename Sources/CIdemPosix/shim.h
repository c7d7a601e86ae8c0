// Linux calls the Glibc module does not import (it is built without
// _GNU_SOURCE, and defining it here would make this module's view of the
// system headers clash with Glibc's). Header only: nothing to link.
#ifndef IDEM_POSIX_SHIM_H
#define IDEM_POSIX_SHIM_H

#if defined(__linux__) && defined(__LP64__)
#include <stddef.h>
#include <stdio.h>

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

// glibc's sync_file_range (since 2.6), and SYNC_FILE_RANGE_WRITE from
// <fcntl.h>: start writing back a range of dirty pages, without waiting.
extern int idem_sync_file_range(int fd, long offset, long count, unsigned int flags) __asm__("sync_file_range");
#define IDEM_SYNC_FILE_RANGE_WRITE 2

// Starts writeback of [offset, offset + count) and returns at once; a
// hint (errors are left to the fdatasync that follows).
static inline void idem_start_writeback(int fd, long offset, long count) {
    (void)idem_sync_file_range(fd, offset, count, IDEM_SYNC_FILE_RANGE_WRITE);
}

// glibc's getrandom (since 2.25): many CSPRNG bytes in one system call.
extern long idem_getrandom(void *buffer, size_t count, unsigned int flags) __asm__("getrandom");

// glibc's pthread_setname_np (since 2.12) and gettid (since 2.30).
extern int idem_pthread_setname(unsigned long thread, const char *name) __asm__("pthread_setname_np");
extern int idem_gettid(void) __asm__("gettid");

// How one thread (a Linux thread id) is scheduled. SCHED_IDLE (<sched.h>
// defines it only under _GNU_SOURCE): the thread runs on CPU time no other
// thread wants, a waking normal thread preempts it at once, and the
// kernel places wakeups on its CPU as on an idle one. Leaving SCHED_IDLE
// needs CAP_SYS_NICE or an RLIMIT_NICE that allows the thread's nice
// value (sched(7)); entering it needs nothing.
#include <sched.h>
#include <sys/resource.h>
#define IDEM_SCHED_IDLE 5

// SCHED_IDLE at nice 10: leaving it later then needs only what nice 10
// needs (an RLIMIT_NICE of 10), not what nice 0 would (20).
static inline int idem_schedule_idle(int thread) {
    struct sched_param parameters = { 0 };
    if (setpriority(PRIO_PROCESS, (id_t)thread, 10) != 0) return -1;
    return sched_setscheduler(thread, IDEM_SCHED_IDLE, &parameters);
}

// SCHED_OTHER at `nice` (the policy first: a thread's nice value is kept
// across a policy change, and setting it is refused only when lowering it).
static inline int idem_schedule_normal(int thread, int nice) {
    struct sched_param parameters = { 0 };
    if (sched_setscheduler(thread, SCHED_OTHER, &parameters) != 0) return -1;
    return setpriority(PRIO_PROCESS, (id_t)thread, nice);
}

// Names the calling thread (at most 15 bytes are kept; longer is refused).
static inline int idem_name_this_thread(const char *name) {
    extern unsigned long pthread_self(void);
    return idem_pthread_setname(pthread_self(), name);
}

// ---- The server's event loop: epoll, eventfd and TCP sockets. ----
// Kept in C because `struct epoll_event` is packed on x86-64 and the
// socket-address structs are unions of casts; Swift sees only plain values.
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>

// glibc's accept4 and pthread_setname_np (GNU extensions), under names of our own.
struct sockaddr;
extern int idem_accept4(int fd, struct sockaddr *address, unsigned int *length, int flags) __asm__("accept4");
#include <pthread.h>
extern int idem_pthread_setname_np(pthread_t thread, const char *name) __asm__("pthread_setname_np");

static inline int idem_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

// EPOLL_CTL_ADD / _MOD / _DEL for `fd`, reported with `token`.
static inline int idem_epoll_control(int epoll_fd, int operation, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = events;
    event.data.u64 = token;
    return epoll_ctl(epoll_fd, operation, fd, &event);
}

// Waits up to `timeout_ms` (-1: forever); writes each ready token and its
// events into the two arrays (at most `capacity`, at most 256).
static inline int idem_epoll_wait(int epoll_fd, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(epoll_fd, ready, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return count;
}

static inline int idem_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

static inline int idem_accept(int listen_fd) {
    return idem_accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

static inline int idem_set_no_delay(int fd) {
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// send(2) that never raises SIGPIPE on a connection the peer closed.
static inline long idem_send(int fd, const void *bytes, size_t count) {
    return send(fd, bytes, count, MSG_NOSIGNAL);
}

// A non-blocking TCP listener on `host`:`port` (the first address
// getaddrinfo gives that binds). Returns the socket, or -1 with
// `*error_number` set (EAI_* resolution failures as `-1000 + code`).
static inline int idem_listen_tcp(const char *host, int port, int backlog, int *error_number) {
    struct addrinfo hints, *addresses = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int resolved = getaddrinfo(host, service, &hints, &addresses);
    if (resolved != 0) {
        *error_number = -1000 + resolved;
        return -1;
    }
    int result = -1;
    *error_number = EADDRNOTAVAIL;
    for (struct addrinfo *address = addresses; address != NULL; address = address->ai_next) {
        int fd = socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, address->ai_protocol);
        if (fd < 0) { *error_number = errno; continue; }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, address->ai_addr, address->ai_addrlen) == 0 && listen(fd, backlog) == 0) {
            result = fd;
            break;
        }
        *error_number = errno;
        close(fd);
    }
    freeaddrinfo(addresses);
    return result;
}

static inline const char *idem_resolution_error(int code) { return gai_strerror(code); }

// "address:port" of the socket's own end (`peer` = 0) or the peer's,
// written into `text`; returns the port, or -1.
static inline int idem_socket_address(int fd, int peer, char *text, size_t capacity) {
    struct sockaddr_storage storage;
    socklen_t length = sizeof storage;
    int status = peer ? getpeername(fd, (struct sockaddr *)&storage, &length)
                      : getsockname(fd, (struct sockaddr *)&storage, &length);
    if (status != 0 || capacity == 0) return -1;
    text[0] = 0;
    if (storage.ss_family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&storage;
        inet_ntop(AF_INET, &v4->sin_addr, text, capacity);
        return ntohs(v4->sin_port);
    }
    if (storage.ss_family == AF_INET6) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&storage;
        inet_ntop(AF_INET6, &v6->sin6_addr, text, capacity);
        return ntohs(v6->sin6_port);
    }
    return -1;
}

// Backs [address, address + length) with writable pages now, instead of a
// page fault at each page's first write: MADV_POPULATE_WRITE (Linux 5.14),
// which takes the write faults without changing a byte, so it is safe
// while another thread writes to the range. Returns 0, or -1 with errno
// (EINVAL where the kernel lacks it; EFAULT for a file mapping past the
// file's end).
#include <sys/mman.h>
#include <stdint.h>
#define IDEM_MADV_POPULATE_WRITE 23
static inline int idem_populate_writable(void *address, size_t length) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)address + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)address + length) & ~(page - 1);
    if (end <= start) return 0;
    return madvise((void *)start, end - start, IDEM_MADV_POPULATE_WRITE);
}

// idem_populate_writable, else a store per page: for memory no other
// thread can see yet, whose first use is on a hot path. (A read of an
// untouched page maps the shared zero page, and the first write then
// faults again and flushes the old mapping from every CPU's TLB.)
static inline void idem_prefault_writable(void *address, size_t length) {
    if (idem_populate_writable(address, length) == 0) return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    volatile unsigned char *bytes = (volatile unsigned char *)address;
    for (size_t offset = 0; offset < length; offset += page) bytes[offset] = bytes[offset];
}
#endif

#endif
