/* Fuzz target for the schedule parser: arbitrary bytes must parse or fail cleanly, and a parsed
 * schedule must give strictly increasing due times that respect its own invariants. */
#include "common/schedule.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
        if (s->kind == CAP_SCHED_CRON && n % 60 != 0)
            abort();
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
