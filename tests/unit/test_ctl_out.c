/* capctl's display of text from the database: readable UTF-8 kept, terminal controls escaped. */
#include <stdio.h>
#include <string.h>

#include "ctl/out.h"
#include "tests/unit/test.h"

static void shows(const char *in, const char *want)
{
    char out[256];
    cap_ctl_out_display(in, strlen(in), out, sizeof out);
    if (strcmp(out, want) != 0)
        fprintf(stderr, "display of %zu bytes: got \"%s\", want \"%s\"\n", strlen(in), out, want);
    CHECK(strcmp(out, want) == 0);
}

int main(void)
{
    shows("plain.example", "plain.example");
    shows("b\xc3\xbc"
          "cher.example",
          "b\xc3\xbc"
          "cher.example");                  /* UTF-8 kept */
    shows("a\x1b[31mred", "a\\x1b[31mred"); /* ESC */
    shows("bell\x07", "bell\\x07");
    shows("tab\tnl\ncr\r", "tab nl cr ");
    shows("del\x7f", "del\\x7f");
    shows("c1\xc2\x9b"
          "1m",
          "c1\\u009b1m"); /* CSI as a C1 control */
    shows("evil\xe2\x80\xae"
          "moc.elgoog",
          "evil\\u202emoc.elgoog"); /* right-to-left override */
    shows("iso\xe2\x81\xa6"
          "x",
          "iso\\u2066x");
    shows("bad\xff\xfe", "bad\\xff\\xfe");          /* not UTF-8 */
    shows("over\xc0\xaf", "over\\xc0\\xaf");        /* overlong */
    shows("sur\xed\xa0\x80", "sur\\xed\\xa0\\x80"); /* surrogate */
    shows("cut\xe2\x82", "cut\\xe2\\x82");          /* truncated sequence */
    /* bounded: never past out, and the bytes consumed are returned */
    char small[8];
    size_t used = cap_ctl_out_display("\x1b\x1b\x1b\x1b", 4, small, sizeof small);
    CHECK(strcmp(small, "\\x1b") == 0 && used == 1);
    used = cap_ctl_out_display("abcdef", 3, small, sizeof small);
    CHECK(strcmp(small, "abc") == 0 && used == 3);
    TEST_DONE();
}
