/* Lazy target iteration over CIDRs x ports and hostnames x ports, with counting by arithmetic. */
#include "common/targets.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/source/network_scan.h"

bool cap_targets_valid_hostname(const char *s)
{
    size_t len = strlen(s);
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len > CAP_HOSTNAME_MAX)
        return false;
    size_t label = 0;
    bool all_digits_last = true;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            all_digits_last = true;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || ++label > 63)
            return false;
        if (c < '0' || c > '9')
            all_digits_last = false;
    }
    /* A name whose last label is all digits would be read as an IPv4 address by resolvers. */
    return label > 0 && !all_digits_last;
}

uint64_t cap_targets_cidr_size(const struct cap_cidr *c)
{
    unsigned bits = (c->family == AF_INET ? 32u : 128u) - c->prefix;
    if (bits >= 64)
        return UINT64_MAX;
    return (uint64_t)1 << bits;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    if (a != 0 && b > UINT64_MAX / a)
        return UINT64_MAX;
    return a * b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int cap_targets_init(struct cap_targets *t, const char *const *cidrs, size_t cidrs_n,
                     const char *const *hosts, size_t hosts_n, const int *ports, size_t ports_n,
                     struct cap_err *err)
{
    struct cap_targets n;
    memset(&n, 0, sizeof n);
    static const int defaults[] = CAP_SCAN_DEFAULT_PORTS;
    if (ports_n == 0) {
        ports = defaults;
        ports_n = sizeof defaults / sizeof defaults[0];
    }
    n.ports = calloc(ports_n, sizeof *n.ports);
    n.cidrs = calloc(cidrs_n ? cidrs_n : 1, sizeof *n.cidrs);
    n.hosts = calloc(hosts_n + 1, sizeof *n.hosts);
    if (!n.ports || !n.cidrs || !n.hosts) {
        cap_err_set(err, CAP_E_NOMEM, "targets: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < ports_n; i++) {
        if (ports[i] < 1 || ports[i] > 65535) {
            cap_err_set(err, CAP_E_INVALID, "port %d: must be 1..65535", ports[i]);
            goto fail;
        }
        n.ports[i] = ports[i];
    }
    n.ports_n = ports_n;
    for (size_t i = 0; i < cidrs_n; i++) {
        if (cap_policy_parse_cidr(cidrs[i], &n.cidrs[i], err) != 0)
            goto fail;
    }
    n.cidrs_n = cidrs_n;
    for (size_t i = 0; i < hosts_n; i++) {
        const char *h = hosts[i];
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        uint8_t tmp[16];
        size_t hl = h ? strlen(h) : 0;
        bool literal = h && (inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1);
        if (!h || (!literal && !cap_targets_valid_hostname(h))) {
            cap_err_set(err, CAP_E_INVALID, "host \"%s\": not a valid host name or IP address",
                        cap_err_quote(q, sizeof q, h ? h : "", hl));
            goto fail;
        }
        n.hosts[i] = strdup(h);
        if (!n.hosts[i]) {
            cap_err_set(err, CAP_E_NOMEM, "targets: out of memory");
            goto fail;
        }
        if (!literal && hl > 0 && n.hosts[i][hl - 1] == '.')
            n.hosts[i][hl - 1] = '\0';
        n.hosts_n = i + 1;
    }
    uint64_t count = 0;
    for (size_t i = 0; i < n.cidrs_n; i++)
        count = sat_add(count, sat_mul(cap_targets_cidr_size(&n.cidrs[i]), n.ports_n));
    count = sat_add(count, sat_mul(n.hosts_n, n.ports_n));
    n.count = count;
    n.end = UINT64_MAX;
    *t = n;
    return 0;
fail:
    cap_targets_cleanup(&n);
    return -1;
}

void cap_targets_cleanup(struct cap_targets *t)
{
    if (!t)
        return;
    if (t->hosts) {
        for (size_t i = 0; t->hosts[i]; i++)
            free(t->hosts[i]);
    }
    free(t->hosts);
    free(t->cidrs);
    free(t->ports);
    memset(t, 0, sizeof *t);
}

uint64_t cap_targets_count(const struct cap_targets *t)
{
    return t->count;
}

int cap_targets_check_limit(const struct cap_targets *t, int64_t max, struct cap_err *err)
{
    if (max >= 0 && t->count > (uint64_t)max) {
        if (t->count == UINT64_MAX)
            cap_err_set(err, CAP_E_LIMIT,
                        "more than 18446744073709551614 targets (addresses x ports), more "
                        "than scan.max_targets %lld",
                        (long long)max);
        else
            cap_err_set(err, CAP_E_LIMIT,
                        "%llu targets (addresses x ports and host names x ports), more than "
                        "scan.max_targets %lld",
                        (unsigned long long)t->count, (long long)max);
        return -1;
    }
    return 0;
}

/* Adds one to a big-endian address of `bytes` bytes; returns true on wrap-around. */
static bool addr_increment(uint8_t *a, unsigned bytes)
{
    for (unsigned i = bytes; i-- > 0;) {
        if (++a[i] != 0)
            return false;
    }
    return true;
}

void cap_targets_skip_cidr(struct cap_targets *t)
{
    if (t->ci < t->cidrs_n) {
        t->cidr_base = sat_add(t->cidr_base,
                               sat_mul(cap_targets_cidr_size(&t->cidrs[t->ci]), t->ports_n));
        t->pos = t->cidr_base;
        t->ci++;
        t->in_cidr = false;
        t->pi = 0;
    }
}

/* Adds off to a big-endian address of `bytes` bytes (no carry out of its first byte). */
static void addr_add(uint8_t *a, unsigned bytes, uint64_t off)
{
    unsigned carry = 0;
    for (unsigned i = bytes; i-- > 0 && (off || carry);) {
        unsigned v = a[i] + (unsigned)(off & 0xff) + carry;
        a[i] = (uint8_t)v;
        carry = v >> 8;
        off >>= 8;
    }
}

void cap_targets_set_range(struct cap_targets *t, uint64_t first, uint64_t end)
{
    t->ci = t->hi = t->pi = 0;
    t->in_cidr = false;
    t->cidr_base = 0;
    t->pos = first;
    t->end = end;
    uint64_t left = first;
    while (t->ci < t->cidrs_n) {
        const struct cap_cidr *c = &t->cidrs[t->ci];
        uint64_t sz = sat_mul(cap_targets_cidr_size(c), t->ports_n);
        if (left < sz) {
            memcpy(t->cur, c->addr, sizeof t->cur);
            addr_add(t->cur, c->family == AF_INET ? 4 : 16, left / t->ports_n);
            t->pi = left % t->ports_n;
            t->in_cidr = true;
            return;
        }
        left -= sz;
        t->cidr_base = sat_add(t->cidr_base, sz);
        t->ci++;
    }
    t->hi = left / t->ports_n;
    t->pi = left % t->ports_n;
}

uint64_t cap_targets_pos(const struct cap_targets *t)
{
    return t->pos;
}

void cap_targets_host_range(const struct cap_targets *t, uint64_t first, uint64_t end, size_t *lo,
                            size_t *hi)
{
    uint64_t base = 0;
    for (size_t i = 0; i < t->cidrs_n; i++)
        base = sat_add(base, sat_mul(cap_targets_cidr_size(&t->cidrs[i]), t->ports_n));
    uint64_t a = first > base ? first - base : 0;
    uint64_t b = end > base ? end - base : 0;
    uint64_t h0 = a / t->ports_n, h1 = (b + t->ports_n - 1) / t->ports_n;
    *lo = h0 < t->hosts_n ? (size_t)h0 : t->hosts_n;
    *hi = h1 < t->hosts_n ? (size_t)h1 : t->hosts_n;
    if (*hi < *lo)
        *hi = *lo;
}

bool cap_targets_next(struct cap_targets *t, struct cap_target *out)
{
    if (t->pos >= t->end)
        return false;
    while (t->ci < t->cidrs_n) {
        const struct cap_cidr *c = &t->cidrs[t->ci];
        unsigned bytes = c->family == AF_INET ? 4 : 16;
        if (!t->in_cidr) {
            memcpy(t->cur, c->addr, sizeof t->cur);
            t->in_cidr = true;
            t->pi = 0;
        }
        if (t->pi == t->ports_n) {
            /* Next address of the block: done when the prefix bits change or it wraps. */
            bool wrapped = addr_increment(t->cur, bytes);
            struct cap_cidr probe = *c;
            memcpy(probe.addr, t->cur, sizeof probe.addr);
            probe.prefix = bytes * 8;
            if (wrapped || !cap_policy_cidr_contains(c, &probe)) {
                cap_targets_skip_cidr(t);
                continue;
            }
            t->pi = 0;
        }
        memset(out, 0, sizeof *out);
        out->kind = CAP_TARGET_ADDR;
        out->family = c->family;
        memcpy(out->addr, t->cur, sizeof out->addr);
        out->port = t->ports[t->pi++];
        out->item = t->ci;
        t->pos++;
        return true;
    }
    while (t->hi < t->hosts_n) {
        if (t->pi == t->ports_n) {
            t->hi++;
            t->pi = 0;
            continue;
        }
        const char *h = t->hosts[t->hi];
        memset(out, 0, sizeof *out);
        out->host = h;
        out->item = t->hi;
        out->port = t->ports[t->pi++];
        if (inet_pton(AF_INET, h, out->addr) == 1) {
            out->kind = CAP_TARGET_ADDR;
            out->family = AF_INET;
        } else if (inet_pton(AF_INET6, h, out->addr) == 1) {
            out->kind = CAP_TARGET_ADDR;
            out->family = AF_INET6;
        } else {
            out->kind = CAP_TARGET_HOST;
        }
        t->pos++;
        return true;
    }
    return false;
}
