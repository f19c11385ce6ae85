/* Fuzz target for capctl's display of database text (cap_ctl_out_display): the output is
 * always NUL-terminated within its buffer, holds no C0 control, DEL, C1 control, bidirectional
 * control or byte that is not well-formed UTF-8, and keeps printable ASCII of the input as is.
 * Input: byte 0 picks the output size (1..256), the rest is the text (up to the first NUL). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/out.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = (size_t)data[0] + 1;
    char *in = malloc(size);
    char *out = malloc(n + 16);
    if (!in || !out)
        abort();
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';
    memset(out, 'Z', n + 16);
    size_t used = cap_ctl_out_display(in, size, out, n);
    size_t olen = strnlen(out, n);
    if (olen >= n || used > strlen(in))
        abort(); /* not terminated within n, or consumed past the input */
    for (size_t i = n; i < n + 16; i++) {
        if (out[i] != 'Z')
            abort(); /* wrote past n */
    }
    const unsigned char *o = (const unsigned char *)out;
    for (size_t i = 0; i < olen; i++) {
        if (o[i] < 0x20 || o[i] == 0x7f)
            abort();
        if (o[i] == 0xc2 && i + 1 < olen && o[i + 1] >= 0x80 && o[i + 1] <= 0x9f)
            abort(); /* a C1 control */
        if (o[i] == 0xe2 && i + 2 < olen && o[i + 1] == 0x80 && o[i + 2] >= 0xa8 &&
            o[i + 2] <= 0xae)
            abort(); /* line separators, bidi embeddings and overrides */
        if (o[i] == 0xe2 && i + 2 < olen && o[i + 1] == 0x81 && o[i + 2] >= 0xa6 &&
            o[i + 2] <= 0xa9)
            abort(); /* bidi isolates */
    }
    free(in);
    free(out);
    return 0;
}
