#!/usr/bin/env python3
"""Checks agents/vendor/isbot/patterns-rust.txt against isbot's own JavaScript patterns.

For every pattern, the rewritten Rust-syntax version must match exactly the
strings the JavaScript original matches (node runs the originals), on the UAs
of tests/fixtures/agents.tsv plus random strings built around the look-around
literals. The Rust side runs in the real Rust `regex` engine when the `flpc`
package is installed (pip install flpc), which also proves every pattern
compiles there; otherwise Python's `re` stands in (ASCII mode).

  agents_check.py --isbot-list isbot-list.json --repo ROOT
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile

NODE = r"""
const fs = require('fs');
const [pats, corpus] = [JSON.parse(fs.readFileSync(process.argv[1])), JSON.parse(fs.readFileSync(process.argv[2]))];
const rs = pats.map(p => new RegExp(p, 'i'));
process.stdout.write(JSON.stringify(corpus.map(u => rs.map((r, i) => r.test(u) ? i : -1).filter(i => i >= 0))));
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--isbot-list", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--fuzz", type=int, default=20000)
    ap.add_argument("--data-dir", default="data")
    args = ap.parse_args()
    js_pats = json.load(open(args.isbot_list))["list"]
    rust_pats = [
        l.rstrip("\n")
        for l in open(os.path.join(args.repo, args.data_dir, "vendor/isbot/patterns-rust.txt"), encoding="utf-8")
        if l.strip() and not l.startswith("#")
    ]
    assert len(js_pats) == len(rust_pats), (len(js_pats), len(rust_pats))
    corpus = []
    for l in open(os.path.join(args.repo, "tests/fixtures/agents.tsv"), encoding="utf-8"):
        if not l.startswith("#") and l.strip():
            corpus.append(l.rstrip("\n").split("\t")[4])
    rnd = random.Random(13)
    frags = ["google", "Google", " channel/", "google/", "/google", " pixel", "wv", "app", "cu", " cu", "bot",
             "bots", "Bot_", "cam", "scan", "lib", "http", "news", "g", "sapphire", "sapphir", "java", ";", "java;",
             "x", " ", "/", "1.0", "Mozilla/5.0", "(", ")", "-", ".", "é", "ß", "compatible;", "@a-b."]
    corpus += ["".join(rnd.choice(frags) for _ in range(rnd.randint(1, 7))) for _ in range(args.fuzz)]
    with tempfile.TemporaryDirectory() as d:
        pj, cj = os.path.join(d, "p.json"), os.path.join(d, "c.json")
        json.dump(js_pats, open(pj, "w"))
        json.dump(corpus, open(cj, "w"))
        js = json.loads(subprocess.run(["node", "-e", NODE, pj, cj], check=True, capture_output=True, text=True).stdout)
    try:
        import flpc
        engine = "Rust regex (flpc)"
        comp = [flpc.compile("(?i)" + p) for p in rust_pats]  # raises if Rust rejects a pattern
        hit = lambda c, s: flpc.search(c, s) is not None
    except ImportError:
        engine = "Python re (install flpc to use the Rust engine)"
        comp = [re.compile(p.replace("(?-u:\\b)", "\\b"), re.I | re.A) for p in rust_pats]
        hit = lambda c, s: c.search(s) is not None
    bad = 0
    for u, want in zip(corpus, js):
        got = [i for i, c in enumerate(comp) if hit(c, u)]
        if got != want:
            bad += 1
            if bad <= 10:
                print("MISMATCH %r js=%s rust=%s" % (u[:100], want, got))
    print("%s: %d patterns, %d strings, %d mismatches" % (engine, len(comp), len(corpus), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
