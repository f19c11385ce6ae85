/* Fuzz target: a get-entries response body, then every leaf and extra_data in it, then the
 * names of each certificate matched against a suffix set. */
#include <stdint.h>
#include <stdlib.h>

#include "worker/ct/ct_match.h"
#include "worker/ct/ct_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const sfx[] = {"example.com", "xn--bcher-kva.example"};
    struct cap_err err = {0};
    struct cap_ct_suffixes *s = cap_ct_suffixes_new(sfx, 2, &err);
    struct cap_ct_entries e;
    if (s && cap_ct_entries_parse((const char *)data, size, 1000, &e, &err) == 0) {
        for (size_t i = 0; i < e.n; i++) {
            struct cap_ct_leaf leaf;
            struct cap_err le = {0};
            if (cap_ct_leaf_parse(e.v[i].leaf, e.v[i].leaf_len, &leaf, &le) < 0)
                continue;
            cap_ct_match_cert(s, leaf.cert, leaf.cert_len, leaf.entry_type == 1, &le);
            const uint8_t *pre;
            size_t pl;
            if (leaf.entry_type == 1)
                cap_ct_extra_precert(e.v[i].extra, e.v[i].extra_len, &pre, &pl, NULL, NULL, &le);
            else
                cap_ct_extra_x509(e.v[i].extra, e.v[i].extra_len, &le);
        }
        cap_ct_entries_free(&e);
    }
    cap_ct_suffixes_free(s);
    return 0;
}
