/* First-error-wins error buffers and the quoting of offending values in messages. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cap_err_clear(struct cap_err *err)
{
    if (!err)
        return;
    err->code = CAP_E_NONE;
    err->msg[0] = '\0';
}

void cap_err_set(struct cap_err *err, int code, const char *fmt, ...)
{
    if (!err || err->code != CAP_E_NONE)
        return;
    err->code = code ? code : CAP_E_INVALID;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void cap_err_prefix(struct cap_err *err, const char *fmt, ...)
{
    if (!err || err->code == CAP_E_NONE)
        return;
    char prefix[CAP_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[CAP_ERR_MSG_MAX];
    size_t pl = strnlen(prefix, sizeof joined - 1);
    memcpy(joined, prefix, pl);
    size_t ml = strnlen(err->msg, sizeof err->msg);
    if (ml > sizeof joined - 1 - pl)
        ml = sizeof joined - 1 - pl;
    memcpy(joined + pl, err->msg, ml);
    joined[pl + ml] = '\0';
    memcpy(err->msg, joined, sizeof joined);
}

const char *cap_err_quote(char *out, size_t n, const char *value, size_t len)
{
    size_t o = 0;
    if (n == 0)
        return out;
    if (!value) {
        snprintf(out, n, "(null)");
        return out;
    }
    size_t lim = len > CAP_ERR_VALUE_MAX ? CAP_ERR_VALUE_MAX : len;
    for (size_t i = 0; i < lim; i++) {
        unsigned char c = (unsigned char)value[i];
        char tmp[8];
        if (c == '"' || c == '\\')
            snprintf(tmp, sizeof tmp, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            snprintf(tmp, sizeof tmp, "%c", c);
        else
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
        size_t tl = strlen(tmp);
        if (o + tl + 4 >= n)
            break;
        memcpy(out + o, tmp, tl);
        o += tl;
    }
    if (len > lim && o + 3 < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
