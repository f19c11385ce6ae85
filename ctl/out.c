/* capctl output: aligned text tables, key/value records, and JSON arrays that PostgreSQL
 * builds itself (json_agg), so numbers, booleans, arrays and jsonb keep their types. */
#include "ctl/out.h"

#include <stdlib.h>
#include <string.h>

#include "common/pg.h"

/* PostgreSQL's type OID of boolean (pg_type.oid of "bool", fixed since forever). */
#define BOOL_OID 16

/* Bytes of a cell as shown in a table: the value cut to CAP_CTL_CELL_MAX, newlines and tabs
 * shown as spaces so a row stays on one line. */
static void cell_text(const PGresult *r, int row, int col, char *out, size_t n)
{
    if (PQgetisnull(r, row, col)) {
        snprintf(out, n, "-");
        return;
    }
    const char *v = PQgetvalue(r, row, col);
    if (PQftype(r, col) == BOOL_OID)
        v = v[0] == 't' ? "yes" : "no";
    size_t len = strlen(v);
    size_t lim = len > CAP_CTL_CELL_MAX ? CAP_CTL_CELL_MAX - 3 : len;
    if (lim + 4 > n)
        lim = n - 4;
    size_t o = 0;
    for (size_t i = 0; i < lim; i++) {
        char ch = v[i];
        out[o++] = (ch == '\n' || ch == '\t' || ch == '\r') ? ' ' : ch;
    }
    if (lim < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Writes one cell padded to width, or the last cell of a line unpadded with the newline. */
static void put_cell(FILE *f, const char *s, int width, bool last)
{
    if (last)
        fprintf(f, "%s\n", s);
    else
        fprintf(f, "%-*s  ", width, s);
}

void cap_ctl_out_table(FILE *f, const PGresult *r, const char *empty)
{
    int rows = PQntuples(r), cols = PQnfields(r);
    if (rows == 0) {
        if (empty)
            fprintf(f, "%s\n", empty);
        return;
    }
    size_t *width = calloc((size_t)cols, sizeof *width);
    if (!width)
        return;
    char cell[CAP_CTL_CELL_MAX + 8];
    for (int c = 0; c < cols; c++)
        width[c] = strlen(PQfname(r, c));
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++) {
            cell_text(r, i, c, cell, sizeof cell);
            size_t l = strlen(cell);
            if (l > width[c])
                width[c] = l;
        }
    }
    for (int c = 0; c < cols; c++)
        put_cell(f, PQfname(r, c), (int)width[c], c + 1 == cols);
    for (int i = 0; i < rows; i++) {
        for (int c = 0; c < cols; c++) {
            cell_text(r, i, c, cell, sizeof cell);
            put_cell(f, cell, (int)width[c], c + 1 == cols);
        }
    }
    free(width);
}

void cap_ctl_out_record(FILE *f, const PGresult *r, int row)
{
    int cols = PQnfields(r);
    int w = 0;
    for (int c = 0; c < cols; c++) {
        int l = (int)strlen(PQfname(r, c));
        if (l > w)
            w = l;
    }
    for (int c = 0; c < cols; c++) {
        const char *v = PQgetisnull(r, row, c) ? "-" : PQgetvalue(r, row, c);
        if (!PQgetisnull(r, row, c) && PQftype(r, c) == BOOL_OID)
            v = v[0] == 't' ? "yes" : "no";
        fprintf(f, "%-*s  %s\n", w + 1, PQfname(r, c), v);
    }
}

/* Wraps inner in head ... ") q", runs it and prints column 0; returns column 1 (rows). */
static long json_agg_query(PGconn *c, const char *name, const char *head, const char *inner, int n,
                           const char *const *params, struct cap_err *err)
{
    static const char tail[] = ") q";
    size_t len = strlen(head) + strlen(inner) + sizeof tail;
    char *sql = malloc(len);
    if (!sql) {
        cap_err_set(err, CAP_E_NOMEM, "%s: out of memory", name);
        return -1;
    }
    snprintf(sql, len, "%s%s%s", head, inner, tail);
    PGresult *r = cap_pg_exec(c, name, sql, n, params, err);
    free(sql);
    if (!r)
        return -1;
    long rows = (long)cap_pg_get_i64(r, 0, 1);
    fprintf(stdout, "%s\n", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rows;
}

long cap_ctl_out_json_query(PGconn *c, const char *name, const char *inner, int n,
                            const char *const *params, struct cap_err *err)
{
    return json_agg_query(c, name, "SELECT coalesce(json_agg(q), '[]'::json), count(*) FROM (",
                          inner, n, params, err);
}

long cap_ctl_out_json_objects(PGconn *c, const char *name, const char *inner, int n,
                              const char *const *params, struct cap_err *err)
{
    return json_agg_query(c, name, "SELECT coalesce(json_agg(q.j), '[]'::json), count(*) FROM (",
                          inner, n, params, err);
}

long cap_ctl_out_query(PGconn *c, bool json, bool record, const char *name, const char *inner,
                       int n, const char *const *params, const char *empty, struct cap_err *err)
{
    if (json)
        return cap_ctl_out_json_query(c, name, inner, n, params, err);
    PGresult *r = cap_pg_exec(c, name, inner, n, params, err);
    if (!r)
        return -1;
    long rows = PQntuples(r);
    if (record) {
        for (int i = 0; i < rows; i++) {
            if (i)
                fputc('\n', stdout);
            cap_ctl_out_record(stdout, r, i);
        }
        if (rows == 0 && empty)
            fprintf(stdout, "%s\n", empty);
    } else {
        cap_ctl_out_table(stdout, r, empty);
    }
    PQclear(r);
    return rows;
}
