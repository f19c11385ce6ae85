/* Fuzz target: CIDR text parsing, the save-time check and address checks on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/policy.h"
#include "common/targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[128];
    size_t n = size < sizeof buf - 1 ? size : sizeof buf - 1;
    memcpy(buf, data, n);
    buf[n] = '\0';
    struct cap_cidr c;
    struct cap_err e;
    cap_err_clear(&e);
    if (cap_policy_parse_cidr(buf, &c, &e) == 0) {
        char t[CAP_CIDR_TEXT_MAX];
        cap_policy_cidr_str(&c, t, sizeof t);
        struct cap_cidr back;
        if (cap_policy_parse_cidr(t, &back, &e) != 0 || back.family != c.family ||
            back.prefix != c.prefix || memcmp(back.addr, c.addr, sizeof c.addr) != 0)
            abort(); /* printing then parsing must give the same block */
        (void)cap_targets_cidr_size(&c);
    }
    char why[CAP_POLICY_REASON_MAX];
    (void)cap_policy_cidr_wholly_refused(buf, why, sizeof why);
    (void)cap_targets_valid_hostname(buf);
    if (size >= 16) {
        (void)cap_policy_check_bytes(NULL, AF_INET6, data, why, sizeof why);
        (void)cap_policy_check_bytes(NULL, AF_INET, data, why, sizeof why);
    }
    return 0;
}
