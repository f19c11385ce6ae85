/* STARTTLS dialogue state machines: line protocols (SMTP, IMAP, POP3), the LDAP StartTLS
 * extended operation (1.3.6.1.4.1.1466.20037) and the PostgreSQL SSLRequest. */
#include "worker/scan/starttls.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

static const uint8_t SMTP_EHLO[] = "EHLO certautopilot.invalid\r\n";
static const uint8_t SMTP_STARTTLS[] = "STARTTLS\r\n";
static const uint8_t IMAP_STARTTLS[] = "a1 STARTTLS\r\n";
static const uint8_t POP3_STLS[] = "STLS\r\n";
/* LDAPMessage { messageID 1, extendedReq { requestName 1.3.6.1.4.1.1466.20037 } } */
static const uint8_t LDAP_STARTTLS[] = {
    0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16, '1', '.', '3', '.', '6', '.', '1',
    '.',  '4',  '.',  '1',  '.',  '1',  '4',  '6',  '6',  '.', '2', '0', '0', '3', '7'};
/* SSLRequest: length 8, code 80877103 */
static const uint8_t PG_SSLREQUEST[] = {0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f};

enum cap_starttls_status cap_starttls_begin(struct cap_starttls *st, enum cap_starttls_proto proto,
                                            const uint8_t **out, size_t *out_len)
{
    st->proto = proto;
    st->step = 0;
    st->len = 0;
    st->total = 0;
    switch (proto) {
    case CAP_STARTTLS_LDAP:
        *out = LDAP_STARTTLS;
        *out_len = sizeof LDAP_STARTTLS;
        return CAP_STARTTLS_SEND;
    case CAP_STARTTLS_POSTGRES:
        *out = PG_SSLREQUEST;
        *out_len = sizeof PG_SSLREQUEST;
        return CAP_STARTTLS_SEND;
    case CAP_STARTTLS_NONE:
        return CAP_STARTTLS_DONE;
    default:
        return CAP_STARTTLS_MORE;
    }
}

static enum cap_starttls_status fail(char *err, size_t errn, const char *what, const uint8_t *text,
                                     size_t len)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    if (text)
        snprintf(err, errn, "%s: \"%s\"", what,
                 cap_err_quote(q, sizeof q, (const char *)text, len));
    else
        snprintf(err, errn, "%s", what);
    return CAP_STARTTLS_FAIL;
}

static bool starts(const uint8_t *line, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return len >= pl && memcmp(line, prefix, pl) == 0;
}

/* SMTP reply line: three digits then '-' (more lines follow) or ' '/end (last line). */
static bool smtp_code(const uint8_t *line, size_t len, const char *code, bool *last)
{
    if (len < 3 || memcmp(line, code, 3) != 0)
        return false;
    *last = len == 3 || line[3] == ' ';
    return len == 3 || line[3] == ' ' || line[3] == '-';
}

/* One complete line (CR LF stripped) of a text protocol. */
static enum cap_starttls_status text_line(struct cap_starttls *st, const uint8_t *line, size_t len,
                                          const uint8_t **out, size_t *out_len, char *err,
                                          size_t errn)
{
    bool last = false;
    switch (st->proto) {
    case CAP_STARTTLS_SMTP:
        if (st->step == 0) {
            if (!smtp_code(line, len, "220", &last))
                return fail(err, errn, "smtp greeting refused", line, len);
            if (!last)
                return CAP_STARTTLS_MORE;
            st->step = 1;
            *out = SMTP_EHLO;
            *out_len = sizeof SMTP_EHLO - 1;
            return CAP_STARTTLS_SEND;
        }
        if (st->step == 1) {
            if (!smtp_code(line, len, "250", &last))
                return fail(err, errn, "smtp EHLO refused", line, len);
            if (!last)
                return CAP_STARTTLS_MORE;
            st->step = 2;
            *out = SMTP_STARTTLS;
            *out_len = sizeof SMTP_STARTTLS - 1;
            return CAP_STARTTLS_SEND;
        }
        if (!smtp_code(line, len, "220", &last))
            return fail(err, errn, "smtp STARTTLS refused", line, len);
        return last ? CAP_STARTTLS_DONE : CAP_STARTTLS_MORE;
    case CAP_STARTTLS_IMAP:
        if (st->step == 0) {
            if (!starts(line, len, "* OK") && !starts(line, len, "* PREAUTH"))
                return fail(err, errn, "imap greeting refused", line, len);
            st->step = 1;
            *out = IMAP_STARTTLS;
            *out_len = sizeof IMAP_STARTTLS - 1;
            return CAP_STARTTLS_SEND;
        }
        if (starts(line, len, "* "))
            return CAP_STARTTLS_MORE; /* untagged data (CAPABILITY, ...) */
        if (starts(line, len, "a1 OK"))
            return CAP_STARTTLS_DONE;
        return fail(err, errn, "imap STARTTLS refused", line, len);
    case CAP_STARTTLS_POP3:
        if (!starts(line, len, "+OK"))
            return fail(err, errn, st->step == 0 ? "pop3 greeting refused" : "pop3 STLS refused",
                        line, len);
        if (st->step == 0) {
            st->step = 1;
            *out = POP3_STLS;
            *out_len = sizeof POP3_STLS - 1;
            return CAP_STARTTLS_SEND;
        }
        return CAP_STARTTLS_DONE;
    default:
        return fail(err, errn, "starttls: unexpected protocol state", NULL, 0);
    }
}

/* Reads a BER length at *p (short form, or long form of 1..2 bytes). -1: malformed, 0: need
 * more bytes, 1: ok. */
static int ber_len(const uint8_t *buf, size_t n, size_t *p, size_t *out)
{
    if (*p >= n)
        return 0;
    uint8_t b = buf[(*p)++];
    if (b < 0x80) {
        *out = b;
        return 1;
    }
    size_t k = b & 0x7f;
    if (k == 0 || k > 2)
        return -1;
    if (*p + k > n)
        return 0;
    size_t v = 0;
    for (size_t i = 0; i < k; i++)
        v = (v << 8) | buf[(*p)++];
    *out = v;
    return 1;
}

/* The LDAP ExtendedResponse: LDAPMessage { messageID, [APPLICATION 24] { resultCode, ... } }. */
static enum cap_starttls_status ldap_input(struct cap_starttls *st, char *err, size_t errn)
{
    const uint8_t *b = st->buf;
    size_t n = st->len, p = 0, len = 0;
    if (b[p++] != 0x30)
        return fail(err, errn, "ldap: response is not an LDAPMessage", b, n);
    int r = ber_len(b, n, &p, &len);
    if (r < 0 || (r == 1 && p + len > sizeof st->buf))
        return fail(err, errn, "ldap: bad or oversized message length", NULL, 0);
    if (r == 0 || p + len > n)
        return CAP_STARTTLS_MORE;
    size_t end = p + len;
    if (end != n)
        return fail(err, errn, "ldap: bytes after the StartTLS response", NULL, 0);
    /* messageID INTEGER */
    if (p >= end || b[p++] != 0x02)
        return fail(err, errn, "ldap: missing messageID", NULL, 0);
    size_t il = 0;
    if (ber_len(b, end, &p, &il) != 1 || il == 0 || il > 4 || p + il > end)
        return fail(err, errn, "ldap: bad messageID", NULL, 0);
    p += il;
    if (p >= end || b[p] != 0x78)
        return fail(err, errn, "ldap: response is not an ExtendedResponse", NULL, 0);
    p++;
    size_t ol = 0;
    if (ber_len(b, end, &p, &ol) != 1 || p + ol > end)
        return fail(err, errn, "ldap: bad ExtendedResponse length", NULL, 0);
    size_t oend = p + ol;
    if (p >= oend || b[p++] != 0x0a)
        return fail(err, errn, "ldap: missing resultCode", NULL, 0);
    size_t rl = 0;
    if (ber_len(b, oend, &p, &rl) != 1 || rl == 0 || rl > 4 || p + rl > oend)
        return fail(err, errn, "ldap: bad resultCode", NULL, 0);
    unsigned code = 0;
    for (size_t i = 0; i < rl; i++)
        code = (code << 8) | b[p++];
    if (code == 0)
        return CAP_STARTTLS_DONE;
    /* matchedDN then diagnosticMessage, both OCTET STRING: quote the diagnostic if present */
    const uint8_t *diag = NULL;
    size_t dl = 0;
    for (int field = 0; field < 2 && p < oend; field++) {
        if (b[p++] != 0x04)
            break;
        size_t fl = 0;
        if (ber_len(b, oend, &p, &fl) != 1 || p + fl > oend)
            break;
        if (field == 1) {
            diag = b + p;
            dl = fl;
        }
        p += fl;
    }
    char what[64];
    snprintf(what, sizeof what, "ldap StartTLS refused (resultCode %u)", code);
    return fail(err, errn, what, diag, dl);
}

enum cap_starttls_status cap_starttls_input(struct cap_starttls *st, const uint8_t *data, size_t n,
                                            const uint8_t **out, size_t *out_len, char *err,
                                            size_t errn)
{
    if (st->proto == CAP_STARTTLS_NONE)
        return n ? fail(err, errn, "starttls: data on an implicit TLS port", NULL, 0)
                 : CAP_STARTTLS_DONE;
    if (st->step < 0)
        return fail(err, errn, "starttls: dialogue already ended", NULL, 0);
    st->total += n;
    if (st->total > CAP_STARTTLS_TOTAL_MAX)
        return fail(err, errn, "starttls: server sent too much before agreeing", NULL, 0);
    if (n > sizeof st->buf - st->len)
        return fail(err, errn, "starttls: server line or message too long", NULL, 0);
    if (n)
        memcpy(st->buf + st->len, data, n);
    st->len += n;
    if (st->len == 0)
        return CAP_STARTTLS_MORE;

    if (st->proto == CAP_STARTTLS_POSTGRES) {
        uint8_t c = st->buf[0];
        if (c == 'S' && st->len == 1) {
            st->step = -1;
            return CAP_STARTTLS_DONE;
        }
        if (c == 'S')
            return fail(err, errn, "postgres: bytes after the SSL go-ahead", NULL, 0);
        if (c == 'N')
            return fail(err, errn, "postgres: server does not accept SSL", NULL, 0);
        return fail(err, errn, "postgres: unexpected answer to SSLRequest", st->buf, st->len);
    }
    if (st->proto == CAP_STARTTLS_LDAP) {
        enum cap_starttls_status s = ldap_input(st, err, errn);
        if (s == CAP_STARTTLS_DONE)
            st->step = -1;
        return s;
    }
    /* text protocols: process complete lines one at a time */
    uint8_t *nl = memchr(st->buf, '\n', st->len);
    if (!nl) {
        if (st->len == sizeof st->buf)
            return fail(err, errn, "starttls: server line too long", NULL, 0);
        return CAP_STARTTLS_MORE;
    }
    size_t line_len = (size_t)(nl - st->buf);
    size_t consumed = line_len + 1;
    if (line_len > 0 && st->buf[line_len - 1] == '\r')
        line_len--;
    uint8_t line[CAP_STARTTLS_LINE_MAX];
    memcpy(line, st->buf, line_len);
    memmove(st->buf, st->buf + consumed, st->len - consumed);
    st->len -= consumed;
    enum cap_starttls_status s = text_line(st, line, line_len, out, out_len, err, errn);
    if (s == CAP_STARTTLS_DONE) {
        st->step = -1;
        if (st->len > 0)
            return fail(err, errn, "starttls: bytes after the server's go-ahead", NULL, 0);
        return s;
    }
    if (s == CAP_STARTTLS_MORE && st->len > 0)
        return cap_starttls_input(st, NULL, 0, out, out_len, err, errn);
    return s;
}
