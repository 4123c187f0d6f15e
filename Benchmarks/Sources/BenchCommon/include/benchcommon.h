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
