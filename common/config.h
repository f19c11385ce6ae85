/* Configuration shared by cap-scheduler, cap-worker and capctl: one YAML file, every key also
 * as a CERTAUTOPILOT_* environment variable (the environment wins), then defaults. */
#ifndef CAP_CONFIG_H
#define CAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ct_loglist.h"
#include "common/err.h"
#include "common/log.h"

struct cap_config {
    /* database */
    char *database_url;
    bool database_prepared_statements; /* default true: see cap_pg_keep_prepared */
    /* redis */
    char *redis_url;
    char *redis_stream;             /* default "cap:discovery" */
    char *redis_group;              /* default "cap-workers" */
    char *redis_dead_letter_stream; /* default "cap:discovery:dead" */
    /* logging */
    enum cap_log_level logging_level;   /* default info */
    enum cap_log_format logging_format; /* default auto */
    /* telemetry */
    char *telemetry_metrics_listen; /* default "" -> per-program default; "off" disables */
    /* scheduler */
    int64_t scheduler_tick_ms;          /* default 5 s */
    int64_t scheduler_requeue_after_ms; /* default 5 min */
    int scheduler_batch;                /* runs enqueued per sweep transaction, default 500 */
    /* retention: the scheduler prunes rows older than these (0: keeps them for ever) */
    int64_t retention_observations_ms;  /* endpoint_observations, default 90 d */
    int64_t retention_runs_ms;          /* finished discovery_runs, default 90 d */
    int64_t retention_notifications_ms; /* dispatched notify_events, finished deliveries, 7 d */
    /* worker */
    int worker_max_concurrent_discovery; /* default 256, 1..100000 */
    int worker_max_jobs;                 /* jobs one worker runs at once, default 16 */
    int64_t worker_reclaim_idle_ms;      /* default 60 s */
    int worker_max_attempts;             /* default 5 */
    int64_t worker_drain_grace_ms;       /* default 25 s */
    int64_t worker_heartbeat_ms;         /* default reclaim_idle / 4 */
    bool worker_noop_executor;           /* benchmark switch, default false */
    int64_t worker_noop_sleep_ms;        /* worker.noop_sleep: no-op job duration, default 0 */
    /* network */
    char **network_deny; /* CIDRs, NULL-terminated; never NULL after load */
    size_t network_deny_n;
    bool network_allow_loopback; /* default false */
    /* Resolvers for host-name targets (split-horizon networks), NULL-terminated; never NULL
     * after load; empty: the system's resolv.conf. Each entry is "IP", "IP:PORT" or
     * "[IPv6]:PORT", the address as inet_ntop writes it, the port 1-65535 without zeros. */
    char **network_dns_servers;
    size_t network_dns_servers_n;
    /* scan */
    int64_t scan_max_targets;      /* default 1,048,576 */
    int scan_expiring_days;        /* default 14 */
    int scan_max_pending_connects; /* TCP connects pending at once per worker, default 8192 */
    int scan_connect_rate;         /* connects started per second per worker, default 2000 */
    int64_t scan_shard_targets;    /* a run with more targets is split into shards, 65536 */
    int64_t scan_shard_size;       /* targets per shard of a split run, default 16384 */
    /* ct */
    struct cap_ct_log *ct_logs; /* curated list (common/ct_loglist.h); ct_logs_n entries */
    size_t ct_logs_n;
    char *ct_log_list_url;  /* v3 log list JSON fetched over HTTP(S); NULL when unset */
    char *ct_log_list_file; /* v3 log list JSON; NULL when unset */
    int64_t ct_run_budget;  /* entries one run reads per log before it yields, default 1e6 */
    int64_t ct_log_list_refresh_ms; /* how often the worker reads the list again, default 24h */
    /* notify: webhooks (common/notify.h), notify_webhooks_n entries; NULL when none */
    struct cap_webhook *notify_webhooks;
    size_t notify_webhooks_n;
    int ct_max_requests_per_second; /* per log, across the fleet, default 10 */
};

/* Fills cfg with defaults, then the YAML file (path, or $CERTAUTOPILOT_CONFIG when path is NULL;
 * no file at all is fine), then CERTAUTOPILOT_* variables from envp (NULL: environ), including
 * KEY_FILE variants for secrets (database.url, redis.url). An unknown key in the file or a bad
 * value fails with one message naming key, value and what is allowed. Unknown CERTAUTOPILOT_*
 * variables are logged as warnings. On failure cfg holds nothing to free. Caller frees with
 * cap_config_cleanup. Blocks on file reads only. */
int cap_config_load(struct cap_config *cfg, const char *path, char *const *envp,
                    struct cap_err *err);

/* Like cap_config_load, but the YAML file is the len bytes at buf (need not be NUL-terminated);
 * name labels it in messages. $CERTAUTOPILOT_CONFIG is not read. Does not block. */
int cap_config_load_buffer(struct cap_config *cfg, const char *buf, size_t len, const char *name,
                           char *const *envp, struct cap_err *err);

/* Frees everything cfg owns. Safe on a zeroed struct. */
void cap_config_cleanup(struct cap_config *cfg);

/* Parses "500ms", "5s", "1m", "2h", "1d" or a bare number of seconds. 0 or -1. */
int cap_config_parse_duration_ms(const char *s, int64_t *out_ms);

/* Writes url with any password replaced by "****" (for logs). Returns out. */
const char *cap_config_redact_url(const char *url, char *out, size_t n);

#endif
