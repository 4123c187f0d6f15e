/* bench-c-openssl: the benchmark scenarios written directly over libssl, doing the
 * same work TLSKit's OpenSSL backend does (same SSL_CTX settings, chain and host-name
 * verification, SNI), without TLSKit: the physical limit for that backend.
 *
 *   bench-c-openssl handshake --transport memory|tcp --key ecdsa|rsa --count N --certs DIR [--groups X25519]
 *   bench-c-openssl resume    --count N --certs DIR
 *   bench-c-openssl bulk      --transport memory|tcp --mib M --certs DIR [--cipher aes128]
 *   bench-c-openssl idle      --count N --certs DIR
 *   bench-c-openssl latency   --count N --connections K --certs DIR
 *
 * Prints one line: result=<value> unit=<unit> and what was negotiated. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchcommon.h"

#define CHUNK 16384
#define MAX_STEPS 100000

static void die(const char *what) {
    fprintf(stderr, "bench-c-openssl: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static const char *arg(int argc, char **argv, const char *name, const char *fallback) {
    return bench_arg(argc, argv, name, fallback);
}

/* Contexts as TLSKit's OpenSSLContextEngine builds them. */
static SSL_CTX *base_context(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx) die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

static void apply_options(SSL_CTX *ctx, const char *groups, const char *cipher) {
    if (groups && SSL_CTX_set1_groups_list(ctx, groups) != 1) die("groups");
    if (cipher && strcmp(cipher, "aes128") == 0 && SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1)
        die("ciphersuites");
}

static SSL_CTX *client_context(const char *ca, const char *groups, const char *cipher) {
    SSL_CTX *ctx = base_context();
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) die("CA file");
    apply_options(ctx, groups, cipher);
    return ctx;
}

static SSL_CTX *server_context(const char *cert, const char *key, const char *groups, const char *cipher) {
    SSL_CTX *ctx = base_context();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) die("certificate");
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) die("key");
    if (SSL_CTX_check_private_key(ctx) != 1) die("key mismatch");
    apply_options(ctx, groups, cipher);
    return ctx;
}

static SSL *client_ssl(SSL_CTX *ctx) {
    SSL *ssl = SSL_new(ctx);
    if (!ssl) die("SSL_new");
    SSL_set_connect_state(ssl);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, "localhost") != 1) die("SSL_set1_host");
    return ssl;
}

static SSL *server_ssl(SSL_CTX *ctx) {
    SSL *ssl = SSL_new(ctx);
    if (!ssl) die("SSL_new");
    SSL_set_accept_state(ssl);
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    return ssl;
}

/* ---- transports ---------------------------------------------------------------- */

/* In memory: one BIO pair per end (what TLSMemoryPair is to TLSKit), bytes moved by
 * the application between the two external halves. */
typedef struct {
    SSL *ssl;
    BIO *external;
} end_t;

static void attach_memory(end_t *end) {
    BIO *internal = NULL, *external = NULL;
    if (BIO_new_bio_pair(&internal, 64 * 1024, &external, 64 * 1024) != 1) die("BIO_new_bio_pair");
    SSL_set_bio(end->ssl, internal, internal);
    end->external = external;
}

static void move_bytes(end_t *from, end_t *to) {
    static unsigned char buffer[64 * 1024];
    for (int i = 0; i < 1024; i++) {
        size_t pending = BIO_ctrl_pending(from->external);
        size_t room = BIO_ctrl_get_write_guarantee(to->external);
        size_t n = pending < room ? pending : room;
        if (n > sizeof buffer) n = sizeof buffer;
        if (n == 0) return;
        int got = BIO_read(from->external, buffer, (int)n);
        if (got <= 0 || BIO_write(to->external, buffer, got) != got) die("moving bytes");
    }
}

static void exchange(end_t *a, end_t *b) {
    move_bytes(a, b);
    move_bytes(b, a);
}

/* Resumption only: mark connections as cleanly closed before SSL_free. OpenSSL
 * removes the session of a connection freed without shutdown from the cache and makes
 * it non-resumable; a real client would have exchanged close_notify. */
static int clean_close = 0;

static void free_end(end_t *end) {
    if (clean_close) SSL_set_shutdown(end->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(end->ssl);
    if (end->external) BIO_free(end->external);
}

/* ---- the handshake, both ends in this thread ---------------------------------- */

static int step_ok(SSL *ssl, int result) {
    if (result == 1) return 1;
    int error = SSL_get_error(ssl, result);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return 0;
    die("handshake failed");
    return 0;
}

/* Drives both handshakes; `memory` says whether bytes must be moved by hand. */
static void handshake_pair(end_t *client, end_t *server, int memory) {
    int client_done = 0, server_done = 0;
    for (int step = 0; step < MAX_STEPS; step++) {
        if (!client_done) client_done = step_ok(client->ssl, SSL_do_handshake(client->ssl));
        if (memory) exchange(client, server);
        if (!server_done) server_done = step_ok(server->ssl, SSL_do_handshake(server->ssl));
        if (memory) exchange(client, server);
        if (client_done && server_done) return;
    }
    die("handshake did not finish");
}

static void make_pair(SSL_CTX *cctx, SSL_CTX *sctx, int memory, int listener, int port,
                      end_t *client, end_t *server, int fds[2]) {
    client->ssl = client_ssl(cctx);
    server->ssl = server_ssl(sctx);
    client->external = server->external = NULL;
    if (memory) {
        attach_memory(client);
        attach_memory(server);
    } else {
        if (bench_tcp_pair(listener, port, &fds[0], &fds[1]) != 0) die("loopback connection");
        SSL_set_fd(client->ssl, fds[0]);
        SSL_set_fd(server->ssl, fds[1]);
    }
}

static void close_pair(end_t *client, end_t *server, int memory, int fds[2]) {
    free_end(client);
    free_end(server);
    if (!memory) {
        bench_close(fds[0]);
        bench_close(fds[1]);
    }
}

static const char *group_name(SSL *ssl) {
    int nid = SSL_get_negotiated_group(ssl);
    const char *name = nid > 0 ? OBJ_nid2sn(nid) : NULL;
    return name ? name : "unknown";
}

static void print_negotiated(SSL *ssl) {
    printf(" group=%s cipher=%s version=%s", group_name(ssl), SSL_CIPHER_standard_name(SSL_get_current_cipher(ssl)),
           SSL_get_version(ssl));
}

static void certificate_paths(int argc, char **argv, char *cert, char *key, char *ca, size_t size) {
    const char *dir = arg(argc, argv, "certs", "certs");
    const char *kind = arg(argc, argv, "key", "ecdsa");
    snprintf(cert, size, "%s/%s.crt", dir, kind);
    snprintf(key, size, "%s/%s.key", dir, kind);
    snprintf(ca, size, "%s/%s-ca.crt", dir, kind);
}

static int handshakes(int argc, char **argv) {
    char cert[512], key[512], ca[512];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    const char *groups = arg(argc, argv, "groups", NULL);
    int memory = strcmp(arg(argc, argv, "transport", "memory"), "memory") == 0;
    long count = bench_arg_long(argc, argv, "count", 1000);
    SSL_CTX *cctx = client_context(ca, groups, NULL), *sctx = server_context(cert, key, groups, NULL);
    int port = 0, listener = memory ? -1 : bench_listen(&port);
    if (!memory && listener < 0) die("listen");

    end_t client, server;
    int fds[2];
    long warmup = count / 10 + 1;
    for (long i = 0; i < warmup; i++) {
        make_pair(cctx, sctx, memory, listener, port, &client, &server, fds);
        handshake_pair(&client, &server, memory);
        if (i + 1 < warmup) close_pair(&client, &server, memory, fds);
    }
    char negotiated[256];
    snprintf(negotiated, sizeof negotiated, " group=%s cipher=%s version=%s", group_name(client.ssl),
             SSL_CIPHER_standard_name(SSL_get_current_cipher(client.ssl)), SSL_get_version(client.ssl));
    close_pair(&client, &server, memory, fds);

    double allocs0 = bench_alloc_count();
    double start = bench_now();
    for (long i = 0; i < count; i++) {
        make_pair(cctx, sctx, memory, listener, port, &client, &server, fds);
        handshake_pair(&client, &server, memory);
        close_pair(&client, &server, memory, fds);
    }
    double elapsed = bench_now() - start;
    double allocs1 = bench_alloc_count();
    printf("result=%.1f unit=handshakes/s%s", (double)count / elapsed, negotiated);
    if (allocs0 >= 0) printf(" allocs_per_op=%.1f", (allocs1 - allocs0) / (double)count);
    printf("\n");
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    if (listener >= 0) bench_close(listener);
    return 0;
}

/* Resumption with a TLS 1.3 ticket, in memory: one full handshake, the client reads the
 * server's NewSessionTicket, then every handshake offers that session. */
static int resumptions(int argc, char **argv) {
    char cert[512], key[512], ca[512];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    const char *groups = arg(argc, argv, "groups", NULL);
    long count = bench_arg_long(argc, argv, "count", 1000);
    SSL_CTX *cctx = client_context(ca, groups, NULL), *sctx = server_context(cert, key, groups, NULL);
    /* No client-side cache: SSL_free of a connection that was not shut down would
     * remove the session from it and mark it not resumable. */
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
    clean_close = 1;
    end_t client, server;
    int fds[2];
    make_pair(cctx, sctx, 1, -1, 0, &client, &server, fds);
    handshake_pair(&client, &server, 1);
    exchange(&client, &server);
    unsigned char byte;
    if (SSL_read(client.ssl, &byte, 1) > 0 || SSL_get_error(client.ssl, -1) != SSL_ERROR_WANT_READ) die("ticket read");
    SSL_SESSION *session = SSL_get1_session(client.ssl);
    if (!session || !SSL_SESSION_is_resumable(session)) die("no resumable session");
    close_pair(&client, &server, 1, fds);

    long resumed = 0;
    double allocs0 = bench_alloc_count();
    double start = bench_now();
    for (long i = 0; i < count; i++) {
        make_pair(cctx, sctx, 1, -1, 0, &client, &server, fds);
        SSL_set_session(client.ssl, session);
        handshake_pair(&client, &server, 1);
        resumed += SSL_session_reused(client.ssl);
        if (i + 1 < count) close_pair(&client, &server, 1, fds);
    }
    double elapsed = bench_now() - start;
    double allocs1 = bench_alloc_count();
    if (resumed != count) {
        fprintf(stderr, "resumed %ld of %ld\n", resumed, count);
        die("a handshake was not resumed");
    }
    printf("result=%.1f unit=handshakes/s", (double)count / elapsed);
    print_negotiated(client.ssl);
    if (allocs0 >= 0) printf(" allocs_per_op=%.1f", (allocs1 - allocs0) / (double)count);
    printf(" resumed=%ld\n", resumed);
    close_pair(&client, &server, 1, fds);
    SSL_SESSION_free(session);
    return 0;
}

/* Bulk: `mib` MiB from client to server in 16 KiB writes, on one connection. */
static int bulk(int argc, char **argv) {
    char cert[512], key[512], ca[512];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    const char *cipher = arg(argc, argv, "cipher", NULL);
    int memory = strcmp(arg(argc, argv, "transport", "memory"), "memory") == 0;
    long mib = bench_arg_long(argc, argv, "mib", 256);
    SSL_CTX *cctx = client_context(ca, NULL, cipher), *sctx = server_context(cert, key, NULL, cipher);
    int port = 0, listener = memory ? -1 : bench_listen(&port);
    end_t client, server;
    int fds[2];
    make_pair(cctx, sctx, memory, listener, port, &client, &server, fds);
    handshake_pair(&client, &server, memory);

    static unsigned char out[CHUNK], in[CHUNK];
    memset(out, 0x5a, sizeof out);
    long chunks = mib * 1024 * 1024 / CHUNK;
    long warmup = chunks / 16 + 1;
    long long received = 0, wanted = (long long)(chunks + warmup) * CHUNK;
    double allocs0 = 0, start = 0;
    for (long i = 0; i < chunks + warmup; i++) {
        if (i == warmup) {
            allocs0 = bench_alloc_count();
            start = bench_now();
        }
        for (int step = 0;; step++) {
            if (step > MAX_STEPS) die("write stalled");
            int written = SSL_write(client.ssl, out, CHUNK);
            if (written == CHUNK) break;
            if (written > 0) die("partial write");
            int error = SSL_get_error(client.ssl, written);
            if (error != SSL_ERROR_WANT_WRITE && error != SSL_ERROR_WANT_READ) die("write failed");
            /* The transport is full: let the server drain it. */
            if (memory) exchange(&client, &server);
            for (int r = 0; r < 64; r++) {
                int n = SSL_read(server.ssl, in, sizeof in);
                if (n <= 0) break;
                received += n;
            }
        }
        if (memory) exchange(&client, &server);
        for (int r = 0; r < 64; r++) {
            int n = SSL_read(server.ssl, in, sizeof in);
            if (n <= 0) {
                int error = SSL_get_error(server.ssl, n);
                if (error != SSL_ERROR_WANT_READ) die("read failed");
                break;
            }
            received += n;
        }
    }
    for (int step = 0; received < wanted && step < MAX_STEPS; step++) {
        if (memory) exchange(&client, &server);
        int n = SSL_read(server.ssl, in, sizeof in);
        if (n > 0) received += n;
    }
    double elapsed = bench_now() - start;
    double allocs1 = bench_alloc_count();
    if (received != wanted) die("bytes lost");
    printf("result=%.1f unit=MB/s", (double)chunks * CHUNK / 1e6 / elapsed);
    print_negotiated(client.ssl);
    if (allocs0 >= 0) printf(" allocs_per_op=%.2f", (allocs1 - allocs0) / (double)chunks);
    printf("\n");
    close_pair(&client, &server, memory, fds);
    return 0;
}

/* Resident memory per established, idle connection: `count` pairs over loopback TCP,
 * kept open; (RSS after - RSS before) / (2 * count). */
static int idle(int argc, char **argv) {
    char cert[512], key[512], ca[512];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    long count = bench_arg_long(argc, argv, "count", 1000);
    bench_raise_nofile();
    SSL_CTX *cctx = client_context(ca, NULL, NULL), *sctx = server_context(cert, key, NULL, NULL);
    int port = 0, listener = bench_listen(&port);
    end_t *clients = calloc((size_t)count, sizeof(end_t)), *servers = calloc((size_t)count, sizeof(end_t));
    int (*fds)[2] = calloc((size_t)count, sizeof *fds);
    /* Warm up: first connections load lazily built tables. */
    for (int i = 0; i < 8; i++) {
        end_t c, s;
        int f[2];
        make_pair(cctx, sctx, 0, listener, port, &c, &s, f);
        handshake_pair(&c, &s, 0);
        close_pair(&c, &s, 0, f);
    }
    long rss0 = bench_rss_bytes(), heap0 = bench_heap_bytes();
    for (long i = 0; i < count; i++) {
        make_pair(cctx, sctx, 0, listener, port, &clients[i], &servers[i], fds[i]);
        handshake_pair(&clients[i], &servers[i], 0);
    }
    long rss1 = bench_rss_bytes(), heap1 = bench_heap_bytes();
    printf("result=%.0f unit=bytes/connection heap_per_connection=%.0f connections=%ld\n",
           (double)(rss1 - rss0) / (2.0 * count), (double)(heap1 - heap0) / (2.0 * count), 2 * count);
    for (long i = 0; i < count; i++) close_pair(&clients[i], &servers[i], 0, fds[i]);
    return 0;
}

/* ---- latency (BenchCommon's skeleton): blocking sockets, the defaults a C program has */

static void *latency_open(int fd, void *context) {
    SSL *ssl = client_ssl(context);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) die("SSL_connect");
    return ssl;
}

static double latency_round_trip(void *session) {
    static unsigned char message[32], reply[64];
    memset(message, 0x61, sizeof message);
    double start = bench_now();
    if (SSL_write(session, message, sizeof message) != (int)sizeof message) die("SSL_write");
    for (int got = 0; got < (int)sizeof message;) {
        int n = SSL_read(session, reply, sizeof reply);
        if (n <= 0) die("SSL_read");
        got += n;
    }
    return bench_now() - start;
}

static void latency_describe(void *session, char *out, size_t size) {
    snprintf(out, size, " group=%s cipher=%s version=%s", group_name(session),
             SSL_CIPHER_standard_name(SSL_get_current_cipher(session)), SSL_get_version(session));
}

static void latency_close(void *session) {
    int fd = SSL_get_fd(session);
    SSL_free(session);
    close(fd);
}

static void latency_serve(int fd, void *context) {
    SSL *ssl = server_ssl(context);
    SSL_set_fd(ssl, fd);
    unsigned char buffer[4096];
    if (SSL_accept(ssl) == 1) {
        for (;;) {
            int n = SSL_read(ssl, buffer, sizeof buffer);
            if (n <= 0 || SSL_write(ssl, buffer, n) != n) break;
        }
    }
    SSL_free(ssl);
}

static int latency(int argc, char **argv) {
    char cert[512], key[512], ca[512];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    bench_latency_ops ops = {client_context(ca, NULL, NULL), server_context(cert, key, NULL, NULL), latency_open,
                             latency_round_trip, latency_describe, latency_close, latency_serve};
    return bench_latency(argc, argv, &ops);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench-c-openssl handshake|resume|bulk|idle|latency [options]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "handshake") == 0) return handshakes(argc, argv);
    if (strcmp(argv[1], "resume") == 0) return resumptions(argc, argv);
    if (strcmp(argv[1], "bulk") == 0) return bulk(argc, argv);
    if (strcmp(argv[1], "idle") == 0) return idle(argc, argv);
    if (strcmp(argv[1], "latency") == 0) return latency(argc, argv);
    fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
}
