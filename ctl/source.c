/* capctl source commands: add, edit, list, show, enable, disable, delete, trigger [--wait].
 * The options of add and edit, their checks, the spec they write and the summary source list
 * prints come from the source type descriptors (common/source/): nothing here names a type or
 * a field. Every value is validated before anything is written; database refusals (a
 * duplicate name, a check the database enforces) become messages that name the source. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "common/config.h"
#include "common/pg.h"
#include "common/policy.h"
#include "common/schedule.h"
#include "common/source/source.h"
#include "common/source/value.h"
#include "ctl/ctl.h"
#include "ctl/out.h"
#include "ctl/validate.h"

#define QUOTE_MAX (CAP_ERR_VALUE_MAX * 4 + 8)
/* Room for a synopsis made from the descriptors. */
#define SYN_MAX 4096
/* Most options of fields (set, add, remove and clear of every field of every type). */
#define FIELD_OPTS_MAX 256
/* Most fields of one type. */
#define FIELDS_MAX 64

static const char SYN_SOURCE[] =
    "capctl source add|edit|list|show|enable|disable|delete|trigger ... (capctl source --help)";
static const char SYN_LIST[] = "capctl source list";
static const char SYN_SHOW[] = "capctl source show NAME";
static const char SYN_ENABLE[] = "capctl source enable|disable NAME";
static const char SYN_DELETE[] = "capctl source delete NAME";
static const char SYN_TRIGGER[] = "capctl source trigger NAME [--wait [--timeout 10m]]";

/* --- SQL ------------------------------------------------------------------------------- */

static const char SQL_INSERT[] =
    "INSERT INTO discovery_sources (name, type, enabled, schedule, trigger_on_save, spec)"
    " VALUES ($1, $2, $3::boolean, $4, $5::boolean, $6::jsonb) RETURNING id";
static const char SQL_UPDATE[] =
    "UPDATE discovery_sources SET name = $1, enabled = $3::boolean, schedule = $4,"
    " trigger_on_save = $5::boolean, spec = $6::jsonb"
    " WHERE id = $7::bigint AND type = $2 RETURNING id";
static const char SQL_LOAD[] =
    "SELECT id, name, type, enabled, schedule, trigger_on_save, spec FROM discovery_sources"
    " WHERE name = $1 FOR UPDATE";
static const char SQL_MAX_RUN[] =
    "SELECT coalesce(max(id), 0) FROM discovery_runs WHERE source_id = $1::bigint";
static const char SQL_SAVE_RUN[] =
    "SELECT id FROM discovery_runs WHERE source_id = $1::bigint AND id > $2::bigint"
    " AND trigger = 'save' ORDER BY id LIMIT 1";
static const char SQL_ID[] = "SELECT id FROM discovery_sources WHERE name = $1";
static const char SQL_TRIGGER[] =
    "INSERT INTO discovery_runs (source_id, trigger) VALUES ($1::bigint, 'manual')"
    " ON CONFLICT (source_id) WHERE status IN ('queued', 'running') DO NOTHING"
    " RETURNING id, status";
static const char SQL_ACTIVE_RUN[] =
    "SELECT id, status FROM discovery_runs WHERE source_id = $1::bigint"
    " AND status IN ('queued', 'running')";
static const char SQL_RUN_STATUS[] =
    "SELECT status, coalesce(error, ''), targets_done, targets_total, shards, "
    "(SELECT count(*) FROM discovery_run_shards sh WHERE sh.run_id = r.id "
    " AND sh.status NOT IN ('queued', 'running')), "
    "(SELECT count(*) FROM discovery_run_shards sh WHERE sh.run_id = r.id "
    " AND sh.status = 'running') "
    "FROM discovery_runs r WHERE id = $1::bigint";
static const char SQL_LIST_SPECS[] = "SELECT name, type, spec FROM discovery_sources";
/* $1, $2: source names and what their descriptors summarise them as. */
static const char SQL_LIST_TABLE[] =
    "SELECT s.name, s.type, s.enabled, s.schedule,"
    " date_trunc('second', s.next_run_at) AS next_run_at, NULLIF(t.targets, '') AS targets,"
    " r.id AS last_run, r.status AS last_status, s.last_error"
    " FROM discovery_sources s"
    " LEFT JOIN unnest($1::text[], $2::text[]) AS t(name, targets) ON t.name = s.name"
    " LEFT JOIN LATERAL (SELECT id, status FROM discovery_runs"
    "   WHERE source_id = s.id ORDER BY id DESC LIMIT 1) r ON true"
    " ORDER BY s.name";
static const char SQL_LIST_JSON[] = "SELECT * FROM discovery_sources ORDER BY name";
static const char SQL_SHOW[] = "SELECT * FROM discovery_sources WHERE name = $1";
static const char SQL_SHOW_RUNS[] =
    "SELECT r.id, r.trigger, r.status, date_trunc('second', r.queued_at) AS queued_at,"
    " date_trunc('second', r.finished_at) AS finished_at,"
    " r.targets_done || '/' || r.targets_total AS targets, r.error"
    " FROM discovery_runs r JOIN discovery_sources s ON s.id = r.source_id"
    " WHERE s.name = $1 ORDER BY r.id DESC LIMIT 5";
static const char SQL_SET_ENABLED[] =
    "UPDATE discovery_sources SET enabled = $2::boolean WHERE name = $1 RETURNING id";
static const char SQL_DELETE[] = "DELETE FROM discovery_sources WHERE name = $1 RETURNING id";

/* --- options --------------------------------------------------------------------------- */

/* Options every type takes; the options of fields have ids from O_FIELD_BASE. */
enum {
    O_TYPE = 1,
    O_SCHEDULE,
    O_POLL,
    O_TRIGGER,
    O_TOS,
    O_NO_TOS,
    O_DISABLED,
    O_ENABLED,
    O_RENAME,
    O_FIELD_BASE = 100,
};

static const struct {
    const char *name;
    int kind, id;
    bool edit_only;
} COMMON[] = {
    {"type", CAP_CTL_VALUE, O_TYPE, false},
    {"schedule", CAP_CTL_VALUE, O_SCHEDULE, false},
    {"poll", CAP_CTL_VALUE, O_POLL, false},
    {"trigger", CAP_CTL_FLAG, O_TRIGGER, false},
    {"trigger-on-save", CAP_CTL_FLAG, O_TOS, false},
    {"no-trigger-on-save", CAP_CTL_FLAG, O_NO_TOS, true},
    {"disabled", CAP_CTL_FLAG, O_DISABLED, false},
    {"enabled", CAP_CTL_FLAG, O_ENABLED, true},
    {"rename", CAP_CTL_VALUE, O_RENAME, true},
};
#define COMMON_N (sizeof COMMON / sizeof COMMON[0])

/* What an option of a field does: set it (a list: replace it with what the command line
 * lists), add to or remove from a list, set a nullable field to null. */
enum field_op { OP_SET = 0, OP_ADD, OP_REMOVE, OP_CLEAR };

/* One option of a field, the same for every type that has it: capctl checks a value before it
 * knows the type (the descriptors give an option one kind and normaliser in every type). */
struct field_opt {
    char name[64];
    enum field_op op;
    const struct cap_source_field *field; /* the first type's field with this option */
};

static struct field_opt field_opts[FIELD_OPTS_MAX];
static size_t field_opts_n;

static void field_opt_add(const char *prefix, const char *option, enum field_op op,
                          const struct cap_source_field *f)
{
    char name[64];
    int w = snprintf(name, sizeof name, "%s%s", prefix, option);
    assert(w > 0 && (size_t)w < sizeof name);
    for (size_t i = 0; i < field_opts_n; i++)
        if (strcmp(field_opts[i].name, name) == 0)
            return;
    assert(field_opts_n < FIELD_OPTS_MAX);
    struct field_opt *o = &field_opts[field_opts_n++];
    memcpy(o->name, name, (size_t)w + 1);
    o->op = op;
    o->field = f;
}

/* Fills field_opts from the known types, once. */
static void field_opts_build(void)
{
    if (field_opts_n)
        return;
    const struct cap_source_type *t;
    for (size_t i = 0; (t = cap_source_type_at(i)) != NULL; i++) {
        for (size_t k = 0; k < t->nfields; k++) {
            const struct cap_source_field *f = &t->fields[k];
            field_opt_add("", f->option, OP_SET, f);
            if (cap_source_kind_is_list(f->kind)) {
                field_opt_add("add-", f->option, OP_ADD, f);
                field_opt_add("remove-", f->option, OP_REMOVE, f);
            }
            if (f->nullable)
                field_opt_add(f->clear_option ? "" : "no-",
                              f->clear_option ? f->clear_option : f->option, OP_CLEAR, f);
        }
    }
}

static const struct field_opt *field_opt_of(int id)
{
    return id >= O_FIELD_BASE && (size_t)(id - O_FIELD_BASE) < field_opts_n
               ? &field_opts[id - O_FIELD_BASE]
               : NULL;
}

/* The field of type t that option o sets, or NULL when t has no such field. */
static const struct cap_source_field *type_field(const struct cap_source_type *t,
                                                 const struct field_opt *o)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].option, o->field->option) == 0)
            return &t->fields[i];
    return NULL;
}

/* The option table of add (edit false) or edit; static storage, ends with a NULL name. */
static const struct cap_ctl_opt_spec *build_specs(bool edit)
{
    static struct cap_ctl_opt_spec specs[COMMON_N + FIELD_OPTS_MAX + 1];
    field_opts_build();
    size_t n = 0;
    for (size_t i = 0; i < COMMON_N; i++)
        if (edit || !COMMON[i].edit_only)
            specs[n++] = (struct cap_ctl_opt_spec){COMMON[i].name, COMMON[i].kind, COMMON[i].id};
    for (size_t i = 0; i < field_opts_n; i++) {
        const struct field_opt *o = &field_opts[i];
        if (!edit && o->op != OP_SET)
            continue;
        int kind = cap_source_kind_is_list(o->field->kind) && o->op != OP_CLEAR ? CAP_CTL_LIST
                   : o->op == OP_CLEAR                                          ? CAP_CTL_FLAG
                                                                                : CAP_CTL_VALUE;
        specs[n++] = (struct cap_ctl_opt_spec){o->name, kind, O_FIELD_BASE + (int)i};
    }
    specs[n] = (struct cap_ctl_opt_spec){NULL, 0, 0};
    return specs;
}

/* "a or b" (sep " or ") of the types that take option (field option o, or --poll when o is
 * NULL), into out. */
static const char *types_taking(const struct field_opt *o, char *out, size_t n)
{
    const struct cap_source_type *t;
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; (t = cap_source_type_at(i)) != NULL; i++) {
        if (o ? type_field(t, o) == NULL : !t->poll)
            continue;
        int w = snprintf(out + used, n - used, "%s%s", used ? " or " : "", t->type);
        if (w > 0 && (size_t)w < n - used)
            used += (size_t)w;
    }
    return out;
}

/* --- synopses ---------------------------------------------------------------------------- */

/* A synopsis being written: words wrapped at 88 columns, continuation lines indented. */
struct syn {
    char buf[SYN_MAX];
    size_t used, col;
};

static void syn_raw(struct syn *s, const char *text)
{
    size_t len = strlen(text);
    assert(s->used + len < sizeof s->buf);
    memcpy(s->buf + s->used, text, len + 1);
    s->used += len;
    const char *nl = strrchr(text, '\n');
    s->col = nl ? strlen(nl + 1) : s->col + len;
}

static void syn_word(struct syn *s, const char *word)
{
    if (s->col + 1 + strlen(word) > 88)
        syn_raw(s, "\n         ");
    else
        syn_raw(s, " ");
    syn_raw(s, word);
}

/* One option as the synopsis shows it: "[--cidr CIDR]...", "--domain SUFFIX...". */
static void syn_field(struct syn *s, const struct cap_source_type *t,
                      const struct cap_source_field *f)
{
    bool list = cap_source_kind_is_list(f->kind);
    bool required = list && t->needs_one_of && t->needs_one_of[0] && !t->needs_one_of[1] &&
                    strcmp(t->needs_one_of[0], f->name) == 0;
    char w[160];
    snprintf(w, sizeof w, "%s--%s %s%s%s", required ? "" : "[", f->option, f->metavar,
             required ? "" : "]", list ? "..." : "");
    syn_word(s, w);
}

static const char *syn_add(void)
{
    static struct syn s;
    if (s.used)
        return s.buf;
    s.col = 7; /* after "usage: " */
    const struct cap_source_type *t;
    for (size_t i = 0; (t = cap_source_type_at(i)) != NULL; i++) {
        char head[128];
        snprintf(head, sizeof head, "%scapctl source add NAME --type %s", i ? "\n       " : "",
                 t->type);
        syn_raw(&s, head);
        for (size_t k = 0; k < t->nfields; k++)
            syn_field(&s, t, &t->fields[k]);
        syn_word(&s, t->poll ? "[--poll 1h | --schedule S]" : "[--schedule S]");
        syn_word(&s, "[--trigger]");
        syn_word(&s, "[--trigger-on-save]");
        syn_word(&s, "[--disabled]");
    }
    /* Values of lists split on commas, except where a comma belongs to the value. */
    char whole[256] = "";
    for (size_t i = 0; (t = cap_source_type_at(i)) != NULL; i++)
        for (size_t k = 0; k < t->nfields; k++)
            if (t->fields[k].whole && cap_source_kind_is_list(t->fields[k].kind)) {
                size_t l = strlen(whole);
                snprintf(whole + l, sizeof whole - l, "%s--%s", l ? ", " : ", except ",
                         t->fields[k].option);
            }
    char note[400];
    snprintf(note, sizeof note, "\n       (repeatable options also take comma-separated values%s)",
             whole);
    syn_raw(&s, note);
    return s.buf;
}

static const char *syn_edit(void)
{
    static struct syn s;
    if (s.used)
        return s.buf;
    field_opts_build();
    s.col = 7;
    syn_raw(&s, "capctl source edit NAME [any option of source add except --type]");
    for (size_t i = 0; i < field_opts_n; i++) {
        const struct field_opt *o = &field_opts[i];
        if (o->op != OP_ADD)
            continue;
        char w[200];
        snprintf(w, sizeof w, "[--add-%s|--remove-%s %s]...", o->field->option, o->field->option,
                 o->field->metavar);
        syn_word(&s, w);
    }
    syn_word(&s, "[--enabled|--disabled]");
    syn_word(&s, "[--no-trigger-on-save]");
    for (size_t i = 0; i < field_opts_n; i++) {
        if (field_opts[i].op != OP_CLEAR)
            continue;
        char w[80];
        snprintf(w, sizeof w, "[--%s]", field_opts[i].name);
        syn_word(&s, w);
    }
    syn_word(&s, "[--rename NEW]");
    return s.buf;
}

/* --- string lists ---------------------------------------------------------------------- */

struct strlist {
    char **v;
    size_t n, cap;
};

static void strlist_clear(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

static void strlist_free(struct strlist *l)
{
    strlist_clear(l);
    free(l->v);
    l->v = NULL;
    l->cap = 0;
}

static ssize_t strlist_find(const struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return (ssize_t)i;
    return -1;
}

/* Appends a copy of s unless it is already there. 0 or -1 (out of memory). */
static int strlist_add(struct strlist *l, const char *s)
{
    if (strlist_find(l, s) >= 0)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(s);
    if (!l->v[l->n])
        return -1;
    l->n++;
    return 0;
}

static void strlist_remove_at(struct strlist *l, size_t i)
{
    free(l->v[i]);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
    l->n--;
}

/* --- the source being written ---------------------------------------------------------- */

struct source_row {
    int64_t id;
    char name[129];
    const struct cap_source_type *t;
    bool enabled, trigger_on_save;
    char schedule[CAP_SCHEDULE_TEXT_MAX + 1];
    json_object *spec; /* the type's fields as the database holds them */
};

static void row_cleanup(struct source_row *r)
{
    json_object_put(r->spec);
    r->spec = NULL;
}

/* One validated option of a field, in command-line order. */
struct field_change {
    const struct field_opt *o;
    bool first_set; /* a list's first --X of the line: replaces the list */
    char *value;    /* normalised; NULL for OP_CLEAR */
};

/* Everything the options of add/edit say, validated and normalised (phase one: no database). */
struct changes {
    struct field_change *v;
    size_t n;
    bool has_schedule;
    char schedule[CAP_SCHEDULE_TEXT_MAX + 1];
    const char *rename;
};

static void changes_cleanup(struct changes *ch)
{
    for (size_t i = 0; i < ch->n; i++)
        free(ch->v[i].value);
    free(ch->v);
    memset(ch, 0, sizeof *ch);
}

/* Appends a change; takes value. 0, or -1 when memory runs out (value freed). */
static int change_add(struct changes *ch, const struct field_opt *o, bool first_set, char *value)
{
    struct field_change *v = realloc(ch->v, (ch->n + 1) * sizeof *v);
    if (!v) {
        free(value);
        return -1;
    }
    ch->v = v;
    ch->v[ch->n++] = (struct field_change){o, first_set, value};
    return 0;
}

/* Reads a file of at most CAP_VALUE_PEM_MAX bytes into a malloc'd, NUL-terminated buffer. */
static char *read_small_file(const char *opt, const char *path, size_t *len, struct cap_err *err)
{
    char q[QUOTE_MAX];
    FILE *f = fopen(path, "rb");
    if (!f) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": cannot open: %s", opt,
                    cap_err_quote(q, sizeof q, path, strlen(path)), strerror(errno));
        return NULL;
    }
    char *buf = malloc(CAP_VALUE_PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, CAP_VALUE_PEM_MAX + 1, f) : 0;
    int bad = buf ? ferror(f) : 1;
    fclose(f);
    if (bad || n > CAP_VALUE_PEM_MAX) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": %s", opt,
                    cap_err_quote(q, sizeof q, path, strlen(path)),
                    bad ? "cannot read it" : "larger than 64 KiB, not a public key");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The normalised value of one field option's argument (a file's content for a field that
 * takes a file), malloc'd, or NULL with err. */
static char *field_value(const struct cap_source_field *f, const char *opt, const char *text,
                         struct cap_err *err)
{
    if (f->norm_file) {
        size_t len = 0;
        char *data = read_small_file(opt, text, &len, err);
        char *v = data ? f->norm_file(f, opt, text, data, len, err) : NULL;
        free(data);
        return v;
    }
    char out[CAP_SOURCE_VALUE_MAX];
    if (f->norm) {
        if (f->norm(f, opt, text, out, sizeof out, err) < 0)
            return NULL;
        text = out;
    }
    char *v = strdup(text);
    if (!v)
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
    return v;
}

/* Phase one: validates every option value of a, in order. Returns 0, or -1 with err. */
static int collect_changes(const struct cap_ctl_args *a, struct changes *ch, struct cap_err *err)
{
    char q[QUOTE_MAX];
    memset(ch, 0, sizeof *ch);
    bool seen_set[FIELD_OPTS_MAX] = {false};
    for (size_t i = 0; i < a->nopts; i++) {
        const struct cap_ctl_opt *opt_given = &a->opts[i];
        char opt[80];
        snprintf(opt, sizeof opt, "--%s", opt_given->name);
        const struct field_opt *o = field_opt_of(opt_given->id);
        if (o) {
            const struct cap_source_field *f = o->field;
            if (o->op == OP_CLEAR) {
                if (change_add(ch, o, false, NULL) < 0)
                    goto nomem;
                continue;
            }
            if (!cap_source_kind_is_list(f->kind)) {
                char *v = field_value(f, opt, opt_given->value, err);
                if (!v)
                    return -1;
                if (change_add(ch, o, false, v) < 0)
                    goto nomem;
                continue;
            }
            char buf[CAP_VALUE_URL_MAX * 2 + 2];
            const char *parts[256];
            int np = 1;
            if (!f->whole) {
                np = cap_ctl_args_split(opt, opt_given->value, buf, sizeof buf, parts, 256, err);
                if (np < 0)
                    return -1;
            } else {
                parts[0] = opt_given->value;
            }
            size_t idx = (size_t)(o - field_opts);
            for (int k = 0; k < np; k++) {
                char *v = field_value(f, opt, parts[k], err);
                if (!v)
                    return -1;
                if (change_add(ch, o, o->op == OP_SET && !seen_set[idx], v) < 0)
                    goto nomem;
                if (o->op == OP_SET)
                    seen_set[idx] = true;
            }
            continue;
        }
        switch (opt_given->id) {
        case O_SCHEDULE:
            if (cap_ctl_validate_schedule(opt, opt_given->value, err) < 0)
                return -1;
            snprintf(ch->schedule, sizeof ch->schedule, "%s", opt_given->value);
            ch->has_schedule = true;
            break;
        case O_POLL: {
            int64_t ms = 0;
            if (cap_config_parse_duration_ms(opt_given->value, &ms) < 0) {
                cap_err_set(err, CAP_E_INVALID, "%s \"%s\": not a duration (e.g. 10m, 1h, 1d)", opt,
                            cap_err_quote(q, sizeof q, opt_given->value, strlen(opt_given->value)));
                return -1;
            }
            char sched[CAP_SCHEDULE_TEXT_MAX + 1];
            snprintf(sched, sizeof sched, "every %s", opt_given->value);
            if (cap_ctl_validate_schedule(opt, sched, err) < 0)
                return -1;
            snprintf(ch->schedule, sizeof ch->schedule, "%s", sched);
            ch->has_schedule = true;
            break;
        }
        case O_RENAME:
            if (cap_ctl_validate_name(opt_given->value, err) < 0)
                return -1;
            ch->rename = opt_given->value;
            break;
        default:
            break;
        }
    }
    return 0;
nomem:
    cap_err_set(err, CAP_E_NOMEM, "out of memory");
    return -1;
}

/* Options that contradict each other or the source's type: usage errors. */
static int check_combination(const struct cap_ctl_args *a, const struct cap_source_type *t,
                             const char *syn)
{
    char types[256];
    for (size_t i = 0; i < a->nopts; i++) {
        const struct field_opt *o = field_opt_of(a->opts[i].id);
        if ((o && !type_field(t, o)) || (a->opts[i].id == O_POLL && !t->poll))
            return cap_ctl_usage(syn, "--%s applies to %s sources, not %s", a->opts[i].name,
                                 types_taking(o, types, sizeof types), t->type);
    }
    /* Pairs by option id: the common ones, then set and clear of every nullable field. */
    int pairs[COMMON_N + FIELD_OPTS_MAX][2] = {
        {O_POLL, O_SCHEDULE}, {O_TOS, O_NO_TOS}, {O_ENABLED, O_DISABLED}};
    size_t npairs = 3;
    for (size_t i = 0; i < field_opts_n; i++) {
        if (field_opts[i].op != OP_CLEAR)
            continue;
        for (size_t k = 0; k < field_opts_n; k++)
            if (field_opts[k].op == OP_SET && field_opts[k].field == field_opts[i].field) {
                pairs[npairs][0] = O_FIELD_BASE + (int)k;
                pairs[npairs++][1] = O_FIELD_BASE + (int)i;
            }
    }
    for (size_t i = 0; i < npairs; i++) {
        const char *x = NULL, *y = NULL;
        for (size_t k = 0; k < a->nopts; k++) {
            if (a->opts[k].id == pairs[i][0])
                x = a->opts[k].name;
            if (a->opts[k].id == pairs[i][1])
                y = a->opts[k].name;
        }
        if (x && y)
            return cap_ctl_usage(syn, "--%s and --%s contradict each other", x, y);
    }
    return 0;
}

/* The entry of a PORT:VALUE list for the port of v, or -1. */
static ssize_t port_map_find(const struct strlist *l, const char *v)
{
    size_t plen = strcspn(v, ":");
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->v[i], v, plen + 1) == 0)
            return (ssize_t)i;
    return -1;
}

/* The entries of list field f of spec as text (a port as its digits), into l. */
static int list_from_json(json_object *spec, const struct cap_source_field *f, struct strlist *l)
{
    json_object *arr = NULL;
    if (!json_object_object_get_ex(spec, f->name, &arr) ||
        !json_object_is_type(arr, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        char num[24];
        const char *s = json_object_get_string(e);
        if (json_object_is_type(e, json_type_int)) {
            snprintf(num, sizeof num, "%lld", (long long)json_object_get_int64(e));
            s = num;
        }
        if (s && strlist_add(l, s) < 0)
            return -1;
    }
    return 0;
}

/* Sets list field f of spec to the entries of l (ports as numbers). */
static int list_to_json(json_object *spec, const struct cap_source_field *f,
                        const struct strlist *l)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; arr && i < l->n; i++) {
        json_object *e = f->kind == CAP_SOURCE_PORTS
                             ? json_object_new_int64(strtoll(l->v[i], NULL, 10))
                             : json_object_new_string(l->v[i]);
        if (!e || json_object_array_add(arr, e) < 0) {
            json_object_put(e);
            json_object_put(arr);
            return -1;
        }
    }
    if (!arr)
        return -1;
    json_object_object_add(spec, f->name, arr);
    return 0;
}

/* One list change on l (the field's entries). -1 with err when a remove names an entry the
 * list does not hold, a set names a port twice, or memory runs out. */
static int apply_list(struct strlist *l, const struct field_change *c, const char *source,
                      struct cap_err *err)
{
    char q[QUOTE_MAX];
    if (c->first_set)
        strlist_clear(l);
    if (c->o->op == OP_REMOVE) {
        ssize_t at = strlist_find(l, c->value);
        if (at < 0) {
            cap_err_set(err, CAP_E_INVALID, "--%s \"%s\": source \"%s\" has no such entry",
                        c->o->name, cap_err_quote(q, sizeof q, c->value, strlen(c->value)), source);
            return -1;
        }
        strlist_remove_at(l, (size_t)at);
        return 0;
    }
    if (c->o->field->kind == CAP_SOURCE_PORT_MAP) {
        /* One value per port: --add-X replaces the port's entry; two different ones in the
         * list being set contradict each other. */
        ssize_t at = port_map_find(l, c->value);
        if (at >= 0 && strcmp(l->v[at], c->value) != 0) {
            if (c->o->op == OP_SET) {
                char q2[QUOTE_MAX];
                cap_err_set(err, CAP_E_INVALID, "--%s \"%s\": port already given as \"%s\"",
                            c->o->name, cap_err_quote(q, sizeof q, c->value, strlen(c->value)),
                            cap_err_quote(q2, sizeof q2, l->v[at], strlen(l->v[at])));
                return -1;
            }
            strlist_remove_at(l, (size_t)at);
        }
    }
    if (strlist_add(l, c->value) < 0) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    return 0;
}

/* Phase two: applies the field changes of ch to row->spec and the common options of a to the
 * row. -1 with err when a --remove-X names a value the list does not hold, or memory runs
 * out. */
static int apply_changes(struct source_row *row, const struct changes *ch,
                         const struct cap_ctl_args *a, struct cap_err *err)
{
    const struct cap_source_type *t = row->t;
    assert(t->nfields <= FIELDS_MAX);
    struct strlist lists[FIELDS_MAX];
    bool loaded[FIELDS_MAX] = {false};
    memset(lists, 0, sizeof lists);
    int rc = 0;
    for (size_t i = 0; i < ch->n && rc == 0; i++) {
        const struct field_change *c = &ch->v[i];
        const struct cap_source_field *f = type_field(t, c->o);
        size_t k = (size_t)(f - t->fields);
        if (c->o->op == OP_CLEAR) {
            json_object_object_add(row->spec, f->name, NULL);
        } else if (!cap_source_kind_is_list(f->kind)) {
            json_object *v = f->kind == CAP_SOURCE_INT
                                 ? json_object_new_int64(strtoll(c->value, NULL, 10))
                                 : json_object_new_string(c->value);
            if (!v || json_object_object_add(row->spec, f->name, v) < 0) {
                json_object_put(v);
                rc = -1;
            }
        } else {
            if (!loaded[k] && list_from_json(row->spec, f, &lists[k]) < 0)
                rc = -1;
            loaded[k] = true;
            if (rc == 0 && apply_list(&lists[k], c, row->name, err) < 0)
                rc = -2;
        }
    }
    for (size_t k = 0; k < t->nfields; k++) {
        if (loaded[k] && rc == 0 && list_to_json(row->spec, &t->fields[k], &lists[k]) < 0)
            rc = -1;
        strlist_free(&lists[k]);
    }
    if (rc == -1)
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
    if (rc != 0)
        return -1;
    if (ch->has_schedule)
        snprintf(row->schedule, sizeof row->schedule, "%s", ch->schedule);
    if (cap_ctl_args_has(a, O_TOS))
        row->trigger_on_save = true;
    if (cap_ctl_args_has(a, O_NO_TOS))
        row->trigger_on_save = false;
    if (cap_ctl_args_has(a, O_DISABLED))
        row->enabled = false;
    if (cap_ctl_args_has(a, O_ENABLED))
        row->enabled = true;
    if (ch->rename)
        snprintf(row->name, sizeof row->name, "%s", ch->rename);
    return 0;
}

/* --- writing --------------------------------------------------------------------------- */

/* Turns a refused INSERT/UPDATE into a message that names the source. */
static void write_error(const PGresult *r, PGconn *c, const struct source_row *row,
                        struct cap_err *err)
{
    char q[QUOTE_MAX];
    cap_err_quote(q, sizeof q, row->name, strlen(row->name));
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *cons = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    if (!msg)
        msg = PQerrorMessage(c);
    if (state && strcmp(state, "23505") == 0 && cons && strstr(cons, "name")) {
        cap_err_set(err, CAP_E_INVALID, "source \"%s\" already exists", q);
        return;
    }
    if (state && strcmp(state, "23514") == 0 && cons && row->t->needs_constraint &&
        strcmp(cons, row->t->needs_constraint) == 0) {
        /* The type's whole-source rule, in capctl's words: its check of an empty spec. */
        json_object *empty = cap_source_spec_defaults(row->t);
        if (empty && cap_source_check(row->t, row->name, empty, err) < 0) {
            json_object_put(empty);
            return;
        }
        json_object_put(empty);
    }
    char clean[200];
    snprintf(clean, sizeof clean, "%s", msg ? msg : "unknown error");
    size_t l = strlen(clean);
    while (l && (clean[l - 1] == '\n' || clean[l - 1] == ' '))
        clean[--l] = '\0';
    /* The database's own reasons already name the source ("source \"x\": cidr ..."). */
    if (strncmp(clean, "source \"", 8) == 0)
        cap_err_set(err, CAP_E_INVALID, "%s", clean);
    else
        cap_err_set(err, CAP_E_INVALID, "saving source \"%s\": %s (SQLSTATE %s)", q, clean,
                    state ? state : "none");
}

/* INSERTs (row->id == 0) or UPDATEs the row; sets row->id. 0 or -1 with err. */
static int write_row(PGconn *c, struct source_row *row, struct cap_err *err)
{
    const char *spec = json_object_to_json_string_ext(row->spec, JSON_C_TO_STRING_PLAIN);
    if (!spec) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    char idb[24];
    const char *p[7] = {
        row->name,
        row->t->type,
        row->enabled ? "true" : "false",
        row->schedule,
        row->trigger_on_save ? "true" : "false",
        spec,
        cap_pg_i64(idb, row->id),
    };
    bool update = row->id != 0;
    PGresult *r =
        PQexecParams(c, update ? SQL_UPDATE : SQL_INSERT, update ? 7 : 6, NULL, p, NULL, NULL, 0);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        write_error(r, c, row, err);
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) != 1) {
        cap_err_set(err, CAP_E_INVALID, "source \"%s\" changed type or vanished while saving",
                    row->name);
        PQclear(r);
        return -1;
    }
    row->id = cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* Loads source `name` (locked FOR UPDATE; call inside a transaction) into row. Returns 1 when
 * found, 0 when it does not exist, -1 with err (a type this capctl does not know included). */
static int load_row(PGconn *c, const char *name, struct source_row *row, struct cap_err *err)
{
    const char *p[] = {name};
    PGresult *r = cap_pg_exec(c, "load source", SQL_LOAD, 1, p, err);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    row->id = cap_pg_get_i64(r, 0, 0);
    snprintf(row->name, sizeof row->name, "%s", PQgetvalue(r, 0, 1));
    row->t = cap_source_type_find(PQgetvalue(r, 0, 2));
    row->enabled = PQgetvalue(r, 0, 3)[0] == 't';
    snprintf(row->schedule, sizeof row->schedule, "%s", PQgetvalue(r, 0, 4));
    row->trigger_on_save = PQgetvalue(r, 0, 5)[0] == 't';
    row->spec = json_tokener_parse(PQgetvalue(r, 0, 6));
    int rc = 1;
    char q[QUOTE_MAX];
    if (!row->t) {
        cap_err_set(err, CAP_E_INVALID,
                    "source \"%s\" is of type \"%s\", which this capctl does "
                    "not know",
                    row->name,
                    cap_err_quote(q, sizeof q, PQgetvalue(r, 0, 2), strlen(PQgetvalue(r, 0, 2))));
        rc = -1;
    } else if (!row->spec || !json_object_is_type(row->spec, json_type_object)) {
        cap_err_set(err, CAP_E_INVALID, "source \"%s\": its spec is not a JSON object", row->name);
        rc = -1;
    }
    PQclear(r);
    return rc;
}

/* --- triggering ------------------------------------------------------------------------ */

/* Queues a manual run of source id, or finds the run already queued or running. Sets *run_id
 * and *created. 0 or -1 with err. */
static int trigger_run(PGconn *c, int64_t id, int64_t *run_id, bool *created, struct cap_err *err)
{
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, id)};
    /* The active run may finish between the refused INSERT and the SELECT: try again. */
    for (int attempt = 0; attempt < 10; attempt++) {
        PGresult *r = cap_pg_exec(c, "queue manual run", SQL_TRIGGER, 1, p, err);
        if (!r)
            return -1;
        if (PQntuples(r) == 1) {
            *run_id = cap_pg_get_i64(r, 0, 0);
            *created = true;
            PQclear(r);
            return 0;
        }
        PQclear(r);
        r = cap_pg_exec(c, "find active run", SQL_ACTIVE_RUN, 1, p, err);
        if (!r)
            return -1;
        if (PQntuples(r) == 1) {
            *run_id = cap_pg_get_i64(r, 0, 0);
            *created = false;
            PQclear(r);
            return 0;
        }
        PQclear(r);
    }
    cap_err_set(err, CAP_E_IO, "queue manual run: the source's active run kept changing; retry");
    return -1;
}

/* Prints what trigger_run did (stderr in JSON mode, where stdout carries JSON only). */
static void say_triggered(const struct cap_ctl *ctl, const char *name, int64_t run_id, bool created,
                          PGconn *c)
{
    FILE *f = ctl->json ? stderr : stdout;
    if (created) {
        fprintf(f, "run %lld queued for source \"%s\"\n", (long long)run_id, name);
        return;
    }
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, run_id)};
    struct cap_err e = {0};
    PGresult *r = cap_pg_exec(c, "run status", SQL_RUN_STATUS, 1, p, &e);
    fprintf(f, "source \"%s\" already has run %lld (%s); it was not queued again\n", name,
            (long long)run_id, r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "active");
    PQclear(r);
}

/* Waits until run_id reaches a final status or timeout_ms passes, polling every 200 ms.
 * Returns the exit code: 0 for succeeded/partial, 1 otherwise. Prints the run. */
static int wait_run(struct cap_ctl *ctl, PGconn *c, int64_t run_id, int64_t timeout_ms)
{
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, run_id)};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct cap_err err = {0};
    char status[16] = "";
    char error[256] = "";
    char last[200] = "";
    int64_t last_ms = -1000000;
    for (;;) {
        PGresult *r = cap_pg_exec(c, "poll run", SQL_RUN_STATUS, 1, p, &err);
        if (!r)
            return cap_ctl_fail(&err);
        if (PQntuples(r) == 0) {
            PQclear(r);
            cap_err_set(&err, CAP_E_INVALID, "run %s vanished (its source was deleted)", idb);
            return cap_ctl_fail(&err);
        }
        snprintf(status, sizeof status, "%s", PQgetvalue(r, 0, 0));
        snprintf(error, sizeof error, "%s", PQgetvalue(r, 0, 1));
        /* Progress on stderr as it moves, at most once a second: targets, and the shards of a
         * run split over several workers. */
        char line[200];
        int64_t shards = cap_pg_get_i64(r, 0, 4);
        int off = snprintf(line, sizeof line, "run %s %s: %lld/%lld targets", idb, status,
                           (long long)cap_pg_get_i64(r, 0, 2), (long long)cap_pg_get_i64(r, 0, 3));
        if (shards > 0 && off > 0 && (size_t)off < sizeof line)
            snprintf(line + off, sizeof line - (size_t)off, ", shards %lld of %lld done, %lld running",
                     (long long)cap_pg_get_i64(r, 0, 5), (long long)shards,
                     (long long)cap_pg_get_i64(r, 0, 6));
        PQclear(r);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t spent = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (strcmp(status, "running") == 0 && strcmp(line, last) != 0 && spent - last_ms >= 1000) {
            fprintf(stderr, "%s\n", line);
            snprintf(last, sizeof last, "%s", line);
            last_ms = spent;
        }
        if (strcmp(status, "queued") != 0 && strcmp(status, "running") != 0)
            break;
        if (spent >= timeout_ms) {
            cap_err_set(&err, CAP_E_IO, "run %s is still %s after %lld ms (--timeout)", idb, status,
                        (long long)timeout_ms);
            return cap_ctl_fail(&err);
        }
        struct timespec nap = {0, 200 * 1000000L};
        nanosleep(&nap, NULL);
    }
    if (cap_ctl_show_run(ctl, c, run_id, &err) < 0)
        return cap_ctl_fail(&err);
    if (strcmp(status, "succeeded") == 0 || strcmp(status, "partial") == 0)
        return CAP_CTL_OK;
    fprintf(stderr, "capctl: run %s ended %s%s%s\n", idb, status, error[0] ? ": " : "", error);
    return CAP_CTL_FAIL;
}

/* --- commands -------------------------------------------------------------------------- */

static int begin(PGconn *c, struct cap_err *err)
{
    return cap_pg_cmd(c, "begin", "BEGIN", 0, NULL, err);
}

static void rollback(PGconn *c)
{
    PQclear(PQexec(c, "ROLLBACK"));
}

/* After a save in the open transaction: the run the trigger-on-save made, if any (0). */
static int64_t save_run(PGconn *c, int64_t id, int64_t after, struct cap_err *err)
{
    char idb[24], ab[24];
    const char *p[] = {cap_pg_i64(idb, id), cap_pg_i64(ab, after)};
    PGresult *r = cap_pg_exec(c, "find save run", SQL_SAVE_RUN, 2, p, err);
    if (!r)
        return -1;
    int64_t run = PQntuples(r) ? cap_pg_get_i64(r, 0, 0) : 0;
    PQclear(r);
    return run;
}

static int64_t max_run(PGconn *c, int64_t id, struct cap_err *err)
{
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, id)};
    PGresult *r = cap_pg_exec(c, "last run", SQL_MAX_RUN, 1, p, err);
    if (!r)
        return -1;
    int64_t v = cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    return v;
}

/* Warns (stderr) about ranges this configuration's policy refuses whole: network.deny, or
 * loopback while network.allow_loopback is false. They are saved (workers may be configured
 * otherwise), but runs under this configuration will skip them. */
static void warn_policy(const struct cap_ctl *ctl, const struct source_row *row)
{
    struct cap_policy pol;
    struct cap_err e = {0};
    if (!ctl->cfg_loaded || cap_policy_init(&pol, &ctl->cfg, &e) < 0)
        return;
    for (size_t k = 0; k < row->t->nfields; k++) {
        json_object *arr = NULL;
        if (row->t->fields[k].kind != CAP_SOURCE_CIDRS ||
            !json_object_object_get_ex(row->spec, row->t->fields[k].name, &arr) ||
            !json_object_is_type(arr, json_type_array))
            continue;
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            const char *text = json_object_get_string(json_object_array_get_idx(arr, i));
            struct cap_cidr c;
            char why[CAP_POLICY_REASON_MAX + CAP_CIDR_TEXT_MAX + 64];
            if (text && cap_policy_parse_cidr(text, &c, NULL) == 0 &&
                cap_policy_cidr_refused_by(&pol, &c, why, sizeof why) == 1)
                fprintf(stderr, "capctl: warning: %s; runs under this configuration will skip it\n",
                        why);
        }
    }
    cap_policy_cleanup(&pol);
}

/* Output after add/edit, then --trigger. */
static int after_save(struct cap_ctl *ctl, PGconn *c, const struct source_row *row, bool added,
                      int64_t save_run_id, bool trigger)
{
    struct cap_err err = {0};
    warn_policy(ctl, row);
    if (ctl->json) {
        const char *p[] = {row->name};
        if (cap_ctl_out_json_query(c, "show source", SQL_SHOW, 1, p, &err) < 0)
            return cap_ctl_fail(&err);
    } else {
        printf("source \"%s\" %s (id %lld)\n", row->name, added ? "added" : "saved",
               (long long)row->id);
    }
    if (save_run_id > 0)
        fprintf(ctl->json ? stderr : stdout,
                "run %lld queued for source \"%s\" (trigger on save)\n", (long long)save_run_id,
                row->name);
    if (trigger) {
        int64_t run = 0;
        bool created = false;
        if (trigger_run(c, row->id, &run, &created, &err) < 0)
            return cap_ctl_fail(&err);
        say_triggered(ctl, row->name, run, created, c);
    }
    return CAP_CTL_OK;
}

/* "network_scan or ct_log" (sep " or "), or with "--type " before each (sep " or --type "). */
static const char *type_names(const char *sep, const char *each, char *out, size_t n)
{
    const struct cap_source_type *t;
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; (t = cap_source_type_at(i)) != NULL; i++) {
        bool last = cap_source_type_at(i + 1) == NULL;
        int w = snprintf(out + used, n - used, "%s%s%s",
                         i == 0 ? ""
                         : last ? sep
                                : ", ",
                         each, t->type);
        if (w > 0 && (size_t)w < n - used)
            used += (size_t)w;
    }
    return out;
}

/* A new source of type t needs one of its needs_one_of lists on the command line: a usage
 * error otherwise ("source add: a ct_log source needs --domain"). */
static int check_needs(const struct cap_ctl_args *a, const struct cap_source_type *t)
{
    if (!t->needs_one_of || !t->needs_one_of[0])
        return 0;
    char opts[256] = "";
    for (size_t i = 0; t->needs_one_of[i]; i++) {
        const struct cap_source_field *f = cap_source_field_find(t, t->needs_one_of[i]);
        for (size_t k = 0; f && k < field_opts_n; k++)
            if (field_opts[k].op == OP_SET && strcmp(field_opts[k].field->option, f->option) == 0 &&
                cap_ctl_args_has(a, O_FIELD_BASE + (int)k))
                return 0;
        size_t l = strlen(opts);
        snprintf(opts + l, sizeof opts - l, "%s--%s", i ? " or " : "",
                 f ? f->option : t->needs_one_of[i]);
    }
    return cap_ctl_usage(syn_add(), "source add: a %s source needs %s", t->type, opts);
}

static int cmd_add(struct cap_ctl *ctl, int argc, char **argv)
{
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, build_specs(false), 1, syn_add(), &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(syn_add(), "source add: give the source NAME");
    char names[256];
    const char *tt = cap_ctl_args_get(&a, O_TYPE);
    if (!tt)
        return cap_ctl_usage(syn_add(), "source add: --type %s is required",
                             type_names(" or --type ", "", names, sizeof names));
    const struct cap_source_type *t = cap_source_type_find(tt);
    if (!t) {
        char q[QUOTE_MAX];
        return cap_ctl_usage(syn_add(), "--type \"%s\": must be %s",
                             cap_err_quote(q, sizeof q, tt, strlen(tt)),
                             type_names(" or ", "", names, sizeof names));
    }
    rc = check_combination(&a, t, syn_add());
    if (rc == 0)
        rc = check_needs(&a, t);
    if (rc)
        return rc;

    struct cap_err err = {0};
    if (cap_ctl_validate_name(a.pos[0], &err) < 0)
        return cap_ctl_fail(&err);
    struct source_row row;
    memset(&row, 0, sizeof row);
    snprintf(row.name, sizeof row.name, "%s", a.pos[0]);
    row.t = t;
    row.enabled = true;
    snprintf(row.schedule, sizeof row.schedule, "%s", t->default_schedule);
    row.spec = cap_source_spec_defaults(t);
    struct changes ch;
    if (!row.spec) {
        cap_err_set(&err, CAP_E_NOMEM, "out of memory");
        return cap_ctl_fail(&err);
    }
    if (collect_changes(&a, &ch, &err) < 0 || apply_changes(&row, &ch, &a, &err) < 0 ||
        cap_source_check(t, row.name, row.spec, &err) < 0) {
        changes_cleanup(&ch);
        row_cleanup(&row);
        return cap_ctl_fail(&err);
    }
    changes_cleanup(&ch);

    PGconn *c = cap_ctl_db(ctl, &err);
    int64_t run = 0;
    if (!c || begin(c, &err) < 0)
        goto fail;
    if (write_row(c, &row, &err) < 0 || (run = save_run(c, row.id, 0, &err)) < 0 ||
        cap_pg_cmd(c, "commit", "COMMIT", 0, NULL, &err) < 0) {
        rollback(c);
        goto fail;
    }
    rc = after_save(ctl, c, &row, true, run, cap_ctl_args_has(&a, O_TRIGGER));
    row_cleanup(&row);
    return rc;
fail:
    row_cleanup(&row);
    return cap_ctl_fail(&err);
}

static int cmd_edit(struct cap_ctl *ctl, int argc, char **argv)
{
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, build_specs(true), 1, syn_edit(), &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(syn_edit(), "source edit: give the source NAME");
    if (a.nopts == 0)
        return cap_ctl_usage(syn_edit(), "source edit: nothing to change");
    struct cap_err err = {0};
    char q[QUOTE_MAX];
    cap_err_quote(q, sizeof q, a.pos[0], strlen(a.pos[0]));
    struct changes ch;
    if (collect_changes(&a, &ch, &err) < 0) {
        changes_cleanup(&ch);
        return cap_ctl_fail(&err);
    }
    struct source_row row;
    memset(&row, 0, sizeof row);
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c || begin(c, &err) < 0)
        goto fail;
    int found = load_row(c, a.pos[0], &row, &err);
    if (found <= 0) {
        rollback(c);
        if (found == 0)
            cap_err_set(&err, CAP_E_INVALID, "source \"%s\" does not exist", q);
        goto fail;
    }
    const char *tt = cap_ctl_args_get(&a, O_TYPE);
    if (tt && strcmp(tt, row.t->type) != 0) {
        rollback(c);
        changes_cleanup(&ch);
        row_cleanup(&row);
        return cap_ctl_usage(syn_edit(),
                             "source \"%s\" is a %s source; its type cannot change "
                             "(delete it and add it again)",
                             q, row.t->type);
    }
    rc = check_combination(&a, row.t, syn_edit());
    if (rc) {
        rollback(c);
        changes_cleanup(&ch);
        row_cleanup(&row);
        return rc;
    }
    int64_t before = 0, run = 0;
    if (apply_changes(&row, &ch, &a, &err) < 0 ||
        cap_source_check(row.t, row.name, row.spec, &err) < 0 ||
        (before = max_run(c, row.id, &err)) < 0 || write_row(c, &row, &err) < 0 ||
        (run = save_run(c, row.id, before, &err)) < 0 ||
        cap_pg_cmd(c, "commit", "COMMIT", 0, NULL, &err) < 0) {
        rollback(c);
        goto fail;
    }
    changes_cleanup(&ch);
    rc = after_save(ctl, c, &row, false, run, cap_ctl_args_has(&a, O_TRIGGER));
    row_cleanup(&row);
    return rc;
fail:
    changes_cleanup(&ch);
    row_cleanup(&row);
    return cap_ctl_fail(&err);
}

/* Looks up the id of source name; 1 found, 0 not (err set), -1 error. */
static int source_id(PGconn *c, const char *name, int64_t *id, struct cap_err *err)
{
    const char *p[] = {name};
    PGresult *r = cap_pg_exec(c, "look up source", SQL_ID, 1, p, err);
    if (!r)
        return -1;
    int found = PQntuples(r);
    if (found)
        *id = cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    if (!found) {
        char q[QUOTE_MAX];
        cap_err_set(err, CAP_E_INVALID, "source \"%s\" does not exist",
                    cap_err_quote(q, sizeof q, name, strlen(name)));
    }
    return found;
}

static int cmd_trigger(struct cap_ctl *ctl, int argc, char **argv)
{
    enum { T_WAIT = 1, T_TIMEOUT };
    static const struct cap_ctl_opt_spec specs[] = {
        {"wait", CAP_CTL_FLAG, T_WAIT}, {"timeout", CAP_CTL_VALUE, T_TIMEOUT}, {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 1, SYN_TRIGGER, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(SYN_TRIGGER, "source trigger: give the source NAME");
    bool wait = cap_ctl_args_has(&a, T_WAIT);
    const char *tt = cap_ctl_args_get(&a, T_TIMEOUT);
    if (tt && !wait)
        return cap_ctl_usage(SYN_TRIGGER, "source trigger: --timeout only goes with --wait");
    struct cap_err err = {0};
    int64_t timeout_ms = 600000;
    if (tt && (cap_config_parse_duration_ms(tt, &timeout_ms) < 0 || timeout_ms <= 0)) {
        char q[QUOTE_MAX];
        cap_err_set(&err, CAP_E_INVALID, "--timeout \"%s\": not a duration (e.g. 30s, 10m, 1h)",
                    cap_err_quote(q, sizeof q, tt, strlen(tt)));
        return cap_ctl_fail(&err);
    }
    PGconn *c = cap_ctl_db(ctl, &err);
    int64_t id = 0, run = 0;
    bool created = false;
    if (!c || source_id(c, a.pos[0], &id, &err) <= 0 ||
        trigger_run(c, id, &run, &created, &err) < 0)
        return cap_ctl_fail(&err);
    if (!wait) {
        say_triggered(ctl, a.pos[0], run, created, c);
        if (ctl->json && cap_ctl_show_run(ctl, c, run, &err) < 0)
            return cap_ctl_fail(&err);
        return CAP_CTL_OK;
    }
    /* With --wait, stdout carries the finished run; progress goes to stderr. */
    struct cap_ctl quiet = *ctl;
    quiet.json = true;
    say_triggered(&quiet, a.pos[0], run, created, c);
    return wait_run(ctl, c, run, timeout_ms);
}

/* Every source's targets column for the text listing, its descriptor's summary of its spec:
 * two parallel PostgreSQL text arrays of names and summaries (malloc'd, caller frees). A
 * source of a type this capctl does not know gets "" (shown as "-"). 0 or -1 with err. */
static int list_summaries(PGconn *c, char **names_out, char **targets_out, struct cap_err *err)
{
    PGresult *r = cap_pg_exec(c, "list source specs", SQL_LIST_SPECS, 0, NULL, err);
    if (!r)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    const char **names = calloc(rows + 1, sizeof *names);
    char **targets = calloc(rows + 1, sizeof *targets);
    int rc = names && targets ? 0 : -1;
    for (size_t i = 0; i < rows && rc == 0; i++) {
        names[i] = PQgetvalue(r, (int)i, 0);
        targets[i] = calloc(1, CAP_CTL_CELL_MAX + 1);
        if (!targets[i]) {
            rc = -1;
            break;
        }
        const struct cap_source_type *t = cap_source_type_find(PQgetvalue(r, (int)i, 1));
        void *spec = NULL;
        struct cap_err e = {0};
        if (t && t->summary && cap_source_spec_parse(t, PQgetvalue(r, (int)i, 2), &spec, &e) == 0)
            t->summary(spec, targets[i], CAP_CTL_CELL_MAX + 1);
        cap_source_spec_free(t, spec);
    }
    char *n_arr = rc == 0 ? cap_pg_text_array(names, rows) : NULL;
    char *t_arr = rc == 0 ? cap_pg_text_array((const char *const *)targets, rows) : NULL;
    for (size_t i = 0; targets && i < rows; i++)
        free(targets[i]);
    free(targets);
    free(names);
    PQclear(r);
    if (!n_arr || !t_arr) {
        free(n_arr);
        free(t_arr);
        cap_err_set(err, CAP_E_NOMEM, "list sources: out of memory");
        return -1;
    }
    *names_out = n_arr;
    *targets_out = t_arr;
    return 0;
}

static int cmd_list(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 0, SYN_LIST, &a);
    if (rc)
        return rc;
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c)
        return cap_ctl_fail(&err);
    if (ctl->json) {
        if (cap_ctl_out_query(c, true, false, "list sources", SQL_LIST_JSON, 0, NULL, NULL, &err) <
            0)
            return cap_ctl_fail(&err);
        return CAP_CTL_OK;
    }
    /* The summaries and the table from one snapshot. */
    char *names = NULL, *targets = NULL;
    if (cap_pg_cmd(c, "begin", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, &err) <
        0)
        return cap_ctl_fail(&err);
    if (list_summaries(c, &names, &targets, &err) < 0) {
        rollback(c);
        return cap_ctl_fail(&err);
    }
    const char *p[] = {names, targets};
    long n = cap_ctl_out_query(c, false, false, "list sources", SQL_LIST_TABLE, 2, p, "no sources",
                               &err);
    free(names);
    free(targets);
    rollback(c);
    return n < 0 ? cap_ctl_fail(&err) : CAP_CTL_OK;
}

static int cmd_show(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 1, SYN_SHOW, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(SYN_SHOW, "source show: give the source NAME");
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    int64_t id = 0;
    if (!c || source_id(c, a.pos[0], &id, &err) <= 0)
        return cap_ctl_fail(&err);
    const char *p[] = {a.pos[0]};
    if (cap_ctl_out_query(c, ctl->json, true, "show source", SQL_SHOW, 1, p, NULL, &err) < 0)
        return cap_ctl_fail(&err);
    if (!ctl->json) {
        printf("\nrecent runs:\n");
        if (cap_ctl_out_query(c, false, false, "recent runs", SQL_SHOW_RUNS, 1, p, "  none", &err) <
            0)
            return cap_ctl_fail(&err);
    }
    return CAP_CTL_OK;
}

/* enable, disable and delete: one name, one statement. */
static int cmd_simple(struct cap_ctl *ctl, int argc, char **argv, const char *what)
{
    static const struct cap_ctl_opt_spec specs[] = {{NULL, 0, 0}};
    const char *syn = strcmp(what, "delete") == 0 ? SYN_DELETE : SYN_ENABLE;
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 1, syn, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(syn, "source %s: give the source NAME", what);
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c)
        return cap_ctl_fail(&err);
    PGresult *r;
    if (strcmp(what, "delete") == 0) {
        const char *p[] = {a.pos[0]};
        r = cap_pg_exec(c, "delete source", SQL_DELETE, 1, p, &err);
    } else {
        const char *p[] = {a.pos[0], strcmp(what, "enable") == 0 ? "true" : "false"};
        r = cap_pg_exec(c, "enable source", SQL_SET_ENABLED, 2, p, &err);
    }
    if (!r)
        return cap_ctl_fail(&err);
    int found = PQntuples(r);
    PQclear(r);
    char q[QUOTE_MAX];
    cap_err_quote(q, sizeof q, a.pos[0], strlen(a.pos[0]));
    if (!found) {
        cap_err_set(&err, CAP_E_INVALID, "source \"%s\" does not exist", q);
        return cap_ctl_fail(&err);
    }
    if (ctl->json && strcmp(what, "delete") != 0) {
        const char *p[] = {a.pos[0]};
        if (cap_ctl_out_json_query(c, "show source", SQL_SHOW, 1, p, &err) < 0)
            return cap_ctl_fail(&err);
    } else if (ctl->json) {
        printf("[]\n");
    } else {
        printf("source \"%s\" %s\n", q,
               strcmp(what, "delete") == 0   ? "deleted"
               : strcmp(what, "enable") == 0 ? "enabled"
                                             : "disabled");
    }
    return CAP_CTL_OK;
}

int cap_ctl_cmd_source(struct cap_ctl *ctl, int argc, char **argv)
{
    if (argc < 1)
        return cap_ctl_usage(SYN_SOURCE, "source: missing subcommand");
    const char *sub = argv[0];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        printf("usage: %s\n       %s\n       %s\n       %s\n       %s\n       %s\n       %s\n",
               syn_add(), syn_edit(), SYN_LIST, SYN_SHOW, SYN_ENABLE, SYN_DELETE, SYN_TRIGGER);
        return CAP_CTL_OK;
    }
    argc--;
    argv++;
    if (strcmp(sub, "add") == 0)
        return cmd_add(ctl, argc, argv);
    if (strcmp(sub, "edit") == 0)
        return cmd_edit(ctl, argc, argv);
    if (strcmp(sub, "list") == 0)
        return cmd_list(ctl, argc, argv);
    if (strcmp(sub, "show") == 0)
        return cmd_show(ctl, argc, argv);
    if (strcmp(sub, "trigger") == 0)
        return cmd_trigger(ctl, argc, argv);
    if (strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "delete") == 0)
        return cmd_simple(ctl, argc, argv, sub);
    char q[QUOTE_MAX];
    return cap_ctl_usage(SYN_SOURCE, "source: unknown subcommand \"%s\"",
                         cap_err_quote(q, sizeof q, sub, strlen(sub)));
}
