/* test_echo: a source type that exists only in the test suite, to prove that a third type is
 * its descriptor, its executor and one row in each registry (and one in the database's
 * discovery_source_types). It has one field of each sort: a list (words), a bounded integer
 * (times), a text with choices (tone) and a nullable text (note). Static definitions: include
 * it in one file per program. */
#ifndef CAP_TEST_ECHO_TYPE_H
#define CAP_TEST_ECHO_TYPE_H

#include <stddef.h>
#include <stdio.h>

#include "common/source/source.h"
#include "common/source/value.h"

struct echo_spec {
    char **words;
    size_t words_n;
    int times;
    char *tone;
    char *note; /* NULL when null */
};

static const struct cap_source_choice echo_tones[] = {{"plain", 0}, {"loud", 1}, {NULL, 0}};

static int echo_norm_word(const struct cap_source_field *f, const char *opt, const char *text,
                          char *out, size_t n, struct cap_err *err)
{
    (void)f;
    if (cap_value_text(opt, text, 32, err) < 0)
        return -1;
    snprintf(out, n, "%s", text);
    return 0;
}

static void echo_summary(const void *spec, char *out, size_t n)
{
    const struct echo_spec *s = spec;
    out[0] = '\0';
    for (size_t i = 0; i < s->words_n; i++) {
        if (i)
            cap_source_summary_append(out, n, " ");
        cap_source_summary_append(out, n, s->words[i]);
    }
}

static const struct cap_source_field echo_fields[] = {
    {.name = "words",
     .kind = CAP_SOURCE_TEXTS,
     .option = "word",
     .metavar = "WORD",
     .help = "what to say",
     .norm = echo_norm_word,
     CAP_SOURCE_LIST_AT(struct echo_spec, words)},
    {.name = "times",
     .kind = CAP_SOURCE_INT,
     .option = "times",
     .metavar = "1",
     .help = "how often to say it",
     .min = 1,
     .max = 5,
     .def = 1,
     .norm = cap_source_norm_int,
     CAP_SOURCE_AT(struct echo_spec, times)},
    {.name = "tone",
     .kind = CAP_SOURCE_TEXT,
     .option = "tone",
     .metavar = "plain|loud",
     .help = "how to say it",
     .def_text = "plain",
     .choices = echo_tones,
     .norm = cap_source_norm_choice,
     CAP_SOURCE_AT(struct echo_spec, tone)},
    {.name = "note",
     .kind = CAP_SOURCE_TEXT,
     .option = "note",
     .metavar = "TEXT",
     .help = "said last, when set",
     .nullable = true,
     .norm = echo_norm_word,
     CAP_SOURCE_AT(struct echo_spec, note)},
};

static const char *const echo_needs[] = {"words", NULL};

static const struct cap_source_type echo_type = {
    .type = "test_echo",
    .description = "says its words back (tests only)",
    .fields = echo_fields,
    .nfields = sizeof echo_fields / sizeof echo_fields[0],
    .needs_one_of = echo_needs,
    .needs_constraint = "test_echo_has_words",
    .default_schedule = "manual",
    .poll = false,
    .spec_size = sizeof(struct echo_spec),
    .summary = echo_summary,
};

#endif
