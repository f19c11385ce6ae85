/* DNS server entries: "IP", "IPv4:PORT" or "[IPv6]:PORT" parsed into an address and a port,
 * and written back canonically. The config loader and the resolver share this one reading. */
#include "common/dnsaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FORMS "expected IP, IP:PORT or [IPv6]:PORT"

static int server_fail(const char *s, const char *why, struct cap_err *err)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    cap_err_set(err, CAP_E_INVALID, "dns server \"%s\": %s",
                cap_err_quote(q, sizeof q, s, strlen(s)), why);
    return -1;
}

/* Why host (the address part of s) is not an address of family. */
static const char *address_why(const char *host, int family)
{
    uint8_t v4[4];
    if (family == AF_INET6 && strchr(host, '%'))
        return "not an IPv6 address (no zone index such as \"%eth0\")";
    if (family == AF_INET6 && inet_pton(AF_INET, host, v4) == 1)
        return "an IPv4 address in brackets (brackets are for IPv6 only)";
    if (family == AF_INET6)
        return "not an IPv6 address (no host names, no zone index)";
    return "not an IP address (a server is given by address, not by name)";
}

/* The port after the colon: 1 to 5 digits, 1..65535; -1 otherwise. */
static long parse_port(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5 || strspn(p, "0123456789") != n)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno || !end || *end || v < 1 || v > 65535)
        return -1;
    return v;
}

int cap_dns_server_parse(const char *s, struct cap_dns_server *out, struct cap_err *err)
{
    if (!s) {
        cap_err_set(err, CAP_E_INVALID, "dns server: no value given");
        return -1;
    }
    size_t len = strlen(s);
    if (len == 0)
        return server_fail(s, "empty; " FORMS, err);
    if (len > CAP_DNS_SERVER_LEN_MAX)
        return server_fail(s, "longer than 64 bytes; " FORMS, err);
    char host[CAP_DNS_SERVER_LEN_MAX + 1];
    const char *port_s = NULL;
    int family;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return server_fail(s, "missing \"]\" after the IPv6 address", err);
        /* Brackets only serve to set a port apart: "[IPv6]" alone is refused. */
        if (close[1] != ':')
            return server_fail(s, "expected \":PORT\" after \"]\"", err);
        size_t hl = (size_t)(close - (s + 1));
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        port_s = close + 2;
        family = AF_INET6;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':')) {
            /* Two colons or more: a bare IPv6 address (a port needs the brackets). */
            memcpy(host, s, len + 1);
            family = AF_INET6;
        } else if (colon) {
            memcpy(host, s, (size_t)(colon - s));
            host[colon - s] = '\0';
            port_s = colon + 1;
            family = AF_INET;
        } else {
            memcpy(host, s, len + 1);
            family = AF_INET;
        }
    }
    struct cap_dns_server a;
    memset(&a, 0, sizeof a);
    a.family = family;
    a.port = CAP_DNS_PORT_DEFAULT;
    if (inet_pton(family, host, a.addr) != 1)
        return server_fail(s, address_why(host, family), err);
    static const uint8_t zero[16];
    if (memcmp(a.addr, zero, family == AF_INET ? 4 : 16) == 0)
        return server_fail(s, "the unspecified address is not a server", err);
    if (port_s) {
        long port = parse_port(port_s);
        if (port < 0)
            return server_fail(s, "port must be a number from 1 to 65535", err);
        a.port = (int)port;
        a.port_given = true;
    }
    *out = a;
    return 0;
}

int cap_dns_server_format(const struct cap_dns_server *s, char *out, size_t n)
{
    if (n > 0)
        out[0] = '\0';
    if (!s || (s->family != AF_INET && s->family != AF_INET6) || s->port < 1 || s->port > 65535)
        return -1;
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(s->family, s->addr, text, sizeof text))
        return -1;
    int w;
    if (!s->port_given)
        w = snprintf(out, n, "%s", text);
    else if (s->family == AF_INET6)
        w = snprintf(out, n, "[%s]:%d", text, s->port);
    else
        w = snprintf(out, n, "%s:%d", text, s->port);
    if (w < 0 || (size_t)w >= n) {
        if (n > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}
