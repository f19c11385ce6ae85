/* The schedule language: manual/once, every DURATION, hourly, daily [HH:MM UTC],
 * weekly [DAY HH:MM UTC] and 5-field cron (lists, ranges, steps, month and day names), all
 * in UTC. Pure logic: no I/O, no locale, no time zone other than UTC. */
#ifndef CAP_SCHEDULE_H
#define CAP_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

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
    int64_t every_s;    /* CAP_SCHED_EVERY */
    bool spread;        /* hourly/daily/weekly given without a time */
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
 * 0-23`. out is written only on success. */
int cap_schedule_parse(const char *text, struct cap_schedule *out, struct cap_err *err);

/* Returns the first due time strictly after `after` (Unix seconds, UTC), or -1 for manual.
 * seed (e.g. the source id) picks the stable offset inside the window for spread schedules, so
 * the same seed always gives the same second and different seeds spread evenly.
 * Cron follows Vixie semantics: when both day-of-month and day-of-week are restricted, a day
 * matching either is due. Impossible cron expressions (Feb 30) return -1. */
int64_t cap_schedule_next(const struct cap_schedule *s, int64_t after, uint64_t seed);

/* Catch-up rule for the scheduler: given the run that was due at `due` and the time `now`
 * (now >= due), returns the next due time after now, so that downtime yields exactly one
 * catch-up run and never a storm. */
int64_t cap_schedule_next_after_run(const struct cap_schedule *s, int64_t due, int64_t now,
                                    uint64_t seed);

#endif
