/* Benchmark driver for the scan engine alone (no database): scans CIDR x port with N slots and
 * prints one JSON line with counts, wall and CPU seconds, peak RSS and the RSS per probe in
 * flight; leaf fingerprints go to a file so they can be compared with other scanners.
 *
 *   scan_bench --cidr 127.1.2.0/26 --port 4433 --slots 64 [--timeout 5000]
 *              [--fingerprints FILE] [--hold N] [--repeat K]
 *
 * --repeat K: scan the range K times over (handshakes per second over more samples).
 * --hold N: submit N probes at once and report the RSS while all N are in flight (for
 * listeners that never answer), then stop. */
#include <arpa/inet.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/targets.h"
#include "worker/scan/engine.h"

/* OpenSSL's live heap bytes, counted through CRYPTO_set_mem_functions (a size header in front
 * of every block), so the memory per handshake in flight splits into OpenSSL's and the rest. */
static atomic_llong ossl_live;

static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    size_t *b = malloc(n + 16);
    if (!b)
        return NULL;
    b[0] = n;
    atomic_fetch_add(&ossl_live, (long long)n);
    return (char *)b + 16;
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (!p)
        return;
    size_t *b = (size_t *)((char *)p - 16);
    atomic_fetch_sub(&ossl_live, (long long)b[0]);
    free(b);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    if (!p)
        return ossl_malloc(n, file, line);
    if (n == 0) {
        ossl_free(p, file, line);
        return NULL;
    }
    size_t *b = (size_t *)((char *)p - 16);
    size_t old = b[0];
    size_t *nb = realloc(b, n + 16);
    if (!nb)
        return NULL;
    nb[0] = n;
    atomic_fetch_add(&ossl_live, (long long)n - (long long)old);
    return (char *)nb + 16;
}

static long long heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long long)(mi.uordblks + mi.hblkhd);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long arg_long(const char *s, const char *name)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!end || *end || v < 0) {
        fprintf(stderr, "bad %s: %s\n", name, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *cidr = NULL, *fpfile = NULL;
    int port = 443, slots = 64, timeout = 5000;
    long hold = 0, repeat = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--cidr") == 0)
            cidr = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = (int)arg_long(argv[i + 1], "port");
        else if (strcmp(argv[i], "--slots") == 0)
            slots = (int)arg_long(argv[i + 1], "slots");
        else if (strcmp(argv[i], "--timeout") == 0)
            timeout = (int)arg_long(argv[i + 1], "timeout");
        else if (strcmp(argv[i], "--fingerprints") == 0)
            fpfile = argv[i + 1];
        else if (strcmp(argv[i], "--hold") == 0)
            hold = arg_long(argv[i + 1], "hold");
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = arg_long(argv[i + 1], "repeat");
    }
    if (hold && !CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free))
        fprintf(stderr, "scan_bench: OpenSSL allocated before main; its bytes are not counted\n");
    if (!cidr) {
        fprintf(stderr, "usage: scan_bench --cidr CIDR --port N --slots N [--timeout MS] "
                        "[--fingerprints FILE] [--hold N]\n");
        return 2;
    }
    cap_log_init("bench", CAP_LOG_WARN, CAP_LOG_TEXT);
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_targets t;
    const char *cidrs[] = {cidr};
    if (cap_targets_init(&t, cidrs, 1, NULL, 0, &port, 1, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    long rss0 = rss_kb();
    long long heap0 = heap_in_use(), ossl0 = atomic_load(&ossl_live), heap_hold = 0, ossl_hold = 0;
    double c0 = cpu_s(), t0 = now_s();
    struct cap_scan_engine *e = cap_scan_engine_new(slots, &err);
    if (!e) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    struct cap_scan_job *j = cap_scan_job_new(e, slots, &err);
    FILE *fp = fpfile ? fopen(fpfile, "w") : NULL;
    size_t window = hold ? (size_t)hold : (size_t)slots * 2 + 8;
    uint64_t n = 0, ok = 0, refused = 0, timeouts = 0, tls_errors = 0;
    bool more = true;
    int held_handshaking = 0;
    long rss_hold = 0;
    double hold_t0 = 0;
    for (;;) {
        while (more && cap_scan_job_outstanding(j) < window) {
            struct cap_target tg;
            if (!cap_targets_next(&t, &tg)) {
                /* again from the start: --repeat passes, or until --hold probes are queued */
                if (--repeat > 0 || hold) {
                    cap_targets_cleanup(&t);
                    if (cap_targets_init(&t, cidrs, 1, NULL, 0, &port, 1, &err) == 0 &&
                        cap_targets_next(&t, &tg))
                        goto have;
                }
                more = false;
                break;
            }
        have:;
            struct cap_scan_req q;
            char host[INET6_ADDRSTRLEN];
            memset(&q, 0, sizeof q);
            q.family = tg.family;
            memcpy(q.addr, tg.addr, sizeof q.addr);
            q.port = tg.port;
            q.timeout_ms = timeout;
            inet_ntop(tg.family, tg.addr, host, sizeof host);
            q.host = host;
            cap_scan_job_submit(j, &q, &err);
            n++;
            if (hold && n >= (uint64_t)hold)
                more = false;
        }
        if (hold && !rss_hold) {
            struct cap_scan_engine_stats st;
            cap_scan_engine_stats(e, &st);
            /* every probe past its connect with its ClientHello out (or 30 s) */
            if ((long)st.inflight >= hold && !hold_t0)
                hold_t0 = now_s();
            if (hold_t0 && ((long)st.handshaking >= hold || now_s() - hold_t0 > 30)) {
                usleep(200000);
                cap_scan_engine_stats(e, &st);
                rss_hold = rss_kb();
                heap_hold = heap_in_use();
                ossl_hold = atomic_load(&ossl_live);
                fprintf(stderr, "held: %d in slots, %d connecting, %d handshaking\n", st.inflight,
                        st.connecting, st.handshaking);
                held_handshaking = st.handshaking;
                break;
            }
        }
        if (!more && cap_scan_job_outstanding(j) == 0)
            break;
        struct cap_scan_result *r = cap_scan_job_wait(j, 100);
        for (struct cap_scan_result *x = r; x; x = x->next) {
            if (strcmp(x->outcome, "ok") == 0) {
                ok++;
                if (fp && x->chain && sk_X509_num(x->chain) > 0) {
                    unsigned char md[32];
                    unsigned len = 0;
                    X509_digest(sk_X509_value(x->chain, 0), EVP_sha256(), md, &len);
                    for (unsigned k = 0; k < len; k++)
                        fprintf(fp, "%02x", md[k]);
                    fprintf(fp, " %s:%d\n", x->req.host, x->req.port);
                }
            } else if (strcmp(x->outcome, "refused") == 0) {
                refused++;
            } else if (strcmp(x->outcome, "timeout") == 0) {
                timeouts++;
            } else {
                tls_errors++;
            }
        }
        cap_scan_result_free(r);
    }
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    struct cap_scan_engine_stats st;
    cap_scan_engine_stats(e, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"endpoints\":%llu,\"ok\":%llu,\"refused\":%llu,\"timeout\":%llu,\"tls_error\":%llu,"
           "\"seconds\":%.3f,\"cpu_s\":%.3f,\"endpoints_per_s\":%.1f,\"ok_per_s\":%.1f,"
           "\"cpu_ms_per_ok\":%.3f,\"peak_inflight\":%d,\"maxrss_kb\":%ld,\"rss_start_kb\":%ld",
           (unsigned long long)n, (unsigned long long)ok, (unsigned long long)refused,
           (unsigned long long)timeouts, (unsigned long long)tls_errors, wall, cpu,
           (double)n / wall, (double)ok / wall, ok ? cpu * 1000.0 / (double)ok : 0.0,
           st.inflight_peak, ru.ru_maxrss, rss0);
    if (hold)
        printf(",\"held\":%ld,\"handshaking\":%d,\"rss_held_kb\":%ld,"
               "\"bytes_per_inflight\":%.0f,\"heap_bytes_per_inflight\":%.0f,"
               "\"openssl_bytes_per_inflight\":%.0f",
               hold, held_handshaking, rss_hold, (double)(rss_hold - rss0) * 1024.0 / (double)hold,
               (double)(heap_hold - heap0) / (double)hold,
               (double)(ossl_hold - ossl0) / (double)hold);
    printf("}\n");
    if (fp)
        fclose(fp);
    cap_scan_job_free(j);
    cap_scan_engine_free(e);
    cap_targets_cleanup(&t);
    return 0;
}
