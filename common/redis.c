/* Redis connection from URL with AUTH/SELECT, and argv commands with error reporting. */
#include "common/redis.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= cap)
            return -1;
        if (s[i] == '%') {
            /* Exactly two hex digits (strtol alone would take "-1", " f" or "+f"), and no
             * %00, which would silently cut the value short. */
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return -1;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            long v = strtol(hex, NULL, 16);
            if (v == 0)
                return -1;
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return 0;
}

int cap_redis_parse_url(const char *url, struct cap_redis_url *out, struct cap_err *err)
{
    struct cap_redis_url u;
    memset(&u, 0, sizeof u);
    u.port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        if (snprintf(u.unix_path, sizeof u.unix_path, "%s", url + 7) >= (int)sizeof u.unix_path ||
            !u.unix_path[0]) {
            cap_err_set(err, CAP_E_INVALID, "redis.url: bad unix socket path");
            return -1;
        }
        *out = u;
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        cap_err_set(err, CAP_E_INVALID,
                    "redis.url: expected redis://[user:password@]host[:port][/db]%s",
                    strncmp(url, "rediss://", 9) == 0
                        ? " (rediss:// is not supported: use a TLS-terminating proxy)"
                        : "");
        return -1;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    const char *slash = strchr(at ? at : p, '/');
    if (at && (!slash || at < slash)) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (pct_decode(p, (size_t)(colon - p), u.user, sizeof u.user) < 0 ||
                pct_decode(colon + 1, (size_t)(at - colon - 1), u.password, sizeof u.password) < 0) {
                cap_err_set(err, CAP_E_INVALID, "redis.url: bad user or password encoding");
                return -1;
            }
        } else if (pct_decode(p, (size_t)(at - p), u.password, sizeof u.password) < 0) {
            cap_err_set(err, CAP_E_INVALID, "redis.url: bad password encoding");
            return -1;
        }
        p = at + 1;
    }
    const char *end = slash ? slash : p + strlen(p);
    const char *colon = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) {
            cap_err_set(err, CAP_E_INVALID, "redis.url: unterminated [IPv6] host");
            return -1;
        }
        if (rb == p + 1 || (size_t)(rb - p - 1) >= sizeof u.host) {
            cap_err_set(err, CAP_E_INVALID, "redis.url: missing or too long host");
            return -1;
        }
        if (rb + 1 < end && rb[1] != ':') {
            cap_err_set(err, CAP_E_INVALID, "redis.url: junk after the [IPv6] host");
            return -1;
        }
        memcpy(u.host, p + 1, (size_t)(rb - p - 1));
        colon = rb + 1 < end ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        size_t hl = (size_t)((colon ? colon : end) - p);
        if (hl == 0 || hl >= sizeof u.host) {
            cap_err_set(err, CAP_E_INVALID, "redis.url: missing or too long host");
            return -1;
        }
        memcpy(u.host, p, hl);
    }
    if (colon) {
        char *e = NULL;
        /* Digits only: strtol alone would also take " 80" and "+80". */
        long port = isdigit((unsigned char)colon[1]) ? strtol(colon + 1, &e, 10) : 0;
        if (port < 1 || port > 65535 || e != end) {
            cap_err_set(err, CAP_E_INVALID, "redis.url: port must be 1-65535");
            return -1;
        }
        u.port = (int)port;
    }
    if (slash && slash[1]) {
        char *e = NULL;
        long db = isdigit((unsigned char)slash[1]) ? strtol(slash + 1, &e, 10) : -1;
        if (db < 0 || db > 1000 || *e) {
            cap_err_set(err, CAP_E_INVALID, "redis.url: database must be a number 0-1000");
            return -1;
        }
        u.db = (int)db;
    }
    *out = u;
    return 0;
}

redisReply *cap_redis_cmd(redisContext *c, const char *what, int argc, const char **argv,
                          const size_t *lens, struct cap_err *err)
{
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (!r) {
        cap_err_set(err, CAP_E_IO, "%s: redis connection failed: %s", what,
                    c->errstr[0] ? c->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        cap_err_set(err, CAP_E_IO, "%s: redis error: %.160s", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisContext *cap_redis_connect(const char *url, int timeout_ms, struct cap_err *err)
{
    struct cap_redis_url u;
    if (cap_redis_parse_url(url, &u, err) < 0)
        return NULL;
    struct timeval tv = {5, 0};
    redisContext *c = u.unix_path[0] ? redisConnectUnixWithTimeout(u.unix_path, tv)
                                     : redisConnectWithTimeout(u.host, u.port, tv);
    if (!c || c->err) {
        cap_err_set(err, CAP_E_IO, "connecting to redis at %s:%d: %s",
                    u.unix_path[0] ? u.unix_path : u.host, u.port,
                    c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    if (timeout_ms > 0) {
        struct timeval ct = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        redisSetTimeout(c, ct);
    }
    if (u.password[0]) {
        const char *argv[3] = {"AUTH", u.user[0] ? u.user : u.password, u.password};
        int argc = u.user[0] ? 3 : 2;
        redisReply *r = cap_redis_cmd(c, "redis AUTH", argc, argv, NULL, err);
        memset(&u.password, 0, sizeof u.password);
        if (!r) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (u.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", u.db);
        const char *argv[2] = {"SELECT", db};
        redisReply *r = cap_redis_cmd(c, "redis SELECT", 2, argv, NULL, err);
        if (!r) {
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}
