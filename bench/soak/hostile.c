/* A fleet of slow and hostile TLS servers in one process, for the soak (bench/soak/run.py):
 * tarpits, servers that trickle a real handshake a byte at a time, slow but complete TLS
 * servers, servers that reset or send garbage mid-handshake, listeners that never accept.
 *
 *   hostile --config FILE [--trickle-ms 300] [--slow-chunk 64] [--slow-ms 250]
 *           [--delay-min-ms 200] [--delay-max-ms 3000] [--idle-ms 120000]
 *
 * FILE has one `addr port kind [certfile keyfile]` line per listener (127.0.0.0/8 only; blank
 * lines and lines starting with # are skipped). Kinds:
 *   tarpit   accepts, reads and discards, never answers
 *   trickle  a real TLS server whose every output byte waits --trickle-ms (never finishes
 *            within a deadline of seconds)
 *   slowtls  a real TLS server that sends --slow-chunk bytes every --slow-ms (finishes)
 *   tls      a real TLS server, at once
 *   reset    after the ClientHello and a random delay (--delay-min-ms..--delay-max-ms), the
 *            start of a ServerHello, then a reset (SO_LINGER 0)
 *   garbage  after the ClientHello and a random delay, 4 KB of random bytes, then holds
 *   silent   listens with a backlog of 1 and never accepts: once full, SYNs are dropped
 * TLS kinds need certfile and keyfile (PEM, chain allowed). One thread, one epoll loop.
 * Prints "ready" once every listener is bound; on SIGUSR1 prints one line
 * "stats accepted=.. open=.. peer_closed=.. idle_closed=.. resets=.. garbage=.. tls_ok=..
 * tls_failed=.. cpu_s=.. maxrss_kb=.."; on SIGTERM or SIGINT prints it and exits 0.
 * A connection still open after --idle-ms is closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HOSTILE_PATH_MAX 1024
#define HOSTILE_BACKLOG 4096
#define HOSTILE_EVENTS 512
#define HOSTILE_OUT_MAX (64 * 1024) /* a server flight is about 1.5 KB */
#define HOSTILE_GARBAGE 4096

enum kind { K_TARPIT, K_TRICKLE, K_SLOWTLS, K_TLS, K_RESET, K_GARBAGE, K_SILENT, K_N };
static const char *const kind_names[K_N] = {"tarpit", "trickle", "slowtls", "tls",
                                            "reset",  "garbage", "silent"};

enum item_kind { ITEM_LISTENER = 1, ITEM_CONN, ITEM_SIGNAL };

struct item {
    enum item_kind kind;
};

struct listener {
    struct item it;
    int fd;
    enum kind kind;
    SSL_CTX *ctx;
};

struct conn {
    struct item it;
    int fd;
    enum kind kind;
    SSL *ssl;     /* TLS kinds: memory BIOs, so what goes out can be paced */
    uint8_t *out; /* bytes produced and not yet sent (grows up to HOSTILE_OUT_MAX) */
    size_t out_len, out_off, out_cap;
    bool hello;      /* the first bytes (the ClientHello) arrived */
    bool acted;      /* reset/garbage: done */
    bool shut;       /* TLS: handshake over, close_notify queued */
    bool dead;       /* closed this iteration; freed at its end */
    int64_t act_ms;  /* next paced send or action, 0: none */
    int64_t idle_ms; /* closed at this time whatever happens */
    size_t heap_idx; /* in the timer heap */
    struct conn *dead_next;
};

static struct {
    int ep;
    int64_t trickle_ms, slow_ms, delay_min_ms, delay_max_ms, idle_ms;
    size_t slow_chunk;
    struct conn **heap;
    size_t heap_n, heap_cap;
    struct conn *dead;
    unsigned long long accepted, open, peer_closed, idle_closed, resets, garbage, tls_ok,
        tls_failed;
} g = {.trickle_ms = 300,
       .slow_ms = 250,
       .delay_min_ms = 200,
       .delay_max_ms = 3000,
       .idle_ms = 120000,
       .slow_chunk = 64};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- timer heap: one entry per connection, keyed on min(act_ms, idle_ms) ---- */

static int64_t conn_due(const struct conn *c)
{
    return c->act_ms && c->act_ms < c->idle_ms ? c->act_ms : c->idle_ms;
}

static void heap_swap(size_t a, size_t b)
{
    struct conn *t = g.heap[a];
    g.heap[a] = g.heap[b];
    g.heap[b] = t;
    g.heap[a]->heap_idx = a;
    g.heap[b]->heap_idx = b;
}

static void heap_fix(size_t i)
{
    while (i > 0 && conn_due(g.heap[(i - 1) / 2]) > conn_due(g.heap[i])) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g.heap_n && conn_due(g.heap[l]) < conn_due(g.heap[m]))
            m = l;
        if (r < g.heap_n && conn_due(g.heap[r]) < conn_due(g.heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(i, m);
        i = m;
    }
}

static int heap_add(struct conn *c)
{
    if (g.heap_n == g.heap_cap) {
        size_t nc = g.heap_cap ? g.heap_cap * 2 : 16384;
        struct conn **nh = realloc(g.heap, nc * sizeof *nh);
        if (!nh)
            return -1;
        g.heap = nh;
        g.heap_cap = nc;
    }
    c->heap_idx = g.heap_n;
    g.heap[g.heap_n++] = c;
    heap_fix(c->heap_idx);
    return 0;
}

static void heap_remove(struct conn *c)
{
    size_t i = c->heap_idx;
    if (i == SIZE_MAX)
        return;
    c->heap_idx = SIZE_MAX;
    g.heap_n--;
    if (i == g.heap_n)
        return;
    g.heap[i] = g.heap[g.heap_n];
    g.heap[i]->heap_idx = i;
    heap_fix(i);
}

/* ---- connections ---- */

/* Closes now (a reset when rst); the struct is freed at the end of the loop iteration, since
 * later events of the same batch may name it. */
static void conn_close(struct conn *c, bool rst)
{
    if (c->dead)
        return;
    if (rst) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    heap_remove(c);
    close(c->fd);
    c->fd = -1;
    SSL_free(c->ssl);
    c->ssl = NULL;
    free(c->out);
    c->out = NULL;
    c->dead = true;
    c->dead_next = g.dead;
    g.dead = c;
    g.open--;
}

static void conn_set_act(struct conn *c, int64_t at)
{
    c->act_ms = at;
    heap_fix(c->heap_idx);
}

/* Appends what the TLS state wrote to its memory BIO to the pending output. */
static int conn_collect(struct conn *c)
{
    BIO *w = SSL_get_wbio(c->ssl);
    size_t pending = BIO_ctrl_pending(w);
    if (pending == 0)
        return 0;
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + pending > HOSTILE_OUT_MAX)
        return -1;
    if (c->out_len + pending > c->out_cap) {
        size_t nc = c->out_cap ? c->out_cap : 2048;
        while (nc < c->out_len + pending)
            nc *= 2;
        uint8_t *nb = realloc(c->out, nc);
        if (!nb)
            return -1;
        c->out = nb;
        c->out_cap = nc;
    }
    int n = BIO_read(w, c->out + c->out_len, (int)pending);
    if (n > 0)
        c->out_len += (size_t)n;
    return 0;
}

/* Sends up to max pending bytes; 0, or -1 when the peer is gone. */
static int conn_send(struct conn *c, size_t max)
{
    size_t left = c->out_len - c->out_off;
    if (left > max)
        left = max;
    while (left > 0) {
        ssize_t n = send(c->fd, c->out + c->out_off, left, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0; /* again at the next pace tick (or EPOLLOUT for tls) */
        if (n < 0)
            return -1;
        c->out_off += (size_t)n;
        left -= (size_t)n;
    }
    return 0;
}

static bool out_pending(const struct conn *c)
{
    return c->out_off < c->out_len;
}

/* Schedules (or, for tls, does) the sending of pending TLS output. */
static void conn_pace(struct conn *c, int64_t t)
{
    if (!out_pending(c))
        return;
    if (c->kind == K_TLS) {
        if (conn_send(c, SIZE_MAX) != 0) {
            conn_close(c, false);
            return;
        }
        if (out_pending(c)) {
            /* the socket buffer is full: the rest when it drains */
            struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
                conn_close(c, false);
        }
        return;
    }
    if (!c->act_ms)
        conn_set_act(c, t + (c->kind == K_TRICKLE ? g.trickle_ms : g.slow_ms));
}

/* Feeds what arrived to the TLS state and collects its answer. */
static void conn_tls_step(struct conn *c, const uint8_t *buf, size_t n, int64_t t)
{
    if (n > 0 && BIO_write(SSL_get_rbio(c->ssl), buf, (int)n) != (int)n) {
        conn_close(c, false);
        return;
    }
    if (!c->shut) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            g.tls_ok++;
            c->shut = true;
            ERR_clear_error();
            (void)SSL_shutdown(c->ssl); /* close_notify; the client's is not awaited */
        } else if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
            /* the client gave up (its deadline) or aborted; what is queued still goes */
            g.tls_failed++;
            c->shut = true;
        }
    }
    if (conn_collect(c) != 0) {
        conn_close(c, false);
        return;
    }
    conn_pace(c, t);
}

static void conn_readable(struct conn *c, int64_t t)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            g.peer_closed++; /* the client's deadline (a reset) or its close */
            conn_close(c, false);
            return;
        }
        if (!c->hello) {
            c->hello = true;
            if (c->kind == K_RESET || c->kind == K_GARBAGE) {
                int64_t span = g.delay_max_ms - g.delay_min_ms;
                int64_t d = g.delay_min_ms + (span > 0 ? (int64_t)(random() % (span + 1)) : 0);
                conn_set_act(c, t + d);
            }
        }
        if (c->ssl && !c->shut) {
            conn_tls_step(c, buf, (size_t)n, t);
            if (c->dead)
                return;
        }
    }
}

static void conn_writable(struct conn *c)
{
    if (conn_send(c, SIZE_MAX) != 0) {
        conn_close(c, false);
        return;
    }
    if (!out_pending(c)) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
            conn_close(c, false);
    }
}

/* A timer of c came due: the idle limit, a paced send, or the reset/garbage action. */
static void conn_timer(struct conn *c, int64_t t)
{
    if (t >= c->idle_ms) {
        g.idle_closed++;
        conn_close(c, false);
        return;
    }
    c->act_ms = 0;
    if (c->kind == K_RESET && !c->acted) {
        /* the start of a ServerHello record, then a reset */
        static const uint8_t part[] = {0x16, 0x03, 0x03, 0x00, 0x50, 0x02,
                                       0x00, 0x00, 0x4c, 0x03, 0x03};
        c->acted = true;
        (void)send(c->fd, part, sizeof part, MSG_NOSIGNAL);
        g.resets++;
        conn_close(c, true);
        return;
    }
    if (c->kind == K_GARBAGE && !c->acted) {
        uint8_t junk[HOSTILE_GARBAGE];
        c->acted = true;
        if (RAND_bytes(junk, sizeof junk) != 1)
            memset(junk, 0x5a, sizeof junk);
        (void)send(c->fd, junk, sizeof junk, MSG_NOSIGNAL);
        g.garbage++;
        heap_fix(c->heap_idx);
        return;
    }
    if (c->ssl) {
        size_t chunk = c->kind == K_TRICKLE ? 1 : g.slow_chunk;
        if (conn_send(c, chunk) != 0) {
            conn_close(c, false);
            return;
        }
        if (out_pending(c))
            c->act_ms = t + (c->kind == K_TRICKLE ? g.trickle_ms : g.slow_ms);
    }
    heap_fix(c->heap_idx);
}

static void accept_some(struct listener *l, int64_t t)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "hostile: accept: %s\n", strerror(errno));
            return;
        }
        g.accepted++;
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->it.kind = ITEM_CONN;
        c->fd = fd;
        c->kind = l->kind;
        c->idle_ms = t + g.idle_ms;
        c->heap_idx = SIZE_MAX;
        if (l->ctx) {
            c->ssl = SSL_new(l->ctx);
            BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
            if (!c->ssl || !rb || !wb) {
                BIO_free(rb);
                BIO_free(wb);
                SSL_free(c->ssl);
                free(c);
                close(fd);
                continue;
            }
            SSL_set_bio(c->ssl, rb, wb);
            SSL_set_accept_state(c->ssl);
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (heap_add(c) != 0 || epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            heap_remove(c);
            SSL_free(c->ssl);
            free(c);
            close(fd);
            continue;
        }
        g.open++;
    }
}

/* ---- configuration ---- */

static SSL_CTX *ctx_new(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "hostile: cannot load certificate %s with key %s\n", cert, key);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int listen_on(const struct sockaddr_in *sa, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 || listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Reads FILE and opens every listener; registers them with epoll. */
static int load_config(const char *path, struct listener **out, size_t *out_n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "hostile: cannot open config %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct listener *ls = NULL;
    size_t n = 0, cap = 0;
    char line[3 * HOSTILE_PATH_MAX];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char addr[64], port_s[16], kind_s[16], cert[HOSTILE_PATH_MAX], key[HOSTILE_PATH_MAX];
        char extra[2];
        int k = sscanf(line, "%63s %15s %15s %1023s %1023s %1s", addr, port_s, kind_s, cert, key,
                       extra);
        if (k <= 0 || addr[0] == '#')
            continue;
        int kind = -1;
        for (int i = 0; k >= 3 && i < K_N; i++)
            if (strcmp(kind_s, kind_names[i]) == 0)
                kind = i;
        bool tls = kind == K_TRICKLE || kind == K_SLOWTLS || kind == K_TLS;
        if (kind < 0 || (tls && k != 5) || (!tls && k != 3)) {
            fprintf(stderr,
                    "hostile: %s:%d: expected `addr port kind` (tarpit, reset, garbage, silent) "
                    "or `addr port kind certfile keyfile` (trickle, slowtls, tls)\n",
                    path, lineno);
            rc = -1;
            break;
        }
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        char *end = NULL;
        errno = 0;
        long port = strtol(port_s, &end, 10);
        if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
            (ntohl(sa.sin_addr.s_addr) >> 24) != 127 || errno || !end || *end || port < 1 ||
            port > 65535) {
            fprintf(stderr, "hostile: %s:%d: address %s port %s refused: only 127.0.0.0/8\n", path,
                    lineno, addr, port_s);
            rc = -1;
            break;
        }
        sa.sin_port = htons((uint16_t)port);
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 32;
            struct listener *nl = realloc(ls, nc * sizeof *nl);
            if (!nl) {
                rc = -1;
                break;
            }
            ls = nl;
            cap = nc;
        }
        struct listener *l = &ls[n];
        memset(l, 0, sizeof *l);
        l->it.kind = ITEM_LISTENER;
        l->kind = (enum kind)kind;
        if (tls && !(l->ctx = ctx_new(cert, key))) {
            rc = -1;
            break;
        }
        l->fd = listen_on(&sa, kind == K_SILENT ? 1 : HOSTILE_BACKLOG);
        if (l->fd < 0) {
            fprintf(stderr, "hostile: cannot listen on %s:%ld: %s\n", addr, port, strerror(errno));
            SSL_CTX_free(l->ctx);
            rc = -1;
            break;
        }
        n++;
    }
    fclose(f);
    if (rc == 0 && n == 0) {
        fprintf(stderr, "hostile: %s lists no listener\n", path);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (ls[i].kind == K_SILENT)
            continue; /* never accepted: its queue fills and later SYNs are dropped */
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &ls[i]};
        if (epoll_ctl(g.ep, EPOLL_CTL_ADD, ls[i].fd, &e) != 0) {
            perror("hostile: epoll_ctl");
            rc = -1;
        }
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            close(ls[i].fd);
            SSL_CTX_free(ls[i].ctx);
        }
        free(ls);
        return -1;
    }
    *out = ls;
    *out_n = n;
    return 0;
}

static void print_stats(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("stats accepted=%llu open=%llu peer_closed=%llu idle_closed=%llu resets=%llu "
           "garbage=%llu tls_ok=%llu tls_failed=%llu cpu_s=%.3f maxrss_kb=%ld\n",
           g.accepted, g.open, g.peer_closed, g.idle_closed, g.resets, g.garbage, g.tls_ok,
           g.tls_failed, cpu, ru.ru_maxrss);
    fflush(stdout);
}

static long arg_long(const char *s, const char *name, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < lo || v > hi) {
        fprintf(stderr, "hostile: bad %s: %s (expected %ld to %ld)\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "hostile: %s needs a value\n", argv[i]);
            return 2;
        }
        const char *v = argv[i + 1];
        if (strcmp(argv[i], "--config") == 0)
            config = v;
        else if (strcmp(argv[i], "--trickle-ms") == 0)
            g.trickle_ms = arg_long(v, "trickle-ms", 1, 60000);
        else if (strcmp(argv[i], "--slow-chunk") == 0)
            g.slow_chunk = (size_t)arg_long(v, "slow-chunk", 1, 65536);
        else if (strcmp(argv[i], "--slow-ms") == 0)
            g.slow_ms = arg_long(v, "slow-ms", 1, 60000);
        else if (strcmp(argv[i], "--delay-min-ms") == 0)
            g.delay_min_ms = arg_long(v, "delay-min-ms", 0, 600000);
        else if (strcmp(argv[i], "--delay-max-ms") == 0)
            g.delay_max_ms = arg_long(v, "delay-max-ms", 0, 600000);
        else if (strcmp(argv[i], "--idle-ms") == 0)
            g.idle_ms = arg_long(v, "idle-ms", 1, 3600000);
        else {
            fprintf(stderr, "hostile: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "usage: hostile --config FILE [--trickle-ms MS] [--slow-chunk BYTES] "
                        "[--slow-ms MS] [--delay-min-ms MS] [--delay-max-ms MS] "
                        "[--idle-ms MS]\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)getpid());
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    struct item sig_item = {.kind = ITEM_SIGNAL};
    struct epoll_event se = {.events = EPOLLIN, .data.ptr = &sig_item};
    if (g.ep < 0 || sfd < 0 || epoll_ctl(g.ep, EPOLL_CTL_ADD, sfd, &se) != 0) {
        perror("hostile: epoll/signalfd");
        return 1;
    }
    struct listener *ls = NULL;
    size_t nls = 0;
    if (load_config(config, &ls, &nls) != 0)
        return 1;
    printf("ready\n");
    fflush(stdout);
    struct epoll_event evs[HOSTILE_EVENTS];
    bool running = true;
    while (running) {
        int64_t t = now_ms();
        int wait_ms = 1000;
        if (g.heap_n > 0) {
            int64_t d = conn_due(g.heap[0]) - t;
            wait_ms = d < 0 ? 0 : d < wait_ms ? (int)d : wait_ms;
        }
        int n = epoll_wait(g.ep, evs, HOSTILE_EVENTS, wait_ms);
        if (n < 0 && errno != EINTR) {
            perror("hostile: epoll_wait");
            break;
        }
        t = now_ms();
        for (int i = 0; i < n; i++) {
            struct item *it = evs[i].data.ptr;
            if (it->kind == ITEM_SIGNAL) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    print_stats();
                    if (si.ssi_signo != SIGUSR1)
                        running = false;
                }
            } else if (it->kind == ITEM_LISTENER) {
                accept_some((struct listener *)it, t);
            } else {
                struct conn *c = (struct conn *)it;
                if (!c->dead && (evs[i].events & EPOLLOUT))
                    conn_writable(c);
                if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                    conn_readable(c, t);
            }
        }
        t = now_ms();
        while (g.heap_n > 0 && conn_due(g.heap[0]) <= t)
            conn_timer(g.heap[0], t);
        while (g.dead) {
            struct conn *c = g.dead;
            g.dead = c->dead_next;
            free(c);
        }
    }
    while (g.heap_n > 0)
        conn_close(g.heap[0], false);
    while (g.dead) {
        struct conn *c = g.dead;
        g.dead = c->dead_next;
        free(c);
    }
    for (size_t i = 0; i < nls; i++) {
        close(ls[i].fd);
        SSL_CTX_free(ls[i].ctx);
    }
    free(ls);
    free(g.heap);
    close(sfd);
    close(g.ep);
    return 0;
}
