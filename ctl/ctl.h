/* capctl internals shared by the command modules: the invocation context, exit codes, usage
 * errors and the database connection. */
#ifndef CAP_CTL_H
#define CAP_CTL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "ctl/args.h"

/* Exit codes of capctl. CAP_CTL_HELP is internal: --help was answered; capctl exits 0. */
enum { CAP_CTL_OK = 0, CAP_CTL_FAIL = 1, CAP_CTL_USAGE = 2, CAP_CTL_HELP = 3 };

/* One capctl invocation. */
struct cap_ctl {
    const char *config_path; /* --config, or NULL for $CERTAUTOPILOT_CONFIG */
    bool json;               /* --json */
    struct cap_config cfg;
    bool cfg_loaded;
    PGconn *pg; /* NULL until cap_ctl_db */
};

/* Loads the configuration and connects to database.url (once; later calls return the same
 * connection). Returns NULL with err on failure. Blocks. */
PGconn *cap_ctl_db(struct cap_ctl *ctl, struct cap_err *err);

/* Loads the configuration only (once). 0, or -1 with err. Blocks on file reads. */
int cap_ctl_config(struct cap_ctl *ctl, struct cap_err *err);

/* Prints "capctl: MESSAGE" and then "usage: capctl SYNOPSIS" to stderr; returns CAP_CTL_USAGE. */
int cap_ctl_usage(const char *synopsis, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "capctl: " and err's message to stderr; returns CAP_CTL_FAIL. */
int cap_ctl_fail(const struct cap_err *err);

/* Parses argv against specs; on failure prints the message and the synopsis and returns
 * CAP_CTL_USAGE; when argv holds --help (before any "--"), prints the synopsis to stdout and
 * returns CAP_CTL_HELP; else 0. Callers return any non-zero result as is. */
int cap_ctl_parse(int argc, char **argv, const struct cap_ctl_opt_spec *specs, size_t max_pos,
                  const char *synopsis, struct cap_ctl_args *out);

/* Prints run id (every column, and source_name) as a key/value block, or as a JSON array of
 * one object. Returns 0, or -1 with err (`run 42 does not exist`). Blocks. */
int cap_ctl_show_run(struct cap_ctl *ctl, PGconn *c, int64_t id, struct cap_err *err);

/* Entry point: parses global options and runs the command. Returns the exit code. */
int cap_ctl_main(int argc, char **argv);

/* Command handlers: argv holds the words after the command name ("source" handlers get the
 * words after "source"). Each returns an exit code. */
int cap_ctl_cmd_migrate(struct cap_ctl *ctl, int argc, char **argv);
int cap_ctl_cmd_source(struct cap_ctl *ctl, int argc, char **argv);
int cap_ctl_cmd_managed(struct cap_ctl *ctl, int argc, char **argv);
int cap_ctl_cmd_runs(struct cap_ctl *ctl, int argc, char **argv);
int cap_ctl_cmd_findings(struct cap_ctl *ctl, int argc, char **argv);
int cap_ctl_cmd_endpoints(struct cap_ctl *ctl, int argc, char **argv);
int cap_ctl_cmd_inventory(struct cap_ctl *ctl, int argc, char **argv);
int cap_ctl_cmd_suppress(struct cap_ctl *ctl, int argc, char **argv);
int cap_ctl_cmd_notify(struct cap_ctl *ctl, int argc, char **argv);

/* findings ack|unack (ctl/workflow.c): argv holds the words after "findings", the first
 * positional one being "ack" or "unack". Returns an exit code. */
int cap_ctl_cmd_findings_ack(struct cap_ctl *ctl, int argc, char **argv);

#endif
