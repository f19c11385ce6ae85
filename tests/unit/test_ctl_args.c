/* Unit tests of capctl's option parser and comma-separated lists. */
#include "ctl/args.h"
#include "tests/unit/test.h"

enum { O_CIDR = 1, O_WAIT, O_TIMEOUT };

static const struct cap_ctl_opt_spec SPECS[] = {{"cidr", CAP_CTL_LIST, O_CIDR},
                                                {"wait", CAP_CTL_FLAG, O_WAIT},
                                                {"timeout", CAP_CTL_VALUE, O_TIMEOUT},
                                                {NULL, 0, 0}};

static struct cap_ctl_args args;

static int parse(int argc, char **argv, size_t max_pos, struct cap_err *err)
{
    cap_err_clear(err);
    return cap_ctl_args_parse(argc, argv, SPECS, max_pos, &args, err);
}

static void test_parse(void)
{
    struct cap_err err = {0};
    char *v1[] = {"lab",       "--cidr", "10.0.0.0/8",  "--wait", "--cidr=10.1.0.0/16,10.2.0.0/16",
                  "--timeout", "5s",     "--timeout=7s"};
    CHECK_EQ(0, parse(8, v1, 1, &err));
    CHECK_EQ(1, args.npos);
    CHECK_STR("lab", args.pos[0]);
    CHECK_EQ(5, args.nopts);
    CHECK_EQ(O_CIDR, args.opts[0].id);
    CHECK_STR("10.0.0.0/8", args.opts[0].value);
    CHECK_STR("10.1.0.0/16,10.2.0.0/16", args.opts[2].value);
    CHECK(cap_ctl_args_has(&args, O_WAIT));
    CHECK(args.opts[1].value == NULL);
    CHECK_STR("7s", cap_ctl_args_get(&args, O_TIMEOUT)); /* the last one wins */

    /* Positionals anywhere, and "--" ends the options. */
    char *v2[] = {"--wait", "lab", "--", "--cidr"};
    CHECK_EQ(0, parse(4, v2, 2, &err));
    CHECK_EQ(2, args.npos);
    CHECK_STR("--cidr", args.pos[1]);
}

static void test_errors(void)
{
    struct cap_err err = {0};
    char *v1[] = {"--cidrs", "x"};
    CHECK_EQ(-1, parse(2, v1, 1, &err));
    CHECK_STR("unknown option \"--cidrs\"", err.msg);
    char *v1b[] = {"--bogus=1"};
    CHECK_EQ(-1, parse(1, v1b, 1, &err));
    CHECK_STR("unknown option \"--bogus\"", err.msg);
    char *v2[] = {"--cidr"};
    CHECK_EQ(-1, parse(1, v2, 1, &err));
    CHECK_STR("option --cidr needs a value", err.msg);
    char *v3[] = {"--cidr", "--wait"};
    CHECK_EQ(-1, parse(2, v3, 1, &err));
    CHECK_STR("option --cidr needs a value", err.msg);
    char *v4[] = {"--wait=yes"};
    CHECK_EQ(-1, parse(1, v4, 1, &err));
    CHECK_STR("option --wait takes no value", err.msg);
    char *v5[] = {"a", "b"};
    CHECK_EQ(-1, parse(2, v5, 1, &err));
    CHECK_STR("unexpected argument \"b\"", err.msg);
    CHECK_EQ(-1, parse(1, v5, 0, &err));
    CHECK_STR("unexpected argument \"a\"", err.msg);
}

static void test_split(void)
{
    char buf[64];
    const char *parts[4];
    struct cap_err err = {0};
    CHECK_EQ(3, cap_ctl_args_split("--port", "443,8443,9443", buf, sizeof buf, parts, 4, &err));
    CHECK_STR("443", parts[0]);
    CHECK_STR("8443", parts[1]);
    CHECK_STR("9443", parts[2]);
    CHECK_EQ(1, cap_ctl_args_split("--port", "443", buf, sizeof buf, parts, 4, &err));
    CHECK_EQ(-1, cap_ctl_args_split("--port", "443,,8443", buf, sizeof buf, parts, 4, &err));
    CHECK_STR("--port \"443,,8443\": empty item in comma-separated list", err.msg);
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_ctl_args_split("--port", "443,", buf, sizeof buf, parts, 4, &err));
    CHECK_STR("--port \"443,\": empty item in comma-separated list", err.msg);
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_ctl_args_split("--port", "1,2,3,4,5", buf, sizeof buf, parts, 4, &err));
    CHECK_STR("--port \"1,2,3,4,5\": more than 4 items", err.msg);
}

int main(void)
{
    test_parse();
    test_errors();
    test_split();
    TEST_DONE();
}
