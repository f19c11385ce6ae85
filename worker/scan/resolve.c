/* Concurrent host-name resolution with c-ares: one channel per batch, an A and an AAAA query
 * for each distinct name, at most CAP_RESOLVE_INFLIGHT names at once, and a poll() loop on the
 * channel's sockets until every name has its answer or the batch deadline passes.
 *
 * Why these choices:
 * - Separate A and AAAA queries (ares_query, which never applies the search list) rather than
 *   ares_getaddrinfo: each family's outcome is known (NXDOMAIN, no record, SERVFAIL, timeout),
 *   A answers come first whatever arrives first, and nothing is sorted (c-ares' RFC 6724 sort
 *   connects a UDP socket per address).
 * - The system configuration reads /etc/hosts first, as getaddrinfo did (a files-only channel
 *   whose ares_getaddrinfo merges every line naming the host, and completes at once); the
 *   search list of /etc/resolv.conf is not applied (scan targets are FQDNs, and Kubernetes'
 *   ndots:5 would otherwise multiply the queries of every name).
 * - At most CAP_RESOLVE_INFLIGHT names in flight: c-ares 1.18 gives up on a server when a UDP
 *   send fails with EAGAIN, so a burst of many thousand queries could fail names the server
 *   never saw; 512 queries fit the socket buffers asked for (SEND_BUFFER).
 * - Sockets are tracked through ARES_OPT_SOCK_STATE_CB and waited on with poll(): no FD_SETSIZE
 *   limit (a worker holds thousands of sockets) and no ARES_GETSOCK_MAXNUM cap.
 * - Per try, timeout_ms / (3 x servers) with 2 tries: every server gets a try and a retry
 *   (at twice the wait) within the deadline; the deadline itself is ours (ares_cancel).
 * - With a single server, SERVFAIL and REFUSED are answers (ARES_FLAG_NOCHECKRESP): c-ares
 *   would otherwise ask the same server again and report "connection refused". With several,
 *   they make c-ares ask the next server, as the system resolver does. */
#include "worker/scan/resolve.h"

#include "common/dnsaddr.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

/* DNS class and record types (RFC 1035, RFC 3596). */
#define DNS_CLASS_IN 1
#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
/* Records read from one answer (duplicates included) before the first distinct ones are kept. */
#define PARSE_MAX 64
/* Tries per server, and the shortest wait for one try. */
#define TRIES 2
#define TRY_MS_MIN 10
/* Socket buffers asked for (the kernel caps them at net.core.[rw]mem_max). */
#define SEND_BUFFER (1024 * 1024)
#define RECV_BUFFER (1024 * 1024)

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_rc = ARES_ENOTINITIALIZED;

static void library_init(void)
{
    g_init_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

/* ---------------------------------------------------------------- one batch */

enum lookup_state {
    LOOKUP_WAITING = 0, /* not asked yet */
    LOOKUP_ASKING,      /* queries in flight */
    LOOKUP_DONE,
};

struct batch;

/* One distinct name. Its answer is written into out[res] (the first occurrence of the name)
 * and copied to the duplicates at the end. */
struct lookup {
    struct batch *b;
    const char *name;
    size_t res;
    enum lookup_state state;
    int pending;                /* queries in flight */
    int a_status, aaaa_status;  /* ARES_* outcome of each query */
    size_t n_a;                 /* A addresses at the front of out[res].addrs */
    bool hosts_done, hosts_hit; /* /etc/hosts lookup (system configuration) */
};

struct sock_watch {
    ares_socket_t fd;
    short events;
};

struct batch {
    ares_channel ch;
    ares_channel hosts; /* files-only channel with the system configuration, else NULL */
    struct cap_resolved *out;
    struct lookup *lk;
    size_t lk_n, next, active;
    struct sock_watch *socks;
    size_t socks_n, socks_cap;
    int64_t start_ms, deadline_ms;
    int timeout_ms;
    bool single_server;
    bool nomem;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* c-ares opens, closes or changes the interest of one of its sockets. */
static void cap_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct batch *b = data;
    size_t i = 0;
    while (i < b->socks_n && b->socks[i].fd != fd)
        i++;
    if (!readable && !writable) {
        if (i < b->socks_n)
            b->socks[i] = b->socks[--b->socks_n];
        return;
    }
    if (i == b->socks_n) {
        if (b->socks_n == b->socks_cap) {
            size_t cap = b->socks_cap ? b->socks_cap * 2 : 8;
            struct sock_watch *s = realloc(b->socks, cap * sizeof *s);
            if (!s) {
                b->nomem = true;
                return;
            }
            b->socks = s;
            b->socks_cap = cap;
        }
        b->socks[i].fd = fd;
        b->socks_n++;
    }
    b->socks[i].events = (short)((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
}

/* Adds one address to the name's result unless present: A addresses stay in front of AAAA
 * ones, and an A address displaces the last AAAA one when the list is full. */
static void add_addr(struct lookup *l, int family, const void *addr)
{
    struct cap_resolved *r = &l->b->out[l->res];
    size_t alen = family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < r->n; i++) {
        if (r->addrs[i].family == family && memcmp(r->addrs[i].addr, addr, alen) == 0)
            return;
    }
    size_t at;
    if (family == AF_INET) {
        if (l->n_a == CAP_RESOLVE_ADDRS_MAX)
            return;
        if (r->n == CAP_RESOLVE_ADDRS_MAX)
            r->n--;
        at = l->n_a++;
        memmove(&r->addrs[at + 1], &r->addrs[at], (r->n - at) * sizeof r->addrs[0]);
    } else {
        if (r->n == CAP_RESOLVE_ADDRS_MAX)
            return;
        at = r->n;
    }
    memset(&r->addrs[at], 0, sizeof r->addrs[at]);
    r->addrs[at].family = family;
    memcpy(r->addrs[at].addr, addr, alen);
    r->n++;
}

/* Rank of an outcome when neither query gave an address: the lowest is reported. */
static int outcome_rank(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
        return 0; /* the name does not exist: definite */
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return 2; /* unknown: the other query may have said more */
    case ARES_ENODATA:
    case ARES_SUCCESS:
        return 3; /* the name exists without this record type */
    default:
        return 1; /* a server or protocol failure */
    }
}

static void set_error(struct batch *b, struct cap_resolved *r, int status)
{
    const char *text;
    char buf[CAP_RESOLVE_ERROR_MAX];
    switch (status) {
    case ARES_ENOTFOUND:
        text = "does not resolve (NXDOMAIN)";
        break;
    case ARES_ENODATA:
    case ARES_SUCCESS:
        text = "no A or AAAA record";
        break;
    case ARES_ETIMEOUT:
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        snprintf(buf, sizeof buf, "no answer within %d ms", b->timeout_ms);
        text = buf;
        break;
    case ARES_ESERVFAIL:
        text = "server failure (SERVFAIL)";
        break;
    case ARES_EREFUSED:
        text = "query refused (REFUSED)";
        break;
    case ARES_ENOTIMP:
        text = "query not implemented by the server (NOTIMP)";
        break;
    case ARES_EFORMERR:
        text = "query rejected as malformed (FORMERR)";
        break;
    case ARES_EBADRESP:
        text = "malformed answer";
        break;
    case ARES_EBADNAME:
        text = "not a valid dns name";
        break;
    case ARES_ECONNREFUSED:
        text = b->single_server
                   ? "dns server unreachable (connection refused)"
                   : "no usable answer from any dns server (refused, failed or unreachable)";
        break;
    case ARES_ENOMEM:
        text = "out of memory";
        break;
    default:
        snprintf(buf, sizeof buf, "dns lookup failed (c-ares status %d)", status);
        text = buf;
        break;
    }
    r->status = -1;
    r->n = 0;
    snprintf(r->error, sizeof r->error, "%s", text);
}

static void lookup_finish(struct lookup *l)
{
    struct batch *b = l->b;
    struct cap_resolved *r = &b->out[l->res];
    if (l->state == LOOKUP_ASKING)
        b->active--;
    l->state = LOOKUP_DONE;
    r->elapsed_ms = mono_ms() - b->start_ms;
    if (r->n > 0) {
        r->status = 0;
        r->error[0] = '\0';
        return;
    }
    if (l->a_status == ARES_ENOMEM || l->aaaa_status == ARES_ENOMEM)
        b->nomem = true;
    int s =
        outcome_rank(l->a_status) <= outcome_rank(l->aaaa_status) ? l->a_status : l->aaaa_status;
    set_error(b, r, s);
}

static void query_done(struct lookup *l, int family, int status, unsigned char *abuf, int alen)
{
    if (status == ARES_SUCCESS) {
        int found = PARSE_MAX;
        if (family == AF_INET) {
            struct ares_addrttl at[PARSE_MAX];
            status = ares_parse_a_reply(abuf, alen, NULL, at, &found);
            for (int i = 0; status == ARES_SUCCESS && i < found; i++)
                add_addr(l, AF_INET, &at[i].ipaddr);
        } else {
            struct ares_addr6ttl at[PARSE_MAX];
            status = ares_parse_aaaa_reply(abuf, alen, NULL, at, &found);
            for (int i = 0; status == ARES_SUCCESS && i < found; i++)
                add_addr(l, AF_INET6, &at[i].ip6addr);
        }
        if (status == ARES_SUCCESS && found == 0)
            status = ARES_ENODATA; /* e.g. a CNAME alone */
    }
    if (family == AF_INET)
        l->a_status = status;
    else
        l->aaaa_status = status;
    if (--l->pending == 0)
        lookup_finish(l);
}

static void cap_a_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    query_done(arg, AF_INET, status, abuf, alen);
}

static void cap_aaaa_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    query_done(arg, AF_INET6, status, abuf, alen);
}

/* /etc/hosts answer (files-only channel: called before ares_getaddrinfo returns). */
static void cap_hosts_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct lookup *l = arg;
    l->hosts_done = true;
    if (status == ARES_ENOMEM)
        l->b->nomem = true;
    if (status != ARES_SUCCESS || !res) {
        ares_freeaddrinfo(res);
        return;
    }
    /* A addresses first, whatever the order of the lines. */
    for (int pass = 0; pass < 2; pass++) {
        int fam = pass == 0 ? AF_INET : AF_INET6;
        for (struct ares_addrinfo_node *nd = res->nodes; nd; nd = nd->ai_next) {
            if (nd->ai_family != fam || !nd->ai_addr)
                continue;
            if (fam == AF_INET)
                add_addr(l, fam, &((struct sockaddr_in *)(void *)nd->ai_addr)->sin_addr);
            else
                add_addr(l, fam, &((struct sockaddr_in6 *)(void *)nd->ai_addr)->sin6_addr);
        }
    }
    l->hosts_hit = l->b->out[l->res].n > 0;
    ares_freeaddrinfo(res);
}

/* Starts lookups until CAP_RESOLVE_INFLIGHT are in flight or none is waiting. */
static void start_more(struct batch *b)
{
    while (b->active < CAP_RESOLVE_INFLIGHT && b->next < b->lk_n && !b->nomem) {
        struct lookup *l = &b->lk[b->next++];
        if (b->hosts) {
            struct ares_addrinfo_hints hints;
            memset(&hints, 0, sizeof hints);
            hints.ai_family = AF_UNSPEC;
            hints.ai_flags = ARES_AI_NOSORT;
            /* Lines of /etc/hosts name hosts without the root's trailing dot. */
            char bare[CAP_HOSTNAME_MAX + 1];
            snprintf(bare, sizeof bare, "%s", l->name);
            size_t bl = strlen(bare);
            if (bl > 1 && bare[bl - 1] == '.')
                bare[bl - 1] = '\0';
            ares_getaddrinfo(b->hosts, bare, NULL, &hints, cap_hosts_cb, l);
            if (!l->hosts_done)
                ares_cancel(b->hosts); /* not expected: a files-only lookup completes at once */
            if (l->hosts_hit) {
                l->a_status = l->aaaa_status = ARES_SUCCESS;
                lookup_finish(l);
                continue;
            }
        }
        l->state = LOOKUP_ASKING;
        l->pending = 2;
        b->active++;
        /* Either callback may run before ares_query returns (a send that fails at once). */
        ares_query(b->ch, l->name, DNS_CLASS_IN, DNS_TYPE_A, cap_a_cb, l);
        ares_query(b->ch, l->name, DNS_CLASS_IN, DNS_TYPE_AAAA, cap_aaaa_cb, l);
    }
}

/* Waits for answers until every lookup is done or the deadline passes. 0, or -1 with err. */
static int run_loop(struct batch *b, struct cap_err *err)
{
    struct pollfd *pfd = NULL;
    size_t pfd_cap = 0;
    for (;;) {
        start_more(b);
        if (b->nomem)
            break;
        if (b->active == 0 && b->next == b->lk_n)
            break;
        int64_t now = mono_ms();
        if (now >= b->deadline_ms)
            break;
        int64_t left = b->deadline_ms - now;
        struct timeval maxtv = {.tv_sec = (time_t)(left / 1000),
                                .tv_usec = (suseconds_t)(left % 1000) * 1000};
        struct timeval tv;
        struct timeval *tvp = ares_timeout(b->ch, &maxtv, &tv);
        int64_t wait = (int64_t)tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000;
        if (wait > left)
            wait = left;
        if (b->socks_n > pfd_cap) {
            struct pollfd *p = realloc(pfd, b->socks_n * sizeof *p);
            if (!p) {
                b->nomem = true;
                break;
            }
            pfd = p;
            pfd_cap = b->socks_n;
        }
        /* A copy: the callbacks below change b->socks. */
        size_t nfds = b->socks_n;
        for (size_t i = 0; i < nfds; i++) {
            pfd[i].fd = b->socks[i].fd;
            pfd[i].events = b->socks[i].events;
            pfd[i].revents = 0;
        }
        int rc = poll(pfd, (nfds_t)nfds, (int)wait);
        if (rc < 0 && errno != EINTR) {
            cap_err_set(err, CAP_E_IO, "waiting for dns answers: %s", strerror(errno));
            free(pfd);
            return -1;
        }
        if (rc <= 0) {
            ares_process_fd(b->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
            continue;
        }
        for (size_t i = 0; i < nfds; i++) {
            short ev = pfd[i].revents;
            if (!ev)
                continue;
            ares_socket_t rfd = (ev & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_socket_t wfd = (ev & (POLLOUT | POLLERR | POLLHUP)) ? pfd[i].fd : ARES_SOCKET_BAD;
            ares_process_fd(b->ch, rfd, wfd);
        }
    }
    free(pfd);
    return 0;
}

/* Names compared without case and without one trailing dot; ties keep the order given. */
struct name_key {
    const char *s;
    size_t len;
    size_t idx;
};

static int name_cmp(const struct name_key *a, const struct name_key *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = (unsigned char)a->s[i], cb = (unsigned char)b->s[i];
        if (ca >= 'A' && ca <= 'Z')
            ca = (unsigned char)(ca - 'A' + 'a');
        if (cb >= 'A' && cb <= 'Z')
            cb = (unsigned char)(cb - 'A' + 'a');
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return 0;
}

static int name_key_cmp(const void *pa, const void *pb)
{
    const struct name_key *a = pa, *b = pb;
    int c = name_cmp(a, b);
    if (c != 0)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int lookup_order_cmp(const void *pa, const void *pb)
{
    const struct lookup *a = pa, *b = pb;
    return a->res < b->res ? -1 : a->res > b->res;
}

/* Fills the results that need no query (bad names, IP literals) and lists the distinct names
 * left in b->lk; dup[i] is set to the result index whose answer name i shares (else i). */
static int plan(struct batch *b, const char *const *names, size_t n, size_t *dup)
{
    struct name_key *keys = malloc((n ? n : 1) * sizeof *keys);
    b->lk = calloc(n ? n : 1, sizeof *b->lk);
    if (!keys || !b->lk) {
        free(keys);
        return -1;
    }
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        struct cap_resolved *r = &b->out[i];
        const char *s = names[i] ? names[i] : "";
        size_t len = strlen(s);
        dup[i] = i;
        snprintf(r->name, sizeof r->name, "%s", s);
        r->status = -1;
        if (len == 0) {
            snprintf(r->error, sizeof r->error, "empty name");
            continue;
        }
        if (len > CAP_HOSTNAME_MAX) {
            snprintf(r->error, sizeof r->error, "name longer than %d bytes", CAP_HOSTNAME_MAX);
            continue;
        }
        if (inet_pton(AF_INET, s, r->addrs[0].addr) == 1) {
            r->addrs[0].family = AF_INET;
        } else if (inet_pton(AF_INET6, s, r->addrs[0].addr) == 1) {
            r->addrs[0].family = AF_INET6;
        } else {
            keys[nk].s = s;
            keys[nk].len = s[len - 1] == '.' ? len - 1 : len;
            keys[nk].idx = i;
            nk++;
            continue;
        }
        r->status = 0; /* an IP literal is its own answer */
        r->n = 1;
    }
    qsort(keys, nk, sizeof *keys, name_key_cmp);
    for (size_t k = 0; k < nk; k++) {
        if (k > 0 && name_cmp(&keys[k], &keys[k - 1]) == 0) {
            dup[keys[k].idx] = dup[keys[k - 1].idx];
            continue;
        }
        struct lookup *l = &b->lk[b->lk_n++];
        l->b = b;
        l->name = keys[k].s;
        l->res = keys[k].idx;
        l->a_status = l->aaaa_status = ARES_ENODATA;
    }
    free(keys);
    /* Ask in the order given (the sort grouped the names alphabetically). */
    qsort(b->lk, b->lk_n, sizeof *b->lk, lookup_order_cmp);
    return 0;
}

static int init_failed(int rc, const char *what, struct cap_err *err)
{
    cap_err_set(err, rc == ARES_ENOMEM ? CAP_E_NOMEM : CAP_E_IO, "%s: c-ares status %d", what, rc);
    return -1;
}

/* Sets up b->ch: the given servers, else the system's, which b->hosts (the /etc/hosts lookup
 * of the system configuration) also counts. 0, or -1 with err. */
static int open_channels(struct batch *b, const struct cap_dns_server *sv, size_t sv_n,
                         struct cap_err *err)
{
    size_t nservers = sv_n;
    if (sv_n == 0) {
        struct ares_options o;
        memset(&o, 0, sizeof o);
        char lookups[] = "f";
        o.lookups = lookups;
        int rc = ares_init_options(&b->hosts, &o, ARES_OPT_LOOKUPS);
        if (rc != ARES_SUCCESS) {
            b->hosts = NULL;
            return init_failed(rc, "setting up the hosts file lookup", err);
        }
        struct ares_addr_port_node *list = NULL;
        if (ares_get_servers_ports(b->hosts, &list) == ARES_SUCCESS) {
            for (struct ares_addr_port_node *p = list; p; p = p->next)
                nservers++;
        }
        ares_free_data(list);
        if (nservers == 0)
            nservers = 1;
    }
    b->single_server = nservers == 1;
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.flags = b->single_server ? ARES_FLAG_NOCHECKRESP : 0;
    o.timeout = b->timeout_ms / (3 * (int)nservers);
    if (o.timeout < TRY_MS_MIN)
        o.timeout = TRY_MS_MIN;
    o.tries = TRIES;
    o.socket_send_buffer_size = SEND_BUFFER;
    o.socket_receive_buffer_size = RECV_BUFFER;
    o.sock_state_cb = cap_sock_state_cb;
    o.sock_state_cb_data = b;
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_SNDBUF |
               ARES_OPT_SOCK_RCVBUF | ARES_OPT_SOCK_STATE_CB;
    int rc = ares_init_options(&b->ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        b->ch = NULL;
        return init_failed(rc, "setting up the dns resolver", err);
    }
    if (sv_n == 0)
        return 0;
    struct ares_addr_port_node nodes[CAP_RESOLVE_SERVERS_MAX];
    memset(nodes, 0, sizeof nodes);
    for (size_t i = 0; i < sv_n; i++) {
        nodes[i].next = i + 1 < sv_n ? &nodes[i + 1] : NULL;
        nodes[i].family = sv[i].family;
        memcpy(&nodes[i].addr, sv[i].addr, sv[i].family == AF_INET ? 4 : 16);
        nodes[i].udp_port = sv[i].port;
        nodes[i].tcp_port = sv[i].port;
    }
    rc = ares_set_servers_ports(b->ch, nodes);
    if (rc != ARES_SUCCESS)
        return init_failed(rc, "setting the dns servers", err);
    return 0;
}

int cap_resolve_names(const char *const *names, size_t n, const char *const *servers,
                      size_t servers_n, int timeout_ms, struct cap_resolved **out,
                      struct cap_err *err)
{
    if (timeout_ms < 1 || timeout_ms > CAP_RESOLVE_TIMEOUT_MAX) {
        cap_err_set(err, CAP_E_INVALID, "dns timeout %d ms: expected 1 to %d", timeout_ms,
                    CAP_RESOLVE_TIMEOUT_MAX);
        return -1;
    }
    if (!servers)
        servers_n = 0;
    if (servers_n > CAP_RESOLVE_SERVERS_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "dns servers: %zu given, at most %d", servers_n,
                    CAP_RESOLVE_SERVERS_MAX);
        return -1;
    }
    struct cap_dns_server sv[CAP_RESOLVE_SERVERS_MAX];
    for (size_t i = 0; i < servers_n; i++) {
        if (cap_dns_server_parse(servers[i], &sv[i], err) != 0)
            return -1;
    }
    if (n == 0) {
        *out = NULL;
        return 0;
    }
    pthread_once(&g_once, library_init);
    if (g_init_rc != ARES_SUCCESS) {
        cap_err_set(err, CAP_E_IO, "setting up c-ares: status %d", g_init_rc);
        return -1;
    }

    struct batch b;
    memset(&b, 0, sizeof b);
    b.timeout_ms = timeout_ms;
    b.single_server = servers_n == 1;
    b.start_ms = mono_ms();
    b.deadline_ms = b.start_ms + timeout_ms;
    b.out = calloc(n, sizeof *b.out);
    size_t *dup = calloc(n, sizeof *dup);
    int rc = -1;
    if (!b.out || !dup || plan(&b, names, n, dup) != 0) {
        b.nomem = true;
        goto done;
    }
    if (b.lk_n > 0) {
        if (open_channels(&b, sv, servers_n, err) != 0)
            goto done;
        if (run_loop(&b, err) != 0)
            goto done;
        /* The deadline: what is still in flight gets ARES_ECANCELLED now. */
        ares_cancel(b.ch);
    }
    for (size_t i = 0; i < b.lk_n; i++) {
        struct lookup *l = &b.lk[i];
        if (l->state == LOOKUP_DONE)
            continue;
        struct cap_resolved *r = &b.out[l->res];
        r->status = -1;
        r->n = 0;
        r->elapsed_ms = mono_ms() - b.start_ms;
        snprintf(r->error, sizeof r->error, "not asked within %d ms (%d names at a time)",
                 timeout_ms, CAP_RESOLVE_INFLIGHT);
    }
    for (size_t i = 0; i < n; i++) {
        if (dup[i] == i)
            continue;
        struct cap_resolved *r = &b.out[i], *src = &b.out[dup[i]];
        char name[sizeof r->name];
        memcpy(name, r->name, sizeof name);
        *r = *src;
        memcpy(r->name, name, sizeof name);
    }
    rc = 0;
done:
    if (b.ch)
        ares_destroy(b.ch);
    if (b.hosts)
        ares_destroy(b.hosts);
    if (b.nomem) {
        rc = -1;
        cap_err_set(err, CAP_E_NOMEM, "resolving %zu host names: out of memory", n);
    }
    free(b.socks);
    free(b.lk);
    free(dup);
    if (rc != 0) {
        free(b.out);
        return -1;
    }
    *out = b.out;
    return 0;
}
