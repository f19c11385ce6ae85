/* Registry of executors by source type. The network_scan and ct_log executors live in
 * worker/scan and worker/ct; a type whose executor is not linked in fails its runs with a
 * message saying so, never with made-up results. */
#include "worker/executor.h"

#include <stddef.h>
#include <string.h>

/* Strong references: a weak undefined symbol does not pull an object out of the static
 * cap_worker library, so weak ones left both executors out of cap-worker. */
extern const struct cap_executor cap_scan_executor;
extern const struct cap_executor cap_ct_executor;
extern const struct cap_executor cap_noop_executor;

static const struct cap_executor *registered(int i)
{
    switch (i) {
    case 0:
        return &cap_scan_executor;
    case 1:
        return &cap_ct_executor;
    default:
        return NULL;
    }
}

const struct cap_executor *cap_executor_find(const struct cap_config *cfg, const char *type)
{
    /* The benchmark switch replaces every type by the no-op executor. */
    if (cfg && cfg->worker_noop_executor)
        return &cap_noop_executor;
    for (int i = 0; i < 2; i++) {
        const struct cap_executor *e = registered(i);
        if (e && e->type && strcmp(e->type, type) == 0)
            return e;
    }
    return NULL;
}

int cap_executors_init(const struct cap_config *cfg, struct cap_err *err)
{
    if (cfg->worker_noop_executor)
        return 0;
    for (int i = 0; i < 2; i++) {
        const struct cap_executor *e = registered(i);
        if (e && e->init && e->init(cfg, err) < 0) {
            cap_err_prefix(err, "starting the %s executor: ", e->type);
            return -1;
        }
    }
    return 0;
}

void cap_executors_shutdown(void)
{
    for (int i = 0; i < 2; i++) {
        const struct cap_executor *e = registered(i);
        if (e && e->shutdown)
            e->shutdown();
    }
}
