/* The network_scan source type: descriptor, STARTTLS protocol table and default ports. */
#include "common/source/network_scan.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/source/value.h"

#define QUOTE_MAX (CAP_ERR_VALUE_MAX * 4 + 8)

const struct cap_source_choice cap_starttls_protocols[] = {
    {"smtp", CAP_STARTTLS_SMTP},
    {"imap", CAP_STARTTLS_IMAP},
    {"pop3", CAP_STARTTLS_POP3},
    {"ldap", CAP_STARTTLS_LDAP},
    {"postgres", CAP_STARTTLS_POSTGRES},
    {"none", CAP_STARTTLS_NONE},
    {NULL, 0},
};

enum cap_starttls_proto cap_starttls_for_port(int port)
{
    switch (port) {
    case 25:
    case 587:
        return CAP_STARTTLS_SMTP;
    case 143:
        return CAP_STARTTLS_IMAP;
    case 110:
        return CAP_STARTTLS_POP3;
    case 389:
        return CAP_STARTTLS_LDAP;
    case 5432:
        return CAP_STARTTLS_POSTGRES;
    default:
        return CAP_STARTTLS_NONE;
    }
}

const char *cap_starttls_name(enum cap_starttls_proto proto)
{
    for (size_t i = 0; cap_starttls_protocols[i].name; i++)
        if (cap_starttls_protocols[i].value == (int)proto)
            return cap_starttls_protocols[i].name;
    return "none";
}

/* The port of "PORT:..." (1-5 digits, 1-65535), or -1. */
static long override_port(const char *spec, const char *colon)
{
    size_t plen = (size_t)(colon - spec);
    if (plen < 1 || plen > 5)
        return -1;
    long p = 0;
    for (size_t i = 0; i < plen; i++) {
        if (spec[i] < '0' || spec[i] > '9')
            return -1;
        p = p * 10 + (spec[i] - '0');
    }
    return p >= 1 && p <= 65535 ? p : -1;
}

int cap_starttls_parse_override(const char *spec, int *port, enum cap_starttls_proto *proto)
{
    const char *colon = spec ? strchr(spec, ':') : NULL;
    long p = colon ? override_port(spec, colon) : -1;
    if (p < 0)
        return -1;
    for (size_t i = 0; cap_starttls_protocols[i].name; i++) {
        if (strcmp(colon + 1, cap_starttls_protocols[i].name) == 0) {
            *port = (int)p;
            *proto = (enum cap_starttls_proto)cap_starttls_protocols[i].value;
            return 0;
        }
    }
    return -1;
}

int cap_starttls_normalise(const char *opt, const char *text, char *out, size_t n,
                           struct cap_err *err)
{
    char q[QUOTE_MAX];
    cap_err_quote(q, sizeof q, text, strlen(text));
    const char *colon = strchr(text, ':');
    if (!colon) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": expected PORT:PROTOCOL, e.g. 2525:smtp", opt,
                    q);
        return -1;
    }
    long port = override_port(text, colon);
    if (port < 0) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": port must be 1-65535", opt, q);
        return -1;
    }
    const char *proto = NULL;
    for (size_t i = 0; cap_starttls_protocols[i].name; i++)
        if (strcasecmp(colon + 1, cap_starttls_protocols[i].name) == 0)
            proto = cap_starttls_protocols[i].name;
    if (!proto) {
        struct cap_source_field f = {.choices = cap_starttls_protocols};
        char c[128];
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": protocol must be %s", opt, q,
                    cap_source_choices_text(&f, c, sizeof c));
        return -1;
    }
    char norm[CAP_STARTTLS_OVERRIDE_TEXT_MAX];
    int len = snprintf(norm, sizeof norm, "%ld:%s", port, proto);
    if (len < 0 || (size_t)len + 1 > n) {
        cap_err_set(err, CAP_E_LIMIT, "%s \"%s\": no room for the override", opt, q);
        return -1;
    }
    memcpy(out, norm, (size_t)len + 1);
    return 0;
}

/* --- normalisers of the fields ----------------------------------------------------------- */

static int norm_cidr(const struct cap_source_field *f, const char *opt, const char *text, char *out,
                     size_t n, struct cap_err *err)
{
    (void)f;
    return cap_value_cidr(opt, text, out, n, err);
}

static int norm_host(const struct cap_source_field *f, const char *opt, const char *text, char *out,
                     size_t n, struct cap_err *err)
{
    (void)f;
    return cap_value_hostname(opt, text, out, n, err);
}

static int norm_port(const struct cap_source_field *f, const char *opt, const char *text, char *out,
                     size_t n, struct cap_err *err)
{
    (void)f;
    int p = 0;
    if (cap_value_port(opt, text, &p, err) < 0)
        return -1;
    snprintf(out, n, "%d", p);
    return 0;
}

static int norm_starttls(const struct cap_source_field *f, const char *opt, const char *text,
                         char *out, size_t n, struct cap_err *err)
{
    (void)f;
    return cap_starttls_normalise(opt, text, out, n, err);
}

static int norm_timeout(const struct cap_source_field *f, const char *opt, const char *text,
                        char *out, size_t n, struct cap_err *err)
{
    int64_t ms = 0;
    if (cap_value_duration_ms(opt, text, f->min, f->max, "100ms and 10m", &ms, err) < 0)
        return -1;
    snprintf(out, n, "%lld", (long long)ms);
    return 0;
}

static int norm_connect_rate(const struct cap_source_field *f, const char *opt, const char *text,
                             char *out, size_t n, struct cap_err *err)
{
    int64_t v = 0;
    struct cap_err e = {0};
    if (cap_value_int(opt, text, f->min, f->max, &v, &e) < 0) {
        char q[QUOTE_MAX];
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must be %lld-%lld connects per second", opt,
                    cap_err_quote(q, sizeof q, text, strlen(text)), (long long)f->min,
                    (long long)f->max);
        return -1;
    }
    snprintf(out, n, "%lld", (long long)v);
    return 0;
}

/* --- the descriptor ------------------------------------------------------------------------ */

/* "a,b,c" of a list. */
static void append_list(char *out, size_t n, char *const *v, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (i)
            cap_source_summary_append(out, n, ",");
        cap_source_summary_append(out, n, v[i]);
    }
}

/* capctl source list: "CIDRS HOSTS ports PORTS" (the default ports when none are listed). */
static void summary(const void *spec, char *out, size_t n)
{
    const struct cap_network_scan_spec *s = spec;
    out[0] = '\0';
    append_list(out, n, s->cidrs, s->cidrs_n);
    if (s->hosts_n) {
        if (out[0])
            cap_source_summary_append(out, n, " ");
        append_list(out, n, s->hosts, s->hosts_n);
    }
    cap_source_summary_append(out, n, out[0] ? " ports " : "ports ");
    static const int defaults[] = CAP_SCAN_DEFAULT_PORTS;
    const int *ports = s->ports_n ? s->ports : defaults;
    size_t np = s->ports_n ? s->ports_n : sizeof defaults / sizeof defaults[0];
    for (size_t i = 0; i < np; i++) {
        char b[16];
        snprintf(b, sizeof b, "%s%d", i ? "," : "", ports[i]);
        cap_source_summary_append(out, n, b);
    }
}

#define S struct cap_network_scan_spec

static const struct cap_source_field FIELDS[] = {
    {.name = "cidrs",
     .kind = CAP_SOURCE_CIDRS,
     .option = "cidr",
     .metavar = "CIDR",
     .help = "ranges to scan (IPv4 and IPv6)",
     .norm = norm_cidr,
     CAP_SOURCE_LIST_AT(S, cidrs)},
    {.name = "hosts",
     .kind = CAP_SOURCE_TEXTS,
     .option = "host",
     .metavar = "NAME",
     .help = "host names, sent as SNI",
     .norm = norm_host,
     CAP_SOURCE_LIST_AT(S, hosts)},
    {.name = "ports",
     .kind = CAP_SOURCE_PORTS,
     .option = "port",
     .metavar = "N",
     .help = "TCP ports; none means 443 and 8443",
     .norm = norm_port,
     CAP_SOURCE_LIST_AT(S, ports)},
    {.name = "starttls",
     .kind = CAP_SOURCE_PORT_MAP,
     .option = "starttls",
     .metavar = "PORT:PROTOCOL",
     .help = "STARTTLS per port, overriding the defaults",
     .choices = cap_starttls_protocols,
     .max_items = CAP_STARTTLS_OVERRIDES_MAX,
     .norm = norm_starttls,
     CAP_SOURCE_LIST_AT(S, starttls)},
    {.name = "timeout_ms",
     .kind = CAP_SOURCE_INT,
     .option = "timeout",
     .metavar = "5s",
     .help = "deadline per host:port for connect, STARTTLS and handshake together",
     .min = CAP_SCAN_TIMEOUT_MIN_MS,
     .max = CAP_SCAN_TIMEOUT_MAX_MS,
     .def = 5000,
     .norm = norm_timeout,
     CAP_SOURCE_AT(S, timeout_ms)},
    {.name = "concurrency",
     .kind = CAP_SOURCE_INT,
     .option = "concurrency",
     .metavar = "8",
     .help = "handshakes in flight for this source (also capped per worker)",
     .min = 1,
     .max = CAP_SCAN_CONCURRENCY_MAX,
     .def = 8,
     .norm = cap_source_norm_int,
     CAP_SOURCE_AT(S, concurrency)},
    {.name = "connect_rate",
     .kind = CAP_SOURCE_INT,
     .option = "connect-rate",
     .metavar = "N",
     .help = "TCP connects per second; can only lower the worker's scan.connect_rate",
     .min = 1,
     .max = CAP_SCAN_CONNECT_RATE_MAX,
     .def = 0,
     .nullable = true,
     .norm = norm_connect_rate,
     CAP_SOURCE_AT(S, connect_rate)},
};

static const char *const NEEDS[] = {"cidrs", "hosts", NULL};

const struct cap_source_type cap_network_scan_type = {
    .type = "network_scan",
    .description = "connects to every host:port, does a TLS handshake and records the chain",
    .fields = FIELDS,
    .nfields = sizeof FIELDS / sizeof FIELDS[0],
    .needs_one_of = NEEDS,
    .needs_constraint = "network_scan_has_targets",
    .default_schedule = "manual",
    .poll = false,
    .spec_size = sizeof(S),
    .summary = summary,
};
