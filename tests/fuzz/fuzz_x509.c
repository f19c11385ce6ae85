/* Fuzz target for certificate facts: any bytes, as a DER certificate and as a bare CT
 * TBSCertificate, must parse or fail cleanly; the name helpers run over whatever came out. */
#include <stddef.h>
#include <stdint.h>

#include "common/pqc.h"
#include "common/x509.h"

static void exercise(struct cap_cert_facts *f)
{
    (void)cap_pqc_class_cert(f);
    (void)cap_x509_weak_key(f);
    (void)cap_x509_weak_signature(f);
    const char *dups[4];
    (void)cap_x509_san_case_duplicates(f, dups, 4);
    for (size_t i = 0; i < f->dns_sans_n && i < 8; i++) {
        (void)cap_x509_name_matches(f->dns_sans[i], f->cn);
        (void)cap_x509_host_matches(f, f->dns_sans[i]);
    }
    for (size_t i = 0; i < f->ip_sans_n && i < 8; i++) {
        (void)cap_x509_host_matches(f, f->ip_sans[i]);
    }
    cap_cert_facts_cleanup(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cap_cert_facts f;
    if (cap_x509_facts_from_der(data, size, &f, NULL) == 0) {
        exercise(&f);
    }
    if (cap_x509_facts_from_tbs(data, size, &f, NULL) == 0) {
        exercise(&f);
    }
    return 0;
}
