/* Registry of executors by source type: the built-in ones (network_scan in worker/scan, ct_log
 * in worker/ct) and any a program registers at start-up (the tests' test_echo). A type whose
 * executor is not linked in fails its runs with a message saying so, never with made-up
 * results. */
#include "worker/executor.h"

#include <stddef.h>
#include <string.h>

/* Most executors one worker knows (built in and registered). */
#define EXECUTORS_MAX 16

/* Strong references: a weak undefined symbol does not pull an object out of the static
 * cap_worker library, so weak ones left both executors out of cap-worker. */
extern const struct cap_executor cap_scan_executor;
extern const struct cap_executor cap_ct_executor;
extern const struct cap_executor cap_noop_executor;

/* The table: built-in executors first; registered ones are appended before threads start. */
static const struct cap_executor *executors[EXECUTORS_MAX] = {&cap_scan_executor,
                                                              &cap_ct_executor};
static size_t executors_n = 2;

int cap_executor_register(const struct cap_executor *e, struct cap_err *err)
{
    for (size_t i = 0; i < executors_n; i++) {
        if (strcmp(executors[i]->type, e->type) == 0) {
            cap_err_set(err, CAP_E_INVALID, "source type \"%s\" has an executor already",
                        e->type);
            return -1;
        }
    }
    if (executors_n == EXECUTORS_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "executor of \"%s\": more than %d executors", e->type,
                    EXECUTORS_MAX);
        return -1;
    }
    executors[executors_n++] = e;
    return 0;
}

const struct cap_executor *cap_executor_find(const struct cap_config *cfg, const char *type)
{
    /* The benchmark switch replaces every type by the no-op executor. */
    if (cfg && cfg->worker_noop_executor)
        return &cap_noop_executor;
    for (size_t i = 0; type && i < executors_n; i++)
        if (strcmp(executors[i]->type, type) == 0)
            return executors[i];
    return NULL;
}

int cap_executors_init(const struct cap_config *cfg, struct cap_err *err)
{
    if (cfg->worker_noop_executor)
        return 0;
    for (size_t i = 0; i < executors_n; i++) {
        const struct cap_executor *e = executors[i];
        if (e->init && e->init(cfg, err) < 0) {
            cap_err_prefix(err, "starting the %s executor: ", e->type);
            return -1;
        }
    }
    return 0;
}

void cap_executors_shutdown(void)
{
    for (size_t i = 0; i < executors_n; i++)
        if (executors[i]->shutdown)
            executors[i]->shutdown();
}
