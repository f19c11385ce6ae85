/* Unit tests of the metrics registry: Prometheus text rendering, label escaping, histogram
 * buckets, counter monotonicity, dropped updates, and the /metrics, /healthz, /readyz server. */
#include "common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void check_contains(const char *file, int line, const char *text, const char *needle,
                           int want)
{
    int found = text && strstr(text, needle) != NULL;
    if (found != want) {
        fprintf(stderr, "%s:%d: expected %s\n  %s\nin:\n%s\n", file, line,
                want ? "to find" : "not to find", needle, text ? text : "(null)");
        failures++;
    }
}

#define CHECK_CONTAINS(text, needle) check_contains(__FILE__, __LINE__, (text), (needle), 1)
#define CHECK_LACKS(text, needle) check_contains(__FILE__, __LINE__, (text), (needle), 0)

static void test_counter_render(void)
{
    struct cap_metric *c =
        cap_metrics_counter("t_jobs_started_total", "Jobs started.", "source_type");
    cap_metric_add(c, "network_scan", 1);
    cap_metric_add(c, "network_scan", 2);
    cap_metric_add(c, "ct_log", 1);
    char *text = cap_metrics_render();
    CHECK_CONTAINS(text, "# HELP t_jobs_started_total Jobs started.\n"
                         "# TYPE t_jobs_started_total counter\n"
                         "t_jobs_started_total{source_type=\"network_scan\"} 3\n"
                         "t_jobs_started_total{source_type=\"ct_log\"} 1\n");
    free(text);
    CHECK(cap_metric_get(c, "network_scan") == 3);
    CHECK(cap_metric_get(c, "ct_log") == 1);
    CHECK(cap_metric_get(c, "never") == 0);

    /* Registering again with the same definition returns the same metric. */
    CHECK(cap_metrics_counter("t_jobs_started_total", "Jobs started.", "source_type") == c);
}

static void test_counter_only_goes_up(void)
{
    struct cap_metric *c = cap_metrics_counter("t_up_total", "Only up.", NULL);
    cap_metric_add(c, NULL, 5);
    cap_metric_add(c, NULL, -2);
    cap_metric_set(c, NULL, 1);
    cap_metric_add(c, NULL, 0.0 / 0.0);
    CHECK(cap_metric_get(c, NULL) == 5);
    cap_metric_add(c, NULL, 0.5);
    CHECK(cap_metric_get(c, NULL) == 5.5);
    char *text = cap_metrics_render();
    CHECK_CONTAINS(text, "\nt_up_total 5.5\n");
    free(text);
}

static void test_unlabelled_starts_at_zero(void)
{
    struct cap_metric *g = cap_metrics_gauge("t_stream_length", "Entries.", NULL);
    char *text = cap_metrics_render();
    CHECK_CONTAINS(text, "# TYPE t_stream_length gauge\nt_stream_length 0\n");
    free(text);
    cap_metric_set(g, NULL, 42);
    cap_metric_add(g, NULL, -2);
    CHECK(cap_metric_get(g, NULL) == 40);
    text = cap_metrics_render();
    CHECK_CONTAINS(text, "\nt_stream_length 40\n");
    free(text);
}

static void test_label_escaping(void)
{
    struct cap_metric *c =
        cap_metrics_counter("t_ct_entries_read_total", "Entries \\ read\nper log.", "log");
    cap_metric_add(c, "https://ct.example/\"q\"\\x\nnext", 7);
    char *text = cap_metrics_render();
    CHECK_CONTAINS(text, "# HELP t_ct_entries_read_total Entries \\\\ read\\nper log.\n");
    CHECK_CONTAINS(text,
                   "t_ct_entries_read_total{log=\"https://ct.example/\\\"q\\\"\\\\x\\nnext\"} 7\n");
    free(text);
}

static void test_multiple_labels_and_arity(void)
{
    struct cap_metric *c =
        cap_metrics_counter("t_jobs_finished_total", "Jobs finished.", "source_type, status");
    cap_metric_add(c, "network_scan,succeeded", 1);
    cap_metric_add(c, "network_scan", 1);          /* too few values: dropped */
    cap_metric_add(c, "network_scan,failed,x", 1); /* too many: dropped */
    cap_metric_add(c, NULL, 1);                    /* none: dropped */
    cap_metric_add(c, "ct_log,", 1);               /* an empty value is a value */
    char *text = cap_metrics_render();
    CHECK_CONTAINS(text,
                   "t_jobs_finished_total{source_type=\"network_scan\",status=\"succeeded\"} 1\n");
    CHECK_CONTAINS(text, "t_jobs_finished_total{source_type=\"ct_log\",status=\"\"} 1\n");
    CHECK_LACKS(text, "status=\"failed\"");
    CHECK_LACKS(text, "t_jobs_finished_total{source_type=\"network_scan\"}");
    free(text);
}

static void test_histogram(void)
{
    static const double b[] = {0.1, 1, 10};
    struct cap_metric *h =
        cap_metrics_histogram("t_job_duration_seconds", "Job duration.", "source_type", b, 3);
    cap_metric_observe(h, "network_scan", 0.05);
    cap_metric_observe(h, "network_scan", 0.1); /* le is inclusive */
    cap_metric_observe(h, "network_scan", 5);
    cap_metric_observe(h, "network_scan", 100);
    cap_metric_add(h, "network_scan", 1);             /* wrong kind: dropped */
    cap_metric_observe(h, "network_scan", 0.0 / 0.0); /* NaN: dropped */
    CHECK(cap_metric_get(h, "network_scan") == 4);
    char *text = cap_metrics_render();
    CHECK_CONTAINS(text,
                   "# TYPE t_job_duration_seconds histogram\n"
                   "t_job_duration_seconds_bucket{source_type=\"network_scan\",le=\"0.1\"} 2\n"
                   "t_job_duration_seconds_bucket{source_type=\"network_scan\",le=\"1\"} 2\n"
                   "t_job_duration_seconds_bucket{source_type=\"network_scan\",le=\"10\"} 3\n"
                   "t_job_duration_seconds_bucket{source_type=\"network_scan\",le=\"+Inf\"} 4\n"
                   "t_job_duration_seconds_sum{source_type=\"network_scan\"} 105.15\n"
                   "t_job_duration_seconds_count{source_type=\"network_scan\"} 4\n");
    free(text);

    /* Default buckets, no labels: rendered from the start with zero counts. */
    cap_metrics_histogram("t_handshake_duration_seconds", "Handshakes.", NULL, NULL, 0);
    text = cap_metrics_render();
    CHECK_CONTAINS(text, "t_handshake_duration_seconds_bucket{le=\"0.005\"} 0\n");
    CHECK_CONTAINS(text, "t_handshake_duration_seconds_bucket{le=\"60\"} 0\n");
    CHECK_CONTAINS(text, "t_handshake_duration_seconds_bucket{le=\"+Inf\"} 0\n");
    CHECK_CONTAINS(text, "t_handshake_duration_seconds_count 0\n");
    free(text);
}

static void test_bad_registrations(void)
{
    /* Each returns a non-NULL stand-in that ignores updates and is never rendered. */
    struct cap_metric *bad = cap_metrics_counter("9bad name", "x", NULL);
    CHECK(bad != NULL);
    cap_metric_add(bad, NULL, 1);
    struct cap_metric *badlabel = cap_metrics_counter("t_badlabel_total", "x", "__reserved");
    CHECK(badlabel != NULL);
    struct cap_metric *le = cap_metrics_histogram("t_le_seconds", "x", "le", NULL, 0);
    static const double desc[] = {1, 0.5};
    struct cap_metric *unsorted = cap_metrics_histogram("t_unsorted_seconds", "x", NULL, desc, 2);
    cap_metric_observe(unsorted, NULL, 1);
    struct cap_metric *first = cap_metrics_counter("t_conflict_total", "x", "a");
    struct cap_metric *conflict = cap_metrics_gauge("t_conflict_total", "x", "a");
    CHECK(conflict != first);
    cap_metric_set(conflict, "v", 3);
    CHECK(cap_metric_get(first, "v") == 0);
    char *text = cap_metrics_render();
    CHECK_LACKS(text, "9bad");
    CHECK_LACKS(text, "t_badlabel_total");
    CHECK_LACKS(text, "t_le_seconds");
    CHECK_LACKS(text, "t_unsorted_seconds");
    CHECK_LACKS(text, "# TYPE t_conflict_total gauge");
    CHECK_CONTAINS(text, "# TYPE t_conflict_total counter");
    (void)le;
    free(text);
}

static void test_series_cap(void)
{
    struct cap_metric *c = cap_metrics_counter("t_many_total", "x", "k");
    char v[32];
    for (int i = 0; i < CAP_METRICS_MAX_SERIES + 50; i++) {
        snprintf(v, sizeof v, "v%d", i);
        cap_metric_add(c, v, 1);
    }
    CHECK(cap_metric_get(c, "v0") == 1);
    snprintf(v, sizeof v, "v%d", CAP_METRICS_MAX_SERIES - 1);
    CHECK(cap_metric_get(c, v) == 1);
    snprintf(v, sizeof v, "v%d", CAP_METRICS_MAX_SERIES);
    CHECK(cap_metric_get(c, v) == 0);
}

static void *adder(void *arg)
{
    struct cap_metric *c = arg;
    for (int i = 0; i < 10000; i++)
        cap_metric_add(c, "x", 1);
    return NULL;
}

static void test_threads(void)
{
    struct cap_metric *c = cap_metrics_counter("t_threads_total", "x", "k");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, adder, c);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(cap_metric_get(c, "x") == 40000);
}

/* Sends one request to 127.0.0.1:port; returns the status and the body in body. */
static int http_get(int port, const char *method, const char *path, char *body, size_t n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int len =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                 method, path);
    if (write(fd, req, (size_t)len) != len) {
        close(fd);
        return -1;
    }
    static char resp[1 << 20];
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof resp && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = '\0';
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, n, "%s", b ? b + 4 : "");
    return status;
}

static int ready_state;
static int ready_calls;
static int collect_calls;

static int ready_cb(void *ud, struct cap_err *err)
{
    (void)ud;
    ready_calls++;
    if (ready_state)
        return 0;
    cap_err_set(err, CAP_E_IO, "redis: connection refused");
    return -1;
}

static void collect_cb(void *ud)
{
    collect_calls++;
    cap_metric_set(ud, NULL, 17);
}

static void test_server(void)
{
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_metric *g = cap_metrics_gauge("t_collected", "Set by the collector.", NULL);
    CHECK(cap_metrics_port() == 0);

    /* Bad addresses fail with a message naming them. */
    CHECK(cap_metrics_serve("127.0.0.1", NULL, NULL, NULL, &err) == -1);
    CHECK_CONTAINS(err.msg, "\"127.0.0.1\"");
    cap_err_clear(&err);
    CHECK(cap_metrics_serve("127.0.0.1:99999", NULL, NULL, NULL, &err) == -1);
    CHECK_CONTAINS(err.msg, "port");
    cap_err_clear(&err);
    CHECK(cap_metrics_serve("off", NULL, NULL, NULL, &err) == 0);
    CHECK(cap_metrics_port() == 0);

    if (cap_metrics_serve("127.0.0.1:0", ready_cb, collect_cb, g, &err) != 0) {
        fprintf(stderr, "serve failed: %s\n", err.msg);
        failures++;
        return;
    }
    int port = cap_metrics_port();
    CHECK(port > 0);

    /* A second server in the same process is refused. */
    CHECK(cap_metrics_serve("127.0.0.1:0", NULL, NULL, NULL, &err) == -1);
    cap_err_clear(&err);

    static char body[1 << 20];
    CHECK(http_get(port, "GET", "/healthz", body, sizeof body) == 200);
    CHECK(strcmp(body, "ok\n") == 0);

    ready_state = 0;
    CHECK(http_get(port, "GET", "/readyz", body, sizeof body) == 503);
    CHECK_CONTAINS(body, "not ready: redis: connection refused");
    ready_state = 1;
    CHECK(http_get(port, "GET", "/readyz", body, sizeof body) == 200);
    CHECK(ready_calls == 2);

    CHECK(http_get(port, "GET", "/metrics", body, sizeof body) == 200);
    CHECK(collect_calls == 1);
    CHECK_CONTAINS(body, "\nt_collected 17\n");
    CHECK_CONTAINS(body, "# TYPE process_start_time_seconds gauge\n");

    CHECK(http_get(port, "GET", "/nope", body, sizeof body) == 404);
    CHECK(http_get(port, "POST", "/metrics", body, sizeof body) == 405);
    CHECK(http_get(port, "HEAD", "/healthz", body, sizeof body) == 200);

    cap_metrics_stop();
    CHECK(cap_metrics_port() == 0);
    CHECK(http_get(port, "GET", "/healthz", body, sizeof body) == -1);
    cap_metrics_stop(); /* a second stop does nothing */

    /* After a stop the server can start again. */
    CHECK(cap_metrics_serve("[::1]:0", NULL, NULL, NULL, &err) == 0 || err.code == CAP_E_IO);
    cap_metrics_stop();
}

int main(void)
{
    test_counter_render();
    test_counter_only_goes_up();
    test_unlabelled_starts_at_zero();
    test_label_escaping();
    test_multiple_labels_and_arity();
    test_histogram();
    test_bad_registrations();
    test_series_cap();
    test_threads();
    test_server();
    if (failures) {
        fprintf(stderr, "test_metrics: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_metrics: ok\n");
    return 0;
}
