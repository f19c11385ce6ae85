/* Validation of capctl input that is not a source field, before anything is written. Pure:
 * messages name the option and the offending value. */
#include "ctl/validate.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/schedule.h"

/* Room for a quoted value: CAP_ERR_VALUE_MAX bytes, each at most 4 when escaped, and "...". */
#define QUOTE_MAX (CAP_ERR_VALUE_MAX * 4 + 8)

#define Q(buf, s) cap_err_quote((buf), sizeof(buf), (s), strlen(s))

int cap_ctl_validate_name(const char *name, struct cap_err *err)
{
    char q[QUOTE_MAX];
    size_t len = strlen(name);
    bool ok = len >= 1 && len <= 128 && isalnum((unsigned char)name[0]);
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        ok = c < 0x80 && (isalnum(c) || c == '.' || c == '_' || c == '-');
    }
    if (!ok) {
        cap_err_set(err, CAP_E_INVALID,
                    "source name \"%s\": use 1-128 letters, digits, \".\", \"_\" or \"-\", "
                    "starting with a letter or digit",
                    Q(q, name));
        return -1;
    }
    return 0;
}

int cap_ctl_validate_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
                         struct cap_err *err)
{
    return cap_value_int(opt, text, min, max, out, err);
}

int cap_ctl_validate_schedule(const char *opt, const char *text, struct cap_err *err)
{
    struct cap_schedule s;
    struct cap_err e = {0};
    if (cap_schedule_parse(text, &s, &e) < 0) {
        cap_err_set(err, CAP_E_INVALID, "%s: %s", opt, e.msg);
        return -1;
    }
    return 0;
}

int cap_ctl_validate_fingerprint(const char *text, char *out, size_t n, struct cap_err *err)
{
    char q[QUOTE_MAX];
    char fp[65];
    size_t len = strlen(text), o = 0;
    bool colons = len == 95;
    bool ok = len == 64 || colons;
    for (size_t i = 0; ok && i < len; i++) {
        if (colons && i % 3 == 2) {
            ok = text[i] == ':';
            continue;
        }
        ok = isxdigit((unsigned char)text[i]) != 0;
        if (ok)
            fp[o++] = (char)tolower((unsigned char)text[i]);
    }
    if (!ok || o != 64 || n < 65) {
        cap_err_set(err, CAP_E_INVALID,
                    "fingerprint \"%s\": expected a SHA-256 fingerprint, 64 hex digits",
                    Q(q, text));
        return -1;
    }
    fp[64] = '\0';
    memcpy(out, fp, 65);
    return 0;
}

int cap_ctl_validate_host_port(const char *text, char *host, size_t n, int *port,
                               struct cap_err *err)
{
    char q[QUOTE_MAX];
    Q(q, text);
    const char *colon = NULL, *h = text;
    size_t hl = 0;
    if (text[0] == '[') {
        const char *rb = strchr(text, ']');
        if (!rb || rb[1] != ':') {
            cap_err_set(err, CAP_E_INVALID, "endpoint \"%s\": expected HOST:PORT or [IPv6]:PORT",
                        q);
            return -1;
        }
        h = text + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || memchr(text, ':', (size_t)(colon - text))) {
            cap_err_set(err, CAP_E_INVALID, "endpoint \"%s\": expected HOST:PORT or [IPv6]:PORT",
                        q);
            return -1;
        }
        hl = (size_t)(colon - text);
    }
    if (hl == 0 || hl > CAP_CTL_HOSTNAME_MAX || hl + 1 > n) {
        cap_err_set(err, CAP_E_INVALID, "endpoint \"%s\": expected HOST:PORT or [IPv6]:PORT", q);
        return -1;
    }
    int p = 0;
    struct cap_err e = {0};
    if (cap_value_port("endpoint port", colon + 1, &p, &e) < 0) {
        cap_err_set(err, CAP_E_INVALID, "endpoint \"%s\": port must be 1-65535", q);
        return -1;
    }
    for (size_t i = 0; i < hl; i++)
        host[i] = (char)tolower((unsigned char)h[i]);
    host[hl] = '\0';
    *port = p;
    return 0;
}
