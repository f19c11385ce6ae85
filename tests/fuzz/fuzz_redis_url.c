/* Fuzz target for the Redis URL parser (redis.url comes from the config file and the
 * environment). Failures must leave the output untouched and say why; successes must give a
 * host or a socket path, a port 1-65535 and a database 0-1000, with user and password exactly
 * the strict percent-decoding of what precedes the last "@". */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/redis.h"

/* Strict percent-decoding: "%" must be followed by two hex digits and may not encode NUL.
 * Returns the decoded length, or -1. */
static long strict_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= cap)
            return -1;
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            if (!isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
                return -1;
            char hex[3] = {s[i + 1], s[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            if (c == '\0')
                return -1;
            i += 2;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';

    struct cap_redis_url u, before;
    memset(&u, 0xA5, sizeof u);
    before = u;
    struct cap_err err = {0};
    int rc = cap_redis_parse_url(url, &u, &err);
    if (rc != 0) {
        if (rc != -1 || err.code == 0 || strncmp(err.msg, "redis.url: ", 11) != 0 ||
            memcmp(&u, &before, sizeof u) != 0)
            abort();
        free(url);
        return 0;
    }
    if (err.code != 0)
        abort();
    /* Every string is terminated inside its buffer. */
    if (!memchr(u.host, 0, sizeof u.host) || !memchr(u.unix_path, 0, sizeof u.unix_path) ||
        !memchr(u.user, 0, sizeof u.user) || !memchr(u.password, 0, sizeof u.password))
        abort();
    if (u.port < 1 || u.port > 65535 || u.db < 0 || u.db > 1000)
        abort();
    if (strncmp(url, "unix://", 7) == 0) {
        if (strcmp(u.unix_path, url + 7) != 0 || u.host[0] || u.user[0] || u.password[0])
            abort();
        free(url);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0 || u.unix_path[0])
        abort();
    /* A host is required, and it never carries the credentials or the path. */
    if (!u.host[0] || strchr(u.host, '/') || strchr(u.host, '@'))
        abort();
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    const char *slash = strchr(at ? at : p, '/');
    if (at && (!slash || at < slash)) {
        char user[sizeof u.user], pass[sizeof u.password];
        const char *colon = memchr(p, ':', (size_t)(at - p));
        long ul = 0, pl;
        user[0] = '\0';
        if (colon) {
            ul = strict_decode(p, (size_t)(colon - p), user, sizeof user);
            pl = strict_decode(colon + 1, (size_t)(at - colon - 1), pass, sizeof pass);
        } else {
            pl = strict_decode(p, (size_t)(at - p), pass, sizeof pass);
        }
        /* Accepted credentials must be exactly what a strict decoder reads. */
        if (ul < 0 || pl < 0 || strcmp(user, u.user) != 0 || strcmp(pass, u.password) != 0)
            abort();
        p = at + 1;
    } else if (u.user[0] || u.password[0]) {
        abort();
    }
    /* After the host, only ":" and a decimal port may follow before the path. */
    const char *end = strchr(p, '/');
    if (!end)
        end = p + strlen(p);
    const char *rest = p;
    if (*p == '[')
        rest = memchr(p, ']', (size_t)(end - p)) + 1;
    else
        while (rest < end && *rest != ':')
            rest++;
    if (rest < end) {
        if (*rest != ':' || rest + 1 == end)
            abort();
        for (const char *d = rest + 1; d < end; d++)
            if (*d < '0' || *d > '9')
                abort();
    }
    free(url);
    return 0;
}
