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

/* values: comma-separated label values in the order of the names ("network_scan,ok") or NULL
 * for a metric without labels; a value cannot contain a comma. add on a counter ignores negative
 * amounts (counters only go up); set applies to gauges only; observe to histograms only. A wrong
 * number of values or a call of the wrong kind is dropped and logged once per metric. */
void cap_metric_add(struct cap_metric *m, const char *values, double v);
void cap_metric_set(struct cap_metric *m, const char *values, double v);
void cap_metric_observe(struct cap_metric *m, const char *values, double v);

/* Readiness probe: returns 0 when ready, else -1 with err saying what is not. Called from the
 * HTTP thread; may block briefly (it pings Postgres and Redis). */
typedef int (*cap_ready_cb)(void *ud, struct cap_err *err);
/* Called before each /metrics scrape to refresh gauges (stream length, ...). May be NULL. */
typedef void (*cap_collect_cb)(void *ud);

/* Starts the HTTP server on listen ("127.0.0.1:9102", "[::]:9102", "0.0.0.0:9102", ":9102" for
 * every address, port 0 for any free port, "off" to disable) in its own threads, serving
 * GET /metrics, /healthz (200 "ok" while the process lives) and /readyz (200 "ok", or 503 with
 * the reason ready gives; 200 when ready is NULL). ready and collect are never called
 * concurrently with themselves. Returns 0, or -1 with err naming the address (bad syntax, in
 * use). Only one server per process: a second call fails. */
int cap_metrics_serve(const char *listen, cap_ready_cb ready, cap_collect_cb collect, void *ud,
                      struct cap_err *err);
/* Stops the HTTP server and waits for its threads; in-flight requests finish first. After it
 * returns the callbacks are no longer called. Safe when no server runs. */
void cap_metrics_stop(void);

/* Renders the registry in the Prometheus text format into a malloc'd string (caller frees).
 * Returns NULL only when memory runs out. */
char *cap_metrics_render(void);

/* Most series one metric keeps; updates that would create more are dropped (and logged once),
 * so a label fed from outside input cannot exhaust memory. */
#define CAP_METRICS_MAX_SERIES 1000

/* Current value of a series: the value of a counter or gauge, the observation count of a
 * histogram; 0 for a series never touched. For tests and collectors; takes the registry lock. */
double cap_metric_get(struct cap_metric *m, const char *values);

/* TCP port the HTTP server listens on (useful after listening on port 0), or 0 when it is not
 * running. */
int cap_metrics_port(void);

#endif
