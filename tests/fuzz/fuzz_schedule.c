/* Fuzz target for the schedule parser: arbitrary bytes must parse or fail cleanly, and a parsed
 * schedule must give strictly increasing due times that respect its own invariants. */
#include "common/schedule.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reference match of one minute against the cron bit sets (Vixie day rule). */
static int cron_matches(const struct cap_schedule *s, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm))
        abort();
    int dom = (s->cron_dom >> tm.tm_mday) & 1, dow = (s->cron_dow >> tm.tm_wday) & 1;
    int day = (s->dom_star || s->dow_star) ? (dom && dow) : (dom || dow);
    return t % 60 == 0 && ((s->cron_min >> tm.tm_min) & 1) && ((s->cron_hour >> tm.tm_hour) & 1) &&
           ((s->cron_mon >> (tm.tm_mon + 1)) & 1) && day;
}

/* Checks that n is a due time of s, and for cron that no minute in (t, n) was due when the
 * gap is short enough to scan. */
static void check_due(const struct cap_schedule *s, int64_t t, int64_t n)
{
    switch (s->kind) {
    case CAP_SCHED_CRON:
        if (!cron_matches(s, n))
            abort();
        if (n - t <= 3 * 86400)
            for (int64_t m = (t / 60 + 1) * 60; m < n; m += 60)
                if (cron_matches(s, m))
                    abort();
        break;
    case CAP_SCHED_HOURLY:
        if (!s->spread && n % 3600 != s->minute * 60)
            abort();
        break;
    case CAP_SCHED_DAILY:
        if (!s->spread && n % 86400 != s->hour * 3600 + s->minute * 60)
            abort();
        break;
    case CAP_SCHED_WEEKLY:
        /* 1970-01-04 was a Sunday; due times before it (n < 3 days) give a negative
         * remainder in C, so bring it into 0..week. */
        if (!s->spread && ((n - 3 * 86400) % (7 * 86400) + 7 * 86400) % (7 * 86400) !=
                              s->wday * 86400 + s->hour * 3600 + s->minute * 60)
            abort();
        break;
    default:
        break;
    }
}

static void check_sequence(const struct cap_schedule *s, int64_t start, uint64_t seed)
{
    int64_t t = start;
    int64_t prev = -1;
    for (int i = 0; i < 4; i++) {
        int64_t n = cap_schedule_next(s, t, seed);
        if (n == -1) {
            /* Only manual schedules, impossible cron and the end of time have no next. */
            if (s->kind != CAP_SCHED_MANUAL && s->kind != CAP_SCHED_CRON &&
                t + CAP_SCHEDULE_EVERY_MAX < CAP_SCHEDULE_TIME_MAX)
                abort();
            return;
        }
        if (s->kind == CAP_SCHED_MANUAL)
            abort();
        if (n <= t || n > CAP_SCHEDULE_TIME_MAX)
            abort();
        if (n != cap_schedule_next(s, t, seed))
            abort(); /* deterministic */
        check_due(s, t, n);
        if (s->kind == CAP_SCHED_EVERY && prev >= 0 && n - prev != s->every_s)
            abort();
        if (s->kind == CAP_SCHED_DAILY && prev >= 0 && n - prev != 86400)
            abort();
        if (s->kind == CAP_SCHED_HOURLY && prev >= 0 && n - prev != 3600)
            abort();
        if (s->kind == CAP_SCHED_WEEKLY && prev >= 0 && n - prev != 7 * 86400)
            abort();
        /* A due time found from just before it is the same due time. */
        if (n - 1 >= t && cap_schedule_next(s, n - 1, seed) != n)
            abort();
        int64_t c = cap_schedule_next_after_run(s, t, n, seed);
        if (c != -1 && c <= n)
            abort();
        prev = n;
        t = n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct cap_schedule s;
    struct cap_err err;
    cap_err_clear(&err);
    if (cap_schedule_parse(text, &s, &err) == 0) {
        if (err.code != CAP_E_NONE)
            abort();
        uint64_t seed = size;
        for (size_t i = 0; i < size && i < 8; i++)
            seed = seed * 131 + data[i];
        check_sequence(&s, 0, seed);
        check_sequence(&s, INT64_C(1795000000), seed); /* late 2026 */
        check_sequence(&s, INT64_C(4107542399), seed); /* end of 2099 */
        check_sequence(&s, CAP_SCHEDULE_TIME_MAX - 86400 * 40, seed);
    } else {
        if (err.code != CAP_E_INVALID || strncmp(err.msg, "schedule", 8) != 0 ||
            memchr(err.msg, '\0', sizeof err.msg) == NULL)
            abort();
    }
    free(text);
    return 0;
}
