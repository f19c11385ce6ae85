/* Fuzz target: the STARTTLS dialogues fed arbitrary server bytes. The first byte picks the
 * protocol and the chunking; the dialogue must end in MORE, SEND, DONE or FAIL, never crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/scan/starttls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum cap_starttls_proto proto = (enum cap_starttls_proto)(1 + data[0] % 5);
    size_t chunk = 1 + (data[0] >> 3);
    data++;
    size--;
    struct cap_starttls st;
    const uint8_t *out = NULL;
    size_t ol = 0;
    char err[200];
    cap_starttls_begin(&st, proto, &out, &ol);
    while (size > 0) {
        size_t n = size < chunk ? size : chunk;
        enum cap_starttls_status s = cap_starttls_input(&st, data, n, &out, &ol, err, sizeof err);
        if (s == CAP_STARTTLS_FAIL || s == CAP_STARTTLS_DONE)
            break;
        if (s == CAP_STARTTLS_SEND && (ol == 0 || !out))
            abort();
        data += n;
        size -= n;
    }
    return 0;
}
