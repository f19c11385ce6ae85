/* Unit tests of the configuration loader: defaults, YAML file, environment overrides, secrets
 * from files, error messages, the v3 CT log list, redaction and the shipped example file. */
#include "common/config.h"
#include "common/ct_loglist.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "tests/unit/test.h"

/* The message contains every one of the NULL-terminated substrings. */
#define CHECK_MSG(msg, ...)                                                                        \
    do {                                                                                           \
        const char *const subs_[] = {__VA_ARGS__, NULL};                                           \
        for (const char *const *s_ = subs_; *s_; s_++) {                                           \
            cap_test_checks++;                                                                     \
            if (!strstr((msg), *s_)) {                                                             \
                fprintf(stderr, "%s:%d: message lacks \"%s\":\n  %s\n", __FILE__, __LINE__, *s_,   \
                        (msg));                                                                    \
                exit(1);                                                                           \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static char tmpdir[256];
static char *const no_env[] = {NULL};

static const char *tmp_path(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK_EQ(strlen(text), fwrite(text, 1, strlen(text), f));
    CHECK_EQ(0, fclose(f));
}

/* Loads YAML text (NULL: no file) with env; expects success. */
static void load_ok(struct cap_config *c, const char *yaml, char *const *env)
{
    struct cap_err err;
    cap_err_clear(&err);
    char path[512];
    const char *p = NULL;
    if (yaml) {
        p = tmp_path("ok.yaml", path, sizeof path);
        write_file(p, yaml);
    }
    int rc = cap_config_load(c, p, env, &err);
    if (rc != 0)
        fprintf(stderr, "unexpected error: %s\n", err.msg);
    CHECK_EQ(0, rc);
    CHECK_EQ(0, err.code);
}

/* Loads YAML text with env; expects failure and leaves the message in err. The config passed in
 * holds a sentinel that a failed load must not touch. */
static void load_fail(const char *yaml, char *const *env, struct cap_err *err)
{
    struct cap_config c;
    memset(&c, 0xA5, sizeof c);
    cap_err_clear(err);
    char path[512];
    const char *p = NULL;
    if (yaml) {
        p = tmp_path("bad.yaml", path, sizeof path);
        write_file(p, yaml);
    }
    CHECK_EQ(-1, cap_config_load(&c, p, env, err));
    CHECK(err->code != 0);
    CHECK(err->msg[0] != '\0');
    unsigned char *b = (unsigned char *)&c;
    for (size_t i = 0; i < sizeof c; i++)
        CHECK_EQ(0xA5, b[i]);
}

static void test_durations(void)
{
    static const struct {
        const char *s;
        long long ms;
    } ok[] = {{"500ms", 500},   {"5s", 5000},
              {"1m", 60000},    {"2h", 7200000},
              {"1d", 86400000}, {"30", 30000},
              {"0", 0},         {"0ms", 0},
              {"90s", 90000},   {"9223372036854775807ms", 9223372036854775807LL}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        CHECK_EQ(0, cap_config_parse_duration_ms(ok[i].s, &ms));
        CHECK_EQ(ok[i].ms, ms);
    }
    static const char *const bad[] = {"",
                                      "s",
                                      "5x",
                                      "-5s",
                                      "5 s",
                                      " 5s",
                                      "5S",
                                      "1.5s",
                                      "5sm",
                                      "ms5",
                                      "1w",
                                      "abc",
                                      "5s ",
                                      "99999999999999999d",
                                      "9223372036854775808ms",
                                      "+5s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 12345;
        if (cap_config_parse_duration_ms(bad[i], &ms) != -1)
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        CHECK_EQ(-1, cap_config_parse_duration_ms(bad[i], &ms));
        CHECK_EQ(12345, ms);
    }
}

static void test_defaults(void)
{
    struct cap_config c;
    load_ok(&c, NULL, no_env);
    CHECK_STR("postgresql://localhost/certautopilot", c.database_url);
    CHECK_STR("redis://127.0.0.1:6379/0", c.redis_url);
    CHECK_STR("cap:discovery", c.redis_stream);
    CHECK_STR("cap-workers", c.redis_group);
    CHECK_STR("cap:discovery:dead", c.redis_dead_letter_stream);
    CHECK_EQ(CAP_LOG_INFO, c.logging_level);
    CHECK_EQ(CAP_LOG_AUTO, c.logging_format);
    CHECK_STR("", c.telemetry_metrics_listen);
    CHECK_EQ(5000, c.scheduler_tick_ms);
    CHECK_EQ(300000, c.scheduler_requeue_after_ms);
    CHECK_EQ(500, c.scheduler_batch);
    CHECK_EQ(90LL * 86400 * 1000, c.retention_observations_ms);
    CHECK_EQ(90LL * 86400 * 1000, c.retention_runs_ms);
    CHECK_EQ(256, c.worker_max_concurrent_discovery);
    CHECK_EQ(16, c.worker_max_jobs);
    CHECK_EQ(60000, c.worker_reclaim_idle_ms);
    CHECK_EQ(5, c.worker_max_attempts);
    CHECK_EQ(25000, c.worker_drain_grace_ms);
    CHECK_EQ(15000, c.worker_heartbeat_ms);
    CHECK_EQ(0, c.worker_noop_executor);
    CHECK_EQ(1, c.database_prepared_statements);
    CHECK_EQ(0, c.worker_noop_sleep_ms);
    CHECK(c.network_deny != NULL);
    CHECK(c.network_deny[0] == NULL);
    CHECK_EQ(0, c.network_deny_n);
    CHECK_EQ(0, c.network_allow_loopback);
    CHECK(c.network_dns_servers != NULL);
    CHECK(c.network_dns_servers[0] == NULL);
    CHECK_EQ(0, c.network_dns_servers_n);
    CHECK_EQ(1048576, c.scan_max_targets);
    CHECK_EQ(14, c.scan_expiring_days);
    CHECK_EQ(8192, c.scan_max_pending_connects);
    CHECK_EQ(2000, c.scan_connect_rate);
    CHECK_EQ(65536, c.scan_shard_targets);
    CHECK_EQ(16384, c.scan_shard_size);
    CHECK_EQ(0, c.ct_logs_n);
    CHECK(c.ct_logs == NULL);
    CHECK(c.ct_log_list_file == NULL);
    CHECK(c.ct_log_list_url == NULL);
    CHECK_EQ(86400000, c.ct_log_list_refresh_ms);
    CHECK_EQ(1000000, c.ct_run_budget);
    CHECK_EQ(10, c.ct_max_requests_per_second);
    cap_config_cleanup(&c);
    cap_config_cleanup(&c); /* safe on the zeroed struct it leaves */

    /* An empty file, and one with only comments and empty sections, change nothing. */
    load_ok(&c, "", no_env);
    CHECK_EQ(256, c.worker_max_concurrent_discovery);
    cap_config_cleanup(&c);
    load_ok(&c, "# nothing\nworker:\nct:\n", no_env);
    CHECK_EQ(16, c.worker_max_jobs);
    cap_config_cleanup(&c);
}

static const char full_yaml[] = "database:\n"
                                "  url: postgresql://cap:pw@db.internal:5432/cap\n"
                                "redis:\n"
                                "  url: redis://:pw@redis.internal:6380/2\n"
                                "  stream: s1\n"
                                "  group: g1\n"
                                "  dead_letter_stream: s1:dead\n"
                                "logging:\n"
                                "  level: debug\n"
                                "  format: json\n"
                                "telemetry:\n"
                                "  metrics_listen: \"0.0.0.0:9200\"\n"
                                "scheduler:\n"
                                "  tick: 250ms\n"
                                "  requeue_after: 2m\n"
                                "  batch: 100\n"
                                "retention:\n"
                                "  observations: 1d\n"
                                "  runs: 0\n"
                                "worker:\n"
                                "  max_concurrent_discovery: 5000\n"
                                "  max_jobs: 32\n"
                                "  reclaim_idle: 2m\n"
                                "  max_attempts: 7\n"
                                "  drain_grace: 10\n"
                                "  noop_executor: yes\n"
                                "  noop_sleep: 5ms\n"
                                "network:\n"
                                "  deny:\n"
                                "    - 10.0.0.0/8\n"
                                "    - \"fd00::/8\"\n"
                                "    - 192.0.2.7\n"
                                "  allow_loopback: on\n"
                                "  dns_servers:\n"
                                "    - 10.0.0.53\n"
                                "    - \"10.0.0.54:5353\"\n"
                                "    - \"[FD00::53]:053\"\n"
                                "    - 2001:DB8::35\n"
                                "scan:\n"
                                "  max_targets: 4294967296\n"
                                "  expiring_days: 0\n"
                                "  max_pending_connects: 1000000\n"
                                "  connect_rate: 1\n"
                                "ct:\n"
                                "  run_budget: 5000\n"
                                "  max_requests_per_second: 3\n";

static void test_file_values(void)
{
    struct cap_config c;
    load_ok(&c, full_yaml, no_env);
    CHECK_STR("postgresql://cap:pw@db.internal:5432/cap", c.database_url);
    CHECK_STR("redis://:pw@redis.internal:6380/2", c.redis_url);
    CHECK_STR("s1", c.redis_stream);
    CHECK_STR("g1", c.redis_group);
    CHECK_STR("s1:dead", c.redis_dead_letter_stream);
    CHECK_EQ(CAP_LOG_DEBUG, c.logging_level);
    CHECK_EQ(CAP_LOG_JSON, c.logging_format);
    CHECK_STR("0.0.0.0:9200", c.telemetry_metrics_listen);
    CHECK_EQ(250, c.scheduler_tick_ms);
    CHECK_EQ(120000, c.scheduler_requeue_after_ms);
    CHECK_EQ(100, c.scheduler_batch);
    CHECK_EQ(86400000, c.retention_observations_ms);
    CHECK_EQ(0, c.retention_runs_ms); /* 0: runs are kept for ever */
    CHECK_EQ(5000, c.worker_max_concurrent_discovery);
    CHECK_EQ(32, c.worker_max_jobs);
    CHECK_EQ(120000, c.worker_reclaim_idle_ms);
    CHECK_EQ(30000, c.worker_heartbeat_ms); /* reclaim_idle / 4 */
    CHECK_EQ(7, c.worker_max_attempts);
    CHECK_EQ(10000, c.worker_drain_grace_ms);
    CHECK_EQ(1, c.worker_noop_executor);
    CHECK_EQ(5, c.worker_noop_sleep_ms);
    CHECK_EQ(3, c.network_deny_n);
    CHECK_STR("10.0.0.0/8", c.network_deny[0]);
    CHECK_STR("fd00::/8", c.network_deny[1]);
    CHECK_STR("192.0.2.7/32", c.network_deny[2]);
    CHECK(c.network_deny[3] == NULL);
    CHECK_EQ(1, c.network_allow_loopback);
    /* DNS servers keep their form, written canonically. */
    CHECK_EQ(4, c.network_dns_servers_n);
    CHECK_STR("10.0.0.53", c.network_dns_servers[0]);
    CHECK_STR("10.0.0.54:5353", c.network_dns_servers[1]);
    CHECK_STR("[fd00::53]:53", c.network_dns_servers[2]);
    CHECK_STR("2001:db8::35", c.network_dns_servers[3]);
    CHECK(c.network_dns_servers[4] == NULL);
    CHECK_EQ(4294967296LL, c.scan_max_targets);
    CHECK_EQ(0, c.scan_expiring_days);
    CHECK_EQ(1000000, c.scan_max_pending_connects);
    CHECK_EQ(1, c.scan_connect_rate);
    CHECK_EQ(5000, c.ct_run_budget);
    CHECK_EQ(3, c.ct_max_requests_per_second);
    cap_config_cleanup(&c);

    /* An explicit heartbeat is kept; CERTAUTOPILOT_CONFIG names the file when no path is given. */
    char path[512];
    tmp_path("viaenv.yaml", path, sizeof path);
    write_file(path, "worker:\n  heartbeat: 7s\n  max_jobs: 3\n");
    char var[600];
    snprintf(var, sizeof var, "CERTAUTOPILOT_CONFIG=%s", path);
    char *env[] = {var, NULL};
    struct cap_err err;
    cap_err_clear(&err);
    CHECK_EQ(0, cap_config_load(&c, NULL, env, &err));
    CHECK_EQ(7000, c.worker_heartbeat_ms);
    CHECK_EQ(3, c.worker_max_jobs);
    cap_config_cleanup(&c);

    /* The same text through the buffer entry point, not NUL-terminated. */
    const char text[] = "worker:\n  max_jobs: 9\nXXXX";
    CHECK_EQ(0, cap_config_load_buffer(&c, text, strlen(text) - 4, "buf.yaml", no_env, &err));
    CHECK_EQ(9, c.worker_max_jobs);
    cap_config_cleanup(&c);
}

static void test_env_overrides(void)
{
    struct cap_config c;
    char *env[] = {"CERTAUTOPILOT_WORKER_MAX_CONCURRENT_DISCOVERY=12",
                   "CERTAUTOPILOT_DATABASE_URL=postgresql://env/db",
                   "CERTAUTOPILOT_NETWORK_DENY= 172.16.0.0/12 ,,2001:db8::/32",
                   "CERTAUTOPILOT_NETWORK_ALLOW_LOOPBACK=false",
                   "CERTAUTOPILOT_LOGGING_LEVEL=warn",
                   "CERTAUTOPILOT_LOGGING_FORMAT=text",
                   "CERTAUTOPILOT_SCHEDULER_TICK=1m",
                   "CERTAUTOPILOT_WORKER_HEARTBEAT=3s",
                   "CERTAUTOPILOT_SCAN_MAX_TARGETS=10",
                   "CERTAUTOPILOT_TELEMETRY_METRICS_LISTEN=off",
                   "CERTAUTOPILOT_CT_LOGS=https://a.example/log, http://127.0.0.1:8080/ct/",
                   "CERTAUTOPILOT_CT_RUN_BUDGET=77",
                   "CERTAUTOPILOT_CT_LOG_LIST_URL=http://127.0.0.1:8080/log_list.json",
                   "CERTAUTOPILOT_CT_LOG_LIST_REFRESH=90s",
                   "CERTAUTOPILOT_CT_MAX_REQUESTS_PER_SECOND=25",
                   "CERTAUTOPILOT_SCAN_MAX_PENDING_CONNECTS=64",
                   "CERTAUTOPILOT_SCAN_CONNECT_RATE=500",
                   "CERTAUTOPILOT_SCAN_SHARD_TARGETS=1000",
                   "CERTAUTOPILOT_SCAN_SHARD_SIZE=250",
                   "CERTAUTOPILOT_NETWORK_DNS_SERVERS=192.0.2.53:53, [2001:db8::53]:5353,,::1",
                   "CERTAUTOPILOT_RETENTION_OBSERVATIONS=36h",
                   "OTHER_VAR=1",
                   NULL};
    load_ok(&c, full_yaml, env);
    CHECK_EQ(12, c.worker_max_concurrent_discovery);
    CHECK_STR("postgresql://env/db", c.database_url);
    CHECK_EQ(2, c.network_deny_n);
    CHECK_STR("172.16.0.0/12", c.network_deny[0]);
    CHECK_STR("2001:db8::/32", c.network_deny[1]);
    CHECK(c.network_deny[2] == NULL);
    CHECK_EQ(0, c.network_allow_loopback);
    CHECK_EQ(CAP_LOG_WARN, c.logging_level);
    CHECK_EQ(CAP_LOG_TEXT, c.logging_format);
    CHECK_EQ(60000, c.scheduler_tick_ms);
    CHECK_EQ(3000, c.worker_heartbeat_ms);
    CHECK_EQ(10, c.scan_max_targets);
    CHECK_STR("off", c.telemetry_metrics_listen);
    CHECK_EQ(77, c.ct_run_budget);
    CHECK_STR("http://127.0.0.1:8080/log_list.json", c.ct_log_list_url);
    CHECK_EQ(90000, c.ct_log_list_refresh_ms);
    CHECK_EQ(25, c.ct_max_requests_per_second);
    CHECK_EQ(64, c.scan_max_pending_connects);
    CHECK_EQ(500, c.scan_connect_rate);
    CHECK_EQ(1000, c.scan_shard_targets);
    CHECK_EQ(250, c.scan_shard_size);
    CHECK_EQ(36LL * 3600 * 1000, c.retention_observations_ms);
    CHECK_EQ(0, c.retention_runs_ms); /* the file's, the environment left it */
    CHECK_EQ(3, c.network_dns_servers_n);
    CHECK_STR("192.0.2.53:53", c.network_dns_servers[0]);
    CHECK_STR("[2001:db8::53]:5353", c.network_dns_servers[1]);
    CHECK_STR("::1", c.network_dns_servers[2]);
    CHECK(c.network_dns_servers[3] == NULL);
    CHECK_EQ(2, c.ct_logs_n);
    CHECK_STR("https://a.example/log/", c.ct_logs[0].url);
    CHECK_STR("auto", c.ct_logs[0].protocol);
    CHECK(c.ct_logs[0].key_b64 == NULL);
    CHECK_EQ(86400, c.ct_logs[0].mmd_s);
    CHECK_STR("http://127.0.0.1:8080/ct/", c.ct_logs[1].url);
    /* what the environment leaves alone keeps the file's value */
    CHECK_EQ(32, c.worker_max_jobs);
    CHECK_STR("s1", c.redis_stream);
    cap_config_cleanup(&c);

    /* An empty list variable clears the file's list. */
    char *env2[] = {"CERTAUTOPILOT_NETWORK_DENY=", "CERTAUTOPILOT_NETWORK_DNS_SERVERS=", NULL};
    load_ok(&c, full_yaml, env2);
    CHECK_EQ(0, c.network_deny_n);
    CHECK(c.network_deny && c.network_deny[0] == NULL);
    CHECK_EQ(0, c.network_dns_servers_n);
    CHECK(c.network_dns_servers && c.network_dns_servers[0] == NULL);
    CHECK_EQ(1000000, c.scan_max_pending_connects); /* the file's, the environment left it */
    cap_config_cleanup(&c);
}

static void test_secret_files(void)
{
    char p1[512], p2[512], v1[600], v2[600];
    tmp_path("db_url", p1, sizeof p1);
    tmp_path("redis_url", p2, sizeof p2);
    write_file(p1, "postgresql://cap:s3cret@db/cap\n");
    write_file(p2, "redis://:r3dis@cache:6379/1\r\n\n");
    snprintf(v1, sizeof v1, "CERTAUTOPILOT_DATABASE_URL_FILE=%s", p1);
    snprintf(v2, sizeof v2, "CERTAUTOPILOT_REDIS_URL_FILE=%s", p2);
    struct cap_config c;
    char *env[] = {v1, v2, NULL};
    /* _FILE wins over the file */
    load_ok(&c, full_yaml, env);
    CHECK_STR("postgresql://cap:s3cret@db/cap", c.database_url);
    CHECK_STR("redis://:r3dis@cache:6379/1", c.redis_url);
    cap_config_cleanup(&c);

    /* the variable itself wins over _FILE */
    char *env2[] = {v1, "CERTAUTOPILOT_DATABASE_URL=postgresql://direct/db", NULL};
    load_ok(&c, NULL, env2);
    CHECK_STR("postgresql://direct/db", c.database_url);
    cap_config_cleanup(&c);

    /* a missing file names the variable; a bad secret is never quoted */
    char v3[600];
    snprintf(v3, sizeof v3, "CERTAUTOPILOT_DATABASE_URL_FILE=%s/nope", tmpdir);
    char *env3[] = {v3, NULL};
    struct cap_err err;
    load_fail(NULL, env3, &err);
    CHECK_MSG(err.msg, "environment CERTAUTOPILOT_DATABASE_URL_FILE", "nope", "cannot open");
    write_file(p1, "hunter2\n");
    char *env4[] = {v1, NULL};
    load_fail(NULL, env4, &err);
    CHECK_MSG(err.msg, "CERTAUTOPILOT_DATABASE_URL_FILE", "hidden", "postgresql://");
    CHECK(strstr(err.msg, "hunter2") == NULL);
    char *env5[] = {"CERTAUTOPILOT_REDIS_URL=http://user:topsecret@x/", NULL};
    load_fail(NULL, env5, &err);
    CHECK_MSG(err.msg, "environment CERTAUTOPILOT_REDIS_URL", "http://user:****@x/",
              "allowed redis://");
    CHECK(strstr(err.msg, "topsecret") == NULL);
    char *env6[] = {"CERTAUTOPILOT_REDIS_URL=rediss://:topsecret@cache:6380/0", NULL};
    load_fail(NULL, env6, &err);
    CHECK_MSG(err.msg, "rediss://:****@cache:6380/0", "uses TLS, which is not supported");
    CHECK(strstr(err.msg, "topsecret") == NULL);
}

static void test_unknown_keys(void)
{
    struct cap_err err;
    load_fail("worker:\n  max_concurent_discovery: 5\n", no_env, &err);
    CHECK_MSG(err.msg, "bad.yaml:2:3: unknown key \"worker.max_concurent_discovery\"",
              "did you mean \"worker.max_concurrent_discovery\"");
    load_fail("wrker:\n  max_jobs: 5\n", no_env, &err);
    CHECK_MSG(err.msg, "bad.yaml:1:1: unknown key \"wrker\"", "did you mean \"worker\"");
    load_fail("zzz: 1\n", no_env, &err);
    CHECK_MSG(err.msg, "unknown key \"zzz\"");
    CHECK(strstr(err.msg, "did you mean") == NULL);
    load_fail("worker.max_jobs: 5\n", no_env, &err);
    CHECK_MSG(err.msg, "key \"worker.max_jobs\" must be nested", "\"worker:\"");
    load_fail("worker:\n  max_jobs: 5\n  max_jobs: 6\n", no_env, &err);
    CHECK_MSG(err.msg, "bad.yaml:3:3: duplicate key \"worker.max_jobs\"");
    load_fail("ct:\n  logs:\n    - url: https://x/\n      color: red\n", no_env, &err);
    CHECK_MSG(err.msg, "bad.yaml:4:7: unknown key \"ct.logs[0].color\"");
}

static void test_bad_values(void)
{
    static const struct {
        const char *yaml;
        const char *want[4];
    } cases[] = {
        {"worker:\n  max_concurrent_discovery: abc\n",
         {"bad.yaml:2:29: key \"worker.max_concurrent_discovery\": value \"abc\" is not an "
          "integer (allowed 1-100000)"}},
        {"worker:\n  max_concurrent_discovery: 100001\n",
         {"value \"100001\" is out of range (allowed 1-100000)"}},
        {"worker:\n  max_concurrent_discovery: 0\n", {"value \"0\" is out of range"}},
        {"worker:\n  max_attempts: 101\n",
         {"\"worker.max_attempts\"", "is out of range (allowed 1-100)"}},
        {"scan:\n  expiring_days: -1\n", {"\"scan.expiring_days\"", "(allowed 0-3650)"}},
        {"scan:\n  max_targets: 4294967297\n", {"(allowed 1-4294967296)"}},
        {"scan:\n  max_targets: 99999999999999999999\n", {"is out of range"}},
        {"scheduler:\n  tick: 5 seconds\n",
         {"key \"scheduler.tick\": value \"5 seconds\" is not a duration", "500ms, 5s, 1m"}},
        {"scheduler:\n  tick: 0s\n", {"value \"0s\" is out of range (allowed 1ms-365d"}},
        {"worker:\n  drain_grace: 400d\n", {"\"worker.drain_grace\"", "out of range"}},
        {"worker:\n  noop_executor: maybe\n",
         {"value \"maybe\" is not a boolean (allowed true, false, yes, no, on, off, 1, 0)"}},
        {"logging:\n  level: loud\n", {"is not a log level (allowed debug, info, warn, error)"}},
        {"logging:\n  format: xml\n", {"is not a log format (allowed json, text, auto)"}},
        {"network:\n  deny: [10.0.0.0/33]\n",
         {"key \"network.deny[0]\": value \"10.0.0.0/33\"", "prefix length"}},
        {"network:\n  deny: [10.0.0.1/8]\n", {"bits set right of the prefix"}},
        {"network:\n  deny: [\"fd00::/8\", bogus]\n",
         {"bad.yaml:2:22: key \"network.deny[1]\": value \"bogus\" is not an IPv4 or IPv6 CIDR"}},
        {"network:\n  deny: 10.0.0.0/8\n", {"key \"network.deny\": expected a list, got a scalar"}},
        {"network:\n  deny: [[1]]\n", {"key \"network.deny[0]\": expected a CIDR, got a list"}},
        {"worker:\n  max_jobs: {a: 1}\n",
         {"bad.yaml:2:13: key \"worker.max_jobs\": expected a scalar, got a map"}},
        {"worker:\n  max_jobs: [1]\n", {"expected a scalar, got a list"}},
        {"worker: 5\n", {"key \"worker\": expected a map, got a scalar"}},
        {"- a\n- b\n", {"expected a map of sections"}},
        {"redis:\n  stream: \"has space\"\n", {"\"redis.stream\"", "is not a valid name"}},
        {"redis:\n  stream: x\n  dead_letter_stream: x\n",
         {"\"redis.dead_letter_stream\"", "same as redis.stream"}},
        {"telemetry:\n  metrics_listen: localhost\n",
         {"\"telemetry.metrics_listen\"", "is not a listen address"}},
        {"telemetry:\n  metrics_listen: \"127.0.0.1:70000\"\n", {"is not a listen address"}},
        {"worker:\n  reclaim_idle: 10s\n  heartbeat: 10s\n",
         {"\"worker.heartbeat\": value \"10s\" is more than half of worker.reclaim_idle \"10s\""}},
        {"worker:\n  reclaim_idle: 10s\n  heartbeat: 6s\n",
         {"\"worker.heartbeat\": value \"6s\" is more than half of worker.reclaim_idle \"10s\""}},
        {"scan:\n  shard_targets: 100\n  shard_size: 101\n",
         {"\"scan.shard_size\": value 101 is more than scan.shard_targets 100"}},
        {"worker:\n  max_jobs: \"1\\x00\"\n", {"contains a NUL byte"}},
        {"worker:\n  max_jobs: [1\n",
         {"bad.yaml:3:1: invalid YAML", "flow sequence at line 2 column 13"}},
        {"worker:\n\tmax_jobs: 1\n", {"bad.yaml:2:1: invalid YAML"}},
        {"worker: {max_jobs: 1}\n---\nworker: {max_jobs: 2}\n", {"more than one YAML document"}},
        {"ct:\n  logs:\n    - url: ftp://x/\n",
         {"key \"ct.logs[0].url\": value \"ftp://x/\" is not an http:// or https:// URL"}},
        {"ct:\n  logs:\n    - protocol: static-ct\n", {"key \"ct.logs[0]\": missing \"url\""}},
        {"ct:\n  logs:\n    - {url: \"https://x/\", protocol: grpc}\n",
         {"\"ct.logs[0].protocol\": value \"grpc\" is not a CT protocol (allowed rfc6962, "
          "static-ct, auto)"}},
        {"ct:\n  logs:\n    - {url: \"https://x/\", key: \"not base64!\"}\n",
         {"\"ct.logs[0].key\"", "is not base64"}},
        {"ct:\n  logs:\n    - {url: \"https://x/\", key: \"AAAA\"}\n",
         {"\"ct.logs[0].key\"", "is not a DER SubjectPublicKeyInfo"}},
        {"ct:\n  logs:\n    - {url: \"https://x/\", log_id: \"AAAA\"}\n",
         {"\"ct.logs[0].log_id\"", "is not a base64 SHA-256"}},
        {"ct:\n  logs:\n    - {url: \"https://x/\", mmd: 500ms}\n",
         {"\"ct.logs[0].mmd\"", "is not a maximum merge delay"}},
        {"ct:\n  log_list_file: \"\"\n", {"\"ct.log_list_file\"", "is empty"}},
        {"ct:\n  log_list_url: ftp://lists.example/v3.json\n",
         {"key \"ct.log_list_url\": value \"ftp://lists.example/v3.json\" is not an http:// or "
          "https:// URL"}},
        {"ct:\n  log_list_url: \"https://\"\n", {"\"ct.log_list_url\"", "is not an http://"}},
        {"ct:\n  log_list_url: \"https://a b/\"\n", {"\"ct.log_list_url\"", "is not an http://"}},
        {"ct:\n  log_list_refresh: 500ms\n",
         {"key \"ct.log_list_refresh\": value \"500ms\" is out of range"}},
        {"ct:\n  log_list_refresh: daily\n", {"\"ct.log_list_refresh\"", "is not a duration"}},
        {"ct:\n  log_list_url: https://l.example/l.json\n  log_list_file: /etc/l.json\n",
         {"\"ct.log_list_url\" and \"ct.log_list_file\": both are set"}},
        {"network:\n  deny: [[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]\n",
         {"bad.yaml:2:23: nested deeper than 16 levels"}},
        {"scan:\n  max_pending_connects: 0\n",
         {"key \"scan.max_pending_connects\": value \"0\" is out of range (allowed 1-1000000)"}},
        {"scan:\n  max_pending_connects: 1000001\n",
         {"\"scan.max_pending_connects\"", "value \"1000001\" is out of range"}},
        {"scan:\n  connect_rate: fast\n",
         {"key \"scan.connect_rate\": value \"fast\" is not an integer (allowed 1-1000000)"}},
        {"scan:\n  connect_rate: 0\n", {"\"scan.connect_rate\"", "is out of range"}},
        {"retention:\n  observations: 90 days\n",
         {"key \"retention.observations\": value \"90 days\" is not a duration (allowed "
          "0ms-36500d"}},
        {"retention:\n  runs: 36501d\n",
         {"key \"retention.runs\": value \"36501d\" is out of range (allowed 0ms-36500d"}},
        {"retention:\n  runs: -1d\n", {"\"retention.runs\"", "is not a duration"}},
        {"retention:\n  observation: 1d\n",
         {"unknown key \"retention.observation\"", "did you mean \"retention.observations\""}},
        {"retention: 90d\n", {"key \"retention\": expected a map, got a scalar"}},
        {"network:\n  dns_servers: [10.0.0.53, resolver.example]\n",
         {"bad.yaml:2:28: key \"network.dns_servers[1]\": dns server \"resolver.example\": not an "
          "IP address (a server is given by address, not by name) (allowed IP, IP:PORT or "
          "[IPv6]:PORT, such as 10.0.0.53 or [fd00::53]:5353)"}},
        {"network:\n  dns_servers: [\"10.0.0.53:0\"]\n",
         {"\"network.dns_servers[0]\": dns server \"10.0.0.53:0\": port must be a number from 1 "
          "to 65535"}},
        {"network:\n  dns_servers: [\"10.0.0.53:65536\"]\n",
         {"port must be a number from 1 to 65535"}},
        {"network:\n  dns_servers: [\"10.0.0.53:\"]\n", {"port must be a number from 1 to 65535"}},
        {"network:\n  dns_servers: [\"[10.0.0.53]:53\"]\n",
         {"dns server \"[10.0.0.53]:53\": an IPv4 address in brackets"}},
        {"network:\n  dns_servers: [\"[fd00::53]\"]\n",
         {"dns server \"[fd00::53]\": expected \":PORT\" after \"]\""}},
        {"network:\n  dns_servers: [\"10.0.0.300\"]\n",
         {"dns server \"10.0.0.300\": not an IP address"}},
        {"network:\n  dns_servers: [\"fe80::1%eth0\"]\n",
         {"dns server \"fe80::1%eth0\": not an IPv6 address (no zone index"}},
        {"network:\n  dns_servers: [\"10.0.0.1\\0:53\"]\n",
         {"\"network.dns_servers[0]\": dns server \"10.0.0.1\\x00:53\": contains a NUL byte"}},
        {"network:\n  dns_servers: [\"0.0.0.0:53\"]\n",
         {"\"network.dns_servers[0]\": dns server \"0.0.0.0:53\": the unspecified address is "
          "not a server"}},
        {"network:\n  dns_servers: [\"10.0.0.53\", \"[::]:53\"]\n",
         {"\"network.dns_servers[1]\": dns server \"[::]:53\": the unspecified address"}},
        {"network:\n  dns_servers: 10.0.0.53\n",
         {"key \"network.dns_servers\": expected a list, got a scalar"}},
        {"network:\n  dns_servers: [{a: 1}]\n",
         {"key \"network.dns_servers[0]\": expected a DNS server address, got a map"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cap_err err;
        load_fail(cases[i].yaml, no_env, &err);
        for (int k = 0; k < 4 && cases[i].want[k]; k++) {
            if (!strstr(err.msg, cases[i].want[k]))
                fprintf(stderr, "case %zu\n", i);
            CHECK_MSG(err.msg, cases[i].want[k]);
        }
    }

    /* The environment names the variable. */
    struct cap_err err;
    char *e1[] = {"CERTAUTOPILOT_WORKER_MAX_ATTEMPTS=many", NULL};
    load_fail(NULL, e1, &err);
    CHECK_STR("environment CERTAUTOPILOT_WORKER_MAX_ATTEMPTS: value \"many\" is not an integer "
              "(allowed 1-100)",
              err.msg);
    char *e2[] = {"CERTAUTOPILOT_NETWORK_DENY=10.0.0.0/8,300.1.1.1/32", NULL};
    load_fail(NULL, e2, &err);
    CHECK_MSG(err.msg, "environment CERTAUTOPILOT_NETWORK_DENY item [1]", "\"300.1.1.1/32\"");
    char *e2b[] = {"CERTAUTOPILOT_NETWORK_DNS_SERVERS=10.0.0.53, 10.0.0.54:99999", NULL};
    load_fail(NULL, e2b, &err);
    CHECK_STR("environment CERTAUTOPILOT_NETWORK_DNS_SERVERS item [1]: dns server "
              "\"10.0.0.54:99999\": port must be a number from 1 to 65535 (allowed IP, IP:PORT or "
              "[IPv6]:PORT, such as 10.0.0.53 or [fd00::53]:5353)",
              err.msg);
    char *e2m[] = {"CERTAUTOPILOT_NETWORK_DNS_SERVERS=10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,"
                   "10.0.0.5,10.0.0.6,10.0.0.7,10.0.0.8,10.0.0.9,10.0.0.10,10.0.0.11,10.0.0.12,"
                   "10.0.0.13,10.0.0.14,10.0.0.15,10.0.0.16,10.0.0.17",
                   NULL};
    load_fail(NULL, e2m, &err);
    CHECK_STR("environment CERTAUTOPILOT_NETWORK_DNS_SERVERS item [16]: more than 16 dns servers",
              err.msg);
    char *e2c[] = {"CERTAUTOPILOT_SCAN_CONNECT_RATE=1000001", NULL};
    load_fail(NULL, e2c, &err);
    CHECK_STR("environment CERTAUTOPILOT_SCAN_CONNECT_RATE: value \"1000001\" is out of range "
              "(allowed 1-1000000)",
              err.msg);
    char *e2d[] = {"CERTAUTOPILOT_SCAN_MAX_PENDING_CONNECTS=", NULL};
    load_fail(NULL, e2d, &err);
    CHECK_MSG(err.msg, "CERTAUTOPILOT_SCAN_MAX_PENDING_CONNECTS: value \"\" is not an integer");
    char *e3[] = {"CERTAUTOPILOT_NETWORK_ALLOW_LOOPBACK=", NULL};
    load_fail(NULL, e3, &err);
    CHECK_MSG(err.msg, "CERTAUTOPILOT_NETWORK_ALLOW_LOOPBACK: value \"\" is not a boolean");
    char *e4[] = {"CERTAUTOPILOT_CT_LOGS=https://ok/,gopher://x", NULL};
    load_fail(NULL, e4, &err);
    CHECK_MSG(err.msg, "environment CERTAUTOPILOT_CT_LOGS", "\"gopher://x\"");
    /* values are escaped and cut */
    char long_var[300];
    snprintf(long_var, sizeof long_var, "CERTAUTOPILOT_LOGGING_LEVEL=\x01\"%0200d", 7);
    char *e5[] = {long_var, NULL};
    load_fail(NULL, e5, &err);
    CHECK_MSG(err.msg, "value \"\\x01\\\"000", "...\" is not a log level");
    CHECK(strlen(err.msg) < 200);
    /* an explicit file that does not exist is an error */
    char missing[512];
    tmp_path("missing.yaml", missing, sizeof missing);
    struct cap_config c;
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_config_load(&c, missing, no_env, &err));
    CHECK_MSG(err.msg, "config file", "missing.yaml", "cannot open");
}

static void test_unknown_env_warns(void)
{
    char out[512];
    tmp_path("stdout.log", out, sizeof out);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(saved >= 0 && fd >= 0);
    CHECK(dup2(fd, STDOUT_FILENO) >= 0);
    close(fd);

    cap_log_init("test", CAP_LOG_INFO, CAP_LOG_JSON);
    char cfgvar[600];
    snprintf(cfgvar, sizeof cfgvar, "CERTAUTOPILOT_CONFIG=");
    char *env[] = {"CERTAUTOPILOT_SERVICE_PORT=tcp://10.0.0.1:443", cfgvar,
                   "CERTAUTOPILOT_WORKER_MAX_JOBS_FILE=/x", "CERTAUTOPILOT_WORKER_MAX_JOBS=4",
                   NULL};
    struct cap_config c;
    struct cap_err err;
    cap_err_clear(&err);
    int rc = cap_config_load(&c, NULL, env, &err);

    fflush(stdout);
    CHECK(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    CHECK_EQ(0, rc);
    CHECK_EQ(4, c.worker_max_jobs);
    cap_config_cleanup(&c);

    FILE *f = fopen(out, "rb");
    CHECK(f != NULL);
    char log[4096];
    size_t n = fread(log, 1, sizeof log - 1, f);
    fclose(f);
    log[n] = '\0';
    CHECK_MSG(log, "\"level\":\"warn\"", "\"event\":\"config_unknown_env\"",
              "\"name\":\"CERTAUTOPILOT_SERVICE_PORT\"",
              "\"name\":\"CERTAUTOPILOT_WORKER_MAX_JOBS_FILE\"");
    CHECK(strstr(log, "CERTAUTOPILOT_CONFIG") == NULL);
    CHECK(strstr(log, "10.0.0.1") == NULL); /* the value is not logged */
    /* exactly two warnings */
    int lines = 0;
    for (char *p = log; *p; p++)
        lines += *p == '\n';
    CHECK_EQ(2, lines);
}

/* A fresh P-256 key: base64 DER SPKI and base64 SHA-256 of it. */
static void make_key(char *key_b64, size_t kn, char *id_b64, size_t in)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    CHECK(pk != NULL);
    unsigned char *der = NULL;
    int dlen = i2d_PUBKEY(pk, &der);
    CHECK(dlen > 0);
    CHECK((size_t)(4 * ((dlen + 2) / 3) + 1) <= kn);
    EVP_EncodeBlock((unsigned char *)key_b64, der, dlen);
    unsigned char id[32];
    SHA256(der, (size_t)dlen, id);
    CHECK(in >= 45);
    EVP_EncodeBlock((unsigned char *)id_b64, id, 32);
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
}

static void test_log_list(void)
{
    char k1[256], id1[64], k2[256], id2[64], k3[256], id3[64];
    make_key(k1, sizeof k1, id1, sizeof id1);
    make_key(k2, sizeof k2, id2, sizeof id2);
    make_key(k3, sizeof k3, id3, sizeof id3);
    char json[4096];
    snprintf(json, sizeof json,
             "{\"version\": \"40.1\", \"log_list_timestamp\": \"2026-01-01T00:00:00Z\",\n"
             " \"operators\": [\n"
             "  {\"name\": \"Op A\", \"email\": [\"a@example.com\"], \"logs\": [\n"
             "    {\"description\": \"A 2026h1\", \"log_id\": \"%s\", \"key\": \"%s\",\n"
             "     \"url\": \"https://ct.a.example/2026h1/\", \"mmd\": 86400,\n"
             "     \"state\": {\"usable\": {\"timestamp\": \"2025-01-01T00:00:00Z\"}},\n"
             "     \"temporal_interval\": {\"start_inclusive\": \"2026-01-01T00:00:00Z\"}},\n"
             "    {\"description\": \"A old\", \"log_id\": \"%s\", \"key\": \"%s\",\n"
             "     \"url\": \"https://ct.a.example/2019/\", \"mmd\": 86400,\n"
             "     \"state\": {\"retired\": {\"timestamp\": \"2020-01-01T00:00:00Z\"}}}],\n"
             "   \"tiled_logs\": []},\n"
             "  {\"name\": \"Op B\", \"logs\": [], \"tiled_logs\": [\n"
             "    {\"description\": \"B tiles\", \"log_id\": \"%s\", \"key\": \"%s\",\n"
             "     \"submission_url\": \"https://b.example/submit/\",\n"
             "     \"monitoring_url\": \"https://b.example/tiles\", \"mmd\": 60,\n"
             "     \"state\": {\"readonly\": {}}}]}\n"
             " ]}\n",
             id1, k1, id2, k2, id3, k3);
    struct cap_ct_log *logs = NULL;
    size_t n = 0;
    struct cap_err err;
    cap_err_clear(&err);
    CHECK_EQ(0, cap_ct_loglist_parse(json, strlen(json), "list.json", &logs, &n, &err));
    /* Every log comes back, whatever its state; the choice is cap_ct_log_current's. */
    CHECK_EQ(3, n);
    CHECK_STR("https://ct.a.example/2026h1/", logs[0].url);
    CHECK_STR("rfc6962", logs[0].protocol);
    CHECK_STR(k1, logs[0].key_b64);
    CHECK_STR(id1, logs[0].log_id_b64);
    CHECK_STR("A 2026h1", logs[0].description);
    CHECK_STR("Op A", logs[0].operator_name);
    CHECK_EQ(CAP_CT_STATE_USABLE, logs[0].state);
    CHECK_EQ(1735689600, logs[0].state_at);
    CHECK_EQ(1767225600, logs[0].interval_start);
    CHECK_EQ(0, logs[0].interval_end);
    CHECK_EQ(86400, logs[0].mmd_s);
    CHECK(logs[0].refused == NULL);
    CHECK_STR("https://ct.a.example/2019/", logs[1].url);
    CHECK_EQ(CAP_CT_STATE_RETIRED, logs[1].state);
    CHECK_STR("https://b.example/tiles/", logs[2].url);
    CHECK_STR("static-ct", logs[2].protocol);
    CHECK_STR(id3, logs[2].log_id_b64);
    CHECK_STR("Op B", logs[2].operator_name);
    CHECK_EQ(CAP_CT_STATE_READONLY, logs[2].state);
    CHECK_EQ(-1, logs[2].final_tree_size);
    CHECK_EQ(60, logs[2].mmd_s);
    cap_ct_logs_free(logs, n);

    /* Through the config: the list is checked at load (read again by the worker, never merged
     * into ct.logs); log_id computed from key. */
    char lpath[512], yaml[2048];
    tmp_path("list.json", lpath, sizeof lpath);
    write_file(lpath, json);
    snprintf(yaml, sizeof yaml,
             "ct:\n  log_list_file: \"%s\"\n  logs:\n"
             "    - url: http://127.0.0.1:9999/log\n      protocol: static-ct\n"
             "      key: %s\n      description: private\n      mmd: 1h\n",
             lpath, k2);
    struct cap_config c;
    load_ok(&c, yaml, no_env);
    CHECK_EQ(1, c.ct_logs_n);
    CHECK_STR("http://127.0.0.1:9999/log/", c.ct_logs[0].url);
    CHECK_STR("static-ct", c.ct_logs[0].protocol);
    CHECK_STR(id2, c.ct_logs[0].log_id_b64);
    CHECK_STR("private", c.ct_logs[0].description);
    CHECK_EQ(3600, c.ct_logs[0].mmd_s);
    CHECK_STR(lpath, c.ct_log_list_file);
    CHECK(c.ct_log_list_url == NULL);
    CHECK_EQ(86400000, c.ct_log_list_refresh_ms);
    cap_config_cleanup(&c);

    /* A list whose log_id does not match its key. */
    snprintf(yaml, sizeof yaml, "ct:\n  logs:\n    - {url: \"https://x/\", key: %s, log_id: %s}\n",
             k1, id2);
    load_fail(yaml, no_env, &err);
    CHECK_MSG(err.msg, "\"ct.logs[0].log_id\"", "does not match the key");

    static const struct {
        const char *json;
        const char *want[3];
    } bad[] = {
        {"{\"operators\": [{\"logs\": [{\"key\": \"AAAA\"}]}]}",
         {"ct log list l.json: operators[0].logs[0].url: expected a string, got nothing"}},
        {"{\"operators\": [{\"logs\": [{\"url\": 5}]}]}",
         {"operators[0].logs[0].url: expected a string, got int"}},
        {"{\"operators\": [{}, {\"tiled_logs\": [{\"submission_url\": \"https://x/\"}]}]}",
         {"operators[1].tiled_logs[0].monitoring_url: expected a string"}},
        {"{\"operators\": [{\"logs\": [{\"url\": \"ftp://x/\", \"key\": \"AAAA\"}]}]}",
         {"operators[0].logs[0].url: value \"ftp://x/\""}},
        {"{\"operators\": {}}", {"operators: expected an array, got object"}},
        {"[]", {"(top level): expected an object, got array"}},
        {"{\"operators\": [", {"invalid JSON", "ends early"}},
        {"{\"operators\": []} x", {"invalid JSON at byte 18", "data after the end"}},
        {"{\"operators\": [1]}", {"operators[0]: expected an object, got int"}},
        {"{\"operators\": [{\"logs\": [{\"url\": \"https://x/\", \"key\": \"AAAA\", \"state\": "
         "1}]}]}",
         {"operators[0].logs[0].state: expected an object"}},
        {"{\"operators\": [{\"logs\": [{\"url\": \"https://x/\", \"key\": \"AAAA\", \"mmd\": "
         "-5}]}]}",
         {"operators[0].logs[0].mmd: value \"-5\" is out of range"}},
        {"{\"operators\": [{\"logs\": [{\"url\": \"https://x/\", \"key\": \"AAAA\", \"mmd\": "
         "\"1d\"}]}]}",
         {"operators[0].logs[0].mmd: expected an integer number of seconds, got string"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        logs = NULL;
        n = 99;
        cap_err_clear(&err);
        CHECK_EQ(-1,
                 cap_ct_loglist_parse(bad[i].json, strlen(bad[i].json), "l.json", &logs, &n, &err));
        CHECK(logs == NULL);
        CHECK_EQ(99, n);
        for (int k = 0; k < 3 && bad[i].want[k]; k++) {
            if (!strstr(err.msg, bad[i].want[k]))
                fprintf(stderr, "case %zu\n", i);
            CHECK_MSG(err.msg, bad[i].want[k]);
        }
    }

    /* A list file error through the config names the file; a missing one too. */
    write_file(lpath, "{\"operators\": [{\"logs\": [{\"url\": 5}]}]}");
    snprintf(yaml, sizeof yaml, "ct:\n  log_list_file: \"%s\"\n", lpath);
    load_fail(yaml, no_env, &err);
    CHECK_MSG(err.msg, "list.json: operators[0].logs[0].url");
    snprintf(yaml, sizeof yaml, "ct:\n  log_list_file: \"%s/none.json\"\n", tmpdir);
    load_fail(yaml, no_env, &err);
    CHECK_MSG(err.msg, "ct.log_list_file", "none.json", "cannot open");
}

static void test_redact(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"postgresql://cap:s3cret@db:5432/cap", "postgresql://cap:****@db:5432/cap"},
        {"postgres://cap:p@ss@db/cap", "postgres://cap:****@db/cap"},
        {"postgresql://cap@db/cap", "postgresql://cap@db/cap"},
        {"postgresql://db/cap", "postgresql://db/cap"},
        {"redis://:s3cret@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"},
        {"redis://user:s3cret@h", "redis://user:****@h"},
        {"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
        {"rediss://tok3nS3cret@cache.example:6380", "rediss://****@cache.example:6380"},
        {"redis://s3cret@h/0", "redis://****@h/0"},
        {"postgresql://db/cap?sslmode=require&password=s3cret&x=1",
         "postgresql://db/cap?sslmode=require&password=****&x=1"},
        {"host=db user=cap password=s3cret dbname=cap",
         "host=db user=cap password=**** dbname=cap"},
        {"host=db password = 's3 cr\\'et' dbname=cap", "host=db password = **** dbname=cap"},
        {"password=s3cret", "password=****"},
        {"host=db passwordx=1", "host=db passwordx=1"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        CHECK(cap_config_redact_url(cases[i].in, out, sizeof out) == out);
        CHECK_STR(cases[i].want, out);
    }
    /* a short buffer cuts, never overflows, never reveals */
    char small[16];
    cap_config_redact_url("postgresql://u:secretsecret@h/db", small, sizeof small);
    CHECK_STR("postgresql://u:", small);
    char tiny[20];
    cap_config_redact_url("redis://:abcdefghijklmnop@h", tiny, sizeof tiny);
    CHECK_STR("redis://:****@h", tiny);
}

static void test_example_file(void)
{
    const char *data = getenv("CAP_TEST_DATA");
    CHECK(data != NULL);
    /* CAP_TEST_DATA is <source>/tests/data, which need not exist: strip two components by
     * text rather than let the kernel resolve "..". */
    char src[1024];
    snprintf(src, sizeof src, "%s", data);
    for (int up = 0; up < 2; up++) {
        size_t l = strlen(src);
        while (l > 1 && src[l - 1] == '/')
            src[--l] = '\0';
        char *slash = strrchr(src, '/');
        CHECK(slash != NULL);
        *slash = '\0';
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/deploy/config.example.yaml", src);
    struct cap_config ex, def;
    struct cap_err err;
    cap_err_clear(&err);
    int rc = cap_config_load(&ex, path, no_env, &err);
    if (rc != 0)
        fprintf(stderr, "example: %s\n", err.msg);
    CHECK_EQ(0, rc);
    load_ok(&def, NULL, no_env);
    /* The example documents the defaults: loading it gives the built-in values. */
    CHECK_STR(def.database_url, ex.database_url);
    CHECK_STR(def.redis_url, ex.redis_url);
    CHECK_STR(def.redis_stream, ex.redis_stream);
    CHECK_STR(def.redis_group, ex.redis_group);
    CHECK_STR(def.redis_dead_letter_stream, ex.redis_dead_letter_stream);
    CHECK_EQ(def.logging_level, ex.logging_level);
    CHECK_EQ(def.logging_format, ex.logging_format);
    CHECK_STR(def.telemetry_metrics_listen, ex.telemetry_metrics_listen);
    CHECK_EQ(def.scheduler_tick_ms, ex.scheduler_tick_ms);
    CHECK_EQ(def.scheduler_requeue_after_ms, ex.scheduler_requeue_after_ms);
    CHECK_EQ(def.scheduler_batch, ex.scheduler_batch);
    CHECK_EQ(def.retention_observations_ms, ex.retention_observations_ms);
    CHECK_EQ(def.retention_runs_ms, ex.retention_runs_ms);
    CHECK_EQ(def.worker_max_concurrent_discovery, ex.worker_max_concurrent_discovery);
    CHECK_EQ(def.worker_max_jobs, ex.worker_max_jobs);
    CHECK_EQ(def.worker_reclaim_idle_ms, ex.worker_reclaim_idle_ms);
    CHECK_EQ(def.worker_max_attempts, ex.worker_max_attempts);
    CHECK_EQ(def.worker_drain_grace_ms, ex.worker_drain_grace_ms);
    CHECK_EQ(def.worker_heartbeat_ms, ex.worker_heartbeat_ms);
    CHECK_EQ(def.worker_noop_executor, ex.worker_noop_executor);
    CHECK_EQ(def.database_prepared_statements, ex.database_prepared_statements);
    CHECK_EQ(def.worker_noop_sleep_ms, ex.worker_noop_sleep_ms);
    CHECK_EQ(def.network_deny_n, ex.network_deny_n);
    CHECK_EQ(def.network_allow_loopback, ex.network_allow_loopback);
    CHECK_EQ(def.network_dns_servers_n, ex.network_dns_servers_n);
    CHECK_EQ(def.scan_max_targets, ex.scan_max_targets);
    CHECK_EQ(def.scan_expiring_days, ex.scan_expiring_days);
    CHECK_EQ(def.scan_max_pending_connects, ex.scan_max_pending_connects);
    CHECK_EQ(def.scan_connect_rate, ex.scan_connect_rate);
    CHECK_EQ(def.scan_shard_targets, ex.scan_shard_targets);
    CHECK_EQ(def.scan_shard_size, ex.scan_shard_size);
    CHECK_EQ(def.ct_logs_n, ex.ct_logs_n);
    CHECK(ex.ct_log_list_file == NULL);
    CHECK(ex.ct_log_list_url == NULL);
    CHECK_EQ(def.ct_log_list_refresh_ms, ex.ct_log_list_refresh_ms);
    CHECK_EQ(def.ct_run_budget, ex.ct_run_budget);
    CHECK_EQ(def.retention_notifications_ms, ex.retention_notifications_ms);
    CHECK_EQ(0, ex.notify_webhooks_n);
    CHECK_EQ(def.ct_max_requests_per_second, ex.ct_max_requests_per_second);
    cap_config_cleanup(&ex);
    cap_config_cleanup(&def);

    /* Every key of the loader appears in the example with its environment variable. */
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    static const char *const env_names[] = {"CERTAUTOPILOT_DATABASE_URL",
                                            "CERTAUTOPILOT_DATABASE_URL_FILE",
                                            "CERTAUTOPILOT_REDIS_URL",
                                            "CERTAUTOPILOT_REDIS_URL_FILE",
                                            "CERTAUTOPILOT_REDIS_STREAM",
                                            "CERTAUTOPILOT_REDIS_GROUP",
                                            "CERTAUTOPILOT_REDIS_DEAD_LETTER_STREAM",
                                            "CERTAUTOPILOT_LOGGING_LEVEL",
                                            "CERTAUTOPILOT_LOGGING_FORMAT",
                                            "CERTAUTOPILOT_TELEMETRY_METRICS_LISTEN",
                                            "CERTAUTOPILOT_SCHEDULER_TICK",
                                            "CERTAUTOPILOT_SCHEDULER_REQUEUE_AFTER",
                                            "CERTAUTOPILOT_SCHEDULER_BATCH",
                                            "CERTAUTOPILOT_RETENTION_OBSERVATIONS",
                                            "CERTAUTOPILOT_RETENTION_RUNS",
                                            "CERTAUTOPILOT_RETENTION_NOTIFICATIONS",
                                            "CERTAUTOPILOT_NOTIFY_WEBHOOKS",
                                            "CERTAUTOPILOT_NOTIFY_WEBHOOKS_FILE",
                                            "CERTAUTOPILOT_WORKER_MAX_CONCURRENT_DISCOVERY",
                                            "CERTAUTOPILOT_WORKER_MAX_JOBS",
                                            "CERTAUTOPILOT_WORKER_RECLAIM_IDLE",
                                            "CERTAUTOPILOT_WORKER_MAX_ATTEMPTS",
                                            "CERTAUTOPILOT_WORKER_DRAIN_GRACE",
                                            "CERTAUTOPILOT_WORKER_HEARTBEAT",
                                            "CERTAUTOPILOT_WORKER_NOOP_EXECUTOR",
                                            "CERTAUTOPILOT_WORKER_NOOP_SLEEP",
                                            "CERTAUTOPILOT_NETWORK_DENY",
                                            "CERTAUTOPILOT_NETWORK_ALLOW_LOOPBACK",
                                            "CERTAUTOPILOT_NETWORK_DNS_SERVERS",
                                            "CERTAUTOPILOT_SCAN_MAX_TARGETS",
                                            "CERTAUTOPILOT_SCAN_EXPIRING_DAYS",
                                            "CERTAUTOPILOT_SCAN_MAX_PENDING_CONNECTS",
                                            "CERTAUTOPILOT_SCAN_CONNECT_RATE",
                                            "CERTAUTOPILOT_CT_LOGS",
                                            "CERTAUTOPILOT_CT_LOG_LIST_URL",
                                            "CERTAUTOPILOT_CT_LOG_LIST_FILE",
                                            "CERTAUTOPILOT_CT_LOG_LIST_REFRESH",
                                            "CERTAUTOPILOT_CT_RUN_BUDGET",
                                            "CERTAUTOPILOT_CONFIG"};
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++) {
        /* the whole name: not followed by more of a longer name */
        bool found = false;
        size_t nl = strlen(env_names[i]);
        for (const char *p = strstr(text, env_names[i]); p && !found;
             p = strstr(p + 1, env_names[i])) {
            char next = p[nl];
            found = !(next == '_' || (next >= 'A' && next <= 'Z'));
        }
        if (!found)
            fprintf(stderr, "example lacks %s\n", env_names[i]);
        CHECK(found);
    }
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/cap_config_XXXXXX", base && *base ? base : "/tmp");
    CHECK(mkdtemp(tmpdir) != NULL);

    test_durations();
    test_defaults();
    test_file_values();
    test_env_overrides();
    test_secret_files();
    test_unknown_keys();
    test_bad_values();
    test_unknown_env_warns();
    test_log_list();
    test_redact();
    test_example_file();

    static const char *const names[] = {"ok.yaml",   "bad.yaml",  "viaenv.yaml", "db_url",
                                        "redis_url", "list.json", "stdout.log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[512];
        unlink(tmp_path(names[i], p, sizeof p));
    }
    rmdir(tmpdir);
    printf("%d checks passed\n", cap_test_checks);
    return 0;
}
