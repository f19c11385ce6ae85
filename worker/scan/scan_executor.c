/* The network_scan executor: expands a source into targets, resolves host names on the job
 * thread, applies the network policy to every address, feeds the worker's scan engine within
 * the source's concurrency and writes each result through the inventory as it comes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <json-c/json.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/pg.h"
#include "common/policy.h"
#include "common/source/network_scan.h"
#include "common/targets.h"
#include "worker/executor.h"
#include "worker/inventory.h"
#include "worker/scan/engine.h"
#include "worker/scan/resolve.h"
#include "worker/scan/revocation.h"
#include "worker/scan/trust.h"

/* $1 the source's CIDRs, $2 its host names: endpoints already in the inventory inside them
 * (they answered once, or were listed one by one): there a failed connect is news, not an
 * empty address. */
static const char SQL_KNOWN_ENDPOINTS[] =
    "SELECT host(e.address), e.port FROM endpoints e "
    "WHERE (e.sni = '' AND e.address <<= ANY($1::text[]::inet[])) OR e.sni = ANY($2::text[])";

/* Distinct refusal reasons and failing host names kept for the run's details. */
#define REFUSED_REASONS_MAX 32
#define HOSTS_LISTED_MAX 20
/* Results fetched per wait; the job keeps about two windows of probes queued. */
#define WAIT_MS 200
/* Distinct chains whose verification a run remembers. */
#define VERIFIED_MAX 256
/* Descriptors one job may hold besides its probes: its PostgreSQL connection, OCSP and CRL
 * transfers, DNS sockets, CT transfers (a CT job runs in the same worker). */
#define FDS_PER_JOB 24
/* Time a run may spend on OCSP and CRL after its handshakes. */
#define REVOCATION_BUDGET_MS 30000

static struct cap_scan_engine *g_engine;
static struct cap_metric *g_m_handshakes, *g_m_duration, *g_m_empty;
static struct cap_policy g_policy;
/* Scan jobs running on this worker now: they share the engine's pending-connect budget, so
 * each keeps queued only its share of it (several shards of one run on one worker would
 * otherwise each queue a whole budget's worth of targets). */
static atomic_int g_scans_active;

struct refused_reason {
    char reason[CAP_POLICY_REASON_MAX];
    uint64_t count;
};

/* A set of (family, address, port), open addressing. */
struct known_set {
    uint8_t (*keys)[20];
    size_t cap, n;
};

static void known_key(uint8_t key[20], int family, const uint8_t *addr, int port)
{
    memset(key, 0, 20);
    key[0] = (uint8_t)(family == AF_INET ? 4 : 6);
    memcpy(key + 1, addr, family == AF_INET ? 4 : 16);
    key[17] = (uint8_t)(port >> 8);
    key[18] = (uint8_t)port;
}

static size_t known_slot(const struct known_set *k, const uint8_t key[20])
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 20; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    size_t i = (size_t)h & (k->cap - 1);
    while (k->keys[i][0] != 0 && memcmp(k->keys[i], key, 20) != 0)
        i = (i + 1) & (k->cap - 1);
    return i;
}

static int known_add(struct known_set *k, int family, const uint8_t *addr, int port)
{
    if ((k->n + 1) * 2 > k->cap) {
        size_t ncap = k->cap ? k->cap * 2 : 64;
        struct known_set nk = {.keys = calloc(ncap, 20), .cap = ncap};
        if (!nk.keys)
            return -1;
        for (size_t i = 0; i < k->cap; i++) {
            if (k->keys[i][0] != 0)
                memcpy(nk.keys[known_slot(&nk, k->keys[i])], k->keys[i], 20);
        }
        nk.n = k->n;
        free(k->keys);
        *k = nk;
    }
    uint8_t key[20];
    known_key(key, family, addr, port);
    size_t i = known_slot(k, key);
    if (k->keys[i][0] == 0) {
        memcpy(k->keys[i], key, 20);
        k->n++;
    }
    return 0;
}

static bool known_has(const struct known_set *k, int family, const uint8_t *addr, int port)
{
    if (k->n == 0)
        return false;
    uint8_t key[20];
    known_key(key, family, addr, port);
    return k->keys[known_slot(k, key)][0] != 0;
}

struct scan_run {
    struct cap_run_ctx *ctx;
    const struct cap_network_scan_spec *spec; /* the source's, ctx->src->spec */
    struct cap_inventory *inv;
    int peak;
    struct cap_revocation *rev;
    struct cap_scan_job *job;
    uint64_t total; /* endpoints to probe (targets minus refused plus extra addresses) */
    uint64_t submitted, ok, refused_conn, timeouts, tls_errors;
    uint64_t policy_refused;
    struct refused_reason reasons[REFUSED_REASONS_MAX];
    size_t reasons_n;
    char refused_hosts[HOSTS_LISTED_MAX][CAP_HOSTNAME_MAX + 1];
    size_t refused_hosts_n;
    uint64_t dns_failed;           /* listed names that did not resolve */
    struct cap_resolved *resolved; /* per listed host (src->hosts), from resolve_hosts */
    char dns_error[160];
    int override_port[CAP_STARTTLS_OVERRIDES_MAX];
    enum cap_starttls_proto override_proto[CAP_STARTTLS_OVERRIDES_MAX];
    size_t overrides_n;
    int64_t last_progress_ms;
    uint64_t last_total_sent;
    struct known_set known; /* address endpoints inside the source's CIDRs */
    size_t hosts_lo, hosts_hi; /* the listed hosts this job scans (a shard: some or none) */
    bool counted_active;       /* counted in g_scans_active */
    X509_STORE *trust;      /* the worker's trust store as the run started (a reference) */
    unsigned trust_gen;     /* its generation (the worker keeps verifications per generation) */
    uint64_t verifications; /* chains OpenSSL verified in this run (not kept from a run before) */
    struct verified {
        uint8_t key[32]; /* SHA-256 over the chain's certificates */
        int result;
        const char *text;
    } verified[VERIFIED_MAX]; /* chains verified in this run */
    size_t verified_n;
    uint64_t empty[3]; /* silent, closed, no_route: never connected, never an endpoint */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note_refused(struct scan_run *r, const char *reason, uint64_t count, const char *host)
{
    r->policy_refused += count;
    cap_metric_add(g_m_handshakes, "policy_block", (double)count);
    size_t i = 0;
    for (; i < r->reasons_n; i++) {
        if (strcmp(r->reasons[i].reason, reason) == 0)
            break;
    }
    if (i == r->reasons_n && r->reasons_n < REFUSED_REASONS_MAX) {
        snprintf(r->reasons[i].reason, sizeof r->reasons[i].reason, "%s", reason);
        r->reasons_n++;
    }
    if (i < r->reasons_n)
        r->reasons[i].count += count;
    if (host && r->refused_hosts_n < HOSTS_LISTED_MAX) {
        for (size_t k = 0; k < r->refused_hosts_n; k++) {
            if (strcmp(r->refused_hosts[k], host) == 0)
                return;
        }
        snprintf(r->refused_hosts[r->refused_hosts_n++], CAP_HOSTNAME_MAX + 1, "%s", host);
    }
}

/* Request tag: the target came from a sweep (a CIDR wider than one address), where an address
 * that never completes a TCP connect and was not an endpoint before is only counted. */
#define TAG_SWEEP 1u
/* Request tag: an address of a host name that has addresses of both families. */
#define TAG_ALT_FAMILY 2u

static void fill_req(struct cap_scan_req *q, const struct scan_run *r, int family,
                     const uint8_t *addr, int port, const char *host, bool is_name, bool sweep)
{
    memset(q, 0, sizeof *q);
    q->family = family;
    memcpy(q->addr, addr, family == AF_INET ? 4 : 16);
    q->port = port;
    q->timeout_ms = r->spec->timeout_ms > 0 ? r->spec->timeout_ms : 5000;
    q->starttls = cap_starttls_for_port(port);
    for (size_t i = 0; i < r->overrides_n; i++) {
        if (r->override_port[i] == port)
            q->starttls = r->override_proto[i];
    }
    /* No host text for an address target: the result's address says it. */
    q->sni = is_name ? host : NULL;
    q->host = host;
    q->tag = sweep ? TAG_SWEEP : 0;
}

/* Names resolved per c-ares batch (a few rounds of CAP_RESOLVE_INFLIGHT). */
#define RESOLVE_CHUNK 1024

/* Resolves every listed host name of the run (of a shard: those with a target in its slice)
 * once (whatever the number of ports), many at once, on this job thread; a name that does not
 * resolve is an unresolvable finding on it. */
static int resolve_hosts(struct scan_run *r, struct cap_err *err)
{
    const struct cap_network_scan_spec *src = r->spec;
    if (src->hosts_n == 0)
        return 0;
    r->resolved = calloc(src->hosts_n, sizeof *r->resolved);
    if (!r->resolved) {
        cap_err_set(err, CAP_E_NOMEM, "network scan: out of memory for %zu host names",
                    src->hosts_n);
        return -1;
    }
    const struct cap_config *cfg = r->ctx->cfg;
    int timeout = src->timeout_ms > 0 ? src->timeout_ms : 5000;
    for (size_t at = r->hosts_lo; at < r->hosts_hi; at += RESOLVE_CHUNK) {
        size_t n = r->hosts_hi - at < RESOLVE_CHUNK ? r->hosts_hi - at : RESOLVE_CHUNK;
        struct cap_resolved *out = NULL;
        if (cap_resolve_names((const char *const *)src->hosts + at, n,
                              (const char *const *)cfg->network_dns_servers,
                              cfg->network_dns_servers_n, timeout, &out, err) != 0) {
            cap_err_prefix(err, "resolving host names: ");
            return -1;
        }
        memcpy(r->resolved + at, out, n * sizeof *out);
        free(out);
    }
    for (size_t i = r->hosts_lo; i < r->hosts_hi; i++) {
        const struct cap_resolved *a = &r->resolved[i];
        if (a->status == 0 || !cap_targets_valid_hostname(src->hosts[i]))
            continue;
        r->dns_failed++;
        if (!r->dns_error[0])
            snprintf(r->dns_error, sizeof r->dns_error, "host %s: %s", src->hosts[i], a->error);
        cap_log(CAP_LOG_INFO, "scan_dns_failed", CAP_LI("run_id", r->ctx->run_id),
                CAP_LS("target", src->hosts[i]), CAP_LS("err", a->error));
        json_object *d = json_object_new_object();
        json_object_object_add(d, "host", json_object_new_string(src->hosts[i]));
        json_object_object_add(d, "reason", json_object_new_string(a->error));
        char subject[CAP_HOSTNAME_MAX + 8];
        snprintf(subject, sizeof subject, "name:%s", src->hosts[i]);
        int rc =
            cap_inventory_raise(r->inv, CAP_FINDING_UNRESOLVABLE, subject, 0, 0, NULL,
                                json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN), err);
        json_object_put(d);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Submits one probe per distinct address of a listed host name (resolved by resolve_hosts)
 * that the policy allows, its deadline what is left of the per-host timeout after the name
 * resolved. */
static int submit_host(struct scan_run *r, const struct cap_target *tg, struct cap_err *err)
{
    const struct cap_resolved *a = &r->resolved[tg->item];
    if (a->status != 0) {
        r->total = r->total > 0 ? r->total - 1 : 0;
        return 0;
    }
    bool v4 = false, v6 = false;
    for (size_t i = 0; i < a->n; i++) {
        v4 = v4 || a->addrs[i].family == AF_INET;
        v6 = v6 || a->addrs[i].family == AF_INET6;
    }
    size_t submitted = 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct cap_resolved_addr *ad = &a->addrs[i];
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        if (ad->family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, ad->addr, 4);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, ad->addr, 16);
        }
        /* Checked after resolution, every time: no verdict is cached for a name. */
        char why[CAP_POLICY_REASON_MAX];
        if (cap_policy_check_addr(&g_policy, (struct sockaddr *)&ss, why, sizeof why) !=
            CAP_POLICY_ALLOWED) {
            note_refused(r, why, 1, tg->host);
            continue;
        }
        struct cap_scan_req q;
        fill_req(&q, r, ad->family, ad->addr, tg->port, tg->host, true, false);
        int left = q.timeout_ms - (int)a->elapsed_ms;
        q.timeout_ms = left < 250 ? 250 : left;
        /* A dual-stack name: an address of a family this worker has no route for is counted,
         * not stored, as long as the other family is there to be scanned. */
        if (v4 && v6)
            q.tag |= TAG_ALT_FAMILY;
        if (cap_scan_job_submit(r->job, &q, err) != 0)
            return -1;
        submitted++;
        r->submitted++;
    }
    /* The name counted as one target; it is as many endpoints as allowed addresses. */
    r->total = r->total - 1 + submitted;
    return 0;
}

/* Verifies the chain as sent against the run's trust store (after the handshake, off the
 * loop), once per distinct chain in the run (many endpoints serve the same one), and not at
 * all when an earlier run of the worker verified it against the same store and nothing about
 * it has changed since (cap_trust_verify_cached). Returns 0 when it verifies, else the
 * X509_V_ERR code; -1 when it could not run. */
static int verify_chain(struct scan_run *r, STACK_OF(X509) * chain, const struct cap_der *ders,
                        size_t nd, const char **text)
{
    uint8_t key[32];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool keyed = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; keyed && i < nd; i++) {
        uint8_t len[4] = {(uint8_t)(ders[i].len >> 24), (uint8_t)(ders[i].len >> 16),
                          (uint8_t)(ders[i].len >> 8), (uint8_t)ders[i].len};
        keyed = EVP_DigestUpdate(md, len, 4) == 1 &&
                EVP_DigestUpdate(md, ders[i].der, ders[i].len) == 1;
    }
    keyed = keyed && EVP_DigestFinal_ex(md, key, NULL) == 1;
    EVP_MD_CTX_free(md);
    if (keyed) {
        for (size_t i = 0; i < r->verified_n; i++) {
            if (memcmp(r->verified[i].key, key, 32) == 0) {
                *text = r->verified[i].text;
                return r->verified[i].result;
            }
        }
    }
    bool verified = false;
    int res = keyed ? cap_trust_verify_cached(r->trust, r->trust_gen, key, chain, text, &verified)
                    : cap_trust_verify(r->trust, chain, text);
    if (!keyed || verified)
        r->verifications++;
    if (keyed && r->verified_n < VERIFIED_MAX) {
        memcpy(r->verified[r->verified_n].key, key, 32);
        r->verified[r->verified_n].result = res;
        r->verified[r->verified_n].text = *text;
        r->verified_n++;
    }
    return res;
}

static int handle_result(struct scan_run *r, struct cap_scan_result *res, struct cap_err *err)
{
    const struct cap_scan_req *q = &res->req;
    bool empty = res->empty && ((q->tag & TAG_SWEEP) ||
                                ((q->tag & TAG_ALT_FAMILY) && strcmp(res->empty, "no_route") == 0));
    if (empty && !known_has(&r->known, q->family, q->addr, q->port)) {
        /* An address of a sweep that never answered: counted on the run, nothing stored. */
        int k = strcmp(res->empty, "silent") == 0 ? 0 : strcmp(res->empty, "closed") == 0 ? 1 : 2;
        r->empty[k]++;
        cap_metric_add(g_m_empty, res->empty, 1);
        (void)cap_inventory_count_empty(r->inv, res->empty);
        return 0;
    }
    char addr[INET6_ADDRSTRLEN];
    inet_ntop(q->family, q->addr, addr, sizeof addr);
    int n = res->chain ? sk_X509_num(res->chain) : 0;
    struct cap_der ders[16];
    uint8_t *bufs[16];
    size_t nd = 0;
    for (int i = 0; i < n && nd < 16; i++) {
        uint8_t *b = NULL;
        int len = i2d_X509(sk_X509_value(res->chain, i), &b);
        if (len <= 0)
            continue;
        bufs[nd] = b;
        ders[nd].der = b;
        ders[nd].len = (size_t)len;
        ders[nd].x509 = sk_X509_value(res->chain, i); /* parsed by the handshake already */
        nd++;
    }
    struct cap_observation o;
    memset(&o, 0, sizeof o);
    o.host = q->host[0] ? q->host : addr;
    o.address = addr;
    o.port = q->port;
    o.sni = q->sni;
    o.host_is_name = q->sni[0] != '\0';
    o.outcome = res->outcome;
    o.error = res->error[0] ? res->error : NULL;
    o.tls_version = res->version[0] ? res->version : NULL;
    o.cipher_suite = res->cipher[0] ? res->cipher : NULL;
    o.kex_group_id = res->group_id;
    o.kex_group = res->group[0] ? res->group : NULL;
    o.chain = nd ? ders : NULL;
    o.chain_n = nd;
    o.verify_result = -1;
    if (strcmp(res->outcome, "ok") == 0 && nd > 0)
        o.verify_result = verify_chain(r, res->chain, ders, nd, &o.verify_error);
    int rc = cap_inventory_add_observation(r->inv, &o, err);
    if (rc == 0 && nd > 0 && strcmp(res->outcome, "ok") == 0)
        cap_revocation_add_chain(r->rev, res->chain);
    for (size_t i = 0; i < nd; i++)
        OPENSSL_free(bufs[i]);
    cap_metric_add(g_m_handshakes, res->outcome, 1);
    cap_metric_observe(g_m_duration, NULL, (double)res->elapsed_ms / 1000.0);
    if (strcmp(res->outcome, "ok") == 0)
        r->ok++;
    else if (strcmp(res->outcome, "refused") == 0)
        r->refused_conn++;
    else if (strcmp(res->outcome, "timeout") == 0)
        r->timeouts++;
    else
        r->tls_errors++;
    cap_log(CAP_LOG_DEBUG, "scan_result", CAP_LI("run_id", r->ctx->run_id),
            CAP_LS("target", o.host), CAP_LS("address", addr), CAP_LI("port", q->port),
            CAP_LS("outcome", res->outcome), CAP_LS("err", res->error),
            CAP_LI("ms", res->elapsed_ms));
    return rc;
}

/* Reads the source's STARTTLS overrides (spec starttls, "PORT:PROTOCOL"). */
static int load_overrides(struct scan_run *r, struct cap_err *err)
{
    const struct cap_network_scan_spec *src = r->spec;
    for (size_t i = 0; i < src->starttls_n; i++) {
        int port;
        enum cap_starttls_proto proto;
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        if (cap_starttls_parse_override(src->starttls[i], &port, &proto) != 0) {
            cap_err_set(err, CAP_E_INVALID, "starttls \"%s\": expected PORT:PROTOCOL",
                        cap_err_quote(q, sizeof q, src->starttls[i], strlen(src->starttls[i])));
            return -1;
        }
        if (r->overrides_n < CAP_STARTTLS_OVERRIDES_MAX) {
            r->override_port[r->overrides_n] = port;
            r->override_proto[r->overrides_n++] = proto;
        }
    }
    return 0;
}

/* Reads the address endpoints the inventory already has inside the source's CIDRs. */
static int load_known(struct scan_run *r, struct cap_err *err)
{
    const struct cap_network_scan_spec *src = r->spec;
    if (src->cidrs_n == 0 && src->hosts_n == 0)
        return 0;
    char *cidrs = cap_pg_text_array((const char *const *)src->cidrs, src->cidrs_n);
    char *hosts = cap_pg_text_array((const char *const *)src->hosts, src->hosts_n);
    if (!cidrs || !hosts) {
        free(cidrs);
        free(hosts);
        cap_err_set(err, CAP_E_NOMEM, "network scan: out of memory");
        return -1;
    }
    const char *p[] = {cidrs, hosts};
    PGresult *res = cap_pg_exec(r->ctx->pg, "read known endpoints", SQL_KNOWN_ENDPOINTS, 2, p, err);
    free(cidrs);
    free(hosts);
    if (!res)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        const char *a = PQgetvalue(res, i, 0);
        int port = (int)strtol(PQgetvalue(res, i, 1), NULL, 10);
        uint8_t b[16];
        int family = strchr(a, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(family, a, b) != 1)
            continue;
        if (known_add(&r->known, family, b, port) != 0) {
            cap_err_set(err, CAP_E_NOMEM, "network scan: out of memory for known endpoints");
            rc = -1;
        }
    }
    PQclear(res);
    return rc;
}

static int progress(struct scan_run *r, bool force, struct cap_err *err)
{
    int64_t t = mono_ms();
    if (!force && (r->total == r->last_total_sent || t - r->last_progress_ms < 1000))
        return 0;
    r->last_progress_ms = t;
    r->last_total_sent = r->total;
    struct cap_progress p = CAP_PROGRESS_KEEP;
    p.items_total = (int64_t)r->total;
    return cap_run_progress(r->ctx, &p, err);
}

/* The details of the run's policy_block finding: refused ranges and counts, host names. */
static json_object *policy_details(struct scan_run *r)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "refused_addresses",
                           json_object_new_int64((int64_t)r->policy_refused));
    json_object *ranges = json_object_new_array();
    for (size_t i = 0; i < r->reasons_n; i++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "reason", json_object_new_string(r->reasons[i].reason));
        json_object_object_add(x, "count", json_object_new_int64((int64_t)r->reasons[i].count));
        json_object_array_add(ranges, x);
    }
    json_object_object_add(d, "ranges", ranges);
    json_object *hosts = json_object_new_array();
    for (size_t i = 0; i < r->refused_hosts_n; i++)
        json_object_array_add(hosts, json_object_new_string(r->refused_hosts[i]));
    json_object_object_add(d, "hosts", hosts);
    char reason[300];
    snprintf(reason, sizeof reason, "%llu address%s refused by the network policy",
             (unsigned long long)r->policy_refused, r->policy_refused == 1 ? "" : "es");
    json_object_object_add(d, "reason", json_object_new_string(reason));
    return d;
}

/* Writes the run's policy_block finding. A shard writes its part in its stats instead; the
 * run's one finding sums them when the run ends (migration 017). */
static int raise_policy_block(struct scan_run *r, struct cap_err *err)
{
    json_object *d = policy_details(r);
    if (r->ctx->shard > 0) {
        json_object *st = json_object_new_object();
        json_object_object_add(st, "policy_refused",
                               json_object_new_int64((int64_t)r->policy_refused));
        json_object_object_add(st, "policy", d);
        struct cap_progress p = CAP_PROGRESS_KEEP;
        p.stats = json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN);
        int rc = cap_run_progress(r->ctx, &p, err);
        json_object_put(st);
        return rc;
    }
    char subject[48];
    snprintf(subject, sizeof subject, "run:%lld", (long long)r->ctx->run_id);
    int rc = cap_inventory_raise(r->inv, CAP_FINDING_POLICY_BLOCK, subject, 0, 0, NULL,
                                 json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN), err);
    json_object_put(d);
    return rc;
}

static int scan_init(const struct cap_config *cfg, struct cap_err *err)
{
    g_m_handshakes = cap_metrics_counter("cap_handshakes_total", "Endpoint outcomes.", "outcome");
    g_m_empty = cap_metrics_counter("cap_scan_empty_addresses_total",
                                    "Addresses of a sweep that never completed a TCP connect and "
                                    "were not endpoints before (stored as counts only).",
                                    "reason");
    g_m_duration = cap_metrics_histogram("cap_handshake_duration_seconds",
                                         "Connect, STARTTLS and handshake time of one endpoint.",
                                         NULL, NULL, 0);
    if (cap_policy_init(&g_policy, cfg, err) != 0)
        return -1;
    (void)cap_trust_init(); /* without a store, untrusted is not checked (logged) */
    if (cap_revocation_global_init(err) != 0) {
        cap_trust_cleanup();
        cap_policy_cleanup(&g_policy);
        return -1;
    }
    struct cap_scan_engine_opts eo = {.slots = cfg->worker_max_concurrent_discovery,
                                      .max_pending_connects = cfg->scan_max_pending_connects,
                                      .connect_rate = cfg->scan_connect_rate,
                                      .reserve_fds = 64 + FDS_PER_JOB * cfg->worker_max_jobs};
    g_engine = cap_scan_engine_new_opts(&eo, err);
    if (!g_engine) {
        cap_trust_cleanup();
        cap_policy_cleanup(&g_policy);
        cap_revocation_global_cleanup();
        return -1;
    }
    return 0;
}

static void scan_shutdown(void)
{
    cap_scan_engine_free(g_engine);
    g_engine = NULL;
    cap_trust_cleanup();
    cap_policy_cleanup(&g_policy);
    cap_revocation_global_cleanup();
}

struct resolve_arg {
    struct cap_inventory *inv;
    int64_t *resolved;
};

static int resolve_last_shard(struct cap_run_ctx *ctx, void *arg, struct cap_err *err)
{
    (void)ctx;
    struct resolve_arg *a = arg;
    return cap_inventory_resolve_missing_open(a->inv, CAP_FINDING_BY_SCAN, a->resolved, err);
}

static int scan_execute(struct cap_run_ctx *ctx, struct cap_run_outcome *out, struct cap_err *err)
{
    const struct cap_network_scan_spec *src = ctx->src->spec;
    if (!g_engine) {
        cap_err_set(err, CAP_E_IO, "network scan engine is not running in this worker");
        return -1;
    }
    struct cap_targets t;
    if (cap_targets_init(&t, (const char *const *)src->cidrs, src->cidrs_n,
                         (const char *const *)src->hosts, src->hosts_n, src->ports, src->ports_n,
                         err) != 0) {
        cap_err_prefix(err, "source \"%s\": ", ctx->src->name);
        return -1;
    }
    if (cap_targets_check_limit(&t, ctx->cfg->scan_max_targets, err) != 0) {
        cap_err_prefix(err, "source \"%s\": ", ctx->src->name);
        cap_targets_cleanup(&t);
        return -1;
    }
    uint64_t count = cap_targets_count(&t);
    if (ctx->shard == 0 && count > (uint64_t)ctx->cfg->scan_shard_targets) {
        /* Too large for one job: its shards go to every worker. */
        int n = cap_run_split(ctx, count, (uint64_t)ctx->cfg->scan_shard_size, err);
        cap_targets_cleanup(&t);
        if (n < 0)
            return -1;
        cap_log(CAP_LOG_INFO, "run_split", CAP_LI("run_id", ctx->run_id),
                CAP_LI("targets", (long long)count), CAP_LI("shards", n),
                CAP_LI("shard_size", ctx->cfg->scan_shard_size));
        out->status = CAP_RUN_SUCCEEDED;
        out->split = true;
        return 0;
    }
    if (ctx->shard > 0 && (ctx->end_target <= ctx->first_target || ctx->end_target > count)) {
        cap_err_set(err, CAP_E_INVALID,
                    "source \"%s\": shard %d covers targets %llu-%llu but the source has %llu "
                    "targets now (it changed since the run was split)",
                    ctx->src->name, (int)ctx->shard, (unsigned long long)ctx->first_target,
                    (unsigned long long)ctx->end_target - 1, (unsigned long long)count);
        cap_targets_cleanup(&t);
        return -1;
    }
    struct scan_run *r = calloc(1, sizeof *r);
    if (!r) {
        cap_targets_cleanup(&t);
        cap_err_set(err, CAP_E_NOMEM, "network scan: out of memory");
        return -1;
    }
    r->ctx = ctx;
    r->spec = src;
    r->total = count;
    r->hosts_hi = src->hosts_n;
    if (ctx->shard > 0) {
        cap_targets_set_range(&t, ctx->first_target, ctx->end_target);
        cap_targets_host_range(&t, ctx->first_target, ctx->end_target, &r->hosts_lo,
                               &r->hosts_hi);
        r->total = ctx->end_target - ctx->first_target;
    }
    r->trust = cap_trust_get_gen(&r->trust_gen);
    int concurrency = src->concurrency > 0 ? src->concurrency : 8;
    int rc = -1;
    r->inv = cap_inventory_new(ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, err);
    if (!r->inv)
        goto done;
    if (load_overrides(r, err) != 0) {
        cap_err_prefix(err, "source \"%s\": ", ctx->src->name);
        goto done;
    }
    r->rev = cap_revocation_new(ctx, r->inv, &g_policy, src->timeout_ms, err);
    if (!r->rev)
        goto done;
    r->job = cap_scan_job_new(g_engine, concurrency, err);
    if (!r->job)
        goto done;
    /* A source may only lower the worker's connect rate (fragile networks). */
    if (src->connect_rate > 0 && src->connect_rate < ctx->cfg->scan_connect_rate)
        cap_scan_job_set_connect_rate(r->job, src->connect_rate);
    if (load_known(r, err) != 0 || resolve_hosts(r, err) != 0)
        goto done;
    if (progress(r, true, err) != 0)
        goto done;
    cap_log(CAP_LOG_INFO, "scan_started", CAP_LI("run_id", ctx->run_id),
            CAP_LI("targets", (long long)r->total), CAP_LI("concurrency", concurrency),
            CAP_LI("timeout_ms", src->timeout_ms));

    /* Probes kept queued or in flight: enough to fill the engine's pending-connect budget
     * (a sparse range needs thousands of connects out at once) plus two rounds of what can
     * really hold TLS slots at once; never the whole range. */
    int effective = concurrency < ctx->cfg->worker_max_concurrent_discovery
                        ? concurrency
                        : ctx->cfg->worker_max_concurrent_discovery;
    struct cap_scan_engine_stats est;
    cap_scan_engine_stats(g_engine, &est);
    atomic_fetch_add(&g_scans_active, 1);
    r->counted_active = true;
    bool more = true, interrupted = false;
    size_t last_item = SIZE_MAX;
    for (;;) {
        if (atomic_load(ctx->stopping)) {
            interrupted = true;
            break;
        }
        int active = atomic_load(&g_scans_active);
        size_t window = (size_t)est.pending_max / (size_t)(active > 1 ? active : 1) +
                        (size_t)(effective > 0 ? effective : 1) * 2 + 8;
        while (more && cap_scan_job_outstanding(r->job) < window) {
            struct cap_target tg;
            if (!cap_targets_next(&t, &tg)) {
                more = false;
                break;
            }
            char why[CAP_POLICY_REASON_MAX];
            if (tg.kind == CAP_TARGET_ADDR && !tg.host && tg.item != last_item) {
                /* A listed range the policy refuses whole is skipped in one step. */
                last_item = tg.item;
                const struct cap_cidr *c = &t.cidrs[tg.item];
                if (cap_policy_cidr_refused_by(&g_policy, c, NULL, 0) == 1) {
                    (void)cap_policy_check_bytes(&g_policy, c->family, c->addr, why, sizeof why);
                    /* From this target to the block's end, or the slice's. */
                    uint64_t at = cap_targets_pos(&t) - 1;
                    cap_targets_skip_cidr(&t);
                    uint64_t to = cap_targets_pos(&t) < t.end ? cap_targets_pos(&t) : t.end;
                    uint64_t sz = to - at;
                    note_refused(r, why, sz, NULL);
                    r->total -= sz;
                    continue;
                }
            }
            if (tg.kind == CAP_TARGET_HOST) {
                if (submit_host(r, &tg, err) != 0)
                    goto done;
                continue;
            }
            if (cap_policy_check_bytes(&g_policy, tg.family, tg.addr, why, sizeof why) !=
                CAP_POLICY_ALLOWED) {
                note_refused(r, why, 1, tg.host);
                r->total--;
                continue;
            }
            struct cap_scan_req q;
            const struct cap_cidr *c = tg.host ? NULL : &t.cidrs[tg.item];
            bool sweep = c && cap_targets_cidr_size(c) > 1;
            fill_req(&q, r, tg.family, tg.addr, tg.port, tg.host, false, sweep);
            if (cap_scan_job_submit(r->job, &q, err) != 0)
                goto done;
            r->submitted++;
        }
        if (!more && cap_scan_job_outstanding(r->job) == 0)
            break;
        struct cap_scan_result *list = cap_scan_job_wait(r->job, WAIT_MS);
        for (struct cap_scan_result *x = list; x; x = x->next) {
            if (handle_result(r, x, err) != 0) {
                cap_scan_result_free(list);
                goto done;
            }
        }
        cap_scan_result_free(list);
        if (cap_inventory_flush_if_due(r->inv, err) != 0 || progress(r, false, err) != 0)
            goto done;
    }
    /* In-flight probes are abandoned on a drain; what was found is kept. */
    r->peak = cap_scan_job_peak(r->job);
    cap_scan_job_free(r->job);
    r->job = NULL;
    /* Revocation after the certificates are stored (it records facts on their rows). */
    if (!interrupted &&
        (cap_inventory_flush(r->inv, err) != 0 ||
         cap_revocation_finish(r->rev, ctx->stopping, REVOCATION_BUDGET_MS, err) != 0))
        goto done;
    if (r->policy_refused > 0 && raise_policy_block(r, err) != 0)
        goto done;
    if (progress(r, true, err) != 0 || cap_inventory_flush(r->inv, err) != 0)
        goto done;
    if (interrupted) {
        cap_err_set(err, CAP_E_IO,
                    "scan interrupted by the worker shutting down after %llu of "
                    "%llu endpoints",
                    (unsigned long long)(r->ok + r->refused_conn + r->timeouts + r->tls_errors),
                    (unsigned long long)r->total);
        goto done;
    }
    int64_t resolved = 0;
    if (ctx->shard == 0 &&
        cap_inventory_resolve_missing(r->inv, CAP_FINDING_BY_SCAN, &resolved, err) != 0)
        goto done;

    uint64_t bad = r->refused_conn + r->timeouts + r->tls_errors + r->dns_failed;
    out->status = bad > 0 ? CAP_RUN_PARTIAL : CAP_RUN_SUCCEEDED;
    out->run_again = false;
    int off = 0;
    out->error[0] = '\0';
    if (bad > 0)
        off = snprintf(out->error, sizeof out->error,
                       "%llu of %llu endpoints not scanned: %llu refused, %llu timed out, %llu "
                       "tls errors",
                       (unsigned long long)(bad - r->dns_failed), (unsigned long long)r->submitted,
                       (unsigned long long)r->refused_conn, (unsigned long long)r->timeouts,
                       (unsigned long long)r->tls_errors);
    if (r->dns_failed > 0 && off >= 0 && (size_t)off < sizeof out->error)
        off += snprintf(out->error + off, sizeof out->error - (size_t)off,
                        "%s%llu host name%s did not resolve (%s)", off ? "; " : "",
                        (unsigned long long)r->dns_failed, r->dns_failed == 1 ? "" : "s",
                        r->dns_error);
    if (r->policy_refused > 0 && off >= 0 && (size_t)off < sizeof out->error)
        snprintf(out->error + off, sizeof out->error - (size_t)off,
                 "%s%llu addresses refused by the network policy", off ? "; " : "",
                 (unsigned long long)r->policy_refused);
    if (ctx->shard > 0) {
        /* The shard's end is written here, with the resolving of the whole run's findings when
         * it is the last shard and every other one completed: what resolves on a re-scan is
         * resolved only from what the run scanned. */
        struct resolve_arg ra = {.inv = r->inv, .resolved = &resolved};
        bool ended = false;
        if (cap_run_shard_finish(ctx, out->status, out->error, resolve_last_shard, &ra, &ended,
                                 err) != 0)
            goto done;
        out->recorded = true;
        if (ended)
            cap_log(CAP_LOG_INFO, "run_shards_done", CAP_LI("run_id", ctx->run_id),
                    CAP_LI("last_shard", ctx->shard), CAP_LI("findings_resolved", resolved));
    }
    cap_log(CAP_LOG_INFO, "scan_finished", CAP_LI("run_id", ctx->run_id),
            CAP_LI("shard", ctx->shard),
            CAP_LI("ok", (long long)r->ok), CAP_LI("refused", (long long)r->refused_conn),
            CAP_LI("timeout", (long long)r->timeouts),
            CAP_LI("tls_error", (long long)r->tls_errors),
            CAP_LI("policy_refused", (long long)r->policy_refused),
            CAP_LI("silent", (long long)r->empty[0]), CAP_LI("closed", (long long)r->empty[1]),
            CAP_LI("no_route", (long long)r->empty[2]),
            CAP_LI("chains_verified", (long long)r->verified_n),
            CAP_LI("chain_verifications", (long long)r->verifications), CAP_LI("peak_inflight", r->peak),
            CAP_LI("findings_resolved", resolved));
    rc = 0;
done:
    if (r->counted_active)
        atomic_fetch_sub(&g_scans_active, 1);
    cap_scan_job_free(r->job);
    cap_revocation_free(r->rev);
    cap_inventory_free(r->inv);
    cap_targets_cleanup(&t);
    free(r->known.keys);
    free(r->resolved);
    X509_STORE_free(r->trust);
    free(r);
    return rc;
}

const struct cap_executor cap_scan_executor = {
    .type = "network_scan",
    .init = scan_init,
    .shutdown = scan_shutdown,
    .execute = scan_execute,
};
