/* Outbound network policy: CIDR parsing, the always-refused blocks (kept in step with
 * cap_refused_blocks() in migrations/001_core.sql), network.deny and the loopback switch. */
#include "common/policy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fixed_block {
    const char *cidr;
    const char *reason;
};

/* The same blocks and reasons as the database's cap_refused_blocks(). */
static const struct fixed_block ALWAYS_REFUSED[] = {
    {"169.254.0.0/16", "link-local (169.254.0.0/16)"},
    {"fe80::/10", "IPv6 link-local (fe80::/10)"},
    {"0.0.0.0/8", "\"this network\" (0.0.0.0/8)"},
    {"224.0.0.0/4", "multicast (224.0.0.0/4)"},
    {"ff00::/8", "IPv6 multicast (ff00::/8)"},
    {"255.255.255.255/32", "broadcast (255.255.255.255)"},
    {"100.100.100.200/32", "cloud metadata (Alibaba 100.100.100.200)"},
    {"fd00:ec2::254/128", "cloud metadata (AWS fd00:ec2::254)"},
    {"192.0.0.192/32", "cloud metadata (Oracle 192.0.0.192)"},
    {"::/128", "unspecified address (::)"},
    {"168.63.129.16/32", "cloud platform (Azure wireserver 168.63.129.16)"},
    {"fd20:ce::254/128", "cloud metadata (GCP fd20:ce::254)"},
    {"fd00:ec2::23/128", "cloud credentials (AWS EKS Pod Identity fd00:ec2::23)"},
};
#define ALWAYS_REFUSED_N (sizeof ALWAYS_REFUSED / sizeof ALWAYS_REFUSED[0])

static const struct fixed_block LOOPBACK[] = {
    {"127.0.0.0/8", "loopback (127.0.0.0/8) while network.allow_loopback is false"},
    {"::1/128", "loopback (::1) while network.allow_loopback is false"},
};

static const uint8_t V4MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
/* NAT64 well-known prefix 64:ff9b::/96 (RFC 6052), the local-use NAT64 prefix 64:ff9b:1::/48
 * (RFC 8215, IPv4 address in the last 32 bits), 6to4 2002::/16 (RFC 3056) and IPv4-compatible
 * addresses ::a.b.c.d (RFC 4291, deprecated; some stacks still route them): each carries an
 * IPv4 address that a gateway or the stack may connect to, so that address is checked too. */
static const uint8_t NAT64_PREFIX[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t NAT64_LOCAL_PREFIX[6] = {0, 0x64, 0xff, 0x9b, 0, 0x01};
static const uint8_t V4COMPAT_PREFIX[12] = {0};

/* Parses the decimal prefix length; strict digits only. */
static int parse_prefix(const char *s, unsigned max, unsigned *out)
{
    if (*s == '\0' || strlen(s) > 3)
        return -1;
    unsigned v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > max || (s[0] == '0' && s[1] != '\0'))
        return -1;
    *out = v;
    return 0;
}

/* True when every bit of addr at or after bit `prefix` is zero. */
static bool host_bits_zero(const uint8_t *addr, unsigned bytes, unsigned prefix)
{
    for (unsigned bit = prefix; bit < bytes * 8; bit++) {
        if (addr[bit / 8] & (0x80u >> (bit % 8)))
            return false;
    }
    return true;
}

int cap_policy_parse_cidr(const char *text, struct cap_cidr *out, struct cap_err *err)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    if (!text) {
        cap_err_set(err, CAP_E_INVALID, "cidr: missing value");
        return -1;
    }
    size_t len = strlen(text);
    if (len == 0 || len >= CAP_CIDR_TEXT_MAX) {
        cap_err_set(err, CAP_E_INVALID, "cidr \"%s\": expected an address or ADDRESS/PREFIX",
                    cap_err_quote(q, sizeof q, text, len));
        return -1;
    }
    char buf[CAP_CIDR_TEXT_MAX];
    memcpy(buf, text, len + 1);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    struct cap_cidr c;
    memset(&c, 0, sizeof c);
    if (inet_pton(AF_INET, buf, c.addr) == 1) {
        c.family = AF_INET;
        c.prefix = 32;
    } else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
        c.family = AF_INET6;
        c.prefix = 128;
    } else {
        cap_err_set(err, CAP_E_INVALID, "cidr \"%s\": not an IPv4 or IPv6 address",
                    cap_err_quote(q, sizeof q, text, len));
        return -1;
    }
    if (slash && parse_prefix(slash + 1, c.prefix, &c.prefix) != 0) {
        cap_err_set(err, CAP_E_INVALID, "cidr \"%s\": prefix length must be 0..%u",
                    cap_err_quote(q, sizeof q, text, len), c.family == AF_INET ? 32u : 128u);
        return -1;
    }
    if (!host_bits_zero(c.addr, c.family == AF_INET ? 4 : 16, c.prefix)) {
        cap_err_set(err, CAP_E_INVALID, "cidr \"%s\": address has bits set right of the prefix",
                    cap_err_quote(q, sizeof q, text, len));
        return -1;
    }
    if (c.family == AF_INET6 && c.prefix >= 96 && memcmp(c.addr, V4MAPPED_PREFIX, 12) == 0) {
        uint8_t v4[4];
        memcpy(v4, c.addr + 12, 4);
        memset(c.addr, 0, sizeof c.addr);
        memcpy(c.addr, v4, 4);
        c.family = AF_INET;
        c.prefix -= 96;
    }
    *out = c;
    return 0;
}

const char *cap_policy_cidr_str(const struct cap_cidr *c, char *out, size_t n)
{
    char a[INET6_ADDRSTRLEN];
    if (!inet_ntop(c->family, c->addr, a, sizeof a))
        snprintf(a, sizeof a, "?");
    snprintf(out, n, "%s/%u", a, c->prefix);
    return out;
}

/* True when the first `prefix` bits of a and b agree. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned full = prefix / 8;
    if (memcmp(a, b, full) != 0)
        return false;
    unsigned rest = prefix % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

bool cap_policy_cidr_contains(const struct cap_cidr *outer, const struct cap_cidr *inner)
{
    if (outer->family != inner->family || inner->prefix < outer->prefix)
        return false;
    return prefix_equal(outer->addr, inner->addr, outer->prefix);
}

/* The fixed tables as parsed blocks, built once (the texts are constants, so parsing cannot
 * fail; a failure would be our own bug and leaves the block unmatched family 0). */
static struct cap_cidr fixed_always[ALWAYS_REFUSED_N];
static struct cap_cidr fixed_loopback[2];
static pthread_once_t fixed_once = PTHREAD_ONCE_INIT;

static void fixed_build(void)
{
    for (size_t i = 0; i < ALWAYS_REFUSED_N; i++)
        (void)cap_policy_parse_cidr(ALWAYS_REFUSED[i].cidr, &fixed_always[i], NULL);
    for (size_t i = 0; i < 2; i++)
        (void)cap_policy_parse_cidr(LOOPBACK[i].cidr, &fixed_loopback[i], NULL);
}

static void fixed_init(void)
{
    pthread_once(&fixed_once, fixed_build);
}

int cap_policy_init(struct cap_policy *p, const struct cap_config *cfg, struct cap_err *err)
{
    fixed_init();
    struct cap_policy np;
    memset(&np, 0, sizeof np);
    np.allow_loopback = cfg ? cfg->network_allow_loopback : false;
    size_t n = cfg ? cfg->network_deny_n : 0;
    if (n > 0) {
        np.deny = calloc(n, sizeof *np.deny);
        if (!np.deny) {
            cap_err_set(err, CAP_E_NOMEM, "network policy: out of memory");
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            struct cap_policy_rule *r = &np.deny[i];
            if (cap_policy_parse_cidr(cfg->network_deny[i], &r->block, err) != 0) {
                cap_err_prefix(err, "network.deny: ");
                free(np.deny);
                return -1;
            }
            char t[CAP_CIDR_TEXT_MAX];
            snprintf(r->reason, sizeof r->reason, "network.deny %s",
                     cap_policy_cidr_str(&r->block, t, sizeof t));
        }
        np.deny_n = n;
    }
    *p = np;
    return 0;
}

void cap_policy_cleanup(struct cap_policy *p)
{
    if (!p)
        return;
    free(p->deny);
    p->deny = NULL;
    p->deny_n = 0;
}

static void set_reason(char *reason, size_t n, const char *text)
{
    if (reason && n > 0)
        snprintf(reason, n, "%s", text);
}

enum cap_policy_verdict cap_policy_check_bytes(const struct cap_policy *p, int family,
                                               const uint8_t *addr, char *reason, size_t n)
{
    fixed_init();
    struct cap_cidr a;
    memset(&a, 0, sizeof a);
    if (family == AF_INET) {
        a.family = AF_INET;
        memcpy(a.addr, addr, 4);
        a.prefix = 32;
    } else if (family == AF_INET6) {
        if (memcmp(addr, V4MAPPED_PREFIX, 12) == 0) {
            a.family = AF_INET;
            memcpy(a.addr, addr + 12, 4);
            a.prefix = 32;
        } else {
            a.family = AF_INET6;
            memcpy(a.addr, addr, 16);
            a.prefix = 128;
        }
    } else {
        set_reason(reason, n, "not an IPv4 or IPv6 address");
        return CAP_POLICY_REFUSED;
    }
    for (size_t i = 0; i < ALWAYS_REFUSED_N; i++) {
        if (cap_policy_cidr_contains(&fixed_always[i], &a)) {
            set_reason(reason, n, ALWAYS_REFUSED[i].reason);
            return CAP_POLICY_REFUSED;
        }
    }
    if (a.family == AF_INET6) {
        const uint8_t *embedded = NULL;
        const char *via = NULL;
        if (memcmp(a.addr, NAT64_PREFIX, 12) == 0 || memcmp(a.addr, NAT64_LOCAL_PREFIX, 6) == 0) {
            embedded = a.addr + 12;
            via = "NAT64";
        } else if (memcmp(a.addr, V4COMPAT_PREFIX, 12) == 0 && a.addr[12] != 0) {
            /* ::a.b.c.d outside ::/104 (:: and ::1 are themselves; ::0.x.y.z carries
             * nothing a stack would route) */
            embedded = a.addr + 12;
            via = "IPv4-compatible";
        } else if (a.addr[0] == 0x20 && a.addr[1] == 0x02) {
            embedded = a.addr + 2;
            via = "6to4";
        }
        char inner[CAP_POLICY_REASON_MAX];
        if (embedded && cap_policy_check_bytes(p, AF_INET, embedded, inner, sizeof inner) !=
                            CAP_POLICY_ALLOWED) {
            if (reason && n > 0)
                snprintf(reason, n, "%s (through the %s address)", inner, via);
            return CAP_POLICY_REFUSED;
        }
    }
    if (p) {
        for (size_t i = 0; i < p->deny_n; i++) {
            if (cap_policy_cidr_contains(&p->deny[i].block, &a)) {
                set_reason(reason, n, p->deny[i].reason);
                return CAP_POLICY_REFUSED;
            }
        }
    }
    if (!p || !p->allow_loopback) {
        for (size_t i = 0; i < 2; i++) {
            if (cap_policy_cidr_contains(&fixed_loopback[i], &a)) {
                set_reason(reason, n, LOOPBACK[i].reason);
                return CAP_POLICY_REFUSED;
            }
        }
    }
    return CAP_POLICY_ALLOWED;
}

enum cap_policy_verdict cap_policy_check_addr(const struct cap_policy *p, const struct sockaddr *sa,
                                              char *reason, size_t n)
{
    if (!sa) {
        set_reason(reason, n, "no address");
        return CAP_POLICY_REFUSED;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        return cap_policy_check_bytes(p, AF_INET, (const uint8_t *)&s4->sin_addr, reason, n);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        return cap_policy_check_bytes(p, AF_INET6, (const uint8_t *)&s6->sin6_addr, reason, n);
    }
    set_reason(reason, n, "not an IPv4 or IPv6 address");
    return CAP_POLICY_REFUSED;
}

int cap_policy_cidr_refused_by(const struct cap_policy *p, const struct cap_cidr *c, char *reason,
                               size_t n)
{
    fixed_init();
    char t[CAP_CIDR_TEXT_MAX];
    const char *why = NULL;
    for (size_t i = 0; i < ALWAYS_REFUSED_N && !why; i++) {
        if (cap_policy_cidr_contains(&fixed_always[i], c))
            why = ALWAYS_REFUSED[i].reason;
    }
    if (p) {
        for (size_t i = 0; i < p->deny_n && !why; i++) {
            if (cap_policy_cidr_contains(&p->deny[i].block, c))
                why = p->deny[i].reason;
        }
        for (size_t i = 0; i < 2 && !why && !p->allow_loopback; i++) {
            if (cap_policy_cidr_contains(&fixed_loopback[i], c))
                why = LOOPBACK[i].reason;
        }
    }
    if (!why)
        return 0;
    if (reason && n > 0)
        snprintf(reason, n, "cidr %s lies wholly inside %s, which the network policy %s",
                 cap_policy_cidr_str(c, t, sizeof t), why, p ? "refuses" : "always refuses");
    return 1;
}

int cap_policy_cidr_wholly_refused(const char *cidr, char *reason, size_t n)
{
    struct cap_cidr c;
    struct cap_err e;
    cap_err_clear(&e);
    if (cap_policy_parse_cidr(cidr, &c, &e) != 0) {
        set_reason(reason, n, e.msg);
        return -1;
    }
    return cap_policy_cidr_refused_by(NULL, &c, reason, n);
}

/* curl's open-socket callback: refuse addresses the policy refuses before any connect. */
static curl_socket_t cap_policy_opensocket_cb(void *clientp, curlsocktype purpose,
                                              struct curl_sockaddr *addr)
{
    struct cap_policy_guard *g = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    char why[CAP_POLICY_REASON_MAX];
    if (cap_policy_check_addr(g->policy, &addr->addr, why, sizeof why) != CAP_POLICY_ALLOWED) {
        if (g->refused++ == 0)
            snprintf(g->reason, sizeof g->reason, "%s", why);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

int cap_policy_curl_guard(void *h, struct cap_policy_guard *g)
{
    CURL *c = h;
    g->refused = 0;
    g->reason[0] = '\0';
    if (curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, cap_policy_opensocket_cb) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, g) != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK)
        return -1;
    /* Proxies from the environment would connect to an address the policy never saw. */
    if (curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK)
        return -1;
    return 0;
}
