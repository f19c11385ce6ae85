/* Fuzz target for the job message codec: decoding must never crash, and whatever decodes must
 * encode and decode back to the same job. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Zeroed, padding included: the round trip is compared with memcmp. */
    struct cap_job job;
    memset(&job, 0, sizeof job);
    struct cap_err err = {0};
    if (cap_job_decode(data, size, &job, &err) != 0) {
        if (err.code == 0 || err.msg[0] == '\0')
            abort();
        return 0;
    }
    uint8_t buf[CAP_JOB_MAX_BYTES];
    struct cap_err err2 = {0};
    int n = cap_job_encode(&job, buf, sizeof buf, &err2);
    if (n < 0)
        abort();
    struct cap_job back;
    memset(&back, 0, sizeof back);
    if (cap_job_decode(buf, (size_t)n, &back, &err2) != 0 || memcmp(&job, &back, sizeof job))
        abort();
    return 0;
}
