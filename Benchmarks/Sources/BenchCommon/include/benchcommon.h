/* BenchCommon: the plumbing every benchmark program shares, so that the C programs,
 * bench-tlskit and bench-nio measure with the same clock, the same sockets and the
 * same memory readings. Nothing here touches TLS. */
#ifndef BENCHCOMMON_H
#define BENCHCOMMON_H

#include <stddef.h>

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* The value after `--name` in argv, or `fallback`. */
const char *bench_arg(int argc, char **argv, const char *name, const char *fallback);
long bench_arg_long(int argc, char **argv, const char *name, long fallback);

/* A listening TCP socket on 127.0.0.1 with an ephemeral port (returned in *port). */
int bench_listen(int *port);
/* A connected, non-blocking client/server descriptor pair over 127.0.0.1 through
 * `listener`, TCP_NODELAY, SO_LINGER 0 (closed without TIME_WAIT). 0 on success. */
int bench_tcp_pair(int listener, int port, int *client, int *server);
/* A blocking TCP connection to 127.0.0.1:port with the socket defaults a C program
 * gets (no TCP_NODELAY: Nagle's algorithm on), or -1. */
int bench_plain_connect(int port);
/* The latency scenario, one skeleton for both C programs. A forked server accepts on a
 * fresh loopback listener and calls serve(fd, server) per connection (handshake, then
 * echo until the client goes). The client, over bench_plain_connect sockets: K = 
 * --connections fresh connections, one round trip each (`first`: the median), then one
 * connection, a 1/10 warm-up and --count round trips (`result`: median, `p99`). Times
 * in microseconds; prints the result line. Returns main's exit status. */
typedef struct {
    void *client, *server;                                  /* the library's contexts */
    void *(*open)(int fd, void *client);                    /* TLS client over fd, handshake done */
    double (*round_trip)(void *session);                    /* one 32-byte request and reply, seconds */
    void (*describe)(void *session, char *out, size_t size); /* " group=… cipher=… version=…" */
    void (*close)(void *session);                           /* frees the session, closes its fd */
    void (*serve)(int fd, void *server);                    /* server side of one connection */
} bench_latency_ops;
int bench_latency(int argc, char **argv, const bench_latency_ops *ops);
/* Closes a descriptor made by bench_tcp_pair. */
void bench_close(int fd);
/* Raises RLIMIT_NOFILE to its hard limit. */
void bench_raise_nofile(void);

/* Resident set size of this process, in bytes (/proc/self/statm). */
long bench_rss_bytes(void);
/* Bytes of heap in use (mallinfo2: small blocks plus mmapped ones). */
long bench_heap_bytes(void);
/* Calls made so far to malloc/calloc/realloc/memalign when the LD_PRELOAD counter
 * (libBenchMallocCounter.so) is loaded; -1 otherwise. */
double bench_alloc_count(void);

#endif
