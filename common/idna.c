/* U-labels to A-labels with libidn2 (see idna.h). */
#include "common/idna.h"

#include <idn2.h>
#include <stdlib.h>
#include <string.h>

/* Longest name handed to libidn2 (a DNS name is at most 253 octets; U-labels take more
 * bytes than their A-labels, up to four per character). */
#define IDNA_IN_MAX 1024

bool cap_idna_has_non_ascii(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] >= 0x80)
            return true;
    return false;
}

static void lower_copy(const char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        out[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    out[len] = '\0';
}

int cap_idna_to_ascii(const char *name, size_t len, char *out, size_t cap, const char **why)
{
    *why = "";
    if (!cap_idna_has_non_ascii(name, len)) {
        if (len + 1 > cap) {
            *why = "too long";
            return -1;
        }
        lower_copy(name, len, out);
        return 0;
    }
    if (len + 1 > IDNA_IN_MAX || memchr(name, '\0', len)) {
        *why = len + 1 > IDNA_IN_MAX ? "too long" : "NUL byte in the name";
        return -1;
    }
    char in[IDNA_IN_MAX];
    memcpy(in, name, len);
    in[len] = '\0';
    char *a = NULL;
    int rc =
        idn2_to_ascii_8z(in, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL | IDN2_USE_STD3_ASCII_RULES);
    if (rc != IDN2_OK) {
        *why = idn2_strerror(rc);
        return -1;
    }
    size_t n = strlen(a);
    if (n + 1 > cap) {
        idn2_free(a);
        *why = "too long";
        return -1;
    }
    lower_copy(a, n, out);
    idn2_free(a);
    return 0;
}
