#!/usr/bin/env python3
"""Reference classifier and measurement for agents/agents.toml on tests/fixtures/agents.tsv.

Emulates the order of evaluation recommended in agents/agents.toml (rules by UA,
then the generic set unless a guard matches, then rules by network, then HEAD
and timing; no ASN database, no burst: the fixture rows are single requests)
and prints precision and recall per kind, the rows it gets wrong, and the
humans the generic pattern set alone would flag.

Uses the Rust `regex` engine through the `flpc` Python package when it is
installed (pip install flpc), else Python's `re` (ASCII mode), which reads the
vendored patterns the same way for these inputs.

  python3 scripts/agents_measure.py [--repo .] [--min-click-secs 5]
"""

import argparse
import collections
import ipaddress
import os
import re
import sys
import tomllib

try:
    import flpc

    def compile_ci(p):
        return flpc.compile("(?i)" + p)

    def search(c, s):
        return flpc.search(c, s) is not None

    ENGINE = "rust regex (flpc)"
except ImportError:  # pragma: no cover
    def compile_ci(p):
        return re.compile(p.replace("(?-u:\\b)", "\\b"), re.I | re.A)

    def search(c, s):
        return c.search(s) is not None

    ENGINE = "python re"


def load(repo, data_dir="agents"):
    rules = tomllib.load(open(os.path.join(repo, data_dir, "agents.toml"), "rb"))
    gen = rules["generic"]
    pats = [
        l.rstrip("\n")
        for l in open(os.path.join(repo, data_dir, gen["patterns"]), encoding="utf-8")
        if l.strip() and not l.startswith("#")
    ]
    generic = [compile_ci(p) for p in pats]
    unless = [compile_ci(p) for p in gen.get("unless", [])]
    out = []
    for r in rules["rule"]:
        out.append(
            dict(
                r,
                ua_c=[compile_ci(p) for p in r.get("ua", [])],
                nets=[ipaddress.ip_network(n) for n in r.get("networks", [])],
            )
        )
    return out, generic, pats, unless


def applies(rule, route):
    return route in rule.get("routes", ["open", "click", "unsubscribe", "beacon"])


def verdict_kind(rule, route):
    return rule.get("click_kind", rule["kind"]) if route == "click" else rule["kind"]


def generic_hit(ua, generic, unless):
    if not any(search(c, ua) for c in generic):
        return False
    return not any(search(c, ua) for c in unless)


def classify(row, rules, generic, unless, min_click_secs):
    route, method, ip, secs, ua = row[:5]
    # 1. rules by UA
    for r in rules:
        if applies(r, route) and any(search(c, ua) for c in r["ua_c"]):
            return verdict_kind(r, route), r["name"], "ua"
    # 2. generic set (an empty UA is no person's client either)
    if ua.strip() == "" or generic_hit(ua, generic, unless):
        gen = True
    else:
        gen = False
    other = None
    if method == "HEAD":
        other = "method"
    elif route == "click" and secs != "-" and 0 <= int(secs) < min_click_secs:
        other = "timing"
    addr = ipaddress.ip_address(ip)
    # 3. rules by network
    for r in rules:
        if not applies(r, route) or not any(addr in n for n in r["nets"]):
            continue
        if r.get("needs_other_signal"):
            if gen or other:
                return "bot", r["name"], ("ua" if gen else other)
            continue
        if gen:
            return "bot", r["name"], "ua"
        return verdict_kind(r, route), r["name"], "ip"
    if gen:
        return "bot", None, "ua"
    if other:
        return "bot", None, other
    return "human", None, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=".")
    ap.add_argument("--min-click-secs", type=int, default=5)
    ap.add_argument("--fixture", default="tests/fixtures/agents.tsv")
    ap.add_argument("--data-dir", default="data")
    args = ap.parse_args()
    rules, generic, pats, unless = load(args.repo, args.data_dir)
    rows = []
    for l in open(os.path.join(args.repo, args.fixture), encoding="utf-8"):
        if l.startswith("#") or not l.strip():
            continue
        rows.append(l.rstrip("\n").split("\t"))
    conf = collections.Counter()
    wrong = []
    for row in rows:
        kind, name, reason = classify(row, rules, generic, unless, args.min_click_secs)
        conf[(row[5], kind)] += 1
        if kind != row[5] or (row[6] != "-" and name != row[6]):
            wrong.append((row, kind, name, reason))
    kinds = ["human", "proxy", "bot"]
    print("engine:", ENGINE, "| rows:", len(rows), "| generic patterns:", len(pats))
    print("%-6s %7s %7s %9s %7s" % ("kind", "rows", "recall", "precision", "as-kind"))
    for k in kinds:
        n = sum(conf[(k, x)] for x in kinds)
        tp = conf[(k, k)]
        pred = sum(conf[(x, k)] for x in kinds)
        print("%-6s %7d %6.2f%% %8.2f%% %7d" % (k, n, 100 * tp / n if n else 0, 100 * tp / pred if pred else 0, pred))
    machines = sum(conf[(k, x)] for k in ("proxy", "bot") for x in ("proxy", "bot"))
    nm = sum(conf[(k, x)] for k in ("proxy", "bot") for x in kinds)
    print("machines read as machines: %d/%d = %.2f%%; humans misread: %d" % (
        machines, nm, 100 * machines / nm, sum(conf[("human", x)] for x in ("proxy", "bot"))))
    # the generic set alone
    bots = [r for r in rows if r[5] == "bot"]
    humans = [r for r in rows if r[5] == "human"]
    g_b = sum(1 for r in bots if any(search(c, r[4]) for c in generic))
    print("generic set alone (no guards): %d/%d bot rows = %.2f%% recall" % (g_b, len(bots), 100 * g_b / len(bots)))
    fp = [r for r in humans if any(search(c, r[4]) for c in generic)]
    print("generic set alone flags %d of %d human rows:" % (len(fp), len(humans)))
    for r in fp:
        hits = [pats[i] for i, c in enumerate(generic) if search(c, r[4])]
        guarded = any(search(c, r[4]) for c in unless)
        print("   %s  <- %s%s" % (r[4], hits, "  (guarded by `unless`)" if guarded else ""))
    print("wrong rows: %d" % len(wrong))
    for row, kind, name, reason in wrong:
        print("   expected %s/%s got %s/%s (%s): %s %s %s" % (row[5], row[6], kind, name, reason, row[0], row[2], row[4][:110]))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
