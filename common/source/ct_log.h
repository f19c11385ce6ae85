/* The ct_log source type: its descriptor and the typed spec the CT monitor reads. */
#ifndef CAP_SOURCE_CT_LOG_H
#define CAP_SOURCE_CT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/source/source.h"

/* Longest expected-issuer substring. */
#define CAP_CT_ISSUER_MAX 256

/* The protocols a log may speak; "auto" probes. */
enum cap_ct_log_protocol {
    CAP_CT_PROTOCOL_AUTO = 0,
    CAP_CT_PROTOCOL_RFC6962,
    CAP_CT_PROTOCOL_STATIC_CT,
};

/* The protocol names (name, enum), ending with a NULL name. */
extern const struct cap_source_choice cap_ct_log_protocols[];

/* A ct_log source's spec, parsed (cap_source_spec_parse). Lists are NULL-terminated. */
struct cap_ct_log_spec {
    char **domains; /* suffixes; each matches the apex and every subdomain */
    size_t domains_n;
    char **log_urls; /* empty: the configuration's curated list */
    size_t log_urls_n;
    char *log_protocol; /* auto | rfc6962 | static-ct, for log_urls */
    char *log_key;      /* PEM public key of a private log, or NULL */
    char **expected_issuers;
    size_t expected_issuers_n;
    int64_t backfill_from; /* first index for a new checkpoint; -1 when null */
};

extern const struct cap_source_type cap_ct_log_type;

#endif
