/* STARTTLS dialogues (SMTP, IMAP, POP3, LDAP, PostgreSQL) as pure state machines: the probe
 * feeds them what the server sent and writes what they ask for; no I/O here. Input is bounded:
 * one line or message of at most CAP_STARTTLS_LINE_MAX bytes, CAP_STARTTLS_TOTAL_MAX in all. */
#ifndef CAP_STARTTLS_H
#define CAP_STARTTLS_H

#include <stddef.h>
#include <stdint.h>

/* The protocols, their names and default ports: one table shared with capctl. */
#include "common/source/network_scan.h"

#define CAP_STARTTLS_LINE_MAX 1024
#define CAP_STARTTLS_TOTAL_MAX 16384

enum cap_starttls_status {
    CAP_STARTTLS_MORE = 0, /* wait for more input */
    CAP_STARTTLS_SEND,     /* write *out (then wait for more input) */
    CAP_STARTTLS_DONE,     /* the server agreed: start the TLS handshake now */
    CAP_STARTTLS_FAIL,     /* the dialogue failed: see err */
};

/* One dialogue; lives in the probe slot (fixed size, no allocation). */
struct cap_starttls {
    enum cap_starttls_proto proto;
    int step;
    size_t len;   /* bytes in buf */
    size_t total; /* bytes received in all */
    uint8_t buf[CAP_STARTTLS_LINE_MAX];
};

/* Starts the dialogue. Returns CAP_STARTTLS_SEND with *out and *out_len when the client speaks
 * first (LDAP, PostgreSQL), CAP_STARTTLS_MORE when it waits for a greeting, or
 * CAP_STARTTLS_DONE for CAP_STARTTLS_NONE. *out points to static data. */
enum cap_starttls_status cap_starttls_begin(struct cap_starttls *st, enum cap_starttls_proto proto,
                                            const uint8_t **out, size_t *out_len);

/* Feeds n bytes the server sent. Returns MORE, SEND (with *out and *out_len, static data), DONE or
 * FAIL with err (size errn) saying why, server text escaped and cut. Bytes after the server's
 * go-ahead are a protocol error (the server must wait for our ClientHello). Pure. */
enum cap_starttls_status cap_starttls_input(struct cap_starttls *st, const uint8_t *data, size_t n,
                                            const uint8_t **out, size_t *out_len, char *err,
                                            size_t errn);

#endif
