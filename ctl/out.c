/* capctl output: aligned text tables, key/value records, and JSON arrays that PostgreSQL
 * builds itself (json_agg), so numbers, booleans, arrays and jsonb keep their types. */
#include "ctl/out.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pg.h"

/* PostgreSQL's type OID of boolean (pg_type.oid of "bool", fixed since forever). */
#define BOOL_OID 16

/* Length of the UTF-8 sequence at s (at most len bytes) and its code point, or 0 when the
 * bytes are not well-formed UTF-8 (overlong forms and surrogates included). */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    if (n == 0 || n > len || c >= 0xf8)
        return 0;
    uint32_t v = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* Code points that move or hide text on a terminal: C1 controls, bidirectional controls and
 * the line and paragraph separators. */
static bool cp_hidden(uint32_t v)
{
    return (v >= 0x80 && v <= 0x9f) || v == 0x061c || v == 0x200e || v == 0x200f ||
           (v >= 0x2028 && v <= 0x202e) || (v >= 0x2066 && v <= 0x2069);
}

size_t cap_ctl_out_display(const char *v, size_t max_in, char *out, size_t n)
{
    const unsigned char *s = (const unsigned char *)v;
    size_t len = strlen(v), o = 0, i = 0;
    if (n == 0)
        return 0;
    while (i < len && i < max_in) {
        char piece[16];
        size_t plen, adv = 1;
        uint32_t cp = 0;
        if (s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
            piece[0] = ' ';
            plen = 1;
        } else if (s[i] < 0x20 || s[i] == 0x7f) {
            plen = (size_t)snprintf(piece, sizeof piece, "\\x%02x", s[i]);
        } else if (s[i] < 0x80) {
            piece[0] = (char)s[i];
            plen = 1;
        } else if ((adv = utf8_seq(s + i, len - i, &cp)) == 0) {
            adv = 1;
            plen = (size_t)snprintf(piece, sizeof piece, "\\x%02x", s[i]);
        } else if (cp_hidden(cp)) {
            plen = (size_t)snprintf(piece, sizeof piece, "\\u%04x", (unsigned)cp);
        } else {
            memcpy(piece, s + i, adv);
            plen = adv;
        }
        if (o + plen + 1 > n)
            break;
        memcpy(out + o, piece, plen);
        o += plen;
        i += adv;
    }
    out[o] = '\0';
    return i;
}

/* Bytes of a cell as shown in a table: the value cut to CAP_CTL_CELL_MAX, newlines and tabs
 * shown as spaces so a row stays on one line, control and bidirectional characters escaped
 * (cap_ctl_out_display). */
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
    size_t used = cap_ctl_out_display(v, len > CAP_CTL_CELL_MAX ? CAP_CTL_CELL_MAX - 3 : len, out,
                                      n > 4 ? n - 3 : n);
    if (used < len) {
        size_t o = strlen(out);
        memcpy(out + o, "...", 4);
    }
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
        /* Escaped, each byte at most 6 bytes of display (\\u202e). */
        size_t len = strlen(v), cap = len * 6 + 1;
        char *shown = malloc(cap);
        if (shown)
            cap_ctl_out_display(v, len, shown, cap);
        fprintf(f, "%-*s  %s\n", w + 1, PQfname(r, c), shown ? shown : "(out of memory)");
        free(shown);
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
