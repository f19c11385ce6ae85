/* The SQL migrations embedded into capctl at build time (generated from the files
 * migrations/NNN_name.sql by ctl/embed_migrations.cmake), and `capctl migrate`. */
#ifndef CAP_CTL_MIGRATIONS_H
#define CAP_CTL_MIGRATIONS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* One migration file: migrations/NNN_name.sql. */
struct cap_ctl_migration {
    int version;          /* NNN */
    const char *name;     /* file name, "001_core.sql" */
    const char *checksum; /* SHA-256 of the file, 64 lower-case hex digits */
    const char *sql;      /* file content, NUL-terminated */
    size_t len;           /* bytes of sql */
};

/* Every migration, sorted by version (ascending, unique). Static data; never freed. */
extern const struct cap_ctl_migration cap_ctl_migrations[];
extern const size_t cap_ctl_migrations_n;

/* Key of the connection-level advisory lock that serialises `capctl migrate` runs (fixed forever:
 * every version of capctl must take the same lock). */
#define CAP_CTL_MIGRATE_LOCK_KEY "7161530812449580349"

/* Applies the pending migrations of list (n entries, sorted) to the database of c: takes the
 * advisory lock (waiting for another migrate), creates schema_migrations when missing,
 * refuses when an applied migration's checksum differs from list's, then applies each pending
 * migration in its own transaction and records it. Prints one line per applied migration (or
 * "up to date") to stdout unless quiet. Returns 0, or -1 with err. Blocks on the database. */
int cap_ctl_migrate_apply(PGconn *c, const struct cap_ctl_migration *list, size_t n, bool quiet,
                          struct cap_err *err);

/* Prints every migration of list with its state (applied, pending, changed) and, at the end,
 * applied versions this capctl does not know (unknown); as JSON objects {version, name,
 * checksum, status, applied_at} when json. Returns 0, or -1 with err. Blocks. */
int cap_ctl_migrate_status(PGconn *c, const struct cap_ctl_migration *list, size_t n, bool json,
                           struct cap_err *err);

#endif
