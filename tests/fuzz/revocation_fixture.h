/* A CA and a leaf it issued (serial 0x1234), both valid to 2099, for the revocation
 * fuzz target and unit test; the seeds in tests/fuzz/corpus/fuzz_revocation answer
 * for this leaf. Written by tests/fuzz/gen_revocation_seeds.py. */
#ifndef CAP_REVOCATION_FIXTURE_H
#define CAP_REVOCATION_FIXTURE_H

static const char REV_FIXTURE_ISSUER_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBJzCBzqADAgECAgEBMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMMB0Z1enogQ0Ew\n"
    "IBcNMjYwMTAxMDAwMDAwWhgPMjA5OTAxMDEwMDAwMDBaMBIxEDAOBgNVBAMMB0Z1\n"
    "enogQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQUrbuolSFPx1lGHnLpqh+N\n"
    "1MpH0ulXSNxuyjmMsy0ZhsZnY587oqKYWKjOw+mxt8rXTWuXHHGZULDoFDLbhceB\n"
    "oxMwETAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQChAOsDc8d8\n"
    "qxL89tRDmJAh8wPHiA/Du3FYsPhAusECqAIgUymqAxGDCgnzD/Yd+7dYnbc21trN\n"
    "sBbz88Koi36Y74M=\n"
    "-----END CERTIFICATE-----\n"
    ;
static const char REV_FIXTURE_LEAF_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBGjCBwaADAgECAgISNDAKBggqhkjOPQQDAjASMRAwDgYDVQQDDAdGdXp6IENB\n"
    "MCAXDTI2MDEwMTAwMDAwMFoYDzIwOTkwMTAxMDAwMDAwWjAZMRcwFQYDVQQDDA5s\n"
    "ZWFmLmZ1enoudGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJmMvzm6W3vi\n"
    "e9I7mJJ9Z/nadkMTWIAJk898x9HO+ESjeXi3pn1ypgdu+47ZZf8N0IxShwDk1YMJ\n"
    "EmYjy07BehYwCgYIKoZIzj0EAwIDSAAwRQIhANGHk/oX+tWde9D1fr4Q4Af79nV9\n"
    "385YoLi8DzJhTZLwAiAznns8SjBSn07LyiMYGtFIqYemARe5RNNkhmrmyRDnUQ==\n"
    "-----END CERTIFICATE-----\n"
    ;

#endif
