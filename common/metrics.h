/* Prometheus metrics: a process-wide registry of counters, gauges and histograms with
 * low-cardinality labels, and an HTTP endpoint (libmicrohttpd) serving /metrics, /healthz and
 * /readyz. Updating a metric is thread-safe and never blocks on I/O. */
#ifndef CAP_METRICS_H
#define CAP_METRICS_H

#include "common/err.h"

struct cap_metric;

/* Registers (or returns the already registered) metric. labels is a comma-separated list of
 * label names ("source_type,outcome") or NULL. buckets (histograms only) is an ascending list of
 * n upper bounds; NULL gives default latency buckets in seconds. Never returns NULL. */
struct cap_metric *cap_metrics_counter(const char *name, const char *help, const char *labels);
struct cap_metric *cap_metrics_gauge(const char *name, const char *help, const char *labels);
struct cap_metric *cap_metrics_histogram(const char *name, const char *help, const char *labels,
                                         const double *buckets, int n);

/* values: comma-separated label values in the order of the names ("network_scan,ok") or NULL. */
void cap_metric_add(struct cap_metric *m, const char *values, double v);
void cap_metric_set(struct cap_metric *m, const char *values, double v);
void cap_metric_observe(struct cap_metric *m, const char *values, double v);

/* Readiness probe: returns 0 when ready, else -1 with err saying what is not. Called from the
 * HTTP thread; may block briefly (it pings Postgres and Redis). */
typedef int (*cap_ready_cb)(void *ud, struct cap_err *err);
/* Called before each /metrics scrape to refresh gauges (stream length, ...). May be NULL. */
typedef void (*cap_collect_cb)(void *ud);

/* Starts the HTTP server on listen ("127.0.0.1:9102", "[::]:9102", "off" to disable). */
int cap_metrics_serve(const char *listen, cap_ready_cb ready, cap_collect_cb collect, void *ud,
                      struct cap_err *err);
void cap_metrics_stop(void);

/* Renders the registry in the Prometheus text format into a malloc'd string (caller frees). */
char *cap_metrics_render(void);

#endif
