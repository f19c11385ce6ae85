/* Fuzz target for the logger's escaping: event names and string fields often carry peer data
 * (host names, certificate subjects, error texts). Every call must write exactly one line; in
 * JSON it must parse (strictly) as an object whose event and string field decode back to the
 * input cut to 512 bytes, and whose numbers are valid JSON numbers; in text the quoted values
 * must decode back the same way. stdout goes to an unlinked temporary file that is read back.
 * Input: byte 0 picks JSON or text, 8 bytes of double, 8 of integer, then event NUL value. */
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define VALUE_MAX 512

static char *out_buf;
static size_t out_cap;

static void setup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    char path[] = "/tmp/cap_fuzz_log_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || !freopen(path, "w+", stdout))
        abort();
    close(fd);
    unlink(path);
}

/* The bytes the escaped value must decode to: s cut to VALUE_MAX bytes, "..." when cut. Bytes
 * outside printable ASCII become U+00XX; utf8 selects how that code point is written (UTF-8,
 * as a JSON parser gives it back, or the raw byte, as the text decoder below gives it). */
static size_t expected(const char *s, int utf8, char *out)
{
    size_t o = 0, n = 0;
    for (; s[n] && n < VALUE_MAX; n++) {
        unsigned char c = (unsigned char)s[n];
        if (utf8 && c >= 0x80) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[o++] = (char)c;
        }
    }
    if (s[n]) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return o;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the quoted text value starting at *pp (just after the opening quote) into out and
 * moves *pp past the closing quote. Returns the decoded length, or -1 when malformed. */
static long text_unquote(const char **pp, char *out)
{
    const char *p = *pp;
    size_t o = 0;
    for (; *p && *p != '"'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            return -1; /* raw control or non-ASCII byte in the line */
        if (*p != '\\') {
            out[o++] = *p;
            continue;
        }
        p++;
        if (*p == '"' || *p == '\\')
            out[o++] = *p;
        else if (*p == 'n')
            out[o++] = '\n';
        else if (*p == 't')
            out[o++] = '\t';
        else if (*p == 'u') {
            int v = 0;
            for (int k = 1; k <= 4; k++) {
                int h = hexval(p[k]);
                if (h < 0)
                    return -1;
                v = v * 16 + h;
            }
            if (v > 0xff)
                return -1;
            out[o++] = (char)v;
            p += 4;
        } else
            return -1;
    }
    if (*p != '"')
        return -1;
    out[o] = '\0';
    *pp = p + 1;
    return (long)o;
}

/* Reads ` key="value"` at *pp (the fields are parsed in order, since a value may itself hold
 * text such as ` s="`), checks that the value decodes to want, and moves *pp past it. */
static void check_text_value(const char **pp, const char *key, const char *want)
{
    char pat[32];
    snprintf(pat, sizeof pat, " %s=\"", key);
    const char *p = *pp;
    if (strncmp(p, pat, strlen(pat)) != 0)
        abort();
    p += strlen(pat);
    char got[VALUE_MAX + 8];
    if (text_unquote(&p, got) < 0 || strcmp(got, want) != 0)
        abort();
    if (*p != ' ' && *p != '\n')
        abort();
    *pp = p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 17 || size > 4096)
        return 0;
    setup();
    int json = data[0] & 1;
    double d;
    long long iv;
    memcpy(&d, data + 1, sizeof d);
    memcpy(&iv, data + 9, sizeof iv);
    data += 17;
    size -= 17;
    char *in = malloc(size + 2);
    if (!in)
        abort();
    memcpy(in, data, size);
    in[size] = '\0';
    in[size + 1] = '\0';
    const char *event = in;
    const char *sval = in + strlen(in) + 1;
    if (sval > in + size)
        sval = in + size + 1;

    cap_log_init("fuzz", CAP_LOG_DEBUG, json ? CAP_LOG_JSON : CAP_LOG_TEXT);
    if (fseek(stdout, 0, SEEK_SET) != 0 || ftruncate(fileno(stdout), 0) != 0)
        abort();
    cap_log(CAP_LOG_WARN, event, CAP_LS("s", sval), CAP_LI("i", iv), CAP_LD("d", d));
    fflush(stdout);
    long len = ftell(stdout);
    if (len <= 0)
        abort();
    if ((size_t)len + 1 > out_cap) {
        out_cap = (size_t)len + 1;
        out_buf = realloc(out_buf, out_cap);
        if (!out_buf)
            abort();
    }
    if (fseek(stdout, 0, SEEK_SET) != 0 || fread(out_buf, 1, (size_t)len, stdout) != (size_t)len)
        abort();
    out_buf[len] = '\0';
    /* One line, ended by its only newline, and no NUL inside. */
    if (strlen(out_buf) != (size_t)len || out_buf[len - 1] != '\n' ||
        strchr(out_buf, '\n') != out_buf + len - 1)
        abort();

    char want_ev[2 * VALUE_MAX + 8], want_s[2 * VALUE_MAX + 8];
    if (json) {
        struct json_tokener *tok = json_tokener_new();
        if (!tok)
            abort();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        struct json_object *o = json_tokener_parse_ex(tok, out_buf, (int)len - 1);
        if (!o || json_tokener_get_error(tok) != json_tokener_success ||
            !json_object_is_type(o, json_type_object))
            abort(); /* the line is not one valid JSON object */
        struct json_object *ev, *s, *i, *dv;
        if (!json_object_object_get_ex(o, "event", &ev) || !json_object_object_get_ex(o, "s", &s) ||
            !json_object_object_get_ex(o, "i", &i) || !json_object_object_get_ex(o, "d", &dv))
            abort();
        expected(event, 1, want_ev);
        expected(sval, 1, want_s);
        if (strcmp(json_object_get_string(ev), want_ev) != 0 ||
            strcmp(json_object_get_string(s), want_s) != 0 || json_object_get_int64(i) != iv)
            abort();
        if (isfinite(d) && !json_object_is_type(dv, json_type_double) &&
            !json_object_is_type(dv, json_type_int))
            abort();
        json_object_put(o);
        json_tokener_free(tok);
    } else {
        expected(event, 0, want_ev);
        expected(sval, 0, want_s);
        const char *p = strstr(out_buf, " event=\"");
        if (!p || p + 7 != strchr(out_buf, '"'))
            abort(); /* the event is the first quoted value */
        check_text_value(&p, "event", want_ev);
        check_text_value(&p, "s", want_s);
        char num[32];
        snprintf(num, sizeof num, " i=%lld d=", iv);
        if (strncmp(p, num, strlen(num)) != 0)
            abort();
    }
    free(in);
    return 0;
}
