/* Unit tests of the resolver's pure parts: argument checks (a bad server entry is refused
 * before anything is asked; the entries themselves are tested in test_dnsaddr.c), and the names
 * that need no query (IP literals, empty and over-long names, duplicates of them). Nothing here
 * sends a packet. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "worker/scan/resolve.h"
#include "tests/unit/test.h"

static void test_arguments(void)
{
    const char *names[] = {"192.0.2.1"};
    struct cap_resolved *out = (struct cap_resolved *)&out; /* must stay untouched */
    struct cap_resolved *const before = out;
    struct cap_err err = {0};
    const char *bad_servers[] = {"10.0.0.1", "10.0.0.2:99999"};
    CHECK_EQ(-1, cap_resolve_names(names, 1, bad_servers, 2, 1000, &out, &err));
    CHECK_STR("dns server \"10.0.0.2:99999\": port must be a number from 1 to 65535", err.msg);
    CHECK(out == before);
    /* Brackets without a port, as the config loader refuses them. */
    const char *bracketed[] = {"[2001:db8::53]"};
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_resolve_names(names, 1, bracketed, 1, 1000, &out, &err));
    CHECK_STR("dns server \"[2001:db8::53]\": expected \":PORT\" after \"]\"", err.msg);
    CHECK(out == before);

    cap_err_clear(&err);
    CHECK_EQ(-1, cap_resolve_names(names, 1, NULL, 0, 0, &out, &err));
    CHECK_STR("dns timeout 0 ms: expected 1 to 3600000", err.msg);
    CHECK(out == before);

    const char *many[CAP_RESOLVE_SERVERS_MAX + 1];
    for (size_t i = 0; i <= CAP_RESOLVE_SERVERS_MAX; i++)
        many[i] = "10.0.0.1";
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_resolve_names(names, 1, many, CAP_RESOLVE_SERVERS_MAX + 1, 1000, &out, &err));
    CHECK_EQ(CAP_E_LIMIT, err.code);
    CHECK_STR("dns servers: 17 given, at most 16", err.msg);
    CHECK(out == before);

    /* No names: nothing to free. */
    cap_err_clear(&err);
    CHECK_EQ(0, cap_resolve_names(NULL, 0, NULL, 0, 1000, &out, &err));
    CHECK(out == NULL);
}

/* Names answered without a query: a server that does not exist is never asked. */
static void test_no_query(void)
{
    char longer[CAP_HOSTNAME_MAX + 2];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    const char *names[] = {"192.0.2.1", "2001:db8::1", "", NULL, longer, "192.0.2.1", "::1"};
    size_t n = sizeof names / sizeof names[0];
    const char *servers[] = {"192.0.2.53:1"};
    struct cap_resolved *out = NULL;
    struct cap_err err = {0};
    CHECK_EQ(0, cap_resolve_names(names, n, servers, 1, 1000, &out, &err));
    CHECK(out != NULL);

    uint8_t a4[4], a6[16];
    inet_pton(AF_INET, "192.0.2.1", a4);
    CHECK_STR("192.0.2.1", out[0].name);
    CHECK_EQ(0, out[0].status);
    CHECK_STR("", out[0].error);
    CHECK_EQ(1, out[0].n);
    CHECK_EQ(AF_INET, out[0].addrs[0].family);
    CHECK(memcmp(out[0].addrs[0].addr, a4, 4) == 0);

    inet_pton(AF_INET6, "2001:db8::1", a6);
    CHECK_EQ(0, out[1].status);
    CHECK_EQ(1, out[1].n);
    CHECK_EQ(AF_INET6, out[1].addrs[0].family);
    CHECK(memcmp(out[1].addrs[0].addr, a6, 16) == 0);

    CHECK_EQ(-1, out[2].status);
    CHECK_STR("empty name", out[2].error);
    CHECK_EQ(0, out[2].n);
    CHECK_EQ(-1, out[3].status);
    CHECK_STR("empty name", out[3].error);

    CHECK_EQ(-1, out[4].status);
    CHECK_STR("name longer than 253 bytes", out[4].error);
    CHECK_EQ(CAP_HOSTNAME_MAX, strlen(out[4].name));

    CHECK_EQ(0, out[5].status);
    CHECK(memcmp(out[5].addrs[0].addr, a4, 4) == 0);
    CHECK_EQ(0, out[6].status);
    CHECK_EQ(AF_INET6, out[6].addrs[0].family);
    for (size_t i = 0; i < n; i++)
        CHECK(out[i].elapsed_ms >= 0 && out[i].elapsed_ms < 1000);
    free(out);
}

int main(void)
{
    test_arguments();
    test_no_query();
    TEST_DONE();
}
