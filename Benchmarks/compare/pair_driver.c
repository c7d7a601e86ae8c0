// The idempotency round trip that redis-benchmark cannot express (the
// second command needs the first one's reply), for vs_redis.py.
//
//   pair_driver idem|redis PORT CLIENTS SECONDS [RATE]
//
// Each client thread owns one connection and loops over fresh random keys:
//   idem:  IDEM.BEGIN key LEASE 30000          -> the fencing token
//          IDEM.COMPLETE key token <64 B>      -> +OK
//   redis: SET key 1 NX PX 30000               -> the lock
//          SET key <64 B> XX PX 86400000       -> the stored response
// Without RATE (closed loop) it prints pairs/s and the pair latency
// percentiles. With RATE (commands/s for all clients together) only the
// first command is sent, on an open-loop schedule — command k is due at
// start + k / RATE — and latency counts from the due time (so a stalled
// server cannot hide its queue): the p99 of IDEM.BEGIN (or SET NX) at that
// rate. The open loop runs in ONE thread over non-blocking connections
// (epoll, a nanosecond timeout to the next due time): a thread per
// connection on a 2-core machine measured the client's own scheduling as
// much as the server (Redis's p99 went from 0.8 to 22 ms between 20k/s and
// 40k/s that way). A due command goes out on any idle connection; when all
// are busy it waits, and that wait counts.
//
// Prints one line: ops_per_s p50_ms p99_ms p999_ms errors
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *engine;
static int port, clients;
static double seconds, rate;
static uint64_t deadline_ns;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

typedef struct {
    int fd;
    char in[65536];
    size_t start, end;
    uint64_t seed;
    uint64_t *latencies;
    size_t count, capacity;
    long errors;
    int index;
    uint64_t due;   // open loop: the due time of the command in flight, 0 when idle
} Client;

static uint64_t next_random(Client *c) {
    c->seed += 0x9E3779B97F4A7C15ull;
    uint64_t z = c->seed;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void send_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n <= 0) die("write");
        data += n;
        length -= (size_t)n;
    }
}

// The next CRLF-terminated line of input (without CRLF), reading as needed.
static char *read_line(Client *c) {
    for (;;) {
        char *crlf = memmem(c->in + c->start, c->end - c->start, "\r\n", 2);
        if (crlf) {
            char *line = c->in + c->start;
            *crlf = 0;
            c->start = (size_t)(crlf - c->in) + 2;
            return line;
        }
        if (c->start > 0) {
            memmove(c->in, c->in + c->start, c->end - c->start);
            c->end -= c->start;
            c->start = 0;
        }
        if (c->end == sizeof c->in) die("reply too long");
        ssize_t n = read(c->fd, c->in + c->end, sizeof c->in - c->end);
        if (n <= 0) die("read");
        c->end += (size_t)n;
    }
}

// Reads one reply; copies the first bulk string (or simple string) into
// `first` when given. Returns 0, or -1 for an error reply.
static int read_reply(Client *c, char *first, size_t first_size) {
    char *line = read_line(c);
    switch (line[0]) {
    case '+': case ':':
        if (first) snprintf(first, first_size, "%s", line + 1);
        return 0;
    case '-':
        return -1;
    case '$': {
        long length = atol(line + 1);
        if (length < 0) return 0;
        char *data = read_line(c);
        if (first) snprintf(first, first_size, "%s", data);
        return 0;
    }
    case '*': case '%': {
        long count = atol(line + 1) * (line[0] == '%' ? 2 : 1);
        int failed = 0;
        for (long i = 0; i < count; i++) {
            // The token is the second element of IDEM.BEGIN's reply.
            if (read_reply(c, i == 1 ? first : NULL, first_size) != 0) failed = 1;
        }
        return failed ? -1 : 0;
    }
    default:
        fprintf(stderr, "unexpected reply: %s\n", line);
        exit(1);
    }
}

static void command(Client *c, int argc, const char **argv) {
    char buffer[1024];
    int length = snprintf(buffer, sizeof buffer, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        length += snprintf(buffer + length, sizeof buffer - (size_t)length, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    send_all(c->fd, buffer, (size_t)length);
}

static void record(Client *c, uint64_t latency) {
    if (c->count == c->capacity) {
        c->capacity = c->capacity ? c->capacity * 2 : 4096;
        c->latencies = realloc(c->latencies, c->capacity * sizeof *c->latencies);
        if (!c->latencies) die("realloc");
    }
    c->latencies[c->count++] = latency;
}

static const char *value64 = "{\"status\":\"ok\",\"charge\":\"ch_0123456789abcdef\",\"amount\":1999000}";

// IDEM.BEGIN, or Redis's SET NX PX: what the open loop measures alone.
static void send_first_command(Client *c, const char *key) {
    if (strcmp(engine, "idem") == 0) {
        const char *argv[] = {"IDEM.BEGIN", key, "LEASE", "30000"};
        command(c, 4, argv);
    } else {
        const char *argv[] = {"SET", key, "1", "NX", "PX", "30000"};
        command(c, 6, argv);
    }
}

static int first_command(Client *c, const char *key, char *token, size_t token_size) {
    send_first_command(c, key);
    return read_reply(c, token, token_size);
}

static int second_command(Client *c, const char *key, const char *token) {
    if (strcmp(engine, "idem") == 0) {
        const char *argv[] = {"IDEM.COMPLETE", key, token, value64};
        command(c, 4, argv);
    } else {
        const char *argv[] = {"SET", key, value64, "XX", "PX", "86400000"};
        command(c, 6, argv);
    }
    return read_reply(c, NULL, 0);
}

static void *run_client(void *argument) {
    Client *c = argument;
    char key[64], token[128];
    while (now_ns() < deadline_ns) {
        snprintf(key, sizeof key, "op:%016llx", (unsigned long long)next_random(c));
        uint64_t start = now_ns();
        if (first_command(c, key, token, sizeof token) != 0 || second_command(c, key, token) != 0) c->errors++;
        record(c, now_ns() - start);
    }
    return NULL;
}


// The length of the complete reply at data[0..<length], 0 if incomplete.
// Sets *failed for an error reply (at any depth).
static size_t reply_length(const char *data, size_t length, int *failed) {
    const char *crlf = memmem(data, length, "\r\n", 2);
    if (!crlf) return 0;
    size_t line = (size_t)(crlf - data) + 2;
    switch (data[0]) {
    case '+': case ':': case '_': case '#': case ',':
        return line;
    case '-':
        *failed = 1;
        return line;
    case '$': {
        long bulk = atol(data + 1);
        if (bulk < 0) return line;
        return length >= line + (size_t)bulk + 2 ? line + (size_t)bulk + 2 : 0;
    }
    case '*': case '%': case '~': {
        long count = atol(data + 1) * (data[0] == '%' ? 2 : 1);
        size_t at = line;
        for (long i = 0; i < count; i++) {
            size_t element = reply_length(data + at, length - at, failed);
            if (element == 0) return 0;
            at += element;
        }
        return at;
    }
    default:
        fprintf(stderr, "unexpected reply: %.20s\n", data);
        exit(1);
    }
}

static void send_first(Client *c, uint64_t due) {
    char key[64];
    snprintf(key, sizeof key, "op:%016llx", (unsigned long long)next_random(c));
    send_first_command(c, key);
    c->due = due;
}

// The open loop: see the comment at the top. Latencies go to all[0].
static void run_open_loop(Client *all) {
    int poller = epoll_create1(0);
    if (poller < 0) die("epoll_create1");
    for (int i = 0; i < clients; i++) {
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = &all[i]};
        if (epoll_ctl(poller, EPOLL_CTL_ADD, all[i].fd, &event) != 0) die("epoll_ctl");
    }
    Client *sink = &all[0];
    uint64_t interval = (uint64_t)(1e9 / rate), next_due = now_ns();
    int busy = 0;
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        // Due commands go out on idle connections, oldest due first.
        for (int i = 0; i < clients && next_due <= now && next_due < deadline_ns; i++) {
            if (all[i].due != 0) continue;
            send_first(&all[i], next_due);
            next_due += interval;
            busy++;
        }
        if (next_due >= deadline_ns && busy == 0) break;
        struct timespec timeout = {0, 0};
        if (busy == clients || next_due > now) {
            // Wake at the next due time (or at once if it passed while all
            // connections were busy: a reply will come first anyway).
            uint64_t wait = next_due > now && next_due < deadline_ns ? next_due - now : 1000000000ull;
            timeout.tv_sec = (time_t)(wait / 1000000000ull);
            timeout.tv_nsec = (long)(wait % 1000000000ull);
        }
        int ready = epoll_pwait2(poller, events, 256, &timeout, NULL);
        if (ready < 0 && errno != EINTR) die("epoll_pwait2");
        for (int e = 0; e < ready; e++) {
            Client *c = events[e].data.ptr;
            if (c->start > 0) {
                memmove(c->in, c->in + c->start, c->end - c->start);
                c->end -= c->start;
                c->start = 0;
            }
            ssize_t n = read(c->fd, c->in + c->end, sizeof c->in - c->end);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n <= 0) die("read");
            c->end += (size_t)n;
            int failed = 0;
            size_t length = reply_length(c->in + c->start, c->end - c->start, &failed);
            if (length == 0) {
                if (c->end == sizeof c->in) die("reply too long");
                continue;
            }
            c->start += length;
            uint64_t done = now_ns();
            record(sink, done - c->due);
            if (failed) sink->errors++;
            c->due = 0;
            busy--;
        }
    }
    close(poller);
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: pair_driver idem|redis PORT CLIENTS SECONDS [RATE]\n");
        return 2;
    }
    engine = argv[1];
    port = atoi(argv[2]);
    clients = atoi(argv[3]);
    seconds = atof(argv[4]);
    rate = argc > 5 ? atof(argv[5]) : 0;
    Client *all = calloc((size_t)clients, sizeof *all);
    pthread_t *threads = calloc((size_t)clients, sizeof *threads);
    for (int i = 0; i < clients; i++) {
        all[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
        if (connect(all[i].fd, (struct sockaddr *)&address, sizeof address) != 0) die("connect");
        int one = 1;
        setsockopt(all[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (rate > 0 && fcntl(all[i].fd, F_SETFL, O_NONBLOCK) != 0) die("fcntl");
        all[i].seed = now_ns() ^ ((uint64_t)i << 32);
        all[i].index = i;
    }
    uint64_t start = now_ns();
    deadline_ns = start + (uint64_t)(seconds * 1e9);
    if (rate > 0) {
        run_open_loop(all);
    } else {
        for (int i = 0; i < clients; i++) pthread_create(&threads[i], NULL, run_client, &all[i]);
        for (int i = 0; i < clients; i++) pthread_join(threads[i], NULL);
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    size_t total = 0;
    long errors = 0;
    for (int i = 0; i < clients; i++) total += all[i].count, errors += all[i].errors;
    uint64_t *latencies = malloc((total ? total : 1) * sizeof *latencies);
    size_t at = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(latencies + at, all[i].latencies, all[i].count * sizeof *latencies);
        at += all[i].count;
    }
    qsort(latencies, total, sizeof *latencies, compare);
#define PERCENTILE(p) (total ? (double)latencies[(size_t)((double)(total - 1) * (p))] / 1e6 : 0.0)
    printf("%.0f %.3f %.3f %.3f %ld\n", (double)total / elapsed, PERCENTILE(0.50), PERCENTILE(0.99), PERCENTILE(0.999), errors);
    return 0;
}
