/* Unit tests of the source type descriptors (common/source/): every descriptor is well formed,
 * a spec parses into the typed struct (defaults, nulls, wrong types), the schema the database
 * holds, the whole-source check, the list summaries, the shared tables (STARTTLS protocols,
 * default ports, TLS groups), and a type (test_echo) and its executor registered by a test. */
#include <openssl/obj_mac.h>
#include <stdlib.h>
#include <string.h>

#include "common/pqc.h"
#include "common/source/ct_log.h"
#include "common/source/network_scan.h"
#include "common/source/source.h"
#include "tests/tools/echo_type.h"
#include "tests/unit/test.h"
#include "worker/executor.h"

/* Columns of discovery_sources a field may not be called (capctl prints both). */
static const char *const COLUMNS[] = {"id",
                                      "name",
                                      "type",
                                      "enabled",
                                      "schedule",
                                      "next_run_at",
                                      "schedule_judged",
                                      "trigger_on_save",
                                      "last_error",
                                      "created_at",
                                      "updated_at",
                                      "spec",
                                      NULL};

static void check_descriptor(const struct cap_source_type *t)
{
    CHECK(t->type && t->description && t->default_schedule && t->spec_size > 0);
    CHECK(t->nfields > 0);
    for (size_t i = 0; i < t->nfields; i++) {
        const struct cap_source_field *f = &t->fields[i];
        CHECK(f->name && f->option && f->metavar && f->help);
        CHECK(f->norm || f->norm_file);
        CHECK(f->offset + (f->kind == CAP_SOURCE_INT ? f->size : sizeof(void *)) <= t->spec_size);
        for (size_t c = 0; COLUMNS[c]; c++)
            CHECK(strcmp(f->name, COLUMNS[c]) != 0);
        for (size_t k = i + 1; k < t->nfields; k++) {
            CHECK(strcmp(f->name, t->fields[k].name) != 0);
            CHECK(strcmp(f->option, t->fields[k].option) != 0);
        }
        if (f->kind == CAP_SOURCE_INT) {
            CHECK(f->size == sizeof(int) || f->size == sizeof(int64_t));
            CHECK(f->min <= f->max);
            CHECK(f->nullable || (f->def >= f->min && f->def <= f->max));
        }
        if (f->kind == CAP_SOURCE_TEXT && !f->nullable)
            CHECK(f->def_text != NULL);
        if (cap_source_kind_is_list(f->kind))
            CHECK(f->count_offset + sizeof(size_t) <= t->spec_size && !f->nullable);
        if (f->kind == CAP_SOURCE_PORT_MAP)
            CHECK(f->choices != NULL);
    }
    for (size_t i = 0; t->needs_one_of && t->needs_one_of[i]; i++) {
        const struct cap_source_field *f = cap_source_field_find(t, t->needs_one_of[i]);
        CHECK(f && cap_source_kind_is_list(f->kind));
        CHECK(t->needs_constraint != NULL);
    }
}

static void test_descriptors(void)
{
    CHECK(cap_source_type_at(0) == &cap_network_scan_type);
    CHECK(cap_source_type_at(1) == &cap_ct_log_type);
    CHECK(cap_source_type_find("ct_log") == &cap_ct_log_type);
    CHECK(cap_source_type_find("smtp") == NULL);
    CHECK(cap_source_type_find(NULL) == NULL);
    const struct cap_source_type *t;
    for (size_t i = 0; (t = cap_source_type_at(i)) != NULL; i++)
        check_descriptor(t);
    check_descriptor(&echo_type);
    /* capctl takes the union of the types' options and checks a value before it knows the
     * type: one option has one kind and one normaliser in every type that has it. */
    const struct cap_source_type *a, *b;
    for (size_t i = 0; (a = cap_source_type_at(i)) != NULL; i++)
        for (size_t k = 0; (b = cap_source_type_at(k)) != NULL; k++)
            for (size_t x = 0; x < a->nfields; x++)
                for (size_t y = 0; y < b->nfields; y++)
                    if (strcmp(a->fields[x].option, b->fields[y].option) == 0)
                        CHECK(a->fields[x].kind == b->fields[y].kind &&
                              a->fields[x].norm == b->fields[y].norm &&
                              a->fields[x].norm_file == b->fields[y].norm_file &&
                              a->fields[x].whole == b->fields[y].whole);
}

static void test_parse(void)
{
    struct cap_err err = {0};
    void *p = NULL;
    CHECK_EQ(0, cap_source_spec_parse(&cap_network_scan_type, "{}", &p, &err));
    struct cap_network_scan_spec *n = p;
    CHECK_EQ(0, n->cidrs_n);
    CHECK(n->cidrs != NULL && n->cidrs[0] == NULL);
    CHECK_EQ(0, n->ports_n);
    CHECK_EQ(5000, n->timeout_ms);
    CHECK_EQ(8, n->concurrency);
    CHECK_EQ(0, n->connect_rate);
    cap_source_spec_free(&cap_network_scan_type, p);

    CHECK_EQ(0, cap_source_spec_parse(&cap_network_scan_type,
                                      "{\"cidrs\": [\"10.0.0.0/8\", \"::1/128\"], \"hosts\": "
                                      "[\"a.example\"], \"ports\": [443, 25], \"starttls\": "
                                      "[\"25:none\"], \"timeout_ms\": 2000, \"concurrency\": 16, "
                                      "\"connect_rate\": null, \"from_a_newer_schema\": 1}",
                                      &p, &err));
    n = p;
    CHECK_EQ(2, n->cidrs_n);
    CHECK_STR("::1/128", n->cidrs[1]);
    CHECK(n->cidrs[2] == NULL);
    CHECK_STR("a.example", n->hosts[0]);
    CHECK_EQ(2, n->ports_n);
    CHECK_EQ(25, n->ports[1]);
    CHECK_STR("25:none", n->starttls[0]);
    CHECK_EQ(2000, n->timeout_ms);
    CHECK_EQ(16, n->concurrency);
    CHECK_EQ(0, n->connect_rate);
    cap_source_spec_free(&cap_network_scan_type, p);

    CHECK_EQ(0, cap_source_spec_parse(&cap_ct_log_type,
                                      "{\"domains\": [\"example.com\"], \"log_key\": null, "
                                      "\"backfill_from\": 9000000000}",
                                      &p, &err));
    struct cap_ct_log_spec *c = p;
    CHECK_STR("example.com", c->domains[0]);
    CHECK_STR("auto", c->log_protocol);
    CHECK(c->log_key == NULL);
    CHECK_EQ(9000000000LL, c->backfill_from);
    cap_source_spec_free(&cap_ct_log_type, p);
    CHECK_EQ(0, cap_source_spec_parse(&cap_ct_log_type, "{\"backfill_from\": null}", &p, &err));
    CHECK_EQ(-1, ((struct cap_ct_log_spec *)p)->backfill_from);
    cap_source_spec_free(&cap_ct_log_type, p);

    static const struct {
        const struct cap_source_type *t;
        const char *spec, *msg;
    } bad[] = {
        {&cap_network_scan_type, "[]", "network_scan spec: not a JSON object"},
        {&cap_network_scan_type, "{} x", "network_scan spec: not a JSON object"},
        {&cap_network_scan_type, "{\"timeout_ms\": 50}",
         "spec field \"timeout_ms\": expected an integer 100-600000"},
        {&cap_network_scan_type, "{\"timeout_ms\": \"5s\"}",
         "spec field \"timeout_ms\": expected an integer 100-600000"},
        {&cap_network_scan_type, "{\"concurrency\": null}",
         "spec field \"concurrency\": expected an integer 1-100000"},
        {&cap_network_scan_type, "{\"cidrs\": \"10.0.0.0/8\"}",
         "spec field \"cidrs\": expected a list"},
        {&cap_network_scan_type, "{\"hosts\": null}",
         "spec field \"hosts\": expected a list, got null"},
        {&cap_network_scan_type, "{\"hosts\": [\"a\", 7]}",
         "spec field \"hosts\": entry 2 is not a string"},
        {&cap_network_scan_type, "{\"ports\": [443, 70000]}",
         "spec field \"ports\": entry 2 is not a port 1-65535"},
        {&cap_ct_log_type, "{\"log_protocol\": \"grpc\"}",
         "spec field \"log_protocol\": \"grpc\" is not auto, rfc6962 or static-ct"},
        {&cap_ct_log_type, "{\"log_key\": 5}", "spec field \"log_key\": expected a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cap_err e = {0};
        p = (void *)&e;
        CHECK_EQ(-1, cap_source_spec_parse(bad[i].t, bad[i].spec, &p, &e));
        CHECK_STR(bad[i].msg, e.msg);
        CHECK(p == (void *)&e); /* untouched */
    }
}

/* The schema as the database's discovery_source_types row holds it (migration 009); the end
 * to end test compares the rows with what the descriptors say. */
static void test_schema(void)
{
    json_object *s = cap_source_type_schema(&cap_network_scan_type);
    CHECK_STR("{\"type\":\"network_scan\",\"fields\":{"
              "\"cidrs\":{\"kind\":\"cidrs\",\"default\":[]},"
              "\"hosts\":{\"kind\":\"texts\",\"default\":[]},"
              "\"ports\":{\"kind\":\"ports\",\"default\":[]},"
              "\"starttls\":{\"kind\":\"port_map\",\"default\":[],\"choices\":"
              "[\"smtp\",\"imap\",\"pop3\",\"ldap\",\"postgres\",\"none\"]},"
              "\"timeout_ms\":{\"kind\":\"int\",\"default\":5000,\"min\":100,\"max\":600000},"
              "\"concurrency\":{\"kind\":\"int\",\"default\":8,\"min\":1,\"max\":100000},"
              "\"connect_rate\":{\"kind\":\"int\",\"default\":null,\"min\":1,\"max\":1000000}},"
              "\"needs_one_of\":[\"cidrs\",\"hosts\"],"
              "\"needs_constraint\":\"network_scan_has_targets\"}",
              json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN));
    json_object_put(s);
    s = cap_source_spec_defaults(&cap_ct_log_type);
    CHECK_STR("{\"domains\":[],\"log_urls\":[],\"log_protocol\":\"auto\",\"log_key\":null,"
              "\"expected_issuers\":[],\"backfill_from\":null}",
              json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN));
    json_object_put(s);
}

static void test_check(void)
{
    struct cap_err err = {0};
    json_object *s = cap_source_spec_defaults(&cap_network_scan_type);
    CHECK_EQ(-1, cap_source_check(&cap_network_scan_type, "lab", s, &err));
    CHECK_STR("source \"lab\": a network_scan source needs at least one --cidr or --host", err.msg);
    json_object *hosts = json_object_new_array();
    json_object_array_add(hosts, json_object_new_string("a.example"));
    json_object_object_add(s, "hosts", hosts);
    cap_err_clear(&err);
    CHECK_EQ(0, cap_source_check(&cap_network_scan_type, "lab", s, &err));
    json_object *st = json_object_new_array();
    for (int i = 1; i <= CAP_STARTTLS_OVERRIDES_MAX + 1; i++) {
        char b[16];
        snprintf(b, sizeof b, "%d:smtp", i);
        json_object_array_add(st, json_object_new_string(b));
    }
    json_object_object_add(s, "starttls", st);
    CHECK_EQ(-1, cap_source_check(&cap_network_scan_type, "lab", s, &err));
    CHECK_STR("source \"lab\": at most 64 --starttls entries, not 65", err.msg);
    json_object_put(s);

    s = cap_source_spec_defaults(&cap_ct_log_type);
    cap_err_clear(&err);
    CHECK_EQ(-1, cap_source_check(&cap_ct_log_type, "ct", s, &err));
    CHECK_STR("source \"ct\": a ct_log source needs at least one --domain", err.msg);
    json_object_put(s);
}

static void test_summary(void)
{
    void *p = NULL;
    struct cap_err err = {0};
    char out[64];
    CHECK_EQ(0, cap_source_spec_parse(&cap_network_scan_type,
                                      "{\"cidrs\": [\"127.0.0.0/30\", \"169.0.0.0/8\"], "
                                      "\"hosts\": [\"web.example\"]}",
                                      &p, &err));
    cap_network_scan_type.summary(p, out, sizeof out);
    CHECK_STR("127.0.0.0/30,169.0.0.0/8 web.example ports 443,8443", out);
    cap_source_spec_free(&cap_network_scan_type, p);
    CHECK_EQ(0, cap_source_spec_parse(&cap_network_scan_type,
                                      "{\"hosts\": [\"a.example\"], \"ports\": [25]}", &p, &err));
    cap_network_scan_type.summary(p, out, sizeof out);
    CHECK_STR("a.example ports 25", out);
    char small[16];
    cap_network_scan_type.summary(p, small, sizeof small);
    CHECK_STR("a.example po...", small);
    cap_source_spec_free(&cap_network_scan_type, p);
    CHECK_EQ(0,
             cap_source_spec_parse(&cap_ct_log_type,
                                   "{\"domains\": [\"example.com\", \"example.org\"]}", &p, &err));
    cap_ct_log_type.summary(p, out, sizeof out);
    CHECK_STR("example.com,example.org", out);
    cap_source_spec_free(&cap_ct_log_type, p);
}

static void test_norm(void)
{
    const struct cap_source_field *f = cap_source_field_find(&cap_ct_log_type, "log_protocol");
    char out[CAP_SOURCE_VALUE_MAX];
    struct cap_err err = {0};
    CHECK_EQ(0, f->norm(f, "--log-protocol", "static-ct", out, sizeof out, &err));
    CHECK_STR("static-ct", out);
    CHECK_EQ(-1, f->norm(f, "--log-protocol", "grpc", out, sizeof out, &err));
    CHECK_STR("--log-protocol \"grpc\": must be auto, rfc6962 or static-ct", err.msg);
    f = cap_source_field_find(&cap_ct_log_type, "backfill_from");
    cap_err_clear(&err);
    CHECK_EQ(-1, f->norm(f, "--backfill-from", "-5", out, sizeof out, &err));
    CHECK_STR("--backfill-from \"-5\": must be an integer 0-9223372036854775807", err.msg);
    f = cap_source_field_find(&cap_network_scan_type, "ports");
    CHECK_EQ(0, f->norm(f, "--port", "08443", out, sizeof out, &err));
    CHECK_STR("8443", out);
}

/* The tables that once had copies in the scanner, capctl and the database. */
static void test_tables(void)
{
    int port = 0;
    enum cap_starttls_proto proto = CAP_STARTTLS_NONE;
    for (size_t i = 0; cap_starttls_protocols[i].name; i++) {
        char spec[32];
        snprintf(spec, sizeof spec, "25:%s", cap_starttls_protocols[i].name);
        CHECK_EQ(0, cap_starttls_parse_override(spec, &port, &proto));
        CHECK_EQ(cap_starttls_protocols[i].value, proto);
        CHECK_STR(cap_starttls_protocols[i].name, cap_starttls_name(proto));
    }
    CHECK_EQ(-1, cap_starttls_parse_override("25:SMTP", &port, &proto));
    CHECK_EQ(CAP_STARTTLS_POSTGRES, cap_starttls_for_port(5432));
    CHECK_EQ(CAP_STARTTLS_NONE, cap_starttls_for_port(443));
    static const int defaults[] = CAP_SCAN_DEFAULT_PORTS;
    CHECK_EQ(2, sizeof defaults / sizeof defaults[0]);
    CHECK_EQ(443, defaults[0]);

    CHECK_EQ(0x001d, cap_pqc_group_by_nid(NID_X25519));
    CHECK_EQ(0x0013, cap_pqc_group_by_nid(NID_X9_62_prime192v1));
    CHECK_EQ(0x0104, cap_pqc_group_by_nid(NID_ffdhe8192));
    CHECK_EQ(0, cap_pqc_group_by_nid(0));
    CHECK_EQ(0x11ec, cap_pqc_group_by_name("X25519MLKEM768"));
    CHECK_EQ(0x0201, cap_pqc_group_by_name("MLKEM768"));
    CHECK_EQ(0x6399, cap_pqc_group_by_name("X25519Kyber768Draft00"));
    CHECK_EQ(0, cap_pqc_group_by_name("nope"));
    CHECK_EQ(0, cap_pqc_group_by_name(NULL));
    /* Every code point found by NID or name carries that name back. */
    CHECK_STR("x25519", cap_pqc_group_name(cap_pqc_group_by_nid(NID_X25519)));
    CHECK_STR("SecP256r1MLKEM768", cap_pqc_group_name(cap_pqc_group_by_name("SecP256r1MLKEM768")));
}

/* A type the test registers is found, parsed and checked like the built-in ones. */
static void test_registered(void)
{
    struct cap_err err = {0};
    CHECK(cap_source_type_find("test_echo") == NULL);
    CHECK_EQ(0, cap_source_type_register(&echo_type, &err));
    CHECK(cap_source_type_find("test_echo") == &echo_type);
    CHECK(cap_source_type_at(2) == &echo_type);
    CHECK(cap_source_type_at(3) == NULL);
    CHECK_EQ(-1, cap_source_type_register(&echo_type, &err));
    CHECK_STR("source type \"test_echo\" is registered already", err.msg);
    CHECK_EQ(-1, cap_source_type_register(&cap_ct_log_type, &err));

    void *p = NULL;
    cap_err_clear(&err);
    CHECK_EQ(0, cap_source_spec_parse(&echo_type,
                                      "{\"words\": [\"hello\", \"there\"], "
                                      "\"tone\": \"loud\"}",
                                      &p, &err));
    struct echo_spec *e = p;
    CHECK_EQ(2, e->words_n);
    CHECK_EQ(1, e->times);
    CHECK_STR("loud", e->tone);
    CHECK(e->note == NULL);
    char out[64];
    echo_type.summary(p, out, sizeof out);
    CHECK_STR("hello there", out);
    cap_source_spec_free(&echo_type, p);
    json_object *d = cap_source_spec_defaults(&echo_type);
    CHECK_EQ(-1, cap_source_check(&echo_type, "e", d, &err));
    CHECK_STR("source \"e\": a test_echo source needs at least one --word", err.msg);
    json_object_put(d);
}

static int echo_execute(struct cap_run_ctx *ctx, struct cap_run_outcome *out, struct cap_err *err)
{
    (void)ctx;
    (void)err;
    out->status = CAP_RUN_SUCCEEDED;
    return 0;
}

/* The worker's registry: the built-in executors, and one a program registers. */
static void test_executors(void)
{
    static const struct cap_executor echo = {.type = "test_echo", .execute = echo_execute};
    struct cap_config cfg = {0};
    struct cap_err err = {0};
    CHECK_STR("network_scan", cap_executor_find(&cfg, "network_scan")->type);
    CHECK_STR("ct_log", cap_executor_find(&cfg, "ct_log")->type);
    CHECK(cap_executor_find(&cfg, "test_echo") == NULL);
    CHECK(cap_executor_find(&cfg, NULL) == NULL);
    CHECK_EQ(0, cap_executor_register(&echo, &err));
    CHECK(cap_executor_find(&cfg, "test_echo") == &echo);
    CHECK_EQ(-1, cap_executor_register(&echo, &err));
    CHECK_STR("source type \"test_echo\" has an executor already", err.msg);
    cfg.worker_noop_executor = true;
    CHECK_STR("noop", cap_executor_find(&cfg, "test_echo")->type);
}

int main(void)
{
    test_descriptors();
    test_parse();
    test_schema();
    test_check();
    test_summary();
    test_norm();
    test_tables();
    test_registered();
    test_executors();
    TEST_DONE();
}
