/* Soak driver for the scan engine alone (no database): keeps N probes outstanding against a
 * list of targets for a fixed time, submitting a new probe as each result comes back, and
 * prints one JSON line per sample (RSS, descriptors, probes in flight, results, lateness) and a
 * summary at the end. Run by bench/soak/run.py.
 *
 *   soak_driver --targets FILE [--inflight 10000] [--timeout 10000] [--duration 300]
 *               [--sample 5] [--slots 12000] [--pending 4096] [--connect-rate 5000]
 *               [--ramp MS]
 *
 * FILE has one `label addr port weight` line per target (label: the server kind, for the
 * counts; weight: its share of submissions). The probes outstanding grow evenly from 0 to N
 * over --ramp ms (default: the timeout), so their deadlines are spread and not all due at once.
 * Lateness of a result: elapsed_ms (from the first
 * SYN, as the engine reports it) minus the probe's timeout_ms; "queued" lateness counts from
 * the submission instead (the wait for the connect budget and pacing included). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/scan/engine.h"

#define SOAK_TARGETS_MAX 256
#define SOAK_LABELS_MAX 16
#define SOAK_LABEL_MAX 16
#define SOAK_HIST_MS 120000 /* 1 ms buckets; later results count in the last one */

enum { OUT_OK, OUT_REFUSED, OUT_TIMEOUT, OUT_TLS_ERROR, OUT_OTHER, OUT_N };
static const char *const out_names[OUT_N] = {"ok", "refused", "timeout", "tls_error", "other"};

struct target {
    int label;
    int family;
    uint8_t addr[16];
    char host[INET6_ADDRSTRLEN];
    int port;
    long weight, current; /* smooth weighted round robin */
};

/* A histogram of lateness in ms (clamped at 0 and at SOAK_HIST_MS), and its exact extremes. */
struct hist {
    uint64_t *b;
    uint64_t n;
    int64_t max, min;
};

struct counts {
    uint64_t out[OUT_N];
    uint64_t silent, closed, no_route;
    int64_t late_max; /* engine view, of this label or interval */
};

static struct target targets[SOAK_TARGETS_MAX];
static int ntargets;
static char labels[SOAK_LABELS_MAX][SOAK_LABEL_MAX];
static int nlabels;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = strtol(line + 6, NULL, 10);
    }
    if (f)
        fclose(f);
    return v;
}

/* Open descriptors of this process (the directory's own descriptor not counted). */
static long fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long arg_long(const char *s, const char *name, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < lo || v > hi) {
        fprintf(stderr, "soak_driver: bad %s: %s (expected %ld to %ld)\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

static int label_index(const char *s)
{
    for (int i = 0; i < nlabels; i++)
        if (strcmp(labels[i], s) == 0)
            return i;
    if (nlabels == SOAK_LABELS_MAX)
        return -1;
    snprintf(labels[nlabels], SOAK_LABEL_MAX, "%s", s);
    return nlabels++;
}

static int load_targets(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "soak_driver: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char label[SOAK_LABEL_MAX], addr[INET6_ADDRSTRLEN], port_s[16], weight_s[16], extra[2];
        int k = sscanf(line, "%15s %45s %15s %15s %1s", label, addr, port_s, weight_s, extra);
        if (k <= 0 || label[0] == '#')
            continue;
        struct target *t = &targets[ntargets];
        char *e1 = NULL, *e2 = NULL;
        errno = 0;
        long port = k == 4 ? strtol(port_s, &e1, 10) : -1;
        long weight = k == 4 ? strtol(weight_s, &e2, 10) : -1;
        if (k != 4 || errno || *e1 || *e2 || port < 1 || port > 65535 || weight < 1 ||
            weight > 1000000 || ntargets == SOAK_TARGETS_MAX ||
            (t->label = label_index(label)) < 0) {
            fprintf(stderr,
                    "soak_driver: %s:%d: expected `label addr port weight` (at most %d "
                    "targets, %d labels)\n",
                    path, lineno, SOAK_TARGETS_MAX, SOAK_LABELS_MAX);
            rc = -1;
            break;
        }
        t->family = strchr(addr, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(t->family, addr, t->addr) != 1) {
            fprintf(stderr, "soak_driver: %s:%d: bad address %s\n", path, lineno, addr);
            rc = -1;
            break;
        }
        snprintf(t->host, sizeof t->host, "%s", addr);
        t->port = (int)port;
        t->weight = weight;
        ntargets++;
    }
    fclose(f);
    if (rc == 0 && ntargets == 0) {
        fprintf(stderr, "soak_driver: %s lists no target\n", path);
        rc = -1;
    }
    return rc;
}

/* The next target, by smooth weighted round robin (evenly spread, exact shares). */
static int pick_target(void)
{
    long total = 0;
    int best = 0;
    for (int i = 0; i < ntargets; i++) {
        targets[i].current += targets[i].weight;
        total += targets[i].weight;
        if (targets[i].current > targets[best].current)
            best = i;
    }
    targets[best].current -= total;
    return best;
}

static int hist_init(struct hist *h)
{
    /* every page touched now, so the histograms do not show as RSS growth later */
    h->b = malloc((SOAK_HIST_MS + 1) * sizeof *h->b);
    if (!h->b)
        return -1;
    memset(h->b, 0, (SOAK_HIST_MS + 1) * sizeof *h->b);
    h->n = 0;
    h->max = INT64_MIN;
    h->min = INT64_MAX;
    return 0;
}

static void hist_add(struct hist *h, int64_t late)
{
    h->b[late < 0 ? 0 : late > SOAK_HIST_MS ? SOAK_HIST_MS : late]++;
    h->n++;
    if (late > h->max)
        h->max = late;
    if (late < h->min)
        h->min = late;
}

/* The smallest lateness (clamped at 0) at or below which a share q of the results lie. */
static int64_t hist_pct(const struct hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)((double)h->n * q + 0.999999), seen = 0;
    for (int64_t i = 0; i <= SOAK_HIST_MS; i++) {
        seen += h->b[i];
        if (seen >= want)
            return i;
    }
    return SOAK_HIST_MS;
}

static void hist_print(const char *name, const struct hist *h)
{
    printf(",\"%s\":{\"n\":%llu,\"min_ms\":%lld,\"p50_ms\":%lld,\"p90_ms\":%lld,\"p99_ms\":%lld,"
           "\"p999_ms\":%lld,\"max_ms\":%lld}",
           name, (unsigned long long)h->n, (long long)(h->n ? h->min : 0),
           (long long)hist_pct(h, 0.5), (long long)hist_pct(h, 0.9), (long long)hist_pct(h, 0.99),
           (long long)hist_pct(h, 0.999), (long long)(h->n ? h->max : 0));
}

static void counts_print(const struct counts *c)
{
    printf("{");
    for (int o = 0; o < OUT_N; o++)
        printf("\"%s\":%llu,", out_names[o], (unsigned long long)c->out[o]);
    printf("\"silent\":%llu,\"closed\":%llu,\"no_route\":%llu,\"late_max_ms\":%lld}",
           (unsigned long long)c->silent, (unsigned long long)c->closed,
           (unsigned long long)c->no_route, (long long)c->late_max);
}

static void counts_add(struct counts *c, int o, const char *empty, int64_t late)
{
    c->out[o]++;
    if (empty && strcmp(empty, "silent") == 0)
        c->silent++;
    else if (empty && strcmp(empty, "closed") == 0)
        c->closed++;
    else if (empty)
        c->no_route++;
    if (late > c->late_max)
        c->late_max = late;
}

int main(int argc, char **argv)
{
    const char *tfile = NULL;
    long inflight = 10000, timeout = 10000, duration = 300, sample = 5, slots = 12000;
    long pending = 4096, rate = 5000, ramp = -1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "soak_driver: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *v = argv[i + 1];
        if (strcmp(argv[i], "--targets") == 0)
            tfile = v;
        else if (strcmp(argv[i], "--inflight") == 0)
            inflight = arg_long(v, "inflight", 1, 1000000);
        else if (strcmp(argv[i], "--timeout") == 0)
            timeout = arg_long(v, "timeout", 100, 600000);
        else if (strcmp(argv[i], "--duration") == 0)
            duration = arg_long(v, "duration", 1, 86400);
        else if (strcmp(argv[i], "--sample") == 0)
            sample = arg_long(v, "sample", 1, 3600);
        else if (strcmp(argv[i], "--slots") == 0)
            slots = arg_long(v, "slots", 1, 1000000);
        else if (strcmp(argv[i], "--pending") == 0)
            pending = arg_long(v, "pending", 1, 1000000);
        else if (strcmp(argv[i], "--connect-rate") == 0)
            rate = arg_long(v, "connect-rate", 1, 1000000);
        else if (strcmp(argv[i], "--ramp") == 0)
            ramp = arg_long(v, "ramp", 0, 3600000);
        else {
            fprintf(stderr, "soak_driver: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!tfile) {
        fprintf(stderr, "usage: soak_driver --targets FILE [--inflight N] [--timeout MS] "
                        "[--duration S] [--sample S] [--slots N] [--pending N] "
                        "[--connect-rate N] [--ramp MS]\n");
        return 2;
    }
    if (load_targets(tfile) != 0)
        return 2;
    if (ramp < 0)
        ramp = timeout;
    cap_log_init("soak", CAP_LOG_WARN, CAP_LOG_TEXT);
    struct hist late_all, late_timeout, late_queued;
    if (hist_init(&late_all) != 0 || hist_init(&late_timeout) != 0 ||
        hist_init(&late_queued) != 0) {
        fprintf(stderr, "soak_driver: out of memory\n");
        return 1;
    }
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_scan_engine_opts o = {
        .slots = (int)slots, .max_pending_connects = (int)pending, .connect_rate = (int)rate};
    struct cap_scan_engine *e = cap_scan_engine_new_opts(&o, &err);
    if (!e) {
        fprintf(stderr, "soak_driver: %s\n", err.msg);
        return 1;
    }
    struct cap_scan_job *j = cap_scan_job_new(e, (int)slots, &err);
    if (!j) {
        fprintf(stderr, "soak_driver: %s\n", err.msg);
        return 1;
    }
    struct counts total = {0}, interval = {0}, per_label[SOAK_LABELS_MAX];
    memset(per_label, 0, sizeof per_label);
    uint64_t submitted = 0, over20 = 0, queued_over20 = 0;
    int64_t limit20 = timeout / 5;
    long fds0 = fd_count(), rss0 = rss_kb();
    int64_t t0 = now_ms(), end = t0 + duration * 1000, next_sample = t0 + sample * 1000;
    int64_t drain_end = end + timeout + 10000;
    double c0 = cpu_s(), c_prev = c0;
    int64_t t_prev = t0;
    printf("{\"type\":\"start\",\"pid\":%d,\"fds\":%ld,\"rss_kb\":%ld,\"inflight\":%ld,"
           "\"timeout_ms\":%ld,\"duration_s\":%ld,\"slots\":%ld,\"pending\":%ld,"
           "\"connect_rate\":%ld,\"ramp_ms\":%ld}\n",
           (int)getpid(), fds0, rss0, inflight, timeout, duration, slots, pending, rate, ramp);
    fflush(stdout);
    for (;;) {
        int64_t t = now_ms();
        bool submitting = t < end;
        size_t want = (size_t)inflight;
        if (t - t0 < ramp)
            want = (size_t)((double)inflight * (double)(t - t0) / (double)ramp) + 1;
        while (submitting && cap_scan_job_outstanding(j) < want) {
            int ti = pick_target();
            struct target *tg = &targets[ti];
            struct cap_scan_req q;
            memset(&q, 0, sizeof q);
            q.family = tg->family;
            memcpy(q.addr, tg->addr, sizeof q.addr);
            q.port = tg->port;
            q.timeout_ms = (int)timeout;
            q.host = tg->host;
            q.tag = ((uint64_t)(t - t0) << 16) | (uint64_t)ti;
            if (cap_scan_job_submit(j, &q, &err) != 0) {
                fprintf(stderr, "soak_driver: %s\n", err.msg);
                return 1;
            }
            submitted++;
        }
        if (!submitting && (cap_scan_job_outstanding(j) == 0 || t >= drain_end))
            break;
        struct cap_scan_result *r = cap_scan_job_wait(j, 50);
        int64_t got = now_ms();
        for (struct cap_scan_result *x = r; x; x = x->next) {
            int oi = OUT_OTHER;
            for (int k = 0; k < OUT_N - 1; k++)
                if (strcmp(x->outcome, out_names[k]) == 0)
                    oi = k;
            struct target *tg = &targets[x->req.tag & 0xffff];
            int64_t late = x->elapsed_ms - x->req.timeout_ms;
            int64_t queued = got - (t0 + (int64_t)(x->req.tag >> 16)) - x->req.timeout_ms;
            hist_add(&late_all, late);
            hist_add(&late_queued, queued);
            if (oi == OUT_TIMEOUT)
                hist_add(&late_timeout, late);
            if (late > limit20)
                over20++;
            if (queued > limit20)
                queued_over20++;
            counts_add(&total, oi, x->empty, late);
            counts_add(&interval, oi, x->empty, late);
            counts_add(&per_label[tg->label], oi, x->empty, late);
        }
        cap_scan_result_free(r);
        if (got >= next_sample || (!submitting && cap_scan_job_outstanding(j) == 0)) {
            struct cap_scan_engine_stats st;
            cap_scan_engine_stats(e, &st);
            double c = cpu_s();
            printf("{\"type\":\"sample\",\"t\":%.1f,\"phase\":\"%s\",\"rss_kb\":%ld,\"fds\":%ld,"
                   "\"outstanding\":%zu,\"in_slots\":%d,\"pending\":%d,\"connecting\":%d,"
                   "\"handshaking\":%d,\"waiting\":%d,\"requeued\":%llu,\"local_failures\":%llu,"
                   "\"cpu\":%.2f,\"results\":",
                   (double)(got - t0) / 1000.0, submitting ? "run" : "drain", rss_kb(), fd_count(),
                   cap_scan_job_outstanding(j), st.inflight, st.pending, st.connecting,
                   st.handshaking, st.waiting, (unsigned long long)st.requeued,
                   (unsigned long long)st.local_failures,
                   got > t_prev ? (c - c_prev) * 1000.0 / (double)(got - t_prev) : 0.0);
            counts_print(&interval);
            printf("}\n");
            fflush(stdout);
            memset(&interval, 0, sizeof interval);
            c_prev = c;
            t_prev = got;
            while (next_sample <= got)
                next_sample += sample * 1000;
        }
    }
    long fds_drained = fd_count(), rss_drained = rss_kb();
    struct cap_scan_engine_stats st;
    cap_scan_engine_stats(e, &st);
    size_t left = cap_scan_job_outstanding(j);
    cap_scan_job_free(j);
    cap_scan_engine_free(e);
    printf("{\"type\":\"summary\",\"seconds\":%.1f,\"cpu_s\":%.2f,\"submitted\":%llu,"
           "\"left_outstanding\":%zu,\"fds_start\":%ld,\"fds_drained\":%ld,\"fds_freed\":%ld,"
           "\"rss_start_kb\":%ld,\"rss_drained_kb\":%ld,\"rss_freed_kb\":%ld,"
           "\"inflight_peak\":%d,\"pending_peak\":%d,\"requeued\":%llu,\"local_failures\":%llu,"
           "\"limit20_ms\":%lld,\"late_over20\":%llu,\"queued_over20\":%llu",
           (double)(now_ms() - t0) / 1000.0, cpu_s() - c0, (unsigned long long)submitted, left,
           fds0, fds_drained, fd_count(), rss0, rss_drained, rss_kb(), st.inflight_peak,
           st.pending_peak, (unsigned long long)st.requeued, (unsigned long long)st.local_failures,
           (long long)limit20, (unsigned long long)over20, (unsigned long long)queued_over20);
    hist_print("late", &late_all);
    hist_print("late_timeouts", &late_timeout);
    hist_print("late_queued", &late_queued);
    printf(",\"outcomes\":");
    counts_print(&total);
    printf(",\"by_kind\":{");
    for (int i = 0; i < nlabels; i++) {
        printf("%s\"%s\":", i ? "," : "", labels[i]);
        counts_print(&per_label[i]);
    }
    printf("}}\n");
    free(late_all.b);
    free(late_timeout.b);
    free(late_queued.b);
    return 0;
}
