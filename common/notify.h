/* Webhook notifications: the endpoints of notify.webhooks (checked when the configuration
 * loads), which events each one wants, and the messages (json or slack) with their
 * idempotency keys. Shared by the scheduler (builds messages), the worker (posts them) and
 * capctl (notify test). */
#ifndef CAP_NOTIFY_H
#define CAP_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct cap_config;

/* Events one message lists; the rest of a digest is counted, not listed. */
#define CAP_NOTIFY_LIST_MAX 50
/* Webhooks one configuration may hold. */
#define CAP_NOTIFY_WEBHOOKS_MAX 64
/* Longest webhook name. */
#define CAP_NOTIFY_NAME_MAX 64
/* Longest subject, reason or source name copied into a message (longer ones are cut). */
#define CAP_NOTIFY_TEXT_MAX 256
/* Longest idempotency key. */
#define CAP_NOTIFY_KEY_MAX 160

enum cap_notify_format { CAP_NOTIFY_JSON = 0, CAP_NOTIFY_SLACK };

struct cap_webhook {
    char *name;
    char *url;    /* a secret (a Slack URL is one): logged only as cap_notify_url_redacted */
    char *token;  /* sent as "Authorization: Bearer TOKEN"; NULL: no header */
    int min_rank; /* least severe severity sent: 1 critical .. 5 info */
    char **kinds; /* finding kinds, run_failed, run_dead; none: every kind */
    size_t kinds_n;
    char **sources; /* source names; none: every source */
    size_t sources_n;
    enum cap_notify_format format;
    int64_t timeout_ms; /* one attempt, connect to last byte */
};

/* Sets one field of w from text (YAML scalar or list item, or the environment): name, url,
 * url_file, token, token_file, min_severity, kinds (one kind or a comma-separated list; each
 * call adds), sources (likewise), format, timeout. where prefixes messages ("config file
 * x.yaml:3:7: key \"notify.webhooks[0].url\""). A bad value fails with one line naming it
 * (URLs redacted to scheme, host and port). Reads files for *_file; blocks only there. */
int cap_webhook_set(struct cap_webhook *w, const char *field, const char *v, size_t vlen,
                    const char *where, struct cap_err *err);

/* Fills defaults and checks what the fields only mean together (a url is required). */
int cap_webhook_finish(struct cap_webhook *w, const char *where, struct cap_err *err);

/* Checks a whole list: names unique. */
int cap_webhooks_check(const struct cap_webhook *v, size_t n, const char *where,
                       struct cap_err *err);

/* Frees what w owns and zeroes it. */
void cap_webhook_cleanup(struct cap_webhook *w);

/* Frees n webhooks and the array. NULL is fine. */
void cap_webhooks_free(struct cap_webhook *v, size_t n);

/* The webhook named name in cfg, or NULL. */
const struct cap_webhook *cap_notify_find(const struct cap_config *cfg, const char *name);

/* Writes url as scheme://host[:port]/... (path and credentials left out: a Slack webhook's
 * secret is its path). Returns out. */
const char *cap_notify_url_redacted(const char *url, char *out, size_t n);

/* 1 critical, 2 high, 3 medium, 4 low, 5 info; 0 for anything else. */
int cap_notify_severity_rank(const char *severity);

/* True for a finding kind of the catalogue, run_failed or run_dead. */
bool cap_notify_kind_known(const char *kind);

/* The names cap_notify_kind_known accepts, NULL-terminated (for tests and messages). */
const char *const *cap_notify_kinds(void);

/* True when w wants an event of this kind and severity from this source (NULL: none). */
bool cap_notify_wants(const struct cap_webhook *w, const char *kind, const char *severity,
                      const char *source_name);

/* One event, as the scheduler reads it from notify_events (strings borrowed). */
struct cap_notify_event {
    int64_t id;
    const char *event;    /* opened, escalated, reopened, resolved, failed, dead, test */
    const char *kind;     /* finding kind, run_failed, run_dead */
    const char *severity; /* critical .. info */
    int64_t finding_id;   /* 0 for run events */
    int64_t run_id;       /* 0: none */
    const char *subject;  /* what it is about, for people: host:port, a DNS name, ... */
    const char *subject_key;
    const char *reason; /* NULL: none */
    const char *at;     /* when, as PostgreSQL prints a timestamptz */
};

/* One message: the events of one webhook, source and run. */
struct cap_notify_msg {
    int64_t source_id; /* 0: none */
    const char *source_name;
    int64_t run_id; /* 0: none */
    const struct cap_notify_event *ev;
    size_t n;
    bool test; /* capctl notify test */
};

/* Writes the idempotency key of a message into out (CAP_NOTIFY_KEY_MAX bytes): for one
 * finding event cap:f<finding>:<event>:e<event id>, for one run event cap:r<run>:<event>:e<id>,
 * for several cap:digest:s<source>:r<run>:e<lowest id>-<highest id>:n<count> (the events of a
 * message are never in another message, so the key names them). 0, or -1 when n is 0. */
int cap_notify_key(const struct cap_notify_msg *m, char *out, size_t n);

/* Formats the message for w's format, with key in it. Lists at most CAP_NOTIFY_LIST_MAX events
 * (most severe first; slack: as many as fit its 3000-character section) and counts the rest.
 * Returns a malloc'd NUL-terminated body the caller frees, or NULL with err. Does not block. */
char *cap_notify_format(enum cap_notify_format format, const char *webhook,
                        const struct cap_notify_msg *m, const char *key, struct cap_err *err);

#endif
