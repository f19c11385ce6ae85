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
#include "common/pqc.h"

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
/* File descriptors kept free for everything else in the process when the caller gives no
 * reserve. */
#define FD_RESERVE_DEFAULT 256
/* After a local failure (no descriptor, no memory), new connects pause this long. */
#define LOCAL_BACKOFF_MS 100
/* SYN retransmissions of a connect (TCP_SYNCNT); nmap -T4 sends 2 SYNs, zmap 1. */
#define SYN_RETRIES 1
/* Largest Diffie-Hellman group a server may make us compute with (bits). */
#define DH_BITS_MAX 4096
#define EVFD_TAG UINT32_MAX

/* A connected socket waits at most this long for a TLS slot; then it is closed and its target
 * queued again (the admission keeps this rare: see admit_connects). */
#define WAIT_SLOT_MS 1000
/* A pending connect not answered after this long counts as silent for the job's estimate of
 * how many of its connects answer (the bounds; 4 x the smoothed connect time in between). */
#define JUDGE_MIN_MS 200
#define JUDGE_MAX_MS 1000
/* Memory of the answer estimate, in judged connects. */
#define ANSWER_MEMORY 256.0
/* Epoll data of a TLS-slot-less wake-up. */
#define EVFD_TAG UINT32_MAX

enum probe_state {
    PROBE_FREE = 0,
    PROBE_CONNECTING,
    PROBE_WAITING,
    PROBE_STARTTLS,
    PROBE_HANDSHAKING,
    PROBE_DONE
};

static const char *const state_names[] = {"free",     "connecting",  "waiting",
                                          "starttls", "handshaking", "done"};

/* What only a probe holding a TLS slot needs (the STARTTLS buffer is most of it). */
struct tls_slot {
    SSL *ssl;
    const uint8_t *out;
    size_t out_len;
    struct cap_starttls st;
    int next_free;
};

/* One target in progress, from its first SYN to its result: small, so that thousands of
 * pending connects cost little; it holds a TLS slot only from connected to done. */
struct probe {
    enum probe_state state;
    int fd;
    int tls; /* index of the TLS slot held, -1 for none */
    uint32_t events;
    struct cap_scan_job *job;
    struct cap_scan_result *res;
    int64_t start_ms, deadline_ms, final_ms; /* deadline_ms: next timer; final_ms: the end */
    int64_t connected_ms;
    size_t heap_idx;
    bool hybrid, retried, judged, requeue;
    int dh_bits_refused; /* the server offered a DH group of this many bits: refused */
    STACK_OF(X509) * chain;
    struct probe *done_next;
    struct probe *prev, *next; /* the engine's young list, or the job's waiting list */
};

struct cap_scan_job {
    struct cap_scan_engine *e;
    int concurrency, inflight, peak; /* inflight: TLS slots held */
    int pending;                     /* pending connects and waiting sockets held */
    int young;                       /* pending connects not judged yet */
    int waiting_n;
    struct probe *wait_head, *wait_tail;
    double answered, judged; /* decayed counts: connects that completed, connects judged */
    int rate;                /* own connects per second, 0: the engine's only */
    double tokens;
    int64_t tokens_ms;
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
    struct tls_slot *tls;
    int tls_free; /* head of the free TLS slots, -1 when none */
    int nprobes;  /* pending_max + nslots */
    struct probe *probes;
    int *free_stack;
    int free_n;
    int pending_max, pending, pending_peak;
    int rate;
    double tokens;
    int64_t tokens_ms;
    struct probe *young_head, *young_tail; /* pending connects by start, not judged yet */
    double srtt_ms;                        /* smoothed time a connect takes to be answered */
    int64_t wake_ms;                       /* admission wants the loop back by then (0: no) */
    int64_t local_backoff_ms;              /* no new connects before then (a local failure) */
    struct probe **heap;
    size_t heap_n;
    struct probe *done;
    struct cap_metric *m_inflight; /* cap_handshakes_in_flight */
    struct cap_metric *m_pending;  /* cap_scan_pending_connects */
    struct cap_metric *m_empty;    /* cap_scan_empty_targets_total{reason} */
    /* stats (under mu) */
    int inflight, inflight_peak;
    uint64_t started, finished, requeued, local_failures;
    atomic_int in_state[PROBE_DONE]; /* probes per phase */
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

/* Moves p's timer to t. */
static void heap_set(struct cap_scan_engine *e, struct probe *p, int64_t t)
{
    p->deadline_ms = t;
    if (p->heap_idx < e->heap_n && e->heap[p->heap_idx] == p) {
        heap_down(e, p->heap_idx);
        heap_up(e, p->heap_idx);
    } else {
        heap_push(e, p);
    }
}

/* ---- group code points ---- */

uint16_t cap_scan_group_codepoint(int nid)
{
    if (nid & TLSEXT_nid_unknown)
        return (uint16_t)(nid & 0xffff);
    return cap_pqc_group_by_nid(nid);
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
    struct epoll_event ee = {.events = ev, .data.u32 = (uint32_t)(p - e->probes)};
    if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, p->fd, &ee) == 0)
        p->events = ev;
}

static struct tls_slot *probe_tls(struct cap_scan_engine *e, struct probe *p)
{
    return &e->tls[p->tls];
}

/* Intrusive lists: the engine's young connects and each job's waiting sockets. */
static void list_append(struct probe **head, struct probe **tail, struct probe *p)
{
    p->next = NULL;
    p->prev = *tail;
    if (*tail)
        (*tail)->next = p;
    else
        *head = p;
    *tail = p;
}

static void list_unlink(struct probe **head, struct probe **tail, struct probe *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        *head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        *tail = p->prev;
    p->prev = p->next = NULL;
}

/* Records whether a first connect completed, in the job's estimate of how many of its connects
 * will need a TLS slot; the probe leaves the young list. Loop thread only. */
static void probe_judge(struct cap_scan_engine *e, struct probe *p, bool connected)
{
    if (p->judged)
        return;
    p->judged = true;
    list_unlink(&e->young_head, &e->young_tail, p);
    struct cap_scan_job *j = p->job;
    j->young--;
    j->answered = j->answered * (1.0 - 1.0 / ANSWER_MEMORY) + (connected ? 1.0 : 0.0);
    j->judged = j->judged * (1.0 - 1.0 / ANSWER_MEMORY) + 1.0;
}

/* A connect answered (completed or reset) after rtt ms: the smoothed connect time. */
static void note_rtt(struct cap_scan_engine *e, int64_t rtt)
{
    double r = rtt < 0 ? 0.0 : (double)rtt;
    e->srtt_ms = e->srtt_ms <= 0.0 ? r : e->srtt_ms * 0.875 + r * 0.125;
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
    if (!p->judged)
        probe_judge(e, p, false);
    if (p->state == PROBE_WAITING) {
        list_unlink(&p->job->wait_head, &p->job->wait_tail, p);
        p->job->waiting_n--;
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

/* What a connect that never completed says about the address: reset, or no way there. */
static const char *connect_empty(int err)
{
    switch (err) {
    case ECONNREFUSED:
    case ECONNRESET:
        return "closed";
    case ETIMEDOUT:
        return "silent";
    default: /* ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL, EAFNOSUPPORT, EACCES, EPERM, ... */
        return "no_route";
    }
}

/* A connect failed with errno ce: the result says so, and, when the socket never connected in
 * this probe, how the address is empty. */
static void probe_connect_failed(struct cap_scan_engine *e, struct probe *p, int ce)
{
    if (p->tls < 0) {
        p->res->empty = connect_empty(ce);
        if (!p->judged)
            note_rtt(e, now_ms() - p->start_ms);
    }
    probe_finish(e, p, connect_outcome(ce), "connect: %s", strerror(ce));
}

/* A failure of this worker (no descriptor, no memory), not of the endpoint: the target goes
 * back to its job's queue and new connects pause a little; nothing is recorded against the
 * endpoint. */
static void probe_local_failure(struct cap_scan_engine *e, struct probe *p, const char *what,
                                int en)
{
    e->local_failures++;
    if (e->local_failures < 10 || e->local_failures % 1000 == 0)
        cap_log(CAP_LOG_WARN, "scan_local_failure", CAP_LS("err", what),
                CAP_LS("reason", strerror(en)), CAP_LI("count", (long long)e->local_failures),
                CAP_LS("target", p->res->req.host), CAP_LI("port", p->res->req.port));
    e->local_backoff_ms = now_ms() + LOCAL_BACKOFF_MS;
    p->requeue = true;
    probe_finish(e, p, "timeout", NULL);
}

static int probe_connect(struct cap_scan_engine *e, struct probe *p)
{
    /* Connecting from here on: a connect that fails at once still ends through probe_finish. */
    probe_set_state(e, p, PROBE_CONNECTING);
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
        int se = errno;
        if (se == EAFNOSUPPORT) { /* no IPv6 in this kernel or namespace: no route there */
            probe_connect_failed(e, p, se);
            return -1;
        }
        probe_local_failure(e, p, "cannot create a socket", se);
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* One SYN retry (the kernel's default is six): the kernel gives up on a silent address
     * after about 3 s, having sent 2 SYNs (3 where the first retries are linear, kernel 6.5
     * and later), where it would send one a second until the deadline. */
    int syncnt = SYN_RETRIES;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &syncnt, sizeof syncnt);
    /* Close with a reset: a scanner must not pile up TIME_WAIT sockets. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    p->fd = fd;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        probe_connect_failed(e, p, errno);
        return -1;
    }
    struct epoll_event ee = {.events = EPOLLOUT, .data.u32 = (uint32_t)(p - e->probes)};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ee) != 0) {
        probe_local_failure(e, p, "cannot watch a socket (epoll)", errno);
        return -1;
    }
    p->events = EPOLLOUT;
    return 0;
}

/* Records what the handshake negotiated. */
static void probe_capture(struct cap_scan_engine *e, struct probe *p)
{
    SSL *ssl = probe_tls(e, p)->ssl;
    struct cap_scan_result *r = p->res;
    snprintf(r->version, sizeof r->version, "%s", SSL_get_version(ssl));
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    const char *cn = c ? SSL_CIPHER_standard_name(c) : NULL;
    snprintf(r->cipher, sizeof r->cipher, "%s", cn ? cn : (c ? SSL_CIPHER_get_name(c) : ""));
    int nid = SSL_get_negotiated_group(ssl);
    if (nid != 0 && nid != NID_undef) {
        const char *gn = SSL_group_to_name(ssl, nid);
        r->group_id = cap_scan_group_codepoint(nid);
        if (r->group_id == 0)
            r->group_id = cap_pqc_group_by_name(gn);
        snprintf(r->group, sizeof r->group, "%s", gn ? gn : "");
    } else {
        EVP_PKEY *k = NULL;
        if (SSL_get_peer_tmp_key(ssl, &k) == 1 && k) {
            if (EVP_PKEY_get_base_id(k) == EVP_PKEY_DH)
                snprintf(r->group, sizeof r->group, "DHE-%d", EVP_PKEY_get_bits(k));
            EVP_PKEY_free(k);
        }
    }
    if (!p->chain) {
        STACK_OF(X509) *sk = SSL_get_peer_cert_chain(ssl);
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
    struct tls_slot *t = probe_tls(e, p);
    t->ssl = SSL_new(p->hybrid ? e->ctx_hybrid : e->ctx_classical);
    if (!t->ssl || SSL_set_fd(t->ssl, p->fd) != 1) {
        probe_local_failure(e, p, "cannot create TLS state", ENOMEM);
        return;
    }
    SSL_set_ex_data(t->ssl, ssl_ex_idx, p);
    if (p->res->req.sni[0] && SSL_set_tlsext_host_name(t->ssl, p->res->req.sni) != 1) {
        probe_finish(e, p, "tls_error", "cannot send server name \"%.64s\" (SNI)", p->res->req.sni);
        return;
    }
    SSL_set_connect_state(t->ssl);
    probe_set_state(e, p, PROBE_HANDSHAKING);
    probe_handshake(e, p);
}

static void probe_handshake(struct cap_scan_engine *e, struct probe *p)
{
    SSL *ssl = probe_tls(e, p)->ssl;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        probe_capture(e, p);
        probe_finish(e, p, "ok", NULL);
        return;
    }
    int se = SSL_get_error(ssl, rc);
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
    if (p->dh_bits_refused > 0) {
        probe_finish(e, p, "tls_error", "server's DH group of %d bits refused (more than %d)",
                     p->dh_bits_refused, DH_BITS_MAX);
        return;
    }
    /* A server that chokes on the hybrid ClientHello gets one classical retry. */
    if (p->hybrid && !p->retried && (reset_like || se == SSL_ERROR_SSL) && now_ms() < p->final_ms) {
        probe_restart_classical(e, p);
        return;
    }
    probe_finish(e, p, "tls_error", "%s", why);
}

static void probe_close_conn(struct cap_scan_engine *e, struct probe *p)
{
    if (p->tls >= 0 && probe_tls(e, p)->ssl) {
        SSL_free(probe_tls(e, p)->ssl);
        probe_tls(e, p)->ssl = NULL;
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
    probe_close_conn(e, p);
    if (p->chain) {
        sk_X509_pop_free(p->chain, X509_free);
        p->chain = NULL;
    }
    p->hybrid = false;
    p->retried = true;
    p->res->classical_retry = true;
    p->res->hybrid_offered = false;
    /* The retry keeps its TLS slot: it connects and goes straight on to TLS. */
    (void)probe_connect(e, p);
}

static void probe_starttls_step(struct cap_scan_engine *e, struct probe *p, uint32_t ev);

/* Writes the STARTTLS bytes still pending; then waits for the server's answer. */
static void probe_starttls_write(struct cap_scan_engine *e, struct probe *p)
{
    struct tls_slot *t = probe_tls(e, p);
    while (t->out_len > 0) {
        ssize_t w = send(p->fd, t->out, t->out_len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            probe_interest(e, p, EPOLLOUT);
            return;
        }
        if (w <= 0) {
            probe_finish(e, p, "tls_error", "starttls %s: send: %s", cap_starttls_name(t->st.proto),
                         strerror(errno));
            return;
        }
        t->out += w;
        t->out_len -= (size_t)w;
    }
    probe_interest(e, p, EPOLLIN);
    /* Lines already buffered are processed now, not when more bytes come. */
    if (t->st.len > 0)
        probe_starttls_step(e, p, 0);
}

static void probe_starttls_step(struct cap_scan_engine *e, struct probe *p, uint32_t ev)
{
    struct tls_slot *t = probe_tls(e, p);
    if (t->out_len > 0) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            probe_starttls_write(e, p);
        return;
    }
    uint8_t buf[CAP_STARTTLS_LINE_MAX];
    size_t room = sizeof t->st.buf - t->st.len;
    ssize_t n = 0;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        n = recv(p->fd, buf, room ? room : 1, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            probe_finish(e, p, "tls_error", "starttls %s: %s", cap_starttls_name(t->st.proto),
                         strerror(errno));
            return;
        }
        if (n == 0) {
            probe_finish(e, p, "tls_error", "starttls %s: connection closed by the server",
                         cap_starttls_name(t->st.proto));
            return;
        }
    }
    const uint8_t *out = NULL;
    size_t out_len = 0;
    char why[CAP_SCAN_ERROR_MAX - 20];
    enum cap_starttls_status s =
        cap_starttls_input(&t->st, buf, (size_t)n, &out, &out_len, why, sizeof why);
    switch (s) {
    case CAP_STARTTLS_MORE:
        return;
    case CAP_STARTTLS_SEND:
        t->out = out;
        t->out_len = out_len;
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

/* The probe holds a TLS slot and a connected socket: STARTTLS if asked, then the handshake. */
static void probe_start_session(struct cap_scan_engine *e, struct probe *p)
{
    if (p->res->req.starttls == CAP_STARTTLS_NONE) {
        probe_start_tls(e, p);
        return;
    }
    struct tls_slot *t = probe_tls(e, p);
    memset(&t->st, 0, offsetof(struct cap_starttls, buf));
    t->out = NULL;
    t->out_len = 0;
    probe_set_state(e, p, PROBE_STARTTLS);
    const uint8_t *out = NULL;
    size_t out_len = 0;
    enum cap_starttls_status s = cap_starttls_begin(&t->st, p->res->req.starttls, &out, &out_len);
    if (s == CAP_STARTTLS_SEND) {
        t->out = out;
        t->out_len = out_len;
        probe_starttls_write(e, p);
    } else {
        probe_interest(e, p, EPOLLIN);
    }
}

static void probe_connected(struct cap_scan_engine *e, struct probe *p)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr != 0) {
        probe_connect_failed(e, p, soerr);
        return;
    }
    if (p->tls >= 0) { /* the classical retry of a probe that holds its slot */
        probe_start_session(e, p);
        return;
    }
    int64_t t = now_ms();
    if (!p->judged)
        note_rtt(e, t - p->start_ms);
    probe_judge(e, p, true);
    /* Connected: wait (no events, at most WAIT_SLOT_MS) until admit() gives it a TLS slot. */
    p->connected_ms = t;
    probe_interest(e, p, 0);
    probe_set_state(e, p, PROBE_WAITING);
    list_append(&p->job->wait_head, &p->job->wait_tail, p);
    p->job->waiting_n++;
    heap_set(e, p, t + WAIT_SLOT_MS);
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
    if (p->state == PROBE_WAITING) {
        /* No slot within WAIT_SLOT_MS: let the connection go and connect again later. */
        p->requeue = true;
        probe_finish(e, p, "timeout", NULL);
        return;
    }
    if (p->deadline_ms < p->final_ms) {
        /* Half-time check of a first attempt: a server that has said nothing at all to the
         * hybrid ClientHello gets the classical retry with the time that is left. */
        SSL *ssl = p->tls >= 0 ? probe_tls(e, p)->ssl : NULL;
        bool silent =
            p->state == PROBE_HANDSHAKING && ssl && BIO_number_read(SSL_get_rbio(ssl)) == 0;
        heap_set(e, p, p->final_ms);
        if (silent && p->hybrid && !p->retried)
            probe_restart_classical(e, p);
        return;
    }
    if (p->state == PROBE_CONNECTING && p->tls < 0) {
        p->res->empty = "silent";
        probe_finish(e, p, "timeout", "no answer within %d ms (connect)", p->res->req.timeout_ms);
        return;
    }
    const char *phase = p->state == PROBE_CONNECTING ? "connect"
                        : p->state == PROBE_STARTTLS ? "starttls"
                                                     : "handshake";
    probe_finish(e, p, "timeout", "no answer within %d ms (%s)", p->res->req.timeout_ms, phase);
}

/* Starts a connect for res (taken from job j). Called with e->mu held. */
static void probe_start(struct cap_scan_engine *e, struct cap_scan_job *j,
                        struct cap_scan_result *res, int64_t t)
{
    int idx = e->free_stack[--e->free_n];
    struct probe *p = &e->probes[idx];
    memset(p, 0, sizeof *p);
    p->fd = -1;
    p->tls = -1;
    p->job = j;
    p->res = res;
    p->start_ms = t;
    p->final_ms = t + (res->req.timeout_ms > 0 ? res->req.timeout_ms : 5000);
    p->hybrid = e->ctx_hybrid != NULL;
    res->hybrid_offered = p->hybrid;
    res->classical_retry = false;
    res->empty = NULL;
    p->heap_idx = SIZE_MAX;
    heap_set(e, p, p->final_ms);
    list_append(&e->young_head, &e->young_tail, p);
    j->young++;
    j->pending++;
    e->pending++;
    if (e->pending > e->pending_peak)
        e->pending_peak = e->pending;
    e->started++;
    (void)probe_connect(e, p);
}

/* Gives the waiting probe p a TLS slot. The time it waited does not count against its
 * deadline. Called with e->mu held. */
static void probe_take_slot(struct cap_scan_engine *e, struct probe *p, int64_t t)
{
    struct cap_scan_job *j = p->job;
    int idx = e->tls_free;
    e->tls_free = e->tls[idx].next_free;
    e->tls[idx].ssl = NULL;
    p->tls = idx;
    list_unlink(&j->wait_head, &j->wait_tail, p);
    j->waiting_n--;
    j->pending--;
    e->pending--;
    j->inflight++;
    if (j->inflight > j->peak)
        j->peak = j->inflight;
    e->inflight++;
    if (e->inflight > e->inflight_peak)
        e->inflight_peak = e->inflight;
    p->final_ms += t - p->connected_ms;
    /* With a first (hybrid) attempt, a timer at half time checks whether the server answered. */
    heap_set(e, p, p->hybrid ? t + (p->final_ms - t) / 2 : p->final_ms);
    probe_start_session(e, p);
}

/* Releases finished probes: results to their jobs (a probe that waited too long for a slot
 * goes back to the front of its job's queue), slots back to the pools. */
static void release_done(struct cap_scan_engine *e)
{
    if (!e->done)
        return;
    pthread_mutex_lock(&e->mu);
    while (e->done) {
        struct probe *p = e->done;
        e->done = p->done_next;
        probe_close_conn(e, p);
        if (p->chain) {
            sk_X509_pop_free(p->chain, X509_free);
            p->chain = NULL;
        }
        struct cap_scan_job *j = p->job;
        struct cap_scan_result *r = p->res;
        r->next = NULL;
        if (p->tls >= 0) {
            e->tls[p->tls].next_free = e->tls_free;
            e->tls_free = p->tls;
            p->tls = -1;
            j->inflight--;
            e->inflight--;
        } else {
            j->pending--;
            e->pending--;
        }
        if (p->requeue && !j->cancel) {
            e->requeued++;
            r->outcome = "timeout";
            r->error[0] = '\0';
            r->next = j->pend_head;
            j->pend_head = r;
            if (!j->pend_tail)
                j->pend_tail = r;
        } else if (j->cancel) {
            e->finished++;
            cap_scan_result_free(r);
        } else {
            e->finished++;
            if (j->res_tail)
                j->res_tail->next = r;
            else
                j->res_head = r;
            j->res_tail = r;
            pthread_cond_broadcast(&j->cond);
        }
        if (j->cancel && j->inflight == 0 && j->pending == 0)
            pthread_cond_broadcast(&j->cond);
        p->res = NULL;
        p->job = NULL;
        p->state = PROBE_FREE;
        e->free_stack[e->free_n++] = (int)(p - e->probes);
    }
    cap_metric_set(e->m_inflight, NULL, e->inflight);
    cap_metric_set(e->m_pending, NULL, e->pending);
    pthread_mutex_unlock(&e->mu);
}

/* Aborts the probes of cancelled jobs and detaches cancelled jobs with nothing in flight. */
static void handle_cancels(struct cap_scan_engine *e)
{
    if (!atomic_exchange(&e->cancel_pending, false))
        return;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->nprobes; i++) {
        struct probe *p = &e->probes[i];
        if (p->state != PROBE_FREE && p->state != PROBE_DONE && p->job->cancel)
            probe_finish(e, p, "timeout", "cancelled");
    }
    pthread_mutex_unlock(&e->mu);
    release_done(e);
    pthread_mutex_lock(&e->mu);
    struct cap_scan_job *j = e->jobs;
    while (j) {
        struct cap_scan_job *next = j->next;
        if (j->cancel && j->inflight == 0 && j->pending == 0) {
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

/* Adds the tokens earned since the last refill, up to a burst of 1/10 s of the rate (a loop
 * pass slowed by a busy machine still admits what the rate allows). */
static void refill(double *tokens, int64_t *last_ms, int rate, int64_t t)
{
    double burst = rate / 10.0 < 1.0 ? 1.0 : rate / 10.0;
    if (*last_ms == 0)
        *tokens = burst;
    else if (t > *last_ms)
        *tokens += (double)(t - *last_ms) * rate / 1000.0;
    if (*tokens > burst)
        *tokens = burst;
    *last_ms = t;
}

/* Milliseconds until a bucket holds one token again. */
static int64_t token_wait_ms(double tokens, int rate)
{
    double ms = (1.0 - tokens) * 1000.0 / rate;
    return ms < 1.0 ? 1 : (int64_t)ms + 1;
}

/* The share of the job's connects that complete, as estimated (1 until judged otherwise). */
static double job_answer_share(const struct cap_scan_job *j)
{
    return (j->answered + 0.5) / (j->judged + 0.5);
}

/* The TLS slots the job can use. */
static int job_conc(const struct cap_scan_engine *e, const struct cap_scan_job *j)
{
    return j->concurrency < e->nslots ? j->concurrency : e->nslots;
}

/* How many connects job j may add now so that, as its connects are estimated to answer, its
 * connected sockets stay within its TLS slots and the engine's, plus one waiting (dense
 * ranges: about as many connects as free slots, as a slot-per-connect engine would; sparse
 * ranges: many, since few answer, and still some while every slot is busy). global_load is
 * the engine's sum of the same estimate over all jobs. */
static double job_allowance(const struct cap_scan_engine *e, const struct cap_scan_job *j,
                            double global_load)
{
    double share = job_answer_share(j);
    double connected = j->inflight + j->waiting_n;
    double own = (job_conc(e, j) + 1 - connected) / share - j->young;
    double all = (e->nslots + 1 - global_load) / share;
    return own < all ? own : all;
}

/* Admission, under e->mu on the loop thread: first the TLS slots go to connected sockets (the
 * job holding fewest slots first, each within its concurrency), then new connects, paced by
 * the engine's rate and each job's own, to the job holding the least of the pending-connect
 * budget; a job never takes budget another job with work is entitled to (an equal share, or
 * what it can use if less). Fair by what is held, not by admissions: a job over a dead range
 * holds its budget for whole timeouts and so yields to one over a live range. */
static void admit(struct cap_scan_engine *e)
{
    pthread_mutex_lock(&e->mu);
    int64_t t = now_ms();
    e->wake_ms = 0;
    /* Connects older than the judging age have not answered: silent, as far as the estimate
     * goes. */
    int64_t age = (int64_t)(4.0 * e->srtt_ms);
    age = age < JUDGE_MIN_MS ? JUDGE_MIN_MS : (age > JUDGE_MAX_MS ? JUDGE_MAX_MS : age);
    while (e->young_head && t - e->young_head->start_ms >= age)
        probe_judge(e, e->young_head, false);

    while (e->tls_free >= 0) {
        struct cap_scan_job *best = NULL;
        for (struct cap_scan_job *j = e->jobs; j; j = j->next) {
            if (!j->cancel && j->wait_head && j->inflight < j->concurrency &&
                (!best || j->inflight < best->inflight))
                best = j;
        }
        if (!best)
            break;
        probe_take_slot(e, best->wait_head, t);
    }

    refill(&e->tokens, &e->tokens_ms, e->rate, t);
    if (t < e->local_backoff_ms) {
        e->wake_ms = e->local_backoff_ms;
        goto out;
    }
    int demanding = 0;
    double load = 0.0;
    for (struct cap_scan_job *j = e->jobs; j; j = j->next) {
        load += j->inflight + j->waiting_n + job_answer_share(j) * j->young;
        if (!j->cancel && j->pend_head)
            demanding++;
        if (j->rate > 0)
            refill(&j->tokens, &j->tokens_ms, j->rate, t);
    }
    /* Beyond its equal share a job takes budget only while a sixteenth stays free, so a job
     * that arrives later finds some at once; under its share, any that is free. */
    int headroom = e->pending_max / 16;
    int share = demanding > 0 ? (e->pending_max - headroom) / demanding : e->pending_max;
    if (share < 1)
        share = 1;
    while (demanding > 0 && e->pending < e->pending_max && e->free_n > 0) {
        /* Budget the other jobs with work may still claim (up to their share). */
        double reserved = 0.0;
        for (struct cap_scan_job *k = e->jobs; k; k = k->next) {
            if (!k->cancel && k->pend_head && k->pending < share) {
                double a = job_allowance(e, k, load);
                double want = share - k->pending;
                reserved += a < want ? (a > 0 ? a : 0) : want;
            }
        }
        struct cap_scan_job *best = NULL;
        int64_t rate_wake = 0;
        for (struct cap_scan_job *j = e->jobs; j; j = j->next) {
            if (j->cancel || !j->pend_head || job_allowance(e, j, load) < 1.0)
                continue;
            if (j->rate > 0 && j->tokens < 1.0) {
                int64_t w = t + token_wait_ms(j->tokens, j->rate);
                rate_wake = rate_wake == 0 || w < rate_wake ? w : rate_wake;
                continue;
            }
            if (j->pending >= share && e->pending_max - headroom - e->pending - reserved < 1.0)
                continue;
            int held = j->pending + j->inflight;
            if (!best || held < best->pending + best->inflight)
                best = j;
        }
        if (rate_wake && (!e->wake_ms || rate_wake < e->wake_ms))
            e->wake_ms = rate_wake;
        if (!best)
            break;
        if (e->tokens < 1.0) {
            int64_t w = t + token_wait_ms(e->tokens, e->rate);
            if (!e->wake_ms || w < e->wake_ms)
                e->wake_ms = w;
            break;
        }
        e->tokens -= 1.0;
        if (best->rate > 0)
            best->tokens -= 1.0;
        struct cap_scan_result *r = best->pend_head;
        best->pend_head = r->next;
        if (!best->pend_head) {
            best->pend_tail = NULL;
            demanding--;
        }
        r->next = NULL;
        load += job_answer_share(best);
        probe_start(e, best, r, t);
    }
out:
    /* Back when the oldest young connect is due to be judged (the estimate may open up). */
    if (e->young_head && (!e->wake_ms || e->young_head->start_ms + age < e->wake_ms))
        e->wake_ms = e->young_head->start_ms + age;
    cap_metric_set(e->m_inflight, NULL, e->inflight);
    cap_metric_set(e->m_pending, NULL, e->pending);
    pthread_mutex_unlock(&e->mu);
}

static void *loop_main(void *arg)
{
    struct cap_scan_engine *e = arg;
    struct epoll_event evs[256];
    while (!atomic_load(&e->stop)) {
        int64_t t = now_ms();
        int64_t next = t + 1000;
        if (e->heap_n > 0 && e->heap[0]->deadline_ms < next)
            next = e->heap[0]->deadline_ms;
        if (e->wake_ms > 0 && e->wake_ms < next)
            next = e->wake_ms;
        int timeout = next <= t ? 0 : (int)(next - t);
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
            struct probe *p = &e->probes[idx];
            probe_event(e, p, evs[i].events);
        }
        t = now_ms();
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

/* OpenSSL asks before it computes with the server's parameters: a finite-field DH group
 * larger than DH_BITS_MAX (whose cost grows without bound, prime or not, and would stall every
 * probe of the loop) is refused; the probe records why. Everything else is allowed: the
 * client runs at security level 0 to see weak servers. */
static int security_cb(const SSL *s, const SSL_CTX *ctx, int op, int bits, int nid, void *other,
                       void *ex)
{
    (void)ctx, (void)bits, (void)nid, (void)ex;
    if ((op & ~SSL_SECOP_PEER) == SSL_SECOP_TMP_DH && other) {
        int dh_bits = EVP_PKEY_get_bits((EVP_PKEY *)other);
        if (dh_bits > DH_BITS_MAX) {
            struct probe *p = s ? SSL_get_ex_data(s, ssl_ex_idx) : NULL;
            if (p)
                p->dh_bits_refused = dh_bits;
            return 0;
        }
    }
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
    SSL_CTX_set_security_callback(c, security_cb);
    return c;
}

/* Raises RLIMIT_NOFILE for the slots and pending connects; cuts the pending connects (then the
 * slots) to what the hard limit allows, with a warning that names it. */
static void fit_fd_limit(int *slots, int *pending, int reserve)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = (rlim_t)*slots + (rlim_t)*pending + (rlim_t)reserve;
    if (rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    long long room = (long long)rl.rlim_cur - reserve;
    int want_slots = *slots, want_pending = *pending;
    if (room < 2)
        room = 2;
    if (room - *slots >= 1) {
        *pending = (int)(room - *slots);
    } else {
        *slots = (int)(room / 2);
        *pending = (int)(room - *slots);
    }
    cap_log(CAP_LOG_WARN, "scan_limits_cut",
            CAP_LS("err", "the open-file hard limit (ulimit -Hn) is too low for the configured "
                          "scan.max_pending_connects and worker.max_concurrent_discovery"),
            CAP_LI("nofile_hard", (long long)rl.rlim_max), CAP_LI("slots", want_slots),
            CAP_LI("slots_fit", *slots), CAP_LI("pending_connects", want_pending),
            CAP_LI("pending_connects_fit", *pending));
}

struct cap_scan_engine *cap_scan_engine_new(int slots, struct cap_err *err)
{
    struct cap_scan_engine_opts o = {
        .slots = slots, .max_pending_connects = 8192, .connect_rate = 2000};
    return cap_scan_engine_new_opts(&o, err);
}

struct cap_scan_engine *cap_scan_engine_new_groups(int slots, const char *first_groups,
                                                   struct cap_err *err)
{
    struct cap_scan_engine_opts o = {.slots = slots,
                                     .max_pending_connects = 8192,
                                     .connect_rate = 2000,
                                     .first_groups = first_groups};
    return cap_scan_engine_new_opts(&o, err);
}

struct cap_scan_engine *cap_scan_engine_new_opts(const struct cap_scan_engine_opts *o,
                                                 struct cap_err *err)
{
    (void)cap_ossl_init(); /* certificates decoded directly on OpenSSL 3.0 */
    pthread_once(&ex_once, ex_index_init);
    /* OpenSSL writes to sockets the peer may have reset: a write must fail, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    int slots = o->slots < 1 ? 1 : o->slots;
    int pending = o->max_pending_connects < 1 ? 1 : o->max_pending_connects;
    int reserve = o->reserve_fds > 0 ? o->reserve_fds : FD_RESERVE_DEFAULT;
    fit_fd_limit(&slots, &pending, reserve);
    struct cap_scan_engine *e = calloc(1, sizeof *e);
    if (!e) {
        cap_err_set(err, CAP_E_NOMEM, "scan engine: out of memory");
        return NULL;
    }
    e->epfd = e->evfd = -1;
    pthread_mutex_init(&e->mu, NULL);
    e->nslots = slots;
    e->pending_max = pending;
    e->rate = o->connect_rate < 1 ? 1 : o->connect_rate;
    e->nprobes = slots + pending;
    e->tls = calloc((size_t)slots, sizeof *e->tls);
    e->probes = calloc((size_t)e->nprobes, sizeof *e->probes);
    e->free_stack = calloc((size_t)e->nprobes, sizeof *e->free_stack);
    e->heap = calloc((size_t)e->nprobes, sizeof *e->heap);
    if (!e->tls || !e->probes || !e->free_stack || !e->heap) {
        cap_err_set(err, CAP_E_NOMEM,
                    "scan engine: out of memory for %d slots and %d pending connects", slots,
                    pending);
        goto fail;
    }
    for (int i = 0; i < slots; i++)
        e->tls[i].next_free = i + 1 < slots ? i + 1 : -1;
    e->tls_free = 0;
    for (int i = 0; i < e->nprobes; i++) {
        e->probes[i].fd = -1;
        e->probes[i].tls = -1;
        e->free_stack[i] = e->nprobes - 1 - i;
    }
    e->free_n = e->nprobes;
    e->ctx_classical = make_ctx(GROUPS_CLASSICAL);
    if (!e->ctx_classical) {
        cap_err_set(err, CAP_E_IO, "scan engine: cannot set up the TLS client context");
        goto fail;
    }
    /* Hybrid ML-KEM groups exist from OpenSSL 3.5 on: offered when the library has them. */
    if (o->first_groups) {
        e->ctx_hybrid = make_ctx(o->first_groups);
        if (!e->ctx_hybrid) {
            cap_err_set(err, CAP_E_INVALID, "scan engine: groups \"%.64s\" not accepted",
                        o->first_groups);
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
    e->m_pending = cap_metrics_gauge(
        "cap_scan_pending_connects",
        "TCP connects in progress, and connected sockets waiting for a handshake slot.", NULL);
    cap_metric_set(cap_metrics_gauge("cap_handshake_slots",
                                     "The cap on handshakes in flight "
                                     "(worker.max_concurrent_discovery).",
                                     NULL),
                   NULL, slots);
    cap_metric_set(cap_metrics_gauge("cap_scan_pending_connects_max",
                                     "The budget of pending connects (scan.max_pending_connects, "
                                     "as the open-file limit allows).",
                                     NULL),
                   NULL, pending);
    if (pthread_create(&e->thread, NULL, loop_main, e) != 0) {
        cap_err_set(err, CAP_E_IO, "scan engine: cannot start the loop thread");
        goto fail;
    }
    cap_log(CAP_LOG_INFO, "scan_engine_started", CAP_LI("slots", slots),
            CAP_LI("pending_connects", pending), CAP_LI("connect_rate", e->rate),
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
    free(e->tls);
    free(e->probes);
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
    for (int i = 0; i < e->nprobes; i++) {
        struct probe *p = &e->probes[i];
        if (p->state != PROBE_FREE) {
            probe_close_conn(e, p);
            if (p->chain)
                sk_X509_pop_free(p->chain, X509_free);
            cap_scan_result_free(p->res);
        }
    }
    close(e->epfd);
    close(e->evfd);
    SSL_CTX_free(e->ctx_classical);
    SSL_CTX_free(e->ctx_hybrid);
    free(e->tls);
    free(e->probes);
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
    out->pending_max = e->pending_max;
    out->pending = e->pending;
    out->pending_peak = e->pending_peak;
    out->connect_rate = e->rate;
    out->requeued = e->requeued;
    out->local_failures = e->local_failures;
    out->hybrid = e->ctx_hybrid != NULL;
    pthread_mutex_unlock(&e->mu);
    out->connecting = atomic_load(&e->in_state[PROBE_CONNECTING]);
    out->waiting = atomic_load(&e->in_state[PROBE_WAITING]);
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

void cap_scan_job_set_connect_rate(struct cap_scan_job *j, int per_second)
{
    pthread_mutex_lock(&j->e->mu);
    j->rate = per_second > 0 ? per_second : 0;
    j->tokens_ms = 0;
    pthread_mutex_unlock(&j->e->mu);
}

int cap_scan_job_submit(struct cap_scan_job *j, const struct cap_scan_req *req, struct cap_err *err)
{
    const char *sni = req->sni ? req->sni : "";
    const char *host = req->host ? req->host : "";
    size_t sn = strnlen(sni, CAP_HOSTNAME_MAX), hn = strnlen(host, CAP_HOSTNAME_MAX);
    /* The strings live in the same allocation, after the result. */
    struct cap_scan_result *r = calloc(1, sizeof *r + sn + hn + 2);
    if (!r) {
        cap_err_set(err, CAP_E_NOMEM, "scan job: out of memory");
        return -1;
    }
    char *text = (char *)(r + 1);
    memcpy(text, sni, sn);
    memcpy(text + sn + 1, host, hn);
    r->req = *req;
    r->req.sni = text;
    r->req.host = text + sn + 1;
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
