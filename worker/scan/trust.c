/* The worker's trust store: the CA bundle parsed once into an X509_STORE shared by reference;
 * a reload builds a new store and swaps it in, so a verification in progress keeps the store
 * it started with. */
#include "worker/scan/trust.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/daemon.h"
#include "common/log.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static X509_STORE *store;
static struct stat loaded_st; /* the file as it was when store was read */
static int64_t checked_ms;    /* last stat */
static unsigned hup_seen;     /* cap_daemon_reload_count() at the last load */
static unsigned generation;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *cap_trust_bundle_path(void)
{
    const char *env = getenv(X509_get_default_cert_file_env());
    return env && *env ? env : X509_get_default_cert_file();
}

/* Reads the bundle into a new store; NULL (logged) when it cannot. */
static X509_STORE *load(const char *path, struct stat *st_out)
{
    if (stat(path, st_out) != 0) {
        cap_log(CAP_LOG_WARN, "scan_trust_store_missing", CAP_LS("file", path),
                CAP_LS("err", strerror(errno)));
        return NULL;
    }
    X509_STORE *s = X509_STORE_new();
    ERR_clear_error();
    if (!s || X509_STORE_load_file(s, path) != 1) {
        unsigned long e = ERR_peek_last_error();
        cap_log(CAP_LOG_WARN, "scan_trust_store_unreadable", CAP_LS("file", path),
                CAP_LS("err", e ? ERR_reason_error_string(e) : "out of memory"));
        X509_STORE_free(s);
        ERR_clear_error();
        return NULL;
    }
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(s);
    int n = objs ? sk_X509_OBJECT_num(objs) : 0;
    cap_log(CAP_LOG_INFO, "scan_trust_store_loaded", CAP_LS("file", path),
            CAP_LI("certificates", n));
    return s;
}

/* Loads again; with mu held. Keeps the old store when the new one does not load. */
static void reload_locked(void)
{
    struct stat st;
    X509_STORE *s = load(cap_trust_bundle_path(), &st);
    if (!s)
        return;
    X509_STORE_free(store);
    store = s;
    loaded_st = st;
    generation++;
}

bool cap_trust_init(void)
{
    pthread_mutex_lock(&mu);
    hup_seen = cap_daemon_reload_count();
    checked_ms = mono_ms();
    reload_locked();
    bool ok = store != NULL;
    pthread_mutex_unlock(&mu);
    return ok;
}

X509_STORE *cap_trust_get(void)
{
    pthread_mutex_lock(&mu);
    unsigned hups = cap_daemon_reload_count();
    int64_t t = mono_ms();
    bool reload = hups != hup_seen;
    if (!reload && t - checked_ms >= 1000) {
        struct stat st;
        checked_ms = t;
        /* A package update replaces the file (new inode) or rewrites it (size, mtime). */
        if (stat(cap_trust_bundle_path(), &st) == 0 &&
            (st.st_ino != loaded_st.st_ino || st.st_size != loaded_st.st_size ||
             st.st_mtim.tv_sec != loaded_st.st_mtim.tv_sec ||
             st.st_mtim.tv_nsec != loaded_st.st_mtim.tv_nsec))
            reload = true;
    }
    if (reload) {
        hup_seen = hups;
        checked_ms = t;
        reload_locked();
    }
    X509_STORE *s = store;
    if (s && X509_STORE_up_ref(s) != 1)
        s = NULL;
    pthread_mutex_unlock(&mu);
    return s;
}

X509_STORE *cap_trust_get_gen(unsigned *gen)
{
    /* Loop until the store and the generation read are of one load. */
    for (;;) {
        X509_STORE *s = cap_trust_get();
        pthread_mutex_lock(&mu);
        bool same = s == store;
        unsigned g = generation;
        pthread_mutex_unlock(&mu);
        if (same || !s) {
            *gen = g;
            return s;
        }
        X509_STORE_free(s);
    }
}

unsigned cap_trust_generation(void)
{
    pthread_mutex_lock(&mu);
    unsigned g = generation;
    pthread_mutex_unlock(&mu);
    return g;
}

int cap_trust_verify(X509_STORE *s, STACK_OF(X509) * chain, const char **text)
{
    *text = NULL;
    if (!s || !chain || sk_X509_num(chain) == 0)
        return -1;
    X509_STORE_CTX *vc = X509_STORE_CTX_new();
    if (!vc)
        return -1;
    int res = -1;
    if (X509_STORE_CTX_init(vc, s, sk_X509_value(chain, 0), chain) == 1) {
        X509_STORE_CTX_set_purpose(vc, X509_PURPOSE_SSL_SERVER);
        if (X509_verify_cert(vc) == 1) {
            res = 0;
        } else {
            res = X509_STORE_CTX_get_error(vc);
            if (res <= 0)
                res = X509_V_ERR_UNSPECIFIED;
            *text = X509_verify_cert_error_string(res);
        }
    }
    X509_STORE_CTX_free(vc);
    ERR_clear_error();
    return res;
}

/* ---- results kept across runs ---- */

/* Direct-mapped by the key (a SHA-256, so its first bytes are spread evenly): a collision only
 * replaces an entry. 16384 entries of 56 bytes, allocated on first use. */
#define VCACHE_SLOTS 16384
struct vcache_entry {
    unsigned char key[32];
    int64_t until; /* Unix seconds: reused while now is before */
    const char *text;
    unsigned gen;
    int result;
    bool used;
};
static pthread_mutex_t vmu = PTHREAD_MUTEX_INITIALIZER;
static struct vcache_entry *vcache;

static int64_t asn1_epoch(const ASN1_TIME *t, int64_t dflt)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return dflt;
    return (int64_t)timegm(&tm);
}

/* Until when a verification of chain made now stays true: the first moment a certificate of it
 * expires or becomes valid, and a day at most. */
static int64_t chain_until(STACK_OF(X509) * chain, int64_t now)
{
    int64_t until = now + 86400;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        int64_t na = asn1_epoch(X509_get0_notAfter(x), now);
        int64_t nb = asn1_epoch(X509_get0_notBefore(x), now);
        if (na < until)
            until = na;
        if (nb > now && nb < until)
            until = nb;
    }
    return until;
}

int cap_trust_verify_cached(X509_STORE *s, unsigned gen, const unsigned char key[32],
                            STACK_OF(X509) * chain, const char **text, bool *verified)
{
    if (verified)
        *verified = false;
    if (!s || !chain || sk_X509_num(chain) == 0)
        return cap_trust_verify(s, chain, text);
    int64_t now = (int64_t)time(NULL);
    size_t slot = ((size_t)key[0] << 8 | key[1] | (size_t)key[2] << 16) % VCACHE_SLOTS;
    pthread_mutex_lock(&vmu);
    if (vcache) {
        const struct vcache_entry *e = &vcache[slot];
        if (e->used && e->gen == gen && now < e->until && memcmp(e->key, key, 32) == 0) {
            int res = e->result;
            *text = e->text;
            pthread_mutex_unlock(&vmu);
            return res;
        }
    }
    pthread_mutex_unlock(&vmu);
    int res = cap_trust_verify(s, chain, text);
    if (res < 0)
        return res;
    if (verified)
        *verified = true;
    int64_t until = chain_until(chain, now);
    pthread_mutex_lock(&vmu);
    if (!vcache)
        vcache = calloc(VCACHE_SLOTS, sizeof *vcache);
    if (vcache && until > now) {
        struct vcache_entry *e = &vcache[slot];
        memcpy(e->key, key, 32);
        e->until = until;
        e->text = *text; /* OpenSSL's static description */
        e->gen = gen;
        e->result = res;
        e->used = true;
    }
    pthread_mutex_unlock(&vmu);
    return res;
}

void cap_trust_cleanup(void)
{
    pthread_mutex_lock(&mu);
    X509_STORE_free(store);
    store = NULL;
    pthread_mutex_unlock(&mu);
    pthread_mutex_lock(&vmu);
    free(vcache);
    vcache = NULL;
    pthread_mutex_unlock(&vmu);
}
