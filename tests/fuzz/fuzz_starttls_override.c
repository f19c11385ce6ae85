/* Fuzz target for the per-source STARTTLS override ("PORT:PROTOCOL", from the sources table
 * and capctl). Failures must leave the outputs untouched; a success gives a port 1-65535 and a
 * known protocol, and the canonical spelling ("25:smtp") parses back to the same pair. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/scan/starttls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char spec[257];
    memcpy(spec, data, size);
    spec[size] = '\0';
    int port = -7;
    enum cap_starttls_proto proto = (enum cap_starttls_proto) - 7;
    if (cap_starttls_parse_override(spec, &port, &proto) != 0) {
        if (port != -7 || proto != (enum cap_starttls_proto) - 7)
            abort();
        return 0;
    }
    if (port < 1 || port > 65535)
        abort();
    const char *name = cap_starttls_name(proto);
    if (!name || !*name)
        abort();
    char canon[64];
    snprintf(canon, sizeof canon, "%d:%s", port, name);
    int port2 = 0;
    enum cap_starttls_proto proto2;
    if (cap_starttls_parse_override(canon, &port2, &proto2) != 0 || port2 != port ||
        proto2 != proto)
        abort();
    /* The input differs from the canonical form at most by leading zeros in the port. */
    const char *p = spec;
    while (*p == '0' && p[1] != ':')
        p++;
    if (strcmp(p, canon) != 0)
        abort();
    return 0;
}
