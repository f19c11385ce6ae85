/* msgpack codec of the job messages (discovery_execute, notify_deliver). Decoding treats the
 * bytes as hostile: every field is checked for presence and type, and nothing may follow the
 * map. */
#include "common/job.h"

#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

static void pack_key(msgpack_packer *pk, const char *k)
{
    size_t l = strlen(k);
    msgpack_pack_str(pk, l);
    msgpack_pack_str_body(pk, k, l);
}

int cap_job_encode(const struct cap_job *job, uint8_t *buf, size_t cap, struct cap_err *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bool notify = job->type == CAP_JOB_NOTIFY;
    const char *type = notify ? CAP_JOB_TYPE_NOTIFY : CAP_JOB_TYPE_EXECUTE;
    bool shard = !notify && job->shard > 0; /* a shard of a split run */
    msgpack_pack_map(&pk, notify ? 5 : shard ? 7 : 6);
    pack_key(&pk, "v");
    msgpack_pack_int(&pk, CAP_JOB_VERSION);
    pack_key(&pk, "type");
    size_t tl = strlen(type);
    msgpack_pack_str(&pk, tl);
    msgpack_pack_str_body(&pk, type, tl);
    if (notify) {
        pack_key(&pk, "delivery_id");
        msgpack_pack_int64(&pk, job->delivery_id);
    } else {
        pack_key(&pk, "run_id");
        msgpack_pack_int64(&pk, job->run_id);
        pack_key(&pk, "source_id");
        msgpack_pack_int64(&pk, job->source_id);
    }
    pack_key(&pk, "attempt");
    msgpack_pack_int64(&pk, job->attempt);
    pack_key(&pk, "enqueued_at");
    msgpack_pack_int64(&pk, job->enqueued_at_ms);
    if (shard) {
        pack_key(&pk, "shard");
        msgpack_pack_int32(&pk, job->shard);
    }
    int n = -1;
    if (sb.size <= cap) {
        memcpy(buf, sb.data, sb.size);
        n = (int)sb.size;
    } else {
        cap_err_set(err, CAP_E_LIMIT, "job message: %zu bytes do not fit in %zu", sb.size, cap);
    }
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static const char *type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "float";
    case MSGPACK_OBJECT_STR:
        return "string";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_BIN:
        return "binary";
    default:
        return "extension";
    }
}

static int key_is(const msgpack_object *k, const char *name)
{
    size_t l = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == l &&
           memcmp(k->via.str.ptr, name, l) == 0;
}

/* Reads a strictly positive integer (or non-negative when allow_zero). */
static int get_int(const msgpack_object *v, const char *field, int allow_zero, int64_t *out,
                   struct cap_err *err)
{
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            cap_err_set(err, CAP_E_INVALID, "job field \"%s\": expected %s integer, got %lld",
                        field, allow_zero ? "non-negative" : "positive", (long long)v->via.i64);
        else
            cap_err_set(err, CAP_E_INVALID, "job field \"%s\": expected %s integer, got %s", field,
                        allow_zero ? "non-negative" : "positive", type_name(v->type));
        return -1;
    }
    if (v->via.u64 > (uint64_t)INT64_MAX || (!allow_zero && v->via.u64 == 0)) {
        cap_err_set(err, CAP_E_INVALID, "job field \"%s\": value %llu out of range", field,
                    (unsigned long long)v->via.u64);
        return -1;
    }
    *out = (int64_t)v->via.u64;
    return 0;
}

/* Reads a big-endian length of w bytes at p. */
static uint64_t be_len(const uint8_t *p, int w)
{
    uint64_t v = 0;
    for (int i = 0; i < w; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Walks the msgpack headers of buf before msgpack-c sees it: msgpack-c allocates room for an
 * array or map as soon as it reads the declared count, so 5 bytes declaring 4 billion items
 * would make it try to allocate tens of gigabytes. Every item takes at least one byte, so a
 * count larger than the bytes left means the message is truncated (or lies), and is refused
 * here. Returns 0 when plausible (or malformed in a way msgpack-c reports), -1 if not. */
static int plausible_counts(const uint8_t *buf, size_t len)
{
    size_t off = 0;
    uint64_t pending = 1; /* items still to read */
    while (pending > 0) {
        if (off >= len)
            return 0; /* truncated: msgpack-c reports it */
        uint8_t b = buf[off++];
        pending--;
        uint64_t items = 0, skip = 0;
        int w = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            continue;
        if (b >= 0x80 && b <= 0x8f)
            items = 2 * (uint64_t)(b & 0x0f);
        else if (b >= 0x90 && b <= 0x9f)
            items = b & 0x0f;
        else if (b >= 0xa0 && b <= 0xbf)
            skip = b & 0x1f;
        else if (b >= 0xca && b <= 0xd3) /* float32/64, uint8-64, int8-64 */
            skip = (uint64_t[]){4, 8, 1, 2, 4, 8, 1, 2, 4, 8}[b - 0xca];
        else if (b >= 0xd4 && b <= 0xd8) /* fixext 1-16 and its type byte */
            skip = 1 + ((uint64_t)1 << (b - 0xd4));
        else {
            /* bin, str, ext (then a type byte), array and map with a 1, 2 or 4 byte length */
            if (b == 0xc4 || b == 0xc7 || b == 0xd9)
                w = 1;
            else if (b == 0xc5 || b == 0xc8 || b == 0xda || b == 0xdc || b == 0xde)
                w = 2;
            else if (b == 0xc6 || b == 0xc9 || b == 0xdb || b == 0xdd || b == 0xdf)
                w = 4;
            else
                return 0; /* 0xc1, never used: msgpack-c refuses it */
            skip = (b >= 0xc7 && b <= 0xc9) ? 1 : 0;
            if (len - off < (size_t)w)
                return 0;
            uint64_t n = be_len(buf + off, w);
            off += (size_t)w;
            if (b == 0xdc || b == 0xdd)
                items = n;
            else if (b == 0xde || b == 0xdf)
                items = 2 * n;
            else
                skip += n;
        }
        if (pending + items > len - off)
            return -1;
        pending += items;
        if (skip > len - off)
            return 0;
        off += (size_t)skip;
    }
    return 0;
}

int cap_job_decode(const uint8_t *buf, size_t len, struct cap_job *out, struct cap_err *err)
{
    if (len == 0) {
        cap_err_set(err, CAP_E_INVALID, "job message: empty");
        return -1;
    }
    if (len > CAP_JOB_MAX_BYTES) {
        cap_err_set(err, CAP_E_LIMIT, "job message: %zu bytes exceed the limit of %d", len,
                    CAP_JOB_MAX_BYTES);
        return -1;
    }
    if (plausible_counts(buf, len) < 0) {
        cap_err_set(err, CAP_E_INVALID, "job message: truncated msgpack");
        return -1;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = -1;
    msgpack_unpack_return ur = msgpack_unpack_next(&up, (const char *)buf, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        cap_err_set(err, CAP_E_INVALID, "job message: %s",
                    ur == MSGPACK_UNPACK_CONTINUE ? "truncated msgpack" : "malformed msgpack");
        goto done;
    }
    const msgpack_object *root = &up.data;
    if (root->type != MSGPACK_OBJECT_MAP) {
        cap_err_set(err, CAP_E_INVALID, "job message: expected map, got %s",
                    type_name(root->type));
        goto done;
    }
    if (off != len) {
        cap_err_set(err, CAP_E_INVALID, "job message: %zu trailing bytes after the map",
                    len - off);
        goto done;
    }
    int64_t v = -1, run_id = 0, source_id = 0, attempt = -1, enq = -1, delivery_id = 0, shard = 0;
    int have_type = 0, type = CAP_JOB_EXECUTE;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key;
        const msgpack_object *val = &root->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) {
            cap_err_set(err, CAP_E_INVALID, "job message: map key is %s, expected string",
                        type_name(k->type));
            goto done;
        }
        if (key_is(k, "v")) {
            if (get_int(val, "v", 1, &v, err) < 0)
                goto done;
        } else if (key_is(k, "type")) {
            if (val->type != MSGPACK_OBJECT_STR) {
                cap_err_set(err, CAP_E_INVALID, "job field \"type\": expected string, got %s",
                            type_name(val->type));
                goto done;
            }
            size_t tl = val->via.str.size;
            if (tl == strlen(CAP_JOB_TYPE_NOTIFY) &&
                !memcmp(val->via.str.ptr, CAP_JOB_TYPE_NOTIFY, tl)) {
                type = CAP_JOB_NOTIFY;
            } else if (tl != strlen(CAP_JOB_TYPE_EXECUTE) ||
                       memcmp(val->via.str.ptr, CAP_JOB_TYPE_EXECUTE, tl)) {
                char q[CAP_ERR_VALUE_MAX * 4 + 8];
                cap_err_set(err, CAP_E_INVALID,
                            "job field \"type\": unknown job type \"%s\" (expected %s or %s)",
                            cap_err_quote(q, sizeof q, val->via.str.ptr, val->via.str.size),
                            CAP_JOB_TYPE_EXECUTE, CAP_JOB_TYPE_NOTIFY);
                goto done;
            }
            have_type = 1;
        } else if (key_is(k, "run_id")) {
            if (get_int(val, "run_id", 0, &run_id, err) < 0)
                goto done;
        } else if (key_is(k, "source_id")) {
            if (get_int(val, "source_id", 0, &source_id, err) < 0)
                goto done;
        } else if (key_is(k, "attempt")) {
            if (get_int(val, "attempt", 1, &attempt, err) < 0)
                goto done;
        } else if (key_is(k, "delivery_id")) {
            if (get_int(val, "delivery_id", 0, &delivery_id, err) < 0)
                goto done;
        } else if (key_is(k, "enqueued_at")) {
            if (get_int(val, "enqueued_at", 1, &enq, err) < 0)
                goto done;
        } else if (key_is(k, "shard")) {
            if (get_int(val, "shard", 0, &shard, err) < 0)
                goto done;
            if (shard > INT32_MAX) {
                cap_err_set(err, CAP_E_INVALID, "job field \"shard\": value %lld out of range",
                            (long long)shard);
                goto done;
            }
        }
        /* Unknown keys are ignored: newer schedulers may add fields within version 1. */
    }
    if (v < 0) {
        cap_err_set(err, CAP_E_INVALID, "job field \"v\": missing");
        goto done;
    }
    if (v != CAP_JOB_VERSION) {
        cap_err_set(err, CAP_E_INVALID, "job field \"v\": unsupported version %lld (expected %d)",
                    (long long)v, CAP_JOB_VERSION);
        goto done;
    }
    const char *missing = !have_type                               ? "type"
                          : type == CAP_JOB_NOTIFY && !delivery_id ? "delivery_id"
                          : type == CAP_JOB_EXECUTE && !run_id     ? "run_id"
                          : type == CAP_JOB_EXECUTE && !source_id  ? "source_id"
                          : attempt < 0                            ? "attempt"
                          : enq < 0                                ? "enqueued_at"
                                                                   : NULL;
    if (missing) {
        cap_err_set(err, CAP_E_INVALID, "job field \"%s\": missing", missing);
        goto done;
    }
    /* Zeroed first so that two equal jobs compare equal byte for byte (padding included). A
     * notify_deliver job carries no run: run_id and source_id stay 0 even if sent. */
    memset(out, 0, sizeof *out);
    out->type = type;
    out->run_id = type == CAP_JOB_EXECUTE ? run_id : 0;
    out->source_id = type == CAP_JOB_EXECUTE ? source_id : 0;
    out->delivery_id = type == CAP_JOB_NOTIFY ? delivery_id : 0;
    out->attempt = attempt;
    out->enqueued_at_ms = enq;
    out->shard = type == CAP_JOB_EXECUTE ? (int32_t)shard : 0;
    rc = 0;
done:
    msgpack_unpacked_destroy(&up);
    return rc;
}
