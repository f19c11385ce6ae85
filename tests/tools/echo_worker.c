/* cap-worker with the test-only source type test_echo: its descriptor
 * (tests/tools/echo_type.h) and its executor, registered beside the built-in ones. The
 * executor says the source's words back as the run's summary, `times` times (upper-cased when
 * the tone is loud, the note last), and counts one item per word said. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/daemon.h"
#include "tests/tools/echo_type.h"
#include "worker/executor.h"
#include "worker/worker.h"

static int echo_execute(struct cap_run_ctx *ctx, struct cap_run_outcome *out, struct cap_err *err)
{
    const struct echo_spec *s = ctx->src->spec;
    char said[sizeof out->error] = "";
    for (int k = 0; k < s->times; k++)
        for (size_t i = 0; i < s->words_n; i++) {
            if (said[0])
                cap_source_summary_append(said, sizeof said, " ");
            cap_source_summary_append(said, sizeof said, s->words[i]);
        }
    if (strcmp(s->tone, "loud") == 0)
        for (char *c = said; *c; c++)
            *c = (char)toupper((unsigned char)*c);
    if (s->note) {
        cap_source_summary_append(said, sizeof said, " (");
        cap_source_summary_append(said, sizeof said, s->note);
        cap_source_summary_append(said, sizeof said, ")");
    }
    struct cap_progress p = CAP_PROGRESS_KEEP;
    p.items_total = p.items_done = p.items_ok = (int64_t)s->words_n * s->times;
    if (cap_run_progress(ctx, &p, err) < 0)
        return -1;
    out->status = CAP_RUN_SUCCEEDED;
    snprintf(out->error, sizeof out->error, "%s", said);
    out->run_again = false;
    return 0;
}

static const struct cap_executor echo_executor = {
    .type = "test_echo",
    .init = NULL,
    .shutdown = NULL,
    .execute = echo_execute,
};

int main(int argc, char **argv)
{
    struct cap_err err = {0};
    if (cap_source_type_register(&echo_type, &err) < 0 ||
        cap_executor_register(&echo_executor, &err) < 0) {
        fprintf(stderr, "echo_worker: %s\n", err.msg);
        return 1;
    }
    return cap_daemon_main(argc, argv, "cap-worker", "worker", "127.0.0.1:9102", cap_worker_run);
}
