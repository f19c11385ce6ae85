/* The network_scan source type: its descriptor, the typed spec the scan executor reads, and the
 * tables the scanner, capctl and the database share: the STARTTLS protocols, the protocol each
 * port speaks by default, and the ports scanned when a source lists none. */
#ifndef CAP_SOURCE_NETWORK_SCAN_H
#define CAP_SOURCE_NETWORK_SCAN_H

#include <stddef.h>

#include "common/err.h"
#include "common/source/source.h"

/* Ports scanned when a source lists none. */
#define CAP_SCAN_DEFAULT_PORTS                                                                     \
    {                                                                                              \
        443, 8443                                                                                  \
    }

/* Bounds of a source's timeout per host:port (ms), concurrency and connect rate (connects per
 * second). */
#define CAP_SCAN_TIMEOUT_MIN_MS 100
#define CAP_SCAN_TIMEOUT_MAX_MS 600000
#define CAP_SCAN_CONCURRENCY_MAX 100000
#define CAP_SCAN_CONNECT_RATE_MAX 1000000
/* Most STARTTLS overrides one source keeps, and room for one normalised ("65535:postgres"). */
#define CAP_STARTTLS_OVERRIDES_MAX 64
#define CAP_STARTTLS_OVERRIDE_TEXT_MAX 16

enum cap_starttls_proto {
    CAP_STARTTLS_NONE = 0, /* implicit TLS */
    CAP_STARTTLS_SMTP,
    CAP_STARTTLS_IMAP,
    CAP_STARTTLS_POP3,
    CAP_STARTTLS_LDAP,
    CAP_STARTTLS_POSTGRES,
};

/* The STARTTLS protocols a port can be told to speak (name, enum), in the order messages list
 * them; "none" is implicit TLS. Ends with a NULL name. The one list: the scanner's parser,
 * capctl and the database's schema (through the descriptor) all read it. */
extern const struct cap_source_choice cap_starttls_protocols[];

/* The protocol used by default on port: 25 and 587 SMTP, 143 IMAP, 110 POP3, 389 LDAP, 5432
 * PostgreSQL; any other port (465, 993, 995, 636 included) is implicit TLS. */
enum cap_starttls_proto cap_starttls_for_port(int port);

/* Parses a stored override "PORT:PROTOCOL" (protocol spelt as in cap_starttls_protocols).
 * Returns 0 with *port and *proto set, or -1 when spec is malformed. Pure. */
int cap_starttls_parse_override(const char *spec, int *port, enum cap_starttls_proto *proto);

/* Name of proto ("smtp", ...; "none"). Static string. */
const char *cap_starttls_name(enum cap_starttls_proto proto);

/* Checks an override as a person types it: a port 1-65535 and a protocol in any case; writes it
 * normalised ("25:smtp": no leading zeros, lower case) into out (at least
 * CAP_STARTTLS_OVERRIDE_TEXT_MAX), only on success. Messages name opt: `--starttls "25:ftp":
 * protocol must be smtp, imap, pop3, ldap, postgres or none`. Pure. */
int cap_starttls_normalise(const char *opt, const char *text, char *out, size_t n,
                           struct cap_err *err);

/* A network_scan source's spec, parsed (cap_source_spec_parse). Lists are NULL-terminated. */
struct cap_network_scan_spec {
    char **cidrs;
    size_t cidrs_n;
    char **hosts; /* sent as SNI */
    size_t hosts_n;
    int *ports; /* empty: CAP_SCAN_DEFAULT_PORTS */
    size_t ports_n;
    char **starttls; /* "PORT:PROTOCOL" overrides */
    size_t starttls_n;
    int timeout_ms;   /* per host:port: connect, STARTTLS and handshake together */
    int concurrency;  /* handshakes in flight for this source */
    int connect_rate; /* connects per second, lowers scan.connect_rate; 0 when null */
};

extern const struct cap_source_type cap_network_scan_type;

#endif
