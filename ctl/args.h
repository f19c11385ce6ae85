/* capctl option parsing: a small table-driven parser for "--name VALUE", "--name=VALUE" and
 * flags, with positional arguments anywhere and "--" ending the options. Pure. */
#ifndef CAP_CTL_ARGS_H
#define CAP_CTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Most options one command line may carry, and most positional arguments. */
#define CAP_CTL_ARGS_MAX 512
#define CAP_CTL_POS_MAX 8

enum cap_ctl_opt_kind {
    CAP_CTL_FLAG = 0, /* --wait */
    CAP_CTL_VALUE,    /* --timeout 5s (the last one given wins) */
    CAP_CTL_LIST,     /* --cidr A --cidr B,C (repeatable; see cap_ctl_args_split) */
};

/* One option a command accepts. Tables end with an entry whose name is NULL. */
struct cap_ctl_opt_spec {
    const char *name; /* without the dashes: "cidr" */
    int kind;         /* enum cap_ctl_opt_kind */
    int id;           /* the caller's identifier, > 0 */
};

/* One option as given, in command-line order. value is NULL for flags. */
struct cap_ctl_opt {
    int id;
    const char *name;
    const char *value;
};

/* The parsed command line. Strings point into argv. */
struct cap_ctl_args {
    const char *pos[CAP_CTL_POS_MAX];
    size_t npos;
    struct cap_ctl_opt opts[CAP_CTL_ARGS_MAX];
    size_t nopts;
};

/* Parses argv[0..argc-1] (the words after the command) against specs. Fails with err, code
 * CAP_E_INVALID, for an unknown option (`unknown option "--x"`), a missing value (`option
 * --cidr needs a value`), a value given to a flag, or more than max_pos positional arguments
 * (`unexpected argument "x"`). out is filled only on success. */
int cap_ctl_args_parse(int argc, char **argv, const struct cap_ctl_opt_spec *specs, size_t max_pos,
                       struct cap_ctl_args *out, struct cap_err *err);

/* The value of the last option with id, or NULL when it was not given. */
const char *cap_ctl_args_get(const struct cap_ctl_args *a, int id);

/* True when an option with id was given. */
bool cap_ctl_args_has(const struct cap_ctl_args *a, int id);

/* Splits a list option value on commas into parts (pointers into buf, which the function
 * fills from value; buf has room for n bytes). Empty parts ("a,,b", "a,") are an error naming
 * the option (`--cidr "a,,b": empty item in comma-separated list`). Returns the number of
 * parts, or -1 with err. */
int cap_ctl_args_split(const char *opt, const char *value, char *buf, size_t n, const char **parts,
                       size_t max_parts, struct cap_err *err);

#endif
