/* The CT log list as data: the worker reads the configured v3 log list (ct.log_list_url, over
 * worker/http.c under the network policy, or ct.log_list_file) when a CT run first needs it and
 * again every ct.log_list_refresh, without a restart; a list that cannot be fetched or parsed
 * keeps the last good one (logged, counted in cap_ct_log_list_refreshes_total). Each good read
 * is written to ct_log_list (migration 020), which remembers the logs that left the list so
 * their sources read them to their final tree head. */
#ifndef CAP_CT_LOGLIST_REFRESH_H
#define CAP_CT_LOGLIST_REFRESH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"
#include "common/ct_loglist.h"
#include "common/err.h"
#include "common/policy.h"

/* Whether a log list is configured (ct.log_list_url or ct.log_list_file). */
bool cap_ct_loglist_configured(const struct cap_config *cfg);

/* The logs of the list a certificate issued now can land in (cap_ct_log_current), reading the
 * list first when it has not been read or is due (ct.log_list_refresh; 60 s after a failed
 * read), and writing a new list to ct_log_list on pg (outside any transaction; a failure there
 * is logged and retried with the next call). On success *out (an array of *n copies, NULL when
 * none; cap_ct_logs_free) belongs to the caller. -1 with err when no list was ever read. Blocks
 * (HTTP, file, PostgreSQL); one caller at a time reads the list, the others meanwhile use the
 * last good one (or, before the first, wait for the read). */
int cap_ct_loglist_current_logs(const struct cap_config *cfg, const struct cap_policy *pol,
                                PGconn *pg, struct cap_ct_log **out, size_t *n,
                                struct cap_err *err);

/* Forgets the list read (the next call reads it again). For shutdown and tests. */
void cap_ct_loglist_refresh_reset(void);

#endif
