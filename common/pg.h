/* Thin libpq helpers: connect, run a named parameterised statement, and turn failures into a
 * cap_err that names the statement and the SQLSTATE. All calls block; keep them off event
 * loops. */
#ifndef CAP_PG_H
#define CAP_PG_H

#include <libpq-fe.h>
#include <stdint.h>

#include "common/err.h"

/* Connects to url (application_name set to app). Returns NULL and fills err on failure; the
 * message never contains the password. Caller frees with PQfinish. */
PGconn *cap_pg_connect(const char *url, const char *app, struct cap_err *err);

/* From now on, every statement cap_pg_exec runs on c is prepared once per session (under a
 * name of its own) and then only bound and run: the server parses each distinct text once,
 * and plans it once when a generic plan serves. For connections that run the same statements
 * again and again (a worker's); not for a pooler in transaction mode that predates protocol
 * prepared statements (database.prepared_statements: false). 0, or -1 when out of memory (the
 * connection then runs its statements unnamed, as before). */
int cap_pg_keep_prepared(PGconn *c);

/* Runs sql with n text parameters (NULL entries are SQL NULL). name labels the statement in
 * errors ("claim run"). Returns the result (caller PQclears) when the status is COMMAND_OK or
 * TUPLES_OK; otherwise NULL with err = `claim run: <server message> (SQLSTATE 40001)`. */
PGresult *cap_pg_exec(PGconn *c, const char *name, const char *sql, int n,
                      const char *const *params, struct cap_err *err);

/* As cap_pg_exec for statements whose rows are not needed. 0 or -1. */
int cap_pg_cmd(PGconn *c, const char *name, const char *sql, int n, const char *const *params,
               struct cap_err *err);

/* SQLSTATE of the last failed cap_pg_exec on this thread ("" when none). */
const char *cap_pg_last_sqlstate(void);

/* Formats an int64 into buf (at least 24 bytes) and returns buf, for parameters. */
const char *cap_pg_i64(char *buf, int64_t v);

/* Parses a column value as int64 (0 for NULL or empty). */
int64_t cap_pg_get_i64(const PGresult *r, int row, int col);

/* Parses a Postgres text array literal ({a,"b c",NULL}) into a NULL-terminated array of
 * strings; NULL elements are skipped. Returns NULL with err on malformed input. Caller frees
 * with cap_pg_free_strv. */
char **cap_pg_parse_text_array(const char *lit, size_t *n_out, struct cap_err *err);
void cap_pg_free_strv(char **v);

/* Builds a bigint array literal ({1,2,3}) into a malloc'd string (caller frees); NULL when out
 * of memory. */
char *cap_pg_i64_array(const int64_t *v, size_t n);

/* Builds a text array literal from n strings into a malloc'd string (caller frees). */
char *cap_pg_text_array(const char *const *v, size_t n);

#endif
