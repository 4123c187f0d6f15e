#ifndef TLSKIT_CGNUTLS_SHIM_H
#define TLSKIT_CGNUTLS_SHIM_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/pkcs12.h>
#include <gnutls/ocsp.h>

/* Wrappers for what Swift cannot import: function-like macros, string macros used as
 * `const void *`, and `gnutls_free`, which is both a global variable and a macro. */

static inline void tlskit_gnutls_free(void *pointer) {
    gnutls_free(pointer);
}

/* `bits` argument of gnutls_x509_privkey_generate for ECDSA P-256. */
static inline unsigned int tlskit_gnutls_curve_bits_secp256r1(void) {
    return GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1);
}

/* `gnutls_malloc` is a global function pointer: memory GnuTLS will free itself (the
 * OCSP response handed to it by the status-request callback). */
static inline void *tlskit_gnutls_malloc(size_t size) {
    return gnutls_malloc(size);
}

static inline const char *tlskit_gnutls_oid_common_name(void) {
    return GNUTLS_OID_X520_COMMON_NAME;
}

static inline const char *tlskit_gnutls_kp_tls_www_server(void) {
    return GNUTLS_KP_TLS_WWW_SERVER;
}

static inline const char *tlskit_gnutls_kp_tls_www_client(void) {
    return GNUTLS_KP_TLS_WWW_CLIENT;
}

#endif
