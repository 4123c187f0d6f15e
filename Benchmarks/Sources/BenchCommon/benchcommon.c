#define _GNU_SOURCE
#include "benchcommon.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *bench_arg(int argc, char **argv, const char *name, const char *fallback) {
    for (int i = 1; i + 1 < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] == '-' && strcmp(argv[i] + 2, name) == 0) return argv[i + 1];
    }
    return fallback;
}

long bench_arg_long(int argc, char **argv, const char *name, long fallback) {
    const char *text = bench_arg(argc, argv, name, NULL);
    return text ? strtol(text, NULL, 10) : fallback;
}

int bench_listen(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 4096) != 0) {
        close(fd);
        return -1;
    }
    socklen_t length = sizeof address;
    getsockname(fd, (struct sockaddr *)&address, &length);
    *port = ntohs(address.sin_port);
    return fd;
}

static void tune(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct linger linger = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int bench_tcp_pair(int listener, int port, int *client, int *server) {
    int c = bench_plain_connect(port);
    if (c < 0) return -1;
    int s = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) {
        close(c);
        return -1;
    }
    tune(c);
    tune(s);
    *client = c;
    *server = s;
    return 0;
}

void bench_close(int fd) { close(fd); }

void bench_raise_nofile(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

long bench_rss_bytes(void) {
    FILE *file = fopen("/proc/self/statm", "r");
    if (!file) return -1;
    long size = 0, resident = 0;
    if (fscanf(file, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(file);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

long bench_heap_bytes(void) {
    struct mallinfo2 info = mallinfo2();
    return (long)(info.uordblks + info.hblkhd);
}

double bench_alloc_count(void) {
    static unsigned long long (*counter)(void) = NULL;
    static int looked = 0;
    if (!looked) {
        counter = (unsigned long long (*)(void))dlsym(RTLD_DEFAULT, "mc_alloc_count");
        looked = 1;
    }
    return counter ? (double)counter() : -1.0;
}

int bench_plain_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons((unsigned short)port);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *latency_open(const bench_latency_ops *ops, int port) {
    int fd = bench_plain_connect(port);
    if (fd < 0) {
        fprintf(stderr, "latency: connect failed\n");
        exit(1);
    }
    return ops->open(fd, ops->client);
}

int bench_latency(int argc, char **argv, const bench_latency_ops *ops) {
    long count = bench_arg_long(argc, argv, "count", 2000);
    long connections = bench_arg_long(argc, argv, "connections", 20);
    if (count < 1 || connections < 1) return 2;
    int port = 0, listener = bench_listen(&port);
    if (listener < 0) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        for (;;) {
            int fd = accept(listener, NULL, NULL);
            if (fd < 0) continue;
            ops->serve(fd, ops->server);
            close(fd);
        }
    }
    close(listener);
    double *firsts = calloc((size_t)connections, sizeof(double)), *times = calloc((size_t)count, sizeof(double));
    for (long i = 0; i < connections; i++) {
        void *session = latency_open(ops, port);
        firsts[i] = ops->round_trip(session);
        ops->close(session);
    }
    void *session = latency_open(ops, port);
    for (long i = 0; i < count / 10 + 1; i++) ops->round_trip(session);
    for (long i = 0; i < count; i++) times[i] = ops->round_trip(session);
    char negotiated[256] = "";
    ops->describe(session, negotiated, sizeof negotiated);
    ops->close(session);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    qsort(times, (size_t)count, sizeof *times, compare_doubles);
    qsort(firsts, (size_t)connections, sizeof *firsts, compare_doubles);
    long p99 = count * 99 / 100 < count - 1 ? count * 99 / 100 : count - 1;
    printf("result=%.1f unit=us p99=%.1f first=%.1f%s\n", times[(count - 1) / 2] * 1e6, times[p99] * 1e6,
           firsts[(connections - 1) / 2] * 1e6, negotiated);
    free(firsts);
    free(times);
    return 0;
}
