/* Internationalised domain names: U-labels (UTF-8) to their A-label (xn--) form, with
 * libidn2 (IDNA2008 with the UTS #46 non-transitional mapping: case folded, NFC), so a name
 * typed as "Bücher.example" is stored and matched as "xn--bcher-kva.example", the form
 * certificates and DNS carry. */
#ifndef CAP_IDNA_H
#define CAP_IDNA_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the len bytes of name hold a byte outside ASCII. Pure. */
bool cap_idna_has_non_ascii(const char *name, size_t len);

/* Converts the len bytes of name (UTF-8; no NUL needed) to ASCII into out (cap bytes, NUL
 * terminated). ASCII letters come out in lower case; a name of ASCII only is otherwise copied
 * as it is (checking its characters is the caller's). Returns 0, or -1 with *why (static text:
 * libidn2's reason, or "too long") when the name is not valid IDNA or does not fit. */
int cap_idna_to_ascii(const char *name, size_t len, char *out, size_t cap, const char **why);

#endif
