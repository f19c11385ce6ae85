/* Redis helpers over hiredis (synchronous): connect from a redis:// URL with AUTH (user and
 * password) and database selection, and error reporting. hiredis 0.14 has no TLS: TLS to Redis
 * needs a TLS-terminating proxy. All calls block. */
#ifndef CAP_REDIS_H
#define CAP_REDIS_H

#include <hiredis/hiredis.h>

#include "common/err.h"

/* Parses redis://[user[:password]@]host[:port][/db] (also unix:///path/to/sock). */
struct cap_redis_url {
    char host[256];
    int port;
    char unix_path[256];
    char user[128];
    char password[256];
    int db;
};
int cap_redis_parse_url(const char *url, struct cap_redis_url *out, struct cap_err *err);

/* Connects, authenticates and selects the database. timeout_ms bounds connect and every
 * command (0: no command timeout). Returns NULL with err; the password never appears in it.
 * Caller frees with redisFree. */
redisContext *cap_redis_connect(const char *url, int timeout_ms, struct cap_err *err);

/* Runs a command given as argv. Returns the reply (caller frees with freeReplyObject), or NULL
 * with err when the connection failed or Redis answered an error (`what: <error>`). */
redisReply *cap_redis_cmd(redisContext *c, const char *what, int argc, const char **argv,
                          const size_t *lens, struct cap_err *err);

#endif
