/* capctl exports: the CSV field writer and the checks of --format, --pqc, --issuer and --name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/export.h"
#include "tests/unit/test.h"

/* The CSV form of the len bytes of v, in a static buffer. */
static const char *csv(const char *v, size_t len)
{
    static char out[256];
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    CHECK(f != NULL);
    CHECK_EQ(0, cap_ctl_export_csv_field(f, v, len));
    fclose(f);
    CHECK(n < sizeof out);
    memcpy(out, buf, n + 1);
    free(buf);
    return out;
}

#define CSV(s) csv((s), strlen(s))

static void fails(int rc, const struct cap_err *err, const char *want)
{
    CHECK_EQ(-1, rc);
    if (strstr(err->msg, want) == NULL)
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err->msg, want);
    CHECK(strstr(err->msg, want) != NULL);
}

static void name_ok(const char *in, const char *want)
{
    char out[254];
    struct cap_err err = {0};
    int rc = cap_ctl_export_name_suffix(in, out, sizeof out, &err);
    if (rc != 0)
        fprintf(stderr, "--name \"%s\": %s\n", in, err.msg);
    CHECK_EQ(0, rc);
    CHECK_STR(want, out);
}

static void name_bad(const char *in, const char *want)
{
    char out[254];
    memset(out, 'Z', sizeof out);
    struct cap_err err = {0};
    fails(cap_ctl_export_name_suffix(in, out, sizeof out, &err), &err, want);
    CHECK(out[0] == 'Z'); /* untouched */
}

int main(void)
{
    /* CSV: plain fields as they are; quoted when empty or holding , " CR LF; quotes doubled. */
    CHECK_STR("plain", CSV("plain"));
    CHECK_STR("with space", CSV("with space"));
    CHECK_STR("\"\"", CSV(""));
    CHECK_STR("\"a,b\"", CSV("a,b"));
    CHECK_STR("\"say \"\"hi\"\"\"", CSV("say \"hi\""));
    CHECK_STR("\"\"\"\"", CSV("\""));
    CHECK_STR("\"line\nbreak\"", CSV("line\nbreak"));
    CHECK_STR("\"cr\rhere\"", CSV("cr\rhere"));
    CHECK_STR("\"{a.example,b.example}\"", CSV("{a.example,b.example}"));
    CHECK_STR("\"{\"\"a b\"\",c}\"", CSV("{\"a b\",c}"));
    CHECK_STR("\x1b[31m\xe2\x80\xae", CSV("\x1b[31m\xe2\x80\xae")); /* bytes kept */
    CHECK_STR("ab", csv("abcd", 2));                                /* len, not strlen */
    /* A failing stream is reported. */
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        setvbuf(full, NULL, _IONBF, 0);
        CHECK_EQ(-1, cap_ctl_export_csv_field(full, "x", 1));
        CHECK_EQ(-1, cap_ctl_export_csv_field(full, "a,b", 3));
        fclose(full);
    }

    /* --format */
    enum cap_ctl_format f = CAP_CTL_FORMAT_TABLE;
    struct cap_err err = {0};
    unsigned all = (1u << CAP_CTL_FORMAT_TABLE) | (1u << CAP_CTL_FORMAT_JSON) |
                   (1u << CAP_CTL_FORMAT_CSV) | (1u << CAP_CTL_FORMAT_PEM);
    CHECK_EQ(0, cap_ctl_export_format("csv", all, &f, &err));
    CHECK_EQ(CAP_CTL_FORMAT_CSV, f);
    CHECK_EQ(0, cap_ctl_export_format("PEM", all, &f, &err));
    CHECK_EQ(CAP_CTL_FORMAT_PEM, f);
    fails(cap_ctl_export_format("xml", all, &f, &err), &err,
          "--format \"xml\": must be table, json, csv or pem");
    CHECK_EQ(CAP_CTL_FORMAT_PEM, f);
    err = (struct cap_err){0};
    fails(cap_ctl_export_format("pem", CAP_CTL_FINDINGS_FORMATS, &f, &err), &err,
          "--format \"pem\": must be table, json or csv");
    err = (struct cap_err){0};
    fails(cap_ctl_export_format("", CAP_CTL_FINDINGS_FORMATS, &f, &err), &err, "--format \"\"");

    /* --pqc */
    const char *cls = NULL;
    err = (struct cap_err){0};
    CHECK_EQ(0, cap_ctl_export_pqc_class("Transition", &cls, &err));
    CHECK_STR("transition", cls);
    CHECK_EQ(0, cap_ctl_export_pqc_class("unknown", &cls, &err));
    CHECK_STR("unknown", cls);
    fails(cap_ctl_export_pqc_class("hybrid", &cls, &err), &err,
          "--pqc \"hybrid\": must be vulnerable, transition, ready or unknown");
    CHECK_STR("unknown", cls);

    /* --issuer */
    err = (struct cap_err){0};
    CHECK_EQ(0, cap_ctl_export_issuer("Let's Encrypt", &err));
    CHECK_EQ(0, cap_ctl_export_issuer("O=D-Trust GmbH, C=DE", &err));
    CHECK_EQ(0, cap_ctl_export_issuer("Zertifizierungsstelle f\xc3\xbcr Tests", &err));
    fails(cap_ctl_export_issuer("", &err), &err, "--issuer \"\": must be 1-256 bytes");
    char longer[300];
    memset(longer, 'x', 257);
    longer[257] = '\0';
    err = (struct cap_err){0};
    fails(cap_ctl_export_issuer(longer, &err), &err, "must be 1-256 bytes");
    longer[256] = '\0';
    CHECK_EQ(0, cap_ctl_export_issuer(longer, &err));
    static const char *const bad_issuers[] = {"CA\x1b[2J", "tab\there",       "nl\n",
                                              "bad\xff",   "rtl\xe2\x80\xae", "c1\xc2\x9b"};
    for (size_t i = 0; i < sizeof bad_issuers / sizeof bad_issuers[0]; i++) {
        err = (struct cap_err){0};
        fails(cap_ctl_export_issuer(bad_issuers[i], &err), &err,
              "must be UTF-8 text without control characters");
    }

    /* --name */
    name_ok("example.com", "example.com");
    name_ok("Example.COM.", "example.com");
    name_ok("internal", "internal");
    name_ok("b\xc3\xbc"
            "cher.example",
            "xn--bcher-kva.example");
    name_bad("", "--name \"\": empty suffix");
    name_bad("..", "--name \"..\": empty suffix");
    name_bad("*.example.com", "give the suffix alone (\"example.com\")");
    name_bad(".example.com", "give the suffix alone (\"example.com\")");
    name_bad("10.0.0.1", "an IP address; --name matches DNS names");
    name_bad("2001:db8::1", "an IP address");
    name_bad("a..b", "empty label");
    name_bad("under_score.example", "invalid character '_'");
    name_bad("-a.example", "starts or ends with a hyphen");
    char huge[400];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    name_bad(huge, "longer than");
    /* No room for the result. */
    char tiny[4];
    err = (struct cap_err){0};
    fails(cap_ctl_export_name_suffix("example.com", tiny, sizeof tiny, &err), &err, "no room");
    TEST_DONE();
}
