/* Fuzz target for capctl's exports (ctl/export.h): the CSV field writer, which copies database
 * text anyone can put in a certificate, and the checks of the export filters an operator types
 * (--name, --issuer, --pqc, --format). Byte 0 picks the function, the rest is the input (cut at
 * the first NUL, except for the CSV writer, which takes every byte). Properties: a CSV field
 * reads back (RFC 4180) as exactly the bytes written and never ends a record or a field early;
 * a refused value sets a message naming the option and leaves the outputs untouched; an
 * accepted suffix is normalised and accepted again unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/export.h"

#define FILL 0x5A

static void want_fail(int rc, const struct cap_err *err, const char *opt)
{
    if (rc != -1 || err->code == 0 || strstr(err->msg, opt) == NULL)
        abort();
}

/* Reads one RFC 4180 field from buf (n bytes, the whole of it) into out; aborts when the field
 * is malformed or does not use up buf. Returns its length. */
static size_t csv_read(const char *buf, size_t n, char *out)
{
    size_t o = 0;
    if (n == 0 || buf[0] != '"') {
        for (size_t i = 0; i < n; i++) {
            if (buf[i] == ',' || buf[i] == '"' || buf[i] == '\r' || buf[i] == '\n')
                abort(); /* would end the field or the record, or open a quote */
            out[o++] = buf[i];
        }
        return o;
    }
    size_t i = 1;
    for (;;) {
        if (i >= n)
            abort(); /* no closing quote */
        if (buf[i] == '"') {
            if (i + 1 < n && buf[i + 1] == '"') {
                out[o++] = '"';
                i += 2;
                continue;
            }
            if (i + 1 != n)
                abort(); /* bytes after the closing quote */
            return o;
        }
        out[o++] = buf[i++];
    }
}

static void fuzz_csv(const char *v, size_t len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return;
    if (cap_ctl_export_csv_field(f, v, len) != 0)
        abort();
    fclose(f);
    char *back = malloc(n + 1);
    if (!back)
        abort();
    size_t bl = csv_read(buf, n, back);
    if (bl != len || memcmp(back, v, len) != 0 || (len == 0 && n != 2))
        abort();
    free(back);
    free(buf);
}

static void fuzz_name(const char *text)
{
    char out[256], again[256];
    memset(out, FILL, sizeof out);
    struct cap_err err = {0};
    if (cap_ctl_export_name_suffix(text, out, sizeof out, &err) != 0) {
        want_fail(-1, &err, "--name");
        for (size_t i = 0; i < sizeof out; i++)
            if ((unsigned char)out[i] != FILL)
                abort();
        return;
    }
    size_t len = strlen(out);
    if (len == 0 || len > 253 || out[0] == '.' || out[len - 1] == '.' || strstr(out, ".."))
        abort();
    for (const char *c = out; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
            abort();
    struct cap_err e2 = {0};
    if (cap_ctl_export_name_suffix(out, again, sizeof again, &e2) != 0 || strcmp(out, again))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 70000)
        return 0;
    int which = data[0] % 5;
    data++;
    size--;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct cap_err err = {0};
    switch (which) {
    case 0:
        fuzz_csv(text, size);
        break;
    case 1:
        fuzz_name(text);
        break;
    case 2:
        if (cap_ctl_export_issuer(text, &err) != 0) {
            want_fail(-1, &err, "--issuer");
        } else {
            size_t len = strlen(text);
            if (len < 1 || len > CAP_CTL_ISSUER_MAX)
                abort();
            for (size_t i = 0; i < len; i++)
                if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
                    abort();
        }
        break;
    case 3: {
        enum cap_ctl_format f = CAP_CTL_FORMAT_PEM;
        unsigned allowed = size ? (unsigned)data[0] & 15u : 15u;
        if (cap_ctl_export_format(text, allowed, &f, &err) != 0) {
            want_fail(-1, &err, "--format");
            if (f != CAP_CTL_FORMAT_PEM)
                abort();
        } else if ((int)f < 0 || f > CAP_CTL_FORMAT_PEM || !(allowed & (1u << f))) {
            abort();
        }
        break;
    }
    case 4: {
        const char *cls = NULL;
        if (cap_ctl_export_pqc_class(text, &cls, &err) != 0) {
            want_fail(-1, &err, "--pqc");
            if (cls)
                abort();
        } else if (strcmp(cls, "vulnerable") && strcmp(cls, "transition") && strcmp(cls, "ready") &&
                   strcmp(cls, "unknown")) {
            abort();
        }
        break;
    }
    }
    free(text);
    return 0;
}
