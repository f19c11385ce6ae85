/* Fuzz target for the CT log list: input is a v3 JSON log list (ct.log_list_url,
 * ct.log_list_file). Either it parses, every log keeping the list's invariants (URL form,
 * protocol, state, a refused log never chosen), or it fails with a message and leaves the output
 * untouched. The input as a timestamp goes through the RFC 3339 parser too. */
#include "common/ct_loglist.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cap_err err;
    cap_err_clear(&err);
    struct cap_ct_log *logs = (struct cap_ct_log *)&err; /* sentinel: must stay as it is */
    size_t n = 12345;
    int rc = cap_ct_loglist_parse((const char *)data, size, "fuzz.json", &logs, &n, &err);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            const struct cap_ct_log *l = &logs[i];
            if (!l->url || !l->protocol || l->mmd_s < 1 || l->url[strlen(l->url) - 1] != '/')
                abort();
            if (strncasecmp(l->url, "http://", 7) != 0 && strncasecmp(l->url, "https://", 8) != 0)
                abort();
            if (strcmp(l->protocol, "rfc6962") != 0 && strcmp(l->protocol, "static-ct") != 0)
                abort();
            if ((unsigned)l->state > CAP_CT_STATE_REJECTED || l->final_tree_size < -1)
                abort();
            if (l->interval_start && l->interval_end && l->interval_end <= l->interval_start)
                abort();
            if (l->refused && !l->refused[0])
                abort();
            if (!l->refused && (!l->key_b64 || !l->log_id_b64 || strlen(l->log_id_b64) != 44))
                abort();
            static const int64_t when[] = {0, 1767225600, 1800000000, 4102444800};
            for (size_t k = 0; k < sizeof when / sizeof when[0]; k++) {
                bool cur = cap_ct_log_current(l, when[k]);
                if (cur && (l->refused || l->test_log ||
                            (l->state != CAP_CT_STATE_USABLE &&
                             l->state != CAP_CT_STATE_QUALIFIED && l->state != CAP_CT_STATE_NONE)))
                    abort();
                if (cur && l->interval_end && l->interval_end <= when[k])
                    abort();
            }
            (void)cap_ct_log_state_name(l->state);
        }
        cap_ct_logs_free(logs, n);
    } else if (rc != -1 || !err.code || !err.msg[0] || n != 12345 ||
               logs != (struct cap_ct_log *)&err) {
        abort();
    }
    if (size < 64) {
        char s[64];
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t t = -1;
        if (cap_ct_parse_time(s, &t) == 0 && t < -86400)
            abort();
    }
    return 0;
}
