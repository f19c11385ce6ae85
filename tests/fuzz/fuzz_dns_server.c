/* Fuzz target for DNS server entries ("IP", "IPv4:PORT", "[IPv6]:PORT", from the worker's
 * configuration). A refusal names the value and leaves no unescaped byte in the message; an
 * accepted entry is short, made of address characters only, and its canonical spelling
 * ("[inet_ntop]:port") is accepted too. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "worker/scan/resolve.h"

/* Reads the port after a colon: 1 to 5 digits, 1..65535; -1 otherwise. */
static long port_of(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5 || strspn(p, "0123456789") != n)
        return -1;
    long v = strtol(p, NULL, 10);
    return v >= 1 && v <= 65535 ? v : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char s[257];
    memcpy(s, data, size);
    s[size] = '\0';
    struct cap_err err = {0};
    int rc = cap_resolve_check_server(s, &err);
    if (rc != 0) {
        if (rc != -1 || err.code != CAP_E_INVALID || strncmp(err.msg, "dns server \"", 12) != 0)
            abort();
        for (const char *m = err.msg; *m; m++) {
            if ((unsigned char)*m < 0x20 || (unsigned char)*m >= 0x7f)
                abort();
        }
        return 0;
    }
    if (err.code != 0)
        abort();
    size_t len = strlen(s);
    if (len == 0 || len > CAP_RESOLVE_SERVER_LEN_MAX ||
        strspn(s, "0123456789abcdefABCDEF.:[]") != len)
        abort();

    /* An independent reading of the accepted entry. */
    char host[CAP_RESOLVE_SERVER_LEN_MAX + 1];
    long port = 53;
    int family;
    uint8_t addr[16];
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            abort();
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        if (close[1] && (close[1] != ':' || (port = port_of(close + 2)) < 0))
            abort();
        family = AF_INET6;
    } else if (strchr(s, ':') && strchr(s, ':') != strrchr(s, ':')) {
        memcpy(host, s, len + 1);
        family = AF_INET6;
    } else {
        const char *colon = strchr(s, ':');
        size_t hl = colon ? (size_t)(colon - s) : len;
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (colon && (port = port_of(colon + 1)) < 0)
            abort();
        family = AF_INET;
    }
    if (inet_pton(family, host, addr) != 1)
        abort();
    static const uint8_t zero[16];
    if (memcmp(addr, zero, family == AF_INET ? 4 : 16) == 0)
        abort();

    char text[INET6_ADDRSTRLEN], canon[CAP_RESOLVE_SERVER_LEN_MAX + 1];
    if (!inet_ntop(family, addr, text, sizeof text))
        abort();
    int w = family == AF_INET ? snprintf(canon, sizeof canon, "%s:%ld", text, port)
                              : snprintf(canon, sizeof canon, "[%s]:%ld", text, port);
    if (w < 0 || (size_t)w >= sizeof canon)
        abort();
    if (cap_resolve_check_server(canon, &err) != 0)
        abort();
    return 0;
}
