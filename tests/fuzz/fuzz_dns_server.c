/* Fuzz target for DNS server entries ("IP", "IPv4:PORT", "[IPv6]:PORT", from the worker's
 * configuration), common/dnsaddr.c. A refusal names the value and leaves no unescaped byte in
 * the message; an accepted entry is short, made of address characters only, agrees with an
 * independent reading, and its canonical text parses back to the same server (and formats to
 * the same text). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/dnsaddr.h"

/* Reads the port after a colon: 1 to 5 digits, 1..65535; -1 otherwise. */
static long port_of(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5 || strspn(p, "0123456789") != n)
        return -1;
    long v = strtol(p, NULL, 10);
    return v >= 1 && v <= 65535 ? v : -1;
}

static int same(const struct cap_dns_server *a, const struct cap_dns_server *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0 &&
           a->port == b->port && a->port_given == b->port_given;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char s[257];
    memcpy(s, data, size);
    s[size] = '\0';
    struct cap_dns_server d;
    struct cap_err err = {0};
    int rc = cap_dns_server_parse(s, &d, &err);
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
    if (len == 0 || len > CAP_DNS_SERVER_LEN_MAX || strspn(s, "0123456789abcdefABCDEF.:[]") != len)
        abort();

    /* An independent reading of the accepted entry. */
    char host[CAP_DNS_SERVER_LEN_MAX + 1];
    long port = 53;
    int family;
    uint8_t addr[16];
    if (s[0] == '[') {
        /* Brackets always come with a port. */
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (port = port_of(close + 2)) < 0)
            abort();
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
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
    bool port_given = s[0] == '[' || (family == AF_INET && strchr(s, ':'));
    if (d.family != family || memcmp(d.addr, addr, family == AF_INET ? 4 : 16) != 0 ||
        d.port != port || d.port_given != port_given)
        abort();

    /* Round trip: parse(format(parse(x))) equals parse(x), and the text is a fixed point. */
    char canon[CAP_DNS_SERVER_LEN_MAX + 1];
    if (cap_dns_server_format(&d, canon, sizeof canon) != 0)
        abort();
    size_t cl = strlen(canon);
    char exact[CAP_DNS_SERVER_LEN_MAX + 1];
    if (cap_dns_server_format(&d, exact, cl) != -1 || exact[0] != '\0' ||
        cap_dns_server_format(&d, exact, cl + 1) != 0 || strcmp(exact, canon) != 0)
        abort();
    struct cap_dns_server again;
    if (cap_dns_server_parse(canon, &again, &err) != 0 || !same(&d, &again))
        abort();
    char canon2[CAP_DNS_SERVER_LEN_MAX + 1];
    if (cap_dns_server_format(&again, canon2, sizeof canon2) != 0 || strcmp(canon, canon2) != 0)
        abort();
    return 0;
}
