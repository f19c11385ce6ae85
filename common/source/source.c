/* The registry of source types, and what every descriptor shares: parsing a spec into the
 * type's typed struct (table-driven, by each field's kind and offset), the defaults, the
 * whole-source check and the schema the database's discovery_source_types holds. */
#include "common/source/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/source/ct_log.h"
#include "common/source/network_scan.h"
#include "common/source/value.h"

#define QUOTE_MAX (CAP_ERR_VALUE_MAX * 4 + 8)

static const struct cap_source_type *const BUILTIN[] = {&cap_network_scan_type, &cap_ct_log_type};
#define BUILTIN_N (sizeof BUILTIN / sizeof BUILTIN[0])

/* Types registered at start-up (tests, builds that link one in); written before threads. */
static const struct cap_source_type *registered[CAP_SOURCE_TYPES_MAX - BUILTIN_N];
static size_t registered_n;

const struct cap_source_type *cap_source_type_at(size_t i)
{
    if (i < BUILTIN_N)
        return BUILTIN[i];
    i -= BUILTIN_N;
    return i < registered_n ? registered[i] : NULL;
}

const struct cap_source_type *cap_source_type_find(const char *type)
{
    const struct cap_source_type *t;
    for (size_t i = 0; type && (t = cap_source_type_at(i)) != NULL; i++)
        if (strcmp(t->type, type) == 0)
            return t;
    return NULL;
}

int cap_source_type_register(const struct cap_source_type *t, struct cap_err *err)
{
    if (cap_source_type_find(t->type)) {
        cap_err_set(err, CAP_E_INVALID, "source type \"%s\" is registered already", t->type);
        return -1;
    }
    if (registered_n == sizeof registered / sizeof registered[0]) {
        cap_err_set(err, CAP_E_LIMIT, "source type \"%s\": more than %d types", t->type,
                    CAP_SOURCE_TYPES_MAX);
        return -1;
    }
    registered[registered_n++] = t;
    return 0;
}

const struct cap_source_field *cap_source_field_find(const struct cap_source_type *t,
                                                     const char *name)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return &t->fields[i];
    return NULL;
}

const char *cap_source_kind_name(enum cap_source_kind k)
{
    switch (k) {
    case CAP_SOURCE_INT:
        return "int";
    case CAP_SOURCE_TEXT:
        return "text";
    case CAP_SOURCE_TEXTS:
        return "texts";
    case CAP_SOURCE_CIDRS:
        return "cidrs";
    case CAP_SOURCE_PORTS:
        return "ports";
    case CAP_SOURCE_PORT_MAP:
        return "port_map";
    }
    return "unknown";
}

bool cap_source_kind_is_list(enum cap_source_kind k)
{
    return k == CAP_SOURCE_TEXTS || k == CAP_SOURCE_CIDRS || k == CAP_SOURCE_PORTS ||
           k == CAP_SOURCE_PORT_MAP;
}

const char *cap_source_choices_text(const struct cap_source_field *f, char *out, size_t n)
{
    size_t count = 0, used = 0;
    out[0] = '\0';
    while (f->choices && f->choices[count].name)
        count++;
    for (size_t i = 0; i < count; i++) {
        const char *sep = i == 0 ? "" : i + 1 == count ? " or " : ", ";
        int w = snprintf(out + used, n - used, "%s%s", sep, f->choices[i].name);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
    return out;
}

void cap_source_summary_append(char *out, size_t n, const char *text)
{
    size_t used = strlen(out), len = strlen(text);
    if (n < 4 || used + 1 >= n)
        return;
    if (used + len + 1 <= n) {
        memcpy(out + used, text, len + 1);
        return;
    }
    /* Cut: keep what fits before "...". */
    size_t keep = n - 1 - used;
    memcpy(out + used, text, keep);
    out[n - 1] = '\0';
    memcpy(out + n - 4, "...", 3);
}

/* --- the typed struct -------------------------------------------------------------------- */

static void *member(void *base, size_t off)
{
    return (char *)base + off;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void cap_source_spec_free(const struct cap_source_type *t, void *spec)
{
    if (!spec)
        return;
    for (size_t i = 0; i < t->nfields; i++) {
        const struct cap_source_field *f = &t->fields[i];
        switch (f->kind) {
        case CAP_SOURCE_INT:
            break;
        case CAP_SOURCE_TEXT:
            free(*(char **)member(spec, f->offset));
            break;
        case CAP_SOURCE_PORTS:
            free(*(int **)member(spec, f->offset));
            break;
        case CAP_SOURCE_TEXTS:
        case CAP_SOURCE_CIDRS:
        case CAP_SOURCE_PORT_MAP:
            free_strv(*(char ***)member(spec, f->offset));
            break;
        }
    }
    free(spec);
}

static void store_int(const struct cap_source_field *f, void *spec, int64_t v)
{
    if (f->size == sizeof(int))
        *(int *)member(spec, f->offset) = (int)v;
    else
        *(int64_t *)member(spec, f->offset) = v;
}

static bool is_choice(const struct cap_source_field *f, const char *s)
{
    if (!f->choices)
        return true;
    for (size_t i = 0; f->choices[i].name; i++)
        if (strcmp(f->choices[i].name, s) == 0)
            return true;
    return false;
}

/* Stores field f of spec from v (NULL: JSON null; absent: the default). */
static int parse_field(const struct cap_source_field *f, json_object *v, bool present, void *spec,
                       struct cap_err *err)
{
    char q[QUOTE_MAX];
    bool is_null = !present || v == NULL;
    switch (f->kind) {
    case CAP_SOURCE_INT: {
        if (is_null && (f->nullable || !present)) {
            store_int(f, spec, f->def);
            return 0;
        }
        int64_t x = json_object_get_int64(v);
        if (is_null || !json_object_is_type(v, json_type_int) || x < f->min || x > f->max) {
            cap_err_set(err, CAP_E_INVALID, "spec field \"%s\": expected an integer %lld-%lld",
                        f->name, (long long)f->min, (long long)f->max);
            return -1;
        }
        store_int(f, spec, x);
        return 0;
    }
    case CAP_SOURCE_TEXT: {
        const char *s = NULL;
        if (is_null && (f->nullable || !present)) {
            s = f->def_text;
        } else if (!is_null && json_object_is_type(v, json_type_string)) {
            s = json_object_get_string(v);
            if (!is_choice(f, s)) {
                char c[256];
                cap_err_set(err, CAP_E_INVALID, "spec field \"%s\": \"%s\" is not %s", f->name,
                            cap_err_quote(q, sizeof q, s, strlen(s)),
                            cap_source_choices_text(f, c, sizeof c));
                return -1;
            }
        } else {
            cap_err_set(err, CAP_E_INVALID, "spec field \"%s\": expected a string", f->name);
            return -1;
        }
        char *copy = s ? strdup(s) : NULL;
        if (s && !copy) {
            cap_err_set(err, CAP_E_NOMEM, "spec field \"%s\": out of memory", f->name);
            return -1;
        }
        *(char **)member(spec, f->offset) = copy;
        return 0;
    }
    case CAP_SOURCE_PORTS:
    case CAP_SOURCE_TEXTS:
    case CAP_SOURCE_CIDRS:
    case CAP_SOURCE_PORT_MAP:
        break;
    }
    size_t n = 0;
    if (!is_null && !json_object_is_type(v, json_type_array)) {
        cap_err_set(err, CAP_E_INVALID, "spec field \"%s\": expected a list", f->name);
        return -1;
    }
    if (is_null && present) {
        cap_err_set(err, CAP_E_INVALID, "spec field \"%s\": expected a list, got null", f->name);
        return -1;
    }
    if (!is_null)
        n = json_object_array_length(v);
    *(size_t *)member(spec, f->count_offset) = 0;
    if (f->kind == CAP_SOURCE_PORTS) {
        int *ports = calloc(n ? n : 1, sizeof *ports);
        if (!ports)
            goto nomem;
        *(int **)member(spec, f->offset) = ports;
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(v, i);
            int64_t x = json_object_get_int64(e);
            if (!json_object_is_type(e, json_type_int) || x < 1 || x > 65535) {
                cap_err_set(err, CAP_E_INVALID,
                            "spec field \"%s\": entry %zu is not a port 1-65535", f->name, i + 1);
                return -1;
            }
            ports[i] = (int)x;
        }
        *(size_t *)member(spec, f->count_offset) = n;
        return 0;
    }
    char **strv = calloc(n + 1, sizeof *strv);
    if (!strv)
        goto nomem;
    *(char ***)member(spec, f->offset) = strv;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string)) {
            cap_err_set(err, CAP_E_INVALID, "spec field \"%s\": entry %zu is not a string", f->name,
                        i + 1);
            return -1;
        }
        strv[i] = strdup(json_object_get_string(e));
        if (!strv[i])
            goto nomem;
    }
    *(size_t *)member(spec, f->count_offset) = n;
    return 0;
nomem:
    cap_err_set(err, CAP_E_NOMEM, "spec field \"%s\": out of memory", f->name);
    return -1;
}

int cap_source_spec_parse(const struct cap_source_type *t, const char *spec, void **out,
                          struct cap_err *err)
{
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    size_t len = strlen(spec);
    json_object *root = len <= INT32_MAX ? json_tokener_parse_ex(tok, spec, (int)len) : NULL;
    bool whole = root && json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    if (!whole || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        cap_err_set(err, CAP_E_INVALID, "%s spec: not a JSON object", t->type);
        return -1;
    }
    void *s = calloc(1, t->spec_size);
    if (!s) {
        json_object_put(root);
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < t->nfields; i++) {
        json_object *v = NULL;
        bool present = json_object_object_get_ex(root, t->fields[i].name, &v);
        if (parse_field(&t->fields[i], v, present, s, err) < 0) {
            json_object_put(root);
            cap_source_spec_free(t, s);
            return -1;
        }
    }
    json_object_put(root);
    *out = s;
    return 0;
}

/* --- JSON -------------------------------------------------------------------------------- */

/* The field's default as JSON (NULL for null), a new reference. */
static json_object *default_json(const struct cap_source_field *f)
{
    switch (f->kind) {
    case CAP_SOURCE_INT:
        return f->nullable ? NULL : json_object_new_int64(f->def);
    case CAP_SOURCE_TEXT:
        return f->def_text ? json_object_new_string(f->def_text) : NULL;
    default:
        return json_object_new_array();
    }
}

json_object *cap_source_spec_defaults(const struct cap_source_type *t)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; o && i < t->nfields; i++)
        json_object_object_add(o, t->fields[i].name, default_json(&t->fields[i]));
    return o;
}

int cap_source_check(const struct cap_source_type *t, const char *name, json_object *spec,
                     struct cap_err *err)
{
    char q[QUOTE_MAX];
    cap_err_quote(q, sizeof q, name, strlen(name));
    if (t->needs_one_of && t->needs_one_of[0]) {
        bool any = false;
        char opts[256] = "";
        size_t used = 0;
        for (size_t i = 0; t->needs_one_of[i]; i++) {
            json_object *v = NULL;
            if (json_object_object_get_ex(spec, t->needs_one_of[i], &v) &&
                json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0)
                any = true;
            const struct cap_source_field *f = cap_source_field_find(t, t->needs_one_of[i]);
            int w = snprintf(opts + used, sizeof opts - used, "%s--%s", i ? " or " : "",
                             f && f->option ? f->option : t->needs_one_of[i]);
            if (w > 0 && (size_t)w < sizeof opts - used)
                used += (size_t)w;
        }
        if (!any) {
            cap_err_set(err, CAP_E_INVALID, "source \"%s\": a %s source needs at least one %s", q,
                        t->type, opts);
            return -1;
        }
    }
    for (size_t i = 0; i < t->nfields; i++) {
        const struct cap_source_field *f = &t->fields[i];
        json_object *v = NULL;
        if (!f->max_items || !json_object_object_get_ex(spec, f->name, &v) ||
            !json_object_is_type(v, json_type_array))
            continue;
        size_t n = json_object_array_length(v);
        if (n > f->max_items) {
            cap_err_set(err, CAP_E_INVALID, "source \"%s\": at most %zu --%s entries, not %zu", q,
                        f->max_items, f->option ? f->option : f->name, n);
            return -1;
        }
    }
    return 0;
}

json_object *cap_source_type_schema(const struct cap_source_type *t)
{
    json_object *o = json_object_new_object();
    json_object *fields = json_object_new_object();
    json_object *needs = json_object_new_array();
    if (!o || !fields || !needs) {
        json_object_put(o);
        json_object_put(fields);
        json_object_put(needs);
        return NULL;
    }
    for (size_t i = 0; i < t->nfields; i++) {
        const struct cap_source_field *f = &t->fields[i];
        json_object *d = json_object_new_object();
        json_object_object_add(d, "kind", json_object_new_string(cap_source_kind_name(f->kind)));
        json_object_object_add(d, "default", default_json(f));
        if (f->kind == CAP_SOURCE_INT) {
            json_object_object_add(d, "min", json_object_new_int64(f->min));
            json_object_object_add(d, "max", json_object_new_int64(f->max));
        }
        if (f->choices) {
            json_object *c = json_object_new_array();
            for (size_t k = 0; f->choices[k].name; k++)
                json_object_array_add(c, json_object_new_string(f->choices[k].name));
            json_object_object_add(d, "choices", c);
        }
        json_object_object_add(fields, f->name, d);
    }
    for (size_t i = 0; t->needs_one_of && t->needs_one_of[i]; i++)
        json_object_array_add(needs, json_object_new_string(t->needs_one_of[i]));
    json_object_object_add(o, "type", json_object_new_string(t->type));
    json_object_object_add(o, "fields", fields);
    json_object_object_add(o, "needs_one_of", needs);
    json_object_object_add(o, "needs_constraint",
                           t->needs_constraint ? json_object_new_string(t->needs_constraint)
                                               : NULL);
    return o;
}

/* --- normalisers any field may use ----------------------------------------------------------- */

int cap_source_norm_int(const struct cap_source_field *f, const char *opt, const char *text,
                        char *out, size_t n, struct cap_err *err)
{
    int64_t v = 0;
    if (cap_value_int(opt, text, f->min, f->max, &v, err) < 0)
        return -1;
    snprintf(out, n, "%lld", (long long)v);
    return 0;
}

int cap_source_norm_choice(const struct cap_source_field *f, const char *opt, const char *text,
                           char *out, size_t n, struct cap_err *err)
{
    for (size_t i = 0; f->choices && f->choices[i].name; i++) {
        if (strcmp(text, f->choices[i].name) == 0) {
            snprintf(out, n, "%s", f->choices[i].name);
            return 0;
        }
    }
    char q[QUOTE_MAX], c[256];
    cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must be %s", opt,
                cap_err_quote(q, sizeof q, text, strlen(text)),
                cap_source_choices_text(f, c, sizeof c));
    return -1;
}
