/* Fuzz target for the PostgreSQL text-array parser, which reads back array columns (names,
 * SANs, suffixes) from the database. Malformed literals must fail with a message and no
 * count; accepted ones must give n strings and a NULL terminator; and any list of strings
 * must survive a round trip through the encoder (cap_pg_text_array) and the parser. The
 * first byte picks the mode: parse the rest as a literal, or encode NUL-separated strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/pg.h"

static void check_round_trip(char **v, size_t n)
{
    char *lit = cap_pg_text_array((const char *const *)v, n);
    if (!lit)
        abort();
    size_t m = (size_t)-1;
    struct cap_err err = {0};
    char **back = cap_pg_parse_text_array(lit, &m, &err);
    if (!back || m != n || err.code != 0)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!back[i] || strcmp(back[i], v[i]) != 0)
            abort();
    if (back[n] != NULL)
        abort();
    cap_pg_free_strv(back);
    free(lit);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    int mode = data[0] & 1;
    data++;
    size--;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (mode == 0) {
        size_t n = 12345;
        struct cap_err err = {0};
        char **v = cap_pg_parse_text_array(s, &n, &err);
        if (!v) {
            if (err.code == 0 || err.msg[0] == '\0' || n != 12345)
                abort();
        } else {
            if (err.code != 0 || n > strlen(s))
                abort();
            for (size_t i = 0; i < n; i++)
                if (!v[i])
                    abort();
            if (v[n] != NULL)
                abort();
            /* Whatever was read must be written and read back unchanged. */
            check_round_trip(v, n);
            cap_pg_free_strv(v);
        }
    } else {
        /* NUL-separated strings, straight to the encoder and back. */
        char *v[256];
        size_t n = 0;
        const char *p = s, *end = s + size;
        while (p <= end && n < 256) {
            v[n++] = (char *)p;
            p += strlen(p) + 1;
        }
        if (size == 0)
            n = 0;
        check_round_trip(v, n);
    }
    free(s);
    return 0;
}
