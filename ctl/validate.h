/* Validation of what capctl users type that is not a source field (those are checked by the
 * normalisers of the source descriptors, common/source/): source names, schedules, integers,
 * fingerprints, endpoints, and the reasons, end times and subject patterns of the finding
 * workflow. Pure: no I/O, no database. Every error names the option and the
 * offending value, e.g. `--limit "0": must be an integer 1-1000000000`. */
#ifndef CAP_CTL_VALIDATE_H
#define CAP_CTL_VALIDATE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/source/value.h"

/* Longest host name (RFC 1123). */
#define CAP_CTL_HOSTNAME_MAX CAP_VALUE_HOSTNAME_MAX

/* Checks a source name as the database does: a letter or digit, then letters, digits, ".",
 * "_" or "-", 128 at most. */
int cap_ctl_validate_name(const char *name, struct cap_err *err);

/* Parses an integer in min..max. */
int cap_ctl_validate_int(const char *opt, const char *text, int64_t min, int64_t max, int64_t *out,
                         struct cap_err *err);

/* Checks a schedule with the scheduler's own parser; its message follows "opt: ". */
int cap_ctl_validate_schedule(const char *opt, const char *text, struct cap_err *err);

/* Checks a SHA-256 fingerprint: 64 hex digits, colons between byte pairs allowed
 * (AB:CD:...); writes it lower-case without colons into out (at least 65 bytes). */
int cap_ctl_validate_fingerprint(const char *text, char *out, size_t n, struct cap_err *err);

/* Splits "host:port", "[v6addr]:port" or "v4addr:port" into host (lower-cased, brackets
 * removed; out at least CAP_CTL_HOSTNAME_MAX + 1) and port. */
int cap_ctl_validate_host_port(const char *text, char *host, size_t n, int *port,
                               struct cap_err *err);

/* Longest reason of an acknowledgement or suppression rule, longest --by name and longest
 * subject pattern, in bytes (the database holds the same limits). */
#define CAP_CTL_REASON_MAX 1024
#define CAP_CTL_BY_MAX 128
#define CAP_CTL_PATTERN_MAX 256

/* Checks a piece of text people write (--reason, --by): 1..max bytes, not only blanks, no
 * control characters: `--reason "  ": must not be empty`. */
int cap_ctl_validate_text(const char *opt, const char *text, size_t max, struct cap_err *err);

/* Parses the end of an acknowledgement or rule into Unix seconds (*out, only on success):
 * YYYY-MM-DD (00:00 UTC of that day), YYYY-MM-DDTHH:MM[:SS] (or a space for T) in UTC or with Z
 * or +HH:MM / -HH:MM, or a duration from now: N followed by s, m, h, d or w ("30d", "2s"). It
 * must lie after now (Unix seconds) and before the year 10000: `--until "2020-01-01": is not in
 * the future`. */
int cap_ctl_validate_until(const char *opt, const char *text, int64_t now, int64_t *out,
                           struct cap_err *err);

/* True when an --until text is a duration ("2s", "30d"), with its seconds in *secs: the end
 * is then counted from the database's clock when the row is written, not from the client's
 * whole second when it was parsed (which can lie up to a second, and a slow round trip, behind). */
bool cap_ctl_until_span(const char *text, int64_t *secs);

/* Checks a suppression subject pattern: 1-256 bytes of letters, digits, ".", "-", "_", ":",
 * "[", "]" and "*" (any run of characters), with at least one character other than "*". */
int cap_ctl_validate_pattern(const char *opt, const char *text, struct cap_err *err);

#endif
