/* Unit tests of the lazy target iterator: order, counts, defaults, limits, validation. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/targets.h"

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void test_small(void)
{
    const char *cidrs[] = {"192.0.2.0/30", "2001:db8::/127"};
    const char *hosts[] = {"example.com.", "198.51.100.9"};
    int ports[] = {443, 636};
    struct cap_targets t;
    struct cap_err e;
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, cidrs, 2, hosts, 2, ports, 2, &e) == 0);
    CHECK(cap_targets_count(&t) == 4 * 2 + 2 * 2 + 2 * 2);
    struct cap_target x;
    char a[INET6_ADDRSTRLEN];
    const char *want[] = {
        "192.0.2.0:443",     "192.0.2.0:636",     "192.0.2.1:443",    "192.0.2.1:636",
        "192.0.2.2:443",     "192.0.2.2:636",     "192.0.2.3:443",    "192.0.2.3:636",
        "2001:db8:::443",    "2001:db8:::636",    "2001:db8::1:443",  "2001:db8::1:636",
        "H example.com:443", "H example.com:636", "198.51.100.9:443", "198.51.100.9:636"};
    size_t n = 0;
    while (cap_targets_next(&t, &x)) {
        char got[300];
        if (x.kind == CAP_TARGET_HOST) {
            snprintf(got, sizeof got, "H %s:%d", x.host, x.port);
        } else {
            inet_ntop(x.family, x.addr, a, sizeof a);
            snprintf(got, sizeof got, "%s:%d", a, x.port);
            if (n >= 14)
                CHECK(x.host && strcmp(x.host, "198.51.100.9") == 0);
            else
                CHECK(x.host == NULL);
        }
        CHECK(n < 16 && strcmp(got, want[n]) == 0);
        if (n < 16 && strcmp(got, want[n]) != 0)
            fprintf(stderr, "target %zu: got %s want %s\n", n, got, want[n]);
        n++;
    }
    CHECK(n == 16);
    CHECK(!cap_targets_next(&t, &x));
    cap_targets_cleanup(&t);
}

static void test_defaults_and_limits(void)
{
    const char *cidrs[] = {"10.0.0.0/16"};
    struct cap_targets t;
    struct cap_err e;
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, cidrs, 1, NULL, 0, NULL, 0, &e) == 0);
    CHECK(cap_targets_count(&t) == 65536 * 2);
    cap_err_clear(&e);
    CHECK(cap_targets_check_limit(&t, 131072, &e) == 0);
    CHECK(cap_targets_check_limit(&t, 100000, &e) == -1);
    CHECK(e.code == CAP_E_LIMIT);
    CHECK(strstr(e.msg, "131072") != NULL && strstr(e.msg, "100000") != NULL);
    /* iterate the whole /16 without materialising it, checking the last one */
    struct cap_target x;
    uint64_t n = 0;
    struct cap_target last;
    memset(&last, 0, sizeof last);
    while (cap_targets_next(&t, &x)) {
        last = x;
        n++;
    }
    CHECK(n == 131072);
    CHECK(last.addr[0] == 10 && last.addr[1] == 0 && last.addr[2] == 255 && last.addr[3] == 255);
    CHECK(last.port == 8443);
    cap_targets_cleanup(&t);

    const char *big[] = {"2001:db8::/32"};
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, big, 1, NULL, 0, NULL, 0, &e) == 0);
    CHECK(cap_targets_count(&t) == UINT64_MAX);
    CHECK(cap_targets_check_limit(&t, 1048576, &e) == -1);
    CHECK(strstr(e.msg, "1048576") != NULL);
    cap_targets_cleanup(&t);

    const char *all[] = {"0.0.0.0/0"};
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, all, 1, NULL, 0, (int[]){443}, 1, &e) == 0);
    CHECK(cap_targets_count(&t) == 4294967296ull);
    /* skipping the whole range ends the iteration at once */
    CHECK(cap_targets_next(&t, &x));
    cap_targets_skip_cidr(&t);
    CHECK(!cap_targets_next(&t, &x));
    cap_targets_cleanup(&t);

    /* the top of the address space does not wrap around */
    const char *top[] = {"255.255.255.254/31"};
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, top, 1, NULL, 0, (int[]){1}, 1, &e) == 0);
    n = 0;
    while (cap_targets_next(&t, &x))
        n++;
    CHECK(n == 2);
    cap_targets_cleanup(&t);
}

static void test_invalid(void)
{
    struct cap_targets t;
    struct cap_err e;
    const char *badc[] = {"10.0.0.1/8"};
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, badc, 1, NULL, 0, NULL, 0, &e) == -1);
    CHECK(strstr(e.msg, "10.0.0.1/8") != NULL);
    const char *badh[] = {"bad host"};
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, NULL, 0, badh, 1, NULL, 0, &e) == -1);
    CHECK(strstr(e.msg, "bad host") != NULL);
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, NULL, 0, (const char *[]){"a.com"}, 1, (int[]){0}, 1, &e) == -1);
    CHECK(strstr(e.msg, "port 0") != NULL);
    CHECK(cap_targets_valid_hostname("a-b.example_1.com"));
    CHECK(cap_targets_valid_hostname("localhost"));
    CHECK(!cap_targets_valid_hostname(""));
    CHECK(!cap_targets_valid_hostname("a..b"));
    CHECK(!cap_targets_valid_hostname(".a"));
    CHECK(!cap_targets_valid_hostname("1.2.3.4"));
    CHECK(!cap_targets_valid_hostname("a/b"));
    char longlabel[80];
    memset(longlabel, 'a', 64);
    longlabel[64] = '\0';
    CHECK(!cap_targets_valid_hostname(longlabel));
}

/* One target as text, for comparing sequences. */
static void fmt_target(const struct cap_target *x, char *out, size_t cap)
{
    char a[INET6_ADDRSTRLEN] = "";
    if (x->kind == CAP_TARGET_ADDR)
        inet_ntop(x->family, x->addr, a, sizeof a);
    snprintf(out, cap, "%s|%s|%d|%zu", x->host ? x->host : "", a, x->port, x->item);
}

/* Slices [first, end) of the sequence, each walked by an iterator positioned at first (as a
 * shard's worker does), put end to end give the whole sequence, target for target; slices cut
 * inside an address's ports, inside a block, across blocks, and into the host names. */
static void test_ranges(void)
{
    const char *cidrs[] = {"10.0.0.0/23", "2001:db8::fffe/127", "192.0.2.7/32"};
    const char *hosts[] = {"a.example", "198.51.100.9", "b.example"};
    int ports[] = {443, 8443, 636};
    struct cap_targets t;
    struct cap_err e;
    cap_err_clear(&e);
    CHECK(cap_targets_init(&t, cidrs, 3, hosts, 3, ports, 3, &e) == 0);
    uint64_t n = cap_targets_count(&t);
    CHECK(n == (512 + 2 + 1) * 3 + 3 * 3);
    char(*whole)[80] = calloc(n + 1, sizeof *whole);
    struct cap_target x;
    size_t k = 0;
    while (k <= n && cap_targets_next(&t, &x))
        fmt_target(&x, whole[k++], sizeof whole[0]);
    CHECK(k == n);
    CHECK(cap_targets_pos(&t) == n);
    static const uint64_t sizes[] = {1, 2, 3, 4, 5, 7, 256, 767, 768, 769, 1545, 1546, 1553, 1554, 5000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        uint64_t size = sizes[si];
        size_t got = 0;
        for (uint64_t first = 0; first < n; first += size) {
            uint64_t end = first + size < n ? first + size : n;
            cap_targets_set_range(&t, first, end);
            CHECK(cap_targets_pos(&t) == first);
            char one[80];
            while (cap_targets_next(&t, &x)) {
                fmt_target(&x, one, sizeof one);
                if (got >= k || strcmp(one, whole[got]) != 0) {
                    fprintf(stderr, "slice size %llu at %llu: target %zu is %s, want %s\n",
                            (unsigned long long)size, (unsigned long long)first, got, one,
                            got < k ? whole[got] : "nothing");
                    failures++;
                    break;
                }
                got++;
            }
            CHECK(cap_targets_pos(&t) == end);
            size_t lo, hi;
            cap_targets_host_range(&t, first, end, &lo, &hi);
            uint64_t hosts_at = (512 + 2 + 1) * 3;
            size_t want_lo = end <= hosts_at ? 3 : first <= hosts_at ? 0 : (first - hosts_at) / 3;
            size_t want_hi = end <= hosts_at ? 3 : (end - hosts_at + 2) / 3;
            if (end <= hosts_at)
                CHECK(lo == hi);
            else
                CHECK(lo == want_lo && hi == want_hi);
        }
        CHECK(got == k);
    }
    /* Skipping a block inside a slice moves the position to the block's end (or the next
     * block's first target). */
    cap_targets_set_range(&t, 4, n);
    CHECK(cap_targets_next(&t, &x));
    cap_targets_skip_cidr(&t);
    CHECK(cap_targets_pos(&t) == 1536);
    CHECK(cap_targets_next(&t, &x));
    char one[80];
    fmt_target(&x, one, sizeof one);
    CHECK(strcmp(one, whole[1536]) == 0);
    free(whole);
    cap_targets_cleanup(&t);
}

int main(void)
{
    test_small();
    test_ranges();
    test_defaults_and_limits();
    test_invalid();
    if (failures) {
        fprintf(stderr, "test_targets: %d checks failed\n", failures);
        return 1;
    }
    printf("test_targets: ok\n");
    return 0;
}
