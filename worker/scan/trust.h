/* The trust store the network scan verifies chains against: the system CA bundle read once
 * into memory (not a directory lookup per certificate), shared read-only by every job of the
 * worker, read again after a SIGHUP or when the file changes. */
#ifndef CAP_SCAN_TRUST_H
#define CAP_SCAN_TRUST_H

#include <openssl/x509.h>
#include <stdbool.h>

/* Where the bundle is: $SSL_CERT_FILE, else OpenSSL's default file (on Debian
 * /usr/lib/ssl/cert.pem, a link to /etc/ssl/certs/ca-certificates.crt). */
const char *cap_trust_bundle_path(void);

/* Loads the bundle. Returns true when it holds at least one certificate; false (logged) when
 * it cannot be read: untrusted is then not checked until a reload succeeds. Call once at
 * start, before any job. Blocks on the file read. */
bool cap_trust_init(void);

/* The current store, with a reference the caller drops with X509_STORE_free, or NULL when none
 * is loaded. At most once a second it looks at the file (stat) and after a SIGHUP it reads it
 * again; a bundle that fails to load keeps the previous store. Thread-safe; may block on the
 * file read when it changed. */
X509_STORE *cap_trust_get(void);

/* cap_trust_get, and the generation of the store it returns (for cap_trust_verify_cached). */
X509_STORE *cap_trust_get_gen(unsigned *gen);

/* Bundle loads so far (1 after cap_trust_init, +1 per reload), for tests and logs. */
unsigned cap_trust_generation(void);

/* Verifies chain (leaf first, as sent) against store for a TLS server. Returns 0 when it
 * verifies, else the X509_V_ERR code with *text its description; -1 when it could not run
 * (no store, empty chain, out of memory). Pure apart from OpenSSL's own state. */
int cap_trust_verify(X509_STORE *store, STACK_OF(X509) * chain, const char **text);

/* cap_trust_verify, with the result kept for the worker's later runs: a re-scan finds the same
 * chains, and verifying each again costs a signature check per certificate. key is the chain's
 * SHA-256 (leaf first, as sent), gen the generation of store (cap_trust_get_gen). A result
 * is reused only for the same store generation and while no certificate of the chain changes
 * validity (up to its earliest notAfter, or a notBefore still to come), and for a day at most.
 * *verified (may be NULL) is set when OpenSSL verified it now (not kept). Thread-safe. */
int cap_trust_verify_cached(X509_STORE *store, unsigned gen, const unsigned char key[32],
                            STACK_OF(X509) * chain, const char **text, bool *verified);

/* Drops the store and the kept results. */
void cap_trust_cleanup(void);

#endif
