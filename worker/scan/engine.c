/* The scan engine's epoll loop: a fixed pool of probe slots, each a small state machine
 * (connecting, starttls, handshaking), a min-heap of deadlines, round-robin admission across
 * jobs, results handed back to the job threads under one mutex. */
#include "worker/scan/engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/ossl.h"

/* Groups offered, classical and (OpenSSL >= 3.5) with the hybrid ML-KEM group first. */
#define GROUPS_CLASSICAL "X25519:P-256:X448:P-521:P-384:ffdhe2048:ffdhe3072:ffdhe4096"
/* X25519MLKEM768 first (its key share is sent); the other hybrid and pure ML-KEM groups are
 * offered too, each with "?" so a build without one still takes the list. */
#define GROUPS_HYBRID                                                                              \
    "X25519MLKEM768:?SecP256r1MLKEM768:?SecP384r1MLKEM1024:?MLKEM768:?MLKEM1024:?"                 \
    "MLKEM512:" GROUPS_CLASSICAL
/* TLS 1.2 and older: every suite this OpenSSL has, at security level 0, the NULL-encryption
 * ones included ("ALL" leaves them out), so a server that prefers a weak one shows it. */
#define TLS12_SUITES "ALL:eNULL:@SECLEVEL=0"
/* Every TLS 1.3 suite, CCM included (OpenSSL leaves the CCM ones out by default). */
#define TLS13_SUITES                                                                               \
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"                  \
    "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256"
/* Largest certificate list accepted from a server; a bigger one fails its handshake. */
#define CERT_LIST_MAX (100 * 1024)
/* File descriptors kept free for everything else in the process. */
#define FD_MARGIN 256
#define EVFD_TAG UINT32_MAX

enum probe_state {
    PROBE_FREE = 0,
    PROBE_CONNECTING,
    PROBE_STARTTLS,
    PROBE_HANDSHAKING,
    PROBE_DONE
};

static const char *const state_names[] = {"free", "connecting", "starttls", "handshaking", "done"};

struct probe {
    enum probe_state state;
    int fd;
    uint32_t events;
    SSL *ssl;
    struct cap_scan_job *job;
    struct cap_scan_result *res;
    int64_t start_ms, deadline_ms, final_ms; /* deadline_ms: next timer; final_ms: the end */
    size_t heap_idx;
    bool hybrid, retried;
    STACK_OF(X509) * chain;
    const uint8_t *out;
    size_t out_len;
    struct probe *done_next;
    struct cap_starttls st;
};

struct cap_scan_job {
    struct cap_scan_engine *e;
    int concurrency, inflight, peak;
    struct cap_scan_result *pend_head, *pend_tail;
    struct cap_scan_result *res_head, *res_tail;
    size_t outstanding;
    bool cancel, detached;
    pthread_cond_t cond;
    struct cap_scan_job *next, *prev;
};

struct cap_scan_engine {
    pthread_mutex_t mu;
    struct cap_scan_job *jobs, *rr;
    atomic_bool cancel_pending;
    int epfd, evfd;
    pthread_t thread;
    atomic_bool stop;
    SSL_CTX *ctx_classical, *ctx_hybrid;
    int nslots;
    struct probe *slots;
    int *free_stack;
    int free_n;
    struct probe **heap;
    size_t heap_n;
    struct probe *done;
    struct cap_metric *m_inflight; /* cap_handshakes_in_flight */
    /* stats (under mu) */
    int inflight, inflight_peak;
    uint64_t started, finished;
    atomic_int in_state[PROBE_DONE]; /* probes per phase (connecting, starttls, handshaking) */
};

static int ssl_ex_idx = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_index_init(void)
{
    ssl_ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- deadline heap ---- */

static void heap_swap(struct cap_scan_engine *e, size_t a, size_t b)
{
    struct probe *t = e->heap[a];
    e->heap[a] = e->heap[b];
    e->heap[b] = t;
    e->heap[a]->heap_idx = a;
    e->heap[b]->heap_idx = b;
}

static void heap_up(struct cap_scan_engine *e, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (e->heap[parent]->deadline_ms <= e->heap[i]->deadline_ms)
            break;
        heap_swap(e, i, parent);
        i = parent;
    }
}

static void heap_down(struct cap_scan_engine *e, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->heap_n && e->heap[l]->deadline_ms < e->heap[m]->deadline_ms)
            m = l;
        if (r < e->heap_n && e->heap[r]->deadline_ms < e->heap[m]->deadline_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(e, i, m);
        i = m;
    }
}

static void heap_push(struct cap_scan_engine *e, struct probe *p)
{
    p->heap_idx = e->heap_n;
    e->heap[e->heap_n++] = p;
    heap_up(e, p->heap_idx);
}

static void heap_remove(struct cap_scan_engine *e, struct probe *p)
{
    size_t i = p->heap_idx;
    if (i >= e->heap_n || e->heap[i] != p)
        return;
    e->heap_n--;
    if (i != e->heap_n) {
        e->heap[i] = e->heap[e->heap_n];
        e->heap[i]->heap_idx = i;
        heap_down(e, i);
        heap_up(e, i);
    }
    p->heap_idx = SIZE_MAX;
}

/* ---- group code points ---- */

uint16_t cap_scan_group_codepoint(int nid)
{
    if (nid & TLSEXT_nid_unknown)
        return (uint16_t)(nid & 0xffff);
    switch (nid) {
    case NID_X25519:
        return 29;
    case NID_X448:
        return 30;
    case NID_X9_62_prime256v1:
        return 23;
    case NID_secp384r1:
        return 24;
    case NID_secp521r1:
        return 25;
    case NID_secp224r1:
        return 21;
    case NID_secp256k1:
        return 22;
    case NID_X9_62_prime192v1:
        return 19;
    case NID_brainpoolP256r1:
        return 26;
    case NID_brainpoolP384r1:
        return 27;
    case NID_brainpoolP512r1:
        return 28;
    case NID_ffdhe2048:
        return 256;
    case NID_ffdhe3072:
        return 257;
    case NID_ffdhe4096:
        return 258;
    case NID_ffdhe6144:
        return 259;
    case NID_ffdhe8192:
        return 260;
    default:
        return 0;
    }
}

/* Names OpenSSL >= 3.5 gives the hybrid and ML-KEM groups (their NIDs are not in 3.0). */
static uint16_t group_codepoint_by_name(const char *name)
{
    static const struct {
        const char *name;
        uint16_t id;
    } t[] = {{"X25519MLKEM768", 0x11ec},
             {"SecP256r1MLKEM768", 0x11eb},
             {"SecP384r1MLKEM1024", 0x11ed},
             {"MLKEM512", 0x0200},
             {"MLKEM768", 0x0201},
             {"MLKEM1024", 0x0202},
             {"X25519Kyber768Draft00", 0x6399}};
    for (size_t i = 0; name && i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(t[i].name, name) == 0)
            return t[i].id;
    }
    return 0;
}

/* ---- probe life ---- */

static void probe_set_state(struct cap_scan_engine *e, struct probe *p, enum probe_state s)
{
    if (p->state > PROBE_FREE && p->state < PROBE_DONE)
        atomic_fetch_sub(&e->in_state[p->state], 1);
    if (s > PROBE_FREE && s < PROBE_DONE)
        atomic_fetch_add(&e->in_state[s], 1);
    cap_log(CAP_LOG_DEBUG, "probe_state", CAP_LS("from", state_names[p->state]),
            CAP_LS("to", state_names[s]), CAP_LS("target", p->res->req.host),
            CAP_LI("port", p->res->req.port));
    p->state = s;
}

static void probe_interest(struct cap_scan_engine *e, struct probe *p, uint32_t ev)
{
    if (p->events == ev)
        return;
    struct epoll_event ee = {.events = ev, .data.u32 = (uint32_t)(p - e->slots)};
    if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, p->fd, &ee) == 0)
        p->events = ev;
}

/* Ends a probe with outcome (one vocabulary: ok, refused, timeout, tls_error); it is released
 * at the end of the loop iteration. */
static void probe_finish(struct cap_scan_engine *e, struct probe *p, const char *outcome,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void probe_finish(struct cap_scan_engine *e, struct probe *p, const char *outcome,
                         const char *fmt, ...)
{
    if (p->state == PROBE_DONE || p->state == PROBE_FREE)
        return;
    struct cap_scan_result *r = p->res;
    r->outcome = outcome;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
    }
    r->elapsed_ms = now_ms() - p->start_ms;
    if (p->chain && !r->chain) {
        r->chain = p->chain;
        p->chain = NULL;
    }
    heap_remove(e, p);
    probe_set_state(e, p, PROBE_DONE);
    p->done_next = e->done;
    e->done = p;
}

/* Maps a connect errno onto the outcome vocabulary. */
static const char *connect_outcome(int err)
{
    return err == ETIMEDOUT ? "timeout" : "refused";
}

static int probe_connect(struct cap_scan_engine *e, struct probe *p)
{
    const struct cap_scan_req *q = &p->res->req;
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (q->family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)q->port);
        memcpy(&s4->sin_addr, q->addr, 4);
        sl = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)q->port);
        memcpy(&s6->sin6_addr, q->addr, 16);
        sl = sizeof *s6;
    }
    int fd = socket(q->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        probe_finish(e, p, "tls_error", "local: cannot create a socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Close with a reset: a scanner must not pile up TIME_WAIT sockets. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    p->fd = fd;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        int ce = errno;
        probe_finish(e, p, connect_outcome(ce), "connect: %s", strerror(ce));
        return -1;
    }
    struct epoll_event ee = {.events = EPOLLOUT, .data.u32 = (uint32_t)(p - e->slots)};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ee) != 0) {
        probe_finish(e, p, "tls_error", "local: epoll: %s", strerror(errno));
        return -1;
    }
    p->events = EPOLLOUT;
    probe_set_state(e, p, PROBE_CONNECTING);
    return 0;
}

/* Records what the handshake negotiated. */
static void probe_capture(struct probe *p)
{
    struct cap_scan_result *r = p->res;
    snprintf(r->version, sizeof r->version, "%s", SSL_get_version(p->ssl));
    const SSL_CIPHER *c = SSL_get_current_cipher(p->ssl);
    const char *cn = c ? SSL_CIPHER_standard_name(c) : NULL;
    snprintf(r->cipher, sizeof r->cipher, "%s", cn ? cn : (c ? SSL_CIPHER_get_name(c) : ""));
    int nid = SSL_get_negotiated_group(p->ssl);
    if (nid != 0 && nid != NID_undef) {
        const char *gn = SSL_group_to_name(p->ssl, nid);
        r->group_id = cap_scan_group_codepoint(nid);
        if (r->group_id == 0)
            r->group_id = group_codepoint_by_name(gn);
        snprintf(r->group, sizeof r->group, "%s", gn ? gn : "");
    } else {
        EVP_PKEY *k = NULL;
        if (SSL_get_peer_tmp_key(p->ssl, &k) == 1 && k) {
            if (EVP_PKEY_get_base_id(k) == EVP_PKEY_DH)
                snprintf(r->group, sizeof r->group, "DHE-%d", EVP_PKEY_get_bits(k));
            EVP_PKEY_free(k);
        }
    }
    if (!p->chain) {
        STACK_OF(X509) *sk = SSL_get_peer_cert_chain(p->ssl);
        if (sk)
            p->chain = X509_chain_up_ref(sk);
    }
}

/* Text of the OpenSSL failure: the last queued error's reason, cut. */
static void ssl_reason(char *out, size_t n)
{
    unsigned long le = ERR_peek_last_error();
    const char *rs = le ? ERR_reason_error_string(le) : NULL;
    if (rs)
        snprintf(out, n, "%s", rs);
    else if (le)
        snprintf(out, n, "openssl error %lx", le);
    else
        snprintf(out, n, "unknown error");
}

static void probe_restart_classical(struct cap_scan_engine *e, struct probe *p);
static void probe_handshake(struct cap_scan_engine *e, struct probe *p);

static void probe_start_tls(struct cap_scan_engine *e, struct probe *p)
{
    p->ssl = SSL_new(p->hybrid ? e->ctx_hybrid : e->ctx_classical);
    if (!p->ssl || SSL_set_fd(p->ssl, p->fd) != 1) {
        probe_finish(e, p, "tls_error", "local: cannot create TLS state");
        return;
    }
    SSL_set_ex_data(p->ssl, ssl_ex_idx, p);
    if (p->res->req.sni[0] && SSL_set_tlsext_host_name(p->ssl, p->res->req.sni) != 1) {
        probe_finish(e, p, "tls_error", "local: cannot set SNI");
        return;
    }
    SSL_set_connect_state(p->ssl);
    probe_set_state(e, p, PROBE_HANDSHAKING);
    probe_handshake(e, p);
}

static void probe_handshake(struct cap_scan_engine *e, struct probe *p)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(p->ssl);
    if (rc == 1) {
        probe_capture(p);
        probe_finish(e, p, "ok", NULL);
        return;
    }
    int se = SSL_get_error(p->ssl, rc);
    if (se == SSL_ERROR_WANT_READ) {
        probe_interest(e, p, EPOLLIN);
        return;
    }
    if (se == SSL_ERROR_WANT_WRITE) {
        probe_interest(e, p, EPOLLOUT);
        return;
    }
    char why[CAP_SCAN_ERROR_MAX - 40];
    bool reset_like = false;
    if (se == SSL_ERROR_SYSCALL) {
        int en = errno;
        reset_like = true;
        if (ERR_peek_last_error() != 0)
            ssl_reason(why, sizeof why);
        else if (en == 0)
            snprintf(why, sizeof why, "connection closed during handshake");
        else
            snprintf(why, sizeof why, "%s during handshake", strerror(en));
    } else if (se == SSL_ERROR_ZERO_RETURN) {
        reset_like = true;
        snprintf(why, sizeof why, "connection closed during handshake");
    } else {
        ssl_reason(why, sizeof why);
        unsigned long le = ERR_peek_last_error();
        reset_like = ERR_GET_REASON(le) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
    }
    /* A server that chokes on the hybrid ClientHello gets one classical retry. */
    if (p->hybrid && !p->retried && (reset_like || se == SSL_ERROR_SSL) && now_ms() < p->final_ms) {
        probe_restart_classical(e, p);
        return;
    }
    probe_finish(e, p, "tls_error", "%s", why);
}

static void probe_close_conn(struct probe *p)
{
    if (p->ssl) {
        SSL_free(p->ssl);
        p->ssl = NULL;
    }
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    p->events = 0;
}

static void probe_restart_classical(struct cap_scan_engine *e, struct probe *p)
{
    cap_log(CAP_LOG_DEBUG, "probe_hybrid_retry", CAP_LS("target", p->res->req.host),
            CAP_LI("port", p->res->req.port));
    probe_close_conn(p);
    if (p->chain) {
        sk_X509_pop_free(p->chain, X509_free);
        p->chain = NULL;
    }
    p->hybrid = false;
    p->retried = true;
    p->res->classical_retry = true;
    p->res->hybrid_offered = false;
    (void)probe_connect(e, p);
}

static void probe_starttls_step(struct cap_scan_engine *e, struct probe *p, uint32_t ev);

/* Writes the STARTTLS bytes still pending; then waits for the server's answer. */
static void probe_starttls_write(struct cap_scan_engine *e, struct probe *p)
{
    while (p->out_len > 0) {
        ssize_t w = send(p->fd, p->out, p->out_len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            probe_interest(e, p, EPOLLOUT);
            return;
        }
        if (w <= 0) {
            probe_finish(e, p, "tls_error", "starttls %s: send: %s", cap_starttls_name(p->st.proto),
                         strerror(errno));
            return;
        }
        p->out += w;
        p->out_len -= (size_t)w;
    }
    probe_interest(e, p, EPOLLIN);
    /* Lines already buffered are processed now, not when more bytes come. */
    if (p->st.len > 0)
        probe_starttls_step(e, p, 0);
}

static void probe_starttls_step(struct cap_scan_engine *e, struct probe *p, uint32_t ev)
{
    if (p->out_len > 0) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            probe_starttls_write(e, p);
        return;
    }
    uint8_t buf[CAP_STARTTLS_LINE_MAX];
    size_t room = sizeof p->st.buf - p->st.len;
    ssize_t n = 0;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        n = recv(p->fd, buf, room ? room : 1, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            probe_finish(e, p, "tls_error", "starttls %s: %s", cap_starttls_name(p->st.proto),
                         strerror(errno));
            return;
        }
        if (n == 0) {
            probe_finish(e, p, "tls_error", "starttls %s: connection closed by the server",
                         cap_starttls_name(p->st.proto));
            return;
        }
    }
    const uint8_t *out = NULL;
    size_t out_len = 0;
    char why[CAP_SCAN_ERROR_MAX - 20];
    enum cap_starttls_status s =
        cap_starttls_input(&p->st, buf, (size_t)n, &out, &out_len, why, sizeof why);
    switch (s) {
    case CAP_STARTTLS_MORE:
        return;
    case CAP_STARTTLS_SEND:
        p->out = out;
        p->out_len = out_len;
        probe_starttls_write(e, p);
        return;
    case CAP_STARTTLS_DONE:
        probe_start_tls(e, p);
        return;
    case CAP_STARTTLS_FAIL:
    default:
        probe_finish(e, p, "tls_error", "%s", why);
        return;
    }
}

static void probe_connected(struct cap_scan_engine *e, struct probe *p)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr != 0) {
        probe_finish(e, p, connect_outcome(soerr), "connect: %s", strerror(soerr));
        return;
    }
    if (p->res->req.starttls == CAP_STARTTLS_NONE) {
        probe_start_tls(e, p);
        return;
    }
    probe_set_state(e, p, PROBE_STARTTLS);
    const uint8_t *out = NULL;
    size_t out_len = 0;
    enum cap_starttls_status s = cap_starttls_begin(&p->st, p->res->req.starttls, &out, &out_len);
    if (s == CAP_STARTTLS_SEND) {
        p->out = out;
        p->out_len = out_len;
        probe_starttls_write(e, p);
    } else {
        probe_interest(e, p, EPOLLIN);
    }
}

static void probe_event(struct cap_scan_engine *e, struct probe *p, uint32_t ev)
{
    switch (p->state) {
    case PROBE_CONNECTING:
        probe_connected(e, p);
        break;
    case PROBE_STARTTLS:
        probe_starttls_step(e, p, ev);
        break;
    case PROBE_HANDSHAKING:
        probe_handshake(e, p);
        break;
    default:
        break;
    }
}

static void probe_timeout(struct cap_scan_engine *e, struct probe *p)
{
    if (p->deadline_ms < p->final_ms) {
        /* Half-time check of a first attempt: a server that has said nothing at all to the
         * hybrid ClientHello gets the classical retry with the time that is left. */
        bool silent =
            p->state == PROBE_HANDSHAKING && p->ssl && BIO_number_read(SSL_get_rbio(p->ssl)) == 0;
        p->deadline_ms = p->final_ms;
        heap_down(e, p->heap_idx);
        if (silent && p->hybrid && !p->retried)
            probe_restart_classical(e, p);
        return;
    }
    const char *phase = p->state == PROBE_CONNECTING ? "connect"
                        : p->state == PROBE_STARTTLS ? "starttls"
                                                     : "handshake";
    probe_finish(e, p, "timeout", "no answer within %d ms (%s)", p->res->req.timeout_ms, phase);
}

/* Starts the probe res (taken from job j) in a free slot. Called with e->mu held. */
static void probe_start(struct cap_scan_engine *e, struct cap_scan_job *j,
                        struct cap_scan_result *res)
{
    int idx = e->free_stack[--e->free_n];
    struct probe *p = &e->slots[idx];
    memset(p, 0, offsetof(struct probe, st));
    p->st.len = 0;
    p->fd = -1;
    p->job = j;
    p->res = res;
    p->start_ms = now_ms();
    p->final_ms = p->start_ms + (res->req.timeout_ms > 0 ? res->req.timeout_ms : 5000);
    p->hybrid = e->ctx_hybrid != NULL;
    /* With a first (hybrid) attempt, a timer at half time checks whether the server answered. */
    p->deadline_ms = p->hybrid ? p->start_ms + (p->final_ms - p->start_ms) / 2 : p->final_ms;
    res->hybrid_offered = p->hybrid;
    p->heap_idx = SIZE_MAX;
    heap_push(e, p);
    j->inflight++;
    if (j->inflight > j->peak)
        j->peak = j->inflight;
    e->inflight++;
    if (e->inflight > e->inflight_peak)
        e->inflight_peak = e->inflight;
    e->started++;
    (void)probe_connect(e, p);
}

/* Releases finished probes: results to their jobs, slots back to the pool. */
static void release_done(struct cap_scan_engine *e)
{
    if (!e->done)
        return;
    pthread_mutex_lock(&e->mu);
    while (e->done) {
        struct probe *p = e->done;
        e->done = p->done_next;
        probe_close_conn(p);
        if (p->chain) {
            sk_X509_pop_free(p->chain, X509_free);
            p->chain = NULL;
        }
        struct cap_scan_job *j = p->job;
        struct cap_scan_result *r = p->res;
        r->next = NULL;
        j->inflight--;
        e->inflight--;
        e->finished++;
        if (j->cancel) {
            cap_scan_result_free(r);
        } else {
            if (j->res_tail)
                j->res_tail->next = r;
            else
                j->res_head = r;
            j->res_tail = r;
            pthread_cond_broadcast(&j->cond);
        }
        if (j->cancel && j->inflight == 0)
            pthread_cond_broadcast(&j->cond);
        p->res = NULL;
        p->job = NULL;
        p->state = PROBE_FREE;
        e->free_stack[e->free_n++] = (int)(p - e->slots);
    }
    cap_metric_set(e->m_inflight, NULL, e->inflight);
    pthread_mutex_unlock(&e->mu);
}

/* Aborts the probes of cancelled jobs and detaches cancelled jobs with nothing in flight. */
static void handle_cancels(struct cap_scan_engine *e)
{
    if (!atomic_exchange(&e->cancel_pending, false))
        return;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->nslots; i++) {
        struct probe *p = &e->slots[i];
        if (p->state != PROBE_FREE && p->state != PROBE_DONE && p->job->cancel)
            probe_finish(e, p, "timeout", "cancelled");
    }
    pthread_mutex_unlock(&e->mu);
    release_done(e);
    pthread_mutex_lock(&e->mu);
    struct cap_scan_job *j = e->jobs;
    while (j) {
        struct cap_scan_job *next = j->next;
        if (j->cancel && j->inflight == 0) {
            if (j->prev)
                j->prev->next = j->next;
            else
                e->jobs = j->next;
            if (j->next)
                j->next->prev = j->prev;
            if (e->rr == j)
                e->rr = j->next;
            j->detached = true;
            pthread_cond_broadcast(&j->cond);
        }
        j = next;
    }
    pthread_mutex_unlock(&e->mu);
}

/* Round-robin admission: one probe per eligible job per pass, until the slots run out. */
static void admit(struct cap_scan_engine *e)
{
    pthread_mutex_lock(&e->mu);
    while (e->free_n > 0 && e->jobs) {
        bool progress = false;
        struct cap_scan_job *start = e->rr ? e->rr : e->jobs;
        struct cap_scan_job *j = start;
        do {
            if (!j->cancel && j->pend_head && j->inflight < j->concurrency) {
                struct cap_scan_result *r = j->pend_head;
                j->pend_head = r->next;
                if (!j->pend_head)
                    j->pend_tail = NULL;
                r->next = NULL;
                probe_start(e, j, r);
                progress = true;
            }
            j = j->next ? j->next : e->jobs;
            if (e->free_n == 0)
                break;
        } while (j != start);
        e->rr = j;
        if (!progress)
            break;
    }
    cap_metric_set(e->m_inflight, NULL, e->inflight);
    pthread_mutex_unlock(&e->mu);
}

static void *loop_main(void *arg)
{
    struct cap_scan_engine *e = arg;
    struct epoll_event evs[256];
    while (!atomic_load(&e->stop)) {
        int timeout = 1000;
        if (e->heap_n > 0) {
            int64_t d = e->heap[0]->deadline_ms - now_ms();
            timeout = d < 0 ? 0 : (d > 1000 ? 1000 : (int)d);
        }
        int n = epoll_wait(e->epfd, evs, 256, timeout);
        if (n < 0 && errno != EINTR) {
            cap_log(CAP_LOG_ERROR, "scan_loop_error", CAP_LS("err", strerror(errno)));
            usleep(10000);
            continue;
        }
        for (int i = 0; i < n; i++) {
            uint32_t idx = evs[i].data.u32;
            if (idx == EVFD_TAG) {
                uint64_t v;
                ssize_t rd = read(e->evfd, &v, sizeof v);
                (void)rd;
                continue;
            }
            struct probe *p = &e->slots[idx];
            probe_event(e, p, evs[i].events);
        }
        int64_t t = now_ms();
        while (e->heap_n > 0 && e->heap[0]->deadline_ms <= t)
            probe_timeout(e, e->heap[0]);
        release_done(e);
        handle_cancels(e);
        admit(e);
        release_done(e); /* probes that failed at once (refused connect) */
    }
    return NULL;
}

static void wake(struct cap_scan_engine *e)
{
    uint64_t one = 1;
    ssize_t w = write(e->evfd, &one, sizeof one);
    (void)w;
}

/* Capture hook in place of chain verification: keeps the chain as sent (leaf first) and lets
 * the handshake go on; verification happens afterwards, off the loop. */
static int capture_chain_cb(X509_STORE_CTX *x, void *arg)
{
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct probe *p = ssl ? SSL_get_ex_data(ssl, ssl_ex_idx) : NULL;
    STACK_OF(X509) *sk = X509_STORE_CTX_get0_untrusted(x);
    if (p && sk && !p->chain)
        p->chain = X509_chain_up_ref(sk);
    return 1;
}

static SSL_CTX *make_ctx(const char *groups)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c)
        return NULL;
    SSL_CTX_set_security_level(c, 0);
    if (SSL_CTX_set_min_proto_version(c, TLS1_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(c, 0) != 1 || SSL_CTX_set_cipher_list(c, TLS12_SUITES) != 1 ||
        SSL_CTX_set_ciphersuites(c, TLS13_SUITES) != 1 ||
        SSL_CTX_set1_groups_list(c, groups) != 1) {
        SSL_CTX_free(c);
        return NULL;
    }
    SSL_CTX_set_options(c, SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_cert_verify_callback(c, capture_chain_cb, NULL);
    SSL_CTX_set_max_cert_list(c, CERT_LIST_MAX);
    return c;
}

/* Raises RLIMIT_NOFILE for `slots` sockets; returns the number of slots that fit. */
static int fit_fd_limit(int slots)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return slots;
    rlim_t need = (rlim_t)slots + FD_MARGIN;
    if (rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        int fit = rl.rlim_cur > FD_MARGIN * 2 ? (int)(rl.rlim_cur - FD_MARGIN) : 1;
        cap_log(CAP_LOG_WARN, "scan_slots_cut", CAP_LI("slots", slots), CAP_LI("fit", fit),
                CAP_LI("nofile", (long long)rl.rlim_cur));
        return fit;
    }
    return slots;
}

struct cap_scan_engine *cap_scan_engine_new(int slots, struct cap_err *err)
{
    return cap_scan_engine_new_groups(slots, NULL, err);
}

struct cap_scan_engine *cap_scan_engine_new_groups(int slots, const char *first_groups,
                                                   struct cap_err *err)
{
    (void)cap_ossl_init(); /* certificates decoded directly on OpenSSL 3.0 */
    pthread_once(&ex_once, ex_index_init);
    /* OpenSSL writes to sockets the peer may have reset: a write must fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (slots < 1)
        slots = 1;
    slots = fit_fd_limit(slots);
    struct cap_scan_engine *e = calloc(1, sizeof *e);
    if (!e) {
        cap_err_set(err, CAP_E_NOMEM, "scan engine: out of memory");
        return NULL;
    }
    e->epfd = e->evfd = -1;
    pthread_mutex_init(&e->mu, NULL);
    e->nslots = slots;
    e->slots = calloc((size_t)slots, sizeof *e->slots);
    e->free_stack = calloc((size_t)slots, sizeof *e->free_stack);
    e->heap = calloc((size_t)slots, sizeof *e->heap);
    if (!e->slots || !e->free_stack || !e->heap) {
        cap_err_set(err, CAP_E_NOMEM, "scan engine: out of memory for %d slots", slots);
        goto fail;
    }
    for (int i = 0; i < slots; i++) {
        e->slots[i].fd = -1;
        e->free_stack[i] = slots - 1 - i;
    }
    e->free_n = slots;
    e->ctx_classical = make_ctx(GROUPS_CLASSICAL);
    if (!e->ctx_classical) {
        cap_err_set(err, CAP_E_IO, "scan engine: cannot set up the TLS client context");
        goto fail;
    }
    /* Hybrid ML-KEM groups exist from OpenSSL 3.5 on: offered when the library has them. */
    if (first_groups) {
        e->ctx_hybrid = make_ctx(first_groups);
        if (!e->ctx_hybrid) {
            cap_err_set(err, CAP_E_INVALID, "scan engine: groups \"%.64s\" not accepted",
                        first_groups);
            goto fail;
        }
    } else if (OpenSSL_version_num() >= 0x30500000L) {
        e->ctx_hybrid = make_ctx(GROUPS_HYBRID);
    }
    ERR_clear_error();
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->epfd < 0 || e->evfd < 0) {
        cap_err_set(err, CAP_E_IO, "scan engine: epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ee = {.events = EPOLLIN, .data.u32 = EVFD_TAG};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ee) != 0) {
        cap_err_set(err, CAP_E_IO, "scan engine: epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    e->m_inflight = cap_metrics_gauge("cap_handshakes_in_flight",
                                      "Handshakes in progress in this worker.", NULL);
    cap_metric_set(cap_metrics_gauge("cap_handshake_slots",
                                     "The cap on handshakes in flight "
                                     "(worker.max_concurrent_discovery).",
                                     NULL),
                   NULL, slots);
    if (pthread_create(&e->thread, NULL, loop_main, e) != 0) {
        cap_err_set(err, CAP_E_IO, "scan engine: cannot start the loop thread");
        goto fail;
    }
    cap_log(CAP_LOG_INFO, "scan_engine_started", CAP_LI("slots", slots),
            CAP_LI("hybrid", e->ctx_hybrid != NULL),
            CAP_LS("openssl", OpenSSL_version(OPENSSL_VERSION)));
    return e;
fail:
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->evfd >= 0)
        close(e->evfd);
    SSL_CTX_free(e->ctx_classical);
    SSL_CTX_free(e->ctx_hybrid);
    free(e->slots);
    free(e->free_stack);
    free(e->heap);
    pthread_mutex_destroy(&e->mu);
    free(e);
    return NULL;
}

void cap_scan_engine_free(struct cap_scan_engine *e)
{
    if (!e)
        return;
    atomic_store(&e->stop, true);
    wake(e);
    pthread_join(e->thread, NULL);
    for (int i = 0; i < e->nslots; i++) {
        struct probe *p = &e->slots[i];
        if (p->state != PROBE_FREE) {
            probe_close_conn(p);
            if (p->chain)
                sk_X509_pop_free(p->chain, X509_free);
            cap_scan_result_free(p->res);
        }
    }
    close(e->epfd);
    close(e->evfd);
    SSL_CTX_free(e->ctx_classical);
    SSL_CTX_free(e->ctx_hybrid);
    free(e->slots);
    free(e->free_stack);
    free(e->heap);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void cap_scan_engine_stats(struct cap_scan_engine *e, struct cap_scan_engine_stats *out)
{
    pthread_mutex_lock(&e->mu);
    out->slots = e->nslots;
    out->inflight = e->inflight;
    out->inflight_peak = e->inflight_peak;
    out->started = e->started;
    out->finished = e->finished;
    out->hybrid = e->ctx_hybrid != NULL;
    pthread_mutex_unlock(&e->mu);
    out->connecting = atomic_load(&e->in_state[PROBE_CONNECTING]);
    out->starttls = atomic_load(&e->in_state[PROBE_STARTTLS]);
    out->handshaking = atomic_load(&e->in_state[PROBE_HANDSHAKING]);
}

struct cap_scan_job *cap_scan_job_new(struct cap_scan_engine *e, int concurrency,
                                      struct cap_err *err)
{
    struct cap_scan_job *j = calloc(1, sizeof *j);
    if (!j) {
        cap_err_set(err, CAP_E_NOMEM, "scan job: out of memory");
        return NULL;
    }
    j->e = e;
    j->concurrency = concurrency < 1 ? 1 : concurrency;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&e->mu);
    j->next = e->jobs;
    if (e->jobs)
        e->jobs->prev = j;
    e->jobs = j;
    pthread_mutex_unlock(&e->mu);
    return j;
}

int cap_scan_job_submit(struct cap_scan_job *j, const struct cap_scan_req *req, struct cap_err *err)
{
    struct cap_scan_result *r = calloc(1, sizeof *r);
    if (!r) {
        cap_err_set(err, CAP_E_NOMEM, "scan job: out of memory");
        return -1;
    }
    r->req = *req;
    r->outcome = "timeout";
    struct cap_scan_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    if (j->pend_tail)
        j->pend_tail->next = r;
    else
        j->pend_head = r;
    j->pend_tail = r;
    j->outstanding++;
    pthread_mutex_unlock(&e->mu);
    wake(e);
    return 0;
}

struct cap_scan_result *cap_scan_job_wait(struct cap_scan_job *j, int timeout_ms)
{
    struct cap_scan_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    if (!j->res_head && timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!j->res_head) {
            if (pthread_cond_timedwait(&j->cond, &e->mu, &ts) != 0)
                break;
        }
    }
    struct cap_scan_result *r = j->res_head;
    for (struct cap_scan_result *x = r; x; x = x->next)
        j->outstanding--;
    j->res_head = j->res_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    return r;
}

size_t cap_scan_job_outstanding(struct cap_scan_job *j)
{
    pthread_mutex_lock(&j->e->mu);
    size_t n = j->outstanding;
    pthread_mutex_unlock(&j->e->mu);
    return n;
}

int cap_scan_job_peak(struct cap_scan_job *j)
{
    pthread_mutex_lock(&j->e->mu);
    int n = j->peak;
    pthread_mutex_unlock(&j->e->mu);
    return n;
}

void cap_scan_job_free(struct cap_scan_job *j)
{
    if (!j)
        return;
    struct cap_scan_engine *e = j->e;
    pthread_mutex_lock(&e->mu);
    j->cancel = true;
    struct cap_scan_result *pend = j->pend_head;
    j->pend_head = j->pend_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    cap_scan_result_free(pend);
    atomic_store(&e->cancel_pending, true);
    wake(e);
    pthread_mutex_lock(&e->mu);
    while (!j->detached) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 100000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&j->cond, &e->mu, &ts);
        if (!j->detached) {
            atomic_store(&e->cancel_pending, true);
            wake(e);
        }
    }
    struct cap_scan_result *res = j->res_head;
    j->res_head = j->res_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    cap_scan_result_free(res);
    pthread_cond_destroy(&j->cond);
    free(j);
}

void cap_scan_result_free(struct cap_scan_result *r)
{
    while (r) {
        struct cap_scan_result *next = r->next;
        if (r->chain)
            sk_X509_pop_free(r->chain, X509_free);
        free(r);
        r = next;
    }
}
