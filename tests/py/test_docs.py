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


def test_contract_metrics_exist():
    known = set(re.findall(r'"(trackedge_[a-z0-9_]+)"', (ROOT / "src" / "metrics.rs").read_text()))
    section = CONTRACT.read_text().split("## 5. Metrics")[1].split("\n## ")[0]
    named = set(re.findall(r"`(trackedge_[a-z0-9_]+)`", section))
    assert named, "no metric in the contract's metrics section"
    assert named <= known, f"promised but not exported: {sorted(named - known)}"


def test_contract_config_keys_exist():
    defaults = tomllib.loads((ROOT / "config" / "trackedge.toml").read_text())
    section = CONTRACT.read_text().split("### Keys")[1].split("\n### ")[0]
    # The first column of the table: one or more `section.key`.
    firsts = [row.split("|")[1] for row in section.splitlines() if row.startswith("| `")]
    keys = {k for cell in firsts for k in re.findall(r"`([a-z]+)\.([a-z_]+)`", cell)}
    assert len(keys) >= 15
    for sec, key in keys:
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
