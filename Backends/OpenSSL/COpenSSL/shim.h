/* COpenSSL: the parts of libssl/libcrypto TLSKit uses, with `static inline` wrappers
 * for the macros Swift cannot import. Nothing here adds behaviour. */
#ifndef TLSKIT_COPENSSL_SHIM_H
#define TLSKIT_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <openssl/pkcs12.h>
#include <openssl/ocsp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <string.h>

static inline long tlskit_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_min_proto_version(ctx, version);
}
static inline long tlskit_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_set_max_proto_version(ctx, version);
}
static inline long tlskit_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}
static inline long tlskit_SSL_CTX_add1_chain_cert(SSL_CTX *ctx, X509 *cert) {
    return SSL_CTX_add1_chain_cert(ctx, cert);
}
static inline long tlskit_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}
static inline long tlskit_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}

static inline void tlskit_BIO_set_retry_read(BIO *bio) { BIO_set_retry_read(bio); }
static inline void tlskit_BIO_set_retry_write(BIO *bio) { BIO_set_retry_write(bio); }
static inline void tlskit_BIO_clear_retry_flags(BIO *bio) { BIO_clear_retry_flags(bio); }

static inline int tlskit_ERR_GET_LIB(unsigned long e) { return ERR_GET_LIB(e); }
static inline int tlskit_ERR_GET_REASON(unsigned long e) { return ERR_GET_REASON(e); }

static inline uint64_t tlskit_SSL_OP_NO_COMPRESSION(void) { return SSL_OP_NO_COMPRESSION; }
static inline uint64_t tlskit_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }

/* EVP_EC_gen is a macro over the variadic EVP_PKEY_Q_keygen. */
static inline EVP_PKEY *tlskit_EVP_EC_gen(const char *curve) { return EVP_EC_gen(curve); }

static inline void tlskit_OPENSSL_free(void *p) { OPENSSL_free(p); }

static inline int tlskit_sk_X509_num(const STACK_OF(X509) *sk) { return sk_X509_num(sk); }
static inline X509 *tlskit_sk_X509_value(const STACK_OF(X509) *sk, int i) { return sk_X509_value(sk, i); }

static inline const char *tlskit_OpenSSL_version_text(void) { return OpenSSL_version(OPENSSL_VERSION); }

/* Adds a subjectAltName / other v3 extension given in config syntax
 * ("DNS:example.com,IP:127.0.0.1"). Returns 1 on success. */
static inline int tlskit_X509_add_ext_text(X509 *cert, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) return 0;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static inline int tlskit_sk_GENERAL_NAME_num(const GENERAL_NAMES *names) { return sk_GENERAL_NAME_num(names); }
static inline GENERAL_NAME *tlskit_sk_GENERAL_NAME_value(const GENERAL_NAMES *names, int i) { return sk_GENERAL_NAME_value(names, i); }
static inline void tlskit_GENERAL_NAMES_free(GENERAL_NAMES *names) { GENERAL_NAMES_free(names); }

/* The type and raw bytes of a GENERAL_NAME when it is GEN_DNS (IA5String) or GEN_IPADD
 * (OCTET STRING); -1 for other types. */
static inline int tlskit_general_name(const GENERAL_NAME *name, const unsigned char **data, int *length) {
    if (name->type == GEN_DNS || name->type == GEN_IPADD) {
        const ASN1_STRING *string = name->type == GEN_DNS ? name->d.dNSName : name->d.iPAddress;
        *data = ASN1_STRING_get0_data(string);
        *length = ASN1_STRING_length(string);
        return name->type;
    }
    return -1;
}

/* RFC 2253 name printing flags (a macro of ORed macros), UTF-8 kept as is. */
static inline unsigned long tlskit_XN_FLAG_RFC2253_UTF8(void) { return XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB; }

/* SNI: the servername callback setters are macros over SSL_CTX_callback_ctrl/ctrl. */
static inline long tlskit_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx, int (*cb)(SSL *, int *, void *)) {
    return SSL_CTX_set_tlsext_servername_callback(ctx, cb);
}
static inline long tlskit_SSL_CTX_set_tlsext_servername_arg(SSL_CTX *ctx, void *arg) {
    return SSL_CTX_set_tlsext_servername_arg(ctx, arg);
}

/* Encrypted keys: the passphrase callback. `userdata` is a NUL-terminated passphrase or
 * NULL; NULL means "no passphrase": fail instead of prompting on the terminal. */
static inline int tlskit_pem_passphrase(char *buffer, int size, int rwflag, void *userdata) {
    (void)rwflag;
    if (userdata == NULL) return 0;
    const char *passphrase = (const char *)userdata;
    int length = (int)strlen(passphrase);
    if (length > size) length = size;
    memcpy(buffer, passphrase, (size_t)length);
    return length;
}

static inline void tlskit_sk_X509_pop_free(STACK_OF(X509) *sk) { sk_X509_pop_free(sk, X509_free); }

static inline long tlskit_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) { return SSL_CTX_set1_groups_list(ctx, list); }
static inline int tlskit_SSL_get_negotiated_group(SSL *ssl) { return (int)SSL_get_negotiated_group(ssl); }
static inline uint64_t tlskit_SSL_OP_NO_TICKET(void) { return SSL_OP_NO_TICKET; }

/* OCSP stapling macros. */
static inline long tlskit_SSL_set_tlsext_status_type(SSL *ssl, int type) { return SSL_set_tlsext_status_type(ssl, type); }
/* SSL_set_retry_verify is a macro over SSL_ctrl (OpenSSL 3.0+). */
static inline int tlskit_SSL_set_retry_verify(SSL *ssl) { return SSL_set_retry_verify(ssl); }
static inline long tlskit_SSL_CTX_set_tlsext_status_cb(SSL_CTX *ctx, int (*cb)(SSL *, void *)) { return SSL_CTX_set_tlsext_status_cb(ctx, cb); }
static inline long tlskit_SSL_CTX_set_tlsext_status_arg(SSL_CTX *ctx, void *arg) { return SSL_CTX_set_tlsext_status_arg(ctx, arg); }
static inline long tlskit_SSL_get_tlsext_status_ocsp_resp(SSL *ssl, const unsigned char **resp) {
    unsigned char *p = NULL;
    long length = SSL_get_tlsext_status_ocsp_resp(ssl, &p);
    *resp = p;
    return length;
}
/* Hands OpenSSL a copy of the response (it frees it). */
static inline int tlskit_SSL_set_tlsext_status_ocsp_resp_copy(SSL *ssl, const unsigned char *der, long length) {
    unsigned char *copy = OPENSSL_malloc((size_t)length);
    if (copy == NULL) return 0;
    memcpy(copy, der, (size_t)length);
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, length) != 1) { OPENSSL_free(copy); return 0; }
    return 1;
}

/* Session tickets: HMAC-SHA256 key for the ticket callback. */
static inline int tlskit_ticket_mac_init(EVP_MAC_CTX *mac, const unsigned char *key) {
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(mac, params);
}

static inline int tlskit_sk_SSL_CIPHER_num(const STACK_OF(SSL_CIPHER) *sk) { return sk_SSL_CIPHER_num(sk); }
static inline const SSL_CIPHER *tlskit_sk_SSL_CIPHER_value(const STACK_OF(SSL_CIPHER) *sk, int i) { return sk_SSL_CIPHER_value(sk, i); }

/* SSL_get_ex_new_index is a function-like macro: one ex_data slot for TLSKit's engine pointer. */
static inline int tlskit_SSL_get_ex_new_index(void) { return SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

#endif
