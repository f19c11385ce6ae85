/* The job messages: one stream entry, field "job", value a msgpack map
 * {v: 1, type: "discovery_execute", run_id, source_id, attempt, enqueued_at[, shard]}, or
 * {v: 1, type: "notify_deliver", delivery_id, attempt, enqueued_at} (a webhook message). An
 * execute message with shard (from 1) executes that shard of the run (discovery_run_shards);
 * without, the whole run. */
#ifndef CAP_JOB_H
#define CAP_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define CAP_JOB_VERSION 1
#define CAP_JOB_TYPE_EXECUTE "discovery_execute"
#define CAP_JOB_TYPE_NOTIFY "notify_deliver"
#define CAP_JOB_MAX_BYTES 1024

struct cap_job {
    int64_t run_id;
    int64_t source_id;
    int64_t attempt;     /* attempts of the run when it was published */
    int64_t enqueued_at_ms; /* Unix milliseconds */
    int64_t delivery_id; /* notify_deliver: the notify_deliveries row (run_id, source_id 0) */
    int type;            /* CAP_JOB_EXECUTE (0) or CAP_JOB_NOTIFY */
    int32_t shard;       /* discovery_execute: shard of the run (from 1), or 0 for the whole run */
};

enum { CAP_JOB_EXECUTE = 0, CAP_JOB_NOTIFY = 1 };

/* Encodes job into buf (cap bytes). Returns the length, or -1 when it does not fit. */
int cap_job_encode(const struct cap_job *job, uint8_t *buf, size_t cap, struct cap_err *err);

/* Decodes a message of either type (out->type says which). Any deviation (not a map, unknown
 * version or type, wrong type for a field, missing field, trailing bytes, more than
 * CAP_JOB_MAX_BYTES) fails with a message naming the field, e.g. `job field "run_id": expected
 * positive integer, got string`. Unknown extra keys are ignored (forward compatible). out is
 * written only on success. Never allocates on the caller's behalf. */
int cap_job_decode(const uint8_t *buf, size_t len, struct cap_job *out, struct cap_err *err);

#endif
