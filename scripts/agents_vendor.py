#!/usr/bin/env python3
"""Vendors the public agent lists into agents/vendor/ and regenerates the
crawler rows of tests/fixtures/agents.tsv.

Run by scripts/refresh-agents.sh, which downloads the packages with `npm pack`
and exports isbot's pattern list with node. Standard library only.

  agents_vendor.py --isbot-dir DIR --isbot-list JSON --cua-dir DIR --repo ROOT

What it writes:
  agents/vendor/isbot/patterns.json         isbot's list, verbatim (JavaScript regex syntax)
  agents/vendor/isbot/patterns-rust.txt     the same patterns in Rust `regex` syntax, one a line
  agents/vendor/isbot/{LICENSE,VERSION}
  agents/vendor/crawler-user-agents/patterns.txt    Monperrus' patterns, one a line
  agents/vendor/crawler-user-agents/{LICENSE,VERSION}
  tests/fixtures/agents.tsv               the block between the BEGIN/END crawler markers

Rust's regex crate has no look-around and reads `[\\w-.]` as a bad range, so
the few isbot patterns that use them are rewritten into exactly equivalent
look-around-free patterns (a negative look-behind or look-ahead of literal
alternatives is a finite automaton; see neg_behind / neg_ahead). The classes
`\\w`, `\\d` and `\\b` are spelled out in ASCII, as JavaScript reads them
without the `u` flag; that also keeps Rust's lazy DFA on its fast path.
Patterns are meant to be compiled case-insensitively, as isbot does (`/i`).
"""

import argparse
import datetime
import json
import os
import re
import sys

# ---------------------------------------------------------------- rewriting

# Only real meta characters are escaped: regex-syntax before 0.7 (regex < 1.8)
# rejects superfluous escapes such as `\/`.
META = set("\\.+*?()|[]{}^$#&-~")
CLASS_META = set("\\[]^-&~")


def esc(c):
    """A literal character outside a class."""
    return "\\" + c if c in META else c


def esc_in_class(c):
    return "\\" + c if c in CLASS_META else c


class Trie:
    def __init__(self):
        self.kids = {}
        self.end = False

    def add(self, s):
        n = self
        for c in s:
            n = n.kids.setdefault(c, Trie())
        n.end = True


def neg_ahead(alts):
    """Regex matching at a position iff none of `alts` starts there."""
    t = Trie()
    for a in alts:
        t.add(a.lower())

    def gen(n):
        parts = ["$"]
        if n.kids:
            parts.append("[^" + "".join(esc_in_class(c) for c in sorted(n.kids)) + "]")
        else:
            parts.append(".")
        for c in sorted(n.kids):
            k = n.kids[c]
            if k.end:
                continue
            parts.append(esc(c) + gen(k))
        return "(?:" + "|".join(parts) + ")"

    assert not t.end
    return gen(t)


def neg_behind(alts):
    """Regex matching the text before a position iff it ends with none of `alts`."""
    t = Trie()
    for a in alts:
        t.add(a.lower()[::-1])

    def gen(n):
        parts = ["^"]
        if n.kids:
            parts.append("[^" + "".join(esc_in_class(c) for c in sorted(n.kids)) + "]")
        else:
            parts.append(".")
        for c in sorted(n.kids):
            k = n.kids[c]
            if k.end:
                continue
            parts.append(gen(k) + esc(c))
        return "(?:" + "|".join(parts) + ")"

    assert not t.end
    return gen(t)


def literal_alts(body):
    """'a|b' or '(?:a|b)' of plain literals (escapes allowed) -> ['a', 'b']."""
    if body.startswith("(?:") and body.endswith(")"):
        body = body[3:-1]
    out, cur, i = [], "", 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            cur += body[i + 1]
            i += 2
            continue
        if c == "|":
            out.append(cur)
            cur = ""
        elif c in "()[]{}*+?.^$":
            raise ValueError("not a literal alternation: " + body)
        else:
            cur += c
        i += 1
    out.append(cur)
    return out


def group_end(p, i):
    """Index just past the group that opens at p[i] == '('."""
    depth, j, in_class = 0, i, False
    while j < len(p):
        c = p[j]
        if c == "\\":
            j += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise ValueError("unbalanced: " + p)


def ascii_classes(p):
    """\\w \\d \\b as JavaScript (no `u` flag) reads them; `[\\w-.]` made legal."""
    out, i, in_class, prev_was_class_escape = [], 0, False, False
    while i < len(p):
        c = p[i]
        if c == "\\":
            e = p[i + 1]
            if e == "w":
                out.append("0-9A-Za-z_" if in_class else "[0-9A-Za-z_]")
                prev_was_class_escape = in_class
            elif e == "d":
                out.append("0-9" if in_class else "[0-9]")
                prev_was_class_escape = in_class
            elif e == "b" and not in_class:
                out.append("(?-u:\\b)")
                prev_was_class_escape = False
            elif e == "s":
                # JavaScript's \s (Unicode spaces, no \x85) is close enough to
                # Rust's Unicode \s for User-Agents; keep it.
                out.append("\\s")
                prev_was_class_escape = in_class
            else:
                out.append("\\" + e)
                prev_was_class_escape = False
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "-" and prev_was_class_escape and i + 1 < len(p) and p[i + 1] != "]":
                # JavaScript (legacy mode) reads `[\w-.]` as \w, '-', '.'.
                out.append("\\-")
                prev_was_class_escape = False
                i += 1
                continue
            out.append(c)
            prev_was_class_escape = False
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < len(p) and p[i] == "^":
                out.append("^")
                i += 1
            prev_was_class_escape = False
            continue
        out.append(c)
        i += 1
    return "".join(out)


def rustify(p):
    """(rust_pattern, note) for one isbot pattern (JavaScript syntax, /i)."""
    notes = []
    q = p
    # Negative look-behind at the very start.
    if q.startswith("(?<!"):
        end = group_end(q, 0)
        alts = literal_alts(q[4:end - 1])
        q = "\x00B" + json.dumps(alts) + "\x00" + q[end:]
        notes.append("look-behind (?<!%s) rewritten" % "|".join(alts))
    # Negative look-ahead at the very end.
    k = q.find("(?!")
    if k >= 0:
        end = group_end(q, k)
        if end != len(q):
            raise ValueError("look-ahead not at the end: " + p)
        alts = literal_alts(q[k + 3:end - 1])
        q = q[:k] + "\x00A" + json.dumps(alts) + "\x00"
        notes.append("look-ahead (?!%s) rewritten" % "|".join(alts))
    if "(?<" in q or "(?=" in q or "(?!" in q or re.search(r"\\[1-9]", q):
        raise ValueError("unsupported look-around or back-reference: " + p)
    # Convert the plain parts, then splice in the generated look-around.
    pieces = re.split("\x00", q)
    out = []
    for piece in pieces:
        if piece.startswith("B["):
            out.append(neg_behind(json.loads(piece[1:])))
        elif piece.startswith("A["):
            out.append(neg_ahead(json.loads(piece[1:])))
        else:
            out.append(ascii_classes(piece))
    r = "".join(out)
    if re.search(r"\[\\w\\d-\.\]", p):
        notes.append("class `-` after a class escape made literal")
    return r, "; ".join(notes)


# ---------------------------------------------------------------- vendoring


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def vendor_isbot(args, today):
    pkg = json.load(open(os.path.join(args.isbot_dir, "package.json")))
    exported = json.load(open(args.isbot_list))
    pats = exported["list"]
    out = os.path.join(args.repo, args.data_dir, "vendor/isbot")
    write(os.path.join(out, "patterns.json"), json.dumps(pats, indent=1) + "\n")
    lic = open(os.path.join(args.isbot_dir, "LICENSE"), encoding="utf-8").read()
    write(os.path.join(out, "LICENSE"), lic)
    lines = [
        "# isbot %s patterns in Rust `regex` syntax, one a line; generated by" % pkg["version"],
        "# scripts/refresh-agents.sh from patterns.json. Compile each case-insensitively",
        "# (RegexSetBuilder::case_insensitive(true)); lines starting with '#' are comments.",
        "# Rewritten for Rust (look-around / class range), exactly equivalent:",
    ]
    body = []
    for p in pats:
        r, note = rustify(p)
        if note:
            lines.append("#   %s  <-  %s   (%s)" % (r, p, note))
        body.append(r)
    write(os.path.join(out, "patterns-rust.txt"), "\n".join(lines + body) + "\n")
    write(
        os.path.join(out, "VERSION"),
        "name: isbot\nversion: %s\nlicense: %s (LICENSE beside this file)\n"
        "homepage: %s\nrepository: https://github.com/omrilotan/isbot\n"
        "tarball: %s\nintegrity: %s\nfetched: %s with `npm pack isbot@%s`\n"
        "files: patterns.json = require('isbot').list verbatim; patterns-rust.txt = generated\n"
        % (
            pkg["version"],
            pkg.get("license"),
            pkg.get("homepage"),
            exported.get("tarball", ""),
            exported.get("integrity", ""),
            today,
            pkg["version"],
        ),
    )
    return pats


def vendor_cua(args, today):
    pkg = json.load(open(os.path.join(args.cua_dir, "package.json")))
    data = json.load(open(os.path.join(args.cua_dir, "crawler-user-agents.json"), encoding="utf-8"))
    out = os.path.join(args.repo, args.data_dir, "vendor/crawler-user-agents")
    write(os.path.join(out, "LICENSE"), open(os.path.join(args.cua_dir, "LICENSE"), encoding="utf-8").read())
    write(
        os.path.join(out, "patterns.txt"),
        "# crawler-user-agents %s patterns (Go/RE2 syntax, also valid Rust `regex`), one a line;\n"
        "# generated by scripts/refresh-agents.sh. Its `instances` are rows of tests/fixtures/agents.tsv.\n"
        % pkg["version"]
        + "\n".join(e["pattern"] for e in data)
        + "\n",
    )
    write(
        os.path.join(out, "VERSION"),
        "name: crawler-user-agents\nversion: %s\nlicense: %s (LICENSE beside this file)\n"
        "repository: https://github.com/monperrus/crawler-user-agents\n"
        "fetched: %s with `npm pack crawler-user-agents@%s`\n"
        "files: patterns.txt = the `pattern` of every entry; the `instances` are in tests/fixtures/agents.tsv\n"
        % (pkg["version"], pkg.get("license"), today, pkg["version"]),
    )
    return pkg["version"], data


BEGIN = "# BEGIN crawler-user-agents"
END = "# END crawler-user-agents"

# Entries of the crawler list that are not machines acting on their own for
# our purposes (a person's in-app browser), left out of the fixture; see
# /tmp/agents-notes.md. Exact instance strings.
NOT_BOTS = {
    # Meta's in-app browser (IAB) on Android: a person reading in Facebook.
    "Mozilla/5.0 (Linux; Android 16; Pixel 10 Pro XL Build/CP1A.260305.018; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/146.0.7680.174 Mobile Safari/537.36 MetaIAB Facebook",
    # A real Instagram in-app browser UA that the 80legs scraper copies (entry `AP3A\.240617\.008`):
    # the same string comes from people on that Android build.
    "Mozilla/5.0 (Linux; Android 15; CPH2557 Build/AP3A.240617.008; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/142.0.7444.142 Mobile Safari/537.36 Instagram 406.0.0.58.159 Android (35/15; 480dpi; "
    "1080x2400; OPPO; CPH2557; OP573DL1; mt6833; en_MY; 822918295; IABMV/1) NV/1",
    # Fluid, a site-specific browser for the Mac: a person's browser.
    "Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_5_6; en-us) AppleWebKit/528.16 (KHTML, like Gecko) "
    "Fluid/0.9.6 Safari/528.16",
}


def proxy_ua_patterns(data_dir):
    """UA regexes of the proxy rules of agents/agents.toml: such crawler rows go on the
    click route, where the fixture's `bot` label holds (on an open they are proxies)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        return []
    path = os.path.join(data_dir, "agents.toml")
    if not os.path.exists(path):
        return []
    rules = tomllib.load(open(path, "rb")).get("rule", [])
    return [re.compile(p, re.I) for r in rules if r.get("kind") == "proxy" for p in r.get("ua", [])]


def fixture_block(version, data, proxy_uas=()):
    rows = [
        BEGIN + " %s (MIT, Martin Monperrus; agents/vendor/crawler-user-agents/LICENSE)." % version,
        "# Every `instances` entry, labelled bot; generated by scripts/refresh-agents.sh, do not edit.",
        "# Alternating routes (image-proxy UAs always on click); clicks carry 3600 s since send so timing",
        "# never decides; TEST-NET-3 sources. Left out as people's browsers: see NOT_BOTS in scripts/agents_vendor.py.",
    ]
    seen, i = set(), 0
    for e in data:
        for ua in e.get("instances", []):
            ua = ua.replace("\t", " ").strip()
            if not ua or ua in seen or ua in NOT_BOTS:
                continue
            seen.add(ua)
            route = "open" if i % 2 == 0 else "click"
            if any(p.search(ua) for p in proxy_uas):
                route = "click"
            secs = "-" if route == "open" else "3600"
            ip = "203.0.113.%d" % (1 + i % 254)
            rows.append("\t".join([route, "GET", ip, secs, ua, "bot", "-"]))
            i += 1
    rows.append(END)
    return rows


def update_fixture(args, version, data):
    path = os.path.join(args.repo, "tests/fixtures/agents.tsv")
    lines = open(path, encoding="utf-8").read().split("\n") if os.path.exists(path) else []
    if lines and lines[-1] == "":
        lines.pop()
    block = fixture_block(version, data, proxy_ua_patterns(os.path.join(args.repo, args.data_dir)))
    try:
        b = next(i for i, l in enumerate(lines) if l.startswith(BEGIN))
        e = next(i for i, l in enumerate(lines) if l.startswith(END))
        lines[b : e + 1] = block
    except StopIteration:
        lines += block
    write(path, "\n".join(lines) + "\n")
    return len(block) - 5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--isbot-dir", required=True)
    ap.add_argument("--isbot-list", required=True)
    ap.add_argument("--cua-dir", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--no-fixture", action="store_true")
    ap.add_argument("--data-dir", default="data", help="where agents.toml and vendor/ live, relative to --repo")
    args = ap.parse_args()
    today = datetime.date.today().isoformat()
    pats = vendor_isbot(args, today)
    version, data = vendor_cua(args, today)
    n = 0 if args.no_fixture else update_fixture(args, version, data)
    print("isbot: %d patterns; crawler-user-agents %s: %d entries, %d fixture rows" % (len(pats), version, len(data), n))


if __name__ == "__main__":
    sys.exit(main())
