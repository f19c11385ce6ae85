/* Unit tests of what capctl checks for the finding workflow (ctl/validate.h): reasons and
 * names, the --until forms (dates, times with zones, durations) and subject patterns, every
 * refusal with its exact message. */
#include <stdint.h>

#include "ctl/validate.h"
#include "tests/unit/test.h"

/* Runs a validator expected to fail; checks the message. */
#define CHECK_ERR(want, call)                                                                      \
    do {                                                                                           \
        struct cap_err e_ = {0};                                                                   \
        struct cap_err *err = &e_;                                                                 \
        CHECK_EQ(-1, (call));                                                                      \
        CHECK_EQ(CAP_E_INVALID, e_.code);                                                          \
        CHECK_STR((want), e_.msg);                                                                 \
    } while (0)

/* 2026-01-01T00:00:00Z */
#define NOW INT64_C(1767225600)

static int64_t until_ok(const char *text)
{
    struct cap_err e = {0};
    int64_t t = -1;
    if (cap_ctl_validate_until("--until", text, NOW, &t, &e) < 0) {
        fprintf(stderr, "unexpected error for \"%s\": %s\n", text, e.msg);
        return -1;
    }
    return t;
}

static void test_text(void)
{
    struct cap_err e = {0};
    CHECK_EQ(0, cap_ctl_validate_text("--reason", "known, renewal planned", 1024, &e));
    CHECK_EQ(0, cap_ctl_validate_text("--reason", " x ", 1024, &e));
    CHECK_EQ(0, cap_ctl_validate_text("--reason", "d\xc3\xa9j\xc3\xa0 vu", 1024, &e));
    char max[1025];
    memset(max, 'a', 1024);
    max[1024] = '\0';
    CHECK_EQ(0, cap_ctl_validate_text("--reason", max, 1024, &e));
    CHECK_EQ(0, e.code);

    CHECK_ERR("--reason \"\": must not be empty", cap_ctl_validate_text("--reason", "", 1024, err));
    CHECK_ERR("--reason \"   \": must not be empty",
              cap_ctl_validate_text("--reason", "   ", 1024, err));
    CHECK_ERR("--reason \"a\\x01b\": must not contain control characters",
              cap_ctl_validate_text("--reason",
                                    "a\x01"
                                    "b",
                                    1024, err));
    CHECK_ERR("--reason \"line\\x0anext\": must not contain control characters",
              cap_ctl_validate_text("--reason", "line\nnext", 1024, err));
    CHECK_ERR("--by \"\\x09\": must not contain control characters",
              cap_ctl_validate_text("--by", "\t", 128, err));
    char long_text[1026];
    memset(long_text, 'b', 1025);
    long_text[1025] = '\0';
    CHECK_ERR("--reason \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...\": "
              "longer than 1024 bytes",
              cap_ctl_validate_text("--reason", long_text, 1024, err));
}

static void test_until(void)
{
    /* Durations from now. */
    CHECK_EQ(NOW + 2, until_ok("2s"));
    CHECK_EQ(NOW + 15 * 60, until_ok("15m"));
    CHECK_EQ(NOW + 12 * 3600, until_ok("12h"));
    CHECK_EQ(NOW + 30 * 86400, until_ok("30d"));
    CHECK_EQ(NOW + 2 * 7 * 86400, until_ok("2w"));
    /* A duration is told apart from a date, so that the database counts it from its own now. */
    int64_t secs = 0;
    CHECK(cap_ctl_until_span("2s", &secs));
    CHECK_EQ(2, secs);
    CHECK(cap_ctl_until_span("3h", &secs));
    CHECK_EQ(3 * 3600, secs);
    CHECK(!cap_ctl_until_span("2026-01-02", &secs));
    CHECK(!cap_ctl_until_span("2026-03-01T13:00:00Z", &secs));
    /* Dates: midnight UTC; times in UTC unless a zone is given. */
    CHECK_EQ(NOW + 86400, until_ok("2026-01-02"));
    CHECK_EQ(INT64_C(1772323200), until_ok("2026-03-01"));
    CHECK_EQ(INT64_C(1772323200) + 13 * 3600 + 30 * 60, until_ok("2026-03-01T13:30"));
    CHECK_EQ(INT64_C(1772323200) + 13 * 3600 + 30 * 60 + 5, until_ok("2026-03-01 13:30:05"));
    CHECK_EQ(INT64_C(1772323200) + 13 * 3600, until_ok("2026-03-01T13:00:00Z"));
    CHECK_EQ(INT64_C(1772323200) + 12 * 3600, until_ok("2026-03-01T13:00:00+01:00"));
    CHECK_EQ(INT64_C(1772323200) + 18 * 3600 + 30 * 60, until_ok("2026-03-01t13:00-05:30"));
    CHECK_EQ(INT64_C(1772236800), until_ok("2026-02-28")); /* 2026 is not a leap year */
    CHECK_EQ(INT64_C(1835395200), until_ok("2028-02-29")); /* 2028 is */
    CHECK_EQ(INT64_C(253402214400), until_ok("9999-12-31"));

    const char *bad_form = "not a date or duration (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] "
                           "in UTC unless a zone is given, or 30d, 12h, 15m, 45s, 2w)";
    const char *bad[] = {"",
                         "tomorrow",
                         "2026-02-29",
                         "2026-13-01",
                         "2026-00-10",
                         "2026-04-31",
                         "2026-1-5",
                         "2026-03-01T24:00",
                         "2026-03-01T12:60",
                         "2026-03-01T12:00:60",
                         "2026-03-01T12",
                         "2026-03-01T12:00+0100",
                         "2026-03-01T12:00+01:60",
                         "2026-03-01T12:00Zx",
                         "2026-03-01 ",
                         "30",
                         "30x",
                         "-5d",
                         "1h30m",
                         "d",
                         "9999999999999d",
                         NULL};
    for (const char **b = bad; *b; b++) {
        char want[512];
        snprintf(want, sizeof want, "--until \"%s\": %s", *b, bad_form);
        int64_t t = 77;
        CHECK_ERR(want, cap_ctl_validate_until("--until", *b, NOW, &t, err));
        CHECK_EQ(77, t); /* written only on success */
    }
    int64_t t = 0;
    CHECK_ERR("--until \"2020-01-01\": is not in the future",
              cap_ctl_validate_until("--until", "2020-01-01", NOW, &t, err));
    CHECK_ERR("--until \"2026-01-01\": is not in the future",
              cap_ctl_validate_until("--until", "2026-01-01", NOW, &t, err));
    CHECK_ERR("--until \"2026-01-01T01:00+01:00\": is not in the future",
              cap_ctl_validate_until("--until", "2026-01-01T01:00+01:00", NOW, &t, err));
    CHECK_ERR("--until \"0s\": is not in the future",
              cap_ctl_validate_until("--until", "0s", NOW, &t, err));
    CHECK_ERR("--until \"999999999999w\": must end before the year 10000",
              cap_ctl_validate_until("--until", "999999999999w", NOW, &t, err));
    CHECK_ERR("--until \"9999-12-31T23:59:59-01:00\": must end before the year 10000",
              cap_ctl_validate_until("--until", "9999-12-31T23:59:59-01:00", NOW, &t, err));
}

static void test_pattern(void)
{
    struct cap_err e = {0};
    const char *good[] = {
        "*.lab.example.com", "name:*.example.com",     "cert:ab12*", "endpoint:42",
        "[2001:db8::1]:443", "web_1.example.com:8443", "*a*",        NULL};
    for (const char **g = good; *g; g++)
        CHECK_EQ(0, cap_ctl_validate_pattern("--subject", *g, &e));
    CHECK_EQ(0, e.code);

    const char *chars = "may hold only letters, digits, \".\", \"-\", \"_\", \":\", \"[\", \"]\" "
                        "and \"*\"";
    const char *bad[] = {"a b", "50%", "a?b", "a/b", "caf\xc3\xa9", "a\\b", "x\ty", NULL};
    for (const char **b = bad; *b; b++) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8], want[512];
        snprintf(want, sizeof want, "--subject \"%s\": %s",
                 cap_err_quote(q, sizeof q, *b, strlen(*b)), chars);
        CHECK_ERR(want, cap_ctl_validate_pattern("--subject", *b, err));
    }
    CHECK_ERR("--subject \"\": must not be empty", cap_ctl_validate_pattern("--subject", "", err));
    CHECK_ERR("--subject \"*\": matches every subject; leave the option out instead",
              cap_ctl_validate_pattern("--subject", "*", err));
    CHECK_ERR("--subject \"***\": matches every subject; leave the option out instead",
              cap_ctl_validate_pattern("--subject", "***", err));
    char long_pattern[258];
    memset(long_pattern, 'a', 257);
    long_pattern[257] = '\0';
    CHECK_ERR("--subject \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": "
              "longer than 256 bytes",
              cap_ctl_validate_pattern("--subject", long_pattern, err));
    long_pattern[256] = '\0';
    CHECK_EQ(0, cap_ctl_validate_pattern("--subject", long_pattern, &e));
}

int main(void)
{
    test_text();
    test_until();
    test_pattern();
    TEST_DONE();
}
