/* The schedule language: parses manual/once, every DURATION, hourly/daily/weekly and 5-field
 * cron text, and computes the next due time in UTC with timegm/gmtime_r (never local time). */
#include "common/schedule.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Most words a schedule may have (cron with UTC has 6); more is an error. */
#define SCHED_TOKENS_MAX 8
#define SECS_HOUR 3600
#define SECS_DAY 86400
#define SECS_WEEK (7 * SECS_DAY)
/* 1970-01-04 00:00:00 UTC was a Sunday: weeks are counted from there. */
#define WEEK_ANCHOR (3 * SECS_DAY)
/* Cron search bound in years. A possible expression is due within 40 years: the rarest is
 * Feb 29 on a given weekday (day-of-week field "*" slash 7, Vixie AND rule), 2088 then 2128. */
#define CRON_SEARCH_YEARS 41

static const char EXPECTED_FORMS[] =
    "expected manual, once, every DURATION, hourly, daily [HH:MM UTC], weekly [DAY HH:MM UTC] "
    "or a 5-field cron expression";

struct tok {
    size_t off, len;
};

struct pctx {
    const char *orig; /* trimmed original text, original case, for messages */
    size_t orig_len;
    char low[CAP_SCHEDULE_TEXT_MAX + 1]; /* lower-cased copy used for matching */
    size_t ntok;                         /* all words, even past SCHED_TOKENS_MAX */
    struct tok tok[SCHED_TOKENS_MAX];
    struct cap_err *err;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char to_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Records `schedule "TEXT": DETAIL`; always returns -1. */
static int fail(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct pctx *c, const char *fmt, ...)
{
    char detail[CAP_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    cap_err_quote(q, sizeof q, c->orig, c->orig_len);
    cap_err_set(c->err, CAP_E_INVALID, "schedule \"%s\": %s", q, detail);
    return -1;
}

/* Quotes a piece of the original text (escaped, cut) for a message. */
static const char *quote_span(char *out, size_t n, const struct pctx *c, size_t off, size_t len)
{
    return cap_err_quote(out, n, c->orig + off, len);
}

static const char *quote_tok(char *out, size_t n, const struct pctx *c, size_t i)
{
    return quote_span(out, n, c, c->tok[i].off, c->tok[i].len);
}

static const char *tok_low(const struct pctx *c, size_t i)
{
    return c->low + c->tok[i].off;
}

static bool tok_is(const struct pctx *c, size_t i, const char *word)
{
    size_t n = strlen(word);
    return i < c->ntok && c->tok[i].len == n && memcmp(tok_low(c, i), word, n) == 0;
}

static bool span_is(const char *p, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len == n && memcmp(p, word, n) == 0;
}

/* ---- time zone suffixes ---------------------------------------------------------------- */

static const char *const TZ_NAMES[] = {
    "z",   "gmt", "cet", "cest", "eet",  "eest", "wet",  "west", "bst",  "ist",
    "est", "edt", "cst", "cdt",  "mst",  "mdt",  "pst",  "pdt",  "akst", "akdt",
    "hst", "jst", "kst", "aest", "aedt", "acst", "acdt", "awst", "nzst", "nzdt",
    "msk", "sgt", "hkt", "wib",  "sast", "art",  "brt",  "ict",  "pht",  "local"};

/* True for a token that names a time zone other than UTC: an abbreviation, an IANA name
 * (Europe/Paris), an offset (+01:00) or UTC/GMT with an offset (utc+1). */
static bool looks_like_tz(const char *p, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < sizeof TZ_NAMES / sizeof TZ_NAMES[0]; i++)
        if (span_is(p, len, TZ_NAMES[i]))
            return true;
    if ((p[0] == '+' || p[0] == '-') && len > 1 && is_digit(p[1]))
        return true;
    if (len > 3 && (memcmp(p, "utc", 3) == 0 || memcmp(p, "gmt", 3) == 0) &&
        (p[3] == '+' || p[3] == '-'))
        return true;
    if (is_alpha(p[0]))
        for (size_t i = 1; i < len; i++)
            if (p[i] == '/')
                return true;
    return false;
}

/* Checks what follows a complete time form from token i on: nothing, or "utc". `expected`
 * describes what could still have come at token i, for the message. */
static int parse_tail(struct pctx *c, size_t i, const char *expected)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    if (i >= c->ntok)
        return 0;
    if (tok_is(c, i, "utc")) {
        if (i + 1 == c->ntok)
            return 0;
        return fail(c, "unexpected \"%s\" after UTC", quote_tok(q, sizeof q, c, i + 1));
    }
    if (looks_like_tz(tok_low(c, i), c->tok[i].len))
        return fail(c, "only UTC is supported");
    if (expected)
        return fail(c, "expected %s, got \"%s\"", expected, quote_tok(q, sizeof q, c, i));
    return fail(c, "unexpected \"%s\"", quote_tok(q, sizeof q, c, i));
}

/* ---- small numbers --------------------------------------------------------------------- */

/* Reads 1..max_digits decimal digits from p[0..len) exactly; -1 if anything else. */
static int read_uint(const char *p, size_t len, size_t max_digits)
{
    if (len == 0 || len > max_digits)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Parses "H:MM" or "HH:MM" at token i into hour and minute. */
static int parse_hhmm(struct pctx *c, size_t i, int *hour, int *minute)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    const char *p = tok_low(c, i);
    size_t len = c->tok[i].len;
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return fail(c, "expected time HH:MM, got \"%s\"", quote_tok(q, sizeof q, c, i));
    size_t hl = (size_t)(colon - p), ml = len - hl - 1;
    int h = read_uint(p, hl, 2);
    int m = ml == 2 ? read_uint(colon + 1, ml, 2) : -1;
    if (h < 0 || m < 0)
        return fail(c, "expected time HH:MM, got \"%s\"", quote_tok(q, sizeof q, c, i));
    if (h > 23)
        return fail(c, "hour %d out of range 0-23", h);
    if (m > 59)
        return fail(c, "minute %d out of range 0-59", m);
    *hour = h;
    *minute = m;
    return 0;
}

/* ---- every DURATION -------------------------------------------------------------------- */

static int parse_every(struct pctx *c, struct cap_schedule *s)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    if (c->ntok < 2)
        return fail(c, "expected a duration after \"every\" (e.g. every 15m, every 1h30m)");
    const char *p = tok_low(c, 1);
    size_t len = c->tok[1].len;
    static const char units[] = "dhms";
    static const int64_t unit_s[] = {SECS_DAY, SECS_HOUR, 60, 1};
    int last_rank = -1;
    int64_t total = 0;
    bool too_big = false;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && is_digit(p[i]))
            i++;
        size_t nd = i - start;
        const char *u = i < len && p[i] != '\0' ? strchr(units, p[i]) : NULL;
        if (nd == 0 || !u) {
            if (nd > 0 && i == len)
                return fail(c, "duration \"%s\" has no unit (expected d, h, m or s, e.g. 90s)",
                            quote_tok(q, sizeof q, c, 1));
            return fail(c, "bad duration \"%s\" (expected e.g. 90s, 15m, 1h30m, 1d)",
                        quote_tok(q, sizeof q, c, 1));
        }
        int rank = (int)(u - units);
        if (rank <= last_rank)
            return fail(c, "bad duration \"%s\" (units must come in the order d, h, m, s)",
                        quote_tok(q, sizeof q, c, 1));
        last_rank = rank;
        /* Past 9 digits the value is out of range anyway; keep the arithmetic in bounds. */
        if (nd > 9) {
            too_big = true;
        } else {
            int64_t v = 0;
            for (size_t k = start; k < start + nd; k++)
                v = v * 10 + (p[k] - '0');
            total += v * unit_s[rank];
        }
        i++;
    }
    if (too_big || total < CAP_SCHEDULE_EVERY_MIN || total > CAP_SCHEDULE_EVERY_MAX)
        return fail(c, "duration %s out of range 10s-366d", quote_tok(q, sizeof q, c, 1));
    if (c->ntok > 2)
        return fail(c, "unexpected \"%s\" after the duration", quote_tok(q, sizeof q, c, 2));
    s->kind = CAP_SCHED_EVERY;
    s->every_s = total;
    return 0;
}

/* ---- hourly / daily / weekly ----------------------------------------------------------- */

static const char *const DAY_SHORT[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const DAY_LONG[] = {"sunday",   "monday", "tuesday", "wednesday",
                                       "thursday", "friday", "saturday"};
static const char *const MONTH_SHORT[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};

static int day_index(const char *p, size_t len)
{
    for (int d = 0; d < 7; d++)
        if (span_is(p, len, DAY_SHORT[d]) || span_is(p, len, DAY_LONG[d]))
            return d;
    return -1;
}

static int parse_hourly(struct pctx *c, struct cap_schedule *s)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    size_t i = 1;
    bool at = tok_is(c, i, "at");
    if (at)
        i++;
    s->kind = CAP_SCHED_HOURLY;
    if (i < c->ntok && tok_low(c, i)[0] == ':') {
        int m = read_uint(tok_low(c, i) + 1, c->tok[i].len - 1, 2);
        if (m < 0)
            return fail(c, "expected :MM (minute past the hour), got \"%s\"",
                        quote_tok(q, sizeof q, c, i));
        if (m > 59)
            return fail(c, "minute %d out of range 0-59", m);
        s->minute = m;
        return parse_tail(c, i + 1, NULL);
    }
    if (at && i >= c->ntok)
        return fail(c, "expected :MM after \"at\"");
    if (at)
        return fail(c, "expected :MM after \"at\", got \"%s\"", quote_tok(q, sizeof q, c, i));
    s->spread = true;
    return parse_tail(c, i, ":MM (minute past the hour)");
}

static int parse_daily(struct pctx *c, struct cap_schedule *s)
{
    size_t i = 1;
    bool at = tok_is(c, i, "at");
    if (at)
        i++;
    s->kind = CAP_SCHED_DAILY;
    if (i < c->ntok && is_digit(tok_low(c, i)[0])) {
        if (parse_hhmm(c, i, &s->hour, &s->minute) < 0)
            return -1;
        return parse_tail(c, i + 1, NULL);
    }
    if (at && i >= c->ntok)
        return fail(c, "expected time HH:MM after \"at\"");
    if (at) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        return fail(c, "expected time HH:MM after \"at\", got \"%s\"",
                    quote_tok(q, sizeof q, c, i));
    }
    s->spread = true;
    return parse_tail(c, i, "time HH:MM");
}

static int parse_weekly(struct pctx *c, struct cap_schedule *s)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    s->kind = CAP_SCHED_WEEKLY;
    if (c->ntok < 2 || tok_is(c, 1, "utc") ||
        (c->ntok > 1 && looks_like_tz(tok_low(c, 1), c->tok[1].len))) {
        s->spread = true;
        return parse_tail(c, 1, NULL);
    }
    int d = day_index(tok_low(c, 1), c->tok[1].len);
    if (d < 0) {
        if (is_digit(tok_low(c, 1)[0]))
            return fail(c, "expected a day (mon..sun) before the time");
        return fail(c, "unknown day of week \"%s\" (expected mon..sun or monday..sunday)",
                    quote_tok(q, sizeof q, c, 1));
    }
    size_t i = 2;
    if (tok_is(c, i, "at"))
        i++;
    if (i >= c->ntok)
        return fail(c, "expected time HH:MM after \"%s\"", quote_tok(q, sizeof q, c, 1));
    if (parse_hhmm(c, i, &s->hour, &s->minute) < 0)
        return -1;
    s->wday = d;
    return parse_tail(c, i + 1, NULL);
}

/* ---- cron ------------------------------------------------------------------------------ */

static int next_bit(uint64_t mask, int from, int max);

struct cron_field {
    const char *name;  /* in "step 0 in minute field" */
    const char *value; /* in "minute 60 out of range 0-59" */
    int min, max;
    const char *const *names; /* name table indexed from names_base, or NULL */
    int names_base, names_count;
    const char *allowed; /* in "(expected 0-59)" */
};

static const struct cron_field CRON_FIELDS[5] = {
    {"minute", "minute", 0, 59, NULL, 0, 0, "0-59"},
    {"hour", "hour", 0, 23, NULL, 0, 0, "0-23"},
    {"day-of-month", "day of month", 1, 31, NULL, 0, 0, "1-31"},
    {"month", "month", 1, 12, MONTH_SHORT, 1, 12, "1-12 or jan-dec"},
    {"day-of-week", "day of week", 0, 7, DAY_SHORT, 0, 7, "0-7 or sun-sat"},
};

/* Reads a number or a name at p[*i..end) for field f. Returns the value (unchecked against the
 * range) or -1 after recording an error. */
static int cron_value(struct pctx *c, const struct cron_field *f, size_t base, const char *p,
                      size_t *i, size_t end)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    size_t start = *i;
    if (start < end && is_digit(p[start])) {
        while (*i < end && is_digit(p[*i]))
            (*i)++;
        int v = read_uint(p + start, *i - start, 4);
        if (v < 0 || v < f->min || v > f->max)
            return fail(c, "%s %s out of range %d-%d", f->value,
                        quote_span(q, sizeof q, c, base + start, *i - start), f->min, f->max);
        return v;
    }
    if (start < end && is_alpha(p[start])) {
        while (*i < end && is_alpha(p[*i]))
            (*i)++;
        for (int k = 0; f->names && k < f->names_count; k++)
            if (span_is(p + start, *i - start, f->names[k]))
                return f->names_base + k;
        if (f->names)
            return fail(c, "unknown %s name \"%s\" in %s field (expected %s)", f->value,
                        quote_span(q, sizeof q, c, base + start, *i - start), f->name, f->allowed);
    }
    return fail(c, "bad value \"%s\" in %s field (expected %s)",
                quote_span(q, sizeof q, c, base + start, end - start), f->name, f->allowed);
}

/* Parses one comma-separated item p[b..e) of field f into bits. */
static int cron_item(struct pctx *c, const struct cron_field *f, size_t base, const char *p,
                     size_t b, size_t e, uint64_t *bits)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    size_t i = b;
    int lo, hi;
    bool dow = f->max == 7;
    if (b == e)
        return fail(c, "empty list item in %s field", f->name);
    if (p[i] == '*') {
        i++;
        lo = f->min;
        hi = dow ? 6 : f->max;
    } else {
        lo = cron_value(c, f, base, p, &i, e);
        if (lo < 0)
            return -1;
        hi = lo;
        if (i < e && p[i] == '-') {
            i++;
            hi = cron_value(c, f, base, p, &i, e);
            if (hi < 0)
                return -1;
            if (dow && hi == 0 && lo > 0)
                hi = 7; /* "fri-sun": Sunday closes the week */
            if (hi < lo)
                return fail(c, "range \"%s\" in %s field is reversed",
                            quote_span(q, sizeof q, c, base + b, e - b), f->name);
        } else if (i < e && p[i] == '/') {
            hi = dow ? 6 : f->max; /* "a/n" is "a-max/n"; like "*", it stops at Saturday */
        }
    }
    int step = 1;
    if (i < e && p[i] == '/') {
        i++;
        size_t st = i;
        while (i < e && is_digit(p[i]))
            i++;
        if (i == st || i != e)
            return fail(c, "bad step \"%s\" in %s field",
                        quote_span(q, sizeof q, c, base + st, e - st), f->name);
        step = read_uint(p + st, i - st, 4);
        if (step == 0)
            return fail(c, "step 0 in %s field", f->name);
        if (step < 0 || step > f->max)
            return fail(c, "step %s in %s field out of range 1-%d",
                        quote_span(q, sizeof q, c, base + st, i - st), f->name, f->max);
    }
    if (i != e)
        return fail(c, "bad value \"%s\" in %s field (expected %s)",
                    quote_span(q, sizeof q, c, base + b, e - b), f->name, f->allowed);
    for (int v = lo; v <= hi; v += step)
        *bits |= UINT64_C(1) << (dow && v == 7 ? 0 : v);
    return 0;
}

static int cron_field_parse(struct pctx *c, size_t t, const struct cron_field *f, uint64_t *bits,
                            bool *star)
{
    const char *p = tok_low(c, t);
    size_t len = c->tok[t].len, b = 0;
    uint64_t acc = 0;
    for (;;) {
        const char *comma = memchr(p + b, ',', len - b);
        size_t e = comma ? (size_t)(comma - p) : len;
        if (cron_item(c, f, c->tok[t].off, p, b, e, &acc) < 0)
            return -1;
        if (!comma)
            break;
        b = e + 1;
    }
    *bits = acc;
    *star = p[0] == '*';
    return 0;
}

/* Longest each month can be (February in a leap year). */
static const int MONTH_DAYS_MAX[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

/* A cron expression whose days of month occur in none of its months is never due (Feb 30).
 * That happens only when the day-of-week field does not widen the choice: with both fields
 * restricted any listed weekday matches, and a day-of-month field starting with '*' holds 1. */
static int cron_check_possible(struct pctx *c, const uint64_t *bits, const bool *star)
{
    if (star[2] || !star[4])
        return 0;
    int first_day = next_bit(bits[2], 1, 31);
    for (int m = 1; m <= 12; m++)
        if (((bits[3] >> m) & 1u) && MONTH_DAYS_MAX[m] >= first_day)
            return 0;
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    return fail(c, "never due: no month in \"%s\" has day %d", quote_tok(q, sizeof q, c, 3),
                first_day);
}

static int parse_cron_tokens(struct pctx *c, struct cap_schedule *s)
{
    if (c->ntok == 6 && !tok_is(c, 5, "utc") && looks_like_tz(tok_low(c, 5), c->tok[5].len))
        return fail(c, "only UTC is supported");
    if (!(c->ntok == 5 || (c->ntok == 6 && tok_is(c, 5, "utc"))))
        return fail(c, "expected 5 fields (minute hour day-of-month month day-of-week), got %zu",
                    c->ntok);
    uint64_t bits[5];
    bool star[5];
    for (size_t k = 0; k < 5; k++)
        if (cron_field_parse(c, k, &CRON_FIELDS[k], &bits[k], &star[k]) < 0)
            return -1;
    if (cron_check_possible(c, bits, star) < 0)
        return -1;
    s->kind = CAP_SCHED_CRON;
    s->cron_min = bits[0];
    s->cron_hour = (uint32_t)bits[1];
    s->cron_dom = (uint32_t)bits[2];
    s->cron_mon = (uint16_t)bits[3];
    s->cron_dow = (uint8_t)bits[4];
    s->dom_star = star[2];
    s->dow_star = star[4];
    return 0;
}

static const struct {
    const char *name, *cron;
} CRON_MACROS[] = {
    {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
};

static void tokenize(struct pctx *c, const char *text, size_t len);

static int parse_macro(struct pctx *c, struct cap_schedule *s)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    for (size_t k = 0; k < sizeof CRON_MACROS / sizeof CRON_MACROS[0]; k++) {
        if (!tok_is(c, 0, CRON_MACROS[k].name))
            continue;
        if (parse_tail(c, 1, NULL) < 0)
            return -1;
        /* Expand into a private context whose messages still quote the user's text. */
        struct pctx m;
        memset(&m, 0, sizeof m);
        m.err = c->err;
        tokenize(&m, CRON_MACROS[k].cron, strlen(CRON_MACROS[k].cron));
        m.orig = c->orig;
        m.orig_len = c->orig_len;
        return parse_cron_tokens(&m, s);
    }
    return fail(c, "unknown macro \"%s\" (expected @hourly, @daily, @weekly, @monthly or @yearly)",
                quote_tok(q, sizeof q, c, 0));
}

/* Splits text[0..len) (already trimmed, len <= CAP_SCHEDULE_TEXT_MAX) into tokens; counts
 * but does not record tokens past SCHED_TOKENS_MAX. */
static void tokenize(struct pctx *c, const char *text, size_t len)
{
    c->orig = text;
    c->orig_len = len;
    c->ntok = 0;
    for (size_t i = 0; i < len; i++)
        c->low[i] = to_lower(text[i]);
    c->low[len] = '\0';
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space(text[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !is_space(text[i]))
            i++;
        if (c->ntok < SCHED_TOKENS_MAX) {
            c->tok[c->ntok].off = start;
            c->tok[c->ntok].len = i - start;
        }
        c->ntok++;
    }
}

int cap_schedule_parse(const char *text, struct cap_schedule *out, struct cap_err *err)
{
    struct pctx c;
    memset(&c, 0, sizeof c);
    c.err = err;
    if (!text) {
        cap_err_set(err, CAP_E_INVALID, "schedule: missing (%s)", EXPECTED_FORMS);
        return -1;
    }
    size_t len = strlen(text), b = 0;
    while (b < len && is_space(text[b]))
        b++;
    while (len > b && is_space(text[len - 1]))
        len--;
    if (len - b > CAP_SCHEDULE_TEXT_MAX) {
        c.orig = text + b;
        c.orig_len = len - b;
        return fail(&c, "too long (%zu bytes, at most %d)", len - b, CAP_SCHEDULE_TEXT_MAX);
    }
    tokenize(&c, text + b, len - b);
    if (c.ntok == 0)
        return fail(&c, "empty schedule (%s)", EXPECTED_FORMS);
    if (c.ntok > SCHED_TOKENS_MAX)
        return fail(&c, "too many words (%zu, at most %d)", c.ntok, SCHED_TOKENS_MAX);

    struct cap_schedule s;
    memset(&s, 0, sizeof s);
    int rc;
    const char *first = tok_low(&c, 0);
    if (tok_is(&c, 0, "manual") || tok_is(&c, 0, "once")) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        s.kind = CAP_SCHED_MANUAL;
        rc = c.ntok > 1 ? fail(&c, "unexpected \"%s\"", quote_tok(q, sizeof q, &c, 1)) : 0;
    } else if (tok_is(&c, 0, "every")) {
        rc = parse_every(&c, &s);
    } else if (tok_is(&c, 0, "hourly")) {
        rc = parse_hourly(&c, &s);
    } else if (tok_is(&c, 0, "daily")) {
        rc = parse_daily(&c, &s);
    } else if (tok_is(&c, 0, "weekly")) {
        rc = parse_weekly(&c, &s);
    } else if (first[0] == '@') {
        rc = parse_macro(&c, &s);
    } else if (is_digit(first[0]) || first[0] == '*') {
        rc = parse_cron_tokens(&c, &s);
    } else {
        rc = fail(&c, "unknown schedule (%s)", EXPECTED_FORMS);
    }
    if (rc < 0)
        return -1;
    *out = s;
    return 0;
}

/* ---- next due time --------------------------------------------------------------------- */

/* splitmix64 finaliser: consecutive seeds (source ids 1, 2, 3...) land far apart. */
static uint64_t seed_hash(uint64_t seed)
{
    uint64_t z = seed + UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* First t > after with t = offset (mod period); after >= 0, 0 <= offset < period. */
static int64_t next_periodic(int64_t after, int64_t period, int64_t offset)
{
    int64_t r = (after - offset) % period;
    if (r < 0)
        r += period;
    return after - r + period;
}

static bool cron_day_matches(const struct cap_schedule *s, const struct tm *tm)
{
    bool dom = (s->cron_dom >> tm->tm_mday) & 1u;
    bool dow = (s->cron_dow >> tm->tm_wday) & 1u;
    if (s->dom_star || s->dow_star)
        return dom && dow;
    return dom || dow;
}

/* Lowest set bit of mask at position >= from and <= max, or -1. */
static int next_bit(uint64_t mask, int from, int max)
{
    for (int v = from; v <= max; v++)
        if ((mask >> v) & 1u)
            return v;
    return -1;
}

/* Renormalises tm after a field was moved past its range (timegm, then gmtime_r). */
static void tm_normalise(struct tm *tm)
{
    time_t t = timegm(tm);
    gmtime_r(&t, tm);
}

static int64_t cron_next(const struct cap_schedule *s, int64_t after)
{
    time_t t0 = (time_t)((after / 60 + 1) * 60);
    struct tm tm;
    if (!gmtime_r(&t0, &tm))
        return -1;
    int last_year = tm.tm_year + CRON_SEARCH_YEARS;
    /* Each pass moves at least one field forward to the next candidate, so the loop ends. */
    while (tm.tm_year <= last_year) {
        if (!((s->cron_mon >> (tm.tm_mon + 1)) & 1u)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = 0;
            tm.tm_min = 0;
            tm_normalise(&tm);
            continue;
        }
        if (!cron_day_matches(s, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = 0;
            tm.tm_min = 0;
            tm_normalise(&tm);
            continue;
        }
        int h = next_bit(s->cron_hour, tm.tm_hour, 23);
        if (h < 0) {
            tm.tm_mday++;
            tm.tm_hour = 0;
            tm.tm_min = 0;
            tm_normalise(&tm);
            continue;
        }
        if (h != tm.tm_hour) {
            tm.tm_hour = h;
            tm.tm_min = 0;
        }
        int m = next_bit(s->cron_min, tm.tm_min, 59);
        if (m < 0) {
            tm.tm_hour++;
            tm.tm_min = 0;
            tm_normalise(&tm);
            continue;
        }
        tm.tm_min = m;
        tm.tm_sec = 0;
        return (int64_t)timegm(&tm);
    }
    return -1;
}

int64_t cap_schedule_next(const struct cap_schedule *s, int64_t after, uint64_t seed)
{
    if (!s || after < 0 || after > CAP_SCHEDULE_TIME_MAX)
        return -1;
    uint64_t h = seed_hash(seed);
    int64_t t;
    switch (s->kind) {
    case CAP_SCHED_EVERY:
        if (s->every_s < 1 || s->every_s > CAP_SCHEDULE_EVERY_MAX)
            return -1;
        t = next_periodic(after, s->every_s, (int64_t)(h % (uint64_t)s->every_s));
        break;
    case CAP_SCHED_HOURLY:
        t = next_periodic(after, SECS_HOUR,
                          s->spread ? (int64_t)(h % SECS_HOUR) : (int64_t)s->minute * 60);
        break;
    case CAP_SCHED_DAILY:
        t = next_periodic(after, SECS_DAY,
                          s->spread ? (int64_t)(h % SECS_DAY)
                                    : (int64_t)s->hour * SECS_HOUR + (int64_t)s->minute * 60);
        break;
    case CAP_SCHED_WEEKLY: {
        int64_t in_week = s->spread ? (int64_t)(h % SECS_WEEK)
                                    : (int64_t)s->wday * SECS_DAY + (int64_t)s->hour * SECS_HOUR +
                                          (int64_t)s->minute * 60;
        t = next_periodic(after, SECS_WEEK, (WEEK_ANCHOR + in_week) % SECS_WEEK);
        break;
    }
    case CAP_SCHED_CRON:
        t = cron_next(s, after);
        break;
    case CAP_SCHED_MANUAL:
    default:
        return -1;
    }
    if (t < 0 || t > CAP_SCHEDULE_TIME_MAX)
        return -1;
    return t;
}

int64_t cap_schedule_next_after_run(const struct cap_schedule *s, int64_t due, int64_t now,
                                    uint64_t seed)
{
    return cap_schedule_next(s, due > now ? due : now, seed);
}
