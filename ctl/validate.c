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

int cap_ctl_validate_text(const char *opt, const char *text, size_t max, struct cap_err *err)
{
    /* The same checks, in the same order, as the database's cap_text_problem. */
    char q[QUOTE_MAX];
    size_t len = strlen(text);
    if (strspn(text, " ") == len) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must not be empty", opt, Q(q, text));
        return -1;
    }
    if (len > max) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": longer than %zu bytes", opt, Q(q, text), max);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must not contain control characters", opt,
                        Q(q, text));
            return -1;
        }
    }
    return 0;
}

/* Reads exactly n decimal digits at s into *out. */
static bool fixed_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* "N" followed by one unit letter: seconds in *out. */
static bool parse_span(const char *s, int64_t *out)
{
    size_t len = strlen(s);
    if (len < 2 || len > 13 || strspn(s, "0123456789") != len - 1)
        return false;
    int64_t unit;
    switch (s[len - 1]) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    case 'w':
        unit = 7 * 86400;
        break;
    default:
        return false;
    }
    int64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++)
        n = n * 10 + (s[i] - '0'); /* at most 12 digits: no overflow */
    if (n > INT64_MAX / unit)
        return false;
    *out = n * unit;
    return true;
}

/* YYYY-MM-DD[(T| )HH:MM[:SS][Z|(+|-)HH:MM]]: Unix seconds in *out. */
static bool parse_date(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, zh = 0, zm = 0, sign = 0;
    if (!fixed_digits(s, 4, &y) || s[4] != '-' || !fixed_digits(s + 5, 2, &mo) || s[7] != '-' ||
        !fixed_digits(s + 8, 2, &d))
        return false;
    const char *p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (!fixed_digits(p + 1, 2, &h) || p[3] != ':' || !fixed_digits(p + 4, 2, &mi))
            return false;
        p += 6;
        if (*p == ':') {
            if (!fixed_digits(p + 1, 2, &sec))
                return false;
            p += 3;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p == '+' ? 1 : -1;
            if (!fixed_digits(p + 1, 2, &zh) || p[3] != ':' || !fixed_digits(p + 4, 2, &zm))
                return false;
            p += 6;
        }
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59 || zh > 23 || zm > 59)
        return false;
    *out =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - sign * (zh * 3600 + zm * 60);
    return true;
}

int cap_ctl_validate_until(const char *opt, const char *text, int64_t now, int64_t *out,
                           struct cap_err *err)
{
    /* 9999-12-31T23:59:59Z: PostgreSQL prints later years, but people do not mean them. */
    static const int64_t last = 253402300799;
    char q[QUOTE_MAX];
    int64_t t = 0, span = 0;
    if (parse_span(text, &span)) {
        if (span > last - now) {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must end before the year 10000", opt,
                        Q(q, text));
            return -1;
        }
        t = now + span;
    } else if (!parse_date(text, &t)) {
        cap_err_set(
            err, CAP_E_INVALID,
            "%s \"%s\": not a date or duration (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] "
            "in UTC unless a zone is given, or 30d, 12h, 15m, 45s, 2w)",
            opt, Q(q, text));
        return -1;
    }
    if (t <= now) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": is not in the future", opt, Q(q, text));
        return -1;
    }
    if (t > last) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must end before the year 10000", opt,
                    Q(q, text));
        return -1;
    }
    *out = t;
    return 0;
}

bool cap_ctl_until_span(const char *text, int64_t *secs)
{
    return parse_span(text, secs);
}

int cap_ctl_validate_pattern(const char *opt, const char *text, struct cap_err *err)
{
    /* The same checks, in the same order, as the database's cap_subject_pattern_problem. */
    char q[QUOTE_MAX];
    size_t len = strlen(text);
    if (len == 0) {
        cap_err_set(err, CAP_E_INVALID, "%s \"\": must not be empty", opt);
        return -1;
    }
    if (len > CAP_CTL_PATTERN_MAX) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": longer than %d bytes", opt, Q(q, text),
                    CAP_CTL_PATTERN_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (!(c < 0x80 && (isalnum(c) || strchr(".-_:[]*", c)))) {
            cap_err_set(err, CAP_E_INVALID,
                        "%s \"%s\": may hold only letters, digits, \".\", \"-\", \"_\", \":\", "
                        "\"[\", \"]\" and \"*\"",
                        opt, Q(q, text));
            return -1;
        }
    }
    if (strspn(text, "*") == len) {
        cap_err_set(err, CAP_E_INVALID,
                    "%s \"%s\": matches every subject; leave the option out instead", opt,
                    Q(q, text));
        return -1;
    }
    return 0;
}
