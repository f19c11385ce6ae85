/* Checks and normal forms of source field values (see value.h). Pure: messages name the option
 * and the offending value. The always-refused blocks and their reasons come from the network
 * policy (common/policy.c), which keeps them in step with the database's cap_refused_blocks(). */
#include "common/source/value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/config.h"
#include "common/idna.h"
#include "common/policy.h"

/* Room for a quoted value: CAP_ERR_VALUE_MAX bytes, each at most 4 when escaped, and "...". */
#define QUOTE_MAX (CAP_ERR_VALUE_MAX * 4 + 8)

#define Q(buf, s) cap_err_quote((buf), sizeof(buf), (s), strlen(s))

/* Why a normalised range lies wholly inside a block the network policy always refuses: writes
 * the policy's "lies wholly inside link-local (169.254.0.0/16), which the network policy always
 * refuses" into out and returns 1; 0 when it does not (it may still overlap one); -1 with the
 * policy's parse error in out. */
static int wholly_refused(const char *norm, char *out, size_t n)
{
    char msg[CAP_POLICY_REASON_MAX + CAP_CIDR_TEXT_MAX + 64];
    int rc = cap_policy_cidr_wholly_refused(norm, msg, sizeof msg);
    if (rc == 0)
        return 0;
    /* The policy says "cidr 169.254.0.0/16 lies wholly inside ..."; the option and value are
     * already in front of our message, so keep what follows the range. */
    const char *tail = rc == 1 ? strstr(msg, " lies wholly inside ") : NULL;
    snprintf(out, n, "%s", tail ? tail + 1 : msg);
    return rc;
}

int cap_value_cidr(const char *opt, const char *text, char *out, size_t n, struct cap_err *err)
{
    char q[QUOTE_MAX];
    char addr_text[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    uint8_t addr[16] = {0};
    int family = 0;
    if (alen > 0 && alen < sizeof addr_text) {
        memcpy(addr_text, text, alen);
        addr_text[alen] = '\0';
        if (inet_pton(AF_INET, addr_text, addr) == 1)
            family = AF_INET;
        else if (inet_pton(AF_INET6, addr_text, addr) == 1)
            family = AF_INET6;
    }
    if (!family) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": not an IPv4 or IPv6 address or range", opt,
                    Q(q, text));
        return -1;
    }
    unsigned max = family == AF_INET ? 32 : 128;
    unsigned prefix = max;
    if (slash) {
        const char *p = slash + 1;
        char *end = NULL;
        errno = 0;
        long v = (*p >= '0' && *p <= '9') ? strtol(p, &end, 10) : -1;
        if (v < 0 || errno || *end != '\0' || v > (long)max || end - p > 3) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": prefix length must be 0-%u for %s", opt,
                        Q(q, text), max, family == AF_INET ? "IPv4" : "IPv6");
            return -1;
        }
        prefix = (unsigned)v;
    }
    uint8_t net[16] = {0};
    size_t bytes = family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < bytes; i++) {
        unsigned bit0 = (unsigned)i * 8;
        uint8_t mask = prefix >= bit0 + 8 ? 0xff
                       : prefix <= bit0   ? 0
                                          : (uint8_t)(0xff << (8 - (prefix - bit0)));
        net[i] = addr[i] & mask;
    }
    char ntext[INET6_ADDRSTRLEN];
    inet_ntop(family, net, ntext, sizeof ntext);
    char norm[CAP_VALUE_CIDR_MAX];
    snprintf(norm, sizeof norm, "%s/%u", ntext, prefix);
    if (memcmp(net, addr, bytes) != 0) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": host bits are set; the network is %s", opt,
                    Q(q, text), norm);
        return -1;
    }
    char why[CAP_POLICY_REASON_MAX + CAP_CIDR_TEXT_MAX + 64];
    if (wholly_refused(norm, why, sizeof why) != 0) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": %s", opt, Q(q, text), why);
        return -1;
    }
    if (strlen(norm) + 1 > n) {
        cap_err_set(err, CAP_E_LIMIT, "%s \"%s\": no room for the range", opt, Q(q, text));
        return -1;
    }
    memcpy(out, norm, strlen(norm) + 1);
    return 0;
}

int cap_value_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
                  struct cap_err *err)
{
    char q[QUOTE_MAX];
    char *end = NULL;
    errno = 0;
    long long v = 0;
    bool ok =
        (text[0] >= '0' && text[0] <= '9') || (text[0] == '-' && text[1] >= '0' && text[1] <= '9');
    if (ok) {
        v = strtoll(text, &end, 10);
        ok = errno == 0 && *end == '\0' && v >= min && v <= max;
    }
    if (!ok) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must be an integer %lld-%lld", opt, Q(q, text),
                    (long long)min, (long long)max);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int cap_value_port(const char *opt, const char *text, int *out, struct cap_err *err)
{
    char q[QUOTE_MAX];
    int64_t v = 0;
    struct cap_err e = {0};
    if (cap_value_int(opt, text, 1, 65535, &v, &e) < 0) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must be 1-65535", opt, Q(q, text));
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cap_value_duration_ms(const char *opt, const char *text, int64_t min_ms, int64_t max_ms,
                          const char *range_text, int64_t *out_ms, struct cap_err *err)
{
    char q[QUOTE_MAX];
    int64_t ms = 0;
    if (cap_config_parse_duration_ms(text, &ms) < 0) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": not a duration (e.g. 500ms, 5s, 1m)", opt,
                    Q(q, text));
        return -1;
    }
    if (ms < min_ms || ms > max_ms) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must be between %s", opt, Q(q, text),
                    range_text);
        return -1;
    }
    *out_ms = ms;
    return 0;
}

/* Host name checks shared by --host, --domain and log URL hosts; text is len bytes (not
 * necessarily NUL-terminated), quoted is the whole value for messages. */
static int check_hostname(const char *opt, const char *quoted, const char *text, size_t len,
                          char *out, size_t n, struct cap_err *err)
{
    if (len > 0 && text[len - 1] == '.')
        len--; /* the root's dot: "example.com." is "example.com" */
    if (len == 0) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": empty name", opt, quoted);
        return -1;
    }
    /* U-labels become their A-label (xn--) form, which is what is stored and matched */
    char alabels[CAP_VALUE_HOSTNAME_MAX + 2];
    if (cap_idna_has_non_ascii(text, len)) {
        const char *why = "";
        if (cap_idna_to_ascii(text, len, alabels, sizeof alabels, &why) != 0) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": not a valid internationalised name (%s)",
                        opt, quoted, why);
            return -1;
        }
        text = alabels;
        len = strlen(alabels);
        if (len > 0 && text[len - 1] == '.')
            len--; /* a root dot written as an ideographic full stop, mapped to '.' */
    }
    if (len > CAP_VALUE_HOSTNAME_MAX) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": longer than %d characters", opt, quoted,
                    CAP_VALUE_HOSTNAME_MAX);
        return -1;
    }
    char name[CAP_VALUE_HOSTNAME_MAX + 1];
    for (size_t i = 0; i < len; i++)
        name[i] = (char)tolower((unsigned char)text[i]);
    name[len] = '\0';
    uint8_t tmp[16];
    if (inet_pton(AF_INET, name, tmp) == 1 || strchr(name, ':')) {
        cap_err_set(err, CAP_E_INVALID,
                    "%s \"%s\": an IP address, not a host name; list addresses with --cidr", opt,
                    quoted);
        return -1;
    }
    const char *label = name;
    bool all_digits = true;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.') {
            char c = name[i];
            if (!(isalnum((unsigned char)c) || c == '-')) {
                cap_err_set(err, CAP_E_INVALID,
                            "%s \"%s\": invalid character '%c' (RFC 1123 allows letters, digits "
                            "and hyphens)",
                            opt, quoted, c);
                return -1;
            }
            if (!isdigit((unsigned char)c))
                all_digits = false;
            continue;
        }
        size_t ll = (size_t)(name + i - label);
        if (ll == 0) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": empty label", opt, quoted);
            return -1;
        }
        char lq[QUOTE_MAX];
        if (ll > CAP_VALUE_LABEL_MAX) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": label \"%s\" is longer than %d characters",
                        opt, quoted, cap_err_quote(lq, sizeof lq, label, ll), CAP_VALUE_LABEL_MAX);
            return -1;
        }
        if (label[0] == '-' || label[ll - 1] == '-') {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": label \"%s\" starts or ends with a hyphen",
                        opt, quoted, cap_err_quote(lq, sizeof lq, label, ll));
            return -1;
        }
        if (i == len && all_digits) {
            cap_err_set(err, CAP_E_INVALID,
                        "%s \"%s\": the last label is all digits, which no host name has", opt,
                        quoted);
            return -1;
        }
        label = name + i + 1;
        all_digits = true;
    }
    if (len + 1 > n) {
        cap_err_set(err, CAP_E_LIMIT, "%s \"%s\": no room for the name", opt, quoted);
        return -1;
    }
    memcpy(out, name, len + 1);
    return 0;
}

int cap_value_hostname(const char *opt, const char *text, char *out, size_t n, struct cap_err *err)
{
    char q[QUOTE_MAX];
    return check_hostname(opt, Q(q, text), text, strlen(text), out, n, err);
}

int cap_value_domain(const char *opt, const char *text, char *out, size_t n, struct cap_err *err)
{
    char q[QUOTE_MAX];
    Q(q, text);
    if (text[0] == '*' || text[0] == '.') {
        const char *rest = text + (text[0] == '*' && text[1] == '.' ? 2 : 1);
        char rq[QUOTE_MAX];
        cap_err_set(err, CAP_E_INVALID,
                    "%s \"%s\": give the suffix alone (\"%s\"); it already matches the apex and "
                    "every subdomain",
                    opt, q, Q(rq, rest));
        return -1;
    }
    char name[CAP_VALUE_HOSTNAME_MAX + 1];
    if (check_hostname(opt, q, text, strlen(text), name, sizeof name, err) < 0)
        return -1;
    if (!strchr(name, '.')) {
        cap_err_set(err, CAP_E_INVALID,
                    "%s \"%s\": a single label would match a whole top-level domain; give a "
                    "domain such as example.com",
                    opt, q);
        return -1;
    }
    if (strlen(name) + 1 > n) {
        cap_err_set(err, CAP_E_LIMIT, "%s \"%s\": no room for the name", opt, q);
        return -1;
    }
    memcpy(out, name, strlen(name) + 1);
    return 0;
}

int cap_value_url(const char *opt, const char *text, struct cap_err *err)
{
    char q[QUOTE_MAX];
    Q(q, text);
    size_t len = strlen(text);
    if (len > CAP_VALUE_URL_MAX) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": longer than %d bytes", opt, q,
                    CAP_VALUE_URL_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= 0x20 || c >= 0x7f) {
            cap_err_set(err, CAP_E_INVALID,
                        "%s \"%s\": spaces, control and non-ASCII bytes must be percent-encoded",
                        opt, q);
            return -1;
        }
    }
    const char *p;
    if (strncasecmp(text, "https://", 8) == 0)
        p = text + 8;
    else if (strncasecmp(text, "http://", 7) == 0)
        p = text + 7;
    else {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": only http:// and https:// URLs are allowed",
                    opt, q);
        return -1;
    }
    size_t alen = strcspn(p, "/?#");
    const char *auth_end = p + alen;
    if (memchr(p, '@', alen)) {
        cap_err_set(err, CAP_E_INVALID,
                    "%s \"%s\": credentials in the URL are not allowed (they would be logged)", opt,
                    q);
        return -1;
    }
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', alen);
        if (!rb) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": unterminated [IPv6 address]", opt, q);
            return -1;
        }
        host = p + 1;
        host_end = rb;
        if (rb + 1 < auth_end) {
            if (rb[1] != ':') {
                cap_err_set(err, CAP_E_INVALID, "%s \"%s\": junk after the [IPv6 address]", opt, q);
                return -1;
            }
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', alen);
        host_end = colon ? colon : auth_end;
        port = colon ? colon + 1 : NULL;
    }
    if (host_end == host) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": no host", opt, q);
        return -1;
    }
    if (port) {
        char pt[8];
        size_t pl = (size_t)(auth_end - port);
        int pv = 0;
        struct cap_err e = {0};
        if (pl == 0 || pl >= sizeof pt) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": bad port", opt, q);
            return -1;
        }
        memcpy(pt, port, pl);
        pt[pl] = '\0';
        if (cap_value_port(opt, pt, &pv, &e) < 0) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": port must be 1-65535", opt, q);
            return -1;
        }
    }
    char h[INET6_ADDRSTRLEN + 1];
    size_t hl = (size_t)(host_end - host);
    uint8_t a[16];
    int fam = 0;
    if (hl < sizeof h) {
        memcpy(h, host, hl);
        h[hl] = '\0';
        fam = inet_pton(AF_INET, h, a) == 1    ? AF_INET
              : inet_pton(AF_INET6, h, a) == 1 ? AF_INET6
                                               : 0;
    }
    if (fam) {
        /* Only the always-refused blocks: loopback and network.deny depend on the config. */
        struct cap_policy always = {.deny = NULL, .deny_n = 0, .allow_loopback = true};
        char reason[CAP_POLICY_REASON_MAX];
        if (cap_policy_check_bytes(&always, fam, a, reason, sizeof reason) != CAP_POLICY_ALLOWED) {
            cap_err_set(err, CAP_E_INVALID,
                        "%s \"%s\": the host lies inside %s, which the network policy always "
                        "refuses",
                        opt, q, reason);
            return -1;
        }
        return 0;
    }
    if (*p == '[') {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": not an IPv6 address in brackets", opt, q);
        return -1;
    }
    char name[CAP_VALUE_HOSTNAME_MAX + 1];
    return check_hostname(opt, q, host, hl, name, sizeof name, err);
}

int cap_value_text(const char *opt, const char *text, size_t max, struct cap_err *err)
{
    char q[QUOTE_MAX];
    size_t len = strlen(text);
    if (len == 0 || len > max) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must be 1-%zu bytes", opt, Q(q, text), max);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": control characters are not allowed", opt,
                        Q(q, text));
            return -1;
        }
    }
    return 0;
}

char *cap_value_pem_pubkey(const char *opt, const char *path, const char *pem, size_t len,
                           struct cap_err *err)
{
    char q[QUOTE_MAX];
    if (len > CAP_VALUE_PEM_MAX || len > (size_t)INT32_MAX) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": larger than %d bytes", opt, Q(q, path),
                    CAP_VALUE_PEM_MAX);
        return NULL;
    }
    ERR_clear_error();
    BIO *in = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = in ? PEM_read_bio_PUBKEY(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    if (!key) {
        ERR_clear_error();
        cap_err_set(err, CAP_E_INVALID,
                    "%s \"%s\": not a PEM public key (expected \"-----BEGIN PUBLIC KEY-----\")",
                    opt, Q(q, path));
        return NULL;
    }
    BIO *out = BIO_new(BIO_s_mem());
    char *text = NULL;
    if (out && PEM_write_bio_PUBKEY(out, key) == 1) {
        char *data = NULL;
        long n = BIO_get_mem_data(out, &data);
        text = n > 0 ? malloc((size_t)n + 1) : NULL;
        if (text) {
            memcpy(text, data, (size_t)n);
            text[n] = '\0';
        }
    }
    BIO_free(out);
    EVP_PKEY_free(key);
    ERR_clear_error();
    if (!text)
        cap_err_set(err, CAP_E_NOMEM, "%s \"%s\": cannot re-encode the key", opt, Q(q, path));
    return text;
}
