/* Fuzz target: a static-ct data tile, read entry by entry as the monitor reads it, with each
 * entry's names matched. */
#include <stdint.h>
#include <stdlib.h>

#include "worker/ct/ct_match.h"
#include "worker/ct/ct_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const sfx[] = {"example.com"};
    struct cap_err err = {0};
    struct cap_ct_suffixes *s = cap_ct_suffixes_new(sfx, 1, &err);
    struct cap_ct_cur c;
    cap_ct_cur_init(&c, data, size);
    for (int i = 0; i < 256 && c.left > 0; i++) {
        struct cap_ct_tile_leaf t;
        if (cap_ct_tile_leaf_next(&c, &t, &err) < 0)
            break;
        uint8_t h[32];
        cap_ct_tile_leaf_hash(&t, h);
        struct cap_err me = {0};
        if (s)
            cap_ct_match_cert(s, t.leaf.cert, t.leaf.cert_len, t.leaf.entry_type == 1, &me);
    }
    cap_ct_suffixes_free(s);
    return 0;
}
