/* Error reporting: a function that can fail returns 0/-1 (or NULL) and fills a caller-owned
 * struct cap_err. The first error is kept; later calls do not overwrite it. */
#ifndef CAP_ERR_H
#define CAP_ERR_H

#include <stddef.h>

#define CAP_ERR_MSG_MAX 256
/* Longest piece of an offending value quoted in a message. */
#define CAP_ERR_VALUE_MAX 64

struct cap_err {
    int code;
    char msg[CAP_ERR_MSG_MAX];
};

/* Codes: 0 none, otherwise a rough class the caller may act on. */
enum {
    CAP_E_NONE = 0,
    CAP_E_INVALID = 1,  /* bad input: config, CLI, message, peer data */
    CAP_E_IO = 2,       /* network, file or service failure; may succeed later */
    CAP_E_NOMEM = 3,
    CAP_E_FENCED = 4,   /* a run's attempt is no longer current */
    CAP_E_NOTIMPL = 5,
    CAP_E_LIMIT = 6,    /* a named limit was exceeded */
};

/* Resets err to "no error". */
void cap_err_clear(struct cap_err *err);

/* Records an error unless one is already recorded (the first is kept). err may be NULL. */
void cap_err_set(struct cap_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends context ("loading config: ") to an existing message, keeping its code. */
void cap_err_prefix(struct cap_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes value into out (size n) escaped for a message: printable ASCII kept, quotes and
 * backslashes escaped, anything else as \xNN, cut to CAP_ERR_VALUE_MAX input bytes with "..."
 * when longer. Returns out. */
const char *cap_err_quote(char *out, size_t n, const char *value, size_t len);

/* True once an error is recorded. */
static inline int cap_err_isset(const struct cap_err *err)
{
    return err && err->code != CAP_E_NONE;
}

#endif
