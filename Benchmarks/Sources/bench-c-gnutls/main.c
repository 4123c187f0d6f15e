/* bench-c-gnutls: the benchmark scenarios written directly over libgnutls, doing the
 * same work TLSKit's GnuTLS backend does (same priority string, chain, purpose and
 * host-name verification, SNI), without TLSKit: the physical limit for that backend.
 * Over TCP it uses GnuTLS's own socket I/O (gnutls_transport_set_int).
 *
 *   bench-c-gnutls handshake --transport memory|tcp --key ecdsa|rsa --count N --certs DIR [--groups x25519]
 *   bench-c-gnutls resume    --count N --certs DIR [--groups x25519]
 *   bench-c-gnutls bulk      --transport memory|tcp --mib M --certs DIR [--cipher aes128]
 *   bench-c-gnutls latency   --count N --connections K --certs DIR
 *   bench-c-gnutls idle      --count N --certs DIR
 *
 * Prints one line: result=<value> unit=<unit> and what was negotiated. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>

#include "benchcommon.h"

#define CHUNK 16384
#define MAX_STEPS 100000
#define CAPACITY (64 * 1024)

static void die(const char *what, int code) {
    fprintf(stderr, "bench-c-gnutls: %s: %s\n", what, code ? gnutls_strerror(code) : "");
    exit(1);
}

static void check(int result, const char *what) {
    if (result < 0) die(what, result);
}

static const char *arg(int argc, char **argv, const char *name, const char *fallback) {
    return bench_arg(argc, argv, name, fallback);
}

/* ---- the in-memory transport: what TLSMemoryPair is to TLSKit ------------------ */

typedef struct {
    unsigned char *data;
    size_t head, length, capacity;
} queue_t;

static void queue_append(queue_t *q, const void *bytes, size_t n) {
    if (q->head > 0 && q->head == q->length) q->head = q->length = 0;
    if (q->length + n > q->capacity) {
        size_t capacity = q->capacity ? q->capacity : 4096;
        while (capacity < q->length + n) capacity *= 2;
        q->data = realloc(q->data, capacity);
        if (!q->data) die("out of memory", 0);
        q->capacity = capacity;
    }
    memcpy(q->data + q->length, bytes, n);
    q->length += n;
}

typedef struct {
    gnutls_session_t session;
    queue_t incoming, outgoing;
    int fd;
} end_t;

static ssize_t push(gnutls_transport_ptr_t pointer, const void *bytes, size_t n) {
    end_t *end = pointer;
    size_t pending = end->outgoing.length - end->outgoing.head;
    if (pending >= CAPACITY) {
        gnutls_transport_set_errno(end->session, EAGAIN);
        return -1;
    }
    size_t room = CAPACITY - pending;
    if (n > room) n = room;
    queue_append(&end->outgoing, bytes, n);
    return (ssize_t)n;
}

static ssize_t pull(gnutls_transport_ptr_t pointer, void *buffer, size_t n) {
    end_t *end = pointer;
    size_t available = end->incoming.length - end->incoming.head;
    if (available == 0) {
        gnutls_transport_set_errno(end->session, EAGAIN);
        return -1;
    }
    if (n > available) n = available;
    memcpy(buffer, end->incoming.data + end->incoming.head, n);
    end->incoming.head += n;
    return (ssize_t)n;
}

static int pull_timeout(gnutls_transport_ptr_t pointer, unsigned int ms) {
    (void)pointer;
    (void)ms;
    return 1;
}

static void move_bytes(end_t *from, end_t *to) {
    queue_t *q = &from->outgoing;
    if (q->length > q->head) queue_append(&to->incoming, q->data + q->head, q->length - q->head);
    q->head = q->length = 0;
}

static void exchange(end_t *a, end_t *b) {
    move_bytes(a, b);
    move_bytes(b, a);
}

/* ---- contexts and sessions as TLSKit's GnuTLS backend builds them ---------------- */

typedef struct {
    gnutls_certificate_credentials_t credentials;
    gnutls_priority_t priorities;
    /* Server: the ticket master key. TLSKit enables tickets by default
     * (sessionTicketsEnabled) with a random key per context: the same here. */
    gnutls_datum_t ticket_key;
} context_t;

/* The priority string TLSKit's GnuTLS backend builds (GnuTLSContextEngine.priorityString):
 * its default group order is OpenSSL's (x25519 first). */
static gnutls_priority_t priorities(const char *groups, const char *cipher) {
    char text[1024] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
    if (cipher && strcmp(cipher, "aes128") == 0) strcat(text, ":-CIPHER-ALL:+AES-128-GCM");
    if (groups && strcmp(groups, "x25519") == 0) {
        strcat(text, ":-GROUP-ALL:+GROUP-X25519");
    } else {
        strcat(text, ":-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-X448:+GROUP-SECP521R1:+GROUP-SECP384R1"
                     ":+GROUP-FFDHE2048:+GROUP-FFDHE3072:+GROUP-FFDHE4096:+GROUP-FFDHE6144:+GROUP-FFDHE8192");
    }
    strcat(text, ":%SAFE_RENEGOTIATION:%PROFILE_MEDIUM");
    gnutls_priority_t result;
    check(gnutls_priority_init2(&result, text, NULL, 0), "gnutls_priority_init2");
    return result;
}

static context_t client_context(const char *ca, const char *groups, const char *cipher) {
    context_t context = {0};
    check(gnutls_certificate_allocate_credentials(&context.credentials), "credentials");
    if (gnutls_certificate_set_x509_trust_file(context.credentials, ca, GNUTLS_X509_FMT_PEM) <= 0) die("CA file", 0);
    context.priorities = priorities(groups, cipher);
    return context;
}

static context_t server_context(const char *cert, const char *key, const char *groups, const char *cipher) {
    context_t context = {0};
    check(gnutls_certificate_allocate_credentials(&context.credentials), "credentials");
    check(gnutls_session_ticket_key_generate(&context.ticket_key), "ticket key");
    check(gnutls_certificate_set_x509_key_file(context.credentials, cert, key, GNUTLS_X509_FMT_PEM), "key file");
    context.priorities = priorities(groups, cipher);
    return context;
}

static gnutls_typed_vdata_st verify_data[2];

static void make_session(end_t *end, context_t *context, int server, int fd) {
    memset(end, 0, sizeof *end);
    end->fd = fd;
    check(gnutls_init(&end->session, server ? GNUTLS_SERVER : GNUTLS_CLIENT), "gnutls_init");
    gnutls_session_t s = end->session;
    check(gnutls_priority_set(s, context->priorities), "gnutls_priority_set");
    check(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, context->credentials), "gnutls_credentials_set");
    if (fd >= 0) {
        gnutls_transport_set_int(s, fd);
    } else {
        gnutls_transport_set_ptr(s, end);
        gnutls_transport_set_push_function(s, push);
        gnutls_transport_set_pull_function(s, pull);
        gnutls_transport_set_pull_timeout_function(s, pull_timeout);
    }
    gnutls_handshake_set_timeout(s, 0);
    if (server) {
        gnutls_certificate_send_x509_rdn_sequence(s, 1);
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
        check(gnutls_session_ticket_enable_server(s, &context->ticket_key), "enable tickets");
    } else {
        check(gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", 9), "gnutls_server_name_set");
        verify_data[0] = (gnutls_typed_vdata_st){GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER, 0};
        verify_data[1] = (gnutls_typed_vdata_st){GNUTLS_DT_DNS_HOSTNAME, (unsigned char *)"localhost", 0};
        gnutls_session_set_verify_cert2(s, verify_data, 2, 0);
    }
}

static void free_end(end_t *end) {
    gnutls_deinit(end->session);
    free(end->incoming.data);
    free(end->outgoing.data);
}

static int step_ok(int result) {
    if (result == GNUTLS_E_SUCCESS) return 1;
    if (result == GNUTLS_E_AGAIN || result == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(result)) return 0;
    die("handshake failed", result);
    return 0;
}

static void handshake_pair(end_t *client, end_t *server, int memory) {
    int client_done = 0, server_done = 0;
    for (int step = 0; step < MAX_STEPS; step++) {
        if (!client_done) client_done = step_ok(gnutls_handshake(client->session));
        if (memory) exchange(client, server);
        if (!server_done) server_done = step_ok(gnutls_handshake(server->session));
        if (memory) exchange(client, server);
        if (client_done && server_done) return;
    }
    die("handshake did not finish", 0);
}

static void make_pair(context_t *cctx, context_t *sctx, int memory, int listener, int port, end_t *client,
                      end_t *server) {
    int c = -1, s = -1;
    if (!memory && bench_tcp_pair(listener, port, &c, &s) != 0) die("loopback connection", 0);
    make_session(client, cctx, 0, c);
    make_session(server, sctx, 1, s);
}

static void close_pair(end_t *client, end_t *server) {
    int c = client->fd, s = server->fd;
    free_end(client);
    free_end(server);
    if (c >= 0) bench_close(c);
    if (s >= 0) bench_close(s);
}

static void negotiated(gnutls_session_t s, char *out, size_t size) {
    const char *group = gnutls_group_get_name(gnutls_group_get(s));
    snprintf(out, size, " group=%s cipher=%s version=%s", group ? group : "unknown", gnutls_ciphersuite_get(s),
             gnutls_protocol_get_name(gnutls_protocol_get_version(s)));
}

static void certificate_paths(int argc, char **argv, char *cert, char *key, char *ca, size_t size) {
    const char *dir = arg(argc, argv, "certs", "certs");
    const char *kind = arg(argc, argv, "key", "ecdsa");
    snprintf(cert, size, "%s/%s.crt", dir, kind);
    snprintf(key, size, "%s/%s.key", dir, kind);
    snprintf(ca, size, "%s/%s-ca.crt", dir, kind);
}

static int handshakes(int argc, char **argv) {
    char cert[512], key[512], ca[512], info[256];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    const char *groups = arg(argc, argv, "groups", NULL);
    int memory = strcmp(arg(argc, argv, "transport", "memory"), "memory") == 0;
    long count = bench_arg_long(argc, argv, "count", 1000);
    context_t cctx = client_context(ca, groups, NULL), sctx = server_context(cert, key, groups, NULL);
    int port = 0, listener = memory ? -1 : bench_listen(&port);
    if (!memory && listener < 0) die("listen", 0);
    end_t client, server;
    long warmup = count / 10 + 1;
    for (long i = 0; i < warmup; i++) {
        make_pair(&cctx, &sctx, memory, listener, port, &client, &server);
        handshake_pair(&client, &server, memory);
        if (i + 1 == warmup) negotiated(client.session, info, sizeof info);
        close_pair(&client, &server);
    }
    double allocs0 = bench_alloc_count();
    double start = bench_now();
    for (long i = 0; i < count; i++) {
        make_pair(&cctx, &sctx, memory, listener, port, &client, &server);
        handshake_pair(&client, &server, memory);
        close_pair(&client, &server);
    }
    double elapsed = bench_now() - start;
    double allocs1 = bench_alloc_count();
    printf("result=%.1f unit=handshakes/s%s", (double)count / elapsed, info);
    if (allocs0 >= 0) printf(" allocs_per_op=%.1f", (allocs1 - allocs0) / (double)count);
    printf("\n");
    if (listener >= 0) bench_close(listener);
    return 0;
}

/* Resumption with a TLS 1.3 ticket, in memory: one full handshake, the client reads
 * the server's NewSessionTicket, then every handshake offers that session. */
static int resumptions(int argc, char **argv) {
    char cert[512], key[512], ca[512], info[256];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    const char *groups = arg(argc, argv, "groups", NULL);
    long count = bench_arg_long(argc, argv, "count", 1000);
    context_t cctx = client_context(ca, groups, NULL), sctx = server_context(cert, key, groups, NULL);
    end_t client, server;
    make_pair(&cctx, &sctx, 1, -1, 0, &client, &server);
    handshake_pair(&client, &server, 1);
    exchange(&client, &server);
    char byte;
    ssize_t got = gnutls_record_recv(client.session, &byte, 1);
    if (got != GNUTLS_E_AGAIN) die("ticket read", (int)got);
    gnutls_datum_t data;
    check(gnutls_session_get_data2(client.session, &data), "gnutls_session_get_data2");
    close_pair(&client, &server);

    long resumed = 0;
    double allocs0 = bench_alloc_count();
    double start = bench_now();
    for (long i = 0; i < count; i++) {
        make_pair(&cctx, &sctx, 1, -1, 0, &client, &server);
        check(gnutls_session_set_data(client.session, data.data, data.size), "gnutls_session_set_data");
        handshake_pair(&client, &server, 1);
        resumed += gnutls_session_is_resumed(client.session) != 0;
        if (i + 1 == count) negotiated(client.session, info, sizeof info);
        close_pair(&client, &server);
    }
    double elapsed = bench_now() - start;
    double allocs1 = bench_alloc_count();
    if (resumed != count) {
        fprintf(stderr, "resumed %ld of %ld\n", resumed, count);
        die("a handshake was not resumed", 0);
    }
    printf("result=%.1f unit=handshakes/s%s", (double)count / elapsed, info);
    if (allocs0 >= 0) printf(" allocs_per_op=%.1f", (allocs1 - allocs0) / (double)count);
    printf(" resumed=%ld\n", resumed);
    gnutls_free(data.data);
    return 0;
}

static int bulk(int argc, char **argv) {
    char cert[512], key[512], ca[512], info[256];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    const char *cipher = arg(argc, argv, "cipher", NULL);
    int memory = strcmp(arg(argc, argv, "transport", "memory"), "memory") == 0;
    long mib = bench_arg_long(argc, argv, "mib", 256);
    context_t cctx = client_context(ca, NULL, cipher), sctx = server_context(cert, key, NULL, cipher);
    int port = 0, listener = memory ? -1 : bench_listen(&port);
    end_t client, server;
    make_pair(&cctx, &sctx, memory, listener, port, &client, &server);
    handshake_pair(&client, &server, memory);
    negotiated(client.session, info, sizeof info);

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
            if (step > MAX_STEPS) die("write stalled", 0);
            ssize_t written = gnutls_record_send(client.session, step ? NULL : out, step ? 0 : CHUNK);
            if (written == CHUNK) break;
            if (written >= 0) die("partial write", 0);
            if (written != GNUTLS_E_AGAIN && written != GNUTLS_E_INTERRUPTED) die("write failed", (int)written);
            if (memory) exchange(&client, &server);
            for (int r = 0; r < 64; r++) {
                ssize_t n = gnutls_record_recv(server.session, in, sizeof in);
                if (n <= 0) break;
                received += n;
            }
        }
        if (memory) exchange(&client, &server);
        for (int r = 0; r < 64; r++) {
            ssize_t n = gnutls_record_recv(server.session, in, sizeof in);
            if (n <= 0) {
                if (n != GNUTLS_E_AGAIN) die("read failed", (int)n);
                break;
            }
            received += n;
        }
    }
    for (int step = 0; received < wanted && step < MAX_STEPS; step++) {
        if (memory) exchange(&client, &server);
        ssize_t n = gnutls_record_recv(server.session, in, sizeof in);
        if (n > 0) received += n;
    }
    double elapsed = bench_now() - start;
    double allocs1 = bench_alloc_count();
    if (received != wanted) die("bytes lost", 0);
    printf("result=%.1f unit=MB/s%s", (double)chunks * CHUNK / 1e6 / elapsed, info);
    if (allocs0 >= 0) printf(" allocs_per_op=%.2f", (allocs1 - allocs0) / (double)chunks);
    printf("\n");
    close_pair(&client, &server);
    return 0;
}

static int idle(int argc, char **argv) {
    char cert[512], key[512], ca[512];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    long count = bench_arg_long(argc, argv, "count", 1000);
    bench_raise_nofile();
    context_t cctx = client_context(ca, NULL, NULL), sctx = server_context(cert, key, NULL, NULL);
    int port = 0, listener = bench_listen(&port);
    end_t *clients = calloc((size_t)count, sizeof(end_t)), *servers = calloc((size_t)count, sizeof(end_t));
    for (int i = 0; i < 8; i++) {
        end_t c, s;
        make_pair(&cctx, &sctx, 0, listener, port, &c, &s);
        handshake_pair(&c, &s, 0);
        close_pair(&c, &s);
    }
    long rss0 = bench_rss_bytes(), heap0 = bench_heap_bytes();
    for (long i = 0; i < count; i++) {
        make_pair(&cctx, &sctx, 0, listener, port, &clients[i], &servers[i]);
        handshake_pair(&clients[i], &servers[i], 0);
    }
    long rss1 = bench_rss_bytes(), heap1 = bench_heap_bytes();
    printf("result=%.0f unit=bytes/connection heap_per_connection=%.0f connections=%ld\n",
           (double)(rss1 - rss0) / (2.0 * count), (double)(heap1 - heap0) / (2.0 * count), 2 * count);
    for (long i = 0; i < count; i++) close_pair(&clients[i], &servers[i]);
    return 0;
}

/* ---- latency (BenchCommon's skeleton): blocking sockets, the defaults a C program has */

static void *latency_open(int fd, void *context) {
    end_t *end = malloc(sizeof *end);
    make_session(end, context, 0, fd);
    int result;
    do {
        result = gnutls_handshake(end->session);
    } while (result < 0 && !gnutls_error_is_fatal(result));
    if (result < 0) die("handshake failed", result);
    return end;
}

static double latency_round_trip(void *session) {
    gnutls_session_t s = ((end_t *)session)->session;
    static unsigned char message[32], reply[64];
    memset(message, 0x61, sizeof message);
    double start = bench_now();
    if (gnutls_record_send(s, message, sizeof message) != (ssize_t)sizeof message) die("send", 0);
    for (size_t got = 0; got < sizeof message;) {
        ssize_t n = gnutls_record_recv(s, reply, sizeof reply);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) continue;
        if (n <= 0) die("recv", (int)n);
        got += (size_t)n;
    }
    return bench_now() - start;
}

static void latency_describe(void *session, char *out, size_t size) {
    negotiated(((end_t *)session)->session, out, size);
}

static void latency_close(void *session) {
    end_t *end = session;
    int fd = end->fd;
    free_end(end);
    free(end);
    close(fd);
}

static void latency_serve(int fd, void *context) {
    end_t server;
    make_session(&server, context, 1, fd);
    int result;
    do {
        result = gnutls_handshake(server.session);
    } while (result < 0 && !gnutls_error_is_fatal(result));
    unsigned char buffer[4096];
    while (result >= 0) {
        ssize_t n = gnutls_record_recv(server.session, buffer, sizeof buffer);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) continue;
        if (n <= 0 || gnutls_record_send(server.session, buffer, (size_t)n) != n) break;
    }
    free_end(&server);
}

static int latency(int argc, char **argv) {
    char cert[512], key[512], ca[512];
    certificate_paths(argc, argv, cert, key, ca, sizeof cert);
    context_t cctx = client_context(ca, NULL, NULL), sctx = server_context(cert, key, NULL, NULL);
    bench_latency_ops ops = {&cctx, &sctx, latency_open, latency_round_trip, latency_describe, latency_close,
                             latency_serve};
    return bench_latency(argc, argv, &ops);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench-c-gnutls handshake|resume|bulk|idle|latency [options]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    check(gnutls_global_init(), "gnutls_global_init");
    if (strcmp(argv[1], "handshake") == 0) return handshakes(argc, argv);
    if (strcmp(argv[1], "resume") == 0) return resumptions(argc, argv);
    if (strcmp(argv[1], "bulk") == 0) return bulk(argc, argv);
    if (strcmp(argv[1], "idle") == 0) return idle(argc, argv);
    if (strcmp(argv[1], "latency") == 0) return latency(argc, argv);
    fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
}
