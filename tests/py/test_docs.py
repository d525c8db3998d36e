"""The documentation agrees with the code, and the repository stands alone.

docs/contract.md is what senders, pipelines and operators build against, so
its test vectors must verify, and the metric names and configuration keys
it promises must be ones trackedge has. A clone of the repository must need
nothing beside it: no file may reach outside (the sibling shared folder and the like),
and every relative link in the Markdown must resolve inside it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"


def repo_files() -> list[Path]:
    """Tracked files plus new ones not yet committed (not the ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()
    # Virtual environments that .ci/run makes inside the clone are not ours.
    keep = (p for p in out.split("\0") if p and not p.split("/")[0].startswith(".venv"))
    return [ROOT / p for p in keep if (ROOT / p).is_file()]


def text_of(path: Path) -> str | None:
    try:
        return path.read_text()
    except (UnicodeDecodeError, OSError):
        return None


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_contract_test_vectors_verify():
    text = CONTRACT.read_text()
    secret = re.search(r"Secret `([^`]+)`, key id `([^`]+)`", text)
    assert secret, "the contract names the test secret and key id"
    pairs = re.findall(r"^(\{.*\})\n([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$", text, re.M)
    assert len(pairs) >= 2
    for claims, token in pairs:
        payload, tag = token.split(".")
        assert base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode() == claims
        mac = hmac.new(secret.group(1).encode(), b"trackedge:v1:" + payload.encode(), hashlib.sha256)
        assert b64u(mac.digest()[:16]) == tag, claims
        assert f'"k":"{secret.group(2)}"' in claims


# Promised by the contract this round and not in the code yet (the lead's
# Rust work). Each entry must still be missing: once the code has it, the
# test below fails until the entry is taken off this list, so the list can
# only shrink, and nothing promised is forgotten.
PENDING_METRICS: set[str] = set()
PENDING_KEYS: set[tuple[str, str]] = set()


def exported_metrics() -> set[str]:
    return set(re.findall(r'"(trackedge_[a-z0-9_]+)"', (ROOT / "src" / "metrics.rs").read_text()))


def test_contract_metrics_exist():
    known = exported_metrics()
    text = CONTRACT.read_text()
    section = text.split("## 5. Metrics")[1].split("\n## ")[0]
    named = set(re.findall(r"`(trackedge_[a-z0-9_]+)`", section))
    https = text.split("## 9. HTTPS")[1].split("\n## ")[0]
    named |= set(re.findall(r"`(trackedge_[a-z0-9_]+)(?:\{[a-z_]+\})?`", https))
    assert named, "no metric in the contract's metrics section"
    missing = named - known - PENDING_METRICS
    assert not missing, f"promised but not exported: {sorted(missing)}"


def test_pending_items_are_still_pending():
    defaults = tomllib.loads((ROOT / "config" / "trackedge.toml").read_text())
    done = sorted(PENDING_METRICS & exported_metrics())
    done += [f"{s}.{k}" for s, k in PENDING_KEYS if k in defaults.get(s, {})]
    assert not done, f"now in the code, take them off the PENDING lists in this file: {done}"


def test_contract_config_keys_exist():
    defaults = tomllib.loads((ROOT / "config" / "trackedge.toml").read_text())
    section = CONTRACT.read_text().split("### Keys")[1].split("\n### ")[0]
    # The first column of the table: one or more `section.key`.
    firsts = [row.split("|")[1] for row in section.splitlines() if row.startswith("| `")]
    keys = {k for cell in firsts for k in re.findall(r"`([a-z]+)\.([a-z_]+)`", cell)}
    assert len(keys) >= 15
    for sec, key in keys - PENDING_KEYS:
        assert key in defaults.get(sec, {}), f"{sec}.{key} is in the contract, not in config/trackedge.toml"


def test_contract_defaults_match_the_built_in_config():
    defaults = tomllib.loads((ROOT / "config" / "trackedge.toml").read_text())

    def shown(v) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, list):
            return "[" + ", ".join(map(shown, v)) + "]"
        return str(v)

    section = CONTRACT.read_text().split("### Keys")[1].split("\n### ")[0]
    checked = 0
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        cells = row.split("|")
        keys = re.findall(r"`([a-z]+)\.([a-z_]+)`", cells[1])
        if cells[2].strip().startswith("empty"):
            values = [""] * len(keys)
        else:
            values = re.findall(r"`([^`]*)`", cells[2])
        if len(values) != len(keys):
            continue  # a default said in words (1 GiB)
        for (sec, key), want in zip(keys, values):
            if (sec, key) in PENDING_KEYS:
                continue
            got = defaults[sec][key]
            if sec == "signing":
                assert got == [] and want == ""
            else:
                assert shown(got) == want, f"{sec}.{key}: contract says {want!r}, config has {got!r}"
            checked += 1
    assert checked >= 15


def test_nothing_reaches_outside_the_repository():
    offenders = []
    pattern = re.compile(r"\.\./shared\b|(?<![\w.-])shared/(fixtures|SPEC|perf|hooks)\b|\bSPEC\.md\b")
    for path in repo_files():
        if path == Path(__file__).resolve():
            continue
        text = text_of(path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_markdown_links_resolve_inside_the_repository():
    broken = []
    for md in (p for p in repo_files() if p.suffix == ".md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            dest = (md.parent / target.split("#")[0]).resolve()
            if ROOT not in dest.parents and dest != ROOT or not dest.exists():
                broken.append(f"{md.relative_to(ROOT)}: {target}")
    assert not broken, "\n".join(broken)


# --- the README and the pages it maps ----------------------------------------

README = ROOT / "README.md"
DOCS = ROOT / "docs"


def readme_links() -> set[Path]:
    links = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", README.read_text())
    return {(ROOT / t).resolve() for t in links if not re.match(r"[a-z]+:", t)}


def test_readme_maps_every_doc_page():
    linked = readme_links()
    pages = sorted(DOCS.glob("*.md")) + [ROOT / "examples" / "senders" / "README.md", ROOT / "CHANGELOG.md"]
    missing = [str(p.relative_to(ROOT)) for p in pages if p.resolve() not in linked]
    assert not missing, f"not linked from the README: {missing}"
    for page in ("operating", "kafka", "kubernetes", "key-rotation", "agents", "clickhouse", "code-layout"):
        assert (DOCS / f"{page}.md").exists(), page


def test_readme_fits_on_a_page():
    n = len(README.read_text().splitlines())
    assert 100 <= n <= 200, f"README.md has {n} lines; keep it to what it is, install, the two commands, Quick start and the map"


def test_quick_start_reaches_a_click_in_the_first_screen():
    first = "\n".join(README.read_text().splitlines()[:30])
    assert "-- serve" in first and "sign click" in first and 'curl -i "$URL"' in first
    # And says why curl's events read bot, showing a browser's User-Agent.
    text = README.read_text()
    assert "`bot`" in text and re.search(r"curl -i -A '[^']*Mozilla/5\.0[^']*' \"\$URL\"", text)


def cli_subcommands() -> set[str]:
    src = (ROOT / "src" / "cli.rs").read_text()
    body = src.split("pub enum Command {")[1].split("\n}\n")[0]
    names = re.findall(r"^    ([A-Z][A-Za-z]+)\b", body, re.M)
    return {re.sub(r"(?<!^)([A-Z])", r"-\1", n).lower() for n in names}


def test_readme_commands_are_real():
    subs = cli_subcommands()
    assert {"serve", "sign", "verify", "gen-key"} <= subs, subs
    text = README.read_text()
    code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.S))
    code = re.sub(r"(?m)\s#\s.*$", "", code)  # shell comments are prose
    used = set(re.findall(r"(?:(?<![\w/.-])trackedge|cargo run(?: -q)? --release --) ([a-z][a-z-]*)", code))
    assert {"serve", "sign"} <= used and used <= subs, f"not subcommands: {sorted(used - subs)}"
    assert "cargo install --path ." in text
    assert re.search(r"\.ci/run[\s\S]{0,800}\d+.{0,3}\d* minutes", text), "say how long a first .ci/run takes"


def test_no_secret_in_the_tracked_config():
    """The README and docs never tell anyone to write a secret into
    config/trackedge.toml, which is tracked (and compiled in)."""
    for md in [README, *DOCS.glob("*.md")]:
        for block in re.findall(r"```[a-z]*\n(.*?)```", md.read_text(), re.S):
            if "config/trackedge.toml" in block:
                assert not re.search(r'\bsecret\s*=\s*"', block), f"{md.name}: {block}"
    assert not re.search(r'\bsecret\s*=\s*"', README.read_text())


def test_beacon_snippet_appears_once():
    pages = [README, *DOCS.glob("*.md")]
    snippets = sum(p.read_text().count("navigator.sendBeacon(") for p in pages)
    assert snippets == 1, f"the web beacon snippet appears {snippets} times"
