/* Process-wide OpenSSL set-up shared by every binary.
 *
 * OpenSSL 3.0 decodes the public key of every certificate it parses (d2i_X509, a server's
 * Certificate message, a CT entry) through a decoder context built anew each time: the key
 * managers and decoders of every provider are enumerated per key, some 80 us of CPU per
 * certificate, more than a TLS 1.3 handshake's X25519 exchange. OpenSSL 3.1 and later cache
 * those contexts. On 3.0 only, cap_ossl_init registers an ENGINE that claims the classical
 * certificate key types (RSA, RSA-PSS, EC, DSA) and hands out OpenSSL's own
 * built-in methods for them: libcrypto then decodes those keys with its direct (pre-provider)
 * code path and signs/verifies with the same built-in implementations. Keys of any other type,
 * and keys the direct path rejects, still go to the provider decoders, so what loads and what
 * does not is unchanged (tests/unit/test_ossl.c compares the facts of a corpus both ways).
 * Not done when the process runs in FIPS mode (the built-in methods are outside the FIPS
 * provider) nor when OpenSSL is built without engines. */
#ifndef CAP_OSSL_H
#define CAP_OSSL_H

#include <stdbool.h>

/* Applies the set-up once per process (thread-safe, idempotent; later calls do nothing).
 * Returns true when the direct key decoding is active. */
bool cap_ossl_init(void);

/* Whether the direct key decoding is active, and why not when it is not ("" when active):
 * "OpenSSL 3.1 or later", "FIPS mode", "no engine support", "not initialised",
 * "registration failed". Static strings. */
bool cap_ossl_direct_keys(const char **why_not);

#endif
