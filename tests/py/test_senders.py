"""examples/senders: each snippet reproduces the contract §2 test vectors byte
for byte, mints exactly what `trackedge sign` mints, refuses what trackedge
refuses with the same reasons (examples/senders/vectors.json, also put to
the real CLI), sets the send time by default, says clearly when its secret
is missing, and its URLs work on the running server.

Python and Node always run. Go and PHP run when installed; on a developer's
machine without them those cases skip, saying so, while under CI (CI=true,
where .ci/run installs golang-go and php-cli) a missing one fails.
"""

import base64
import json
import os
import re
import subprocess
import time

import pytest

from conftest import (BIN, CHROME, IP_US, KEY_ID, REPO, SECRET, SENDERS, SNIPPETS, mint_with_snippet,
                      run_snippet, snippet_available, token_of)

IN_CI = os.environ.get("CI") == "true"

# contract §2, secret test-secret-0123456789abcdef-0123456789, key id "test".
# The click vector has no send time, so it asks for none with "s": null.
VECTORS = [
    ("click",
     {"c": "spring-sale", "r": "r-42", "l": "hero", "u": "https://shop.example.com/sale?x=1&y=2", "s": None},
     "eyJrIjoidGVzdCIsInQiOiJjIiwiYyI6InNwcmluZy1zYWxlIiwiciI6InItNDIiLCJsIjoiaGVybyIsInUiOiJodHRwczovL3Nob3AuZXhhbXBsZS5jb20vc2FsZT94PTEmeT0yIn0"
     ".9VUVtxmP8HCjlWenTk5Fog"),
    ("open",
     {"c": "spring-sale", "r": "r-42", "s": 1763942400},
     "eyJrIjoidGVzdCIsInQiOiJvIiwiYyI6InNwcmluZy1zYWxlIiwiciI6InItNDIiLCJzIjoxNzYzOTQyNDAwfQ"
     ".vPDti2DIhNxy1NjFkxB1DA"),
]

ALWAYS = {"python", "node"}
SHARED = json.loads((SENDERS / "vectors.json").read_text())
DEV_SECRET = re.search(r'DEV_KEY_SECRET: &str = "([^"]+)"', (REPO / "src" / "config" / "mod.rs").read_text()).group(1)
DEV_ID = re.search(r'DEV_KEY_ID: &str = "([^"]+)"', (REPO / "src" / "config" / "mod.rs").read_text()).group(1)


def expand(v):
    """vectors.json's {"$repeat": s, "times": n, "prefix": p} shorthand."""
    if isinstance(v, dict) and "$repeat" in v:
        return v.get("prefix", "") + v["$repeat"] * v["times"]
    if isinstance(v, dict):
        return {k: expand(x) for k, x in v.items()}
    if isinstance(v, list):
        return [expand(x) for x in v]
    return v


REFUSE = [dict(expand(v)) for v in SHARED["refuse"]]
ACCEPT = [dict(expand(v)) for v in SHARED["accept"]]


@pytest.fixture(params=sorted(SNIPPETS))
def lang(request):
    name = request.param
    if not snippet_available(name):
        tool = SNIPPETS[name][1]
        if name in ALWAYS or IN_CI:
            pytest.fail(f"{tool} is not installed; the {name} snippet must be tested (.ci/run installs it)")
        pytest.skip(f"{tool} not installed: the {name} snippet is not exercised here (CI installs it)")
    return name


def payload_of(token: str) -> dict:
    p = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def need_bin():
    if not BIN.exists():
        pytest.fail(f"no trackedge binary at {BIN} (set TRACKEDGE_BIN or run cargo build)")


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory):
    """A config with the contract's test key, so the CLI and the snippets share it."""
    path = tmp_path_factory.mktemp("cli") / "trackedge.toml"
    path.write_text(f'[signing]\nkeys = [{{ id = "{KEY_ID}", secret = "{SECRET}" }}]\n')
    return path


def cli_flags(v) -> list | None:
    """`trackedge sign` flags for a vector: its cli_args, or made from its
    fields; None when the fields have no flag form (a string `s`, say)."""
    if "cli_args" in v:
        return v["cli_args"]
    args = []
    flags = {"c": "--campaign", "r": "--recipient", "m": "--message", "l": "--link", "u": "--url", "s": "--sent-at"}
    for k, val in v["fields"].items():
        if val is None:
            continue
        if k in flags and isinstance(val, (str, int, float)) and not isinstance(val, bool):
            if k != "s" and not isinstance(val, str):
                return None
            args += [flags[k], str(val)]
        elif k == "a" and isinstance(val, dict) and all(isinstance(x, str) for x in val.values()):
            for ak, av in val.items():
                args += ["--attr", f"{ak}={av}"]
        else:
            return None
    return args


def cli_sign(cli_config, kind, flags) -> subprocess.CompletedProcess:
    need_bin()
    return subprocess.run([str(BIN), "sign", kind, "--config", str(cli_config), *flags],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kind,fields,token", VECTORS, ids=["click-vector", "open-vector"])
def test_spec_vectors(lang, kind, fields, token):
    url = mint_with_snippet(lang, kind, fields, base_url="https://t.example.com/")
    assert token_of(url) == token
    path = {"open": f"/o/{token}.gif", "click": f"/c/{token}"}[kind]
    assert url == "https://t.example.com" + path


@pytest.mark.parametrize("v", REFUSE, ids=[v["name"] for v in REFUSE])
def test_snippet_refuses_what_trackedge_refuses(lang, v):
    out = run_snippet(lang, v["kind"], json.dumps(v["fields"], ensure_ascii=False))
    assert (out.returncode, out.stdout) == (64, ""), f"{lang} minted {out.stdout!r} ({out.stderr!r})"
    assert out.stderr == f"mint: {v['error']}\n"


@pytest.mark.parametrize("v", [v for v in REFUSE if "cli_error" in v],
                         ids=[v["name"] for v in REFUSE if "cli_error" in v])
def test_cli_refuses_the_same(cli_config, v):
    flags = cli_flags(v)
    assert flags is not None, f"{v['name']}: give cli_args"
    out = cli_sign(cli_config, v["kind"], flags)
    assert out.returncode == 64 and out.stdout == "", (out.stdout, out.stderr)
    assert re.search(v["cli_error"], out.stderr), out.stderr


@pytest.mark.parametrize("v", ACCEPT, ids=[v["name"] for v in ACCEPT])
def test_snippet_accepts_what_trackedge_accepts(lang, cli_config, v):
    out = run_snippet(lang, v["kind"], json.dumps(v["fields"], ensure_ascii=False))
    assert out.returncode == 0 and out.stderr == "", out.stderr
    url = out.stdout.strip()
    claims = payload_of(token_of(url))
    want = {k: x for k, x in v["fields"].items() if x is not None}
    assert {k: claims[k] for k in want} == want
    # The CLI mints the very same token from the same input, when it has flags for it...
    flags = cli_flags(v)
    if flags is not None and "s" in want:
        cli = cli_sign(cli_config, v["kind"], flags)
        assert cli.returncode == 0, cli.stderr
        assert token_of(cli.stdout.strip()) == token_of(url)
    # ...and finds it valid.
    need_bin()
    verify = subprocess.run([str(BIN), "verify", "--config", str(cli_config), url],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "valid: signed with key" in verify.stdout, verify.stdout + verify.stderr


def test_send_time_defaults_to_now(lang):
    before = int(time.time())
    url = mint_with_snippet(lang, "click", {"c": "spring-sale", "u": "https://shop.example.com/"})
    after = int(time.time())
    assert before <= payload_of(token_of(url))["s"] <= after
    # "s": null leaves it out, as in the contract's click vector.
    url = mint_with_snippet(lang, "open", {"c": "spring-sale", "s": None})
    assert "s" not in payload_of(token_of(url))


@pytest.mark.parametrize("secret,says", [
    (None, "mint: TRACKEDGE_SECRET is not set: use the secret of one of the server's signing.keys "
           "(for the Quick start server, the development key: see examples/senders/README.md)\n"),
    ("", "mint: TRACKEDGE_SECRET is not set: use the secret of one of the server's signing.keys "
         "(for the Quick start server, the development key: see examples/senders/README.md)\n"),
    ("too-short", "mint: TRACKEDGE_SECRET is shorter than 32 bytes: trackedge refuses such keys\n"),
], ids=["unset", "empty", "short"])
def test_missing_secret_is_one_clear_line(lang, secret, says):
    out = run_snippet(lang, "open", '{"c":"spring-sale"}', {"TRACKEDGE_SECRET": secret})
    assert (out.returncode, out.stdout, out.stderr) == (64, "", says)


def test_bad_json_is_one_clear_line(lang):
    out = run_snippet(lang, "open", "{c: spring-sale}")
    assert out.returncode == 64 and out.stdout == ""
    assert out.stderr.startswith("mint: fields are not JSON") and out.stderr.count("\n") == 1, out.stderr


def test_readme_gives_the_development_key():
    """Newcomers try the snippets against the Quick start server, which signs
    with the development key: its id and secret must be written down."""
    text = (SENDERS / "README.md").read_text()
    assert f"TRACKEDGE_SECRET={DEV_SECRET}" in text
    assert f"TRACKEDGE_KEY_ID={DEV_ID}" in text


def test_development_key_urls_verify_on_the_default_config(lang, tmp_path):
    need_bin()
    url = mint_with_snippet(lang, "click", {"c": "spring-sale", "u": "https://shop.example.com/"},
                            secret=DEV_SECRET, key_id=DEV_ID)
    # No config file in the working directory: the built-in defaults, the development key.
    out = subprocess.run([str(BIN), "verify", url], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0 and f'valid: signed with key "{DEV_ID}"' in out.stdout, out.stdout + out.stderr


def test_same_bytes_as_trackedge_sign(lang, server):
    fields = {"c": "rentrée-2025", "r": "r-7", "m": "m-3", "l": "hero",
              "u": "https://shop.example.com/a?b=c&d=%C3%A9", "s": 1763942400,
              "a": {"variant": "B", "list": "weekly", "pays": "Côte d'Ivoire"}}
    for kind in ("open", "click", "unsubscribe"):
        f = dict(fields)
        if kind == "open":
            del f["u"]
        cli = server.sign(kind, f["c"], recipient=f["r"], message=f["m"], link=f["l"], url=f.get("u"),
                          sent_at=f["s"], attrs=f["a"])
        assert mint_with_snippet(lang, kind, f, base_url=server.base) == cli, kind


def test_urls_work_on_the_server(lang, server):
    r = f"snippet-{lang}"
    now = int(time.time())
    h = {"X-Forwarded-For": IP_US, "User-Agent": CHROME}

    open_url = mint_with_snippet(lang, "open", {"c": "senders", "r": r, "s": now - 600}, server.base)
    a = server.get(server.path_of(open_url), h)
    assert a.status == 200 and a.header("content-type") == "image/gif" and len(a.body) == 43

    dest = f"https://shop.example.com/landing?from={lang}&x=1"
    click_url = mint_with_snippet(lang, "click", {"c": "senders", "r": r, "l": "cta", "u": dest,
                                                  "s": now - 600, "a": {"lang": lang}}, server.base)
    a = server.get(server.path_of(click_url), h)
    assert (a.status, a.header("location")) == (302, dest)

    unsub_url = mint_with_snippet(lang, "unsubscribe", {"c": "senders", "r": r}, server.base)
    a = server.post(server.path_of(unsub_url), "List-Unsubscribe=One-Click", h)
    assert a.status == 200

    # A URL minted with another secret is refused.
    forged = mint_with_snippet(lang, "click", {"c": "senders", "u": "https://evil.example/"}, server.base,
                               secret="another-secret-0123456789abcdef-0123")
    assert server.get(server.path_of(forged), h).status == 404

    stats = server.stats("senders")
    assert (stats["opens"]["total"], stats["clicks"]["total"]) == (1, 1)
    events = server.stop_and_read()
    assert [(e["type"], e["recipient"]) for e in events] == [
        ("open", r), ("click", r), ("unsubscribe", r)]
    assert events[1]["url"] == dest and events[1]["link"] == "cta" and events[1]["attrs"] == {"lang": lang}
    assert events[0]["sent_at_ms"] == (now - 600) * 1000
    assert events[2]["one_click"] is True
