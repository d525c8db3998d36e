#!/usr/bin/env python3
"""Gives the load test's corpus client addresses, and geo databases that know them.

    geo_corpus.py CORPUS_IN CORPUS_OUT GEO_DIR

CORPUS_IN is mint_corpus's output (`path<TAB>user-agent`, five lines per
recipient, in recipient order). CORPUS_OUT gets a third column, the
client's address, sent as X-Forwarded-For (corpus.lua, examples/fixedrate.rs): one
address per recipient, spread over 64 /16 networks. GEO_DIR gets
city.mmdb and asn.mmdb (written with tests/py/mmdbwrite.py) with a record
for each of those networks, so every request costs trackedge a real city
and ASN lookup, as behind a load balancer in production.
"""

import ipaddress
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "py"))
import mmdbwrite  # noqa: E402

# Networks of ordinary access providers, away from the built-in agent rules'
# proxy and scanner networks (agents/agents.toml).
FIRST = [2, 5, 31, 37, 46, 62, 77, 78]
SECOND = [11, 23, 42, 64, 99, 128, 171, 200]
NETS = [ipaddress.ip_network(f"{a}.{b}.0.0/16") for a in FIRST for b in SECOND]
COUNTRIES = ["DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE"]


def address(recipient: int) -> str:
    net = NETS[recipient % len(NETS)]
    host = (recipient // len(NETS)) % 65000 + 1
    return str(net.network_address + host)


def main() -> None:
    src, dst, geo = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    with open(src, encoding="utf-8") as fi, open(dst, "w", encoding="utf-8") as fo:
        for n, line in enumerate(fi):
            line = line.rstrip("\n")
            if line:
                fo.write(f"{line}\t{address(n // 5)}\n")
    geo.mkdir(parents=True, exist_ok=True)
    city = mmdbwrite.Writer("GeoIP2-City")
    asn = mmdbwrite.Writer("GeoLite2-ASN")
    for i, net in enumerate(NETS):
        cc = COUNTRIES[i % len(COUNTRIES)]
        city.insert(str(net), {
            "city": {"names": {"en": f"City {i}"}},
            "country": {"iso_code": cc},
            "subdivisions": [{"iso_code": f"R{i % 5}"}],
            "location": {"latitude": 40.0 + i / 10, "longitude": 2.0 + i / 10},
        })
        asn.insert(str(net), {
            "autonomous_system_number": mmdbwrite.Uint32(64512 + i),
            "autonomous_system_organization": f"Access Provider {i}",
        })
    city.write(geo / "city.mmdb")
    asn.write(geo / "asn.mmdb")


if __name__ == "__main__":
    main()
