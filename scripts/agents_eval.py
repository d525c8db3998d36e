#!/usr/bin/env python3
"""Builds tests/fixtures/agents-eval/agents-eval.tsv: a labelled evaluation set
of User-Agents from third-party parsers' own test data, for the agent
precision test (tests/enrich.rs, `the_evaluation_set_meets_the_precision_targets`).

Sources (each pinned by commit in SOURCES below; licences beside the TSV):

  matomo-org/device-detector (LGPL-3.0; test data only, never compiled in):
    Tests/Parser/Client/fixtures/{browser,mobile_app,pim}.yml   -> human
    Tests/Parser/Client/fixtures/library.yml, Tests/fixtures/bots.yml -> bot
    Tests/fixtures/<device type>*.yml: client type browser / mobile app /
      pim -> human, library -> bot (one row in SAMPLE_EVERY, chosen by a
      hash of the string so a refresh keeps the same rows)
  omrilotan/isbot (Unlicense): fixtures/browsers.yml -> human,
    fixtures/crawlers.yml -> bot
  ua-parser/uap-core (Apache-2.0): test_resources/firefox_user_agent_strings
    and opera_mini_user_agent_strings -> human

Strings already in tests/fixtures/agents.tsv are left out (this set is
held out from what the rules were written against), as are strings that two
sources label differently. Feed readers and media players are left out:
whether they fetch for a person is not a question the sources answer.

Label policy where device-detector's client types are broader than "a person
reading mail or the web" (applied by rule here, never by editing rows):

  - A "mobile app" row is kept (human) only when the string is that of web
    content shown to a person, an in-app browser or web view: it carries a
    browser product or engine token (WEB_CONTENT below). An app's own HTTP
    requests (API calls, podcast and feed downloads, updaters, sync agents:
    `Podkicker/1.9.4`, `Google Update/1.3`, `Dalvik/2.1.0 (...)`) never load
    an email's image or follow its link for a person; like feed readers they
    are left out.
  - Headless browsers (HEADLESS below) are machines by product definition:
    no screen and no person, they exist for automation and testing
    (https://developer.chrome.com/docs/chromium/headless,
    https://lightpanda.io/). device-detector calls them browsers; here they
    are labelled bot.

  python3 scripts/agents_eval.py --device-detector DIR --isbot DIR --uap-core DIR [--repo .]

Each DIR is a git checkout (or a plain tree) of the repository at the pinned
commit; refresh-agents.sh runs this when EVAL_SOURCES_DIR names a folder holding them.
"""

import argparse
import hashlib
import os
import re
import shutil
import sys

import yaml

SOURCES = {
    "device-detector": ("https://github.com/matomo-org/device-detector",
                        "3856a28692d45317d3f15f6f81ca31a06067182a", "LGPL-3.0"),
    "isbot": ("https://github.com/omrilotan/isbot",
              "344052da664bde49579e21f1e62349280791efb3", "Unlicense"),
    "uap-core": ("https://github.com/ua-parser/uap-core",
                 "e3c5e634bee0b14f1a129c991483910739ad9f6c", "Apache-2.0"),
}
SAMPLE_EVERY = int(os.environ.get("AGENTS_EVAL_SAMPLE_EVERY", "10"))
HUMAN_CLIENTS = {"browser", "mobile app", "pim"}
# device-detector client names of headless browsers (regexes/client/browsers.yml).
HEADLESS = {"Headless Chrome", "Headless Edge", "Lightpanda"}
# Tokens of a string that shows web content (a browser or web view).
WEB_CONTENT = ("mozilla/", "applewebkit/", "gecko/", "presto/", "trident/", "opera/")


def dd_label(client, ua):
    """The label of a device-detector row by its client, or None to leave it out."""
    kind, name = client.get("type"), client.get("name")
    if name in HEADLESS:
        # Only when the string itself says so; else device-detector knew it from other headers.
        return "bot" if re.search("headless|lightpanda", ua, re.I) else None
    if kind == "mobile app" and not any(t in ua.lower() for t in WEB_CONTENT):
        return None
    if kind in HUMAN_CLIENTS:
        return "human"
    if kind in MACHINE_CLIENTS:
        return "bot"
    return None
MACHINE_CLIENTS = {"library"}


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def sampled(ua):
    return int(hashlib.sha256(ua.encode()).hexdigest()[:8], 16) % SAMPLE_EVERY == 0


def device_detector(root):
    client_dir = os.path.join(root, "Tests/Parser/Client/fixtures")
    for name, label in [("browser", "human"), ("mobile_app", "human"), ("pim", "human"),
                        ("library", "bot")]:
        for row in load_yaml(os.path.join(client_dir, name + ".yml")) or []:
            label = dd_label(row.get("client") or {}, str(row["user_agent"]))
            if label:
                yield f"device-detector:client/{name}", label, row["user_agent"]
    fixtures = os.path.join(root, "Tests/fixtures")
    for row in load_yaml(os.path.join(fixtures, "bots.yml")) or []:
        yield "device-detector:bots", "bot", row["user_agent"]
    for fn in sorted(os.listdir(fixtures)):
        if not fn.endswith(".yml") or fn == "bots.yml" or fn.startswith("clienthints"):
            continue
        for row in load_yaml(os.path.join(fixtures, fn)) or []:
            client = row.get("client") or {}
            ua = row.get("user_agent")
            if not ua or not sampled(ua) or not isinstance(client, dict):
                continue
            label = dd_label(client, str(ua))
            if label:
                yield f"device-detector:{fn[:-4].rstrip('-0123456789')}", label, ua


def isbot(root):
    for fn, label in [("browsers.yml", "human"), ("crawlers.yml", "bot")]:
        for _name, uas in (load_yaml(os.path.join(root, "fixtures", fn)) or {}).items():
            for ua in uas or []:
                yield f"isbot:{fn[:-4]}", label, str(ua)


def uap_core(root):
    for fn in ["firefox_user_agent_strings.yaml", "opera_mini_user_agent_strings.yaml"]:
        for row in load_yaml(os.path.join(root, "test_resources", fn))["test_cases"]:
            yield f"uap-core:{fn.split('_user')[0]}", "human", row["user_agent_string"]


# Leading names that are a platform or an HTTP stack, not a product.
PLATFORMS = {"dalvik", "mozilla", "linux"}


def product(ua):
    """The product a non-browser string names first (`eMClient/9.3` -> `emclient`), or None."""
    if "mozilla/" in ua.lower():
        return None
    head = re.sub(r"[^a-z0-9]", "", re.split(r"[/(;,\[ ]", ua, maxsplit=1)[0].lower())
    return None if head in PLATFORMS else head or None


def clean(ua):
    ua = str(ua).strip()
    return None if not ua or "\t" in ua or "\n" in ua or "\r" in ua else ua


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device-detector", required=True)
    ap.add_argument("--isbot", required=True)
    ap.add_argument("--uap-core", required=True)
    ap.add_argument("--repo", default=".")
    a = ap.parse_args()
    known = set()
    with open(os.path.join(a.repo, "tests/fixtures/agents.tsv"), encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if not line.startswith("#") and len(cols) > 4:
                known.add(cols[4])
    rows, labels = {}, {}
    for src in [device_detector(a.device_detector), isbot(a.isbot), uap_core(a.uap_core)]:
        for source, label, ua in src:
            ua = clean(ua)
            if ua is None or ua in known:
                continue
            labels.setdefault(ua, set()).add(label)
            rows.setdefault(ua, (source, label))
    out_dir = os.environ.get("AGENTS_EVAL_OUT") or os.path.join(a.repo, "tests/fixtures/agents-eval")
    os.makedirs(out_dir, exist_ok=True)
    kept = [(s, l, ua) for ua, (s, l) in rows.items() if len(labels[ua]) == 1]
    # A product that names itself first (no browser string) and that two sources label differently
    # (isbot calls `emclient/10.3` a crawler, device-detector calls `eMClient/9.3` a mail client)
    # is as undecided as a string they disagree on: left out.
    by_product = {}
    for _s, l, ua in kept:
        if product(ua):
            by_product.setdefault(product(ua), set()).add(l)
    n_before = len(kept)
    kept = [r for r in kept if len(by_product.get(product(r[2]), ())) < 2]
    both = sorted(p for p, ls in by_product.items() if len(ls) > 1)
    print(f"agents_eval: {n_before - len(kept)} rows of products labelled both ways left out: {both}",
          file=sys.stderr)
    kept.sort(key=lambda r: (r[0], r[2]))
    with open(os.path.join(out_dir, "agents-eval.tsv"), "w", encoding="utf-8") as f:
        f.write("# Held-out evaluation set for the agent rules; generated by scripts/agents_eval.py,\n")
        f.write("# do not edit. Columns: source<TAB>label (human | bot)<TAB>user_agent.\n")
        for name, (url, commit, lic) in SOURCES.items():
            f.write(f"# {name}: {url} at {commit} ({lic}, LICENSE-{name})\n")
        for s, l, ua in kept:
            f.write(f"{s}\t{l}\t{ua}\n")
    for name, root in [("device-detector", a.device_detector), ("isbot", a.isbot),
                       ("uap-core", a.uap_core)]:
        shutil.copyfile(os.path.join(root, "LICENSE"), os.path.join(out_dir, f"LICENSE-{name}"))
    n = {l: sum(1 for r in kept if r[1] == l) for l in ("human", "bot")}
    print(f"agents_eval: {len(kept)} rows ({n['human']} human, {n['bot']} bot), "
          f"{len(rows) - len(kept)} conflicting left out", file=sys.stderr)


if __name__ == "__main__":
    main()
