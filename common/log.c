/* Structured one-line-per-event logging in JSON or key=value text. */
#include "common/log.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_VALUE_MAX 512

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *log_component = "cap";
static enum cap_log_level log_level = CAP_LOG_INFO;
static int log_json = 1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int resolve_json(enum cap_log_format format)
{
    if (format == CAP_LOG_JSON)
        return 1;
    if (format == CAP_LOG_TEXT)
        return 0;
    return !isatty(STDOUT_FILENO);
}

void cap_log_init(const char *component, enum cap_log_level level, enum cap_log_format format)
{
    pthread_mutex_lock(&log_mu);
    log_component = component;
    log_level = level;
    log_json = resolve_json(format);
    pthread_mutex_unlock(&log_mu);
}

void cap_log_configure(enum cap_log_level level, enum cap_log_format format)
{
    pthread_mutex_lock(&log_mu);
    log_level = level;
    log_json = resolve_json(format);
    pthread_mutex_unlock(&log_mu);
}

int cap_log_parse_level(const char *s, enum cap_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum cap_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = CAP_LOG_WARN;
        return 0;
    }
    return -1;
}

int cap_log_parse_format(const char *s, enum cap_log_format *out)
{
    if (strcasecmp(s, "json") == 0)
        *out = CAP_LOG_JSON;
    else if (strcasecmp(s, "text") == 0)
        *out = CAP_LOG_TEXT;
    else if (strcasecmp(s, "auto") == 0)
        *out = CAP_LOG_AUTO;
    else
        return -1;
    return 0;
}

/* Appends s escaped for JSON (or for a quoted text value), bounded by LOG_VALUE_MAX bytes. */
static void put_escaped(FILE *f, const char *s)
{
    size_t n = 0;
    for (; *s && n < LOG_VALUE_MAX; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    if (*s)
        fputs("...", f);
}

void cap_log_fields(enum cap_log_level level, const char *event, const struct cap_log_field *fields)
{
    if (level < log_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[96];
    snprintf(tbuf, sizeof tbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (ts.tv_nsec / 1000000) % 1000);

    pthread_mutex_lock(&log_mu);
    FILE *f = stdout;
    /* JSON: {"k":v,...}; text: k=v ... with quoted strings. Same fields either way. */
    const char *sep = log_json ? "," : " ";
    if (log_json)
        fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"event\":\"", tbuf,
                level_names[level], log_component);
    else
        fprintf(f, "ts=%s level=%s component=%s event=\"", tbuf, level_names[level],
                log_component);
    put_escaped(f, event);
    fputc('"', f);
    for (const struct cap_log_field *fl = fields; fl && fl->key; fl++) {
        fprintf(f, log_json ? "%s\"%s\":" : "%s%s=", sep, fl->key);
        if (fl->type == CAP_LF_INT)
            fprintf(f, "%lld", fl->i);
        else if (fl->type == CAP_LF_DBL && !isfinite(fl->d))
            fputs(log_json ? "null" : (isnan(fl->d) ? "nan" : fl->d > 0 ? "inf" : "-inf"), f);
        else if (fl->type == CAP_LF_DBL)
            fprintf(f, "%.6g", fl->d); /* JSON has no NaN or infinity: those are null above */
        else {
            fputc('"', f);
            put_escaped(f, fl->s ? fl->s : "");
            fputc('"', f);
        }
    }
    fputs(log_json ? "}\n" : "\n", f);
    fflush(f);
    pthread_mutex_unlock(&log_mu);
}
