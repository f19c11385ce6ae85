/* The compiled-in curated CT log list, used when the configuration names no logs (ct.logs and
 * ct.log_list_file unset). Values come from the browsers' published v3 log list; a deployment
 * replaces or extends the list in its configuration. */
#ifndef CAP_CT_LOGS_DEFAULT_H
#define CAP_CT_LOGS_DEFAULT_H

#include <stddef.h>
#include <stdint.h>

struct cap_ct_default_log {
    const char *description;
    const char *url;      /* RFC 6962 base URL, or the static-ct monitoring prefix */
    const char *protocol; /* "rfc6962" or "static-ct" */
    const char *origin;   /* static-ct checkpoint origin (submission prefix without scheme);
                           * NULL for RFC 6962 logs */
    const char *key_b64;  /* DER SubjectPublicKeyInfo, base64 */
    const char *log_id_b64; /* SHA-256 of the key, base64 */
    int64_t mmd_s;
};

/* The list and its length. Static storage; never freed. */
const struct cap_ct_default_log *cap_ct_logs_default(size_t *n);

#endif
