/* The CT monitor's metrics, registered on first use in the process-wide registry
 * (common/metrics.c). */
#include "worker/ct/ct_metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/metrics.h"

static struct cap_metric *m_read, *m_matched, *m_lag, *m_last_read, *m_requests, *m_list,
    *m_list_ok_at, *m_list_logs;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void reg(void)
{
    m_read =
        cap_metrics_counter("cap_ct_entries_read_total", "CT log entries read, by log URL.", "log");
    m_matched =
        cap_metrics_counter("cap_ct_entries_matched_total",
                            "CT log entries whose names matched a source's domains.", "log");
    m_lag = cap_metrics_gauge("cap_ct_checkpoint_lag_entries",
                              "Entries between the checkpoint and the last tree size seen.", "log");
    m_last_read = cap_metrics_gauge("cap_ct_last_read_timestamp_seconds",
                                    "End of the last read of the log without a fault, seconds "
                                    "since 1970.",
                                    "log");
    m_requests = cap_metrics_counter("cap_ct_requests_total",
                                     "Requests to CT logs by outcome: ok, rate_limited, error.",
                                     "log,outcome");
    m_list = cap_metrics_counter("cap_ct_log_list_refreshes_total",
                                 "Reads of the CT log list by outcome: ok, error.", "outcome");
    m_list_ok_at =
        cap_metrics_gauge("cap_ct_log_list_last_success_timestamp_seconds",
                          "Last good read of the CT log list, seconds since 1970.", NULL);
    m_list_logs = cap_metrics_gauge("cap_ct_log_list_current_logs",
                                    "Logs of the CT log list a certificate issued now can land "
                                    "in (the ones sources read).",
                                    NULL);
}

/* The label value: a comma would split it into two values, so it becomes %2C (a URL keeps
 * its meaning). */
static const char *label(const char *log, char *buf, size_t n)
{
    if (!strchr(log, ','))
        return log;
    size_t o = 0;
    for (const char *p = log; *p && o + 4 < n; p++) {
        if (*p == ',') {
            memcpy(buf + o, "%2C", 3);
            o += 3;
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    return buf;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cap_ct_metrics_entries(const char *log, int64_t read, int64_t matched)
{
    pthread_once(&once, reg);
    char b[600];
    const char *l = label(log, b, sizeof b);
    /* Both series exist from the first report, so a rate over them starts at zero. */
    cap_metric_add(m_read, l, (double)read);
    cap_metric_add(m_matched, l, (double)matched);
}

void cap_ct_metrics_lag(const char *log, uint64_t tree_size, uint64_t next_index)
{
    pthread_once(&once, reg);
    char b[600];
    cap_metric_set(m_lag, label(log, b, sizeof b),
                   tree_size > next_index ? (double)(tree_size - next_index) : 0.0);
}

void cap_ct_metrics_read_ok(const char *log)
{
    pthread_once(&once, reg);
    char b[600];
    cap_metric_set(m_last_read, label(log, b, sizeof b), wall_now());
}

void cap_ct_metrics_request(const char *log, const struct cap_ct_req *q)
{
    pthread_once(&once, reg);
    char b[600], v[640];
    const char *outcome = "error";
    if (q->status == 200)
        outcome = "ok";
    else if (q->status == 429 || (q->status == 503 && q->retry_after_s >= 0))
        outcome = "rate_limited";
    snprintf(v, sizeof v, "%s,%s", label(log, b, sizeof b), outcome);
    cap_metric_add(m_requests, v, 1);
}

void cap_ct_metrics_list_refresh(bool ok, int64_t current_logs)
{
    pthread_once(&once, reg);
    cap_metric_add(m_list, ok ? "ok" : "error", 1);
    if (ok) {
        cap_metric_set(m_list_ok_at, NULL, wall_now());
        cap_metric_set(m_list_logs, NULL, (double)current_logs);
    }
}
