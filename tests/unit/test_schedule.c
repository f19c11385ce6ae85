/* Unit tests for the schedule language: every form, next-time computation across month and
 * year ends, leap years, Vixie day rule, spread offsets, catch-up and exact error messages. */
#include "common/schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int checks;

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define ASSERT_EQ(exp, got)                                                                        \
    do {                                                                                           \
        checks++;                                                                                  \
        int64_t e_ = (int64_t)(exp), g_ = (int64_t)(got);                                          \
        if (e_ != g_) {                                                                            \
            fprintf(stderr, "%s:%d: expected %s == %" PRId64 ", got %" PRId64 "\n", __FILE__,      \
                    __LINE__, #got, e_, g_);                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define ASSERT_STR(exp, got)                                                                       \
    do {                                                                                           \
        checks++;                                                                                  \
        const char *e_ = (exp), *g_ = (got);                                                       \
        if (strcmp(e_, g_) != 0) {                                                                 \
            fprintf(stderr, "%s:%d: expected \"%s\"\n%*s got \"%s\"\n", __FILE__, __LINE__, e_,    \
                    (int)strlen(__FILE__) + 6, "", g_);                                            \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Unix time of a UTC civil date, computed independently of timegm (days-from-civil). */
static int64_t ts(int y, int mo, int d, int h, int mi, int s)
{
    y -= mo <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    return days * 86400 + h * 3600 + mi * 60 + s;
}

static struct cap_schedule parse_ok(const char *text, int line)
{
    struct cap_schedule s;
    struct cap_err err;
    cap_err_clear(&err);
    if (cap_schedule_parse(text, &s, &err) != 0) {
        fprintf(stderr, "%s:%d: parse of \"%s\" failed: %s\n", __FILE__, line, text, err.msg);
        exit(1);
    }
    checks++;
    return s;
}
#define PARSE(text) parse_ok((text), __LINE__)

static void parse_fails(const char *text, const char *msg, int line)
{
    struct cap_schedule s;
    memset(&s, 0xA5, sizeof s);
    struct cap_schedule before = s;
    struct cap_err err;
    cap_err_clear(&err);
    if (cap_schedule_parse(text, &s, &err) != -1) {
        fprintf(stderr, "%s:%d: parse of \"%s\" succeeded, expected: %s\n", __FILE__, line, text,
                msg);
        exit(1);
    }
    if (strcmp(err.msg, msg) != 0 || err.code != CAP_E_INVALID) {
        fprintf(stderr, "%s:%d: wrong error for \"%s\"\n  expected: %s\n  got:      %s (code %d)\n",
                __FILE__, line, text, msg, err.msg, err.code);
        exit(1);
    }
    if (memcmp(&s, &before, sizeof s) != 0) {
        fprintf(stderr, "%s:%d: out written on failure for \"%s\"\n", __FILE__, line, text);
        exit(1);
    }
    checks++;
}
#define FAILS(text, msg) parse_fails((text), (msg), __LINE__)

#define FORMS                                                                                      \
    "(expected manual, once, every DURATION, hourly, daily [HH:MM UTC], weekly [DAY HH:MM UTC] "   \
    "or a 5-field cron expression)"

static void test_parse_forms(void)
{
    struct cap_schedule s = PARSE("manual");
    ASSERT_EQ(CAP_SCHED_MANUAL, s.kind);
    s = PARSE("  ONCE \t\n");
    ASSERT_EQ(CAP_SCHED_MANUAL, s.kind);
    ASSERT_EQ(-1, cap_schedule_next(&s, ts(2026, 1, 1, 0, 0, 0), 1));
    ASSERT_EQ(-1, cap_schedule_next_after_run(&s, 0, ts(2026, 1, 1, 0, 0, 0), 1));

    static const struct {
        const char *text;
        int64_t secs;
    } every[] = {{"every 90s", 90},        {"every 15m", 900},        {"every 1h", 3600},
                 {"every 1d", 86400},      {"every 1h30m", 5400},     {"EVERY 10S", 10},
                 {"every 366d", 31622400}, {"every 1d2h3m4s", 93784}, {"every 0d0h0m10s", 10}};
    for (size_t i = 0; i < sizeof every / sizeof every[0]; i++) {
        s = PARSE(every[i].text);
        ASSERT_EQ(CAP_SCHED_EVERY, s.kind);
        ASSERT_EQ(every[i].secs, s.every_s);
    }

    s = PARSE("hourly");
    ASSERT_EQ(CAP_SCHED_HOURLY, s.kind);
    ASSERT(s.spread);
    const char *hourly15[] = {"hourly :15", "hourly at :15", "Hourly :15 UTC", "hourly at :15 utc"};
    for (size_t i = 0; i < 4; i++) {
        s = PARSE(hourly15[i]);
        ASSERT_EQ(CAP_SCHED_HOURLY, s.kind);
        ASSERT(!s.spread);
        ASSERT_EQ(15, s.minute);
    }
    s = PARSE("hourly UTC");
    ASSERT(s.spread);

    s = PARSE("daily");
    ASSERT_EQ(CAP_SCHED_DAILY, s.kind);
    ASSERT(s.spread);
    const char *daily[] = {"daily 03:07", "daily 3:07", "DAILY 03:07 UTC", "daily at 03:07 utc",
                           " daily   03:07  "};
    for (size_t i = 0; i < 5; i++) {
        s = PARSE(daily[i]);
        ASSERT_EQ(CAP_SCHED_DAILY, s.kind);
        ASSERT(!s.spread);
        ASSERT_EQ(3, s.hour);
        ASSERT_EQ(7, s.minute);
    }
    s = PARSE("daily 23:59");
    ASSERT_EQ(23, s.hour);
    ASSERT_EQ(59, s.minute);
    s = PARSE("daily 0:00");
    ASSERT_EQ(0, s.hour);

    s = PARSE("weekly");
    ASSERT_EQ(CAP_SCHED_WEEKLY, s.kind);
    ASSERT(s.spread);
    s = PARSE("weekly utc");
    ASSERT(s.spread);
    const char *mon[] = {"weekly mon 04:30", "weekly Monday 04:30 UTC", "WEEKLY MON AT 4:30",
                         "weekly monday at 04:30 utc"};
    for (size_t i = 0; i < 4; i++) {
        s = PARSE(mon[i]);
        ASSERT_EQ(CAP_SCHED_WEEKLY, s.kind);
        ASSERT(!s.spread);
        ASSERT_EQ(1, s.wday);
        ASSERT_EQ(4, s.hour);
        ASSERT_EQ(30, s.minute);
    }
    const char *days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    const char *long_days[] = {"sunday",   "monday", "tuesday", "wednesday",
                               "thursday", "friday", "saturday"};
    for (int d = 0; d < 7; d++) {
        char buf[64];
        snprintf(buf, sizeof buf, "weekly %s 00:00", days[d]);
        ASSERT_EQ(d, PARSE(buf).wday);
        snprintf(buf, sizeof buf, "weekly %s 00:00", long_days[d]);
        ASSERT_EQ(d, PARSE(buf).wday);
    }
}

static void test_parse_cron(void)
{
    struct cap_schedule s = PARSE("*/15 * * * *");
    ASSERT_EQ(CAP_SCHED_CRON, s.kind);
    ASSERT_EQ((1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45), s.cron_min);
    ASSERT_EQ(0xFFFFFF, s.cron_hour);
    ASSERT_EQ(0xFFFFFFFEu, s.cron_dom);
    ASSERT_EQ(0x1FFE, s.cron_mon);
    ASSERT_EQ(0x7F, s.cron_dow);
    ASSERT(s.dom_star && s.dow_star);

    s = PARSE("10-50/20 1,5,9-11 1-5 jan,Jul,DEC mon-fri");
    ASSERT_EQ((1ull << 10) | (1ull << 30) | (1ull << 50), s.cron_min);
    ASSERT_EQ((1u << 1) | (1u << 5) | (1u << 9) | (1u << 10) | (1u << 11), s.cron_hour);
    ASSERT_EQ(0x3E, s.cron_dom);
    ASSERT_EQ((1u << 1) | (1u << 7) | (1u << 12), s.cron_mon);
    ASSERT_EQ(0x3E, s.cron_dow);
    ASSERT(!s.dom_star && !s.dow_star);

    /* 7 is Sunday, like 0; ranges ending on Sunday wrap to it. */
    ASSERT_EQ(1, PARSE("0 0 * * 7").cron_dow);
    ASSERT_EQ(1, PARSE("0 0 * * 0").cron_dow);
    ASSERT_EQ(1, PARSE("0 0 * * SUN").cron_dow);
    ASSERT_EQ(0x7F, PARSE("0 0 * * 0-7").cron_dow);
    ASSERT_EQ((1u << 5) | (1u << 6) | 1u, PARSE("0 0 * * fri-sun").cron_dow);
    ASSERT_EQ((1u << 5) | (1u << 6) | 1u, PARSE("0 0 * * 5-7").cron_dow);
    ASSERT_EQ((1u << 0) | (1u << 2) | (1u << 4) | (1u << 6), PARSE("0 0 * * */2").cron_dow);
    /* "a/n" runs from a to the field's maximum. */
    ASSERT_EQ((1ull << 5) | (1ull << 25) | (1ull << 45), PARSE("5/20 * * * *").cron_min);
    /* In the day-of-week field "a/n" stops at Saturday, like "*\/n": no Sunday from 7. */
    ASSERT_EQ((1u << 1) | (1u << 3) | (1u << 5), PARSE("0 0 * * 1/2").cron_dow);
    ASSERT_EQ((1u << 5) | 1u, PARSE("0 0 * * 5-7/2").cron_dow);
    /* A step larger than the range keeps only its start. */
    ASSERT_EQ(1ull, PARSE("*/59 * * * *").cron_min & 1ull);
    ASSERT_EQ((1ull << 0) | (1ull << 59), PARSE("*/59 * * * *").cron_min);
    /* Vixie: a field that starts with '*' counts as unrestricted for the day rule. */
    s = PARSE("0 12 */2 * fri");
    ASSERT(s.dom_star && !s.dow_star);
    s = PARSE("0 0 * * * UTC");
    ASSERT_EQ(CAP_SCHED_CRON, s.kind);

    s = PARSE("@hourly");
    ASSERT_EQ(CAP_SCHED_CRON, s.kind);
    ASSERT_EQ(1, s.cron_min);
    ASSERT_EQ(0xFFFFFF, s.cron_hour);
    s = PARSE("@DAILY");
    ASSERT_EQ(1, s.cron_hour);
    s = PARSE("@midnight");
    ASSERT_EQ(1, s.cron_hour);
    s = PARSE("@weekly");
    ASSERT_EQ(1, s.cron_dow);
    ASSERT(s.dom_star && !s.dow_star);
    s = PARSE("@monthly");
    ASSERT_EQ(2, s.cron_dom);
    s = PARSE("@yearly utc");
    ASSERT_EQ(2, s.cron_mon);
    ASSERT_EQ(2, s.cron_dom);
    ASSERT_EQ(2, PARSE("@annually").cron_mon);
}

static int64_t next_of(const char *text, int64_t after)
{
    struct cap_schedule s = PARSE(text);
    return cap_schedule_next(&s, after, 12345);
}

static void test_next_fixed(void)
{
    /* Sanity of the helper against a value from date(1). */
    ASSERT_EQ(1835395200, ts(2028, 2, 29, 0, 0, 0));

    int64_t now = ts(2026, 11, 26, 9, 12, 53); /* a Thursday */
    ASSERT_EQ(ts(2026, 11, 26, 9, 15, 0), next_of("hourly :15", now));
    ASSERT_EQ(ts(2026, 11, 26, 10, 15, 0), next_of("hourly :15", ts(2026, 11, 26, 9, 15, 0)));
    ASSERT_EQ(ts(2026, 11, 26, 9, 15, 0), next_of("hourly :15", ts(2026, 11, 26, 9, 14, 59)));
    ASSERT_EQ(ts(2027, 1, 1, 0, 0, 0), next_of("hourly :00", ts(2026, 12, 31, 23, 0, 0)));

    ASSERT_EQ(ts(2026, 11, 27, 3, 0, 0), next_of("daily 03:00", now));
    ASSERT_EQ(ts(2026, 11, 26, 23, 59, 0), next_of("daily 23:59 UTC", now));
    ASSERT_EQ(ts(2027, 1, 1, 3, 0, 0), next_of("daily 03:00", ts(2026, 12, 31, 3, 0, 0)));
    ASSERT_EQ(ts(2028, 3, 1, 0, 0, 0), next_of("daily 00:00", ts(2028, 2, 29, 0, 0, 0)));
    ASSERT_EQ(ts(2028, 2, 29, 0, 0, 0), next_of("daily 00:00", ts(2028, 2, 28, 0, 0, 0)));

    ASSERT_EQ(ts(2026, 11, 30, 3, 0, 0), next_of("weekly mon 03:00", now));
    ASSERT_EQ(ts(2026, 12, 7, 3, 0, 0), next_of("weekly mon 03:00", ts(2026, 11, 30, 3, 0, 0)));
    ASSERT_EQ(ts(2026, 11, 26, 9, 13, 0), next_of("weekly thu 09:13", now));
    ASSERT_EQ(ts(2026, 12, 3, 9, 12, 0), next_of("weekly thursday 09:12", now));
    ASSERT_EQ(ts(2026, 12, 27, 0, 0, 0), next_of("weekly sun 00:00", ts(2026, 12, 26, 12, 0, 0)));
    ASSERT_EQ(ts(2027, 1, 2, 23, 59, 0), next_of("weekly sat 23:59", ts(2026, 12, 27, 0, 0, 0)));
    /* The epoch is a Thursday: the week arithmetic must not assume it starts a week. */
    ASSERT_EQ(ts(1970, 1, 4, 0, 0, 0), next_of("weekly sun 00:00", 0));
    ASSERT_EQ(ts(1970, 1, 1, 0, 1, 0), next_of("weekly thu 00:01", 0));
}

static void test_next_cron(void)
{
    int64_t now = ts(2026, 11, 26, 9, 12, 53);
    ASSERT_EQ(ts(2026, 11, 26, 9, 15, 0), next_of("*/15 * * * *", now));
    ASSERT_EQ(ts(2026, 11, 26, 9, 13, 0), next_of("* * * * *", now));
    ASSERT_EQ(ts(2026, 11, 26, 9, 13, 0), next_of("* * * * *", ts(2026, 11, 26, 9, 12, 0)));
    ASSERT_EQ(ts(2026, 11, 26, 10, 10, 0), next_of("10-50/20 * * * *", ts(2026, 11, 26, 9, 50, 0)));
    ASSERT_EQ(ts(2026, 11, 26, 9, 30, 0), next_of("10-50/20 * * * *", now));

    /* Year and month ends. */
    ASSERT_EQ(ts(2027, 1, 1, 0, 0, 0), next_of("0 0 1 1 *", ts(2026, 12, 31, 23, 59, 59)));
    ASSERT_EQ(ts(2027, 12, 31, 23, 59, 0), next_of("59 23 31 12 *", ts(2026, 12, 31, 23, 59, 0)));
    ASSERT_EQ(ts(2026, 12, 1, 0, 0, 0), next_of("@monthly", now));
    ASSERT_EQ(ts(2027, 1, 1, 0, 0, 0), next_of("@yearly", now));
    ASSERT_EQ(ts(2026, 11, 29, 0, 0, 0), next_of("@weekly", now));
    ASSERT_EQ(ts(2026, 11, 26, 10, 0, 0), next_of("@hourly", now));
    ASSERT_EQ(ts(2026, 11, 27, 0, 0, 0), next_of("@daily", now));
    /* Day 31 skips 30-day months. */
    ASSERT_EQ(ts(2026, 5, 31, 0, 0, 0), next_of("0 0 31 * *", ts(2026, 4, 1, 0, 0, 0)));
    ASSERT_EQ(ts(2026, 7, 31, 0, 0, 0), next_of("0 0 31 * *", ts(2026, 5, 31, 0, 0, 0)));
    ASSERT_EQ(ts(2027, 1, 31, 0, 0, 0), next_of("0 0 31 * *", ts(2026, 12, 31, 0, 0, 0)));

    /* Feb 29 and leap years, 2100 is not one. */
    ASSERT_EQ(ts(2028, 2, 29, 0, 0, 0), next_of("0 0 29 2 *", ts(2025, 1, 1, 0, 0, 0)));
    ASSERT_EQ(ts(2032, 2, 29, 0, 0, 0), next_of("0 0 29 2 *", ts(2028, 2, 29, 0, 0, 0)));
    ASSERT_EQ(ts(2104, 2, 29, 0, 0, 0), next_of("0 0 29 feb *", ts(2096, 3, 1, 0, 0, 0)));
    ASSERT_EQ(ts(2000, 2, 29, 12, 0, 0), next_of("0 12 29 2 *", ts(1999, 3, 1, 0, 0, 0)));
    ASSERT_EQ(ts(2027, 3, 1, 0, 0, 0), next_of("0 0 1 3 *", ts(2026, 3, 1, 0, 0, 0)));

    /* The rarest possible day: Feb 29 on a Sunday (Vixie AND, as the weekday field starts with
     * '*'), 40 years apart across 2100. */
    ASSERT_EQ(ts(2032, 2, 29, 0, 0, 0), next_of("0 0 29 2 */7", ts(2025, 1, 1, 0, 0, 0)));
    ASSERT_EQ(ts(2128, 2, 29, 0, 0, 0), next_of("0 0 29 2 */7", ts(2088, 2, 29, 0, 0, 0)));
    /* Both fields restricted: Feb 29 or any Sunday in February. */
    ASSERT_EQ(ts(2026, 2, 1, 0, 0, 0), next_of("0 0 29 2 0", ts(2025, 3, 1, 0, 0, 0)));

    /* Impossible expressions are refused by the parser; a struct holding one anyway gives -1
     * after a bounded search, quickly. */
    struct cap_schedule imp = PARSE("0 0 28 2 *");
    imp.cron_dom = 1u << 30;
    clock_t c0 = clock();
    ASSERT_EQ(-1, cap_schedule_next(&imp, ts(2025, 1, 1, 0, 0, 0), 1));
    imp = PARSE("*/5 * 30 4,6,9,11 *");
    imp.cron_dom = 1u << 31;
    ASSERT_EQ(-1, cap_schedule_next(&imp, ts(2025, 1, 1, 0, 0, 0), 1));
    imp.cron_dom = (1u << 31) | (1u << 30); /* day 30 is fine again */
    ASSERT_EQ(ts(2025, 4, 30, 0, 0, 0), cap_schedule_next(&imp, ts(2025, 1, 1, 0, 0, 0), 1));
    ASSERT((double)(clock() - c0) / CLOCKS_PER_SEC < 2.0);

    /* Vixie day rule: both restricted gives OR. Nov 2026 Fridays: 6, 13, 20, 27. */
    ASSERT_EQ(ts(2026, 11, 6, 12, 0, 0), next_of("0 12 15 * fri", ts(2026, 11, 1, 0, 0, 0)));
    ASSERT_EQ(ts(2026, 11, 13, 12, 0, 0), next_of("0 12 15 * fri", ts(2026, 11, 6, 12, 0, 0)));
    ASSERT_EQ(ts(2026, 11, 15, 12, 0, 0), next_of("0 12 15 * fri", ts(2026, 11, 13, 12, 0, 0)));
    ASSERT_EQ(ts(2026, 11, 20, 12, 0, 0), next_of("0 12 15 * 5", ts(2026, 11, 15, 12, 0, 0)));
    /* Only day of week restricted: Fridays only. */
    ASSERT_EQ(ts(2026, 11, 20, 12, 0, 0), next_of("0 12 * * fri", ts(2026, 11, 13, 12, 0, 0)));
    /* Only day of month restricted. */
    ASSERT_EQ(ts(2026, 12, 15, 12, 0, 0), next_of("0 12 15 * *", ts(2026, 11, 15, 12, 0, 0)));
    /* A '*' start ("*\/2") counts as unrestricted, so the rule is AND: odd Fridays. */
    ASSERT_EQ(ts(2026, 11, 13, 12, 0, 0), next_of("0 12 */2 * fri", ts(2026, 11, 1, 0, 0, 0)));
    ASSERT_EQ(ts(2026, 11, 27, 12, 0, 0), next_of("0 12 */2 * fri", ts(2026, 11, 13, 12, 0, 0)));

    /* Names: weekdays in January and July; 2027-01-01 is a Friday. */
    ASSERT_EQ(ts(2027, 1, 1, 4, 30, 0),
              next_of("30 4 * jan,jul mon-fri", ts(2026, 11, 26, 0, 0, 0)));
    ASSERT_EQ(ts(2027, 1, 4, 4, 30, 0),
              next_of("30 4 * JAN,JUL MON-FRI", ts(2027, 1, 1, 4, 30, 0)));
    ASSERT_EQ(ts(2027, 7, 1, 4, 30, 0),
              next_of("30 4 * jan,jul mon-fri", ts(2027, 1, 29, 4, 30, 0)));
    /* Sunday as 7. */
    ASSERT_EQ(ts(2026, 11, 29, 6, 0, 0), next_of("0 6 * * 7", ts(2026, 11, 26, 0, 0, 0)));

    /* Hours list crossing midnight into the next month. */
    ASSERT_EQ(ts(2026, 12, 1, 1, 0, 0), next_of("0 1,23 * * *", ts(2026, 11, 30, 23, 0, 0)));

    /* Every result is a due time itself and strictly after its input. */
    struct cap_schedule s = PARSE("7,37 */5 1-10,20 * mon");
    int64_t t = ts(2026, 1, 1, 0, 0, 0);
    for (int i = 0; i < 500; i++) {
        int64_t n = cap_schedule_next(&s, t, 0);
        ASSERT(n > t);
        ASSERT_EQ(0, n % 60);
        struct tm tm;
        time_t tt = (time_t)n;
        gmtime_r(&tt, &tm);
        ASSERT(tm.tm_min == 7 || tm.tm_min == 37);
        ASSERT_EQ(0, tm.tm_hour % 5);
        ASSERT(tm.tm_mday <= 10 || tm.tm_mday == 20 || tm.tm_wday == 1);
        /* Nothing in between is due: one minute earlier finds the same time. */
        ASSERT_EQ(n, cap_schedule_next(&s, n - 60 > t ? n - 60 : t, 0));
        t = n;
    }
}

/* Reference: does minute t match the cron bit sets (Vixie day rule)? Written apart from the
 * module's field-jumping search so the two can be compared. */
static int cron_matches(const struct cap_schedule *s, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    int dom = (s->cron_dom >> tm.tm_mday) & 1, dow = (s->cron_dow >> tm.tm_wday) & 1;
    int day = (s->dom_star || s->dow_star) ? (dom && dow) : (dom || dow);
    return t % 60 == 0 && ((s->cron_min >> tm.tm_min) & 1) && ((s->cron_hour >> tm.tm_hour) & 1) &&
           ((s->cron_mon >> (tm.tm_mon + 1)) & 1) && day;
}

static void test_cron_against_scan(void)
{
    static const char *exprs[] = {
        "* * * * *",    "*/7 */5 * * *",       "59 23 * * *",         "0 0 1 * *",
        "0 0 31 * *",   "30 12 * * sat,sun",   "0 9-17/4 * * 1-5",    "15 3 13 * fri",
        "0 0 */10 * 0", "5/20 1,13 1-7 * mon", "0 6 * jan,feb,dec *", "45 22 28-31 * *",
        "0 0 29 2,3 *", "0 12 */2 * fri",      "*/30 0 1 1,7 *",      "0 0 * * 7"};
    static const int64_t starts[] = {
        1767225599, /* 2025-12-31 23:59:59 */
        1709164800, /* 2024-02-29 00:00:00 */
        1706745599, /* 2024-01-31 23:59:59 */
        1740787199, /* 2025-02-28 23:59:59 */
        1795684373, /* 2026-11-26 09:12:53 */
        951782400,  /* 2000-02-29 00:00:00 */
    };
    for (size_t e = 0; e < sizeof exprs / sizeof exprs[0]; e++) {
        struct cap_schedule s = PARSE(exprs[e]);
        for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
            int64_t want = -1;
            for (int64_t t = (starts[k] / 60 + 1) * 60; t <= starts[k] + 400 * 86400; t += 60)
                if (cron_matches(&s, t)) {
                    want = t;
                    break;
                }
            int64_t got = cap_schedule_next(&s, starts[k], 3);
            if (want != got) {
                fprintf(stderr, "%s:%d: \"%s\" after %lld: scan finds %lld, next gives %lld\n",
                        __FILE__, __LINE__, exprs[e], (long long)starts[k], (long long)want,
                        (long long)got);
                exit(1);
            }
            checks++;
        }
    }
}

static void test_range_limits(void)
{
    struct cap_schedule s = PARSE("daily 03:00");
    ASSERT_EQ(-1, cap_schedule_next(&s, -5, 1));
    ASSERT_EQ(-1, cap_schedule_next(&s, CAP_SCHEDULE_TIME_MAX + 1, 1));
    ASSERT_EQ(-1, cap_schedule_next(&s, CAP_SCHEDULE_TIME_MAX, 1));
    ASSERT_EQ(ts(9999, 12, 31, 3, 0, 0), cap_schedule_next(&s, ts(9999, 12, 30, 3, 0, 0), 1));
    s = PARSE("0 0 1 1 *");
    ASSERT_EQ(-1, cap_schedule_next(&s, ts(9999, 6, 1, 0, 0, 0), 1));
    ASSERT_EQ(ts(9999, 1, 1, 0, 0, 0), cap_schedule_next(&s, ts(9998, 6, 1, 0, 0, 0), 1));
    ASSERT_EQ(-1, cap_schedule_next(NULL, 0, 1));
}

static void test_every_anchor(void)
{
    struct cap_schedule s = PARSE("every 15m");
    int64_t base = ts(2026, 11, 26, 9, 12, 53);
    int64_t first = cap_schedule_next(&s, base, 77);
    ASSERT(first > base && first <= base + 900);
    /* A restart at any moment lands on the same grid. */
    for (int64_t a = base - 100000; a < base + 100000; a += 7919) {
        int64_t n = cap_schedule_next(&s, a, 77);
        ASSERT(n > a && n <= a + 900);
        ASSERT_EQ(0, (n - first) % 900);
    }
    ASSERT_EQ(first + 900, cap_schedule_next(&s, first, 77));
    ASSERT_EQ(first, cap_schedule_next(&s, first - 1, 77));
    /* The phase depends on the seed, and different seeds spread. */
    int distinct = 0;
    static unsigned char seen[900];
    for (uint64_t seed = 1; seed <= 300; seed++) {
        int64_t p = cap_schedule_next(&s, base, seed) % 900;
        if (!seen[p]++)
            distinct++;
    }
    ASSERT(distinct > 200);

    s = PARSE("every 1h30m");
    int64_t a = cap_schedule_next(&s, base, 5);
    int64_t b = cap_schedule_next(&s, a, 5);
    ASSERT_EQ(5400, b - a);
    ASSERT_EQ(b, cap_schedule_next(&s, a + 5399, 5));
}

static void test_spread(void)
{
    int64_t base = ts(2026, 11, 26, 9, 12, 53);
    struct cap_schedule d = PARSE("daily");
    struct cap_schedule d_utc = PARSE("daily UTC");
    /* Stable per seed: same second of the day from any starting point. */
    int64_t off = cap_schedule_next(&d, base, 42) % 86400;
    for (int k = 0; k < 20; k++) {
        int64_t n = cap_schedule_next(&d, base + k * 40000, 42);
        ASSERT(n > base + k * 40000 && n <= base + k * 40000 + 86400);
        ASSERT_EQ(off, n % 86400);
    }
    ASSERT_EQ(cap_schedule_next(&d, base, 42), cap_schedule_next(&d_utc, base, 42));
    ASSERT(cap_schedule_next(&d, base, 42) != cap_schedule_next(&d, base, 43));

    /* 1000 consecutive seeds cover many minutes and pile up on no second. */
    static unsigned short per_second[86400];
    static unsigned char per_minute[1440];
    int hours[24] = {0};
    int minutes = 0, worst = 0;
    for (uint64_t seed = 1; seed <= 1000; seed++) {
        int64_t sec = cap_schedule_next(&d, base, seed) % 86400;
        if (++per_second[sec] > worst)
            worst = per_second[sec];
        if (!per_minute[sec / 60]++)
            minutes++;
        hours[sec / 3600]++;
    }
    ASSERT(minutes >= 600);
    ASSERT(worst <= 3);
    for (int h = 0; h < 24; h++)
        ASSERT(hours[h] >= 15 && hours[h] <= 75);

    struct cap_schedule h = PARSE("hourly");
    int hour_minutes = 0;
    static unsigned char hm[60];
    for (uint64_t seed = 1; seed <= 1000; seed++) {
        int64_t n = cap_schedule_next(&h, base, seed);
        ASSERT(n > base && n <= base + 3600);
        ASSERT_EQ(n, cap_schedule_next(&h, base, seed));
        if (!hm[(n % 3600) / 60]++)
            hour_minutes++;
    }
    ASSERT_EQ(60, hour_minutes);

    struct cap_schedule w = PARSE("weekly");
    int wdays[7] = {0};
    for (uint64_t seed = 1; seed <= 700; seed++) {
        int64_t n = cap_schedule_next(&w, base, seed);
        ASSERT(n > base && n <= base + 7 * 86400);
        ASSERT_EQ(n + 7 * 86400, cap_schedule_next(&w, n, seed));
        /* 1970-01-01 was a Thursday (wday 4). */
        wdays[(n / 86400 + 4) % 7]++;
    }
    for (int k = 0; k < 7; k++)
        ASSERT(wdays[k] >= 60 && wdays[k] <= 140);
}

static void test_catch_up(void)
{
    int64_t now = ts(2026, 11, 26, 9, 12, 53);
    struct cap_schedule s = PARSE("daily 03:00");
    int64_t due = ts(2026, 11, 25, 3, 0, 0); /* a day ago: the scheduler was down */
    ASSERT_EQ(ts(2026, 11, 27, 3, 0, 0), cap_schedule_next_after_run(&s, due, now, 1));
    /* Down for a month: still only the next time after now. */
    ASSERT_EQ(ts(2026, 11, 27, 3, 0, 0),
              cap_schedule_next_after_run(&s, ts(2026, 10, 20, 3, 0, 0), now, 1));
    /* Run on time: the next due time follows the one that ran. */
    ASSERT_EQ(ts(2026, 11, 27, 3, 0, 0), cap_schedule_next_after_run(&s, ts(2026, 11, 26, 3, 0, 0),
                                                                     ts(2026, 11, 26, 3, 0, 1), 1));
    /* Clock behind the due time: never earlier than the due time itself. */
    ASSERT_EQ(
        ts(2026, 11, 27, 3, 0, 0),
        cap_schedule_next_after_run(&s, ts(2026, 11, 26, 3, 0, 0), ts(2026, 11, 26, 2, 59, 0), 1));

    struct cap_schedule e = PARSE("every 15m");
    int64_t n = cap_schedule_next_after_run(&e, now - 86400, now, 9);
    ASSERT(n > now && n <= now + 900);
    ASSERT_EQ(0, (n - cap_schedule_next(&e, now - 86400, 9)) % 900);

    struct cap_schedule c = PARSE("*/5 * * * *");
    ASSERT_EQ(ts(2026, 11, 26, 9, 15, 0), cap_schedule_next_after_run(&c, due, now, 0));
}

static void test_invalid(void)
{
    FAILS("daily 25:00", "schedule \"daily 25:00\": hour 25 out of range 0-23");
    FAILS("daily 03:60", "schedule \"daily 03:60\": minute 60 out of range 0-59");
    FAILS("daily 3", "schedule \"daily 3\": expected time HH:MM, got \"3\"");
    FAILS("daily 03:0", "schedule \"daily 03:0\": expected time HH:MM, got \"03:0\"");
    FAILS("daily noon", "schedule \"daily noon\": expected time HH:MM, got \"noon\"");
    FAILS("daily at", "schedule \"daily at\": expected time HH:MM after \"at\"");
    FAILS("daily at UTC",
          "schedule \"daily at UTC\": expected time HH:MM after \"at\", got \"UTC\"");
    FAILS("hourly at", "schedule \"hourly at\": expected :MM after \"at\"");
    FAILS("hourly at 5", "schedule \"hourly at 5\": expected :MM after \"at\", got \"5\"");
    FAILS("weekly mon at", "schedule \"weekly mon at\": expected time HH:MM after \"mon\"");
    FAILS("daily 03:00 CET", "schedule \"daily 03:00 CET\": only UTC is supported");
    FAILS("daily 03:00 Europe/Paris",
          "schedule \"daily 03:00 Europe/Paris\": only UTC is supported");
    FAILS("daily 03:00 +01:00", "schedule \"daily 03:00 +01:00\": only UTC is supported");
    FAILS("daily 03:00 UTC+1", "schedule \"daily 03:00 UTC+1\": only UTC is supported");
    FAILS("daily 03:00 utc now", "schedule \"daily 03:00 utc now\": unexpected \"now\" after UTC");
    FAILS("daily 03:00 sharp", "schedule \"daily 03:00 sharp\": unexpected \"sharp\"");
    FAILS("hourly :75", "schedule \"hourly :75\": minute 75 out of range 0-59");
    FAILS("hourly 30", "schedule \"hourly 30\": expected :MM (minute past the hour), got \"30\"");
    FAILS("hourly :x5",
          "schedule \"hourly :x5\": expected :MM (minute past the hour), got \":x5\"");
    FAILS("hourly PST", "schedule \"hourly PST\": only UTC is supported");
    FAILS("weekly funday 03:00", "schedule \"weekly funday 03:00\": unknown day of week "
                                 "\"funday\" (expected mon..sun or monday..sunday)");
    FAILS("weekly Mon", "schedule \"weekly Mon\": expected time HH:MM after \"Mon\"");
    FAILS("weekly 03:00", "schedule \"weekly 03:00\": expected a day (mon..sun) before the time");
    FAILS("weekly mon 24:00", "schedule \"weekly mon 24:00\": hour 24 out of range 0-23");
    FAILS("weekly mon 03:00 EST", "schedule \"weekly mon 03:00 EST\": only UTC is supported");
    FAILS("every 5s", "schedule \"every 5s\": duration 5s out of range 10s-366d");
    FAILS("every 367d", "schedule \"every 367d\": duration 367d out of range 10s-366d");
    FAILS("every 9999999999999s",
          "schedule \"every 9999999999999s\": duration 9999999999999s out of range 10s-366d");
    FAILS("every 90", "schedule \"every 90\": duration \"90\" has no unit (expected d, h, m or s, "
                      "e.g. 90s)");
    FAILS("every 30m1h", "schedule \"every 30m1h\": bad duration \"30m1h\" (units must come in "
                         "the order d, h, m, s)");
    FAILS("every 1w", "schedule \"every 1w\": bad duration \"1w\" (expected e.g. 90s, 15m, 1h30m, "
                      "1d)");
    FAILS("every h", "schedule \"every h\": bad duration \"h\" (expected e.g. 90s, 15m, 1h30m, "
                     "1d)");
    FAILS("every", "schedule \"every\": expected a duration after \"every\" (e.g. every 15m, "
                   "every 1h30m)");
    FAILS("every 1h CET", "schedule \"every 1h CET\": unexpected \"CET\" after the duration");
    FAILS("*/0 * * * *", "schedule \"*/0 * * * *\": step 0 in minute field");
    FAILS("0 */0 * * *", "schedule \"0 */0 * * *\": step 0 in hour field");
    FAILS("*/75 * * * *", "schedule \"*/75 * * * *\": step 75 in minute field out of range 1-59");
    FAILS("*/ * * * *", "schedule \"*/ * * * *\": bad step \"\" in minute field");
    FAILS("60 * * * *", "schedule \"60 * * * *\": minute 60 out of range 0-59");
    FAILS("0 24 * * *", "schedule \"0 24 * * *\": hour 24 out of range 0-23");
    FAILS("0 0 0 * *", "schedule \"0 0 0 * *\": day of month 0 out of range 1-31");
    FAILS("0 0 32 * *", "schedule \"0 0 32 * *\": day of month 32 out of range 1-31");
    FAILS("0 0 * 13 *", "schedule \"0 0 * 13 *\": month 13 out of range 1-12");
    FAILS("0 0 * * 8", "schedule \"0 0 * * 8\": day of week 8 out of range 0-7");
    FAILS("0 0 * foo *", "schedule \"0 0 * foo *\": unknown month name \"foo\" in month field "
                         "(expected 1-12 or jan-dec)");
    FAILS("0 0 * * xyz", "schedule \"0 0 * * xyz\": unknown day of week name \"xyz\" in "
                         "day-of-week field (expected 0-7 or sun-sat)");
    FAILS("mon 0 * * *", "schedule \"mon 0 * * *\": unknown schedule " FORMS);
    FAILS("0 mon * * *", "schedule \"0 mon * * *\": bad value \"mon\" in hour field (expected "
                         "0-23)");
    FAILS("5-1 * * * *", "schedule \"5-1 * * * *\": range \"5-1\" in minute field is reversed");
    FAILS("1,,2 * * * *", "schedule \"1,,2 * * * *\": empty list item in minute field");
    FAILS("1, * * * *", "schedule \"1, * * * *\": empty list item in minute field");
    FAILS("1-2-3 * * * *",
          "schedule \"1-2-3 * * * *\": bad value \"1-2-3\" in minute field (expected 0-59)");
    FAILS("? * * * *", "schedule \"? * * * *\": unknown schedule " FORMS);
    FAILS("0 0 * *", "schedule \"0 0 * *\": expected 5 fields (minute hour day-of-month month "
                     "day-of-week), got 4");
    FAILS("0 0 0 * * *", "schedule \"0 0 0 * * *\": expected 5 fields (minute hour day-of-month "
                         "month day-of-week), got 6");
    FAILS("0 0 30 2 *", "schedule \"0 0 30 2 *\": never due: no month in \"2\" has day 30");
    FAILS("0 0 31 4,6 *", "schedule \"0 0 31 4,6 *\": never due: no month in \"4,6\" has day 31");
    FAILS("0 0 30-31 Feb */2",
          "schedule \"0 0 30-31 Feb */2\": never due: no month in \"Feb\" has day 30");
    FAILS("0 3 * * * CET", "schedule \"0 3 * * * CET\": only UTC is supported");
    FAILS("fortnightly", "schedule \"fortnightly\": "
                         "unknown schedule (expected manual, once, "
                         "every DURATION, hourly, daily [HH:MM UTC], weekly [DAY HH:MM UTC] or "
                         "a 5-field cron expression)");
    FAILS("@fortnightly", "schedule \"@fortnightly\": unknown macro \"@fortnightly\" (expected "
                          "@hourly, @daily, @weekly, @monthly or @yearly)");
    FAILS("@daily CET", "schedule \"@daily CET\": only UTC is supported");
    FAILS("manual please", "schedule \"manual please\": unexpected \"please\"");
    FAILS("   ", "schedule \"\": empty schedule " FORMS);
    FAILS("1 2 3 4 5 6 7 8 9", "schedule \"1 2 3 4 5 6 7 8 9\": too many words (9, at most 8)");
    /* Offending values are escaped and cut. */
    FAILS("daily \"x\"\x01", "schedule \"daily \\\"x\\\"\\x01\": expected time HH:MM, got "
                             "\"\\\"x\\\"\\x01\"");
    char long_text[300];
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    FAILS(long_text, "schedule \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                     "...\": too long (299 bytes, at most 256)");

    /* The first error is kept. */
    struct cap_schedule s;
    struct cap_err err;
    cap_err_clear(&err);
    cap_err_set(&err, CAP_E_IO, "earlier");
    ASSERT_EQ(-1, cap_schedule_parse("daily 25:00", &s, &err));
    ASSERT_STR("earlier", err.msg);
    ASSERT_EQ(-1, cap_schedule_parse(NULL, &s, NULL));
}

int main(void)
{
    test_parse_forms();
    test_parse_cron();
    test_next_fixed();
    test_next_cron();
    test_cron_against_scan();
    test_range_limits();
    test_every_anchor();
    test_spread();
    test_catch_up();
    test_invalid();
    printf("test_schedule: %d checks passed\n", checks);
    return 0;
}
