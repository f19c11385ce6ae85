/* A fleet of TLS servers in one process, for the network scan benchmark: every address of a
 * list (127.0.0.0/8 only) gets a listener that presents its own certificate, a handshake, a
 * close_notify, and a close. One epoll loop per thread; each thread has its own listening
 * socket on every address (SO_REUSEPORT), so the kernel spreads the connections.
 *
 *   fleet --config FILE [--threads N] [--timeout-ms 10000]
 *
 * FILE has one `addr port certfile keyfile` line per listener (PEM; blank lines and lines
 * starting with # are skipped); listeners with the same certfile and keyfile share one
 * SSL_CTX. Cheapest sane server settings: no session cache, no tickets, TLS 1.0 to 1.3.
 * Prints "ready" on stdout once every listener is bound; on SIGUSR1 prints one line
 * "stats accepted=.. ok=.. failed=.. timeout=.. evicted=.. cpu_s=.." (cpu_s: this process's
 * user+system CPU so far); on SIGTERM or SIGINT prints the same line and exits 0.
 * A connection that has not finished its handshake and close within the timeout is closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FLEET_PATH_MAX 1024
#define FLEET_BACKLOG 4096
#define FLEET_EVENTS 256
#define FLEET_ACCEPT_BURST 64
#define FLEET_CLOSE_GRACE_MS 2000

enum item_kind { ITEM_LISTENER = 1, ITEM_CONN, ITEM_WAKE };
enum conn_state { CONN_HANDSHAKE = 1, CONN_SHUTDOWN, CONN_DRAIN, CONN_DEAD };

/* Every epoll registration points at a struct starting with its kind. */
struct item {
    enum item_kind kind;
};

struct listener {
    struct item it;
    int fd;
    SSL_CTX *ctx;
};

struct conn {
    struct item it;
    enum conn_state state;
    int fd;
    SSL *ssl;
    uint32_t events; /* what epoll watches now */
    double deadline; /* monotonic seconds */
    int list;        /* index of the worker list it is on, -1 for none */
    struct conn *prev, *next;
};

/* A FIFO of connections with the same timeout, so the head has the earliest deadline. */
struct conn_list {
    struct conn *head, *tail;
};

struct worker {
    struct item wake;
    int ep;
    int wake_fd;
    struct listener *ls;
    size_t nls;
    struct conn_list lists[2]; /* 0: handshaking (timeout), 1: closing (grace) */
    struct conn *dead;         /* closed this iteration, freed at its end */
    pthread_t th;
    atomic_ullong accepted, ok, failed, timeout, evicted;
};

struct ctx_entry {
    char cert[FLEET_PATH_MAX];
    char key[FLEET_PATH_MAX];
    SSL_CTX *ctx;
};

struct listen_spec {
    struct sockaddr_in sa;
    SSL_CTX *ctx;
};

static atomic_bool running = true;
static double timeout_s = 10.0;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void list_push(struct worker *w, int li, struct conn *c)
{
    struct conn_list *l = &w->lists[li];
    c->list = li;
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static void list_unlink(struct worker *w, struct conn *c)
{
    if (c->list < 0)
        return;
    struct conn_list *l = &w->lists[c->list];
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    c->list = -1;
}

/* Closes the socket and frees the TLS state now; the struct itself waits on the dead list
 * until the end of the loop iteration, since later events of the same batch may name it. */
static void conn_close(struct worker *w, struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    list_unlink(w, c);
    SSL_free(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    c->fd = -1;
    c->state = CONN_DEAD;
    c->next = w->dead;
    w->dead = c;
}

static void conn_watch(struct worker *w, struct conn *c, uint32_t ev)
{
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &e) != 0) {
        atomic_fetch_add_explicit(&w->failed, 1, memory_order_relaxed);
        conn_close(w, c);
        return;
    }
    c->events = ev;
}

/* Drives one connection as far as it goes without blocking. */
static void conn_step(struct worker *w, struct conn *c)
{
    if (c->state == CONN_HANDSHAKE) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
            atomic_fetch_add_explicit(&w->ok, 1, memory_order_relaxed);
            c->state = CONN_SHUTDOWN;
        } else {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                conn_watch(w, c, EPOLLIN);
            } else if (e == SSL_ERROR_WANT_WRITE) {
                conn_watch(w, c, EPOLLOUT);
            } else {
                /* a client that aborts, probes oddly or speaks no TLS */
                atomic_fetch_add_explicit(&w->failed, 1, memory_order_relaxed);
                conn_close(w, c);
            }
            return;
        }
    }
    if (c->state == CONN_SHUTDOWN) {
        ERR_clear_error();
        int r = SSL_shutdown(c->ssl); /* sends close_notify; the peer's is not awaited */
        if (r < 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE) {
            conn_watch(w, c, EPOLLOUT);
            return;
        }
        /* then a half-close, and the peer's remaining bytes read until its FIN, so the
         * close is a FIN and not a reset (unread data at close() makes the kernel reset) */
        if (shutdown(c->fd, SHUT_WR) != 0) {
            conn_close(w, c);
            return;
        }
        list_unlink(w, c);
        c->deadline = now_s() + FLEET_CLOSE_GRACE_MS / 1000.0;
        list_push(w, 1, c);
        c->state = CONN_DRAIN;
        conn_watch(w, c, EPOLLIN);
        if (c->state == CONN_DEAD)
            return;
    }
    if (c->state == CONN_DRAIN) {
        char buf[4096];
        for (;;) {
            ssize_t n = recv(c->fd, buf, sizeof buf, 0);
            if (n > 0)
                continue;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            conn_close(w, c); /* EOF or an error: done */
            return;
        }
    }
}

static void accept_some(struct worker *w, struct listener *l)
{
    for (int i = 0; i < FLEET_ACCEPT_BURST; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && w->lists[0].head) {
                /* out of descriptors: the oldest handshake makes room */
                atomic_fetch_add_explicit(&w->evicted, 1, memory_order_relaxed);
                conn_close(w, w->lists[0].head);
                continue;
            }
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or nothing to be done now */
        }
        atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
        struct conn *c = calloc(1, sizeof *c);
        SSL *ssl = c ? SSL_new(l->ctx) : NULL;
        if (!ssl || !SSL_set_fd(ssl, fd)) {
            SSL_free(ssl);
            free(c);
            close(fd);
            atomic_fetch_add_explicit(&w->failed, 1, memory_order_relaxed);
            continue;
        }
        SSL_set_accept_state(ssl);
        c->it.kind = ITEM_CONN;
        c->state = CONN_HANDSHAKE;
        c->fd = fd;
        c->ssl = ssl;
        c->events = EPOLLIN;
        c->deadline = now_s() + timeout_s;
        c->list = -1;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            SSL_free(ssl);
            free(c);
            close(fd);
            atomic_fetch_add_explicit(&w->failed, 1, memory_order_relaxed);
            continue;
        }
        list_push(w, 0, c);
        conn_step(w, c); /* the ClientHello is often there already */
    }
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[FLEET_EVENTS];
    while (atomic_load(&running)) {
        int wait_ms = 1000;
        double t = now_s();
        for (int li = 0; li < 2; li++) {
            if (w->lists[li].head) {
                double d = (w->lists[li].head->deadline - t) * 1000.0 + 1.0;
                if (d < wait_ms)
                    wait_ms = d < 0 ? 0 : (int)d;
            }
        }
        int n = epoll_wait(w->ep, evs, FLEET_EVENTS, wait_ms);
        if (n < 0 && errno != EINTR) {
            perror("fleet: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            struct item *it = evs[i].data.ptr;
            if (it->kind == ITEM_LISTENER) {
                accept_some(w, (struct listener *)it);
            } else if (it->kind == ITEM_CONN) {
                struct conn *c = (struct conn *)it;
                if (c->state == CONN_DEAD)
                    continue;
                conn_step(w, c);
            }
            /* ITEM_WAKE: the loop condition sees the stop */
        }
        t = now_s();
        for (int li = 0; li < 2; li++) {
            while (w->lists[li].head && w->lists[li].head->deadline <= t) {
                if (li == 0)
                    atomic_fetch_add_explicit(&w->timeout, 1, memory_order_relaxed);
                conn_close(w, w->lists[li].head);
            }
        }
        while (w->dead) {
            struct conn *c = w->dead;
            w->dead = c->next;
            free(c);
        }
    }
    for (int li = 0; li < 2; li++)
        while (w->lists[li].head)
            conn_close(w, w->lists[li].head);
    while (w->dead) {
        struct conn *c = w->dead;
        w->dead = c->next;
        free(c);
    }
    return NULL;
}

static SSL_CTX *ctx_for(struct ctx_entry **ents, size_t *n, size_t *cap, const char *cert,
                        const char *key)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*ents)[i].cert, cert) == 0 && strcmp((*ents)[i].key, key) == 0)
            return (*ents)[i].ctx;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    /* TLS 1.0 to 1.3 (security level 0: OpenSSL 3 refuses TLS < 1.2 above it) */
    SSL_CTX_set_security_level(ctx, 0);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0")) {
        fprintf(stderr, "fleet: cannot set the protocol versions or ciphers\n");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "fleet: cannot load certificate %s with key %s\n", cert, key);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct ctx_entry *ne = realloc(*ents, nc * sizeof *ne);
        if (!ne) {
            SSL_CTX_free(ctx);
            return NULL;
        }
        *ents = ne;
        *cap = nc;
    }
    struct ctx_entry *e = &(*ents)[(*n)++];
    snprintf(e->cert, sizeof e->cert, "%s", cert);
    snprintf(e->key, sizeof e->key, "%s", key);
    e->ctx = ctx;
    return ctx;
}

static int read_config(const char *path, struct listen_spec **out, size_t *out_n,
                       struct ctx_entry **ents, size_t *ents_n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "fleet: cannot open config %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct listen_spec *specs = NULL;
    size_t n = 0, cap = 0, ents_cap = 0;
    char line[3 * FLEET_PATH_MAX];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, "fleet: %s:%d: line too long\n", path, lineno);
            rc = -1;
            break;
        }
        char addr[64], port_s[16], cert[FLEET_PATH_MAX], key[FLEET_PATH_MAX], extra[2];
        int k = sscanf(line, "%63s %15s %1023s %1023s %1s", addr, port_s, cert, key, extra);
        if (k <= 0 || addr[0] == '#')
            continue;
        if (k != 4) {
            fprintf(stderr, "fleet: %s:%d: expected `addr port certfile keyfile`\n", path, lineno);
            rc = -1;
            break;
        }
        struct listen_spec s;
        memset(&s, 0, sizeof s);
        s.sa.sin_family = AF_INET;
        if (inet_pton(AF_INET, addr, &s.sa.sin_addr) != 1 ||
            (ntohl(s.sa.sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "fleet: %s:%d: address %s refused: only 127.0.0.0/8 is served\n", path,
                    lineno, addr);
            rc = -1;
            break;
        }
        char *end = NULL;
        errno = 0;
        long port = strtol(port_s, &end, 10);
        if (errno || !end || *end || port < 1 || port > 65535) {
            fprintf(stderr, "fleet: %s:%d: bad port %s\n", path, lineno, port_s);
            rc = -1;
            break;
        }
        s.sa.sin_port = htons((uint16_t)port);
        s.ctx = ctx_for(ents, ents_n, &ents_cap, cert, key);
        if (!s.ctx) {
            rc = -1;
            break;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            struct listen_spec *ns = realloc(specs, nc * sizeof *ns);
            if (!ns) {
                rc = -1;
                break;
            }
            specs = ns;
            cap = nc;
        }
        specs[n++] = s;
    }
    fclose(f);
    if (rc == 0 && n == 0) {
        fprintf(stderr, "fleet: %s lists no listener\n", path);
        rc = -1;
    }
    if (rc != 0) {
        free(specs);
        return -1;
    }
    *out = specs;
    *out_n = n;
    return 0;
}

static int listen_on(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 || listen(fd, FLEET_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void print_stats(struct worker *ws, int nw)
{
    unsigned long long acc = 0, ok = 0, failed = 0, to = 0, ev = 0;
    for (int i = 0; i < nw; i++) {
        acc += atomic_load_explicit(&ws[i].accepted, memory_order_relaxed);
        ok += atomic_load_explicit(&ws[i].ok, memory_order_relaxed);
        failed += atomic_load_explicit(&ws[i].failed, memory_order_relaxed);
        to += atomic_load_explicit(&ws[i].timeout, memory_order_relaxed);
        ev += atomic_load_explicit(&ws[i].evicted, memory_order_relaxed);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("stats accepted=%llu ok=%llu failed=%llu timeout=%llu evicted=%llu cpu_s=%.3f "
           "maxrss_kb=%ld\n",
           acc, ok, failed, to, ev, cpu, ru.ru_maxrss);
    fflush(stdout);
}

static long arg_long(const char *s, const char *name, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < lo || v > hi) {
        fprintf(stderr, "fleet: bad %s: %s (expected %ld to %ld)\n", name, s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
    if (nthreads < 1)
        nthreads = 1;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "fleet: %s needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--config") == 0)
            config = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0)
            nthreads = arg_long(argv[i + 1], "threads", 1, 64);
        else if (strcmp(argv[i], "--timeout-ms") == 0)
            timeout_s = (double)arg_long(argv[i + 1], "timeout-ms", 1, 3600000) / 1000.0;
        else {
            fprintf(stderr, "fleet: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "usage: fleet --config FILE [--threads N] [--timeout-ms MS]\n"
                        "FILE: one `addr port certfile keyfile` line per listener (127/8)\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the threads inherit it; main takes them */

    struct listen_spec *specs = NULL;
    struct ctx_entry *ents = NULL;
    size_t nspecs = 0, nents = 0;
    if (read_config(config, &specs, &nspecs, &ents, &nents) != 0)
        return 1;
    struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
    if (!ws)
        return 1;
    for (int t = 0; t < nthreads; t++) {
        struct worker *w = &ws[t];
        w->wake.kind = ITEM_WAKE;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->ls = calloc(nspecs, sizeof *w->ls);
        if (w->ep < 0 || w->wake_fd < 0 || !w->ls) {
            perror("fleet: epoll/eventfd");
            return 1;
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &w->wake};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake_fd, &e);
        for (size_t i = 0; i < nspecs; i++) {
            struct listener *l = &w->ls[i];
            char a[INET_ADDRSTRLEN];
            l->it.kind = ITEM_LISTENER;
            l->ctx = specs[i].ctx;
            l->fd = listen_on(&specs[i].sa);
            if (l->fd < 0) {
                fprintf(stderr, "fleet: cannot listen on %s:%d: %s\n",
                        inet_ntop(AF_INET, &specs[i].sa.sin_addr, a, sizeof a),
                        ntohs(specs[i].sa.sin_port), strerror(errno));
                return 1;
            }
            struct epoll_event le = {.events = EPOLLIN, .data.ptr = l};
            if (epoll_ctl(w->ep, EPOLL_CTL_ADD, l->fd, &le) != 0) {
                perror("fleet: epoll_ctl");
                return 1;
            }
            w->nls++;
        }
    }
    for (int t = 0; t < nthreads; t++) {
        if (pthread_create(&ws[t].th, NULL, worker_run, &ws[t]) != 0) {
            fprintf(stderr, "fleet: cannot start thread %d\n", t);
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGUSR1) {
            print_stats(ws, (int)nthreads);
            continue;
        }
        break;
    }
    atomic_store(&running, false);
    for (int t = 0; t < nthreads; t++) {
        uint64_t one = 1;
        if (write(ws[t].wake_fd, &one, sizeof one) < 0)
            perror("fleet: wake");
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(ws[t].th, NULL);
    print_stats(ws, (int)nthreads);
    for (int t = 0; t < nthreads; t++) {
        for (size_t i = 0; i < ws[t].nls; i++)
            close(ws[t].ls[i].fd);
        free(ws[t].ls);
        close(ws[t].wake_fd);
        close(ws[t].ep);
    }
    free(ws);
    for (size_t i = 0; i < nents; i++)
        SSL_CTX_free(ents[i].ctx);
    free(ents);
    free(specs);
    return 0;
}
