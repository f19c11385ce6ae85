/* Job stream operations shared by cap-scheduler and cap-worker. */
#include "common/stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/redis.h"

int cap_stream_ensure_group(redisContext *c, const struct cap_config *cfg, struct cap_err *err)
{
    const char *argv[] = {"XGROUP", "CREATE", cfg->redis_stream, cfg->redis_group, "0",
                          "MKSTREAM"};
    redisReply *r = redisCommandArgv(c, 6, argv, NULL);
    if (!r) {
        cap_err_set(err, CAP_E_IO, "creating consumer group: redis connection failed: %s",
                    c->errstr);
        return -1;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        cap_err_set(err, CAP_E_IO, "creating consumer group %s: %.160s", cfg->redis_group, r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

int cap_stream_publish(redisContext *c, const struct cap_config *cfg, const struct cap_job *job,
                       char *id_out, size_t id_n, struct cap_err *err)
{
    uint8_t buf[CAP_JOB_MAX_BYTES];
    int n = cap_job_encode(job, buf, sizeof buf, err);
    if (n < 0)
        return -1;
    char run[24];
    snprintf(run, sizeof run, "%" PRId64, job->run_id);
    const char *argv[] = {"XADD", cfg->redis_stream, "*", "job", (const char *)buf, "run", run};
    size_t lens[] = {4, strlen(cfg->redis_stream), 1, 3, (size_t)n, 3, strlen(run)};
    redisReply *r = cap_redis_cmd(c, "publishing job", 7, argv, lens, err);
    if (!r)
        return -1;
    int rc = -1;
    if (r->type == REDIS_REPLY_STRING && r->len < id_n) {
        memcpy(id_out, r->str, r->len);
        id_out[r->len] = '\0';
        rc = 0;
    } else {
        cap_err_set(err, CAP_E_IO, "publishing job: unexpected XADD reply");
    }
    freeReplyObject(r);
    return rc;
}

int cap_stream_dead_letter(redisContext *c, const struct cap_config *cfg, const char *entry_id,
                           const char *reason, const char *raw, size_t raw_len,
                           struct cap_err *err)
{
    const char *argv[] = {"XADD",   cfg->redis_dead_letter_stream, "MAXLEN", "~", "10000", "*",
                          "stream", cfg->redis_stream, "entry", entry_id, "reason", reason,
                          "job",    raw ? raw : ""};
    size_t lens[14];
    for (int i = 0; i < 13; i++)
        lens[i] = strlen(argv[i]);
    lens[13] = raw ? raw_len : 0;
    redisReply *r = cap_redis_cmd(c, "dead-lettering job", 14, argv, lens, err);
    if (!r)
        return -1;
    freeReplyObject(r);
    return 0;
}

int cap_stream_id_cmp(const char *a, const char *b)
{
    unsigned long long am = strtoull(a, NULL, 10), bm = strtoull(b, NULL, 10);
    if (am != bm)
        return am < bm ? -1 : 1;
    const char *ad = strchr(a, '-'), *bd = strchr(b, '-');
    unsigned long long as = ad ? strtoull(ad + 1, NULL, 10) : 0;
    unsigned long long bs = bd ? strtoull(bd + 1, NULL, 10) : 0;
    if (as != bs)
        return as < bs ? -1 : 1;
    return 0;
}

/* Finds the group's last-delivered-id via XINFO GROUPS; 0 found, 1 no such group, -1 error. */
static int group_last_delivered(redisContext *c, const struct cap_config *cfg, char *out,
                                size_t n, struct cap_err *err)
{
    const char *argv[] = {"XINFO", "GROUPS", cfg->redis_stream};
    redisReply *r = redisCommandArgv(c, 3, argv, NULL);
    if (!r) {
        cap_err_set(err, CAP_E_IO, "reading stream groups: redis connection failed");
        return -1;
    }
    int rc = 1;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t g = 0; g < r->elements; g++) {
            redisReply *e = r->element[g];
            if (e->type != REDIS_REPLY_ARRAY)
                continue;
            const char *name = NULL, *last = NULL;
            for (size_t i = 0; i + 1 < e->elements; i += 2) {
                if (e->element[i]->type != REDIS_REPLY_STRING)
                    continue;
                redisReply *v = e->element[i + 1];
                if (strcmp(e->element[i]->str, "name") == 0 && v->type == REDIS_REPLY_STRING)
                    name = v->str;
                else if (strcmp(e->element[i]->str, "last-delivered-id") == 0 &&
                         v->type == REDIS_REPLY_STRING)
                    last = v->str;
            }
            if (name && last && strcmp(name, cfg->redis_group) == 0) {
                snprintf(out, n, "%s", last);
                rc = 0;
            }
        }
    }
    freeReplyObject(r);
    return rc;
}

long long cap_stream_trim(redisContext *c, const struct cap_config *cfg, struct cap_err *err)
{
    char last[64];
    int g = group_last_delivered(c, cfg, last, sizeof last, err);
    if (g != 0)
        return g < 0 ? -1 : 0;
    /* Oldest pending entry: XPENDING summary gives the smallest id. */
    const char *argv[] = {"XPENDING", cfg->redis_stream, cfg->redis_group};
    redisReply *r = cap_redis_cmd(c, "reading pending summary", 3, argv, NULL, err);
    if (!r)
        return -1;
    char minid[64];
    snprintf(minid, sizeof minid, "%s", last);
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[1]->type == REDIS_REPLY_STRING &&
        cap_stream_id_cmp(r->element[1]->str, minid) < 0)
        snprintf(minid, sizeof minid, "%s", r->element[1]->str);
    freeReplyObject(r);
    if (strcmp(minid, "0-0") == 0)
        return 0;
    /* Entries after last-delivered-id are undelivered and kept; so is the oldest pending. */
    const char *targv[] = {"XTRIM", cfg->redis_stream, "MINID", minid};
    r = cap_redis_cmd(c, "trimming stream", 4, targv, NULL, err);
    if (!r)
        return -1;
    long long removed = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return removed;
}

int cap_stream_stats(redisContext *c, const struct cap_config *cfg, long long *length,
                     long long *pending)
{
    *length = -1;
    *pending = -1;
    const char *a1[] = {"XLEN", cfg->redis_stream};
    redisReply *r = redisCommandArgv(c, 2, a1, NULL);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_INTEGER)
        *length = r->integer;
    freeReplyObject(r);
    const char *a2[] = {"XPENDING", cfg->redis_stream, cfg->redis_group};
    r = redisCommandArgv(c, 3, a2, NULL);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        *pending = r->element[0]->integer;
    else
        *pending = 0;
    freeReplyObject(r);
    return 0;
}
