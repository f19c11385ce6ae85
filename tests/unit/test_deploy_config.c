/* The configuration files the deployments ship (Kubernetes base and dev overlay, the
 * docker-compose stack) load with the real loader and hold the values the manifests rely on:
 * the worker drain fits the pod's grace period, the stream and group match the KEDA trigger. */
#include "common/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* The source tree: CAP_TEST_DATA is <source>/tests/data; cut two components as text. */
static int source_dir(char *out, size_t n)
{
    const char *data = getenv("CAP_TEST_DATA");
    if (!data || snprintf(out, n, "%s", data) >= (int)n)
        return -1;
    for (int up = 0; up < 2; up++) {
        size_t l = strlen(out);
        while (l > 1 && out[l - 1] == '/')
            out[--l] = '\0';
        char *slash = strrchr(out, '/');
        if (!slash)
            return -1;
        *slash = '\0';
    }
    return 0;
}

/* Loads rel (relative to the source tree) with no environment; 0 on success. */
static int load(const char *src, const char *rel, struct cap_config *cfg)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", src, rel);
    char *const no_env[] = {NULL};
    struct cap_err err;
    cap_err_clear(&err);
    if (cap_config_load(cfg, path, no_env, &err) != 0) {
        fprintf(stderr, "%s: %s\n", rel, err.msg);
        failures++;
        return -1;
    }
    return 0;
}

int main(void)
{
    char src[1024];
    if (source_dir(src, sizeof src) != 0) {
        fprintf(stderr, "CAP_TEST_DATA is not set or too long: run through ctest\n");
        return 1;
    }
    static const char *const files[] = {"deploy/k8s/base/config.yaml",
                                        "deploy/k8s/overlays/dev/config.yaml",
                                        "deploy/compose/config.yaml"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct cap_config cfg;
        if (load(src, files[i], &cfg) != 0)
            continue;
        /* Workers drain within 25 s; the Deployment and compose allow 30 s. */
        CHECK(cfg.worker_drain_grace_ms > 0 && cfg.worker_drain_grace_ms <= 25000);
        CHECK(cfg.worker_heartbeat_ms < cfg.worker_reclaim_idle_ms);
        /* components/keda and overlays/production name this stream and group. */
        CHECK(strcmp(cfg.redis_stream, "cap:discovery") == 0);
        CHECK(strcmp(cfg.redis_group, "cap-workers") == 0);
        CHECK(cfg.logging_format == CAP_LOG_JSON);
        /* Secrets come from *_FILE variables, never from these files. */
        CHECK(!strstr(cfg.database_url, "@"));
        CHECK(!strstr(cfg.redis_url, "@"));
        cap_config_cleanup(&cfg);
    }
    struct cap_config dev;
    if (load(src, "deploy/k8s/overlays/dev/config.yaml", &dev) == 0) {
        CHECK(dev.worker_max_concurrent_discovery == 64);
        CHECK(dev.logging_level == CAP_LOG_DEBUG);
        cap_config_cleanup(&dev);
    }
    if (failures) {
        fprintf(stderr, "test_deploy_config: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_deploy_config: ok\n");
    return 0;
}
