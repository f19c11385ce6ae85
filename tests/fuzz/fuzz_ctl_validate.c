/* Fuzz target for capctl's input validators (ctl/validate.h, and the source field normalisers
 * of common/source/ it runs) and option parser (ctl/args.h):
 * everything an operator types before it reaches the database. Byte 0 picks the function, the
 * rest is the text (cut at the first NUL; for the option parser, NUL-separated words).
 * Properties: a failure sets a message naming the option and leaves the outputs untouched; a
 * success gives an output in range that the same validator accepts again unchanged. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/policy.h"
#include "common/source/ct_log.h"
#include "common/source/network_scan.h"
#include "ctl/args.h"
#include "ctl/validate.h"

#define OPT "--opt"
#define FILL 0x5A

static void want_fail(int rc, const struct cap_err *err, int names_opt)
{
    if (rc != -1 || err->code == 0 || err->msg[0] == '\0')
        abort();
    if (names_opt && strstr(err->msg, OPT) == NULL)
        abort();
}

static void want_untouched(const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] != FILL)
            abort();
}

static void check_name_out(const char *out, int domain)
{
    size_t len = strlen(out);
    if (len == 0 || len > CAP_CTL_HOSTNAME_MAX || out[len - 1] == '.' || out[0] == '.')
        abort();
    for (const char *c = out; *c; c++)
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-' || *c == '.'))
            abort();
    if (strstr(out, "..") || (domain && !strchr(out, '.')))
        abort();
}

static void fuzz_args(const char *buf, size_t size)
{
    char *argv[64];
    int argc = 0;
    const char *p = buf, *end = buf + size;
    while (p < end && argc < 64) {
        argv[argc++] = (char *)p;
        p += strlen(p) + 1;
    }
    static const struct cap_ctl_opt_spec specs[] = {{"cidr", CAP_CTL_LIST, 1},
                                                    {"port", CAP_CTL_VALUE, 2},
                                                    {"wait", CAP_CTL_FLAG, 3},
                                                    {"name", CAP_CTL_VALUE, 4},
                                                    {NULL, 0, 0}};
    static struct cap_ctl_args a;
    memset(&a, FILL, sizeof a);
    struct cap_err err = {0};
    if (cap_ctl_args_parse(argc, argv, specs, 2, &a, &err) != 0) {
        want_fail(-1, &err, 0);
        want_untouched((const char *)&a, sizeof a);
        return;
    }
    if (err.code || a.npos > 2 || a.nopts > (size_t)argc)
        abort();
    for (size_t i = 0; i < a.nopts; i++) {
        const struct cap_ctl_opt *o = &a.opts[i];
        if (o->id < 1 || o->id > 4 || (o->id == 3) != (o->value == NULL))
            abort();
        if (o->id != 1)
            continue;
        char split[256];
        const char *parts[16];
        struct cap_err e2 = {0};
        int np = cap_ctl_args_split("--cidr", o->value, split, sizeof split, parts, 16, &e2);
        if (np < 0) {
            want_fail(np, &e2, 0);
            continue;
        }
        /* The parts joined with commas give the value back; none is empty or has a comma. */
        char joined[256];
        size_t jl = 0;
        for (int k = 0; k < np; k++) {
            size_t pl = strlen(parts[k]);
            if (pl == 0 || strchr(parts[k], ',') || jl + pl + 1 > sizeof joined)
                abort();
            if (k)
                joined[jl++] = ',';
            memcpy(joined + jl, parts[k], pl);
            jl += pl;
        }
        joined[jl] = '\0';
        if (np < 1 || strcmp(joined, o->value) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 70000)
        return 0;
    int which = data[0] % 15;
    data++;
    size--;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct cap_err err = {0};
    char out[512], again[512];
    int iv = 0x5A5A5A5A, rc;
    switch (which) {
    case 0:
        rc = cap_ctl_validate_name(text, &err);
        if (rc != 0)
            want_fail(rc, &err, 0);
        else if (strlen(text) > 128 || !isalnum((unsigned char)text[0]))
            abort();
        break;
    case 1: {
        memset(out, FILL, sizeof out);
        rc = cap_value_cidr(OPT, text, out, CAP_VALUE_CIDR_MAX, &err);
        if (rc != 0) {
            want_fail(rc, &err, 1);
            want_untouched(out, sizeof out);
            break;
        }
        /* Normalised: the policy reads it, and validating it again changes nothing. */
        struct cap_cidr c;
        struct cap_err e2 = {0};
        if (!memchr(out, 0, CAP_VALUE_CIDR_MAX) || cap_policy_parse_cidr(out, &c, &e2) != 0 ||
            cap_value_cidr(OPT, out, again, sizeof again, &e2) != 0 || strcmp(out, again))
            abort();
        break;
    }
    case 2:
        rc = cap_value_port(OPT, text, &iv, &err);
        if (rc != 0) {
            want_fail(rc, &err, 1);
            if (iv != 0x5A5A5A5A)
                abort();
        } else if (iv < 1 || iv > 65535)
            abort();
        break;
    case 3: {
        int64_t ms = 0x5A5A5A5A;
        rc = cap_value_duration_ms(OPT, text, CAP_SCAN_TIMEOUT_MIN_MS, CAP_SCAN_TIMEOUT_MAX_MS,
                                   "100ms and 10m", &ms, &err);
        if (rc != 0) {
            want_fail(rc, &err, 1);
            if (ms != 0x5A5A5A5A)
                abort();
        } else if (ms < CAP_SCAN_TIMEOUT_MIN_MS || ms > CAP_SCAN_TIMEOUT_MAX_MS)
            abort();
        break;
    }
    case 4: {
        int64_t v = 0x5A5A5A5A, min = -1000, max = 1000000;
        if (size > 0 && (text[0] & 1))
            min = INT64_MIN, max = INT64_MAX;
        rc = cap_ctl_validate_int(OPT, text, min, max, &v, &err);
        if (rc != 0) {
            want_fail(rc, &err, 1);
            if (v != 0x5A5A5A5A)
                abort();
        } else if (v < min || v > max)
            abort();
        break;
    }
    case 5:
        rc = cap_ctl_validate_schedule(OPT, text, &err);
        if (rc != 0)
            want_fail(rc, &err, 1);
        break;
    case 6:
    case 7: {
        int domain = which == 7;
        memset(out, FILL, sizeof out);
        rc = domain ? cap_value_domain(OPT, text, out, CAP_CTL_HOSTNAME_MAX + 1, &err)
                    : cap_value_hostname(OPT, text, out, CAP_CTL_HOSTNAME_MAX + 1, &err);
        if (rc != 0) {
            want_fail(rc, &err, 1);
            want_untouched(out, sizeof out);
            break;
        }
        check_name_out(out, domain);
        struct cap_err e2 = {0};
        rc = domain ? cap_value_domain(OPT, out, again, sizeof again, &e2)
                    : cap_value_hostname(OPT, out, again, sizeof again, &e2);
        if (rc != 0 || strcmp(out, again) != 0)
            abort();
        break;
    }
    case 8:
        rc = cap_value_url(OPT, text, &err);
        if (rc != 0)
            want_fail(rc, &err, 1);
        else if (strncasecmp(text, "http://", 7) != 0 && strncasecmp(text, "https://", 8) != 0)
            abort();
        break;
    case 9:
        rc = cap_value_text(OPT, text, CAP_CT_ISSUER_MAX, &err);
        if (rc != 0)
            want_fail(rc, &err, 1);
        else if (strlen(text) < 1 || strlen(text) > CAP_CT_ISSUER_MAX)
            abort();
        break;
    case 10: {
        /* The raw bytes, NULs included, as a key file's content. */
        char *pem = cap_value_pem_pubkey(OPT, "key.pem", (const char *)data, size, &err);
        if (!pem) {
            want_fail(-1, &err, 1);
            break;
        }
        struct cap_err e2 = {0};
        char *pem2 = cap_value_pem_pubkey(OPT, "key.pem", pem, strlen(pem), &e2);
        if (err.code || !pem2 || strcmp(pem, pem2) != 0)
            abort();
        free(pem);
        free(pem2);
        break;
    }
    case 11:
        memset(out, FILL, sizeof out);
        rc = cap_ctl_validate_fingerprint(text, out, 65, &err);
        if (rc != 0) {
            want_fail(rc, &err, 0);
            want_untouched(out, sizeof out);
            break;
        }
        if (strlen(out) != 64 || strspn(out, "0123456789abcdef") != 64)
            abort();
        break;
    case 12:
        memset(out, FILL, sizeof out);
        rc = cap_ctl_validate_host_port(text, out, CAP_CTL_HOSTNAME_MAX + 1, &iv, &err);
        if (rc != 0) {
            want_fail(rc, &err, 0);
            want_untouched(out, sizeof out);
            if (iv != 0x5A5A5A5A)
                abort();
            break;
        }
        if (iv < 1 || iv > 65535 || strlen(out) < 1 || strlen(out) > CAP_CTL_HOSTNAME_MAX)
            abort();
        break;
    case 13:
        fuzz_args(text, size);
        break;
    case 14: {
        memset(out, FILL, sizeof out);
        rc = cap_starttls_normalise(OPT, text, out, CAP_STARTTLS_OVERRIDE_TEXT_MAX, &err);
        if (rc != 0) {
            want_fail(rc, &err, 1);
            want_untouched(out, sizeof out);
            break;
        }
        /* What the scanner and the database accept: 1-5 digits, a port 1-65535, a known
         * lower-case protocol; validating it again changes nothing. */
        const char *colon = memchr(out, ':', CAP_STARTTLS_OVERRIDE_TEXT_MAX);
        if (!colon || !memchr(out, 0, CAP_STARTTLS_OVERRIDE_TEXT_MAX) || colon == out ||
            colon - out > 5 || strspn(out, "0123456789") != (size_t)(colon - out) || out[0] == '0')
            abort();
        long port = strtol(out, NULL, 10);
        int parsed_port = 0;
        enum cap_starttls_proto proto;
        int known = cap_starttls_parse_override(out, &parsed_port, &proto) == 0 &&
                    parsed_port == port && strcmp(colon + 1, cap_starttls_name(proto)) == 0;
        struct cap_err e2 = {0};
        if (port < 1 || port > 65535 || !known ||
            cap_starttls_normalise(OPT, out, again, sizeof again, &e2) != 0 ||
            strcmp(out, again) != 0)
            abort();
        break;
    }
    }
    free(text);
    return 0;
}
