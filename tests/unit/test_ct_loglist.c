/* The v3 log list as data: states, temporal intervals, final tree heads and refused keys parsed
 * from a realistic list; which logs a certificate issued now can land in; RFC 3339 timestamps. */
#include "common/ct_loglist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define CHECK_MSG(msg, part)                                                                       \
    do {                                                                                           \
        if (!strstr((msg), (part))) {                                                              \
            fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, (msg),     \
                    (part));                                                                       \
            exit(1);                                                                               \
        }                                                                                          \
        cap_test_checks++;                                                                         \
    } while (0)

/* 2026-12-07T00:00:00Z */
#define NOW 1796601600LL

static char *slurp(const char *name, size_t *len)
{
    const char *dir = getenv("CAP_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data", name);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static const struct cap_ct_log *find(const struct cap_ct_log *v, size_t n, const char *url)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].url, url) == 0)
            return &v[i];
    fprintf(stderr, "no log %s\n", url);
    exit(1);
}

static void test_realistic(void)
{
    size_t len;
    const char *json = slurp("ct_log_list_v3.json", &len);
    struct cap_ct_log *logs = NULL;
    size_t n = 0;
    struct cap_err err;
    cap_err_clear(&err);
    CHECK_EQ(0, cap_ct_loglist_parse(json, len, "ct_log_list_v3.json", &logs, &n, &err));
    CHECK_EQ(8, n);

    const struct cap_ct_log *a26 = find(logs, n, "https://ct.googleapis.com/logs/us1/argon2026h2/");
    CHECK_STR("Google", a26->operator_name);
    CHECK_STR("rfc6962", a26->protocol);
    CHECK_EQ(CAP_CT_STATE_USABLE, a26->state);
    CHECK_EQ(1782864000, a26->interval_start); /* 2026-07-01 */
    CHECK_EQ(1798761600, a26->interval_end);   /* 2027-01-01 */
    CHECK_STR("1219ENGn9XfCx+lf1wC/+YLJM1pl4dCzAXMXwMjFaXc=", a26->log_id_b64);
    CHECK(a26->refused == NULL);

    const struct cap_ct_log *a25 = find(logs, n, "https://ct.googleapis.com/logs/us1/argon2025h2/");
    CHECK_EQ(CAP_CT_STATE_READONLY, a25->state);
    CHECK_EQ(1211983571, a25->final_tree_size);

    const struct cap_ct_log *syc = find(logs, n, "https://mon.sycamore.ct.letsencrypt.org/2026h2/");
    CHECK_STR("static-ct", syc->protocol);
    CHECK_STR("Let's Encrypt", syc->operator_name);
    CHECK_EQ(60, syc->mmd_s);

    /* Oak's log_id is another log's: that log alone is refused, with the reason. */
    const struct cap_ct_log *oak = find(logs, n, "https://oak.ct.letsencrypt.org/2026h2/");
    CHECK(oak->refused != NULL);
    CHECK_MSG(oak->refused, "operators[2].logs[0].log_id");
    CHECK_MSG(oak->refused, "does not match the key");
    CHECK_EQ(CAP_CT_STATE_RETIRED, oak->state);
    CHECK_EQ(1772323200, oak->state_at); /* fraction of a second dropped */

    const struct cap_ct_log *wil = find(logs, n, "https://mon.willow.ct.letsencrypt.org/2026h2/");
    CHECK_EQ(CAP_CT_STATE_PENDING, wil->state);
    CHECK_EQ(1793484000, wil->state_at); /* 2026-11-01T00:00:00+02:00 */

    /* The logs a certificate issued on 2026-12-07 can land in: usable or qualified, interval
     * overlapping [now, now + 398 days]. */
    static const char *const want[] = {
        "https://ct.googleapis.com/logs/us1/argon2026h2/",
        "https://ct.googleapis.com/logs/us1/argon2027h1/",
        "https://ct.cloudflare.com/logs/nimbus2026/",
        "https://ct.cloudflare.com/logs/nimbus2027/",
        "https://mon.sycamore.ct.letsencrypt.org/2026h2/",
    };
    size_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cap_ct_log_current(&logs[i], NOW))
            continue;
        cur++;
        int hit = 0;
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
            hit += strcmp(want[k], logs[i].url) == 0;
        if (!hit)
            fprintf(stderr, "chosen but not wanted: %s\n", logs[i].url);
        CHECK_EQ(1, hit);
    }
    CHECK_EQ(sizeof want / sizeof want[0], cur);
    /* A year later the 2026 shards are past their interval. */
    CHECK(!cap_ct_log_current(a26, NOW + 365 * 86400LL));
    CHECK(cap_ct_log_current(find(logs, n, "https://ct.cloudflare.com/logs/nimbus2027/"),
                             NOW + 300 * 86400LL));
    cap_ct_logs_free(logs, n);
}

static struct cap_ct_log mk(enum cap_ct_log_state st, int64_t start, int64_t end)
{
    struct cap_ct_log l = {0};
    l.state = st;
    l.interval_start = start;
    l.interval_end = end;
    l.final_tree_size = -1;
    return l;
}

static void test_current(void)
{
    const int64_t day = 86400, life = CAP_CT_CERT_LIFETIME_S;
    static const struct {
        enum cap_ct_log_state st;
        int64_t start, end; /* relative to NOW; 0 open */
        int want;
    } cases[] = {
        {CAP_CT_STATE_USABLE, 0, 0, 1},
        {CAP_CT_STATE_QUALIFIED, 0, 0, 1},
        {CAP_CT_STATE_NONE, 0, 0, 1},
        {CAP_CT_STATE_PENDING, 0, 0, 0},
        {CAP_CT_STATE_READONLY, 0, 0, 0},
        {CAP_CT_STATE_RETIRED, 0, 0, 0},
        {CAP_CT_STATE_REJECTED, 0, 0, 0},
        /* ends exactly now (exclusive): nothing issued now fits */
        {CAP_CT_STATE_USABLE, -100 * day, 1, 0},
        {CAP_CT_STATE_USABLE, -100 * day, 2, 1},
        /* starts at the last expiry a certificate issued now may have: still in */
        {CAP_CT_STATE_USABLE, 1, 0, 1},
        {CAP_CT_STATE_USABLE, 2, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* start 1 means now + life; 2 means one second past it; end 1 means now; 2 a second
         * later. */
        int64_t s = cases[i].start == 1   ? NOW + life
                    : cases[i].start == 2 ? NOW + life + 1
                    : cases[i].start      ? NOW + cases[i].start
                                          : 0;
        int64_t e = cases[i].end == 1 ? NOW : cases[i].end == 2 ? NOW + 1 : cases[i].end;
        struct cap_ct_log l = mk(cases[i].st, s, e);
        if ((int)cap_ct_log_current(&l, NOW) != cases[i].want)
            fprintf(stderr, "case %zu\n", i);
        CHECK_EQ(cases[i].want, cap_ct_log_current(&l, NOW));
    }
    struct cap_ct_log tl = mk(CAP_CT_STATE_USABLE, 0, 0);
    tl.test_log = true;
    CHECK(!cap_ct_log_current(&tl, NOW));
    struct cap_ct_log r = mk(CAP_CT_STATE_USABLE, 0, 0);
    char why[] = "bad key";
    r.refused = why;
    CHECK(!cap_ct_log_current(&r, NOW));
}

static void test_time(void)
{
    int64_t t = 0;
    CHECK_EQ(0, cap_ct_parse_time("1970-01-01T00:00:00Z", &t));
    CHECK_EQ(0, t);
    CHECK_EQ(0, cap_ct_parse_time("2026-12-07T00:00:00Z", &t));
    CHECK_EQ(NOW, t);
    CHECK_EQ(0, cap_ct_parse_time("2024-02-29T12:00:00.999999Z", &t));
    CHECK_EQ(1709208000, t);
    CHECK_EQ(0, cap_ct_parse_time("2026-12-07T02:00:00+02:00", &t));
    CHECK_EQ(NOW, t);
    CHECK_EQ(0, cap_ct_parse_time("2026-12-06T19:00:00-05:00", &t));
    CHECK_EQ(NOW, t);
    static const char *const bad[] = {
        "",
        "2026-12-07",
        "2026-12-07T00:00:00",
        "2026-12-07 00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-12-32T00:00:00Z",
        "2026-12-07T24:00:00Z",
        "2026-12-07T00:00:00.Z",
        "2026-12-07T00:00:00Zx",
        "2026-12-07T00:00:00+2:00",
        "1969-12-31T23:59:59Z",
        "+026-12-07T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = 42;
        if (cap_ct_parse_time(bad[i], &t) != -1)
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        CHECK_EQ(-1, cap_ct_parse_time(bad[i], &t));
        CHECK_EQ(42, t);
    }
}

static void test_bad_lists(void)
{
    static const char key[] = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKHRm0H/zUaFA6Idz5cGvGO3tCPQyfGMg"
                              "JmVBOPyKAP6mGM1IiNXi4CLomOUyYj0YN74p+eGVApFMsM4h/jzCsA==";
    static const struct {
        const char *log; /* members of one log after url and key */
        const char *want;
    } cases[] = {
        {"\"state\": {\"usable\": {}, \"retired\": {}}",
         "operators[0].logs[0].state: value \"retired\" is a second state"},
        {"\"state\": {\"frozen\": {}}", "state: value \"frozen\" is not a log state"},
        {"\"state\": {\"usable\": 5}", "state.usable: expected an object, got int"},
        {"\"state\": {\"usable\": {\"timestamp\": \"yesterday\"}}",
         "state.usable.timestamp: value \"yesterday\" is not a timestamp"},
        {"\"state\": {\"readonly\": {\"final_tree_head\": {\"tree_size\": -3}}}",
         "final_tree_head.tree_size: value \"-3\" is out of range"},
        {"\"state\": {\"readonly\": {\"final_tree_head\": {}}}",
         "final_tree_head.tree_size: expected an integer, got nothing"},
        {"\"temporal_interval\": []", "temporal_interval: expected an object, got array"},
        {"\"temporal_interval\": {\"start_inclusive\": \"2027-01-01T00:00:00Z\", "
         "\"end_exclusive\": \"2026-01-01T00:00:00Z\"}",
         "temporal_interval: value \"1798761600..1767225600\" ends before it starts"},
        {"\"temporal_interval\": {\"end_exclusive\": 2027}",
         "temporal_interval.end_exclusive: expected a string, got int"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"operators\": [{\"name\": \"x\", \"logs\": [{\"url\": \"https://x.example/\", "
                 "\"key\": \"%s\", %s}]}]}",
                 key, cases[i].log);
        struct cap_ct_log *logs = NULL;
        size_t n = 99;
        struct cap_err err;
        cap_err_clear(&err);
        if (cap_ct_loglist_parse(json, strlen(json), "l.json", &logs, &n, &err) != -1)
            fprintf(stderr, "case %zu parsed\n", i);
        CHECK(logs == NULL);
        CHECK_EQ(99, n);
        if (!strstr(err.msg, cases[i].want))
            fprintf(stderr, "case %zu\n", i);
        CHECK_MSG(err.msg, cases[i].want);
    }

    /* log_type "test" (the all-logs list marks logs for testing CAs so) is never chosen;
     * "prod" is like none. */
    char tj[1024];
    snprintf(tj, sizeof tj,
             "{\"operators\": [{\"logs\": [{\"url\": \"https://t/\", \"key\": \"%s\", "
             "\"log_type\": \"test\"}, {\"url\": \"https://p/\", \"key\": \"%s\", "
             "\"log_type\": \"prod\"}]}]}",
             key, key);
    struct cap_ct_log *tlogs = NULL;
    size_t tn = 0;
    struct cap_err terr;
    cap_err_clear(&terr);
    CHECK_EQ(0, cap_ct_loglist_parse(tj, strlen(tj), "t.json", &tlogs, &tn, &terr));
    CHECK_EQ(2, tn);
    CHECK(tlogs[0].test_log && !cap_ct_log_current(&tlogs[0], NOW));
    CHECK(!tlogs[1].test_log && cap_ct_log_current(&tlogs[1], NOW));
    cap_ct_logs_free(tlogs, tn);

    /* A key that is not one refuses that log only; the next log is read. */
    char json[1024];
    snprintf(json, sizeof json,
             "{\"operators\": [{\"logs\": [{\"url\": \"https://x/\", \"key\": \"@@@@\"}, "
             "{\"url\": \"https://y/\", \"key\": \"%s\"}]}]}",
             key);
    struct cap_ct_log *logs = NULL;
    size_t n = 0;
    struct cap_err err;
    cap_err_clear(&err);
    CHECK_EQ(0, cap_ct_loglist_parse(json, strlen(json), "l.json", &logs, &n, &err));
    CHECK_EQ(2, n);
    CHECK(logs[0].refused != NULL);
    CHECK_MSG(logs[0].refused,
              "ct log list l.json: operators[0].logs[0].key: value \"@@@@\" is not base64");
    CHECK(!cap_ct_log_current(&logs[0], NOW));
    CHECK(logs[1].refused == NULL);
    CHECK(cap_ct_log_current(&logs[1], NOW));
    CHECK_STR("1tWNqdAXU/NqSqDHV0kCr+vH3CzTjNn3ZMgMiRkenwI=", logs[1].log_id_b64);
    cap_ct_logs_free(logs, n);
}

int main(void)
{
    test_realistic();
    test_current();
    test_time();
    test_bad_lists();
    CHECK_STR("usable", cap_ct_log_state_name(CAP_CT_STATE_USABLE));
    CHECK_STR("", cap_ct_log_state_name(CAP_CT_STATE_NONE));
    TEST_DONE();
}
