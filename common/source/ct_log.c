/* The ct_log source type: descriptor and log protocol names. */
#include "common/source/ct_log.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/source/value.h"

const struct cap_source_choice cap_ct_log_protocols[] = {
    {"auto", CAP_CT_PROTOCOL_AUTO},
    {"rfc6962", CAP_CT_PROTOCOL_RFC6962},
    {"static-ct", CAP_CT_PROTOCOL_STATIC_CT},
    {NULL, 0},
};

static int norm_domain(const struct cap_source_field *f, const char *opt, const char *text,
                       char *out, size_t n, struct cap_err *err)
{
    (void)f;
    return cap_value_domain(opt, text, out, n, err);
}

static int norm_url(const struct cap_source_field *f, const char *opt, const char *text, char *out,
                    size_t n, struct cap_err *err)
{
    (void)f;
    if (cap_value_url(opt, text, err) < 0)
        return -1;
    snprintf(out, n, "%s", text);
    return 0;
}

static int norm_issuer(const struct cap_source_field *f, const char *opt, const char *text,
                       char *out, size_t n, struct cap_err *err)
{
    (void)f;
    if (cap_value_text(opt, text, CAP_CT_ISSUER_MAX, err) < 0)
        return -1;
    snprintf(out, n, "%s", text);
    return 0;
}

static char *norm_key(const struct cap_source_field *f, const char *opt, const char *path,
                      const char *data, size_t len, struct cap_err *err)
{
    (void)f;
    return cap_value_pem_pubkey(opt, path, data, len, err);
}

/* capctl source list: the domains. */
static void summary(const void *spec, char *out, size_t n)
{
    const struct cap_ct_log_spec *s = spec;
    out[0] = '\0';
    for (size_t i = 0; i < s->domains_n; i++) {
        if (i)
            cap_source_summary_append(out, n, ",");
        cap_source_summary_append(out, n, s->domains[i]);
    }
}

#define S struct cap_ct_log_spec

static const struct cap_source_field FIELDS[] = {
    {.name = "domains",
     .kind = CAP_SOURCE_TEXTS,
     .option = "domain",
     .metavar = "SUFFIX",
     .help = "domain suffixes; each matches the apex and every subdomain",
     .norm = norm_domain,
     CAP_SOURCE_LIST_AT(S, domains)},
    {.name = "log_urls",
     .kind = CAP_SOURCE_TEXTS,
     .option = "log",
     .metavar = "URL",
     .help = "log URLs; none means the curated list of the configuration",
     .norm = norm_url,
     CAP_SOURCE_LIST_AT(S, log_urls)},
    {.name = "log_protocol",
     .kind = CAP_SOURCE_TEXT,
     .option = "log-protocol",
     .metavar = "auto|rfc6962|static-ct",
     .help = "auto (probe), rfc6962 or static-ct, for the URLs of log_urls",
     .def_text = "auto",
     .choices = cap_ct_log_protocols,
     .norm = cap_source_norm_choice,
     CAP_SOURCE_AT(S, log_protocol)},
    {.name = "log_key",
     .kind = CAP_SOURCE_TEXT,
     .option = "log-key",
     .metavar = "FILE",
     .help = "PEM public key of a private log, used to verify its signed tree heads",
     .nullable = true,
     .norm_file = norm_key,
     CAP_SOURCE_AT(S, log_key)},
    {.name = "expected_issuers",
     .kind = CAP_SOURCE_TEXTS,
     .option = "expected-issuer",
     .metavar = "SUBSTRING",
     .help = "issuer substrings; a match from any other issuer is a ct_unexpected_issuer finding",
     .whole = true,
     .norm = norm_issuer,
     CAP_SOURCE_LIST_AT(S, expected_issuers)},
    {.name = "backfill_from",
     .kind = CAP_SOURCE_INT,
     .option = "backfill-from",
     .metavar = "INDEX",
     .help = "first log index to read for a new source; null starts at the current tree size",
     .min = 0,
     .max = INT64_MAX,
     .def = -1,
     .nullable = true,
     .clear_option = "no-backfill",
     .norm = cap_source_norm_int,
     CAP_SOURCE_AT(S, backfill_from)},
};

static const char *const NEEDS[] = {"domains", NULL};

const struct cap_source_type cap_ct_log_type = {
    .type = "ct_log",
    .description = "reads CT log entries since the last checkpoint and keeps every certificate "
                   "whose names match",
    .fields = FIELDS,
    .nfields = sizeof FIELDS / sizeof FIELDS[0],
    .needs_one_of = NEEDS,
    .needs_constraint = "ct_log_has_domains",
    .default_schedule = "every 1h",
    .poll = true,
    .spec_size = sizeof(S),
    .summary = summary,
};
