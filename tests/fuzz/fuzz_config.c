/* Fuzz target for the configuration loader: input is a YAML config file, or, after a first line
 * "#json", a CT log list in the v3 JSON schema. Either it loads and the result keeps the loader's
 * invariants, or it fails with a message and leaves the output untouched. */
#include "common/config.h"
#include "common/ct_loglist.h"
#include "common/notify.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char json_marker[] = "#json\n";

static void check_logs(const struct cap_ct_log *logs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct cap_ct_log *l = &logs[i];
        if (!l->url || !l->protocol || l->mmd_s < 1)
            abort();
        if (strncasecmp(l->url, "http://", 7) != 0 && strncasecmp(l->url, "https://", 8) != 0)
            abort();
        if (l->url[strlen(l->url) - 1] != '/')
            abort();
        if (strcmp(l->protocol, "rfc6962") != 0 && strcmp(l->protocol, "static-ct") != 0 &&
            strcmp(l->protocol, "auto") != 0)
            abort();
        /* A refused log (bad key or log_id) is kept, marked, and never chosen. */
        if (!l->refused && l->key_b64 && (!l->log_id_b64 || strlen(l->log_id_b64) != 44))
            abort();
        if (l->refused && (!l->refused[0] || cap_ct_log_current(l, 1800000000)))
            abort();
        if ((unsigned)l->state > CAP_CT_STATE_REJECTED || l->final_tree_size < -1)
            abort();
    }
}

static void check_config(const struct cap_config *c)
{
    if (!c->database_url || !c->redis_url || !c->redis_stream || !c->redis_group ||
        !c->redis_dead_letter_stream || !c->telemetry_metrics_listen || !c->network_deny)
        abort();
    for (size_t i = 0; i < c->network_deny_n; i++)
        if (!c->network_deny[i] || !strchr(c->network_deny[i], '/'))
            abort();
    if (c->network_deny[c->network_deny_n] != NULL)
        abort();
    if (c->worker_max_concurrent_discovery < 1 || c->worker_max_concurrent_discovery > 100000 ||
        c->worker_max_attempts < 1 || c->worker_max_attempts > 100 || c->scan_expiring_days < 0 ||
        c->scan_expiring_days > 3650 || c->scan_max_targets < 1 ||
        c->scan_max_targets > (1LL << 32) || c->scheduler_tick_ms < 1 ||
        c->worker_heartbeat_ms < 1 || c->worker_heartbeat_ms >= c->worker_reclaim_idle_ms)
        abort();
    if (strcmp(c->redis_stream, c->redis_dead_letter_stream) == 0)
        abort();
    check_logs(c->ct_logs, c->ct_logs_n);
    /* Every webhook that loads is complete and valid. */
    for (size_t i = 0; i < c->notify_webhooks_n; i++) {
        const struct cap_webhook *w = &c->notify_webhooks[i];
        if (!w->name || !w->url || w->min_rank < 1 || w->min_rank > 5 || w->timeout_ms < 100 ||
            (strncmp(w->url, "http://", 7) != 0 && strncmp(w->url, "https://", 8) != 0))
            abort();
        for (size_t k = 0; k < w->kinds_n; k++)
            if (!cap_notify_kind_known(w->kinds[k]))
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cap_err err;
    cap_err_clear(&err);
    size_t ml = sizeof json_marker - 1;
    if (size >= ml && memcmp(data, json_marker, ml) == 0) {
        struct cap_ct_log *logs = (struct cap_ct_log *)&err; /* sentinel: must stay as it is */
        size_t n = 12345;
        int rc =
            cap_ct_loglist_parse((const char *)data + ml, size - ml, "fuzz.json", &logs, &n, &err);
        if (rc == 0) {
            check_logs(logs, n);
            cap_ct_logs_free(logs, n);
        } else if (rc != -1 || !err.code || !err.msg[0] || n != 12345 ||
                   logs != (struct cap_ct_log *)&err) {
            abort();
        }
        return 0;
    }

    static char *const no_env[] = {NULL};
    struct cap_config cfg;
    memset(&cfg, 0x5a, sizeof cfg);
    int rc = cap_config_load_buffer(&cfg, (const char *)data, size, "fuzz.yaml", no_env, &err);
    if (rc == 0) {
        check_config(&cfg);
        cap_config_cleanup(&cfg);
    } else {
        const unsigned char *b = (const unsigned char *)&cfg;
        for (size_t i = 0; i < sizeof cfg; i++)
            if (b[i] != 0x5a)
                abort();
        if (rc != -1 || !err.code || !err.msg[0])
            abort();
    }

    /* The same bytes as a connection string to redact and as a duration. */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char out[64];
    cap_config_redact_url(s, out, sizeof out);
    if (strlen(out) >= sizeof out)
        abort();
    int64_t ms = -1;
    if (cap_config_parse_duration_ms(s, &ms) == 0 && ms < 0)
        abort();
    free(s);
    return 0;
}
