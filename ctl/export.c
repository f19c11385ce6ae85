/* capctl exports: `inventory` with its filters and `findings list`, as a text table (limited,
 * for people) or streamed as JSON, CSV or PEM (everything by default, in constant memory:
 * libpq's single-row mode hands over one row at a time and each is written as it comes). */
#include "ctl/export.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/pg.h"
#include "common/source/value.h"
#include "ctl/ctl.h"
#include "ctl/out.h"
#include "ctl/validate.h"

static const char SYN_INVENTORY[] =
    "capctl inventory [--format table|json|csv|pem] [--source S] [--issuer SUBSTRING]\n"
    "       [--name SUFFIX] [--expiring DAYS] [--pqc CLASS] [--unmanaged] [--limit N]";

/* PostgreSQL's type OID of boolean (pg_type.oid of "bool"). */
#define BOOL_OID 16
/* Rows of a text table unless --limit says otherwise; exports have no default limit. */
#define TABLE_LIMIT 200
/* Bytes of a subject shown in a PEM comment line; longer ones end in "...". */
#define PEM_SUBJECT_MAX 512
#define QUOTE_MAX (CAP_ERR_VALUE_MAX * 4 + 8)

static const char *const FORMAT_NAMES[] = {"table", "json", "csv", "pem"};
static const char *const PQC_CLASSES[] = {"vulnerable", "transition", "ready", "unknown"};

/* --- SQL ------------------------------------------------------------------------------- */

static const char SQL_SOURCE_ID[] = "SELECT id FROM discovery_sources WHERE name = $1";

/* Managed as the view cap_inventory says (migration 007): listed in managed_certificates, or a
 * CT precertificate whose final certificate (same tbs_sha256) is. */
#define MANAGED_EXPR                                                                               \
    "(EXISTS (SELECT 1 FROM managed_certificates m"                                                \
    "  WHERE m.fingerprint_sha256 = c.fingerprint_sha256)"                                         \
    " OR (c.is_precert AND EXISTS (SELECT 1 FROM discovered_certificates f"                        \
    "  JOIN managed_certificates m ON m.fingerprint_sha256 = f.fingerprint_sha256"                 \
    "  WHERE f.tbs_sha256 = c.tbs_sha256)))"

/* The filters, every one NULL when not given: $1 source id (the certificate is served by an
 * endpoint that source last scanned, or the source saw it in a CT log), $2 issuer substring
 * (case-insensitive), $3 name suffix (normalised; a DNS SAN or a subject CN equals it or ends in
 * "." + it, label by label as the CT matcher does), $4 days to expiry (expired included), $5 PQC
 * class, $6 unmanaged only (boolean), $7 limit (NULL: all rows). */
#define INVENTORY_FROM                                                                             \
    " FROM discovered_certificates c"                                                              \
    " WHERE ($1::bigint IS NULL"                                                                   \
    "  OR EXISTS (SELECT 1 FROM endpoints e WHERE e.fingerprint_sha256 = c.fingerprint_sha256"     \
    "   AND e.source_id = $1::bigint)"                                                             \
    "  OR EXISTS (SELECT 1 FROM ct_sightings s"                                                    \
    "   WHERE s.fingerprint_sha256 = c.fingerprint_sha256 AND s.source_id = $1::bigint))"          \
    " AND ($2::text IS NULL OR strpos(lower(c.issuer), lower($2::text)) > 0)"                      \
    " AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM unnest(c.sans || ARRAY(SELECT m[1]"           \
    "   FROM regexp_matches(c.subject, '(?:^|[,+])CN=([^,+]*)', 'g') AS m)) AS n(name)"            \
    "  WHERE rtrim(lower(n.name), '.') = $3::text"                                                 \
    "   OR right(rtrim(lower(n.name), '.'), length($3::text) + 1) = '.' || $3::text))"             \
    " AND ($4::int IS NULL OR c.not_after < now() + make_interval(days => $4::int))"               \
    " AND ($5::text IS NULL OR c.pqc_class = $5::text)"                                            \
    " AND (NOT $6::boolean OR NOT " MANAGED_EXPR ")"                                               \
    " ORDER BY c.not_after NULLS LAST, c.fingerprint_sha256 LIMIT $7::bigint"

static const char SQL_INVENTORY_TABLE[] =
    "SELECT left(c.fingerprint_sha256, 16) AS fingerprint, c.subject,"
    " date_trunc('second', c.not_after) AS not_after,"
    " c.key_algorithm || coalesce(' ' || c.key_bits, '') AS key, c.pqc_class,"
    " c.is_precert AS precert, " MANAGED_EXPR " AS managed, c.issuer" INVENTORY_FROM;
/* Every column but the DER (large; in PEM exports), plus managed, as one object per row built
 * by PostgreSQL, so columns added by later migrations follow without a change here. */
static const char SQL_INVENTORY_JSON[] =
    "SELECT (to_jsonb(c) - 'der') || jsonb_build_object('managed', " MANAGED_EXPR
    ") AS j" INVENTORY_FROM;
static const char SQL_INVENTORY_PEM[] =
    "SELECT c.fingerprint_sha256, c.subject, c.der" INVENTORY_FROM;
/* The CSV columns are the JSON keys in table order: the select list is read from the catalogue
 * (names quoted by the server), so it follows later migrations too. */
static const char SQL_INVENTORY_COLUMNS[] =
    "SELECT string_agg('c.' || quote_ident(attname), ', ' ORDER BY attnum)"
    " FROM pg_attribute WHERE attrelid = 'discovered_certificates'::regclass"
    " AND attnum > 0 AND NOT attisdropped AND attname <> 'der'";
static const char SQL_INVENTORY_CSV_TAIL[] = ", " MANAGED_EXPR " AS managed" INVENTORY_FROM;

/* $1 source name, $2 kind, $3 open only, $4 limit (NULL: all rows). */
#define FINDINGS_FROM                                                                              \
    " FROM findings f LEFT JOIN discovery_sources s ON s.id = f.source_id"                         \
    " WHERE ($1::text IS NULL OR s.name = $1) AND ($2::text IS NULL OR f.kind = $2)"               \
    " AND (NOT $3::boolean OR f.status = 'open')"                                                  \
    " ORDER BY f.last_seen_at DESC, f.id DESC LIMIT $4::bigint"
static const char SQL_FINDINGS_TABLE[] =
    "SELECT f.id, f.kind, f.severity, f.status, s.name AS source, f.subject_key,"
    " date_trunc('second', f.last_seen_at) AS last_seen_at,"
    " f.details::text AS details" FINDINGS_FROM;
static const char SQL_FINDINGS_JSON[] =
    "SELECT to_jsonb(f) || jsonb_build_object('source_name', s.name) AS j" FINDINGS_FROM;
static const char SQL_FINDINGS_CSV[] = "SELECT f.*, s.name AS source_name" FINDINGS_FROM;

/* --- filter values (pure) -------------------------------------------------------------- */

int cap_ctl_export_format(const char *text, unsigned allowed, enum cap_ctl_format *out,
                          struct cap_err *err)
{
    for (int f = CAP_CTL_FORMAT_TABLE; f <= CAP_CTL_FORMAT_PEM; f++) {
        if ((allowed & (1u << f)) && strcasecmp(text, FORMAT_NAMES[f]) == 0) {
            *out = (enum cap_ctl_format)f;
            return 0;
        }
    }
    char list[64] = "";
    int n = 0, total = 0;
    for (int f = CAP_CTL_FORMAT_TABLE; f <= CAP_CTL_FORMAT_PEM; f++)
        total += (allowed >> f) & 1;
    for (int f = CAP_CTL_FORMAT_TABLE; f <= CAP_CTL_FORMAT_PEM; f++) {
        if (!(allowed & (1u << f)))
            continue;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s",
                 n == 0           ? ""
                 : n + 1 == total ? " or "
                                  : ", ",
                 FORMAT_NAMES[f]);
        n++;
    }
    char q[QUOTE_MAX];
    cap_err_set(err, CAP_E_INVALID, "--format \"%s\": must be %s",
                cap_err_quote(q, sizeof q, text, strlen(text)), list);
    return -1;
}

int cap_ctl_export_pqc_class(const char *text, const char **out, struct cap_err *err)
{
    for (size_t i = 0; i < sizeof PQC_CLASSES / sizeof PQC_CLASSES[0]; i++) {
        if (strcasecmp(text, PQC_CLASSES[i]) == 0) {
            *out = PQC_CLASSES[i];
            return 0;
        }
    }
    char q[QUOTE_MAX];
    cap_err_set(err, CAP_E_INVALID,
                "--pqc \"%s\": must be vulnerable, transition, ready or unknown",
                cap_err_quote(q, sizeof q, text, strlen(text)));
    return -1;
}

int cap_ctl_export_issuer(const char *text, struct cap_err *err)
{
    char q[QUOTE_MAX];
    size_t len = strlen(text);
    if (len == 0 || len > CAP_CTL_ISSUER_MAX) {
        cap_err_set(err, CAP_E_INVALID, "--issuer \"%s\": must be 1-%d bytes",
                    cap_err_quote(q, sizeof q, text, len), CAP_CTL_ISSUER_MAX);
        return -1;
    }
    /* The terminal display of well-formed text without controls is the text itself. */
    char shown[CAP_CTL_ISSUER_MAX * 6 + 1];
    cap_ctl_out_display(text, len, shown, sizeof shown);
    if (strcmp(shown, text) != 0) {
        cap_err_set(err, CAP_E_INVALID,
                    "--issuer \"%s\": must be UTF-8 text without control characters",
                    cap_err_quote(q, sizeof q, text, len));
        return -1;
    }
    return 0;
}

int cap_ctl_export_name_suffix(const char *text, char *out, size_t n, struct cap_err *err)
{
    char q[QUOTE_MAX];
    size_t len = strlen(text);
    cap_err_quote(q, sizeof q, text, len);
    if (strspn(text, ".") == len) {
        cap_err_set(err, CAP_E_INVALID, "--name \"%s\": empty suffix", q);
        return -1;
    }
    if (text[0] == '*' || text[0] == '.') {
        const char *rest = text + (text[0] == '*' && text[1] == '.' ? 2 : 1);
        char rq[QUOTE_MAX];
        cap_err_set(err, CAP_E_INVALID,
                    "--name \"%s\": give the suffix alone (\"%s\"); it already matches the name "
                    "and every subdomain",
                    q, cap_err_quote(rq, sizeof rq, rest, strlen(rest)));
        return -1;
    }
    uint8_t addr[16];
    if (inet_pton(AF_INET, text, addr) == 1 || strchr(text, ':')) {
        cap_err_set(err, CAP_E_INVALID,
                    "--name \"%s\": an IP address; --name matches DNS names (SANs and CN)", q);
        return -1;
    }
    char name[CAP_VALUE_HOSTNAME_MAX + 1];
    if (cap_value_hostname("--name", text, name, sizeof name, err) < 0)
        return -1;
    if (strlen(name) + 1 > n) {
        cap_err_set(err, CAP_E_LIMIT, "--name \"%s\": no room for the name", q);
        return -1;
    }
    memcpy(out, name, strlen(name) + 1);
    return 0;
}

int cap_ctl_export_csv_field(FILE *f, const char *v, size_t len)
{
    bool quote = len == 0;
    for (size_t i = 0; i < len && !quote; i++)
        quote = v[i] == ',' || v[i] == '"' || v[i] == '\r' || v[i] == '\n';
    if (!quote)
        return len && fwrite(v, 1, len, f) != len ? -1 : 0;
    if (fputc('"', f) == EOF)
        return -1;
    size_t from = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && v[i] != '"')
            continue;
        /* Up to and including a quote, which is then written again. */
        size_t piece = i - from + (i < len);
        if (piece && fwrite(v + from, 1, piece, f) != piece)
            return -1;
        if (i < len && fputc('"', f) == EOF)
            return -1;
        from = i + 1;
    }
    return fputc('"', f) == EOF ? -1 : 0;
}

/* --- streaming ------------------------------------------------------------------------- */

/* One streamed export: the format and what has been written so far. */
struct sink {
    enum cap_ctl_format format;
    FILE *f;
    long rows;
};

/* Writes what comes before the rows: JSON's "[", CSV's header line of the column names. */
static int sink_begin(struct sink *s, const PGresult *r)
{
    if (s->format == CAP_CTL_FORMAT_JSON)
        return fputc('[', s->f) == EOF ? -1 : 0;
    if (s->format != CAP_CTL_FORMAT_CSV)
        return 0;
    for (int col = 0; col < PQnfields(r); col++) {
        const char *name = PQfname(r, col);
        if ((col && fputc(',', s->f) == EOF) ||
            cap_ctl_export_csv_field(s->f, name, strlen(name)) < 0)
            return -1;
    }
    return fputs("\r\n", s->f) == EOF ? -1 : 0;
}

/* Writes a PEM block of der: base64 in lines of 64 characters (48 bytes each). */
static int write_pem(FILE *f, const unsigned char *der, size_t len)
{
    unsigned char line[66];
    if (fputs("-----BEGIN CERTIFICATE-----\n", f) == EOF)
        return -1;
    for (size_t at = 0; at < len; at += 48) {
        size_t chunk = len - at < 48 ? len - at : 48;
        int out = EVP_EncodeBlock(line, der + at, (int)chunk);
        line[out] = '\n';
        if (fwrite(line, 1, (size_t)out + 1, f) != (size_t)out + 1)
            return -1;
    }
    return fputs("-----END CERTIFICATE-----\n", f) == EOF ? -1 : 0;
}

/* Writes row `row` of r. */
static int sink_row(struct sink *s, const PGresult *r, int row)
{
    FILE *f = s->f;
    switch (s->format) {
    case CAP_CTL_FORMAT_JSON:
        if (fputs(s->rows ? ",\n" : "\n", f) == EOF || fputs(PQgetvalue(r, row, 0), f) == EOF)
            return -1;
        break;
    case CAP_CTL_FORMAT_CSV:
        for (int col = 0; col < PQnfields(r); col++) {
            if (col && fputc(',', f) == EOF)
                return -1;
            if (PQgetisnull(r, row, col))
                continue;
            const char *v = PQgetvalue(r, row, col);
            size_t len = (size_t)PQgetlength(r, row, col);
            if (PQftype(r, col) == BOOL_OID) {
                v = v[0] == 't' ? "true" : "false";
                len = strlen(v);
            }
            if (cap_ctl_export_csv_field(f, v, len) < 0)
                return -1;
        }
        if (fputs("\r\n", f) == EOF)
            return -1;
        break;
    case CAP_CTL_FORMAT_PEM: {
        /* Binary results: fingerprint, subject and DER as their bytes. The subject comes from
         * certificates anyone can make, so the comment shows it escaped, on one line. */
        const char *subject = PQgetvalue(r, row, 1);
        size_t slen = (size_t)PQgetlength(r, row, 1);
        char shown[PEM_SUBJECT_MAX * 6 + 4];
        size_t used = cap_ctl_out_display(subject, PEM_SUBJECT_MAX, shown, sizeof shown - 3);
        if (used < slen)
            memcpy(shown + strlen(shown), "...", 4);
        if (fprintf(f, "# sha256=%.64s subject=%s\n", PQgetvalue(r, row, 0), shown) < 0 ||
            write_pem(f, (const unsigned char *)PQgetvalue(r, row, 2),
                      (size_t)PQgetlength(r, row, 2)) < 0)
            return -1;
        break;
    }
    case CAP_CTL_FORMAT_TABLE:
        break;
    }
    s->rows++;
    return 0;
}

static int sink_end(struct sink *s)
{
    if (s->format == CAP_CTL_FORMAT_JSON && fputs(s->rows ? "\n]\n" : "]\n", s->f) == EOF)
        return -1;
    return fflush(s->f) == EOF ? -1 : 0;
}

/* The server's message of a failed result (or of the connection) as one line into err. */
static void result_err(PGconn *c, const PGresult *r, const char *name, struct cap_err *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg)
        msg = PQerrorMessage(c);
    /* libpq's messages may span lines; runs of white space become one space. */
    char clean[200];
    size_t o = 0;
    for (const char *p = msg ? msg : "unknown error"; *p && o + 1 < sizeof clean; p++) {
        bool space = isspace((unsigned char)*p);
        if (!space || (o > 0 && clean[o - 1] != ' '))
            clean[o++] = space ? ' ' : *p;
    }
    while (o > 0 && clean[o - 1] == ' ')
        o--;
    clean[o] = '\0';
    cap_err_set(err, CAP_E_IO, "%s: %s (SQLSTATE %s)", name, clean, state ? state : "none");
}

/* Runs sql with n text parameters in single-row mode and writes each row to s as it arrives
 * (binary: results in binary format), so memory stays flat whatever the row count. Returns the
 * number of rows, or -1 with err (a database error, or a write error on the output, which
 * cancels the query). Blocks. */
static long stream_query(PGconn *c, const char *name, const char *sql, int n,
                         const char *const *params, bool binary, struct sink *s,
                         struct cap_err *err)
{
    if (!PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, binary ? 1 : 0)) {
        result_err(c, NULL, name, err);
        return -1;
    }
    bool single = PQsetSingleRowMode(c) == 1;
    bool begun = false, failed = false;
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (failed) {
            PQclear(r);
            continue;
        }
        if (st == PGRES_SINGLE_TUPLE || st == PGRES_TUPLES_OK) {
            int rc = begun ? 0 : sink_begin(s, r);
            begun = true;
            /* Without single-row mode (it cannot fail right after a send, but if it did) the
             * rows come in one result. */
            int rows = st == PGRES_SINGLE_TUPLE ? 1 : single ? 0 : PQntuples(r);
            for (int i = 0; rc == 0 && i < rows; i++)
                rc = sink_row(s, r, i);
            if (rc < 0 || ferror(s->f)) {
                cap_err_set(err, CAP_E_IO, "%s: writing the output: %s", name, strerror(errno));
                failed = true;
                PGcancel *cancel = PQgetCancel(c);
                char why[256];
                if (cancel) {
                    PQcancel(cancel, why, sizeof why);
                    PQfreeCancel(cancel);
                }
            }
        } else {
            result_err(c, r, name, err);
            failed = true;
        }
        PQclear(r);
    }
    if (failed)
        return -1;
    if (!begun && sink_begin(s, NULL) < 0) {
        cap_err_set(err, CAP_E_IO, "%s: writing the output: %s", name, strerror(errno));
        return -1;
    }
    if (sink_end(s) < 0) {
        cap_err_set(err, CAP_E_IO, "%s: writing the output: %s", name, strerror(errno));
        return -1;
    }
    return s->rows;
}

/* --- options ------------------------------------------------------------------------- */

enum {
    OPT_FORMAT = 1,
    OPT_SOURCE,
    OPT_ISSUER,
    OPT_NAME,
    OPT_EXPIRING,
    OPT_PQC,
    OPT_UNMANAGED,
    OPT_LIMIT,
};

int cap_ctl_export_pick_format(bool json, const char *text, unsigned allowed, const char *syn,
                               enum cap_ctl_format *out)
{
    enum cap_ctl_format f = json ? CAP_CTL_FORMAT_JSON : CAP_CTL_FORMAT_TABLE;
    if (text) {
        struct cap_err err = {0};
        if (cap_ctl_export_format(text, allowed, &f, &err) < 0)
            return cap_ctl_usage(syn, "%s", err.msg);
        if (json && f != CAP_CTL_FORMAT_JSON)
            return cap_ctl_usage(syn, "--json and --format %s contradict each other",
                                 FORMAT_NAMES[f]);
    }
    *out = f;
    return 0;
}

/* --limit into buf: the value given, else TABLE_LIMIT for a table and no limit (NULL) for an
 * export. Returns the parameter (buf or NULL) through *param; 0 or -1 with err. */
static int read_limit(const struct cap_ctl_args *a, enum cap_ctl_format f, char *buf,
                      const char **param, int64_t *limit, struct cap_err *err)
{
    const char *t = cap_ctl_args_get(a, OPT_LIMIT);
    int64_t v = TABLE_LIMIT;
    if (t && cap_ctl_validate_int("--limit", t, 1, 1000000000, &v, err) < 0)
        return -1;
    if (!t && f != CAP_CTL_FORMAT_TABLE) {
        *param = NULL;
        *limit = -1;
        return 0;
    }
    *param = cap_pg_i64(buf, v);
    *limit = v;
    return 0;
}

/* Says on stderr when a listing stopped at its limit. */
static void note_limit(long rows, int64_t limit)
{
    if (rows >= 0 && limit > 0 && rows == limit)
        fprintf(stderr, "capctl: showing the first %ld rows; --limit N shows more\n", rows);
}

/* The id of source `name` into buf: `source "x" does not exist` when there is none. */
static int source_id(PGconn *c, const char *name, char *buf, struct cap_err *err)
{
    const char *p[] = {name};
    PGresult *r = cap_pg_exec(c, "look up source", SQL_SOURCE_ID, 1, p, err);
    if (!r)
        return -1;
    int found = PQntuples(r);
    if (found)
        snprintf(buf, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!found) {
        char q[QUOTE_MAX];
        cap_err_set(err, CAP_E_INVALID, "source \"%s\" does not exist",
                    cap_err_quote(q, sizeof q, name, strlen(name)));
        return -1;
    }
    return 0;
}

/* --- inventory ------------------------------------------------------------------------- */

/* Streams the inventory as CSV: every column but der, then managed. */
static long inventory_csv(PGconn *c, const char *const *p, struct sink *s, struct cap_err *err)
{
    PGresult *r = cap_pg_exec(c, "inventory columns", SQL_INVENTORY_COLUMNS, 0, NULL, err);
    if (!r)
        return -1;
    const char *cols = PQgetvalue(r, 0, 0);
    size_t len = strlen("SELECT ") + strlen(cols) + sizeof SQL_INVENTORY_CSV_TAIL;
    char *sql = malloc(len);
    if (!sql) {
        PQclear(r);
        cap_err_set(err, CAP_E_NOMEM, "inventory: out of memory");
        return -1;
    }
    snprintf(sql, len, "SELECT %s%s", cols, SQL_INVENTORY_CSV_TAIL);
    PQclear(r);
    long rows = stream_query(c, "inventory", sql, 7, p, false, s, err);
    free(sql);
    return rows;
}

int cap_ctl_cmd_inventory(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{"format", CAP_CTL_VALUE, OPT_FORMAT},
                                                    {"source", CAP_CTL_VALUE, OPT_SOURCE},
                                                    {"issuer", CAP_CTL_VALUE, OPT_ISSUER},
                                                    {"name", CAP_CTL_VALUE, OPT_NAME},
                                                    {"expiring", CAP_CTL_VALUE, OPT_EXPIRING},
                                                    {"pqc", CAP_CTL_VALUE, OPT_PQC},
                                                    {"unmanaged", CAP_CTL_FLAG, OPT_UNMANAGED},
                                                    {"limit", CAP_CTL_VALUE, OPT_LIMIT},
                                                    {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 0, SYN_INVENTORY, &a);
    if (rc)
        return rc;
    enum cap_ctl_format format;
    unsigned all = (1u << CAP_CTL_FORMAT_TABLE) | (1u << CAP_CTL_FORMAT_JSON) |
                   (1u << CAP_CTL_FORMAT_CSV) | (1u << CAP_CTL_FORMAT_PEM);
    if ((rc = cap_ctl_export_pick_format(ctl->json, cap_ctl_args_get(&a, OPT_FORMAT), all,
                                         SYN_INVENTORY, &format)) != 0)
        return rc;

    struct cap_err err = {0};
    const char *issuer = cap_ctl_args_get(&a, OPT_ISSUER);
    const char *name = cap_ctl_args_get(&a, OPT_NAME);
    const char *days_text = cap_ctl_args_get(&a, OPT_EXPIRING);
    const char *pqc_text = cap_ctl_args_get(&a, OPT_PQC);
    const char *pqc = NULL, *lim = NULL;
    char suffix[CAP_VALUE_HOSTNAME_MAX + 1], days[24], limb[24], sid[24];
    int64_t d = 0, limit = 0;
    if ((issuer && cap_ctl_export_issuer(issuer, &err) < 0) ||
        (name && cap_ctl_export_name_suffix(name, suffix, sizeof suffix, &err) < 0) ||
        (days_text && cap_ctl_validate_int("--expiring", days_text, 0, 36500, &d, &err) < 0) ||
        (pqc_text && cap_ctl_export_pqc_class(pqc_text, &pqc, &err) < 0) ||
        read_limit(&a, format, limb, &lim, &limit, &err) < 0)
        return cap_ctl_fail(&err);

    PGconn *c = cap_ctl_db(ctl, &err);
    const char *source = cap_ctl_args_get(&a, OPT_SOURCE);
    if (!c || (source && source_id(c, source, sid, &err) < 0))
        return cap_ctl_fail(&err);
    const char *p[] = {source ? sid : NULL,
                       issuer,
                       name ? suffix : NULL,
                       days_text ? cap_pg_i64(days, d) : NULL,
                       pqc,
                       cap_ctl_args_has(&a, OPT_UNMANAGED) ? "true" : "false",
                       lim};
    struct sink s = {format, stdout, 0};
    long rows;
    switch (format) {
    case CAP_CTL_FORMAT_JSON:
        rows = stream_query(c, "inventory", SQL_INVENTORY_JSON, 7, p, false, &s, &err);
        break;
    case CAP_CTL_FORMAT_CSV:
        rows = inventory_csv(c, p, &s, &err);
        break;
    case CAP_CTL_FORMAT_PEM:
        rows = stream_query(c, "inventory", SQL_INVENTORY_PEM, 7, p, true, &s, &err);
        break;
    default:
        rows = cap_ctl_out_query(c, false, false, "inventory", SQL_INVENTORY_TABLE, 7, p,
                                 "no certificates", &err);
        break;
    }
    if (rows < 0)
        return cap_ctl_fail(&err);
    note_limit(rows, limit);
    return CAP_CTL_OK;
}

/* --- findings list ------------------------------------------------------------------- */

long cap_ctl_export_findings(PGconn *c, enum cap_ctl_format format, const char *const *params,
                             struct cap_err *err)
{
    if (format == CAP_CTL_FORMAT_TABLE)
        return cap_ctl_out_query(c, false, false, "list findings", SQL_FINDINGS_TABLE, 4, params,
                                 "no findings", err);
    struct sink s = {format, stdout, 0};
    return stream_query(c, "list findings",
                        format == CAP_CTL_FORMAT_JSON ? SQL_FINDINGS_JSON : SQL_FINDINGS_CSV, 4,
                        params, false, &s, err);
}
