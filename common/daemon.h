/* The shared start-up and shutdown of the long-running programs (cap-scheduler, cap-worker):
 * arguments, configuration, logging, signals and the metrics/health endpoint. */
#ifndef CAP_DAEMON_H
#define CAP_DAEMON_H

#include <stdatomic.h>

#include "common/config.h"
#include "common/err.h"

/* The program's loop: runs until *stop becomes non-zero. Returns 0 after a clean stop, 1 when
 * work was abandoned (threads may still be inside it: the process leaves without teardown), or
 * -1 with err when it could not start. */
typedef int (*cap_daemon_run_fn)(const struct cap_config *cfg, atomic_int *stop,
                                 struct cap_err *err);

/* Parses `[--config FILE]`, loads the configuration (a bad one stops start-up with one line
 * naming the key), installs SIGTERM/SIGINT handlers (stop) and a SIGHUP handler (reload), serves
 * /metrics, /healthz and /readyz on telemetry.metrics_listen (default_listen when unset), and calls
 * run. Returns the exit code: 0 clean, 1 failure, 2 usage. Blocks until run returns. */
int cap_daemon_main(int argc, char **argv, const char *program, const char *component,
                    const char *default_listen, cap_daemon_run_fn run);

/* SIGHUPs received so far (the handler only counts): modules that hold files read at start
 * (the worker's trust store) reload when the count moves. Async-signal-safe to update. */
unsigned cap_daemon_reload_count(void);

#endif
