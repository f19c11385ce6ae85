/* A CA and a leaf it issued (serial 0x1234), both valid to 2099, for the revocation
 * fuzz target and unit test; the seeds in tests/fuzz/corpus/fuzz_revocation answer
 * for this leaf. Written by tests/fuzz/gen_revocation_seeds.py. */
#ifndef CAP_REVOCATION_FIXTURE_H
#define CAP_REVOCATION_FIXTURE_H

#define REV_FIXTURE_CRL_URL "http://crl.fuzz.test/ca.crl"

static const char REV_FIXTURE_ISSUER_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBJjCBzqADAgECAgEBMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMMB0Z1enogQ0Ew\n"
    "IBcNMjYwMTAxMDAwMDAwWhgPMjA5OTAxMDEwMDAwMDBaMBIxEDAOBgNVBAMMB0Z1\n"
    "enogQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARW5rstE9dSOyQRskYbHxY5\n"
    "FPxgKWnR8MueGf0NTPHMRsqsL/d1c8rgfJiePYOp8XUqTxsqs+ypqaLyBkKdj2IQ\n"
    "oxMwETAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIEgaQatMQ3UD\n"
    "Cwbhrt494q5C3Dv5evsAIC0tuXjT2N5WAiATFBNcGjiARF9diuETpRAbz0AFsiap\n"
    "Dn1VCHzLncZyLA==\n"
    "-----END CERTIFICATE-----\n"
    ;
static const char REV_FIXTURE_LEAF_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBGjCBwaADAgECAgISNDAKBggqhkjOPQQDAjASMRAwDgYDVQQDDAdGdXp6IENB\n"
    "MCAXDTI2MDEwMTAwMDAwMFoYDzIwOTkwMTAxMDAwMDAwWjAZMRcwFQYDVQQDDA5s\n"
    "ZWFmLmZ1enoudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIo6RCWutYwU\n"
    "SEkgnmKitM61GdsMVV51vyn6o0pommbiTOcENyVGJlT6sI+VU5Mm8Bc2vvkfdKQr\n"
    "kW8077i7+40wCgYIKoZIzj0EAwIDSAAwRQIgIMTwpcKmdrChbmGJQiOXeSEVmXOj\n"
    "m8phlLQn+pQ6sQ0CIQCbEnoIa+p41U7LMH3rIZhzTirLYeggRKs09H9qnPwDHA==\n"
    "-----END CERTIFICATE-----\n"
    ;
static const char REV_FIXTURE_LOOKALIKE_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBEjCBuaADAgECAgECMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMMB0Z1enogQ0Ew\n"
    "IBcNMjYwMTAxMDAwMDAwWhgPMjA5OTAxMDEwMDAwMDBaMBIxEDAOBgNVBAMMB0Z1\n"
    "enogQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQwdS48sKIhlUnJ/P01/xd8\n"
    "7XvQ9cFvVjuOLlQuuN4yZkEoy75UAzkKqCCF4Eh6rAkdJ4vSGTdNSMuJUWVSU74G\n"
    "MAoGCCqGSM49BAMCA0gAMEUCIDX6ctEQl6Fs1LiwNyfO5rl0JnxCdfY5TfjrOPEY\n"
    "cbM9AiEAk3d6qt0VBtzRHJ7nPePNUa7RCGT5R52Nr1hCLRuvISE=\n"
    "-----END CERTIFICATE-----\n"
    ;

#endif
