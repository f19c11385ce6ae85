/* The schedule language: manual/once, every DURATION, hourly, daily [HH:MM UTC],
 * weekly [DAY HH:MM UTC] and 5-field cron (lists, ranges, steps, month and day names), all
 * in UTC. Pure logic: no I/O, no locale, no time zone other than UTC. */
#ifndef CAP_SCHEDULE_H
#define CAP_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

/* Longest schedule text accepted (bytes, after trimming surrounding spaces). */
#define CAP_SCHEDULE_TEXT_MAX 256
/* Bounds of "every DURATION", in seconds: 10 s to 366 days. */
#define CAP_SCHEDULE_EVERY_MIN 10
#define CAP_SCHEDULE_EVERY_MAX (366 * 86400)
/* Latest time the schedule computes (9999-12-31 23:59:59 UTC); later due times are -1. */
#define CAP_SCHEDULE_TIME_MAX INT64_C(253402300799)

enum cap_schedule_kind {
    CAP_SCHED_MANUAL = 0, /* "manual" or "once": never due by itself */
    CAP_SCHED_EVERY,      /* "every 90s", "every 1h" */
    CAP_SCHED_HOURLY,     /* "hourly" (spread offset) or "hourly :MM" */
    CAP_SCHED_DAILY,      /* "daily" (spread offset) or "daily HH:MM UTC" */
    CAP_SCHED_WEEKLY,     /* "weekly" (spread) or "weekly DAY HH:MM UTC" */
    CAP_SCHED_CRON,       /* "M H DOM MON DOW" */
};

struct cap_schedule {
    enum cap_schedule_kind kind;
    int64_t every_s;        /* CAP_SCHED_EVERY */
    bool spread;            /* hourly/daily/weekly given without a time */
    int minute, hour, wday; /* fixed time for hourly/daily/weekly (wday 0 = Sunday) */
    /* cron: bit sets */
    uint64_t cron_min;  /* bits 0..59 */
    uint32_t cron_hour; /* bits 0..23 */
    uint32_t cron_dom;  /* bits 1..31 */
    uint16_t cron_mon;  /* bits 1..12 */
    uint8_t cron_dow;   /* bits 0..6 (7 accepted as Sunday) */
    bool dom_star, dow_star;
};

/* Parses text (case-insensitive; "UTC" suffix optional; surrounding spaces ignored). On error
 * the message names the offending part, e.g. `schedule "daily 25:00": hour 25 out of range
 * 0-23`. out is written only on success. Returns 0 or -1 (err set, code CAP_E_INVALID).
 * Accepted: manual | once | every DURATION (units d h m s in that order, e.g. 1h30m) |
 * hourly [[at] :MM] | daily [[at] HH:MM] | weekly [DAY [at] HH:MM] | @hourly @daily @midnight
 * @weekly @monthly @yearly @annually | "M H DOM MON DOW". Time forms and cron take an
 * optional trailing "UTC"; any other time zone is an error. In cron, "a/n" means "a-max/n",
 * and "fri-sun" / "5-0" in the day-of-week field mean Friday to Sunday. A cron expression that
 * can never be due ("0 0 30 2 *") is an error here: `never due: no month in "2" has day 30`.
 * Pure, thread-safe. */
int cap_schedule_parse(const char *text, struct cap_schedule *out, struct cap_err *err);

/* Returns the first due time strictly after `after` (Unix seconds, UTC), or -1 for manual.
 * `after` must lie in 0..CAP_SCHEDULE_TIME_MAX; outside that range, or when the due time would
 * pass CAP_SCHEDULE_TIME_MAX, it returns -1. "every" times are anchored: they are the t with
 * (t - phase) % every_s == 0, phase derived from seed, so a restart never shifts them.
 * seed (e.g. the source id) picks the stable offset inside the window for spread schedules, so
 * the same seed always gives the same second and different seeds spread evenly.
 * Cron follows Vixie semantics: when both day-of-month and day-of-week are restricted (neither
 * field starts with '*'), a day matching either is due. A struct holding an impossible cron
 * expression (Feb 30; the parser refuses those) gives -1 after a bounded search of 41 years,
 * enough for the rarest possible one (Feb 29 on a Sunday). Never blocks; no local time. */
int64_t cap_schedule_next(const struct cap_schedule *s, int64_t after, uint64_t seed);

/* Catch-up rule for the scheduler: given the run that was due at `due` and the time `now`
 * (now >= due), returns the next due time after now, so that downtime yields exactly one
 * catch-up run and never a storm. Same as cap_schedule_next(s, max(due, now), seed). */
int64_t cap_schedule_next_after_run(const struct cap_schedule *s, int64_t due, int64_t now,
                                    uint64_t seed);

#endif
