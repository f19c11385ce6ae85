/* The CT monitor's metrics (docs/metrics.md): entries read and matched, checkpoint lag, the
 * last successful read and the requests made, per log; and the log list's refreshes. The log
 * label is the log's configured URL, never text from a log's answers. Thread-safe; never
 * blocks on I/O. */
#ifndef CAP_CT_METRICS_H
#define CAP_CT_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "worker/ct/ct_http.h"

/* Adds entries read and entries matched (both may be 0) to the log's counters. */
void cap_ct_metrics_entries(const char *log, int64_t read, int64_t matched);

/* Sets the log's checkpoint lag: entries between the checkpoint and the tree size last seen. */
void cap_ct_metrics_lag(const char *log, uint64_t tree_size, uint64_t next_index);

/* Records a read of the log that ended without a fault, now. */
void cap_ct_metrics_read_ok(const char *log);

/* Counts one completed request to the log: outcome ok (200), rate_limited (429, or 503 with
 * Retry-After) or error (anything else, transport failures included). */
void cap_ct_metrics_request(const char *log, const struct cap_ct_req *q);

/* Counts one read of the log list (ok or error); on ok, sets the time of the last good read and
 * the number of logs it makes current. */
void cap_ct_metrics_list_refresh(bool ok, int64_t current_logs);

#endif
