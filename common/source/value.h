/* Checks and normal forms of the values a source's fields hold, as people type them: ranges,
 * ports, integers, durations, host names, domain suffixes, log URLs, free text and PEM public
 * keys. Pure: no I/O, no database. The source descriptors (common/source/) point their fields
 * at these; capctl runs them on every value before anything is written. Every error names the
 * option and the offending value, e.g. `--port "70000": must be 1-65535`. */
#ifndef CAP_SOURCE_VALUE_H
#define CAP_SOURCE_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Longest host name or domain suffix (RFC 1123), and one label of it. */
#define CAP_VALUE_HOSTNAME_MAX 253
#define CAP_VALUE_LABEL_MAX 63
/* Room for a normalised CIDR ("ffff:...:ffff/128"), NUL included. */
#define CAP_VALUE_CIDR_MAX 64
/* Longest URL accepted. */
#define CAP_VALUE_URL_MAX 2048
/* Largest PEM text accepted. */
#define CAP_VALUE_PEM_MAX 65536

/* Parses a range ("10.0.0.0/8", "2001:db8::/32", or a bare address, taken as /32 or /128),
 * writes its normalised text into out (at least CAP_VALUE_CIDR_MAX). Fails when it is not an
 * address, the prefix is out of range, host bits are set (`--cidr "10.0.0.1/8": host bits are
 * set; the network is 10.0.0.0/8`), or the range lies wholly inside a block the network policy
 * always refuses (the message gives the policy's reason). opt names the option in messages. */
int cap_value_cidr(const char *opt, const char *text, char *out, size_t n, struct cap_err *err);

/* Parses a TCP port 1-65535 into *out (only on success). */
int cap_value_port(const char *opt, const char *text, int *out, struct cap_err *err);

/* Parses a decimal integer in min..max into *out (only on success):
 * `--concurrency "0": must be an integer 1-100000`. */
int cap_value_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
                  struct cap_err *err);

/* Parses a duration ("500ms", "5s", "10m") in min_ms..max_ms into *out_ms (only on success):
 * `--timeout "50ms": must be between 100ms and 10m` (the bounds as given in range_text). */
int cap_value_duration_ms(const char *opt, const char *text, int64_t min_ms, int64_t max_ms,
                          const char *range_text, int64_t *out_ms, struct cap_err *err);

/* Checks a host name (RFC 1123 labels, at most 253 bytes) and writes it lower-cased, without a
 * trailing dot, into out (at least CAP_VALUE_HOSTNAME_MAX + 1). IP addresses are refused (list
 * them with --cidr); U-labels are written in their A-label (xn--) form (IDNA2008, UTS #46). */
int cap_value_hostname(const char *opt, const char *text, char *out, size_t n, struct cap_err *err);

/* As cap_value_hostname, for a domain suffix: also refuses "*." wildcards (the suffix already
 * matches every subdomain) and single labels ("com"). */
int cap_value_domain(const char *opt, const char *text, char *out, size_t n, struct cap_err *err);

/* Checks a URL to fetch from: http or https, a host, no credentials, no spaces or control
 * bytes, at most CAP_VALUE_URL_MAX bytes; a literal IP host inside an always-refused block is
 * refused. */
int cap_value_url(const char *opt, const char *text, struct cap_err *err);

/* Checks a piece of free text: 1..max bytes, no control characters. */
int cap_value_text(const char *opt, const char *text, size_t max, struct cap_err *err);

/* Checks that pem (len bytes, read from the file path) holds a PEM public key
 * (SubjectPublicKeyInfo) and returns it re-encoded as PEM text in a malloc'd string (caller
 * frees), or NULL with err naming path. */
char *cap_value_pem_pubkey(const char *opt, const char *path, const char *pem, size_t len,
                           struct cap_err *err);

#endif
