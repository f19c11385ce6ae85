-- The network policy's always-refused blocks gain the Azure wireserver, the GCP IPv6 metadata
-- address and the EKS Pod Identity agent (kept in step with ALWAYS_REFUSED in
-- common/policy.c), and the save-time check reads an IPv4-mapped range (::ffff:a.b.c.d/n) as
-- the IPv4 range it is, as capctl does.

CREATE OR REPLACE FUNCTION cap_refused_blocks() RETURNS TABLE (block cidr, reason text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('169.254.0.0/16'::cidr, 'link-local (169.254.0.0/16)'),
           ('fe80::/10'::cidr, 'IPv6 link-local (fe80::/10)'),
           ('0.0.0.0/8'::cidr, '"this network" (0.0.0.0/8)'),
           ('224.0.0.0/4'::cidr, 'multicast (224.0.0.0/4)'),
           ('ff00::/8'::cidr, 'IPv6 multicast (ff00::/8)'),
           ('255.255.255.255/32'::cidr, 'broadcast (255.255.255.255)'),
           ('100.100.100.200/32'::cidr, 'cloud metadata (Alibaba 100.100.100.200)'),
           ('fd00:ec2::254/128'::cidr, 'cloud metadata (AWS fd00:ec2::254)'),
           ('192.0.0.192/32'::cidr, 'cloud metadata (Oracle 192.0.0.192)'),
           ('::/128'::cidr, 'unspecified address (::)'),
           ('168.63.129.16/32'::cidr, 'cloud platform (Azure wireserver 168.63.129.16)'),
           ('fd20:ce::254/128'::cidr, 'cloud metadata (GCP fd20:ce::254)'),
           ('fd00:ec2::23/128'::cidr, 'cloud credentials (AWS EKS Pod Identity fd00:ec2::23)')
$$;

-- An IPv4-mapped IPv6 range as the IPv4 range it carries; any other range as it is.
CREATE FUNCTION cap_cidr_unmapped(x cidr) RETURNS cidr
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN family(x) = 6 AND masklen(x) >= 96 AND x <<= '::ffff:0.0.0.0/96'::cidr
        THEN (substr(host(x), 8) || '/' || (masklen(x) - 96))::cidr
        ELSE x END
$$;
COMMENT ON FUNCTION cap_cidr_unmapped(cidr) IS
    'An IPv4-mapped IPv6 range (::ffff:a.b.c.d/n, n >= 96) as its IPv4 range; others unchanged.';

CREATE OR REPLACE FUNCTION cap_cidrs_refused_reason(c cidr[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT format('cidr %s lies wholly inside %s, which the network policy always refuses',
                  x, b.reason)
    FROM unnest(c) AS x, cap_refused_blocks() AS b
    WHERE family(cap_cidr_unmapped(x)) = family(b.block) AND cap_cidr_unmapped(x) <<= b.block
    LIMIT 1
$$;
