/* Unit tests of capctl's input validation (ctl/validate.h, and the source field normalisers
 * of common/source/ that capctl runs): every accepted form, every refusal with its exact
 * message (the option, the value, and why). */
#include <stdlib.h>

#include "common/source/ct_log.h"
#include "common/source/network_scan.h"
#include "ctl/validate.h"
#include "tests/unit/test.h"

/* Runs the normaliser of network_scan's field `name` as capctl does; the number into *out. */
static int field_int(const char *name, const char *opt, const char *text, int *out,
                     struct cap_err *err)
{
    const struct cap_source_field *f = cap_source_field_find(&cap_network_scan_type, name);
    char buf[CAP_SOURCE_VALUE_MAX];
    if (f->norm(f, opt, text, buf, sizeof buf, err) < 0)
        return -1;
    *out = (int)strtol(buf, NULL, 10);
    return 0;
}

static int norm_connect_rate(const char *opt, const char *text, int *out, struct cap_err *err)
{
    return field_int("connect_rate", opt, text, out, err);
}

static int norm_timeout(const char *opt, const char *text, int *out, struct cap_err *err)
{
    return field_int("timeout_ms", opt, text, out, err);
}

/* Runs a validator expected to fail; checks the message. */
#define CHECK_ERR(want, call)                                                                      \
    do {                                                                                           \
        struct cap_err e_ = {0};                                                                   \
        struct cap_err *err = &e_;                                                                 \
        CHECK_EQ(-1, (call));                                                                      \
        CHECK_EQ(CAP_E_INVALID, e_.code);                                                          \
        CHECK_STR((want), e_.msg);                                                                 \
    } while (0)

static struct cap_err scratch;

static const char *cidr_ok(const char *in)
{
    static char out[CAP_VALUE_CIDR_MAX];
    cap_err_clear(&scratch);
    if (cap_value_cidr("--cidr", in, out, sizeof out, &scratch) < 0) {
        fprintf(stderr, "unexpected error: %s\n", scratch.msg);
        return "(error)";
    }
    return out;
}

static void test_cidr(void)
{
    char out[CAP_VALUE_CIDR_MAX];
    CHECK_STR("10.0.0.0/8", cidr_ok("10.0.0.0/8"));
    CHECK_STR("192.0.2.7/32", cidr_ok("192.0.2.7"));
    CHECK_STR("2001:db8::/32", cidr_ok("2001:db8::/32"));
    CHECK_STR("2001:db8::1/128", cidr_ok("2001:DB8:0::1"));
    CHECK_STR("0.0.0.0/0", cidr_ok("0.0.0.0/0"));
    /* Overlapping a refused block is fine: the run skips the refused part. */
    CHECK_STR("169.0.0.0/8", cidr_ok("169.0.0.0/8"));
    CHECK_STR("fe80::/9", cidr_ok("fe80::/9"));
    CHECK_STR("127.0.0.0/8", cidr_ok("127.0.0.0/8"));

    CHECK_ERR("--cidr \"10.0.0.300/8\": not an IPv4 or IPv6 address or range",
              cap_value_cidr("--cidr", "10.0.0.300/8", out, sizeof out, err));
    CHECK_ERR("--cidr \"example.com\": not an IPv4 or IPv6 address or range",
              cap_value_cidr("--cidr", "example.com", out, sizeof out, err));
    CHECK_ERR("--cidr \"\": not an IPv4 or IPv6 address or range",
              cap_value_cidr("--cidr", "", out, sizeof out, err));
    CHECK_ERR("--cidr \"/8\": not an IPv4 or IPv6 address or range",
              cap_value_cidr("--cidr", "/8", out, sizeof out, err));
    CHECK_ERR("--cidr \"10.0.0.0/33\": prefix length must be 0-32 for IPv4",
              cap_value_cidr("--cidr", "10.0.0.0/33", out, sizeof out, err));
    CHECK_ERR("--cidr \"10.0.0.0/\": prefix length must be 0-32 for IPv4",
              cap_value_cidr("--cidr", "10.0.0.0/", out, sizeof out, err));
    CHECK_ERR("--cidr \"10.0.0.0/-1\": prefix length must be 0-32 for IPv4",
              cap_value_cidr("--cidr", "10.0.0.0/-1", out, sizeof out, err));
    CHECK_ERR("--cidr \"10.0.0.0/8x\": prefix length must be 0-32 for IPv4",
              cap_value_cidr("--cidr", "10.0.0.0/8x", out, sizeof out, err));
    CHECK_ERR("--cidr \"::/129\": prefix length must be 0-128 for IPv6",
              cap_value_cidr("--cidr", "::/129", out, sizeof out, err));
    CHECK_ERR("--cidr \"10.0.0.1/8\": host bits are set; the network is 10.0.0.0/8",
              cap_value_cidr("--cidr", "10.0.0.1/8", out, sizeof out, err));
    CHECK_ERR("--cidr \"2001:db8::1/32\": host bits are set; the network is 2001:db8::/32",
              cap_value_cidr("--cidr", "2001:db8::1/32", out, sizeof out, err));
    CHECK_ERR("--cidr \"192.168.1.130/25\": host bits are set; the network is 192.168.1.128/25",
              cap_value_cidr("--cidr", "192.168.1.130/25", out, sizeof out, err));

    /* Wholly inside an always-refused block: the policy's reason. */
    CHECK_ERR("--cidr \"169.254.169.254/32\": lies wholly inside link-local (169.254.0.0/16), "
              "which the network policy always refuses",
              cap_value_cidr("--cidr", "169.254.169.254/32", out, sizeof out, err));
    CHECK_ERR("--cidr \"169.254.0.0/16\": lies wholly inside link-local (169.254.0.0/16), "
              "which the network policy always refuses",
              cap_value_cidr("--cidr", "169.254.0.0/16", out, sizeof out, err));
    CHECK_ERR("--cidr \"fe80::/64\": lies wholly inside IPv6 link-local (fe80::/10), which the "
              "network policy always refuses",
              cap_value_cidr("--cidr", "fe80::/64", out, sizeof out, err));
    CHECK_ERR("--cidr \"0.0.0.0/8\": lies wholly inside \"this network\" (0.0.0.0/8), which the "
              "network policy always refuses",
              cap_value_cidr("--cidr", "0.0.0.0/8", out, sizeof out, err));
    CHECK_ERR("--cidr \"239.1.0.0/16\": lies wholly inside multicast (224.0.0.0/4), which the "
              "network policy always refuses",
              cap_value_cidr("--cidr", "239.1.0.0/16", out, sizeof out, err));
    CHECK_ERR("--cidr \"ff02::1\": lies wholly inside IPv6 multicast (ff00::/8), which the "
              "network policy always refuses",
              cap_value_cidr("--cidr", "ff02::1", out, sizeof out, err));
    CHECK_ERR("--cidr \"255.255.255.255\": lies wholly inside broadcast (255.255.255.255), which "
              "the network policy always refuses",
              cap_value_cidr("--cidr", "255.255.255.255", out, sizeof out, err));
    CHECK_ERR("--cidr \"fd00:ec2::254/128\": lies wholly inside cloud metadata (AWS "
              "fd00:ec2::254), which the network policy always refuses",
              cap_value_cidr("--cidr", "fd00:ec2::254/128", out, sizeof out, err));
    CHECK_ERR("--cidr \"100.100.100.200\": lies wholly inside cloud metadata (Alibaba "
              "100.100.100.200), which the network policy always refuses",
              cap_value_cidr("--cidr", "100.100.100.200", out, sizeof out, err));
    CHECK_ERR("--cidr \"192.0.0.192/32\": lies wholly inside cloud metadata (Oracle "
              "192.0.0.192), which the network policy always refuses",
              cap_value_cidr("--cidr", "192.0.0.192/32", out, sizeof out, err));
    /* IPv4-mapped IPv6 reaches the same hosts as the IPv4 range. */
    CHECK_ERR("--cidr \"::ffff:169.254.169.254/128\": lies wholly inside link-local "
              "(169.254.0.0/16), which the network policy always refuses",
              cap_value_cidr("--cidr", "::ffff:169.254.169.254/128", out, sizeof out, err));
    /* Neighbours of the metadata addresses are fine. */
    CHECK_STR("100.100.100.0/24", cidr_ok("100.100.100.0/24"));
    CHECK_STR("192.0.0.193/32", cidr_ok("192.0.0.193"));

    /* Values are quoted with escapes and cut. */
    CHECK_ERR("--cidr \"a\\\"b\": not an IPv4 or IPv6 address or range",
              cap_value_cidr("--cidr", "a\"b", out, sizeof out, err));
}

static void test_port_and_numbers(void)
{
    int p = 0;
    struct cap_err e = {0};
    CHECK_EQ(0, cap_value_port("--port", "443", &p, &e));
    CHECK_EQ(443, p);
    CHECK_EQ(0, cap_value_port("--port", "65535", &p, &e));
    CHECK_EQ(65535, p);
    CHECK_ERR("--port \"0\": must be 1-65535", cap_value_port("--port", "0", &p, err));
    CHECK_ERR("--port \"70000\": must be 1-65535", cap_value_port("--port", "70000", &p, err));
    CHECK_ERR("--port \"https\": must be 1-65535", cap_value_port("--port", "https", &p, err));
    CHECK_ERR("--port \"44 3\": must be 1-65535", cap_value_port("--port", "44 3", &p, err));
    CHECK_ERR("--port \"-1\": must be 1-65535", cap_value_port("--port", "-1", &p, err));

    int64_t v = 0;
    CHECK_EQ(0, cap_ctl_validate_int("--concurrency", "100000", 1, 100000, &v, &e));
    CHECK_EQ(100000, v);
    CHECK_ERR("--concurrency \"0\": must be an integer 1-100000",
              cap_ctl_validate_int("--concurrency", "0", 1, 100000, &v, err));
    CHECK_ERR("--concurrency \"100001\": must be an integer 1-100000",
              cap_ctl_validate_int("--concurrency", "100001", 1, 100000, &v, err));
    CHECK_ERR("--concurrency \"8x\": must be an integer 1-100000",
              cap_ctl_validate_int("--concurrency", "8x", 1, 100000, &v, err));
    CHECK_ERR("--concurrency \"99999999999999999999\": must be an integer 1-100000",
              cap_ctl_validate_int("--concurrency", "99999999999999999999", 1, 100000, &v, err));

    int rate = 0;
    CHECK_EQ(0, norm_connect_rate("--connect-rate", "1", &rate, &e));
    CHECK_EQ(1, rate);
    CHECK_EQ(0, norm_connect_rate("--connect-rate", "1000000", &rate, &e));
    CHECK_EQ(1000000, rate);
    CHECK_ERR("--connect-rate \"0\": must be 1-1000000 connects per second",
              norm_connect_rate("--connect-rate", "0", &rate, err));
    CHECK_ERR("--connect-rate \"1000001\": must be 1-1000000 connects per second",
              norm_connect_rate("--connect-rate", "1000001", &rate, err));
    CHECK_ERR("--connect-rate \"-5\": must be 1-1000000 connects per second",
              norm_connect_rate("--connect-rate", "-5", &rate, err));
    CHECK_ERR("--connect-rate \"2k\": must be 1-1000000 connects per second",
              norm_connect_rate("--connect-rate", "2k", &rate, err));
    CHECK_ERR("--connect-rate \"\": must be 1-1000000 connects per second",
              norm_connect_rate("--connect-rate", "", &rate, err));
    CHECK_ERR("--connect-rate \"99999999999999999999\": must be 1-1000000 connects per second",
              norm_connect_rate("--connect-rate", "99999999999999999999", &rate, err));
    CHECK_EQ(1000000, rate); /* untouched by the refusals */

    int ms = 0;
    CHECK_EQ(0, norm_timeout("--timeout", "5s", &ms, &e));
    CHECK_EQ(5000, ms);
    CHECK_EQ(0, norm_timeout("--timeout", "100ms", &ms, &e));
    CHECK_EQ(100, ms);
    CHECK_EQ(0, norm_timeout("--timeout", "10m", &ms, &e));
    CHECK_EQ(600000, ms);
    CHECK_ERR("--timeout \"99ms\": must be between 100ms and 10m",
              norm_timeout("--timeout", "99ms", &ms, err));
    CHECK_ERR("--timeout \"11m\": must be between 100ms and 10m",
              norm_timeout("--timeout", "11m", &ms, err));
    CHECK_ERR("--timeout \"5 s\": not a duration (e.g. 500ms, 5s, 1m)",
              norm_timeout("--timeout", "5 s", &ms, err));
    CHECK_ERR("--timeout \"fast\": not a duration (e.g. 500ms, 5s, 1m)",
              norm_timeout("--timeout", "fast", &ms, err));
}

static void test_schedule(void)
{
    struct cap_err e = {0};
    CHECK_EQ(0, cap_ctl_validate_schedule("--schedule", "daily 03:00 UTC", &e));
    CHECK_EQ(0, cap_ctl_validate_schedule("--schedule", "manual", &e));
    CHECK_EQ(0, cap_ctl_validate_schedule("--schedule", "*/15 * * * *", &e));
    /* The scheduler's own message, after the option name. */
    CHECK_ERR("--schedule: schedule \"daily 25:00\": hour 25 out of range 0-23",
              cap_ctl_validate_schedule("--schedule", "daily 25:00", err));
    struct cap_err e2 = {0};
    CHECK_EQ(-1, cap_ctl_validate_schedule("--schedule", "sometimes", &e2));
    CHECK(strncmp(e2.msg, "--schedule: schedule \"sometimes\"", 32) == 0);
}

static void test_hostname(void)
{
    char out[CAP_VALUE_HOSTNAME_MAX + 1];
    struct cap_err e = {0};
    CHECK_EQ(0, cap_value_hostname("--host", "WWW.Example.COM.", out, sizeof out, &e));
    CHECK_STR("www.example.com", out);
    CHECK_EQ(0, cap_value_hostname("--host", "localhost", out, sizeof out, &e));
    CHECK_EQ(0, cap_value_hostname("--host", "xn--bcher-kva.example", out, sizeof out, &e));
    CHECK_EQ(0, cap_value_hostname("--host", "1password.com", out, sizeof out, &e));
    CHECK_ERR("--host \"a..b\": empty label",
              cap_value_hostname("--host", "a..b", out, sizeof out, err));
    CHECK_ERR("--host \".a\": empty label",
              cap_value_hostname("--host", ".a", out, sizeof out, err));
    CHECK_ERR("--host \"\": empty name", cap_value_hostname("--host", "", out, sizeof out, err));
    CHECK_ERR("--host \"a_b.example\": invalid character '_' (RFC 1123 allows letters, digits and "
              "hyphens)",
              cap_value_hostname("--host", "a_b.example", out, sizeof out, err));
    CHECK_ERR("--host \"-a.example\": label \"-a\" starts or ends with a hyphen",
              cap_value_hostname("--host", "-a.example", out, sizeof out, err));
    CHECK_ERR("--host \"a.b-\": label \"b-\" starts or ends with a hyphen",
              cap_value_hostname("--host", "a.b-", out, sizeof out, err));
    CHECK_ERR("--host \"10.0.0.1\": an IP address, not a host name; list addresses with --cidr",
              cap_value_hostname("--host", "10.0.0.1", out, sizeof out, err));
    CHECK_ERR("--host \"::1\": an IP address, not a host name; list addresses with --cidr",
              cap_value_hostname("--host", "::1", out, sizeof out, err));
    CHECK_ERR("--host \"1.2.3\": the last label is all digits, which no host name has",
              cap_value_hostname("--host", "1.2.3", out, sizeof out, err));
    /* U-labels are stored in their A-label form (case folded first) */
    CHECK_EQ(0, cap_value_hostname("--host",
                                   "B\xc3\xbc"
                                   "cher.Example.",
                                   out, sizeof out, &e));
    CHECK_STR("xn--bcher-kva.example", out);
    CHECK_EQ(0, cap_value_hostname("--host", "M\xc3\x9cNCHEN.de", out, sizeof out, &e));
    CHECK_STR("xn--mnchen-3ya.de", out);
    /* U+3002 (ideographic full stop) separates labels and may end the name */
    CHECK_EQ(0, cap_value_hostname("--host",
                                   "m\xc3\xbcnchen\xe3\x80\x82"
                                   "de\xe3\x80\x82",
                                   out, sizeof out, &e));
    CHECK_STR("xn--mnchen-3ya.de", out);
    CHECK_ERR("--host \"b\\xffcher.example\": not a valid internationalised name (string "
              "encoding error)",
              cap_value_hostname("--host",
                                 "b\xff"
                                 "cher.example",
                                 out, sizeof out, err));
    char label[80];
    memset(label, 'a', 64);
    memcpy(label + 64, ".example", 9);
    CHECK_ERR(
        "--host \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": label "
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is longer than "
        "63 characters",
        cap_value_hostname("--host", label, out, sizeof out, err));
    label[63] = '\0';
    CHECK_EQ(0, cap_value_hostname("--host", label, out, sizeof out, &e));
    char longname[300];
    for (int i = 0; i < 254; i++)
        longname[i] = (i % 2) ? '.' : 'a';
    longname[254] = 'a';
    longname[255] = '\0';
    struct cap_err e3 = {0};
    CHECK_EQ(-1, cap_value_hostname("--host", longname, out, sizeof out, &e3));
    CHECK(strstr(e3.msg, "\": longer than 253 characters") != NULL);
    longname[253] = '\0'; /* "a.a. ... a" of 253 bytes */
    CHECK_EQ(0, cap_value_hostname("--host", longname, out, sizeof out, &e));
}

static void test_domain(void)
{
    char out[CAP_VALUE_HOSTNAME_MAX + 1];
    struct cap_err e = {0};
    CHECK_EQ(0, cap_value_domain("--domain", "Example.COM.", out, sizeof out, &e));
    CHECK_STR("example.com", out);
    CHECK_EQ(0, cap_value_domain("--domain", "xn--mnchen-3ya.de", out, sizeof out, &e));
    CHECK_STR("xn--mnchen-3ya.de", out);
    CHECK_ERR("--domain \"*.example.com\": give the suffix alone (\"example.com\"); it already "
              "matches the apex and every subdomain",
              cap_value_domain("--domain", "*.example.com", out, sizeof out, err));
    CHECK_ERR("--domain \".example.com\": give the suffix alone (\"example.com\"); it already "
              "matches the apex and every subdomain",
              cap_value_domain("--domain", ".example.com", out, sizeof out, err));
    CHECK_EQ(0, cap_value_domain("--domain", "m\xc3\xbcnchen.de", out, sizeof out, &e));
    CHECK_STR("xn--mnchen-3ya.de", out);
    CHECK_ERR("--domain \"com\": a single label would match a whole top-level domain; give a "
              "domain such as example.com",
              cap_value_domain("--domain", "com", out, sizeof out, err));
    CHECK_ERR("--domain \"exa mple.com\": invalid character ' ' (RFC 1123 allows letters, digits "
              "and hyphens)",
              cap_value_domain("--domain", "exa mple.com", out, sizeof out, err));
}

static void test_log_url(void)
{
    struct cap_err e = {0};
    CHECK_EQ(0, cap_value_url("--log", "https://ct.example/2026h1/", &e));
    CHECK_EQ(0, cap_value_url("--log", "http://127.0.0.1:8080/log/", &e));
    CHECK_EQ(0, cap_value_url("--log", "HTTPS://[2001:db8::1]:443/", &e));
    CHECK_EQ(0, cap_value_url("--log", "https://ct.example", &e));
    CHECK_ERR("--log \"ftp://ct.example/\": only http:// and https:// URLs are allowed",
              cap_value_url("--log", "ftp://ct.example/", err));
    CHECK_ERR("--log \"ct.example/log\": only http:// and https:// URLs are allowed",
              cap_value_url("--log", "ct.example/log", err));
    CHECK_ERR("--log \"file:///etc/passwd\": only http:// and https:// URLs are allowed",
              cap_value_url("--log", "file:///etc/passwd", err));
    CHECK_ERR("--log \"https:///log\": no host", cap_value_url("--log", "https:///log", err));
    CHECK_ERR("--log \"https://ct.example:0/\": port must be 1-65535",
              cap_value_url("--log", "https://ct.example:0/", err));
    CHECK_ERR("--log \"https://user:pw@ct.example/\": credentials in the URL are not allowed "
              "(they would be logged)",
              cap_value_url("--log", "https://user:pw@ct.example/", err));
    CHECK_ERR("--log \"https://ct example/\": spaces, control and non-ASCII bytes must be "
              "percent-encoded",
              cap_value_url("--log", "https://ct example/", err));
    CHECK_ERR("--log \"http://169.254.169.254/latest/\": the host lies inside link-local "
              "(169.254.0.0/16), which the network policy always refuses",
              cap_value_url("--log", "http://169.254.169.254/latest/", err));
    CHECK_ERR("--log \"https://ct_log.example/\": invalid character '_' (RFC 1123 allows letters, "
              "digits and hyphens)",
              cap_value_url("--log", "https://ct_log.example/", err));
}

static void test_issuer_and_name(void)
{
    struct cap_err e = {0};
    CHECK_EQ(0,
             cap_value_text("--expected-issuer", "O=Let's Encrypt, C=US", CAP_CT_ISSUER_MAX, &e));
    CHECK_ERR("--expected-issuer \"\": must be 1-256 bytes",
              cap_value_text("--expected-issuer", "", CAP_CT_ISSUER_MAX, err));
    CHECK_ERR("--expected-issuer \"a\\x0ab\": control characters are not allowed",
              cap_value_text("--expected-issuer", "a\nb", CAP_CT_ISSUER_MAX, err));

    CHECK_EQ(0, cap_ctl_validate_name("lab-1.prod_eu", &e));
    CHECK_ERR("source name \"a b\": use 1-128 letters, digits, \".\", \"_\" or \"-\", starting "
              "with a letter or digit",
              cap_ctl_validate_name("a b", err));
    CHECK_ERR("source name \"-x\": use 1-128 letters, digits, \".\", \"_\" or \"-\", starting "
              "with a letter or digit",
              cap_ctl_validate_name("-x", err));
    CHECK_ERR("source name \"\": use 1-128 letters, digits, \".\", \"_\" or \"-\", starting "
              "with a letter or digit",
              cap_ctl_validate_name("", err));
}

static void test_fingerprint_and_endpoint(void)
{
    char fp[65];
    struct cap_err e = {0};
    const char *hex = "ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789";
    CHECK_EQ(0, cap_ctl_validate_fingerprint(hex, fp, sizeof fp, &e));
    CHECK_STR("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", fp);
    char colons[100];
    size_t o = 0;
    for (int i = 0; i < 32; i++) {
        if (i)
            colons[o++] = ':';
        colons[o++] = hex[2 * i];
        colons[o++] = hex[2 * i + 1];
    }
    colons[o] = '\0';
    CHECK_EQ(0, cap_ctl_validate_fingerprint(colons, fp, sizeof fp, &e));
    CHECK_STR("abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", fp);
    CHECK_ERR("fingerprint \"abc\": expected a SHA-256 fingerprint, 64 hex digits",
              cap_ctl_validate_fingerprint("abc", fp, sizeof fp, err));
    char bad[65];
    memcpy(bad, hex, 65);
    bad[10] = 'g';
    CHECK_ERR("fingerprint \"ABCDEF0123g56789abcdef0123456789ABCDEF0123456789abcdef0123456789\": "
              "expected a SHA-256 fingerprint, 64 hex digits",
              cap_ctl_validate_fingerprint(bad, fp, sizeof fp, err));

    char host[CAP_VALUE_HOSTNAME_MAX + 1];
    int port = 0;
    CHECK_EQ(0, cap_ctl_validate_host_port("Web.Example:8443", host, sizeof host, &port, &e));
    CHECK_STR("web.example", host);
    CHECK_EQ(8443, port);
    CHECK_EQ(0, cap_ctl_validate_host_port("[2001:db8::1]:443", host, sizeof host, &port, &e));
    CHECK_STR("2001:db8::1", host);
    CHECK_EQ(443, port);
    CHECK_EQ(0, cap_ctl_validate_host_port("127.0.0.1:443", host, sizeof host, &port, &e));
    CHECK_STR("127.0.0.1", host);
    CHECK_ERR("endpoint \"web.example\": expected HOST:PORT or [IPv6]:PORT",
              cap_ctl_validate_host_port("web.example", host, sizeof host, &port, err));
    CHECK_ERR("endpoint \"2001:db8::1:443\": expected HOST:PORT or [IPv6]:PORT",
              cap_ctl_validate_host_port("2001:db8::1:443", host, sizeof host, &port, err));
    CHECK_ERR("endpoint \"web.example:99999\": port must be 1-65535",
              cap_ctl_validate_host_port("web.example:99999", host, sizeof host, &port, err));
}

static void test_log_key(void)
{
    /* A P-256 public key (SubjectPublicKeyInfo, PEM). */
    static const char pem[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmWoLY4tVjmfNhMtOTHmkG+P0gzmQ\n"
                              "7zNbPsgzdg1CuLDBEMOjJ+aWX5ahFLegXh/rhNsvNUCSNg4mvKd8cI2t2A==\n"
                              "-----END PUBLIC KEY-----\n";
    struct cap_err e = {0};
    char *text = cap_value_pem_pubkey("--log-key", "log.pem", pem, strlen(pem), &e);
    if (!text)
        fprintf(stderr, "log key: %s\n", e.msg);
    CHECK(text != NULL);
    CHECK_STR(pem, text);
    free(text);
    static const char cert_like[] =
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    struct cap_err e2 = {0};
    CHECK(cap_value_pem_pubkey("--log-key", "cert.pem", cert_like, strlen(cert_like), &e2) == NULL);
    CHECK_STR("--log-key \"cert.pem\": not a PEM public key (expected \"-----BEGIN PUBLIC "
              "KEY-----\")",
              e2.msg);
    struct cap_err e3 = {0};
    CHECK(cap_value_pem_pubkey("--log-key", "empty", "", 0, &e3) == NULL);
    CHECK_EQ(CAP_E_INVALID, e3.code);
}

static void test_starttls(void)
{
    struct cap_err e = {0};
    char out[CAP_STARTTLS_OVERRIDE_TEXT_MAX];
    CHECK_EQ(0, cap_starttls_normalise("--starttls", "2525:smtp", out, sizeof out, &e));
    CHECK_STR("2525:smtp", out);
    CHECK_EQ(0, cap_starttls_normalise("--starttls", "00025:NONE", out, sizeof out, &e));
    CHECK_STR("25:none", out);
    CHECK_EQ(0, cap_starttls_normalise("--starttls", "65535:postgres", out, sizeof out, &e));
    CHECK_STR("65535:postgres", out);
    CHECK_EQ(0, e.code);
    CHECK_ERR("--starttls \"2525\": expected PORT:PROTOCOL, e.g. 2525:smtp",
              cap_starttls_normalise("--starttls", "2525", out, sizeof out, err));
    CHECK_ERR("--starttls \"0:smtp\": port must be 1-65535",
              cap_starttls_normalise("--starttls", "0:smtp", out, sizeof out, err));
    CHECK_ERR("--starttls \"65536:imap\": port must be 1-65535",
              cap_starttls_normalise("--starttls", "65536:imap", out, sizeof out, err));
    CHECK_ERR("--starttls \"000025:smtp\": port must be 1-65535",
              cap_starttls_normalise("--starttls", "000025:smtp", out, sizeof out, err));
    CHECK_ERR("--add-starttls \":smtp\": port must be 1-65535",
              cap_starttls_normalise("--add-starttls", ":smtp", out, sizeof out, err));
    CHECK_ERR("--starttls \"25:ftp\": protocol must be smtp, imap, pop3, ldap, postgres or none",
              cap_starttls_normalise("--starttls", "25:ftp", out, sizeof out, err));
    CHECK_ERR("--starttls \"25:smtp \": protocol must be smtp, imap, pop3, ldap, postgres or "
              "none",
              cap_starttls_normalise("--starttls", "25:smtp ", out, sizeof out, err));
    CHECK_ERR("--starttls \"25:\": protocol must be smtp, imap, pop3, ldap, postgres or none",
              cap_starttls_normalise("--starttls", "25:", out, sizeof out, err));
    /* Nothing written on failure. */
    memset(out, 'x', sizeof out);
    CHECK_ERR("--starttls \"-1:smtp\": port must be 1-65535",
              cap_starttls_normalise("--starttls", "-1:smtp", out, sizeof out, err));
    CHECK_EQ('x', out[0]);
}

int main(void)
{
    test_cidr();
    test_port_and_numbers();
    test_schedule();
    test_hostname();
    test_domain();
    test_log_url();
    test_issuer_and_name();
    test_fingerprint_and_endpoint();
    test_log_key();
    test_starttls();
    TEST_DONE();
}
