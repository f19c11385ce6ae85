/* capctl: global options, command dispatch, configuration and the database connection, and
 * the `migrate` command. */
#include "ctl/ctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/pg.h"
#include "common/source/source.h"
#include "ctl/migrations.h"

/* The synopsis of capctl; the source types come from the registry (common/source/). */
static const char *synopsis(void)
{
    static char buf[2048];
    if (buf[0])
        return buf;
    char types[256] = "";
    const struct cap_source_type *t;
    for (size_t i = 0; (t = cap_source_type_at(i)) != NULL; i++) {
        size_t l = strlen(types);
        snprintf(types + l, sizeof types - l, "%s%s", i ? "|" : "", t->type);
    }
    snprintf(buf, sizeof buf,
             "capctl [--config FILE] [--json] COMMAND ...\n"
             "commands:\n"
             "  migrate [--status]\n"
             "  source add NAME --type %s [options]   (capctl source --help)\n"
             "  source list | show NAME | edit NAME [options] | enable NAME | disable NAME\n"
             "  source delete NAME | trigger NAME [--wait] [--timeout 10m]\n"
             "  managed add|remove FINGERPRINT | managed list\n"
             "  runs list [--source NAME] [--limit N] | runs show ID\n"
             "  findings list [--format table|json|csv] [--source NAME] [--kind K] [--open]\n"
             "                [--limit N]\n"
             "  findings ack ID --reason TEXT [--until DATE] [--by NAME] | findings unack ID\n"
             "  suppress add --kind K [--source S] [--subject PATTERN] --reason TEXT\n"
             "           [--until DATE] [--by NAME] | suppress list | suppress remove ID\n"
             "  endpoints history HOST:PORT [--limit N]\n"
             "  inventory [--format table|json|csv|pem] [--source S] [--issuer SUBSTRING]\n"
             "            [--name SUFFIX] [--expiring DAYS] [--pqc CLASS] [--unmanaged]\n"
             "            [--limit N]\n"
             "  notify list | notify test NAME",
             types);
    return buf;
}

static const char SYN_MIGRATE[] = "capctl migrate [--status]";

int cap_ctl_usage(const char *synopsis, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs("capctl: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    fprintf(stderr, "usage: %s\n", synopsis);
    return CAP_CTL_USAGE;
}

int cap_ctl_fail(const struct cap_err *err)
{
    fprintf(stderr, "capctl: %s\n", err->msg[0] ? err->msg : "failed");
    return CAP_CTL_FAIL;
}

int cap_ctl_parse(int argc, char **argv, const struct cap_ctl_opt_spec *specs, size_t max_pos,
                  const char *synopsis, struct cap_ctl_args *out)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s\n", synopsis);
            return CAP_CTL_HELP;
        }
    }
    struct cap_err err = {0};
    if (cap_ctl_args_parse(argc, argv, specs, max_pos, out, &err) < 0)
        return cap_ctl_usage(synopsis, "%s", err.msg);
    return 0;
}

/* libpq notices: NOTICE/INFO/DEBUG (CREATE ... IF NOT EXISTS chatter) are dropped, warnings go
 * to stderr so they never mix with the JSON on stdout. */
static void notice_cb(void *arg, const PGresult *r)
{
    (void)arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (sev && msg && strcmp(sev, "WARNING") == 0)
        fprintf(stderr, "capctl: database warning: %s\n", msg);
}

/* Loads the configuration. Its warnings (unknown CERTAUTOPILOT_* variables) are logged to
 * stdout by the shared logger; capctl's stdout carries results and JSON, so stdout points at
 * stderr while it loads. */
static int load_config(struct cap_ctl *ctl, struct cap_err *err)
{
    if (ctl->cfg_loaded)
        return 0;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    if (saved >= 0)
        dup2(STDERR_FILENO, STDOUT_FILENO);
    int rc = cap_config_load(&ctl->cfg, ctl->config_path, NULL, err);
    fflush(stdout);
    if (saved >= 0) {
        dup2(saved, STDOUT_FILENO);
        close(saved);
    }
    if (rc < 0)
        return -1;
    /* logging.level is left alone: capctl prints results, not event logs, and a debug line on
     * stdout would break --json. */
    ctl->cfg_loaded = true;
    return 0;
}

int cap_ctl_config(struct cap_ctl *ctl, struct cap_err *err)
{
    return load_config(ctl, err);
}

PGconn *cap_ctl_db(struct cap_ctl *ctl, struct cap_err *err)
{
    if (ctl->pg)
        return ctl->pg;
    if (load_config(ctl, err) < 0)
        return NULL;
    if (!ctl->cfg.database_url || !ctl->cfg.database_url[0]) {
        cap_err_set(err, CAP_E_INVALID,
                    "database.url is not set (config file or CERTAUTOPILOT_DATABASE_URL)");
        return NULL;
    }
    PGconn *c = cap_pg_connect(ctl->cfg.database_url, "capctl", err);
    if (!c)
        return NULL;
    PQsetNoticeReceiver(c, notice_cb, NULL);
    /* Times print in UTC, the zone schedules are written in. */
    if (cap_pg_cmd(c, "set time zone", "SET TimeZone TO 'UTC'", 0, NULL, err) < 0) {
        PQfinish(c);
        return NULL;
    }
    ctl->pg = c;
    return c;
}

enum { OPT_STATUS = 1 };

int cap_ctl_cmd_migrate(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{"status", CAP_CTL_FLAG, OPT_STATUS},
                                                    {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 0, SYN_MIGRATE, &a);
    if (rc)
        return rc;
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c)
        return cap_ctl_fail(&err);
    if (cap_ctl_args_has(&a, OPT_STATUS))
        rc = cap_ctl_migrate_status(c, cap_ctl_migrations, cap_ctl_migrations_n, ctl->json, &err);
    else
        rc = cap_ctl_migrate_apply(c, cap_ctl_migrations, cap_ctl_migrations_n, ctl->json, &err);
    if (rc == 0 && ctl->json && !cap_ctl_args_has(&a, OPT_STATUS))
        rc = cap_ctl_migrate_status(c, cap_ctl_migrations, cap_ctl_migrations_n, true, &err);
    return rc < 0 ? cap_ctl_fail(&err) : CAP_CTL_OK;
}

struct command {
    const char *name;
    int (*run)(struct cap_ctl *ctl, int argc, char **argv);
};

static const struct command COMMANDS[] = {
    {"migrate", cap_ctl_cmd_migrate},
    {"source", cap_ctl_cmd_source},
    {"managed", cap_ctl_cmd_managed},
    {"runs", cap_ctl_cmd_runs},
    {"findings", cap_ctl_cmd_findings},
    {"endpoints", cap_ctl_cmd_endpoints},
    {"inventory", cap_ctl_cmd_inventory},
    {"suppress", cap_ctl_cmd_suppress},
    {"notify", cap_ctl_cmd_notify},
    {NULL, NULL},
};

int cap_ctl_main(int argc, char **argv)
{
    struct cap_ctl ctl;
    memset(&ctl, 0, sizeof ctl);
    cap_log_init("capctl", CAP_LOG_WARN, CAP_LOG_AUTO);

    int i = 1;
    for (; i < argc && strncmp(argv[i], "-", 1) == 0; i++) {
        const char *w = argv[i];
        if (strcmp(w, "--json") == 0) {
            ctl.json = true;
        } else if (strcmp(w, "--config") == 0) {
            if (i + 1 >= argc)
                return cap_ctl_usage(synopsis(), "option --config needs a value");
            ctl.config_path = argv[++i];
        } else if (strncmp(w, "--config=", 9) == 0) {
            ctl.config_path = w + 9;
        } else if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) {
            printf("usage: %s\n", synopsis());
            return CAP_CTL_OK;
        } else {
            char q[CAP_ERR_VALUE_MAX * 4 + 8];
            return cap_ctl_usage(synopsis(), "unknown option \"%s\"",
                                 cap_err_quote(q, sizeof q, w, strlen(w)));
        }
    }
    if (i >= argc)
        return cap_ctl_usage(synopsis(), "no command given");
    const char *name = argv[i++];
    if (strcmp(name, "help") == 0) {
        printf("usage: %s\n", synopsis());
        return CAP_CTL_OK;
    }
    const struct command *cmd = NULL;
    for (const struct command *c = COMMANDS; c->name; c++)
        if (strcmp(c->name, name) == 0)
            cmd = c;
    if (!cmd) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        return cap_ctl_usage(synopsis(), "unknown command \"%s\"",
                             cap_err_quote(q, sizeof q, name, strlen(name)));
    }

    /* --json is global and may also follow the command (capctl source list --json). */
    int n = 0;
    char **rest = calloc((size_t)(argc - i) + 1, sizeof *rest);
    if (!rest) {
        fprintf(stderr, "capctl: out of memory\n");
        return CAP_CTL_FAIL;
    }
    bool after_dashes = false;
    for (int j = i; j < argc; j++) {
        if (!after_dashes && strcmp(argv[j], "--") == 0)
            after_dashes = true;
        if (!after_dashes && strcmp(argv[j], "--json") == 0) {
            ctl.json = true;
            continue;
        }
        rest[n++] = argv[j];
    }
    int rc = cmd->run(&ctl, n, rest);
    if (rc == CAP_CTL_HELP)
        rc = CAP_CTL_OK;
    free(rest);
    if (ctl.pg)
        PQfinish(ctl.pg);
    if (ctl.cfg_loaded)
        cap_config_cleanup(&ctl.cfg);
    fflush(stdout);
    return rc;
}
