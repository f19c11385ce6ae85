/* capctl with the test-only source type test_echo registered (tests/tools/echo_type.h): the
 * same cap_ctl_main, one more descriptor. `echo_capctl --schema` prints the schema of every
 * type it knows as a JSON array (what discovery_source_types holds), for the tests to compare
 * with the database and to register test_echo there. */
#include <stdio.h>
#include <string.h>

#include "common/ossl.h"
#include "ctl/ctl.h"
#include "tests/tools/echo_type.h"

static int print_schemas(void)
{
    json_object *all = json_object_new_array();
    const struct cap_source_type *t;
    for (size_t i = 0; all && (t = cap_source_type_at(i)) != NULL; i++)
        json_object_array_add(all, cap_source_type_schema(t));
    if (!all)
        return 1;
    printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN));
    json_object_put(all);
    return 0;
}

int main(int argc, char **argv)
{
    struct cap_err err = {0};
    if (cap_source_type_register(&echo_type, &err) < 0) {
        fprintf(stderr, "echo_capctl: %s\n", err.msg);
        return 1;
    }
    if (argc == 2 && strcmp(argv[1], "--schema") == 0)
        return print_schemas();
    (void)cap_ossl_init();
    return cap_ctl_main(argc, argv);
}
