/* Unit tests of webhook notifications: notify.webhooks from YAML and the environment with the
 * messages bad values get, the filters, idempotency keys, both message formats with their
 * digest bound, the retry backoff, and the kind list against the worker's catalogue. */
#include "common/config.h"
#include "common/notify.h"
#include "tests/unit/test.h"
#include "worker/deliver.h"
#include "worker/findings.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <unistd.h>

static char *const no_env[] = {NULL};

static void load(const char *yaml, char *const *env, struct cap_config *c)
{
    struct cap_err err = {0};
    int rc = cap_config_load_buffer(c, yaml, strlen(yaml), "t.yaml", env, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", err.msg);
    CHECK_EQ(0, rc);
}

static void fail(const char *yaml, char *const *env, const char *want)
{
    struct cap_config c;
    struct cap_err err = {0};
    int rc = cap_config_load_buffer(&c, yaml, strlen(yaml), "t.yaml", env, &err);
    if (rc == 0) {
        fprintf(stderr, "loaded, want \"%s\": %s\n", want, yaml);
        cap_config_cleanup(&c);
    }
    CHECK_EQ(-1, rc);
    if (!strstr(err.msg, want))
        fprintf(stderr, "want \"%s\" in \"%s\"\n", want, err.msg);
    CHECK(strstr(err.msg, want) != NULL);
    CHECK(strchr(err.msg, '\n') == NULL);
}

static void test_config(void)
{
    struct cap_config c;
    load("notify:\n"
         "  webhooks:\n"
         "    - name: ops\n"
         "      url: https://hooks.example.com/x\n"
         "      min_severity: high\n"
         "      kinds: [expired, drift, run_failed]\n"
         "      sources: edge, core\n"
         "      format: slack\n"
         "      timeout: 2s\n"
         "    - name: all\n"
         "      url: http://127.0.0.1:9/h\n",
         no_env, &c);
    CHECK_EQ(2, c.notify_webhooks_n);
    const struct cap_webhook *w = cap_notify_find(&c, "ops");
    CHECK(w != NULL);
    CHECK_EQ(2, w->min_rank);
    CHECK_EQ(3, w->kinds_n);
    CHECK_STR("drift", w->kinds[1]);
    CHECK_EQ(2, w->sources_n);
    CHECK_STR("core", w->sources[1]);
    CHECK_EQ(CAP_NOTIFY_SLACK, w->format);
    CHECK_EQ(2000, w->timeout_ms);
    const struct cap_webhook *a = cap_notify_find(&c, "all");
    CHECK_EQ(5, a->min_rank);
    CHECK_EQ(10000, a->timeout_ms);
    CHECK_EQ(CAP_NOTIFY_JSON, a->format);
    CHECK(cap_notify_find(&c, "none") == NULL);
    CHECK_EQ(7LL * 86400 * 1000, c.retention_notifications_ms);

    /* Filters. */
    CHECK(cap_notify_wants(w, "expired", "critical", "edge"));
    CHECK(!cap_notify_wants(w, "expired", "medium", "edge"));
    CHECK(!cap_notify_wants(w, "revoked", "critical", "edge"));
    CHECK(!cap_notify_wants(w, "expired", "critical", "other"));
    CHECK(!cap_notify_wants(w, "expired", "critical", NULL));
    CHECK(cap_notify_wants(a, "pqc_vulnerable", "info", NULL));
    CHECK(!cap_notify_wants(a, "pqc_vulnerable", "bogus", NULL));
    cap_config_cleanup(&c);

    /* The environment: URLs, named webhook-N, replacing the file's list. */
    char *const env[] = {"CERTAUTOPILOT_NOTIFY_WEBHOOKS=http://127.0.0.1:1/a, https://b.example/x",
                         NULL};
    load("notify:\n  webhooks:\n    - {name: f, url: 'http://127.0.0.1/'}\n", env, &c);
    CHECK_EQ(2, c.notify_webhooks_n);
    CHECK_STR("webhook-2", c.notify_webhooks[1].name);
    CHECK_STR("https://b.example/x", c.notify_webhooks[1].url);
    cap_config_cleanup(&c);

    /* Secrets through files. */
    char dir[] = "/tmp/cap_notify_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char up[64], tp[64], yaml[512];
    snprintf(up, sizeof up, "%s/url", dir);
    snprintf(tp, sizeof tp, "%s/tok", dir);
    FILE *f = fopen(up, "w");
    fputs("https://hooks.slack.com/services/T0/B0/SECRET\n", f);
    fclose(f);
    f = fopen(tp, "w");
    fputs("tok-1\n", f);
    fclose(f);
    snprintf(yaml, sizeof yaml,
             "notify:\n  webhooks:\n    - name: s\n      url_file: %s\n      token_file: %s\n", up,
             tp);
    load(yaml, no_env, &c);
    CHECK_STR("https://hooks.slack.com/services/T0/B0/SECRET", c.notify_webhooks[0].url);
    CHECK_STR("tok-1", c.notify_webhooks[0].token);
    cap_config_cleanup(&c);
    char fenv[128];
    snprintf(fenv, sizeof fenv, "CERTAUTOPILOT_NOTIFY_WEBHOOKS_FILE=%s", up);
    char *const env2[] = {fenv, NULL};
    load("", env2, &c);
    CHECK_EQ(1, c.notify_webhooks_n);
    CHECK_STR("webhook-1", c.notify_webhooks[0].name);
    cap_config_cleanup(&c);
    unlink(up);
    unlink(tp);
    rmdir(dir);

    /* Bad values: one line naming the value (a URL only as scheme and host). */
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/', kinds: [expired, nope]}\n",
         no_env, "key \"notify.webhooks[0].kinds\": value \"nope\" is not a finding kind");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/', min_severity: urgent}\n", no_env,
         "value \"urgent\" is not a severity (allowed critical, high, medium, low, info)");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/', format: xml}\n", no_env,
         "value \"xml\" is not a message format (allowed json, slack)");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/', timeout: 10y}\n", no_env,
         "value \"10y\" is not a timeout");
    fail("notify:\n  webhooks:\n    - {name: 'a b', url: 'http://h/'}\n", no_env,
         "value \"a b\" is not a webhook name");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'ftp://h/secretpath'}\n", no_env,
         "value \"ftp://h/...\" is not an http:// or https:// URL");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://[::1/x'}\n", no_env,
         "does not parse as a URL with a host");
    fail("notify:\n  webhooks:\n    - {name: x}\n", no_env, "a webhook needs url or url_file");
    fail("notify:\n  webhooks:\n    - {url: 'http://h/'}\n", no_env, "a webhook needs a name");
    fail("notify:\n  webhooks:\n    - {name: x, url_file: /nonexistent/u}\n", no_env,
         "file \"/nonexistent/u\": cannot open");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/', token: ''}\n", no_env,
         "value <hidden> is not a token");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/', token: \"a\\nX-Evil: 1\"}\n",
         no_env, "value <hidden> is not a token");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/', colour: red}\n", no_env,
         "unknown key \"colour\"");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/'}\n    - {name: x, url: "
         "'http://i/'}\n",
         no_env, "value \"x\" is the name of two webhooks");
    fail("notify:\n  webhooks:\n    - {name: x, url: 'http://h/', url: 'http://i/'}\n", no_env,
         "duplicate key \"notify.webhooks[0].url\"");
    fail("notify:\n  webhooks: http://h/\n", no_env, "expected a list");
    fail("notify:\n  webhooks:\n    - http://h/\n", no_env, "expected a map");
    fail("notify:\n  webhooks:\n    - {name: x, url: [a]}\n", no_env, "expected a scalar");
    fail("notify:\n  hooks: []\n", no_env, "unknown key \"notify.hooks\"");
    char *const bad_env[] = {"CERTAUTOPILOT_NOTIFY_WEBHOOKS=http://h/a,gopher://h/SECRET", NULL};
    struct cap_config bc;
    struct cap_err err = {0};
    CHECK_EQ(-1, cap_config_load_buffer(&bc, "", 0, "t.yaml", bad_env, &err));
    CHECK(strstr(err.msg, "CERTAUTOPILOT_NOTIFY_WEBHOOKS item [1]") != NULL);
    CHECK(strstr(err.msg, "SECRET") == NULL);
}

static void test_kinds(void)
{
    /* Every kind of the worker's catalogue, and nothing else but the run events. */
    size_t n = 0;
    for (const char *const *k = cap_notify_kinds(); *k; k++, n++)
        CHECK(cap_findings_lookup(*k) != NULL || !strcmp(*k, "run_failed") ||
              !strcmp(*k, "run_dead"));
    CHECK_EQ(CAP_FINDING_KINDS + 2, n);
    for (int i = 0; i < CAP_FINDING_KINDS; i++)
        CHECK(cap_notify_kind_known(cap_findings_def((enum cap_finding_kind)i)->kind));
    CHECK_EQ(1, cap_notify_severity_rank("critical"));
    CHECK_EQ(5, cap_notify_severity_rank("info"));
    CHECK_EQ(0, cap_notify_severity_rank("Critical"));
}

static struct cap_notify_event ev(int64_t id, const char *event, const char *kind, const char *sev,
                                  int64_t finding, int64_t run)
{
    return (struct cap_notify_event){.id = id,
                                     .event = event,
                                     .kind = kind,
                                     .severity = sev,
                                     .finding_id = finding,
                                     .run_id = run,
                                     .subject = "a.example:443",
                                     .subject_key = "endpoint:7",
                                     .at = "2026-12-07 00:00:00+00"};
}

static void test_keys_and_formats(void)
{
    char key[CAP_NOTIFY_KEY_MAX];
    struct cap_notify_event one = ev(41, "opened", "expired", "critical", 9, 3);
    struct cap_notify_msg m = {
        .source_id = 2, .source_name = "edge", .run_id = 3, .ev = &one, .n = 1};
    CHECK_EQ(0, cap_notify_key(&m, key, sizeof key));
    CHECK_STR("cap:f9:opened:e41", key);
    struct cap_notify_event run = ev(42, "failed", "run_failed", "high", 0, 3);
    m.ev = &run;
    CHECK_EQ(0, cap_notify_key(&m, key, sizeof key));
    CHECK_STR("cap:r3:failed:e42", key);
    m.n = 0;
    CHECK_EQ(-1, cap_notify_key(&m, key, sizeof key));

    /* A digest of 300: the key names its events, the list holds the 50 most severe. */
    enum { N = 300 };
    struct cap_notify_event *many = calloc(N, sizeof *many);
    for (int i = 0; i < N; i++)
        many[i] = ev(1000 + i, i % 3 ? "opened" : "resolved", "pqc_vulnerable",
                     i == 250 ? "critical" : "info", 5000 + i, 3);
    m = (struct cap_notify_msg){
        .source_id = 2, .source_name = "edge", .run_id = 3, .ev = many, .n = N};
    CHECK_EQ(0, cap_notify_key(&m, key, sizeof key));
    CHECK_STR("cap:digest:s2:r3:e1000-1299:n300", key);
    struct cap_err err = {0};
    char *body = cap_notify_format(CAP_NOTIFY_JSON, "ops", &m, key, &err);
    CHECK(body != NULL);
    CHECK(strlen(body) < 64 * 1024);
    json_object *j = json_tokener_parse(body);
    CHECK(j != NULL);
    json_object *v;
    CHECK(json_object_object_get_ex(j, "idempotency_key", &v));
    CHECK_STR(key, json_object_get_string(v));
    CHECK(json_object_object_get_ex(j, "count", &v));
    CHECK_EQ(N, json_object_get_int(v));
    CHECK(json_object_object_get_ex(j, "omitted", &v));
    CHECK_EQ(N - CAP_NOTIFY_LIST_MAX, json_object_get_int(v));
    CHECK(json_object_object_get_ex(j, "digest", &v));
    CHECK(json_object_get_boolean(v));
    CHECK(json_object_object_get_ex(j, "counts", &v));
    json_object *c;
    CHECK(json_object_object_get_ex(v, "resolved", &c));
    CHECK_EQ(100, json_object_get_int(c));
    CHECK(json_object_object_get_ex(j, "events", &v));
    CHECK_EQ(CAP_NOTIFY_LIST_MAX, json_object_array_length(v));
    json_object *first = json_object_array_get_idx(v, 0), *fk;
    CHECK(json_object_object_get_ex(first, "severity", &fk));
    CHECK_STR("critical", json_object_get_string(fk));
    CHECK(json_object_object_get_ex(first, "idempotency_key", &fk));
    CHECK_STR("cap:f5250:opened:e1250", json_object_get_string(fk));
    json_object_put(j);
    free(body);

    /* Slack: text and blocks, the section under 3000 characters, the key in a context. */
    body = cap_notify_format(CAP_NOTIFY_SLACK, "chat", &m, key, &err);
    CHECK(body != NULL);
    j = json_tokener_parse(body);
    CHECK(j != NULL);
    CHECK_EQ(2, json_object_object_length(j));
    CHECK(json_object_object_get_ex(j, "text", &v));
    CHECK(strstr(json_object_get_string(v), "300 changes from source edge, run 3") != NULL);
    CHECK(json_object_object_get_ex(j, "blocks", &v));
    json_object *sec = json_object_array_get_idx(v, 0), *t, *tt;
    CHECK(json_object_object_get_ex(sec, "text", &t));
    CHECK(json_object_object_get_ex(t, "text", &tt));
    CHECK(strlen(json_object_get_string(tt)) <= 3000);
    CHECK(strstr(json_object_get_string(tt), "- critical pqc_vulnerable opened: a.example:443") ==
          json_object_get_string(tt));
    CHECK(strstr(json_object_get_string(tt), " more") != NULL);
    json_object *ctx = json_object_array_get_idx(v, 1), *els;
    CHECK(json_object_object_get_ex(ctx, "elements", &els));
    CHECK(json_object_object_get_ex(json_object_array_get_idx(els, 0), "text", &t));
    CHECK_STR("idempotency key cap:digest:s2:r3:e1000-1299:n300", json_object_get_string(t));
    json_object_put(j);
    free(body);

    /* Hostile text is escaped by the library and cut to CAP_NOTIFY_TEXT_MAX. */
    char longsub[1000];
    memset(longsub, 'x', sizeof longsub - 1);
    longsub[sizeof longsub - 1] = '\0';
    longsub[3] = '"';
    longsub[4] = '\n';
    struct cap_notify_event h = ev(1, "opened", "drift", "medium", 2, 0);
    h.subject = longsub;
    m = (struct cap_notify_msg){.ev = &h, .n = 1};
    cap_notify_key(&m, key, sizeof key);
    body = cap_notify_format(CAP_NOTIFY_JSON, "ops", &m, key, &err);
    j = json_tokener_parse(body);
    CHECK(j != NULL);
    CHECK(json_object_object_get_ex(j, "events", &v));
    CHECK(json_object_object_get_ex(json_object_array_get_idx(v, 0), "subject", &t));
    CHECK_EQ(CAP_NOTIFY_TEXT_MAX, strlen(json_object_get_string(t)));
    CHECK(json_object_object_get_ex(j, "run_id", &v));
    CHECK(v == NULL);
    json_object_put(j);
    free(body);
    free(many);
}

static void test_misc(void)
{
    char out[200];
    CHECK_STR(
        "https://hooks.slack.com/...",
        cap_notify_url_redacted("https://user:pw@hooks.slack.com/services/T/B/X", out, sizeof out));
    CHECK_STR("http://127.0.0.1:80",
              cap_notify_url_redacted("http://127.0.0.1:80", out, sizeof out));
    CHECK_EQ(1, cap_deliver_backoff_s(1, -1));
    CHECK_EQ(2, cap_deliver_backoff_s(2, -1));
    CHECK_EQ(16, cap_deliver_backoff_s(5, -1));
    CHECK_EQ(600, cap_deliver_backoff_s(40, -1));
    CHECK_EQ(30, cap_deliver_backoff_s(1, 30));
    CHECK_EQ(3600, cap_deliver_backoff_s(1, 99999));
    CHECK_EQ(4, cap_deliver_backoff_s(3, 2));
}

int main(void)
{
    test_config();
    test_kinds();
    test_keys_and_formats();
    test_misc();
    TEST_DONE();
}
