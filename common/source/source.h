/* Source types. Each type (network_scan, ct_log, and any a build registers) is one descriptor:
 * its fields (key in discovery_sources.spec, capctl option, kind, normaliser, default, where
 * the typed struct keeps it) and its whole-source rule. Pure: no process, database or I/O.
 * capctl builds its options, checks and the spec it writes from the descriptors; cap-worker
 * parses a row's spec into the type's typed struct with them; the database checks a spec
 * against the type's row of discovery_source_types, which is cap_source_type_schema() of the
 * descriptor (a test compares the two). */
#ifndef CAP_SOURCE_H
#define CAP_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/err.h"

/* Room for one normalised value typed on the command line (a URL is the longest). */
#define CAP_SOURCE_VALUE_MAX 2049
/* Most types one build knows (built in and registered). */
#define CAP_SOURCE_TYPES_MAX 16

/* What a field holds: its JSON form in spec, and its C form in the typed struct. */
enum cap_source_kind {
    CAP_SOURCE_INT = 0,  /* JSON integer in min..max; C int or int64_t (the member's size) */
    CAP_SOURCE_TEXT,     /* JSON string, one of choices when set; C char * (NULL: null) */
    CAP_SOURCE_TEXTS,    /* JSON array of strings; C char ** (NULL-terminated) + size_t count */
    CAP_SOURCE_CIDRS,    /* as TEXTS, each a range; the database writes them canonical and
                          * refuses one lying wholly inside an always-refused block */
    CAP_SOURCE_PORTS,    /* JSON array of integers 1..65535; C int * + size_t count */
    CAP_SOURCE_PORT_MAP, /* as TEXTS, each "PORT:CHOICE", one entry per port */
};

/* One allowed value of a TEXT or PORT_MAP field; a table ends with a NULL name. */
struct cap_source_choice {
    const char *name;
    int value; /* what the type's code calls it (an enum) */
};

struct cap_source_field;

/* Checks one value typed on the command line (one item of a list) and writes its normal text
 * into out (n bytes, at least CAP_SOURCE_VALUE_MAX). Returns 0, or -1 with err naming opt and
 * the value (`--port "70000": must be 1-65535`). Pure. */
typedef int (*cap_source_norm_fn)(const struct cap_source_field *f, const char *opt,
                                  const char *text, char *out, size_t n, struct cap_err *err);

/* For a field whose option names a file: checks the file's content (data, len bytes, read from
 * path) and returns the value to store in a malloc'd string (caller frees), or NULL with err. */
typedef char *(*cap_source_norm_file_fn)(const struct cap_source_field *f, const char *opt,
                                         const char *path, const char *data, size_t len,
                                         struct cap_err *err);

struct cap_source_field {
    const char *name; /* key in spec, and the column of the same name in older schemas */
    enum cap_source_kind kind;
    const char *option;       /* capctl option without dashes ("timeout"); lists also take
                               * add-OPTION and remove-OPTION in source edit */
    const char *metavar;      /* what the option takes, for the synopsis ("CIDR", "5s") */
    const char *help;         /* one line: what the field means */
    int64_t min, max;         /* INT: bounds */
    int64_t def;              /* INT: default; for a nullable INT, what null reads as in C */
    const char *def_text;     /* TEXT: default (NULL when nullable) */
    bool nullable;            /* INT, TEXT: null is allowed and is the default */
    const char *clear_option; /* nullable: the edit option that sets null (NULL: no-OPTION) */
    const struct cap_source_choice *choices; /* TEXT, PORT_MAP: the allowed values */
    bool whole;              /* lists: capctl never splits a value on commas (DN substrings) */
    size_t max_items;        /* lists: most entries capctl saves (0: no limit) */
    cap_source_norm_fn norm; /* NULL: the value is taken as typed */
    cap_source_norm_file_fn norm_file; /* set: the option's value is a file name */
    size_t offset;                     /* of the member in the typed struct */
    size_t count_offset;               /* lists: of its size_t count */
    size_t size;                       /* INT: sizeof the member */
};

/* Where a field lives in the typed struct: a scalar member, or a list with its count (the
 * count is the member's name followed by _n). */
#define CAP_SOURCE_AT(type, member)                                                                \
    .offset = offsetof(type, member), .size = sizeof(((type *)0)->member)
#define CAP_SOURCE_LIST_AT(type, member)                                                           \
    .offset = offsetof(type, member), .count_offset = offsetof(type, member##_n)

struct cap_source_type {
    const char *type;        /* discovery_sources.type */
    const char *description; /* one line */
    const struct cap_source_field *fields;
    size_t nfields;
    /* The whole-source rule: at least one of these list fields holds an entry (NULL: none).
     * The database reports a violation as constraint needs_constraint. */
    const char *const *needs_one_of;
    const char *needs_constraint;
    const char *default_schedule; /* for a new source without --schedule */
    bool poll;                    /* capctl takes --poll D for --schedule "every D" */
    size_t spec_size;             /* sizeof the typed struct */
    /* Writes what capctl's source list shows in its targets column into out (n bytes; cut
     * with "..." when longer). NULL: the column stays empty. */
    void (*summary)(const void *spec, char *out, size_t n);
};

/* The descriptor of type, or NULL. */
const struct cap_source_type *cap_source_type_find(const char *type);

/* The i-th known type (the built-in ones first, then the registered ones, in order), or NULL
 * past the end. */
const struct cap_source_type *cap_source_type_at(size_t i);

/* Adds a type (a test's, or one a build links in) before anything runs: call it from main()
 * before threads start. t must outlive the process. Returns 0, or -1 with err when the type is
 * known already or the table is full. */
int cap_source_type_register(const struct cap_source_type *t, struct cap_err *err);

/* The field of t with that name, or NULL. */
const struct cap_source_field *cap_source_field_find(const struct cap_source_type *t,
                                                     const char *name);

/* The kind's name as the database's schema spells it ("int", "cidrs", ...). Static string. */
const char *cap_source_kind_name(enum cap_source_kind k);

/* True for the list kinds (TEXTS, CIDRS, PORTS, PORT_MAP). */
bool cap_source_kind_is_list(enum cap_source_kind k);

/* Parses spec (JSON text, a row's discovery_sources.spec) into a new typed struct of t's
 * spec_size, in *out (free with cap_source_spec_free). A missing key takes its default; keys
 * t does not know are ignored (a newer schema's). Fails with err naming the field when a
 * value has the wrong JSON type, is out of range or not one of the choices. */
int cap_source_spec_parse(const struct cap_source_type *t, const char *spec, void **out,
                          struct cap_err *err);

/* Frees a typed struct of t made by cap_source_spec_parse. NULL does nothing. */
void cap_source_spec_free(const struct cap_source_type *t, void *spec);

/* A new JSON object holding every field of t at its default (caller puts it), or NULL. */
json_object *cap_source_spec_defaults(const struct cap_source_type *t);

/* The whole-source check capctl makes before it saves spec (fields as the JSON holds them):
 * the needs_one_of rule (`source "lab": a network_scan source needs at least one --cidr or
 * --host`) and each list's max_items. Returns 0 or -1 with err. */
int cap_source_check(const struct cap_source_type *t, const char *name, json_object *spec,
                     struct cap_err *err);

/* t as the database's discovery_source_types row describes it: {"type", "fields": {NAME:
 * {"kind", "default", "min", "max", "choices"}}, "needs_one_of", "needs_constraint"} (min and
 * max for INT, choices when set). A new object (caller puts it), or NULL. */
json_object *cap_source_type_schema(const struct cap_source_type *t);

/* Normalisers for any field: an INT in the field's min..max (`--concurrency "0": must be an
 * integer 1-100000`), and a TEXT that must be one of its choices, spelt as they are
 * (`--log-protocol "grpc": must be auto, rfc6962 or static-ct`). */
int cap_source_norm_int(const struct cap_source_field *f, const char *opt, const char *text,
                        char *out, size_t n, struct cap_err *err);
int cap_source_norm_choice(const struct cap_source_field *f, const char *opt, const char *text,
                           char *out, size_t n, struct cap_err *err);

/* Appends text to the NUL-terminated out (n bytes); when it does not fit, out ends in "...".
 * For summary callbacks. */
void cap_source_summary_append(char *out, size_t n, const char *text);

/* Writes the choices of f as "a, b or c" into out. Returns out. */
const char *cap_source_choices_text(const struct cap_source_field *f, char *out, size_t n);

#endif
