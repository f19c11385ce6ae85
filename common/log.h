/* Structured logging: one line per event with the same fields everywhere. JSON objects on a
 * non-terminal stdout, key=value text on a terminal. Thread-safe; never logs secrets (callers
 * pass ids, not connection strings). */
#ifndef CAP_LOG_H
#define CAP_LOG_H

#include <stdint.h>

enum cap_log_level { CAP_LOG_DEBUG = 0, CAP_LOG_INFO, CAP_LOG_WARN, CAP_LOG_ERROR };
enum cap_log_format { CAP_LOG_AUTO = 0, CAP_LOG_JSON, CAP_LOG_TEXT };

enum cap_log_ftype { CAP_LF_END = 0, CAP_LF_STR, CAP_LF_INT, CAP_LF_DBL };

struct cap_log_field {
    const char *key;
    int type;
    long long i;
    double d;
    const char *s;
};

#define CAP_LS(k, v) {(k), CAP_LF_STR, 0, 0.0, (v)}
#define CAP_LI(k, v) {(k), CAP_LF_INT, (long long)(v), 0.0, NULL}
#define CAP_LD(k, v) {(k), CAP_LF_DBL, 0, (double)(v), NULL}

/* Sets the component name (scheduler, worker, capctl), level and format. Call once at start. */
void cap_log_init(const char *component, enum cap_log_level level, enum cap_log_format format);

/* Changes level/format after the config is loaded. */
void cap_log_configure(enum cap_log_level level, enum cap_log_format format);

/* Writes one event line to stdout if level is enabled. fields ends with a CAP_LF_END entry.
 * String values are escaped and cut to 512 bytes; unprintable bytes are replaced. */
void cap_log_fields(enum cap_log_level level, const char *event, const struct cap_log_field *fields);

/* cap_log(CAP_LOG_INFO, "run_claimed", CAP_LI("run_id", id), CAP_LS("err", msg)); */
#define cap_log(level, event, ...)                                                                 \
    cap_log_fields((level), (event), (const struct cap_log_field[]){__VA_ARGS__, {0}})
#define cap_log0(level, event) cap_log_fields((level), (event), (const struct cap_log_field[]){{0}})

/* Parses "debug|info|warn|error" / "json|text|auto". Return 0, or -1 on an unknown name. */
int cap_log_parse_level(const char *s, enum cap_log_level *out);
int cap_log_parse_format(const char *s, enum cap_log_format *out);

#endif
