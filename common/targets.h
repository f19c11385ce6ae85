/* Scan targets of a network_scan source: CIDRs x ports and hostnames x ports, generated lazily
 * by an iterator (a /16 with six ports is never an array), counted without being materialised. */
#ifndef CAP_TARGETS_H
#define CAP_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/policy.h"

/* Longest host name accepted (RFC 1035 text form without the trailing dot). */
#define CAP_HOSTNAME_MAX 253

enum cap_target_kind {
    CAP_TARGET_ADDR = 0, /* an address from a CIDR (or an IP literal listed as a host) */
    CAP_TARGET_HOST = 1, /* a host name still to be resolved */
};

/* One target. For CAP_TARGET_ADDR, family/addr hold the address; host is the IP literal when
 * it was listed as a host, else NULL. For CAP_TARGET_HOST, host is the name. host points into
 * the iterator and stays valid until cap_targets_cleanup. */
struct cap_target {
    enum cap_target_kind kind;
    int family; /* AF_INET or AF_INET6 (ADDR only) */
    uint8_t addr[16];
    const char *host;
    int port;
    size_t item; /* index of the listed CIDR (ADDR) or host (HOST/IP literal) it came from */
};

/* The iterator. Owns copies of everything it needs; fields are private. */
struct cap_targets {
    struct cap_cidr *cidrs;
    size_t cidrs_n;
    char **hosts;
    size_t hosts_n;
    int *ports;
    size_t ports_n;
    uint64_t count;
    /* cursor */
    size_t ci, hi, pi;
    uint8_t cur[16];
    bool in_cidr;
    uint64_t pos;       /* index of the next target in the whole sequence */
    uint64_t end;       /* no target at or past this index is produced */
    uint64_t cidr_base; /* index of the first target of cidrs[ci] */
};

/* Validates and copies the lists: every CIDR parses (cap_policy_parse_cidr), every host is a
 * DNS name (letters, digits, '-', '_', dots; labels 1..63; at most CAP_HOSTNAME_MAX; one
 * trailing dot dropped) or an IP literal, every port is 1..65535; no ports means the network_scan
 * type's defaults (CAP_SCAN_DEFAULT_PORTS: 443 and 8443).
 * Returns 0, or -1 with err naming the bad value (t then needs no cleanup). */
int cap_targets_init(struct cap_targets *t, const char *const *cidrs, size_t cidrs_n,
                     const char *const *hosts, size_t hosts_n, const int *ports, size_t ports_n,
                     struct cap_err *err);

/* Frees what t owns; safe on a zeroed struct. */
void cap_targets_cleanup(struct cap_targets *t);

/* Number of targets (addresses x ports + hosts x ports; a host name counts once whatever it
 * resolves to), computed without iterating; saturates at UINT64_MAX (a large IPv6 range). */
uint64_t cap_targets_count(const struct cap_targets *t);

/* Number of addresses in c (2^(bits - prefix)), saturating at UINT64_MAX. */
uint64_t cap_targets_cidr_size(const struct cap_cidr *c);

/* Fails with CAP_E_LIMIT and a message giving both numbers when the count exceeds max
 * ("393216 targets (addresses x ports and host names x ports), more than
 * scan.max_targets 100000"). 0 or -1. */
int cap_targets_check_limit(const struct cap_targets *t, int64_t max, struct cap_err *err);

/* Produces the next target into out: the CIDRs first (each address with every port), then the
 * hosts (each with every port). Returns true, or false when there are no more. */
bool cap_targets_next(struct cap_targets *t, struct cap_target *out);

/* Skips the rest of the current CIDR (the caller found it wholly refused); within a range,
 * cap_targets_pos tells where that left the iterator. */
void cap_targets_skip_cidr(struct cap_targets *t);

/* Restricts the iterator to the slice [first, end) of the sequence cap_targets_next produces
 * (a shard of a run), positioned at first without walking what comes before it. */
void cap_targets_set_range(struct cap_targets *t, uint64_t first, uint64_t end);

/* Index (in the whole sequence) of the next target cap_targets_next would look at. */
uint64_t cap_targets_pos(const struct cap_targets *t);

/* The listed hosts [*lo, *hi) with at least one target inside the slice [first, end). */
void cap_targets_host_range(const struct cap_targets *t, uint64_t first, uint64_t end, size_t *lo,
                            size_t *hi);

/* True when s is an acceptable host name per cap_targets_init (IP literals excluded). */
bool cap_targets_valid_hostname(const char *s);

#endif
