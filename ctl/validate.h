/* Validation of what capctl users type, before anything is written: CIDRs (and the network
 * policy's always-refused blocks), ports, durations, counts, host names, domain suffixes, CT
 * log URLs and keys, fingerprints, source names. Pure: no I/O, no database. Every error names
 * the option and the offending value, e.g. `--port "70000": must be 1-65535`. */
#ifndef CAP_CTL_VALIDATE_H
#define CAP_CTL_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Longest host name or domain suffix (RFC 1123), and one label of it. */
#define CAP_CTL_HOSTNAME_MAX 253
#define CAP_CTL_LABEL_MAX 63
/* Room for a normalised CIDR ("ffff:...:ffff/128"), NUL included. */
#define CAP_CTL_CIDR_MAX 64
/* Longest CT log URL, expected-issuer substring, and PEM key file accepted. */
#define CAP_CTL_URL_MAX 2048
#define CAP_CTL_ISSUER_MAX 256
#define CAP_CTL_PEM_MAX 65536
/* Bounds of a source's timeout (ms) and concurrency, as the database checks them. */
#define CAP_CTL_TIMEOUT_MIN_MS 100
#define CAP_CTL_TIMEOUT_MAX_MS 600000
#define CAP_CTL_CONCURRENCY_MAX 100000
/* Bounds of a source's connect rate (connects per second), as the database checks them. */
#define CAP_CTL_CONNECT_RATE_MAX 1000000
/* Room for a normalised STARTTLS override ("65535:postgres"), NUL included, and the most
 * overrides one source keeps (the scanner reads at most this many). */
#define CAP_CTL_STARTTLS_TEXT_MAX 16
#define CAP_CTL_STARTTLS_MAX 64

/* Checks a source name as the database does: a letter or digit, then letters, digits, ".",
 * "_" or "-", 128 at most. */
int cap_ctl_validate_name(const char *name, struct cap_err *err);

/* Parses a range ("10.0.0.0/8", "2001:db8::/32", or a bare address, taken as /32 or /128),
 * writes its normalised text into out (at least CAP_CTL_CIDR_MAX). Fails when it is not an
 * address, the prefix is out of range, host bits are set (`--cidr "10.0.0.1/8": host bits are
 * set; the network is 10.0.0.0/8`), or the range lies wholly inside a block the network policy
 * always refuses (the message gives the policy's reason). opt names the option in messages. */
int cap_ctl_validate_cidr(const char *opt, const char *text, char *out, size_t n,
                          struct cap_err *err);

/* Parses a TCP port 1-65535. */
int cap_ctl_validate_port(const char *opt, const char *text, int *out, struct cap_err *err);

/* Parses a per-host timeout (100ms .. 10m) into milliseconds. */
int cap_ctl_validate_timeout(const char *opt, const char *text, int *out_ms, struct cap_err *err);

/* Parses an integer in min..max. */
int cap_ctl_validate_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
                         struct cap_err *err);

/* Parses a source's connect rate, connects per second 1-CAP_CTL_CONNECT_RATE_MAX, into *out
 * (only on success): `--connect-rate "0": must be 1-1000000 connects per second`. Pure. */
int cap_ctl_validate_connect_rate(const char *opt, const char *text, int *out, struct cap_err *err);

/* Parses a STARTTLS override "PORT:PROTOCOL" as discovery_sources.starttls and the scanner
 * take it: a port 1-65535 and smtp, imap, pop3, ldap, postgres or none (implicit TLS); the
 * protocol in any case. Writes it normalised ("25:smtp": no leading zeros, lower case) into out
 * (at least CAP_CTL_STARTTLS_TEXT_MAX), and only on success. opt names the option in messages:
 * `--starttls "25:ftp": protocol must be smtp, imap, pop3, ldap, postgres or none`. Pure. */
int cap_ctl_validate_starttls(const char *opt, const char *text, char *out, size_t n,
                              struct cap_err *err);

/* Checks a schedule with the scheduler's own parser; its message follows "opt: ". */
int cap_ctl_validate_schedule(const char *opt, const char *text, struct cap_err *err);

/* Checks a host name (RFC 1123 labels, at most 253 bytes) and writes it lower-cased, without a
 * trailing dot, into out (at least CAP_CTL_HOSTNAME_MAX + 1). IP addresses are refused (list
 * them with --cidr); non-ASCII names are refused with a hint to give the A-label (xn--) form. */
int cap_ctl_validate_hostname(const char *opt, const char *text, char *out, size_t n,
                              struct cap_err *err);

/* As cap_ctl_validate_hostname, for a CT domain suffix: also refuses "*." wildcards (the
 * suffix already matches every subdomain) and single labels ("com"). */
int cap_ctl_validate_domain(const char *opt, const char *text, char *out, size_t n,
                            struct cap_err *err);

/* Checks a CT log URL: http or https, a host, no spaces or control bytes, at most
 * CAP_CTL_URL_MAX bytes; a literal IP host inside an always-refused block is refused. */
int cap_ctl_validate_log_url(const char *opt, const char *text, struct cap_err *err);

/* Checks an expected-issuer substring: 1..256 printable bytes. */
int cap_ctl_validate_issuer(const char *opt, const char *text, struct cap_err *err);

/* Checks that pem (len bytes) holds a PEM public key (SubjectPublicKeyInfo) and returns the
 * key re-encoded as PEM text in a malloc'd string (caller frees), or NULL with err naming
 * path. */
char *cap_ctl_validate_log_key(const char *opt, const char *path, const char *pem, size_t len,
                               struct cap_err *err);

/* Checks a SHA-256 fingerprint: 64 hex digits, colons between byte pairs allowed
 * (AB:CD:...); writes it lower-case without colons into out (at least 65 bytes). */
int cap_ctl_validate_fingerprint(const char *text, char *out, size_t n, struct cap_err *err);

/* Splits "host:port", "[v6addr]:port" or "v4addr:port" into host (lower-cased, brackets
 * removed; out at least CAP_CTL_HOSTNAME_MAX + 1) and port. */
int cap_ctl_validate_host_port(const char *text, char *host, size_t n, int *port,
                               struct cap_err *err);

#endif
