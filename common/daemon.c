/* Start-up and shutdown shared by cap-scheduler and cap-worker. */
#include "common/daemon.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/health.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/ossl.h"

static atomic_int stop_flag;
static atomic_uint reload_count;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

static void on_hangup(int sig)
{
    (void)sig;
    atomic_fetch_add(&reload_count, 1);
}

unsigned cap_daemon_reload_count(void)
{
    return atomic_load(&reload_count);
}

int cap_daemon_main(int argc, char **argv, const char *program, const char *component,
                    const char *default_listen, cap_daemon_run_fn run)
{
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s [--config FILE]\n", program);
            return 0;
        } else {
            fprintf(stderr, "usage: %s [--config FILE]\n", program);
            return 2;
        }
    }
    cap_log_init(component, CAP_LOG_INFO, CAP_LOG_AUTO);
    struct cap_config cfg;
    struct cap_err err = {0};
    if (cap_config_load(&cfg, config, NULL, &err) < 0) {
        cap_log(CAP_LOG_ERROR, "config_invalid", CAP_LS("err", err.msg));
        return 1;
    }
    cap_log_configure(cfg.logging_level, cfg.logging_format);
    const char *why_not = "";
    bool direct = cap_ossl_init();
    (void)cap_ossl_direct_keys(&why_not);
    cap_log(CAP_LOG_INFO, "openssl", CAP_LS("version", OpenSSL_version(OPENSSL_VERSION)),
            CAP_LS("direct_key_decoding", direct ? "on" : "off"), CAP_LS("why_not", why_not));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *listen = cfg.telemetry_metrics_listen && cfg.telemetry_metrics_listen[0]
                             ? cfg.telemetry_metrics_listen
                             : default_listen;
    if (cap_metrics_serve(listen, cap_health_ready, NULL, &cfg, &err) < 0) {
        cap_log(CAP_LOG_ERROR, "metrics_failed", CAP_LS("listen", listen), CAP_LS("err", err.msg));
        cap_config_cleanup(&cfg);
        return 1;
    }
    int rc = run(&cfg, &stop_flag, &err);
    cap_metrics_stop();
    if (rc < 0) {
        cap_log(CAP_LOG_ERROR, "start_failed", CAP_LS("err", err.msg));
        cap_config_cleanup(&cfg);
        return 1;
    }
    if (rc == 1) {
        /* Threads are still inside abandoned work: leave without tearing down their state. */
        fflush(stdout);
        _exit(0);
    }
    cap_config_cleanup(&cfg);
    return 0;
}
