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
// percentiles. With RATE (pairs/s for all clients together) each client
// sends only the first command, on an open-loop schedule, and latency counts
// from the scheduled send time (so a stalled server cannot hide its queue):
// the p99 of IDEM.BEGIN (or SET NX) at that rate.
//
// Prints one line: ops_per_s p50_ms p99_ms p999_ms errors
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int first_command(Client *c, const char *key, char *token, size_t token_size) {
    if (strcmp(engine, "idem") == 0) {
        const char *argv[] = {"IDEM.BEGIN", key, "LEASE", "30000"};
        command(c, 4, argv);
    } else {
        const char *argv[] = {"SET", key, "1", "NX", "PX", "30000"};
        command(c, 6, argv);
    }
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
    uint64_t interval = rate > 0 ? (uint64_t)(1e9 * clients / rate) : 0;
    uint64_t scheduled = now_ns() + (interval * (uint64_t)c->index) / (uint64_t)clients;
    while (now_ns() < deadline_ns) {
        snprintf(key, sizeof key, "op:%016llx", (unsigned long long)next_random(c));
        if (interval) {
            uint64_t now = now_ns();
            if (scheduled > now) {
                struct timespec pause = {(time_t)((scheduled - now) / 1000000000ull), (long)((scheduled - now) % 1000000000ull)};
                nanosleep(&pause, NULL);
            }
            if (first_command(c, key, token, sizeof token) != 0) c->errors++;
            record(c, now_ns() - scheduled);
            scheduled += interval;
        } else {
            uint64_t start = now_ns();
            if (first_command(c, key, token, sizeof token) != 0 || second_command(c, key, token) != 0) c->errors++;
            record(c, now_ns() - start);
        }
    }
    return NULL;
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
        all[i].seed = now_ns() ^ ((uint64_t)i << 32);
        all[i].index = i;
    }
    uint64_t start = now_ns();
    deadline_ns = start + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < clients; i++) pthread_create(&threads[i], NULL, run_client, &all[i]);
    for (int i = 0; i < clients; i++) pthread_join(threads[i], NULL);
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
