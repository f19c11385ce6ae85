/* The job stream on Redis: consumer group creation, publishing jobs, dead-lettering, and the
 * MINID trim that never drops a pending or undelivered entry. All calls block. */
#ifndef CAP_STREAM_H
#define CAP_STREAM_H

#include <hiredis/hiredis.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/job.h"

/* Creates the consumer group (from id 0, with MKSTREAM) unless it exists. */
int cap_stream_ensure_group(redisContext *c, const struct cap_config *cfg, struct cap_err *err);

/* XADDs the encoded job; writes the new entry id into id_out (at least 64 bytes). */
int cap_stream_publish(redisContext *c, const struct cap_config *cfg, const struct cap_job *job,
                       char *id_out, size_t id_n, struct cap_err *err);

/* Copies an entry to the dead-letter stream with the reason (and the raw job bytes, if any),
 * capped at 10,000 entries. */
int cap_stream_dead_letter(redisContext *c, const struct cap_config *cfg, const char *entry_id,
                           const char *reason, const char *raw, size_t raw_len,
                           struct cap_err *err);

/* Trims the stream with MINID below the oldest entry still pending or not yet delivered to the
 * group (never MAXLEN: on Redis 7.0 any trim also deletes pending entries). Returns entries
 * removed, or -1. Does nothing when the group does not exist. */
long long cap_stream_trim(redisContext *c, const struct cap_config *cfg, struct cap_err *err);

/* Stream length and group pending count (for metrics); -1 on failure. */
int cap_stream_stats(redisContext *c, const struct cap_config *cfg, long long *length,
                     long long *pending);

/* Compares two stream ids ("ms-seq"): <0, 0, >0. */
int cap_stream_id_cmp(const char *a, const char *b);

#endif
