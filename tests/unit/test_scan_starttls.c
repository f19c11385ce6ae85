/* Unit tests of the STARTTLS dialogues: SMTP, IMAP, POP3, LDAP and PostgreSQL, happy paths,
 * refusals, split input, overlong lines and bytes after the go-ahead. */
#include <stdio.h>
#include <string.h>

#include "worker/scan/starttls.h"

static int failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static enum cap_starttls_status feed(struct cap_starttls *st, const char *s, const uint8_t **out,
                                     size_t *out_len, char *err)
{
    return cap_starttls_input(st, (const uint8_t *)s, strlen(s), out, out_len, err, 200);
}

static void test_smtp(void)
{
    struct cap_starttls st;
    const uint8_t *out = NULL;
    size_t ol = 0;
    char err[200] = "";
    CHECK(cap_starttls_for_port(25) == CAP_STARTTLS_SMTP);
    CHECK(cap_starttls_for_port(587) == CAP_STARTTLS_SMTP);
    CHECK(cap_starttls_for_port(465) == CAP_STARTTLS_NONE);
    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_SMTP, &out, &ol) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, "220-first line\r\n", &out, &ol, err) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, "220 mx.example", &out, &ol, err) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, " ESMTP\r\n", &out, &ol, err) == CAP_STARTTLS_SEND);
    CHECK(ol > 5 && memcmp(out, "EHLO ", 5) == 0);
    CHECK(feed(&st, "250-mx\r\n250-SIZE 10\r\n", &out, &ol, err) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, "250 STARTTLS\r\n", &out, &ol, err) == CAP_STARTTLS_SEND);
    CHECK(ol == 10 && memcmp(out, "STARTTLS\r\n", 10) == 0);
    CHECK(feed(&st, "220 go ahead\r\n", &out, &ol, err) == CAP_STARTTLS_DONE);

    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_SMTP, &out, &ol) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, "220 mx\r\n", &out, &ol, err) == CAP_STARTTLS_SEND);
    CHECK(feed(&st, "250 mx\r\n", &out, &ol, err) == CAP_STARTTLS_SEND);
    CHECK(feed(&st, "454 TLS not available\r\n", &out, &ol, err) == CAP_STARTTLS_FAIL);
    CHECK(strstr(err, "STARTTLS refused") && strstr(err, "454 TLS not available"));

    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_SMTP, &out, &ol) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, "554 go away\r\n", &out, &ol, err) == CAP_STARTTLS_FAIL);
    /* go-ahead followed by early bytes is refused */
    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_SMTP, &out, &ol) == CAP_STARTTLS_MORE);
    feed(&st, "220 mx\r\n", &out, &ol, err);
    feed(&st, "250 mx\r\n", &out, &ol, err);
    CHECK(feed(&st, "220 go\r\n\x16\x03", &out, &ol, err) == CAP_STARTTLS_FAIL);
    /* overlong line */
    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_SMTP, &out, &ol) == CAP_STARTTLS_MORE);
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(feed(&st, big, &out, &ol, err) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, big, &out, &ol, err) == CAP_STARTTLS_FAIL);
    CHECK(strstr(err, "too long") != NULL);
    /* a drip of greeting lines stops at the total bound */
    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_SMTP, &out, &ol) == CAP_STARTTLS_MORE);
    enum cap_starttls_status s = CAP_STARTTLS_MORE;
    for (int i = 0; i < 10000 && s == CAP_STARTTLS_MORE; i++)
        s = feed(&st, "220-more\r\n", &out, &ol, err);
    CHECK(s == CAP_STARTTLS_FAIL && strstr(err, "too much"));
}

static void test_imap_pop3(void)
{
    struct cap_starttls st;
    const uint8_t *out = NULL;
    size_t ol = 0;
    char err[200] = "";
    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_IMAP, &out, &ol) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, "* OK IMAP4rev1 ready\r\n", &out, &ol, err) == CAP_STARTTLS_SEND);
    CHECK(ol == 13 && memcmp(out, "a1 STARTTLS\r\n", 13) == 0);
    CHECK(feed(&st, "* CAPABILITY IMAP4rev1\r\n", &out, &ol, err) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, "a1 OK Begin TLS\r\n", &out, &ol, err) == CAP_STARTTLS_DONE);
    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_IMAP, &out, &ol) == CAP_STARTTLS_MORE);
    feed(&st, "* OK\r\n", &out, &ol, err);
    CHECK(feed(&st, "a1 BAD no\r\n", &out, &ol, err) == CAP_STARTTLS_FAIL);

    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_POP3, &out, &ol) == CAP_STARTTLS_MORE);
    CHECK(feed(&st, "+OK POP3\r\n", &out, &ol, err) == CAP_STARTTLS_SEND);
    CHECK(ol == 6 && memcmp(out, "STLS\r\n", 6) == 0);
    CHECK(feed(&st, "+OK begin\r\n", &out, &ol, err) == CAP_STARTTLS_DONE);
    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_POP3, &out, &ol) == CAP_STARTTLS_MORE);
    feed(&st, "+OK\r\n", &out, &ol, err);
    CHECK(feed(&st, "-ERR nope\r\n", &out, &ol, err) == CAP_STARTTLS_FAIL);
    CHECK(strstr(err, "STLS refused") != NULL);
}

static void test_ldap_pg(void)
{
    struct cap_starttls st;
    const uint8_t *out = NULL;
    size_t ol = 0;
    char err[200] = "";
    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_LDAP, &out, &ol) == CAP_STARTTLS_SEND);
    CHECK(ol == 31 && out[0] == 0x30 && out[5] == 0x77);
    CHECK(memcmp(out + 9, "1.3.6.1.4.1.1466.20037", 22) == 0);
    /* ExtendedResponse success, split in two */
    const uint8_t ok[] = {0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07,
                          0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00};
    CHECK(cap_starttls_input(&st, ok, 5, &out, &ol, err, sizeof err) == CAP_STARTTLS_MORE);
    CHECK(cap_starttls_input(&st, ok + 5, sizeof ok - 5, &out, &ol, err, sizeof err) ==
          CAP_STARTTLS_DONE);
    const uint8_t no[] = {0x30, 0x10, 0x02, 0x01, 0x01, 0x78, 0x0b, 0x0a, 0x01,
                          0x02, 0x04, 0x00, 0x04, 0x04, 'n',  'o',  'p',  'e'};
    cap_starttls_begin(&st, CAP_STARTTLS_LDAP, &out, &ol);
    CHECK(cap_starttls_input(&st, no, sizeof no, &out, &ol, err, sizeof err) == CAP_STARTTLS_FAIL);
    CHECK(strstr(err, "resultCode 2") && strstr(err, "nope"));
    const uint8_t junk[] = {0x31, 0x00};
    cap_starttls_begin(&st, CAP_STARTTLS_LDAP, &out, &ol);
    CHECK(cap_starttls_input(&st, junk, sizeof junk, &out, &ol, err, sizeof err) ==
          CAP_STARTTLS_FAIL);
    const uint8_t huge[] = {0x30, 0x82, 0xff, 0xff};
    cap_starttls_begin(&st, CAP_STARTTLS_LDAP, &out, &ol);
    CHECK(cap_starttls_input(&st, huge, sizeof huge, &out, &ol, err, sizeof err) ==
          CAP_STARTTLS_FAIL);

    CHECK(cap_starttls_begin(&st, CAP_STARTTLS_POSTGRES, &out, &ol) == CAP_STARTTLS_SEND);
    CHECK(ol == 8 && out[3] == 8 && out[4] == 0x04 && out[5] == 0xd2);
    CHECK(feed(&st, "S", &out, &ol, err) == CAP_STARTTLS_DONE);
    cap_starttls_begin(&st, CAP_STARTTLS_POSTGRES, &out, &ol);
    CHECK(feed(&st, "N", &out, &ol, err) == CAP_STARTTLS_FAIL);
    CHECK(strstr(err, "does not accept SSL") != NULL);
}

static void test_override(void)
{
    int port = 0;
    enum cap_starttls_proto pr = CAP_STARTTLS_NONE;
    CHECK(cap_starttls_parse_override("2525:smtp", &port, &pr) == 0);
    CHECK(port == 2525 && pr == CAP_STARTTLS_SMTP);
    CHECK(cap_starttls_parse_override("25:none", &port, &pr) == 0);
    CHECK(port == 25 && pr == CAP_STARTTLS_NONE);
    CHECK(cap_starttls_parse_override("5433:postgres", &port, &pr) == 0 &&
          pr == CAP_STARTTLS_POSTGRES);
    const char *bad[] = {"",       ":smtp",      "25",     "25:",         "25:ftp",
                         "0:smtp", "65536:smtp", "x:smtp", "123456:smtp", "25:smtp "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(cap_starttls_parse_override(bad[i], &port, &pr) == -1);
}

int main(void)
{
    test_override();
    test_smtp();
    test_imap_pop3();
    test_ldap_pg();
    if (failures) {
        fprintf(stderr, "test_scan_starttls: %d checks failed\n", failures);
        return 1;
    }
    printf("test_scan_starttls: ok\n");
    return 0;
}
