/* The worker's HTTP client against a loopback server in this process: body caps (declared and
 * streamed), the decompression ratio cap, redirects and the network policy on each, POST,
 * Retry-After, timeouts, the in-flight bound, cancel; and the CT body caps by endpoint. */
#include "worker/ct/ct_http.h"
#include "worker/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static int srv_fd = -1;
static int srv_port;
static atomic_int srv_stop;
static pthread_t srv_thread;

/* ---- a gzip body of n zero bytes: one literal, then matches of 258 (fixed Huffman) ---- */

struct bits {
    uint8_t *buf;
    size_t len, cap;
    uint32_t acc;
    int nacc;
};

static void bits_put(struct bits *b, uint32_t v, int n)
{
    b->acc |= v << b->nacc;
    b->nacc += n;
    while (b->nacc >= 8) {
        if (b->len >= b->cap)
            abort(); /* gzip_zeros sized the buffer */
        b->buf[b->len++] = (uint8_t)b->acc;
        b->acc >>= 8;
        b->nacc -= 8;
    }
}

/* A Huffman code goes out most significant bit first. */
static void bits_code(struct bits *b, uint32_t code, int n)
{
    for (int i = n - 1; i >= 0; i--)
        bits_put(b, (code >> i) & 1, 1);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t *gzip_zeros(size_t n, size_t *out_len)
{
    struct bits b = {.cap = n / 16 + 64};
    b.buf = calloc(1, b.cap + 8);
    CHECK(b.buf != NULL);
    static const uint8_t hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    memcpy(b.buf, hdr, sizeof hdr);
    b.len = sizeof hdr;
    bits_put(&b, 1, 1); /* final block */
    bits_put(&b, 1, 2); /* fixed Huffman codes */
    size_t left = n;
    bits_code(&b, 0x30, 8); /* literal 0 */
    left--;
    while (left >= 258) {
        bits_code(&b, 0xc5, 8); /* length 258 */
        bits_code(&b, 0, 5);    /* distance 1 */
        left -= 258;
    }
    for (; left > 0; left--)
        bits_code(&b, 0x30, 8);
    bits_code(&b, 0, 7); /* end of block */
    if (b.nacc > 0)
        bits_put(&b, 0, 8 - b.nacc);
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    CHECK(b.len + 8 <= b.cap + 8);
    put_le32(b.buf + b.len, ~crc);
    put_le32(b.buf + b.len + 4, (uint32_t)n);
    *out_len = b.len + 8;
    return b.buf;
}

static uint8_t *gz_small, *gz_bomb;
static size_t gz_small_len, gz_bomb_len;
#define GZ_SMALL_N (300u * 1024)
#define GZ_BOMB_N (8u << 20)

/* ---- the server: one thread per connection, Connection: close ---- */

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, const char *status, const char *headers, const void *body, size_t len)
{
    char h[512];
    int n =
        snprintf(h, sizeof h, "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                 status, len, headers ? headers : "");
    send_all(fd, h, (size_t)n);
    send_all(fd, body, len);
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[8192];
    size_t got = 0;
    char *end = NULL;
    while (!end && got < sizeof req - 1) {
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            goto out;
        got += (size_t)r;
        req[got] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (!end)
        goto out;
    char method[8] = "", path[256] = "";
    if (sscanf(req, "%7s %255s", method, path) != 2)
        goto out;
    const char *cl = strstr(req, "Content-Length: ");
    size_t body_len = cl ? strtoul(cl + 16, NULL, 10) : 0;
    while ((size_t)(req + got - (end + 4)) < body_len && got < sizeof req - 1) {
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            goto out;
        got += (size_t)r;
        req[got] = '\0';
    }
    char loc[256];
    if (strcmp(path, "/small") == 0) {
        respond(fd, "200 OK", NULL, "hello", 5);
    } else if (strcmp(path, "/big") == 0) {
        static char big[100000];
        memset(big, 'a', sizeof big);
        respond(fd, "200 OK", NULL, big, sizeof big);
    } else if (strcmp(path, "/bigstream") == 0) {
        /* No declared length: the cap is found while reading. */
        const char *h = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
        send_all(fd, h, strlen(h));
        char chunk[4096];
        memset(chunk, 'b', sizeof chunk);
        for (int i = 0; i < 25; i++)
            send_all(fd, chunk, sizeof chunk);
    } else if (strcmp(path, "/gzip") == 0) {
        respond(fd, "200 OK", "Content-Encoding: gzip\r\n", gz_small, gz_small_len);
    } else if (strcmp(path, "/bomb") == 0) {
        respond(fd, "200 OK", "Content-Encoding: gzip\r\n", gz_bomb, gz_bomb_len);
    } else if (strcmp(path, "/redirect") == 0) {
        snprintf(loc, sizeof loc, "Location: http://127.0.0.1:%d/small\r\n", srv_port);
        respond(fd, "302 Found", loc, "", 0);
    } else if (strcmp(path, "/loop") == 0) {
        respond(fd, "302 Found", "Location: /loop\r\n", "", 0);
    } else if (strcmp(path, "/metadata") == 0) {
        respond(fd, "302 Found", "Location: http://169.254.169.254/latest/\r\n", "", 0);
    } else if (strcmp(path, "/busy") == 0) {
        respond(fd, "429 Too Many Requests", "Retry-After: 7\r\n", "{}", 2);
    } else if (strcmp(path, "/echo") == 0 && strcmp(method, "POST") == 0) {
        const char *ct = strstr(req, "Content-Type: ");
        char out[600];
        int n = snprintf(out, sizeof out, "%.*s|", ct ? (int)strcspn(ct + 14, "\r") : 0,
                         ct ? ct + 14 : "");
        if (n < 0 || (size_t)n + body_len > sizeof out)
            goto out;
        memcpy(out + n, end + 4, body_len);
        n += (int)body_len;
        respond(fd, "200 OK", NULL, out, (size_t)n);
    } else if (strcmp(path, "/hdr") == 0) {
        /* Echoes the Idempotency-Key header (extra_headers). */
        const char *k = strstr(req, "Idempotency-Key: ");
        int kl = k ? (int)strcspn(k + 17, "\r") : 0;
        respond(fd, "200 OK", NULL, k ? k + 17 : "", (size_t)kl);
    } else if (strcmp(path, "/slow") == 0) {
        for (int i = 0; i < 100 && !atomic_load(&srv_stop); i++)
            usleep(50 * 1000);
        respond(fd, "200 OK", NULL, "late", 4);
    } else {
        respond(fd, "404 Not Found", NULL, "", 0);
    }
out:
    close(fd);
    return NULL;
}

static void *server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&srv_stop)) {
        struct pollfd p = {.fd = srv_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else
            close(c);
    }
    return NULL;
}

static void server_start(void)
{
    gz_small = gzip_zeros(GZ_SMALL_N, &gz_small_len);
    gz_bomb = gzip_zeros(GZ_BOMB_N, &gz_bomb_len);
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    CHECK(srv_fd >= 0);
    CHECK(bind(srv_fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(srv_fd, 64) == 0);
    CHECK(getsockname(srv_fd, (struct sockaddr *)&a, &al) == 0);
    srv_port = ntohs(a.sin_port);
    CHECK(pthread_create(&srv_thread, NULL, server_main, NULL) == 0);
}

static void server_stop(void)
{
    atomic_store(&srv_stop, 1);
    pthread_join(srv_thread, NULL);
    close(srv_fd);
    usleep(200 * 1000); /* the connection threads see srv_stop and end */
    free(gz_small);
    free(gz_bomb);
}

/* ---- the client ---- */

static struct cap_policy open_policy = {.allow_loopback = true};
static struct cap_policy closed_policy = {.allow_loopback = false};

static struct cap_http *client(const struct cap_policy *p, long total_ms, int inflight)
{
    struct cap_http_limits lim = {.connect_ms = 2000,
                                  .stall_s = 5,
                                  .total_ms = total_ms,
                                  .max_inflight = inflight,
                                  .user_agent = "test"};
    struct cap_err err = {0};
    struct cap_http *h = cap_http_new(p, &lim, &err);
    CHECK(h != NULL);
    return h;
}

static void req_init(struct cap_http_req *r, const char *path, size_t body_max)
{
    memset(r, 0, sizeof *r);
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d%s", srv_port, path);
    r->body_max = body_max;
}

/* Runs r alone to completion; checks that it, and only it, completes once. */
static void run(struct cap_http *h, struct cap_http_req *r)
{
    struct cap_err err = {0};
    CHECK_EQ(0, cap_http_start(h, r, &err));
    CHECK_EQ(1, cap_http_inflight(h));
    struct cap_http_req *d = NULL;
    for (int i = 0; i < 100 && !d; i++)
        d = cap_http_wait(h, 100);
    CHECK(d == r);
    CHECK(r->result != CAP_HTTP_PENDING);
    CHECK_EQ(0, cap_http_inflight(h));
    CHECK(cap_http_wait(h, 10) == NULL);
}

static void check_has(const char *s, const char *part)
{
    if (!strstr(s, part)) {
        fprintf(stderr, "want \"%s\" in \"%s\"\n", part, s);
        exit(1);
    }
}

static void test_get_and_caps(void)
{
    struct cap_http *h = client(&open_policy, 5000, 4);
    struct cap_http_req r;

    req_init(&r, "/small", 5);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(200, r.status);
    CHECK_STR("hello", r.body);
    CHECK_EQ(5, r.len);
    CHECK_EQ(-1, r.retry_after_s);
    CHECK_STR("", r.error);
    cap_http_req_reset(&r);
    CHECK(r.body == NULL);

    /* One byte under the declared length: refused before the body, naming URL and cap. */
    req_init(&r, "/big", 99999);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_TOO_BIG, r.result);
    CHECK(r.body == NULL && r.len == 0);
    check_has(r.error, "response larger than 99999 bytes");
    check_has(r.error, "/big\"");
    req_init(&r, "/big", 100000);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(100000, r.len);
    cap_http_req_reset(&r);

    /* No declared length: found while reading, and never a truncated answer. */
    req_init(&r, "/bigstream", 50000);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_TOO_BIG, r.result);
    CHECK(r.body == NULL);
    check_has(r.error, "response larger than 50000 bytes, the cap for \"http://127.0.0.1:");

    /* A 404 is an answer. */
    req_init(&r, "/nothing", 100);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(404, r.status);
    cap_http_req_reset(&r);

    req_init(&r, "/busy", 100);
    run(h, &r);
    CHECK_EQ(429, r.status);
    CHECK_EQ(7, r.retry_after_s);
    cap_http_req_reset(&r);
    cap_http_free(h);
}

static void test_decompression(void)
{
    struct cap_http *h = client(&open_policy, 10000, 4);
    struct cap_http_req r;

    /* Under the floor: 300 KiB from about 2 KB is fine. */
    req_init(&r, "/gzip", 32u << 20);
    r.decode = true;
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(GZ_SMALL_N, r.len);
    CHECK(r.body[0] == 0 && r.body[GZ_SMALL_N - 1] == 0 && r.body[GZ_SMALL_N] == 0);
    cap_http_req_reset(&r);

    /* 8 MiB from about 50 KB: over 64 times, refused although under the body cap. */
    printf("bomb: %zu wire bytes for %u decoded\n", gz_bomb_len, GZ_BOMB_N);
    req_init(&r, "/bomb", 32u << 20);
    r.decode = true;
    run(h, &r);
    CHECK_EQ(CAP_HTTP_RATIO, r.result);
    CHECK(r.body == NULL);
    check_has(r.error, "response larger than 64 times its");
    check_has(r.error, "(decompression cap) from \"http://127.0.0.1:");
    check_has(r.error, "/bomb\"");

    /* Without decode the bytes are not decoded, and the body cap alone applies. */
    req_init(&r, "/bomb", 32u << 20);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(gz_bomb_len, r.len);
    cap_http_req_reset(&r);
    cap_http_free(h);
}

static void test_redirects_and_policy(void)
{
    struct cap_http *h = client(&open_policy, 5000, 4);
    struct cap_http_req r;

    req_init(&r, "/redirect", 100);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(302, r.status);
    cap_http_req_reset(&r);

    req_init(&r, "/redirect", 100);
    r.max_redirects = 3;
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(200, r.status);
    CHECK_STR("hello", r.body);
    cap_http_req_reset(&r);

    req_init(&r, "/loop", 100);
    r.max_redirects = 3;
    run(h, &r);
    CHECK_EQ(CAP_HTTP_TRANSPORT, r.result);
    check_has(r.error, "redirect");

    /* A redirect to a metadata address is refused before any connect to it. */
    req_init(&r, "/metadata", 100);
    r.max_redirects = 3;
    run(h, &r);
    CHECK_EQ(CAP_HTTP_POLICY, r.result);
    check_has(r.error, "refused by network policy: ");
    check_has(r.error, "169.254");
    cap_http_free(h);

    /* Loopback refused by a policy without allow_loopback. */
    h = client(&closed_policy, 5000, 4);
    req_init(&r, "/small", 100);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_POLICY, r.result);
    check_has(r.error, "loopback");
    cap_http_free(h);
}

static void test_post_timeout_bounds(void)
{
    struct cap_http *h = client(&open_policy, 500, 1);
    struct cap_http_req r, r2;
    struct cap_err err = {0};

    static const char payload[] = "\x30\x03\x02\x01\x00";
    req_init(&r, "/echo", 600);
    r.post = payload;
    r.post_len = sizeof payload - 1;
    r.content_type = "application/ocsp-request";
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(200, r.status);
    CHECK_EQ(strlen("application/ocsp-request|") + 5, r.len);
    CHECK(memcmp(r.body, "application/ocsp-request|\x30\x03\x02\x01\x00", r.len) == 0);
    cap_http_req_reset(&r);

    /* Extra header lines go out, with or without a Content-Type. */
    static const char *const hdrs[] = {"Idempotency-Key: cap:f1:opened:e2", "Expect:", NULL};
    req_init(&r, "/hdr", 600);
    r.extra_headers = hdrs;
    run(h, &r);
    CHECK_EQ(CAP_HTTP_DONE, r.result);
    CHECK_EQ(strlen("cap:f1:opened:e2"), r.len);
    CHECK(memcmp(r.body, "cap:f1:opened:e2", r.len) == 0);
    cap_http_req_reset(&r);

    req_init(&r, "/slow", 100);
    run(h, &r);
    CHECK_EQ(CAP_HTTP_TIMEOUT, r.result);
    check_has(r.error, "timed out");

    /* One in flight at most; a second start is refused and changes nothing. */
    req_init(&r, "/slow", 100);
    req_init(&r2, "/small", 100);
    CHECK_EQ(0, cap_http_start(h, &r, &err));
    CHECK_EQ(-1, cap_http_start(h, &r2, &err));
    CHECK_EQ(CAP_E_LIMIT, err.code);
    check_has(err.msg, "1 requests already in flight");
    CHECK_EQ(1, cap_http_inflight(h));
    cap_http_cancel(h, &r);
    CHECK_EQ(0, cap_http_inflight(h));
    CHECK_EQ(CAP_HTTP_PENDING, r.result);
    CHECK(cap_http_wait(h, 50) == NULL);

    /* Bad requests are refused before anything starts. */
    cap_err_clear(&err);
    req_init(&r2, "/small", 0);
    CHECK_EQ(-1, cap_http_start(h, &r2, &err));
    CHECK_EQ(CAP_E_INVALID, err.code);
    cap_err_clear(&err);
    memset(&r2, 0, sizeof r2);
    snprintf(r2.url, sizeof r2.url, "ftp://127.0.0.1:%d/x", srv_port);
    r2.body_max = 10;
    CHECK_EQ(-1, cap_http_start(h, &r2, &err));
    check_has(err.msg, "ftp://127.0.0.1");
    cap_err_clear(&err);
    memset(r2.url, 'h', sizeof r2.url);
    CHECK_EQ(-1, cap_http_start(h, &r2, &err));
    CHECK_EQ(0, cap_http_inflight(h));

    /* Freed with a request in flight: the request is left pending with nothing to free. */
    req_init(&r, "/slow", 100);
    CHECK_EQ(0, cap_http_start(h, &r, &err));
    cap_http_free(h);
    CHECK_EQ(CAP_HTTP_PENDING, r.result);
    CHECK(r.body == NULL);
}

static void test_ct_caps(void)
{
    const char *b = "https://ct.example/logs/2026h1/";
    char u[512];
    snprintf(u, sizeof u, "%sct/v1/get-sth", b);
    CHECK_EQ(CAP_CT_HEAD_MAX, cap_ct_body_cap(u, 0));
    snprintf(u, sizeof u, "%scheckpoint", b);
    CHECK_EQ(CAP_CT_HEAD_MAX, cap_ct_body_cap(u, 0));
    snprintf(u, sizeof u, "%sct/v1/get-sth-consistency?first=1&second=9", b);
    CHECK_EQ(CAP_CT_HEAD_MAX, cap_ct_body_cap(u, 0));
    snprintf(u, sizeof u, "%sct/v1/get-entries?start=0&end=9", b);
    CHECK_EQ(CAP_CT_HEAD_MAX + 10 * CAP_CT_ENTRY_MAX, cap_ct_body_cap(u, 10));
    CHECK_EQ(CAP_CT_HEAD_MAX + CAP_CT_ENTRY_MAX, cap_ct_body_cap(u, 0));
    CHECK_EQ(CAP_CT_BODY_MAX, cap_ct_body_cap(u, 1024));
    CHECK_EQ(CAP_CT_BODY_MAX, cap_ct_body_cap(u, UINT64_MAX));
    snprintf(u, sizeof u, "%sct/v1/get-entry-and-proof?leaf_index=3&tree_size=9", b);
    CHECK_EQ(CAP_CT_HEAD_MAX + CAP_CT_ENTRY_MAX, cap_ct_body_cap(u, 0));
    snprintf(u, sizeof u, "%stile/0/x001/234", b);
    CHECK_EQ(CAP_CT_HASH_TILE_MAX, cap_ct_body_cap(u, 0));
    snprintf(u, sizeof u, "%stile/2/000.p/17", b);
    CHECK_EQ(CAP_CT_HASH_TILE_MAX, cap_ct_body_cap(u, 0));
    snprintf(u, sizeof u, "%stile/data/x001/234.p/10", b);
    CHECK_EQ(10 * CAP_CT_ENTRY_MAX, cap_ct_body_cap(u, 10));
    CHECK_EQ(256 * CAP_CT_ENTRY_MAX, cap_ct_body_cap(u, 0));
    /* Only the end of the path names the endpoint, whatever the base holds. */
    CHECK_EQ(CAP_CT_HEAD_MAX,
             cap_ct_body_cap("https://x/tile/data/ct/v1/get-entries/ct/v1/get-sth", 100));
    CHECK_EQ(CAP_CT_HEAD_MAX, cap_ct_body_cap("https://x/ct/v1/get-entries/checkpoint", 100));
}

int main(void)
{
    struct cap_err err = {0};
    CHECK_EQ(0, cap_http_global_init(&err));
    test_ct_caps();
    server_start();
    test_get_and_caps();
    test_decompression();
    test_redirects_and_policy();
    test_post_timeout_bounds();
    server_stop();
    cap_http_global_cleanup();
    TEST_DONE();
}
