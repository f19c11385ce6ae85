/* Unit tests of the job message codec: round trip, truncation at every length, garbage, and
 * the messages that name the offending field. */
#include "common/job.h"
#include "tests/unit/test.h"

#include <msgpack.h>

static size_t pack_custom(uint8_t *out, size_t cap, int version, const char *type, int run_as_str)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_int(&pk, version);
    msgpack_pack_str_with_body(&pk, "type", 4);
    msgpack_pack_str_with_body(&pk, type, strlen(type));
    msgpack_pack_str_with_body(&pk, "run_id", 6);
    if (run_as_str)
        msgpack_pack_str_with_body(&pk, "12", 2);
    else
        msgpack_pack_int64(&pk, 12);
    msgpack_pack_str_with_body(&pk, "source_id", 9);
    msgpack_pack_int64(&pk, 3);
    msgpack_pack_str_with_body(&pk, "attempt", 7);
    msgpack_pack_int64(&pk, 2);
    msgpack_pack_str_with_body(&pk, "enqueued_at", 11);
    msgpack_pack_int64(&pk, 1700000000000LL);
    msgpack_pack_str_with_body(&pk, "future", 6);
    msgpack_pack_nil(&pk);
    size_t n = sb.size < cap ? sb.size : cap;
    memcpy(out, sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

int main(void)
{
    struct cap_job in = {.run_id = 123456789012LL, .source_id = 42, .attempt = 3,
                         .enqueued_at_ms = 1764147600123LL};
    uint8_t buf[CAP_JOB_MAX_BYTES];
    struct cap_err err = {0};
    int n = cap_job_encode(&in, buf, sizeof buf, &err);
    CHECK(n > 0);
    struct cap_job out = {0};
    CHECK_EQ(0, cap_job_decode(buf, (size_t)n, &out, &err));
    CHECK_EQ(in.run_id, out.run_id);
    CHECK_EQ(in.source_id, out.source_id);
    CHECK_EQ(in.attempt, out.attempt);
    CHECK_EQ(in.enqueued_at_ms, out.enqueued_at_ms);
    CHECK_EQ(0, out.shard);

    /* A shard's message carries its number; one without stays a whole run. */
    {
        struct cap_job sh = in;
        sh.shard = 7;
        uint8_t sb[CAP_JOB_MAX_BYTES];
        int sn = cap_job_encode(&sh, sb, sizeof sb, &err);
        CHECK(sn > n);
        struct cap_job so = {0};
        CHECK_EQ(0, cap_job_decode(sb, (size_t)sn, &so, &err));
        CHECK_EQ(7, so.shard);
        CHECK_EQ(in.run_id, so.run_id);
        /* shard 0 or negative is refused with the field named */
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 7);
        msgpack_pack_str_with_body(&pk, "v", 1);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_str_with_body(&pk, "type", 4);
        msgpack_pack_str_with_body(&pk, "discovery_execute", 17);
        msgpack_pack_str_with_body(&pk, "run_id", 6);
        msgpack_pack_int(&pk, 5);
        msgpack_pack_str_with_body(&pk, "source_id", 9);
        msgpack_pack_int(&pk, 6);
        msgpack_pack_str_with_body(&pk, "attempt", 7);
        msgpack_pack_int(&pk, 0);
        msgpack_pack_str_with_body(&pk, "enqueued_at", 11);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_str_with_body(&pk, "shard", 5);
        msgpack_pack_int(&pk, -2);
        cap_err_clear(&err);
        CHECK_EQ(-1, cap_job_decode((const uint8_t *)b.data, b.size, &so, &err));
        CHECK_STR("job field \"shard\": expected positive integer, got -2", err.msg);
        msgpack_sbuffer_destroy(&b);
    }

    /* Too small a buffer is an error, not a truncated message. */
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_encode(&in, buf, 10, &err));
    CHECK(strstr(err.msg, "do not fit") != NULL);

    /* Every truncation fails with a message and leaves out untouched. */
    for (int cut = 0; cut < n; cut++) {
        struct cap_job untouched = {.run_id = -5};
        cap_err_clear(&err);
        CHECK_EQ(-1, cap_job_decode(buf, (size_t)cut, &untouched, &err));
        CHECK(err.msg[0] != '\0');
        CHECK_EQ(-5, untouched.run_id);
    }
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode(buf, 5, &out, &err));
    CHECK_STR("job message: truncated msgpack", err.msg);

    /* Trailing bytes. */
    uint8_t longer[CAP_JOB_MAX_BYTES];
    memcpy(longer, buf, (size_t)n);
    longer[n] = 0xc0;
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode(longer, (size_t)n + 1, &out, &err));
    CHECK_STR("job message: 1 trailing bytes after the map", err.msg);

    /* Garbage and wrong shapes. */
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode((const uint8_t *)"\x93\x01\x02\x03", 4, &out, &err));
    CHECK_STR("job message: expected map, got array", err.msg);
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode((const uint8_t *)"\xc1", 1, &out, &err));
    CHECK_STR("job message: malformed msgpack", err.msg);

    /* Unknown extra keys are accepted; wrong types and versions are named. */
    uint8_t m[256];
    size_t ml = pack_custom(m, sizeof m, 1, "discovery_execute", 0);
    cap_err_clear(&err);
    CHECK_EQ(0, cap_job_decode(m, ml, &out, &err));
    CHECK_EQ(12, out.run_id);
    ml = pack_custom(m, sizeof m, 1, "discovery_execute", 1);
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode(m, ml, &out, &err));
    CHECK_STR("job field \"run_id\": expected positive integer, got string", err.msg);
    ml = pack_custom(m, sizeof m, 2, "discovery_execute", 0);
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode(m, ml, &out, &err));
    CHECK_STR("job field \"v\": unsupported version 2 (expected 1)", err.msg);
    ml = pack_custom(m, sizeof m, 1, "rm -rf\n/", 0);
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode(m, ml, &out, &err));
    CHECK_STR("job field \"type\": unknown job type \"rm -rf\\x0a/\" (expected discovery_execute "
              "or notify_deliver)",
              err.msg);

    /* Over-long input is refused before parsing. */
    static uint8_t big[CAP_JOB_MAX_BYTES + 1];
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode(big, sizeof big, &out, &err));
    CHECK(strstr(err.msg, "exceed the limit") != NULL);

    /* notify_deliver: a delivery id instead of run and source; a run_id sent along is dropped. */
    struct cap_job nin = {.type = CAP_JOB_NOTIFY, .delivery_id = 77, .attempt = 2,
                          .enqueued_at_ms = 1764147600123LL};
    cap_err_clear(&err);
    n = cap_job_encode(&nin, buf, sizeof buf, &err);
    CHECK(n > 0);
    struct cap_job nout;
    CHECK_EQ(0, cap_job_decode(buf, (size_t)n, &nout, &err));
    CHECK_EQ(CAP_JOB_NOTIFY, nout.type);
    CHECK_EQ(77, nout.delivery_id);
    CHECK_EQ(0, nout.run_id);
    CHECK_EQ(2, nout.attempt);
    ml = pack_custom(m, sizeof m, 1, "notify_deliver", 0);
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_job_decode(m, ml, &out, &err));
    CHECK_STR("job field \"delivery_id\": missing", err.msg);
    /* A discovery job decodes with type 0 and no delivery. */
    cap_err_clear(&err);
    n = cap_job_encode(&in, buf, sizeof buf, &err);
    CHECK_EQ(0, cap_job_decode(buf, (size_t)n, &out, &err));
    CHECK_EQ(CAP_JOB_EXECUTE, out.type);
    CHECK_EQ(0, out.delivery_id);
    TEST_DONE();
}
