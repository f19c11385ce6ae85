/* capctl option parsing: "--name VALUE", "--name=VALUE", flags, positionals anywhere, "--". */
#include "ctl/args.h"

#include <string.h>

static const struct cap_ctl_opt_spec *lookup(const struct cap_ctl_opt_spec *specs, const char *name,
                                             size_t len)
{
    for (const struct cap_ctl_opt_spec *s = specs; s && s->name; s++)
        if (strlen(s->name) == len && memcmp(s->name, name, len) == 0)
            return s;
    return NULL;
}

int cap_ctl_args_parse(int argc, char **argv, const struct cap_ctl_opt_spec *specs, size_t max_pos,
                       struct cap_ctl_args *out, struct cap_err *err)
{
    struct cap_ctl_args a;
    memset(&a, 0, sizeof a);
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    bool only_pos = false;
    if (max_pos > CAP_CTL_POS_MAX)
        max_pos = CAP_CTL_POS_MAX;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (!only_pos && strcmp(w, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (only_pos || strncmp(w, "--", 2) != 0) {
            if (a.npos >= max_pos) {
                cap_err_set(err, CAP_E_INVALID, "unexpected argument \"%s\"",
                            cap_err_quote(q, sizeof q, w, strlen(w)));
                return -1;
            }
            a.pos[a.npos++] = w;
            continue;
        }
        const char *name = w + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct cap_ctl_opt_spec *s = lookup(specs, name, len);
        if (!s) {
            cap_err_set(err, CAP_E_INVALID, "unknown option \"%s\"",
                        cap_err_quote(q, sizeof q, w, eq ? (size_t)(eq - w) : strlen(w)));
            return -1;
        }
        const char *value = NULL;
        if (s->kind == CAP_CTL_FLAG) {
            if (eq) {
                cap_err_set(err, CAP_E_INVALID, "option --%s takes no value", s->name);
                return -1;
            }
        } else if (eq) {
            value = eq + 1;
        } else {
            /* A following word that is itself an option means the value was forgotten. */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                cap_err_set(err, CAP_E_INVALID, "option --%s needs a value", s->name);
                return -1;
            }
            value = argv[++i];
        }
        if (a.nopts >= CAP_CTL_ARGS_MAX) {
            cap_err_set(err, CAP_E_LIMIT, "too many options (at most %d)", CAP_CTL_ARGS_MAX);
            return -1;
        }
        a.opts[a.nopts].id = s->id;
        a.opts[a.nopts].name = s->name;
        a.opts[a.nopts].value = value;
        a.nopts++;
    }
    *out = a;
    return 0;
}

const char *cap_ctl_args_get(const struct cap_ctl_args *a, int id)
{
    const char *v = NULL;
    for (size_t i = 0; i < a->nopts; i++)
        if (a->opts[i].id == id)
            v = a->opts[i].value;
    return v;
}

bool cap_ctl_args_has(const struct cap_ctl_args *a, int id)
{
    for (size_t i = 0; i < a->nopts; i++)
        if (a->opts[i].id == id)
            return true;
    return false;
}

int cap_ctl_args_split(const char *opt, const char *value, char *buf, size_t n, const char **parts,
                       size_t max_parts, struct cap_err *err)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    size_t len = strlen(value);
    if (len + 1 > n) {
        cap_err_set(err, CAP_E_LIMIT, "%s \"%s\": longer than %zu bytes", opt,
                    cap_err_quote(q, sizeof q, value, len), n - 1);
        return -1;
    }
    memcpy(buf, value, len + 1);
    size_t np = 0;
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*p == '\0') {
            cap_err_set(err, CAP_E_INVALID, "%s \"%s\": empty item in comma-separated list", opt,
                        cap_err_quote(q, sizeof q, value, len));
            return -1;
        }
        if (np >= max_parts) {
            cap_err_set(err, CAP_E_LIMIT, "%s \"%s\": more than %zu items", opt,
                        cap_err_quote(q, sizeof q, value, len), max_parts);
            return -1;
        }
        parts[np++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    return (int)np;
}
