/* Outbound network policy: which addresses discovery may connect to. Every address is checked
 * after DNS resolution (IPv4-mapped IPv6 unmapped first) before any connect, by the scanner, the
 * CT client, revocation checks and capctl's save-time checks. */
#ifndef CAP_POLICY_H
#define CAP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/config.h"
#include "common/err.h"

/* Longest CIDR text ("ffff:...:ffff/128" and IPv4-mapped forms), NUL included. */
#define CAP_CIDR_TEXT_MAX 64
/* Room for a refusal reason; reasons are cut to fit, never overflow. */
#define CAP_POLICY_REASON_MAX 160

/* An address block. IPv4 blocks keep their 4 bytes in addr[0..3]. An IPv4-mapped IPv6 block
 * (::ffff:a.b.c.d/n with n >= 96) is stored as the IPv4 block it maps. */
struct cap_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix; /* 0..32 or 0..128 */
};

/* One refused block with the reason shown to users. */
struct cap_policy_rule {
    struct cap_cidr block;
    char reason[CAP_POLICY_REASON_MAX];
};

/* The policy of one process: the always-refused blocks, network.deny, loopback switch.
 * Immutable after cap_policy_init, so threads may share it without locks. */
struct cap_policy {
    struct cap_policy_rule *deny; /* network.deny, malloc'd */
    size_t deny_n;
    bool allow_loopback;
};

enum cap_policy_verdict { CAP_POLICY_ALLOWED = 0, CAP_POLICY_REFUSED = 1 };

/* Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128 block). Host bits
 * under the prefix must be zero (as PostgreSQL's cidr type requires). IPv4-mapped IPv6 blocks
 * of prefix >= 96 become IPv4 blocks. Returns 0, or -1 with err naming the value. Pure. */
int cap_policy_parse_cidr(const char *text, struct cap_cidr *out, struct cap_err *err);

/* Writes the block as text ("10.0.0.0/8") into out (at least CAP_CIDR_TEXT_MAX). Returns out. */
const char *cap_policy_cidr_str(const struct cap_cidr *c, char *out, size_t n);

/* True when block inner lies wholly inside block outer (same family). */
bool cap_policy_cidr_contains(const struct cap_cidr *outer, const struct cap_cidr *inner);

/* Builds the policy from cfg->network_deny and cfg->network_allow_loopback. A bad deny entry
 * fails with err naming it. On success release with cap_policy_cleanup; on failure p holds
 * nothing to free. */
int cap_policy_init(struct cap_policy *p, const struct cap_config *cfg, struct cap_err *err);

/* Frees what p owns; safe on a zeroed struct. */
void cap_policy_cleanup(struct cap_policy *p);

/* Checks one address (AF_INET or AF_INET6; IPv4-mapped IPv6 is unmapped first). Returns
 * CAP_POLICY_ALLOWED, or CAP_POLICY_REFUSED with reason (may be NULL) set to why, naming the
 * refused block ("link-local (169.254.0.0/16)", "network.deny 10.0.0.0/8", "loopback
 * (127.0.0.0/8) while network.allow_loopback is false"). An IPv6 address that carries an IPv4
 * one for a gateway (NAT64 64:ff9b::/96, 6to4 2002::/16) is refused when that IPv4 address is.
 * Any other family is refused. Pure,
 * thread-safe, never blocks. */
enum cap_policy_verdict cap_policy_check_addr(const struct cap_policy *p, const struct sockaddr *sa,
                                              char *reason, size_t n);

/* As cap_policy_check_addr for raw bytes: family AF_INET (4 bytes) or AF_INET6 (16 bytes). */
enum cap_policy_verdict cap_policy_check_bytes(const struct cap_policy *p, int family,
                                               const uint8_t *addr, char *reason, size_t n);

/* Save-time check of a listed range against the always-refused blocks only (the same rule as
 * the database's cap_cidrs_refused_reason): returns 1 with reason ("cidr 169.254.0.0/16 lies
 * wholly inside link-local (169.254.0.0/16), which the network policy always refuses") when the
 * range lies wholly inside one, 0 when it may be scanned (perhaps in part), -1 with reason set
 * to the parse error when cidr is not a valid range. Pure. */
int cap_policy_cidr_wholly_refused(const char *cidr, char *reason, size_t n);

/* As cap_policy_cidr_wholly_refused, also counting p's network.deny blocks and loopback (for
 * capctl warnings and for the scanner to skip a whole range at once). 1, 0 or -1. */
int cap_policy_cidr_refused_by(const struct cap_policy *p, const struct cap_cidr *c, char *reason,
                               size_t n);

/* Guard for libcurl transfers (CT logs, OCSP, CRL): checks every address curl is about to
 * connect to, including those of redirects. Fill policy, then pass to cap_policy_curl_guard. */
struct cap_policy_guard {
    const struct cap_policy *policy;
    int refused;                        /* connects refused so far */
    char reason[CAP_POLICY_REASON_MAX]; /* why the first one was refused */
};

/* Installs g on the easy handle h: CURLOPT_OPENSOCKETFUNCTION refusing addresses the policy
 * refuses, and http/https as the only protocols (also for redirects). g must outlive the
 * transfer. h is a CURL *, typed void * so this header does not need curl.h. 0 or -1. */
int cap_policy_curl_guard(void *h, struct cap_policy_guard *g);

#endif
