/* Unit tests of DNS server entries (common/dnsaddr.c): the entries accepted with their address,
 * port and canonical text, the ones refused with the message that names them, and the
 * canonical form's buffer limits. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "common/dnsaddr.h"
#include "tests/unit/test.h"

/* Parses s, expects success, and checks the family, the port and the canonical text. */
static void check_good(const char *s, int family, int port, const char *canon)
{
    struct cap_dns_server d;
    struct cap_err err = {0};
    if (cap_dns_server_parse(s, &d, &err) != 0) {
        fprintf(stderr, "server \"%s\" refused: %s\n", s, err.msg);
        exit(1);
    }
    CHECK_EQ(0, err.code);
    CHECK_EQ(family, d.family);
    CHECK_EQ(port, d.port);
    char text[CAP_DNS_SERVER_LEN_MAX + 1];
    CHECK_EQ(0, cap_dns_server_format(&d, text, sizeof text));
    CHECK_STR(canon, text);
    /* The canonical text reads back as the same server. */
    struct cap_dns_server again;
    CHECK_EQ(0, cap_dns_server_parse(text, &again, &err));
    CHECK_EQ(d.family, again.family);
    CHECK(memcmp(d.addr, again.addr, sizeof d.addr) == 0);
    CHECK_EQ(d.port, again.port);
    CHECK_EQ(d.port_given, again.port_given);
}

static void check_bad(const char *s, const char *want_msg)
{
    struct cap_dns_server d;
    memset(&d, 0xa5, sizeof d);
    struct cap_err err = {0};
    CHECK_EQ(-1, cap_dns_server_parse(s, &d, &err));
    CHECK_EQ(CAP_E_INVALID, err.code);
    CHECK_STR(want_msg, err.msg);
    /* Not written on failure. */
    const uint8_t *p = (const uint8_t *)&d;
    for (size_t i = 0; i < sizeof d; i++)
        CHECK_EQ(0xa5, p[i]);
}

static void test_good(void)
{
    check_good("127.0.0.1", AF_INET, 53, "127.0.0.1");
    check_good("10.0.0.53:5353", AF_INET, 5353, "10.0.0.53:5353");
    check_good("192.0.2.1:1", AF_INET, 1, "192.0.2.1:1");
    check_good("192.0.2.1:65535", AF_INET, 65535, "192.0.2.1:65535");
    check_good("192.0.2.1:53", AF_INET, 53, "192.0.2.1:53");
    check_good("192.0.2.1:00053", AF_INET, 53, "192.0.2.1:53");
    check_good("::1", AF_INET6, 53, "::1");
    check_good("2001:db8::53", AF_INET6, 53, "2001:db8::53");
    check_good("2001:DB8:0:0::35", AF_INET6, 53, "2001:db8::35");
    check_good("[::1]:53", AF_INET6, 53, "[::1]:53");
    check_good("[FD00:0::53]:53", AF_INET6, 53, "[fd00::53]:53");
    check_good("[::ffff:192.0.2.1]:5300", AF_INET6, 5300, "[::ffff:192.0.2.1]:5300");
    check_good("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", AF_INET6, 65535,
               "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    /* Two colons or more without brackets: one IPv6 address, never an address and a port. */
    check_good("2001:db8::1:53", AF_INET6, 53, "2001:db8::1:53");

    struct cap_dns_server d;
    struct cap_err err = {0};
    CHECK_EQ(0, cap_dns_server_parse("10.0.0.54:5353", &d, &err));
    CHECK(d.port_given);
    uint8_t want[4] = {10, 0, 0, 54};
    CHECK(memcmp(d.addr, want, 4) == 0);
    CHECK_EQ(0, cap_dns_server_parse("10.0.0.54", &d, &err));
    CHECK(!d.port_given);
}

static void test_bad(void)
{
    const char *name = "not an IP address (a server is given by address, not by name)";
    const char *port = "port must be a number from 1 to 65535";
    char want[256];
#define BAD(s, why)                                                                                \
    do {                                                                                           \
        snprintf(want, sizeof want, "dns server \"%s\": %s", s, why);                              \
        check_bad(s, want);                                                                        \
    } while (0)
    BAD("", "empty; expected IP, IP:PORT or [IPv6]:PORT");
    BAD("localhost", name);
    BAD("dns.example:53", name);
    BAD("1.2.3", name);
    BAD("256.1.1.1", name);
    BAD("010.0.0.1", name);
    BAD(" 10.0.0.1", name);
    BAD("10.0.0.1,10.0.0.2", name);
    BAD("10.0.0.1%eth0", name);
    BAD("10.0.0.1:0", port);
    BAD("10.0.0.1:65536", port);
    BAD("10.0.0.1:99999", port);
    BAD("10.0.0.1:", port);
    BAD("10.0.0.1:53 ", port);
    BAD("10.0.0.1:+53", port);
    BAD("10.0.0.1:-53", port);
    BAD("10.0.0.1: 53", port);
    BAD("10.0.0.1:0x35", port);
    BAD("10.0.0.1:000053", port);
    BAD("[::1]:", port);
    BAD("[::1]:0", port);
    BAD("[::1]:65536", port);
    BAD("[::1", "missing \"]\" after the IPv6 address");
    BAD("[::1]53", "expected \":PORT\" after \"]\"");
    /* Brackets only set a port apart: without one they are refused. */
    BAD("[::1]", "expected \":PORT\" after \"]\"");
    BAD("[2001:db8::53]", "expected \":PORT\" after \"]\"");
    BAD("[192.0.2.1]:53", "an IPv4 address in brackets (brackets are for IPv6 only)");
    BAD("[]:53", "not an IPv6 address (no host names, no zone index)");
    BAD("[localhost]:53", "not an IPv6 address (no host names, no zone index)");
    BAD("fe80::1%eth0", "not an IPv6 address (no zone index such as \"%eth0\")");
    BAD("[fe80::1%eth0]:53", "not an IPv6 address (no zone index such as \"%eth0\")");
    BAD("0.0.0.0", "the unspecified address is not a server");
    BAD("0.0.0.0:53", "the unspecified address is not a server");
    BAD("::", "the unspecified address is not a server");
    BAD("[::]:53", "the unspecified address is not a server");
    BAD("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535x", port);
#undef BAD
    check_bad("10.0.0.1\n", "dns server \"10.0.0.1\\x0a\": not an IP address (a server is given "
                            "by address, not by name)");

    /* 64 bytes pass the length check (then fail as an address); 65 do not. */
    char longer[80];
    memset(longer, '1', sizeof longer);
    longer[64] = '\0';
    struct cap_dns_server d;
    struct cap_err err = {0};
    CHECK_EQ(-1, cap_dns_server_parse(longer, &d, &err));
    CHECK(strstr(err.msg, "not an IP address") != NULL);
    longer[64] = '1';
    longer[65] = '\0';
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_dns_server_parse(longer, &d, &err));
    CHECK(strstr(err.msg, "longer than 64 bytes; expected IP, IP:PORT or [IPv6]:PORT") != NULL);
    /* The quoted value is cut to 64 bytes with "...". */
    CHECK(strstr(err.msg, "1111...\"") != NULL);

    cap_err_clear(&err);
    CHECK_EQ(-1, cap_dns_server_parse(NULL, &d, &err));
    CHECK_STR("dns server: no value given", err.msg);
    /* The first error is kept. */
    CHECK_EQ(-1, cap_dns_server_parse("x", &d, &err));
    CHECK_STR("dns server: no value given", err.msg);
    /* err may be NULL. */
    CHECK_EQ(-1, cap_dns_server_parse("x", &d, NULL));
}

static void test_format(void)
{
    struct cap_dns_server d;
    struct cap_err err = {0};
    CHECK_EQ(0, cap_dns_server_parse("[fd00::53]:5353", &d, &err));
    char out[32];
    /* "[fd00::53]:5353" is 15 bytes: 16 hold it, 15 do not. */
    CHECK_EQ(0, cap_dns_server_format(&d, out, 16));
    CHECK_STR("[fd00::53]:5353", out);
    memset(out, 'x', sizeof out);
    CHECK_EQ(-1, cap_dns_server_format(&d, out, 15));
    CHECK_STR("", out);
    CHECK_EQ(-1, cap_dns_server_format(&d, out, 0));

    /* Not a server: refused rather than written. */
    struct cap_dns_server bad = d;
    bad.family = 0;
    CHECK_EQ(-1, cap_dns_server_format(&bad, out, sizeof out));
    bad = d;
    bad.port = 0;
    CHECK_EQ(-1, cap_dns_server_format(&bad, out, sizeof out));
    bad.port = 65536;
    CHECK_EQ(-1, cap_dns_server_format(&bad, out, sizeof out));
    CHECK_EQ(-1, cap_dns_server_format(NULL, out, sizeof out));
}

int main(void)
{
    test_good();
    test_bad();
    test_format();
    TEST_DONE();
}
