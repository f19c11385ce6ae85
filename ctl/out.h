/* capctl output: aligned text tables and key/value blocks for people, JSON arrays (built by
 * PostgreSQL's json_agg, so types are right) for scripts. */
#ifndef CAP_CTL_OUT_H
#define CAP_CTL_OUT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/err.h"

/* Widest cell of a text table, in bytes; longer values are cut and end in "...". */
#define CAP_CTL_CELL_MAX 64

/* Writes v for a terminal into out (size n, always NUL-terminated): well-formed UTF-8 kept,
 * newlines, tabs and carriage returns as spaces, other C0 controls, DEL and bytes that are not
 * UTF-8 as \xNN, C1 controls, bidirectional controls and line separators as \uNNNN, so text
 * from the database (subjects, SANs, errors from servers) cannot move the cursor, recolour
 * the terminal or reorder what is shown. Reads at most max_in bytes of v, stops before out
 * would overflow; returns the bytes of v consumed. Pure. */
size_t cap_ctl_out_display(const char *v, size_t max_in, char *out, size_t n);

/* Prints every row of r as an aligned table with a header line of the column names, to f.
 * NULL is shown as "-". When r has no rows prints `empty` (if not NULL) instead. */
void cap_ctl_out_table(FILE *f, const PGresult *r, const char *empty);

/* Prints row `row` of r as "column: value" lines, names padded to one width, values whole. */
void cap_ctl_out_record(FILE *f, const PGresult *r, int row);

/* Runs `SELECT coalesce(json_agg(q), '[]') FROM (inner) q` with the n parameters and prints
 * the JSON array to stdout, one object per row, keys the columns of inner. name labels the
 * statement in errors. Returns the number of rows, or -1 with err. Blocks. */
long cap_ctl_out_json_query(PGconn *c, const char *name, const char *inner, int n,
                            const char *const *params, struct cap_err *err);

/* Runs inner with the n parameters and prints it: as JSON (see cap_ctl_out_json_query) when
 * json, else as a table (cap_ctl_out_table) or, when record, as key/value blocks. Returns the
 * number of rows, or -1 with err. Blocks. */
long cap_ctl_out_query(PGconn *c, bool json, bool record, const char *name, const char *inner,
                       int n, const char *const *params, const char *empty, struct cap_err *err);

#endif
