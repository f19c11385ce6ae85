/* Unit tests of redis.url parsing: hosts, ports, databases, percent-encoded credentials, and
 * the errors for what is not supported. */
#include "common/redis.h"
#include "tests/unit/test.h"

static int parse(const char *url, struct cap_redis_url *u, struct cap_err *err)
{
    cap_err_clear(err);
    memset(u, 0, sizeof *u);
    return cap_redis_parse_url(url, u, err);
}

int main(void)
{
    struct cap_redis_url u;
    struct cap_err err;
    CHECK_EQ(0, parse("redis://127.0.0.1:6380/2", &u, &err));
    CHECK_STR("127.0.0.1", u.host);
    CHECK_EQ(6380, u.port);
    CHECK_EQ(2, u.db);
    CHECK_STR("", u.password);

    CHECK_EQ(0, parse("redis://redis.internal", &u, &err));
    CHECK_STR("redis.internal", u.host);
    CHECK_EQ(6379, u.port);
    CHECK_EQ(0, u.db);

    CHECK_EQ(0, parse("redis://capuser:s3cret%2Fpa%20ss@db.local:7000/1", &u, &err));
    CHECK_STR("capuser", u.user);
    CHECK_STR("s3cret/pa ss", u.password);
    CHECK_STR("db.local", u.host);
    CHECK_EQ(7000, u.port);
    CHECK_EQ(1, u.db);

    /* Password only (legacy requirepass). */
    CHECK_EQ(0, parse("redis://:pw@h/0", &u, &err));
    CHECK_STR("", u.user);
    CHECK_STR("pw", u.password);
    CHECK_EQ(0, parse("redis://[::1]:6390", &u, &err));
    CHECK_STR("::1", u.host);
    CHECK_EQ(6390, u.port);
    CHECK_EQ(0, parse("unix:///run/redis.sock", &u, &err));
    CHECK_STR("/run/redis.sock", u.unix_path);

    CHECK_EQ(-1, parse("rediss://h:6379", &u, &err));
    CHECK(strstr(err.msg, "TLS-terminating proxy") != NULL);
    CHECK_EQ(-1, parse("http://h", &u, &err));
    CHECK(strstr(err.msg, "expected redis://") != NULL);
    CHECK_EQ(-1, parse("redis://h:0", &u, &err));
    CHECK_STR("redis.url: port must be 1-65535", err.msg);
    CHECK_EQ(-1, parse("redis://h:99999", &u, &err));
    CHECK_EQ(-1, parse("redis://h/x", &u, &err));
    CHECK_STR("redis.url: database must be a number 0-1000", err.msg);
    CHECK_EQ(-1, parse("redis://", &u, &err));
    CHECK_EQ(-1, parse("redis://[::1", &u, &err));
    CHECK_EQ(-1, parse("redis://u:%zz@h", &u, &err));
    /* The password never appears in an error. */
    CHECK_EQ(-1, parse("redis://u:topsecret@h:0", &u, &err));
    CHECK(strstr(err.msg, "topsecret") == NULL);
    TEST_DONE();
}
