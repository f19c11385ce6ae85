/* capctl exports: the output formats of `inventory` and `findings list` (table, JSON, CSV,
 * PEM), the checks of their filter values, the CSV field writer, and the output of findings
 * list (its options are read in ctl/query.c). cap_ctl_cmd_inventory is declared in ctl/ctl.h. */
#ifndef CAP_CTL_EXPORT_H
#define CAP_CTL_EXPORT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/err.h"

/* Output formats. Bit (1 << format) of a mask says a command offers it. */
enum cap_ctl_format {
    CAP_CTL_FORMAT_TABLE = 0,
    CAP_CTL_FORMAT_JSON,
    CAP_CTL_FORMAT_CSV,
    CAP_CTL_FORMAT_PEM,
};

/* The formats findings list offers. */
#define CAP_CTL_FINDINGS_FORMATS                                                                   \
    ((1u << CAP_CTL_FORMAT_TABLE) | (1u << CAP_CTL_FORMAT_JSON) | (1u << CAP_CTL_FORMAT_CSV))

/* Longest --issuer substring, in bytes. */
#define CAP_CTL_ISSUER_MAX 256

/* Parses a --format value ("table", "json", "csv", "pem", any case) into *out (only on
 * success). A format outside allowed (a mask of 1 << CAP_CTL_FORMAT_*) is an error listing the
 * allowed ones: `--format "xml": must be table, json, csv or pem`. */
int cap_ctl_export_format(const char *text, unsigned allowed, enum cap_ctl_format *out,
                          struct cap_err *err);

/* Parses a --pqc value (any case) into *out, the class as stored in pqc_class (a static
 * string): `--pqc "safe": must be vulnerable, transition, ready or unknown`. */
int cap_ctl_export_pqc_class(const char *text, const char **out, struct cap_err *err);

/* Checks an --issuer substring: 1-256 bytes of UTF-8 text without control characters
 * (terminal controls, bidirectional controls and line breaks included). */
int cap_ctl_export_issuer(const char *text, struct cap_err *err);

/* Normalises a --name suffix into out (at least 254 bytes): lower case, no trailing dot,
 * U-labels as A-labels, RFC 1123 labels. A single label ("internal") is allowed. Refused: an
 * empty suffix (`--name "": empty suffix`), a leading "*." or "." (the suffix alone already
 * matches every subdomain), an IP address (--name matches DNS names). out is written only on
 * success. */
int cap_ctl_export_name_suffix(const char *text, char *out, size_t n, struct cap_err *err);

/* Writes the len bytes of v to f as one CSV field (RFC 4180): as they are, or between double
 * quotes with each quote doubled when v is empty or holds a comma, a quote, CR or LF (so an
 * empty string, "", differs from SQL NULL, which the caller writes as nothing). Bytes are
 * copied unchanged, NULs included. Returns 0, or -1 when f reports a write error. */
int cap_ctl_export_csv_field(FILE *f, const char *v, size_t len);

/* The output format of a command from its --format value (text, NULL when not given) and the
 * global --json: JSON with --json, else a table. A format outside allowed, or --json with
 * another --format, prints the message and syn to stderr and returns CAP_CTL_USAGE; else 0. */
int cap_ctl_export_pick_format(bool json, const char *text, unsigned allowed, const char *syn,
                               enum cap_ctl_format *out);

/* Prints the findings of `findings list` in format (table, JSON or CSV; the exports streamed
 * row by row in constant memory). params: $1 source name, $2 kind, $3 "true" for open only, $4
 * limit (NULL: every row). Returns the number of rows, or -1 with err. Blocks. */
long cap_ctl_export_findings(PGconn *c, enum cap_ctl_format format, const char *const *params,
                             struct cap_err *err);

#endif
