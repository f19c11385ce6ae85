/* capctl notify: `notify list` (the webhooks of notify.webhooks with their delivery counts)
 * and `notify test NAME` (a test message through the same formatting, HTTP client and
 * network policy as the workers, sent at once and reported). */
#include "ctl/ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/notify.h"
#include "common/pg.h"
#include "common/policy.h"
#include "ctl/out.h"
#include "worker/deliver.h"
#include "worker/http.h"

static const char SYN_NOTIFY[] = "capctl notify list | notify test NAME";

/* $1..$6: the webhooks' names, URLs (redacted), formats, least severities, kinds, sources. */
static const char SQL_LIST[] =
    "SELECT w.name, w.url, w.format, w.min_severity, w.kinds, w.sources, "
    " count(d.id) FILTER (WHERE d.status = 'queued') AS queued, "
    " count(d.id) FILTER (WHERE d.status = 'sending') AS sending, "
    " count(d.id) FILTER (WHERE d.status = 'delivered') AS delivered, "
    " count(d.id) FILTER (WHERE d.status = 'dead') AS dead, "
    " date_trunc('second', max(d.finished_at) FILTER (WHERE d.status = 'delivered')) "
    "  AS last_delivered_at "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) "
    " WITH ORDINALITY AS w(name, url, format, min_severity, kinds, sources, n) "
    "LEFT JOIN notify_deliveries d ON d.webhook = w.name "
    "GROUP BY w.name, w.url, w.format, w.min_severity, w.kinds, w.sources, w.n ORDER BY w.n";

static const char *const severities[] = {"", "critical", "high", "medium", "low", "info"};

static char *join(char **v, size_t n, const char *none)
{
    size_t len = strlen(none) + 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    if (n == 0) {
        snprintf(s, len, "%s", none);
        return s;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(v[i]);
        if (i)
            s[o++] = ',';
        memcpy(s + o, v[i], l);
        o += l;
    }
    s[o] = '\0';
    return s;
}

static int notify_list(struct cap_ctl *ctl)
{
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c)
        return cap_ctl_fail(&err);
    size_t n = ctl->cfg.notify_webhooks_n;
    const char **cols[6];
    char **owned = calloc(3 * n + 1, sizeof *owned);
    int rc = CAP_CTL_FAIL;
    char *arr[6] = {NULL};
    for (int k = 0; k < 6; k++)
        cols[k] = calloc(n + 1, sizeof *cols[k]);
    for (int k = 0; k < 6; k++)
        if (!cols[k] || !owned)
            goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct cap_webhook *w = &ctl->cfg.notify_webhooks[i];
        if (!(owned[3 * i] = malloc(200)))
            goto oom;
        cap_notify_url_redacted(w->url, owned[3 * i], 200);
        if (!(owned[3 * i + 1] = join(w->kinds, w->kinds_n, "(all)")) ||
            !(owned[3 * i + 2] = join(w->sources, w->sources_n, "(all)")))
            goto oom;
        cols[0][i] = w->name;
        cols[1][i] = owned[3 * i];
        cols[2][i] = w->format == CAP_NOTIFY_SLACK ? "slack" : "json";
        cols[3][i] = severities[w->min_rank];
        cols[4][i] = owned[3 * i + 1];
        cols[5][i] = owned[3 * i + 2];
    }
    for (int k = 0; k < 6; k++)
        if (!(arr[k] = cap_pg_text_array(cols[k], n)))
            goto oom;
    const char *p[] = {arr[0], arr[1], arr[2], arr[3], arr[4], arr[5]};
    if (cap_ctl_out_query(c, ctl->json, false, "list webhooks", SQL_LIST, 6, p,
                          "no webhooks (notify.webhooks is empty)", &err) < 0)
        rc = cap_ctl_fail(&err);
    else
        rc = CAP_CTL_OK;
    goto out;
oom:
    cap_err_set(&err, CAP_E_NOMEM, "out of memory");
    rc = cap_ctl_fail(&err);
out:
    for (int k = 0; k < 6; k++) {
        free(cols[k]);
        free(arr[k]);
    }
    for (size_t i = 0; owned && i < 3 * n; i++)
        free(owned[i]);
    free(owned);
    return rc;
}

static int notify_test(struct cap_ctl *ctl, const char *name)
{
    struct cap_err err = {0};
    if (cap_ctl_config(ctl, &err) < 0)
        return cap_ctl_fail(&err);
    const struct cap_webhook *w = cap_notify_find(&ctl->cfg, name);
    if (!w) {
        char q[96];
        cap_err_set(&err, CAP_E_INVALID,
                    "webhook \"%s\" is not in notify.webhooks (%zu configured; capctl notify list)",
                    cap_err_quote(q, sizeof q, name, strlen(name)), ctl->cfg.notify_webhooks_n);
        return cap_ctl_fail(&err);
    }
    char at[40];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(at, sizeof at, "%Y-%m-%d %H:%M:%S+00", &tmv);
    struct cap_notify_event ev = {.id = (int64_t)now,
                                  .event = "test",
                                  .kind = "test",
                                  .severity = "info",
                                  .subject = "capctl notify test",
                                  .subject_key = "test",
                                  .at = at};
    struct cap_notify_msg m = {.ev = &ev, .n = 1, .test = true};
    char key[CAP_NOTIFY_KEY_MAX];
    cap_notify_key(&m, key, sizeof key);
    char *body = cap_notify_format(w->format, w->name, &m, key, &err);
    if (!body)
        return cap_ctl_fail(&err);
    struct cap_policy pol;
    struct cap_deliver_result res;
    int rc = CAP_CTL_FAIL;
    if (cap_http_global_init(&err) < 0) {
        free(body);
        return cap_ctl_fail(&err);
    }
    if (cap_policy_init(&pol, &ctl->cfg, &err) < 0) {
        rc = cap_ctl_fail(&err);
    } else {
        if (cap_deliver_post(w, &pol, body, "application/json", key, &res, &err) < 0) {
            rc = cap_ctl_fail(&err);
        } else if (res.outcome == CAP_DELIVER_DELIVERED) {
            if (ctl->json)
                printf("{\"webhook\":\"%s\",\"delivered\":true,\"http_status\":%ld,"
                       "\"idempotency_key\":\"%s\"}\n",
                       w->name, res.http_status, key);
            else
                printf("webhook %s: test message delivered (HTTP %ld, idempotency key %s)\n",
                       w->name, res.http_status, key);
            rc = CAP_CTL_OK;
        } else {
            cap_err_set(&err, CAP_E_IO, "webhook %s: test message not delivered: %s", w->name,
                        res.error);
            rc = cap_ctl_fail(&err);
        }
        cap_policy_cleanup(&pol);
    }
    cap_http_global_cleanup();
    free(body);
    return rc;
}

int cap_ctl_cmd_notify(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 2, SYN_NOTIFY, &a);
    if (rc)
        return rc;
    if (a.npos == 0)
        return cap_ctl_usage(SYN_NOTIFY, "notify: missing subcommand (list or test)");
    if (strcmp(a.pos[0], "list") == 0) {
        if (a.npos != 1)
            return cap_ctl_usage(SYN_NOTIFY, "notify list takes no arguments");
        return notify_list(ctl);
    }
    if (strcmp(a.pos[0], "test") == 0) {
        if (a.npos != 2)
            return cap_ctl_usage(SYN_NOTIFY, "notify test: give one webhook NAME");
        return notify_test(ctl, a.pos[1]);
    }
    char q[96];
    return cap_ctl_usage(SYN_NOTIFY, "notify: unknown subcommand \"%s\"",
                         cap_err_quote(q, sizeof q, a.pos[0], strlen(a.pos[0])));
}
