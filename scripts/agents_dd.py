#!/usr/bin/env python3
"""Derives from Matomo device-detector's client regexes (LGPL-3.0, data only:
the YAML is read here, nothing of it is compiled) the product names trackedge
uses to recognise a person's software (src/enrich/agent/person.rs):

  agents/vendor/device-detector/browsers.txt  browsers and mail clients (PIM):
      a string that starts with one of these products is a person's software
      (`w3m/0.52`, `Midori 0.1.10`, `eMClient/9.3`, `GoogleEarth/7.3 (...)`)
  agents/vendor/device-detector/apps.txt      those plus mobile apps: product
      tokens that are no evidence of a machine inside a browser string
      (`SogouMobileBrowser/5.6`, `SohuNews/6.7`, `MicroMessenger/7.0`)
  agents/vendor/device-detector/libraries.txt  HTTP libraries, SDKs and tools
      (regexes/client/libraries.yml): a product token with one of these names
      (`containerd/1.5`, `Dart/2.16`, `SlimerJS/0.7`) is a machine's
  agents/vendor/device-detector/bots.txt  the named bots of regexes/bots.yml
      but its crawlers and search bots (which isbot's words find): site
      monitors, security checkers, service and AI agents, validators..., one
      regex a line after a `# name (category)` comment: a string one matches
      is that product's, a machine's, even when it reads like a browser
      (`... Chrome/120 Safari/537.36 PTST/SpeedCurve`); entries with
      look-around (which Rust's regex has not) and the catch-all `Generic
      Bot` entry are left out

Each name is written normalised: lower-case ASCII letters and digits only
(`Google%20Earth%20Pro` and `Google Earth Pro` are both `googleearthpro`).
Names that uap-core's generic bot matchers flag, names that are nothing but
an isbot word (`Agent`, `News`), and headless browsers (a
machine by product definition, see scripts/agents_eval.py), are left out; a
word of a several-word name is kept only when the isbot word patterns do not
flag it (so `Blue Proxy` adds `blue` but not `proxy`).

  python3 scripts/agents_dd.py --device-detector DIR --commit SHA [--repo .]

DIR is a checkout of https://github.com/matomo-org/device-detector.
"""

import argparse
import os
import re
import shutil

import yaml

# Headless browsers: no screen and no person, they exist for automation, testing and scraping
# (https://developer.chrome.com/docs/chromium/headless, https://lightpanda.io/, Zyte's Splash
# "a javascript rendering service", https://splash.readthedocs.io/). device-detector lists them
# among browsers; here they are no person's software.
HEADLESS = {"Headless Chrome", "Headless Edge", "Lightpanda", "Splash"}
META = re.compile(r"\\[dswDSWb]|\[[^\]]*\]|\(\?[:!=<]+|[()|?*+^${}\\/.,;:]")


def norm(s):
    return re.sub(r"[^a-z0-9]", "", s.replace("%20", " ").lower())


def without_negative_lookaround(rx):
    """`rx` without its `(?!...)` and `(?<!...)` groups: what they name is what the entry is
    NOT (Firefox's `Gecko(?!/\d+ SlimerJS)`, the generic Electron app's `(?!...|Cypress|...)`)."""
    out, i = "", 0
    while i < len(rx):
        if rx.startswith("(?!", i) or rx.startswith("(?<!", i):
            depth = 0
            while i < len(rx):
                if rx[i] == "\\":
                    i += 2
                    continue
                depth += rx[i] == "("
                depth -= rx[i] == ")"
                i += 1
                if depth == 0:
                    break
            continue
        if rx[i] == "\\":
            out += rx[i:i + 2]
            i += 2
            continue
        out += rx[i]
        i += 1
    return out


def names_of(entry):
    """The product names an entry of a device-detector client list names."""
    out = set()
    name = entry.get("name")
    if name and "$" not in name:
        out.add(name)
    rx = without_negative_lookaround(entry.get("regex", "")).replace("%20", " ").replace(" ?", " ").replace(r"\.", "§")
    for run in META.split(rx):
        run = run.replace("§", ".").strip(" -_.")
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9 ._\-]{2,80}", run):
            out.add(run)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device-detector", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--repo", default=".")
    ap.add_argument("--data-dir", default="agents")
    a = ap.parse_args()
    vendor = os.path.join(a.repo, a.data_dir, "vendor")
    isbot = [l.rstrip("\n") for l in open(os.path.join(vendor, "isbot/patterns-rust.txt"), encoding="utf-8")
             if l.strip() and not l.startswith("#")]
    free = [p.replace("(?-u:\\b)", "\\b") for p in isbot if not p.startswith("^") and not p.endswith("$")]
    words = re.compile("|".join("(?:%s)" % p for p in free), re.I | re.A)
    bots = [re.compile(l.rstrip("\n")) for l in open(os.path.join(vendor, "uap-core/bot-matchers.txt"),
                                                     encoding="utf-8") if l.strip() and not l.startswith("#")]
    client = os.path.join(a.device_detector, "regexes/client")

    def collect(files):
        out = set()
        for fn in files:
            for entry in yaml.safe_load(open(os.path.join(client, fn), encoding="utf-8")) or []:
                if entry.get("name") in HEADLESS:
                    continue
                for n in names_of(entry):
                    if any(b.search(n + "/1.0") for b in bots) or "headless" in n.lower():
                        continue
                    if len(norm(n)) >= 3 and not words.fullmatch(n):
                        out.add(norm(n))
                    for w in n.split():
                        if len(norm(w)) >= 3 and not words.search(w):
                            out.add(norm(w))
        return out

    browsers = collect(["browsers.yml", "pim.yml"])
    apps = collect(["mobile_apps.yml"]) - browsers
    # Whole names only (a library's words say nothing alone), not a bare isbot word (the generic set
    # has it); people's names win.
    libraries = set()
    for entry in yaml.safe_load(open(os.path.join(client, "libraries.yml"), encoding="utf-8")) or []:
        for n in names_of(entry):
            if len(norm(n)) >= 3 and " " not in n.strip() and not words.fullmatch(n):
                libraries.add(norm(n))
    libraries -= browsers | apps
    named_bots = []
    for entry in yaml.safe_load(open(os.path.join(a.device_detector, "regexes/bots.yml"), encoding="utf-8")) or []:
        rx = str(entry.get("regex", "")).replace("\\/", "/")
        if not rx or entry.get("name") == "Generic Bot" or re.search(r"\(\?<?[=!]", rx):
            continue
        # Crawlers and search bots name themselves with the words isbot's list matches; what passes
        # for a browser is the rest: site monitors, security checkers, service and AI agents.
        if entry.get("category") in ("Crawler", "Search bot"):
            continue
        re.compile(rx)  # a pattern Python cannot read is no pattern for Rust either
        named_bots.append((entry.get("name", ""), entry.get("category", ""), rx))
    out = os.path.join(vendor, "device-detector")
    os.makedirs(out, exist_ok=True)
    head = (f"# Generated by scripts/agents_dd.py from matomo-org/device-detector {a.commit} regexes/client "
            "(LGPL-3.0, LICENSE beside this file; vendored as data); do not edit.\n")
    for fn, names in [("browsers.txt", browsers), ("apps.txt", apps), ("libraries.txt", libraries)]:
        with open(os.path.join(out, fn), "w", encoding="utf-8") as f:
            f.write(head)
            f.writelines(n + "\n" for n in sorted(names))
    with open(os.path.join(out, "bots.txt"), "w", encoding="utf-8") as f:
        f.write(head.replace("regexes/client", "regexes/bots.yml"))
        f.write("# Matched case-insensitively after device-detector's own prefix (src/enrich/agent/person.rs).\n")
        for name, category, rx in named_bots:
            f.write(f"# {name} ({category})\n{rx}\n")
    with open(os.path.join(out, "VERSION"), "w", encoding="utf-8") as f:
        f.write(f"matomo-org/device-detector {a.commit} (regexes/client/browsers.yml, pim.yml, mobile_apps.yml, "
                "libraries.yml; regexes/bots.yml)\n")
    shutil.copyfile(os.path.join(a.device_detector, "LICENSE"), os.path.join(out, "LICENSE"))
    print(f"agents_dd: {len(browsers)} browser and mail-client names, {len(apps)} app names, "
          f"{len(libraries)} library names, {len(named_bots)} named bot patterns")


if __name__ == "__main__":
    main()
