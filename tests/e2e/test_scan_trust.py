"""The worker's trust store is the CA bundle read once into memory ($SSL_CERT_FILE here), read
again when the file changes or on SIGHUP, and each distinct chain is verified once per run and
not again by a later run against the same store.

- a bundle without the fleet's root: the endpoints are untrusted (medium finding);
- the bundle rewritten with the fleet's root: the next run trusts them, the findings resolve;
- the old bundle written back with the same size, inode and mtime (stat cannot see it): the
  store stays until SIGHUP, then the endpoints are untrusted again;
- four endpoints serving one chain: one verification in the run.
"""

import os
import signal
import time

from cryptography.hazmat.primitives import serialization

import harness
import tlsfleet


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def write_same_stat(path, data, st):
    """Rewrites path in place with data (same length as before) and puts its mtime back."""
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def untrusted_open(c):
    return c.sql("SELECT count(*) FROM findings WHERE kind = 'untrusted' AND status = 'open'")[0][0]


def main():
    with harness.Cluster(name="trust", config={"network.allow_loopback": True}) as c:
        c.migrate()
        fleet = tlsfleet.Fleet(c.tmpdir)
        other = tlsfleet.Fleet(os.path.join(c.tmpdir, "other"))  # an unrelated root CA
        leaf = fleet.cert("trust.fleet.test", sans=["trust.fleet.test"])
        for i in range(4):
            fleet.tls("t%d" % i, leaf)
        bundle = os.path.join(c.tmpdir, "bundle.pem")
        good, bad = pem(fleet.ca), pem(other.ca)
        pad = lambda b, n: b + b"#" * (n - len(b) - 1) + b"\n"  # text outside PEM blocks
        size = max(len(good), len(bad)) + 64
        good, bad = pad(good, size), pad(bad, size)
        with open(bundle, "wb") as f:
            f.write(bad)
        os.chmod(bundle, 0o644)
        os.chmod(c.tmpdir, 0o755)
        fleet.start()
        try:
            c.start_scheduler()
            w = c.start_worker(extra_env={"SSL_CERT_FILE": bundle})
            sid = c.add_source_sql("trust", cidrs=[fleet.cidr()], ports=[fleet.port],
                                   timeout_ms=3000)

            def run():
                r = c.wait_run(c.insert_run_sql(sid), timeout=120)
                assert r["status"] in ("succeeded", "partial"), harness._short_row(r)
                return r

            run()
            assert untrusted_open(c) == 4, untrusted_open(c)
            done = [e for e in c.log_events(w) if e.get("event") == "scan_finished"]
            assert done and done[-1].get("chains_verified") == 1, done[-1:]
            assert done[-1].get("chain_verifications") == 1, done[-1:]

            # a re-scan with the same store: the chain's result is kept from the run before
            run()
            assert untrusted_open(c) == 4, untrusted_open(c)
            done = [e for e in c.log_events(w) if e.get("event") == "scan_finished"]
            assert done[-1].get("chains_verified") == 1, done[-1:]
            assert done[-1].get("chain_verifications") == 0, done[-1:]

            # the file changes: read again within a second, the findings resolve
            time.sleep(1.1)
            with open(bundle, "wb") as f:
                f.write(good)
            time.sleep(1.1)
            run()
            assert untrusted_open(c) == 0, untrusted_open(c)
            # a new store: verified again, not taken from what the old one said
            done = [e for e in c.log_events(w) if e.get("event") == "scan_finished"]
            assert done[-1].get("chain_verifications") == 1, done[-1:]
            st = os.stat(bundle)

            # the old bundle back without a visible change: kept until SIGHUP
            write_same_stat(bundle, bad, st)
            st2 = os.stat(bundle)
            assert (st2.st_ino, st2.st_size, st2.st_mtime_ns) == \
                (st.st_ino, st.st_size, st.st_mtime_ns)
            time.sleep(1.1)
            run()
            assert untrusted_open(c) == 0, "reloaded without a change or a SIGHUP"
            w.send_signal(signal.SIGHUP)
            time.sleep(0.2)
            run()
            assert untrusted_open(c) == 4, untrusted_open(c)
            loads = [e for e in c.log_events(w) if e.get("event") == "scan_trust_store_loaded"]
            assert len(loads) == 3, loads
            c.assert_running(w)
        finally:
            fleet.stop()
    print("test_scan_trust: ok")


if __name__ == "__main__":
    main()
