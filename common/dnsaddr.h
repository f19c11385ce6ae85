/* DNS server entries ("IP", "IPv4:PORT", "[IPv6]:PORT"): the one parser used by the config
 * loader (network.dns_servers) and the resolver, and the canonical text written back. Pure. */
#ifndef CAP_DNSADDR_H
#define CAP_DNSADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Longest entry accepted, in bytes. A canonical entry is never longer (at most 53 bytes:
 * "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535"), so a buffer of
 * CAP_DNS_SERVER_LEN_MAX + 1 bytes always holds cap_dns_server_format's text. */
#define CAP_DNS_SERVER_LEN_MAX 64
/* Port of an entry that gives none. */
#define CAP_DNS_PORT_DEFAULT 53
/* DNS servers one list may name (network.dns_servers; the resolver asks them in order). */
#define CAP_DNS_SERVERS_MAX 16

/* One DNS server. */
struct cap_dns_server {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; the first 4 bytes for AF_INET */
    int port;         /* 1..65535; CAP_DNS_PORT_DEFAULT when none given */
    bool port_given;  /* the entry named a port (kept in the canonical text) */
};

/* Parses one entry: "IP" (IPv4 or IPv6, IPv6 with two colons or more), "IPv4:PORT" or
 * "[IPv6]:PORT", at most CAP_DNS_SERVER_LEN_MAX bytes, port 1 to 65535 in at most 5 digits,
 * not the unspecified address. Refused: host names, spaces, IPv6 zone indexes, an IPv4 address
 * in brackets, brackets without a port, signs or anything after the port. Returns 0 and fills
 * *out, or -1 with err (CAP_E_INVALID) naming the value (`dns server "x": why`) and *out not
 * written. Safe on any input, s NULL included. */
int cap_dns_server_parse(const char *s, struct cap_dns_server *out, struct cap_err *err);

/* Writes the canonical text of s into out (size n): the address as inet_ntop writes it, and
 * the port only when port_given ("10.0.0.53", "10.0.0.54:5353", "[fd00::53]:53",
 * "2001:db8::35"). Parsing that text gives s back. Returns 0, or -1 when n is too small or s is
 * not a valid server (then out holds "" when n > 0). */
int cap_dns_server_format(const struct cap_dns_server *s, char *out, size_t n);

#endif
