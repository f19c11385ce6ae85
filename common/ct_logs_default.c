/* Curated default CT logs: current shards of Google Argon, Cloudflare Nimbus and Let's Encrypt
 * Sycamore and Willow (static-ct), as published in the v3 log list (version 89-93, 2026). Each
 * log ID is the SHA-256 of its key (checked by tests/unit/test_ct_core.c). Sycamore2027h1 and
 * Willow2027h1 are not listed yet: their keys were not at hand when the list was made, and a
 * log is never listed with a guessed key. */
#include "common/ct_logs_default.h"

static const struct cap_ct_default_log LOGS[] = {
    {"Google 'Argon2026h2' log", "https://ct.googleapis.com/logs/us1/argon2026h2/", "rfc6962",
     NULL,
     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKjpni/66DIYrSlGK6Rf+e6F2c/28ZUvDJ79N81+gyimAESAyeNZ++"
     "TRgjHWg9TVQnKHTSU0T1TtqDupFnSQTIg==",
     "1219ENGn9XfCx+lf1wC/+YLJM1pl4dCzAXMXwMjFaXc=", 86400},
    {"Google 'Argon2027h1'", "https://ct.googleapis.com/logs/us1/argon2027h1/", "rfc6962", NULL,
     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKHRm0H/zUaFA6Idz5cGvGO3tCPQyfGMgJmVBOPyKAP6mGM1IiNXi4"
     "CLomOUyYj0YN74p+eGVApFMsM4h/jzCsA==",
     "1tWNqdAXU/NqSqDHV0kCr+vH3CzTjNn3ZMgMiRkenwI=", 86400},
    {"Cloudflare 'Nimbus2026'", "https://ct.cloudflare.com/logs/nimbus2026/", "rfc6962", NULL,
     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2FxhT6xq0iCATopC9gStS9SxHHmOKTLeaVNZ661488Aq8tARXQV+"
     "6+jB0983v5FkRm4OJxPqu29GJ1iG70Ahow==",
     "yzj3FYl8hKFEX1vB3fvJbvKaWc1HCmkFhbDLFMMUWOc=", 86400},
    {"Cloudflare 'Nimbus2027'", "https://ct.cloudflare.com/logs/nimbus2027/", "rfc6962", NULL,
     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYjd/jE0EoAhNBbfcNhrTb7F0x10KZK8r2SDjx1GdjJ75hJrHx2OCQ+"
     "BXRjXi+czoREN1u0j9cWl8d6OoPMPogQ==",
     "TGPcmOWcHauI9h6KPd6uj6tEozd7X5uUw/uhnPzBviY=", 86400},
    {"Let's Encrypt 'Sycamore2026h2'", "https://mon.sycamore.ct.letsencrypt.org/2026h2/",
     "static-ct", "log.sycamore.ct.letsencrypt.org/2026h2",
     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEwR1FtiiMbpvxR+sIeiZ5JSCIDIdTAPh7OrpdchcrCcyNVDvNUq358pq"
     "Jx2qdyrOI+EjGxZ7UiPcN3bL3Q99FqA==",
     "bP5QGUOoXqkWvFLRM+TcyR7xQRx9JYQg0XOAnhgY6zo=", 60},
    {"Let's Encrypt 'Willow2026h2'", "https://mon.willow.ct.letsencrypt.org/2026h2/", "static-ct",
     "log.willow.ct.letsencrypt.org/2026h2",
     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEp8wH8R6zfM+UhsQq5un+lPdNTDkzcgkWLi1DwyqU6T00mtP5/CuGjvp"
     "w4mIz89I6KV5ZvhRHt5ZTF6qe24pqiA==",
     "qCbL4wrGNRJGUz/gZfFPGdluGQgTxB3ZbXkAsxI8VSc=", 60},
};

const struct cap_ct_default_log *cap_ct_logs_default(size_t *n)
{
    *n = sizeof LOGS / sizeof LOGS[0];
    return LOGS;
}
