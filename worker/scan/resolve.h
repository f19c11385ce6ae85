/* Host-name resolution for the network scan: many names at once with c-ares (A and AAAA for
 * each, hundreds of queries in flight on one UDP socket per server), on a job thread, within
 * one deadline for the whole batch. How and why: the comment at the top of resolve.c. */
#ifndef CAP_SCAN_RESOLVE_H
#define CAP_SCAN_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "common/dnsaddr.h"
#include "common/err.h"
#include "common/targets.h"

/* Addresses kept per name: the first distinct A answers, then the first distinct AAAA ones. */
#define CAP_RESOLVE_ADDRS_MAX 16
/* Names looked up at once (two queries each); the others wait for a free place. A batch goes
 * at about this many names per server round trip (256 per 200 ms: 1280 names a second); names
 * still waiting at the deadline fail "not asked", so callers pass chunks of about 1000 names. */
#define CAP_RESOLVE_INFLIGHT 256
/* DNS servers accepted in one list. */
#define CAP_RESOLVE_SERVERS_MAX CAP_DNS_SERVERS_MAX
/* Largest timeout_ms accepted (one hour). */
#define CAP_RESOLVE_TIMEOUT_MAX 3600000
/* Size of the error text of one name. */
#define CAP_RESOLVE_ERROR_MAX 160

/* One address of a name. */
struct cap_resolved_addr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; the first 4 bytes for AF_INET */
};

/* One host name's answer. */
struct cap_resolved {
    char name[CAP_HOSTNAME_MAX + 1]; /* the name as given (cut if longer: then status is -1) */
    int status;                      /* 0: resolved to at least one address; -1: see error */
    /* When status is -1, lower case, naming no server and nothing secret, one of:
     * "does not resolve (NXDOMAIN)", "no A or AAAA record", "no answer within N ms",
     * "not asked within N ms (CAP_RESOLVE_INFLIGHT names at a time)", "server failure
     * (SERVFAIL)", "query refused (REFUSED)", "dns server unreachable (connection refused)",
     * "no usable answer from any dns server (refused, failed or unreachable)", "not a valid dns
     * name", "empty name", "name longer than 253 bytes", ... */
    char error[CAP_RESOLVE_ERROR_MAX];
    size_t n; /* addresses in addrs, at most CAP_RESOLVE_ADDRS_MAX, distinct, A then AAAA */
    struct cap_resolved_addr addrs[CAP_RESOLVE_ADDRS_MAX];
    int64_t elapsed_ms; /* from the start of the batch to this name's answer (or failure) */
};

/* Resolves names[0..n) all at once: at most CAP_RESOLVE_INFLIGHT names in flight, an A and an
 * AAAA query for each, one deadline of timeout_ms (1..CAP_RESOLVE_TIMEOUT_MAX) for the whole
 * batch. A name still unanswered at the deadline fails with "no answer within N ms"; one not yet
 * asked (a batch far larger than CAP_RESOLVE_INFLIGHT against slow servers) with "not asked
 * within N ms ...". The search-domain list is never applied: names are taken as FQDNs.
 *
 * servers[0..servers_n) are "IP", "IPv4:PORT" or "[IPv6]:PORT" entries (cap_dns_server_parse
 * in common/dnsaddr.h; port 53 when none; at most CAP_RESOLVE_SERVERS_MAX). Only those servers are
 * asked, in order (split horizon), and /etc/hosts is not read. With servers NULL or servers_n 0,
 * the system's configuration is used as getaddrinfo would: /etc/hosts first (every line that names
 * the host), then the servers of /etc/resolv.conf. With several servers, one answering SERVFAIL or
 * REFUSED makes the next one be asked; with one, that answer is the name's error. A name with
 * addresses of one family is resolved even when the query for the other failed or timed out. An IP
 * literal given as a name is its own answer, without a query.
 *
 * Duplicate names (compared without case and without a trailing dot) are looked up once and
 * all get the same answer. On success *out is an array of n results in the order of names (NULL
 * when n is 0), which the caller frees with free(). Blocks the calling thread (a job thread,
 * never the scan loop) for at most about timeout_ms; opens one UDP socket per server (and a TCP
 * connection for truncated answers), whatever n is. Thread-safe: each call has its own c-ares
 * channel.
 *
 * Returns 0, or -1 with err for a bad server entry (naming it), a bad timeout, out of memory
 * or a resolver that cannot be set up; then *out is not written. A name that does not resolve
 * is a result with status -1, not an error. */
int cap_resolve_names(const char *const *names, size_t n, const char *const *servers,
                      size_t servers_n, int timeout_ms, struct cap_resolved **out,
                      struct cap_err *err);

#endif
