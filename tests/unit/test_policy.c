/* Unit tests of the outbound network policy: CIDR parsing, always-refused blocks,
 * network.deny, loopback, IPv4-mapped IPv6 and the save-time wholly-refused check. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/policy.h"

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static enum cap_policy_verdict check(const struct cap_policy *p, const char *addr, char *why,
                                     size_t n)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
            abort();
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
            abort();
    }
    return cap_policy_check_addr(p, (struct sockaddr *)&ss, why, n);
}

static void test_parse(void)
{
    struct cap_cidr c;
    struct cap_err e;
    char t[CAP_CIDR_TEXT_MAX];
    cap_err_clear(&e);
    CHECK(cap_policy_parse_cidr("10.0.0.0/8", &c, &e) == 0);
    CHECK(c.family == AF_INET && c.prefix == 8);
    CHECK(strcmp(cap_policy_cidr_str(&c, t, sizeof t), "10.0.0.0/8") == 0);
    CHECK(cap_policy_parse_cidr("192.0.2.7", &c, &e) == 0 && c.prefix == 32);
    CHECK(cap_policy_parse_cidr("2001:db8::/32", &c, &e) == 0 && c.family == AF_INET6);
    CHECK(cap_policy_parse_cidr("::ffff:10.1.0.0/112", &c, &e) == 0);
    CHECK(c.family == AF_INET && c.prefix == 16);
    CHECK(strcmp(cap_policy_cidr_str(&c, t, sizeof t), "10.1.0.0/16") == 0);
    const char *bad[] = {
        "",          "10.0.0.0/33", "10.0.0.1/8", "10.0.0.0/",   "10.0.0.0/08", "10.0.0.0/8x",
        "a.b.c.d",   "1.2.3",       "::/129",     "10.0.0.0//8", "10.0.0.0/-1", " 10.0.0.0/8",
        "fe80::1/10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cap_err_clear(&e);
        CHECK(cap_policy_parse_cidr(bad[i], &c, &e) == -1);
        CHECK(e.code == CAP_E_INVALID);
    }
    cap_err_clear(&e);
    CHECK(cap_policy_parse_cidr("10.0.0.1/8", &c, &e) == -1);
    CHECK(strstr(e.msg, "10.0.0.1/8") != NULL);
}

static void test_always_refused(void)
{
    struct cap_policy p;
    struct cap_config cfg;
    struct cap_err e;
    memset(&cfg, 0, sizeof cfg);
    cfg.network_allow_loopback = true;
    cap_err_clear(&e);
    CHECK(cap_policy_init(&p, &cfg, &e) == 0);
    char why[CAP_POLICY_REASON_MAX];
    const char *refused[] = {"169.254.0.1",
                             "169.254.169.254",
                             "169.254.255.255",
                             "fe80::1",
                             "febf:ffff::1",
                             "fd00:ec2::254",
                             "100.100.100.200",
                             "192.0.0.192",
                             "0.0.0.0",
                             "0.255.255.255",
                             "::",
                             "224.0.0.1",
                             "239.255.255.255",
                             "ff02::1",
                             "255.255.255.255",
                             "::ffff:169.254.169.254",
                             "::ffff:0.0.0.1",
                             "::ffff:224.1.1.1"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        why[0] = '\0';
        CHECK(check(&p, refused[i], why, sizeof why) == CAP_POLICY_REFUSED);
        CHECK(why[0] != '\0');
    }
    CHECK(check(&p, "169.254.169.254", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strcmp(why, "link-local (169.254.0.0/16)") == 0);
    CHECK(check(&p, "::ffff:169.254.1.1", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strcmp(why, "link-local (169.254.0.0/16)") == 0);
    const char *allowed[] = {"169.253.255.255",
                             "169.255.0.0",
                             "fec0::1",
                             "1.1.1.1",
                             "127.0.0.1",
                             "::1",
                             "::ffff:127.0.0.1",
                             "223.255.255.255",
                             "240.0.0.1",
                             "100.100.100.201",
                             "fd00:ec2::253",
                             "192.0.0.191",
                             "::2",
                             "2001:db8::1",
                             "1.0.0.0"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        int v = check(&p, allowed[i], why, sizeof why);
        if (v != CAP_POLICY_ALLOWED)
            fprintf(stderr, "unexpectedly refused %s: %s\n", allowed[i], why);
        CHECK(v == CAP_POLICY_ALLOWED);
    }
    /* IPv4 addresses carried for gateways: NAT64 and 6to4 */
    CHECK(check(&p, "64:ff9b::a9fe:a9fe", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "link-local") && strstr(why, "NAT64"));
    CHECK(check(&p, "2002:a9fe:a9fe::1", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "6to4") != NULL);
    CHECK(check(&p, "64:ff9b:1::a9fe:a9fe", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "link-local") && strstr(why, "NAT64"));
    CHECK(check(&p, "::a9fe:a9fe", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "link-local") && strstr(why, "IPv4-compatible"));
    CHECK(check(&p, "::808:808", why, sizeof why) == CAP_POLICY_ALLOWED);
    CHECK(check(&p, "64:ff9b:1::808:808", why, sizeof why) == CAP_POLICY_ALLOWED);
    /* cloud platform and credential endpoints */
    CHECK(check(&p, "168.63.129.16", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "Azure") != NULL);
    CHECK(check(&p, "fd20:ce::254", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "GCP") != NULL);
    CHECK(check(&p, "fd00:ec2::23", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "EKS") != NULL);
    CHECK(check(&p, "64:ff9b::808:808", why, sizeof why) == CAP_POLICY_ALLOWED);
    CHECK(check(&p, "2002:808:808::1", why, sizeof why) == CAP_POLICY_ALLOWED);
    /* a NULL reason buffer is fine */
    CHECK(check(&p, "169.254.1.1", NULL, 0) == CAP_POLICY_REFUSED);
    cap_policy_cleanup(&p);
}

static void test_deny_and_loopback(void)
{
    struct cap_policy p;
    struct cap_config cfg;
    struct cap_err e;
    memset(&cfg, 0, sizeof cfg);
    char *deny[] = {"10.0.0.0/8", "2001:db8::/32", "::ffff:192.168.0.0/112", NULL};
    cfg.network_deny = deny;
    cfg.network_deny_n = 3;
    cfg.network_allow_loopback = false;
    cap_err_clear(&e);
    CHECK(cap_policy_init(&p, &cfg, &e) == 0);
    char why[CAP_POLICY_REASON_MAX];
    CHECK(check(&p, "10.2.3.4", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strcmp(why, "network.deny 10.0.0.0/8") == 0);
    CHECK(check(&p, "::ffff:10.2.3.4", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(check(&p, "2001:db8:1::5", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(check(&p, "192.168.3.3", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strcmp(why, "network.deny 192.168.0.0/16") == 0);
    CHECK(check(&p, "11.0.0.1", why, sizeof why) == CAP_POLICY_ALLOWED);
    CHECK(check(&p, "127.0.0.1", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "loopback") != NULL && strstr(why, "allow_loopback") != NULL);
    CHECK(check(&p, "127.200.1.1", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(check(&p, "::1", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(check(&p, "::ffff:127.0.0.1", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(check(&p, "64:ff9b::a02:304", why, sizeof why) == CAP_POLICY_REFUSED);
    CHECK(strstr(why, "network.deny 10.0.0.0/8") != NULL);
    CHECK(check(&p, "64:ff9b::7f00:1", why, sizeof why) == CAP_POLICY_REFUSED);
    cap_policy_cleanup(&p);

    char *bad[] = {"10.0.0.0/8", "nonsense", NULL};
    cfg.network_deny = bad;
    cfg.network_deny_n = 2;
    cap_err_clear(&e);
    memset(&p, 0, sizeof p);
    CHECK(cap_policy_init(&p, &cfg, &e) == -1);
    CHECK(strstr(e.msg, "network.deny") != NULL && strstr(e.msg, "nonsense") != NULL);
    CHECK(p.deny == NULL);
}

static void test_wholly_refused(void)
{
    char why[256];
    CHECK(cap_policy_cidr_wholly_refused("169.254.0.0/16", why, sizeof why) == 1);
    CHECK(strstr(why, "169.254.0.0/16") != NULL && strstr(why, "link-local") != NULL);
    CHECK(cap_policy_cidr_wholly_refused("169.254.169.254/32", why, sizeof why) == 1);
    CHECK(cap_policy_cidr_wholly_refused("169.254.169.254", why, sizeof why) == 1);
    CHECK(cap_policy_cidr_wholly_refused("fd00:ec2::254/128", why, sizeof why) == 1);
    CHECK(cap_policy_cidr_wholly_refused("::ffff:169.254.0.0/112", why, sizeof why) == 1);
    CHECK(cap_policy_cidr_wholly_refused("169.0.0.0/8", why, sizeof why) == 0);
    CHECK(cap_policy_cidr_wholly_refused("127.0.0.0/8", why, sizeof why) == 0);
    CHECK(cap_policy_cidr_wholly_refused("0.0.0.0/0", why, sizeof why) == 0);
    CHECK(cap_policy_cidr_wholly_refused("10.0.0.0/8", why, sizeof why) == 0);
    CHECK(cap_policy_cidr_wholly_refused("garbage", why, sizeof why) == -1);
    CHECK(strstr(why, "garbage") != NULL);

    struct cap_policy p;
    struct cap_config cfg;
    struct cap_err e;
    memset(&cfg, 0, sizeof cfg);
    char *deny[] = {"10.0.0.0/8", NULL};
    cfg.network_deny = deny;
    cfg.network_deny_n = 1;
    cap_err_clear(&e);
    CHECK(cap_policy_init(&p, &cfg, &e) == 0);
    struct cap_cidr c;
    CHECK(cap_policy_parse_cidr("10.1.0.0/16", &c, &e) == 0);
    CHECK(cap_policy_cidr_refused_by(&p, &c, why, sizeof why) == 1);
    CHECK(strstr(why, "network.deny 10.0.0.0/8") != NULL);
    CHECK(cap_policy_parse_cidr("127.0.1.0/28", &c, &e) == 0);
    CHECK(cap_policy_cidr_refused_by(&p, &c, why, sizeof why) == 1);
    CHECK(cap_policy_parse_cidr("8.0.0.0/7", &c, &e) == 0);
    CHECK(cap_policy_cidr_refused_by(&p, &c, why, sizeof why) == 0);
    cap_policy_cleanup(&p);
}

int main(void)
{
    test_parse();
    test_always_refused();
    test_deny_and_loopback();
    test_wholly_refused();
    if (failures) {
        fprintf(stderr, "test_policy: %d checks failed\n", failures);
        return 1;
    }
    printf("test_policy: ok\n");
    return 0;
}
