/* Test tool: resolves host names with cap_resolve_names and prints one JSON line per name, so
 * the end-to-end tests (Python) can drive the resolver against a DNS server they run.
 *   resolve_cli [--server IP:PORT]... [--timeout MS] [NAME...]   (no NAME: one per stdin line)
 * Exit status: 0 when the call succeeded (names may still have failed), 1 on an error, 2 on a
 * usage error. A summary line goes to stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <json-c/json.h>

#include "worker/scan/resolve.h"

/* Names read at most. Lines are read whole: a name too long fails in the resolver. */
#define NAMES_MAX 1000000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int usage(const char *why)
{
    fprintf(stderr,
            "resolve_cli: %s\nusage: resolve_cli [--server IP:PORT]... [--timeout MS] [NAME...]\n",
            why);
    return 2;
}

static int parse_ms(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > CAP_RESOLVE_TIMEOUT_MAX)
        return -1;
    *out = (int)v;
    return 0;
}

/* Appends s (owned) to the list; -1 when out of memory or past NAMES_MAX. */
static int push(char ***list, size_t *n, size_t *cap, char *s)
{
    if (*n == NAMES_MAX)
        return -1;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        char **l = realloc(*list, c * sizeof *l);
        if (!l)
            return -1;
        *list = l;
        *cap = c;
    }
    (*list)[(*n)++] = s;
    return 0;
}

int main(int argc, char **argv)
{
    const char *servers[CAP_RESOLVE_SERVERS_MAX + 1];
    size_t servers_n = 0;
    int timeout_ms = 5000;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            /* One more than allowed is kept so the resolver reports the limit itself. */
            if (servers_n <= CAP_RESOLVE_SERVERS_MAX)
                servers[servers_n++] = argv[++i];
            else
                i++;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (parse_ms(argv[++i], &timeout_ms) != 0)
                return usage("--timeout: expected milliseconds from 1 to 3600000");
        } else if (strncmp(argv[i], "--", 2) == 0) {
            return usage("unknown option");
        } else {
            char *s = strdup(argv[i]);
            if (!s || push(&names, &n, &cap, s) != 0) {
                free(s);
                fprintf(stderr, "resolve_cli: out of memory\n");
                goto out;
            }
        }
    }
    if (n == 0) {
        char *line = NULL;
        size_t lcap = 0;
        ssize_t len;
        while ((len = getline(&line, &lcap, stdin)) >= 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (len == 0)
                continue;
            char *s = strdup(line);
            if (!s || push(&names, &n, &cap, s) != 0) {
                free(s);
                free(line);
                fprintf(stderr, "resolve_cli: out of memory or more than %d names\n", NAMES_MAX);
                goto out;
            }
        }
        free(line);
    }

    struct cap_resolved *res = NULL;
    struct cap_err err = {0};
    int64_t t0 = mono_ms();
    if (cap_resolve_names((const char *const *)names, n, servers_n ? servers : NULL, servers_n,
                          timeout_ms, &res, &err) != 0) {
        fprintf(stderr, "resolve_cli: %s\n", err.msg);
        goto out;
    }
    int64_t took = mono_ms() - t0;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        const struct cap_resolved *r = &res[i];
        json_object *o = json_object_new_object();
        json_object *addrs = json_object_new_array();
        for (size_t k = 0; k < r->n; k++) {
            char text[INET6_ADDRSTRLEN];
            inet_ntop(r->addrs[k].family, r->addrs[k].addr, text, sizeof text);
            json_object_array_add(addrs, json_object_new_string(text));
        }
        json_object_object_add(o, "name", json_object_new_string(r->name));
        json_object_object_add(o, "status", json_object_new_int(r->status));
        json_object_object_add(o, "error", json_object_new_string(r->error));
        json_object_object_add(o, "addrs", addrs);
        json_object_object_add(o, "elapsed_ms", json_object_new_int64(r->elapsed_ms));
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        ok += r->status == 0;
    }
    fprintf(stderr, "resolve_cli: %zu names, %zu resolved, %zu failed, %lld ms\n", n, ok, n - ok,
            (long long)took);
    free(res);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
