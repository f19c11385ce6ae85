/* Tests of the scan engine against servers in this process on 127.0.0.1: a TLS server with a
 * generated certificate, a closed port (refused), a listener that never answers (timeout),
 * one that sends garbage (tls_error), per-job concurrency and two jobs sharing the slots; and
 * pending connects apart from TLS slots: a silent address (a listener whose accept queue is
 * full drops SYNs, as a firewalled host does), the connect rate, and a job over a silent
 * range beside one over a live server. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker/scan/engine.h"

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static atomic_bool stop_servers;
static atomic_int tls_inflight, tls_inflight_max;
static SSL_CTX *server_ctx;
static X509 *server_cert;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int listen_on(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0)
        abort();
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void make_server_ctx(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"engine.test", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    X509_sign(x, k, EVP_sha256());
    server_ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(server_ctx, x);
    SSL_CTX_use_PrivateKey(server_ctx, k);
    server_cert = x;
    EVP_PKEY_free(k);
}

/* TLS 1.2 servers that only do DHE (RSA certificate): one with the 8192-bit ffdhe8192 group,
 * one with a 10,000-bit modulus that is not even prime (OpenSSL 3.0's client accepts both at
 * security level 0, and the second cost the client 0.9 s of CPU on its loop). */
static SSL_CTX *dhe_ctx, *dhe_big_ctx;

static SSL_CTX *make_dhe_ctx(EVP_PKEY *dh)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 9);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"dhe.test", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_sign(x, k, EVP_sha256());
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(c, x);
    SSL_CTX_use_PrivateKey(c, k);
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_security_level(c, 0);
    SSL_CTX_set_cipher_list(c, "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0");
    if (!dh || SSL_CTX_set0_tmp_dh_pkey(c, dh) != 1)
        abort();
    X509_free(x);
    EVP_PKEY_free(k);
    return c;
}

static void make_dhe_ctxs(void)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    EVP_PKEY *dh = NULL;
    OSSL_PARAM prm[] = {OSSL_PARAM_construct_utf8_string("group", "ffdhe8192", 0),
                        OSSL_PARAM_construct_end()};
    if (!pc || EVP_PKEY_paramgen_init(pc) != 1 || EVP_PKEY_CTX_set_params(pc, prm) != 1 ||
        EVP_PKEY_paramgen(pc, &dh) != 1)
        abort();
    EVP_PKEY_CTX_free(pc);
    dhe_ctx = make_dhe_ctx(dh);
    /* p: 10,000 random bits, top and bottom bits set (odd), almost surely composite; g = 2 */
    BIGNUM *p = BN_new(), *g = BN_new();
    if (!p || !g || BN_rand(p, 10000, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD) != 1 ||
        BN_set_word(g, 2) != 1)
        abort();
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_FFC_P, p);
    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_FFC_G, g);
    OSSL_PARAM *fp = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *fc = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    EVP_PKEY *big = NULL;
    if (!fp || !fc || EVP_PKEY_fromdata_init(fc) != 1 ||
        EVP_PKEY_fromdata(fc, &big, EVP_PKEY_KEY_PARAMETERS, fp) != 1)
        abort();
    dhe_big_ctx = make_dhe_ctx(big);
    EVP_PKEY_CTX_free(fc);
    OSSL_PARAM_free(fp);
    OSSL_PARAM_BLD_free(b);
    BN_free(p);
    BN_free(g);
}

struct conn_arg {
    int fd;
    int mode; /* 0 tls, 1 tarpit, 2 garbage, 3 reset the first connection then tls */
};

static atomic_int resets_done, silences_done;

/* The server's count of a handshake ends when its first flight is out (the client cannot
 * have finished before), so the count never exceeds the client's real concurrency. */
static __thread bool counted;

static void flight_cb(const SSL *s, int where, int ret)
{
    (void)ret;
    if (counted && (where & SSL_CB_ACCEPT_LOOP) && SSL_get_state(s) == TLS_ST_SW_FINISHED) {
        counted = false;
        atomic_fetch_sub(&tls_inflight, 1);
    }
}

static void *conn_main(void *arg)
{
    struct conn_arg *c = arg;
    if (c->mode == 3 && atomic_fetch_add(&resets_done, 1) == 0) {
        /* a server that chokes on the first ClientHello: read it, answer with a reset */
        char b[2048];
        (void)recv(c->fd, b, sizeof b, 0);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c->fd);
        free(c);
        return NULL;
    }
    if (c->mode == 4 && atomic_fetch_add(&silences_done, 1) == 0) {
        /* a server that ignores the first ClientHello: no answer until the client leaves */
        char b[2048];
        while (recv(c->fd, b, sizeof b, 0) > 0)
            ;
        close(c->fd);
        free(c);
        return NULL;
    }
    if (c->mode == 0 || c->mode == 3 || c->mode == 4) {
        /* A handshake is in flight from the ClientHello on (a connected socket may wait a
         * little for a TLS slot of the client's before it sends anything). */
        char b1;
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        (void)poll(&pf, 1, 10000);
        (void)recv(c->fd, &b1, 1, MSG_PEEK);
        int now = atomic_fetch_add(&tls_inflight, 1) + 1;
        int m = atomic_load(&tls_inflight_max);
        while (now > m && !atomic_compare_exchange_weak(&tls_inflight_max, &m, now))
            ;
        counted = true;
        usleep(50000); /* hold the slot a little so concurrency shows */
        SSL *s = SSL_new(server_ctx);
        SSL_set_fd(s, c->fd);
        SSL_set_info_callback(s, flight_cb);
        (void)SSL_accept(s);
        if (counted)
            atomic_fetch_sub(&tls_inflight, 1);
        counted = false;
        char b[16];
        (void)SSL_read(s, b, sizeof b);
        SSL_free(s);
    } else if (c->mode == 5 || c->mode == 6) {
        SSL *s = SSL_new(c->mode == 5 ? dhe_ctx : dhe_big_ctx);
        SSL_set_fd(s, c->fd);
        (void)SSL_accept(s);
        SSL_free(s);
    } else if (c->mode == 2) {
        char b[2048];
        (void)recv(c->fd, b, sizeof b, 0);
        memset(b, 'x', sizeof b);
        (void)send(c->fd, b, sizeof b, MSG_NOSIGNAL);
        (void)recv(c->fd, b, sizeof b, 0);
    } else {
        char b[256];
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        while (!atomic_load(&stop_servers)) {
            if (poll(&p, 1, 100) > 0 && recv(c->fd, b, sizeof b, 0) <= 0)
                break;
        }
    }
    close(c->fd);
    free(c);
    return NULL;
}

struct server {
    int fd;
    int mode;
    pthread_t th;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    while (!atomic_load(&stop_servers)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
            continue;
        struct conn_arg *c = malloc(sizeof *c);
        c->fd = fd;
        c->mode = s->mode;
        pthread_t t;
        pthread_create(&t, NULL, conn_main, c);
        pthread_detach(t);
    }
    return NULL;
}

static void req_for(struct cap_scan_req *q, int port, int timeout_ms, uint64_t tag)
{
    memset(q, 0, sizeof *q);
    q->family = AF_INET;
    uint32_t lo = htonl(INADDR_LOOPBACK);
    memcpy(q->addr, &lo, 4);
    q->port = port;
    q->timeout_ms = timeout_ms;
    q->tag = tag;
    q->host = "127.0.0.1";
}

static size_t collect(struct cap_scan_job *j, size_t want, struct cap_scan_result **all,
                      int64_t limit_ms)
{
    size_t n = 0;
    int64_t end = now_ms() + limit_ms;
    while (n < want && now_ms() < end) {
        struct cap_scan_result *r = cap_scan_job_wait(j, 200);
        while (r) {
            struct cap_scan_result *next = r->next;
            r->next = NULL;
            all[n++] = r;
            r = next;
        }
    }
    return n;
}

/* A port that drops SYNs: a listener with a full accept queue (nobody accepts). The sockets
 * that filled it are returned through fill (closed by the caller). */
static int silent_port(int *port, int fill[2])
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 0) != 0)
        abort();
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    for (int i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(100000);
    return fd;
}

/* Outcomes of a batch of probes. */
struct tally {
    size_t n, ok, silent, closed, other;
    int64_t max_elapsed;
};

/* Counts the results of list and frees them. */
static void tally_add(struct tally *t, struct cap_scan_result *list)
{
    for (struct cap_scan_result *r = list; r; r = r->next) {
        t->n++;
        if (strcmp(r->outcome, "ok") == 0 && !r->empty)
            t->ok++;
        else if (r->empty && strcmp(r->empty, "silent") == 0 && strcmp(r->outcome, "timeout") == 0)
            t->silent++;
        else if (r->empty && strcmp(r->empty, "closed") == 0 && strcmp(r->outcome, "refused") == 0)
            t->closed++;
        else
            t->other++;
        if (r->elapsed_ms > t->max_elapsed)
            t->max_elapsed = r->elapsed_ms;
    }
    cap_scan_result_free(list);
}

static void submit_n(struct cap_scan_job *j, int port, int n, int timeout_ms)
{
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_scan_req q;
    for (int i = 0; i < n; i++) {
        req_for(&q, port, timeout_ms, (uint64_t)i);
        CHECK(cap_scan_job_submit(j, &q, &err) == 0);
    }
}

/* Pending connects are not TLS slots: 300 silent targets with a 1 s timeout behind 3 slots end
 * in about one timeout (a slot per connect would take 100 s), the live ones are found, the
 * empty ones say why, and the live server never sees more than the job's concurrency. */
static void test_sparse(int tls_port, int closed_port, int silent)
{
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_scan_engine_opts o = {
        .slots = 6, .max_pending_connects = 1024, .connect_rate = 2000};
    struct cap_scan_engine *e = cap_scan_engine_new_opts(&o, &err);
    CHECK(e != NULL);
    if (!e)
        return;
    struct cap_scan_job *j = cap_scan_job_new(e, 3, &err);
    atomic_store(&tls_inflight_max, 0);
    int64_t t0 = now_ms();
    submit_n(j, silent, 150, 1000);
    submit_n(j, tls_port, 6, 5000);
    submit_n(j, closed_port, 4, 5000);
    submit_n(j, silent, 150, 1000);
    struct tally t = {0};
    while (t.n < 310 && now_ms() - t0 < 20000)
        tally_add(&t, cap_scan_job_wait(j, 200));
    tally_add(&t, cap_scan_job_wait(j, 0));
    int64_t took = now_ms() - t0;
    fprintf(stderr, "sparse: %zu results in %lld ms: %zu ok, %zu silent, %zu closed, %zu other\n",
            t.n, (long long)took, t.ok, t.silent, t.closed, t.other);
    CHECK(t.n == 310 && t.ok == 6 && t.silent == 300 && t.closed == 4 && t.other == 0);
    CHECK(took < 8000);
    struct cap_scan_engine_stats st;
    cap_scan_engine_stats(e, &st);
    CHECK(st.pending_peak > 6);   /* far more connects out than TLS slots */
    CHECK(st.inflight_peak <= 3); /* the job's concurrency */
    CHECK(st.pending == 0 && st.inflight == 0);
    CHECK(atomic_load(&tls_inflight_max) <= 3);
    cap_scan_job_free(j);

    /* The rate: 60 connects at 100 per second take about half a second. */
    cap_scan_engine_free(e);
    o.connect_rate = 100;
    e = cap_scan_engine_new_opts(&o, &err);
    j = cap_scan_job_new(e, 3, &err);
    t0 = now_ms();
    submit_n(j, closed_port, 60, 5000);
    memset(&t, 0, sizeof t);
    while (t.n < 60 && now_ms() - t0 < 10000)
        tally_add(&t, cap_scan_job_wait(j, 100));
    took = now_ms() - t0;
    fprintf(stderr, "rate 100/s: 60 connects in %lld ms\n", (long long)took);
    CHECK(t.n == 60 && t.closed == 60);
    CHECK(took >= 450);
    cap_scan_job_free(j);
    cap_scan_engine_free(e);

    /* A job's own rate lowers the engine's: 30 connects at 50 per second. */
    o.connect_rate = 2000;
    e = cap_scan_engine_new_opts(&o, &err);
    j = cap_scan_job_new(e, 3, &err);
    cap_scan_job_set_connect_rate(j, 50);
    t0 = now_ms();
    submit_n(j, closed_port, 30, 5000);
    memset(&t, 0, sizeof t);
    while (t.n < 30 && now_ms() - t0 < 10000)
        tally_add(&t, cap_scan_job_wait(j, 100));
    took = now_ms() - t0;
    fprintf(stderr, "job rate 50/s: 30 connects in %lld ms\n", (long long)took);
    CHECK(t.n == 30 && took >= 450);
    cap_scan_job_free(j);
    cap_scan_engine_free(e);
}

/* A job over a silent range holds most of the pending-connect budget for whole timeouts; a job
 * over a live server beside it keeps its pace (budgets shared by what is held). */
static void test_fair(int tls_port, int silent)
{
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_scan_engine_opts o = {.slots = 6, .max_pending_connects = 400, .connect_rate = 2000};
    struct cap_scan_engine *e = cap_scan_engine_new_opts(&o, &err);
    CHECK(e != NULL);
    if (!e)
        return;
    int64_t alone = 0, beside = 0;
    for (int pass = 0; pass < 2; pass++) {
        struct cap_scan_job *dead = NULL;
        if (pass == 1) {
            dead = cap_scan_job_new(e, 3, &err);
            submit_n(dead, silent, 3000, 1500);
            usleep(300000); /* it holds the budget now */
        }
        struct cap_scan_job *live = cap_scan_job_new(e, 3, &err);
        int64_t t0 = now_ms();
        submit_n(live, tls_port, 30, 5000);
        struct tally t = {0};
        while (t.n < 30 && now_ms() - t0 < 20000)
            tally_add(&t, cap_scan_job_wait(live, 50));
        int64_t took = now_ms() - t0;
        CHECK(t.n == 30 && t.ok == 30);
        if (pass == 0)
            alone = took;
        else
            beside = took;
        cap_scan_job_free(live);
        cap_scan_job_free(dead);
    }
    fprintf(stderr, "live job: %lld ms alone, %lld ms beside a silent range\n", (long long)alone,
            (long long)beside);
    CHECK(beside <= alone * 3 / 2 + 300);
    cap_scan_engine_free(e);
}

/* A server whose DH group is larger than the client computes with (its cost grows without
 * bound and would stall every probe of the loop) is refused at once, with the reason; the
 * other probes' deadlines hold. */
static void test_dh_refused(int dhe_port, int tarpit_port, int bits)
{
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_scan_engine *e = cap_scan_engine_new(8, &err);
    struct cap_scan_job *j = cap_scan_job_new(e, 8, &err);
    struct cap_scan_req q;
    req_for(&q, dhe_port, 5000, 1);
    cap_scan_job_submit(j, &q, &err);
    submit_n(j, tarpit_port, 5, 1000);
    struct cap_scan_result *all[8];
    size_t n = collect(j, 6, all, 15000);
    CHECK(n == 6);
    char want[64];
    snprintf(want, sizeof want, "DH group of %d bits refused", bits);
    for (size_t i = 0; i < n; i++) {
        struct cap_scan_result *r = all[i];
        if (r->req.port == dhe_port) {
            fprintf(stderr, "dhe server (%d bits): %s %s (%lld ms)\n", bits, r->outcome, r->error,
                    (long long)r->elapsed_ms);
            CHECK(strcmp(r->outcome, "tls_error") == 0);
            CHECK(strstr(r->error, want) != NULL);
        } else {
            CHECK(strcmp(r->outcome, "timeout") == 0);
            CHECK(r->elapsed_ms < 1300);
        }
        cap_scan_result_free(r);
    }
    cap_scan_job_free(j);
    cap_scan_engine_free(e);
}

/* A local failure (no descriptor left) is not the endpoint's: the probes wait and are scanned
 * once descriptors are back, none recorded as failed. */
static void test_local_failure(int tls_port)
{
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_scan_engine *e = cap_scan_engine_new(4, &err);
    struct cap_scan_job *j = cap_scan_job_new(e, 4, &err);
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    /* every descriptor taken but for none: socket() fails with EMFILE */
    int fds[4096];
    int nfds = 0;
    struct rlimit low = old;
    low.rlim_cur = 512;
    setrlimit(RLIMIT_NOFILE, &low);
    for (; nfds < 4096; nfds++) {
        fds[nfds] = dup(0);
        if (fds[nfds] < 0)
            break;
    }
    submit_n(j, tls_port, 10, 5000);
    usleep(400000);
    struct cap_scan_engine_stats st;
    cap_scan_engine_stats(e, &st);
    CHECK(st.local_failures > 0);
    CHECK(cap_scan_job_outstanding(j) == 10); /* nothing came back as a result */
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    setrlimit(RLIMIT_NOFILE, &old);
    struct tally t = {0};
    int64_t t0 = now_ms();
    while (t.n < 10 && now_ms() - t0 < 10000)
        tally_add(&t, cap_scan_job_wait(j, 100));
    fprintf(stderr, "local failure: %llu failures, then %zu ok of %zu\n",
            (unsigned long long)st.local_failures, t.ok, t.n);
    CHECK(t.n == 10 && t.ok == 10);
    cap_scan_job_free(j);
    cap_scan_engine_free(e);
}

/* The descriptors kept for the rest of the worker (PostgreSQL, DNS, OCSP/CRL and CT transfers:
 * the worker asks 64 + 24 per job) are kept free: under a hard limit too low for every pending
 * connect, the pending budget is cut to what is left. In a child: the hard limit cannot be
 * raised again. */
static void test_fd_reserve(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {.rlim_cur = 2000, .rlim_max = 2000};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            _exit(3);
        struct cap_err err;
        cap_err_clear(&err);
        struct cap_scan_engine_opts o = {.slots = 100,
                                         .max_pending_connects = 8192,
                                         .connect_rate = 2000,
                                         .reserve_fds = 64 + 24 * 16};
        struct cap_scan_engine *e = cap_scan_engine_new_opts(&o, &err);
        if (!e)
            _exit(4);
        struct cap_scan_engine_stats st;
        cap_scan_engine_stats(e, &st);
        int ok = st.slots == 100 && st.pending_max == 2000 - 100 - (64 + 24 * 16);
        if (!ok)
            fprintf(stderr, "fd reserve: slots %d, pending %d\n", st.slots, st.pending_max);
        cap_scan_engine_free(e);
        _exit(ok ? 0 : 5);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* OpenSSL group NIDs map onto their IANA code points; unknown groups keep theirs. */
static void test_group_codepoints(void)
{
    CHECK(cap_scan_group_codepoint(NID_X25519) == 0x001d);
    CHECK(cap_scan_group_codepoint(NID_X9_62_prime256v1) == 0x0017);
    CHECK(cap_scan_group_codepoint(NID_secp384r1) == 0x0018);
    CHECK(cap_scan_group_codepoint(NID_secp521r1) == 0x0019);
    CHECK(cap_scan_group_codepoint(NID_X448) == 0x001e);
    CHECK(cap_scan_group_codepoint(NID_ffdhe2048) == 0x0100);
    CHECK(cap_scan_group_codepoint(NID_ffdhe8192) == 0x0104);
    CHECK(cap_scan_group_codepoint(TLSEXT_nid_unknown | 0x11ec) == 0x11ec);
    CHECK(cap_scan_group_codepoint(NID_undef) == 0);
}

int main(void)
{
    test_group_codepoints();
    make_server_ctx();
    struct server srv[3];
    int ports[3];
    for (int i = 0; i < 3; i++) {
        srv[i].fd = listen_on(&ports[i]);
        srv[i].mode = i;
        pthread_create(&srv[i].th, NULL, server_main, &srv[i]);
    }
    int closed_port;
    int cfd = listen_on(&closed_port);
    close(cfd); /* nothing listens there now */

    struct cap_err err;
    cap_err_clear(&err);
    struct cap_scan_engine *e = cap_scan_engine_new(6, &err);
    CHECK(e != NULL);
    if (!e) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }

    /* One job, concurrency 3: TLS, refused, tarpit (1 s), garbage. */
    struct cap_scan_job *j = cap_scan_job_new(e, 3, &err);
    struct cap_scan_req q;
    for (int i = 0; i < 8; i++) {
        req_for(&q, ports[0], 3000, (uint64_t)i);
        CHECK(cap_scan_job_submit(j, &q, &err) == 0);
    }
    req_for(&q, closed_port, 3000, 100);
    cap_scan_job_submit(j, &q, &err);
    req_for(&q, ports[1], 1000, 101);
    cap_scan_job_submit(j, &q, &err);
    req_for(&q, ports[2], 3000, 102);
    cap_scan_job_submit(j, &q, &err);
    struct cap_scan_result *all[32];
    size_t n = collect(j, 11, all, 15000);
    CHECK(n == 11);
    CHECK(cap_scan_job_outstanding(j) == 0);
    int ok = 0;
    for (size_t i = 0; i < n; i++) {
        struct cap_scan_result *r = all[i];
        if (r->req.tag < 8) {
            CHECK(strcmp(r->outcome, "ok") == 0);
            if (strcmp(r->outcome, "ok") != 0)
                fprintf(stderr, "tls probe: %s %s\n", r->outcome, r->error);
            ok++;
            CHECK(strcmp(r->version, "TLSv1.3") == 0);
            CHECK(strncmp(r->cipher, "TLS_", 4) == 0);
            CHECK(r->group_id == 29); /* x25519 */
            CHECK(r->chain && sk_X509_num(r->chain) == 1);
            if (r->chain)
                CHECK(X509_cmp(sk_X509_value(r->chain, 0), server_cert) == 0);
        } else if (r->req.tag == 100) {
            CHECK(strcmp(r->outcome, "refused") == 0);
        } else if (r->req.tag == 101) {
            CHECK(strcmp(r->outcome, "timeout") == 0);
            CHECK(r->elapsed_ms >= 900 && r->elapsed_ms < 2500);
            CHECK(strstr(r->error, "handshake") != NULL);
        } else if (r->req.tag == 102) {
            CHECK(strcmp(r->outcome, "tls_error") == 0);
            CHECK(r->error[0] != '\0');
        }
        cap_scan_result_free(r);
    }
    CHECK(ok == 8);
    CHECK(cap_scan_job_peak(j) <= 3 && cap_scan_job_peak(j) >= 2);
    cap_scan_job_free(j);

    /* Two jobs of concurrency 5 share 6 slots: both progress, never more than 6 at once. */
    atomic_store(&tls_inflight_max, 0);
    struct cap_scan_job *a = cap_scan_job_new(e, 5, &err);
    struct cap_scan_job *b = cap_scan_job_new(e, 5, &err);
    for (int i = 0; i < 12; i++) {
        req_for(&q, ports[0], 5000, (uint64_t)i);
        cap_scan_job_submit(a, &q, &err);
        cap_scan_job_submit(b, &q, &err);
    }
    size_t na = 0, nb = 0;
    int64_t end = now_ms() + 20000;
    while ((na < 12 || nb < 12) && now_ms() < end) {
        struct cap_scan_result *r = cap_scan_job_wait(a, 50);
        for (struct cap_scan_result *x = r; x; x = x->next)
            na += strcmp(x->outcome, "ok") == 0;
        cap_scan_result_free(r);
        r = cap_scan_job_wait(b, 50);
        for (struct cap_scan_result *x = r; x; x = x->next)
            nb += strcmp(x->outcome, "ok") == 0;
        cap_scan_result_free(r);
    }
    CHECK(na == 12 && nb == 12);
    CHECK(cap_scan_job_peak(a) >= 2 && cap_scan_job_peak(b) >= 2);
    struct cap_scan_engine_stats st;
    cap_scan_engine_stats(e, &st);
    CHECK(st.inflight_peak <= 6);
    cap_scan_job_free(a);
    cap_scan_job_free(b);

    /* Freeing a job with probes in flight (tarpits) abandons them without results. */
    struct cap_scan_job *c = cap_scan_job_new(e, 4, &err);
    for (int i = 0; i < 6; i++) {
        req_for(&q, ports[1], 60000, (uint64_t)i);
        cap_scan_job_submit(c, &q, &err);
    }
    /* four past their connect, each with its ClientHello out, waiting for the tarpit */
    int64_t until = now_ms() + 5000;
    do {
        usleep(20000);
        cap_scan_engine_stats(e, &st);
    } while (st.handshaking < 4 && now_ms() < until);
    CHECK(st.inflight == 4 && st.handshaking == 4 && st.connecting == 0 && st.starttls == 0);
    int64_t t0 = now_ms();
    cap_scan_job_free(c);
    CHECK(now_ms() - t0 < 2000);
    cap_scan_engine_stats(e, &st);
    CHECK(st.inflight == 0);
    CHECK(st.handshaking == 0 && st.connecting == 0);

    cap_scan_engine_free(e);

    int sfill[2], sport_silent;
    int sfd = silent_port(&sport_silent, sfill);
    test_sparse(ports[0], closed_port, sport_silent);
    test_fair(ports[0], sport_silent);
    test_local_failure(ports[0]);
    test_fd_reserve();
    make_dhe_ctxs();
    struct server dhs = {.mode = 5}, dhb = {.mode = 6};
    int dport, bport;
    dhs.fd = listen_on(&dport);
    dhb.fd = listen_on(&bport);
    pthread_create(&dhs.th, NULL, server_main, &dhs);
    pthread_create(&dhb.th, NULL, server_main, &dhb);
    test_dh_refused(dport, ports[1], 8192);
    test_dh_refused(bport, ports[1], 10000);
    close(sfill[0]);
    close(sfill[1]);
    close(sfd);

    /* The first-attempt group list (hybrid ML-KEM on OpenSSL >= 3.5; here P-384 stands in) and
     * the one classical retry after a server resets that first ClientHello. */
    struct server rs = {.mode = 3};
    int rport;
    rs.fd = listen_on(&rport);
    pthread_create(&rs.th, NULL, server_main, &rs);
    e = cap_scan_engine_new_groups(2, "P-384:X25519", &err);
    CHECK(e != NULL);
    j = cap_scan_job_new(e, 1, &err);
    req_for(&q, rport, 5000, 1);
    cap_scan_job_submit(j, &q, &err);
    n = collect(j, 1, all, 10000);
    CHECK(n == 1);
    if (n == 1) {
        CHECK(strcmp(all[0]->outcome, "ok") == 0);
        CHECK(all[0]->classical_retry);
        CHECK(!all[0]->hybrid_offered);
        CHECK(all[0]->group_id == 29); /* the classical list's first group */
        cap_scan_result_free(all[0]);
    }
    CHECK(atomic_load(&resets_done) >= 1);
    /* a server that takes the first list negotiates its first group, no retry */
    req_for(&q, ports[0], 5000, 2);
    cap_scan_job_submit(j, &q, &err);
    n = collect(j, 1, all, 10000);
    CHECK(n == 1);
    if (n == 1) {
        CHECK(strcmp(all[0]->outcome, "ok") == 0);
        CHECK(!all[0]->classical_retry && all[0]->hybrid_offered);
        CHECK(all[0]->group_id == 24); /* secp384r1 */
        cap_scan_result_free(all[0]);
    }
    /* a server that ignores the first ClientHello: retried at half time, within the deadline */
    struct server ss = {.mode = 4};
    int sport;
    ss.fd = listen_on(&sport);
    pthread_create(&ss.th, NULL, server_main, &ss);
    req_for(&q, sport, 2000, 3);
    int64_t t1 = now_ms();
    cap_scan_job_submit(j, &q, &err);
    n = collect(j, 1, all, 10000);
    CHECK(n == 1);
    if (n == 1) {
        CHECK(strcmp(all[0]->outcome, "ok") == 0);
        CHECK(all[0]->classical_retry);
        CHECK(all[0]->elapsed_ms >= 900 && all[0]->elapsed_ms < 2000);
        cap_scan_result_free(all[0]);
    }
    CHECK(now_ms() - t1 < 2500);
    cap_scan_job_free(j);
    cap_scan_engine_free(e);
    CHECK(cap_scan_engine_new_groups(1, "NO-SUCH-GROUP", &err) == NULL);

    atomic_store(&stop_servers, true);
    pthread_join(dhs.th, NULL);
    close(dhs.fd);
    pthread_join(dhb.th, NULL);
    close(dhb.fd);
    SSL_CTX_free(dhe_ctx);
    SSL_CTX_free(dhe_big_ctx);
    pthread_join(rs.th, NULL);
    close(rs.fd);
    pthread_join(ss.th, NULL);
    close(ss.fd);
    for (int i = 0; i < 3; i++) {
        pthread_join(srv[i].th, NULL);
        close(srv[i].fd);
    }
    usleep(200000);
    SSL_CTX_free(server_ctx);
    X509_free(server_cert);
    if (failures) {
        fprintf(stderr, "test_scan_engine: %d checks failed\n", failures);
        return 1;
    }
    printf("test_scan_engine: ok\n");
    return 0;
}
