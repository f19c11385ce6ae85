"""The network policy's always-refused blocks are the same in the database's save-time check
(cap_refused_blocks(), cap_cidrs_refused_reason()) and in capctl (common/policy.c): every block
the database lists is refused by both, IPv4-mapped ranges included, and a range beside them is
accepted by both."""

import psycopg2

import harness

BLOCK_PROBES = [
    "169.254.169.254/32", "::ffff:169.254.0.0/112", "::ffff:169.254.169.254/128",
    "168.63.129.16/32", "fd20:ce::254/128", "fd00:ec2::23/128", "fd00:ec2::254/128",
    "100.100.100.200/32", "0.0.0.0/8", "ff02::/16",
]
ALLOWED_PROBES = ["10.0.0.0/8", "::ffff:10.0.0.0/104", "168.63.129.0/24", "fd00:ec2::/64"]


def sql_refuses(c, cidr):
    try:
        c.sql("INSERT INTO discovery_sources (name, type, cidrs) VALUES ('probe', "
              "'network_scan', ARRAY[%s]::cidr[])", (cidr,))
    except psycopg2.Error as e:
        return str(e).splitlines()[0]
    c.sql("DELETE FROM discovery_sources WHERE name = 'probe'")
    return None


def capctl_refuses(c, cidr):
    r = c.capctl("source", "add", "probe", "--type", "network_scan", "--cidr", cidr)
    if r.returncode == 0:
        c.capctl_ok("source", "delete", "probe")
        return None
    return (r.stderr or r.stdout).strip()


def main():
    with harness.Cluster(name="policy", start_redis=False) as c:
        c.migrate()
        blocks = [r[0] for r in c.sql("SELECT block::text FROM cap_refused_blocks()")]
        for cidr in blocks + BLOCK_PROBES:
            db, cli = sql_refuses(c, cidr), capctl_refuses(c, cidr)
            print("%-28s database: %s | capctl: %s" % (cidr, db, cli))
            assert db and "network policy always refuses" in db, (cidr, db)
            assert cli and "network policy always refuses" in cli, (cidr, cli)
        for cidr in ALLOWED_PROBES:
            db, cli = sql_refuses(c, cidr), capctl_refuses(c, cidr)
            assert db is None and cli is None, (cidr, db, cli)
    print("test_policy_blocks: ok")


if __name__ == "__main__":
    main()
