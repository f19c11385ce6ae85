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

void cap_trust_cleanup(void)
{
    pthread_mutex_lock(&mu);
    X509_STORE_free(store);
    store = NULL;
    pthread_mutex_unlock(&mu);
}
