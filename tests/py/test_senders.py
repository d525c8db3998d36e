"""examples/senders: each snippet reproduces the contract §2 test vectors byte
for byte, mints exactly what `trackedge sign` mints, and its URLs work on
the running server. Python and Node always run; Go and PHP when their
interpreter is installed (skipped with the reason otherwise)."""

import time

import pytest

from conftest import CHROME, IP_US, SNIPPETS, mint_with_snippet, snippet_available, token_of

# contract §2, secret test-secret-0123456789abcdef-0123456789, key id "test".
VECTORS = [
    ("click",
     {"c": "spring-sale", "r": "r-42", "l": "hero", "u": "https://shop.example.com/sale?x=1&y=2"},
     "eyJrIjoidGVzdCIsInQiOiJjIiwiYyI6InNwcmluZy1zYWxlIiwiciI6InItNDIiLCJsIjoiaGVybyIsInUiOiJodHRwczovL3Nob3AuZXhhbXBsZS5jb20vc2FsZT94PTEmeT0yIn0"
     ".9VUVtxmP8HCjlWenTk5Fog"),
    ("open",
     {"c": "spring-sale", "r": "r-42", "s": 1763942400},
     "eyJrIjoidGVzdCIsInQiOiJvIiwiYyI6InNwcmluZy1zYWxlIiwiciI6InItNDIiLCJzIjoxNzYzOTQyNDAwfQ"
     ".vPDti2DIhNxy1NjFkxB1DA"),
]

ALWAYS = {"python", "node"}


@pytest.fixture(params=sorted(SNIPPETS))
def lang(request):
    name = request.param
    if not snippet_available(name):
        if name in ALWAYS:
            pytest.fail(f"{SNIPPETS[name][1]} is not installed; the {name} snippet must be tested")
        pytest.skip(f"{SNIPPETS[name][1]} not installed: the {name} snippet is not exercised")
    return name


@pytest.mark.parametrize("kind,fields,token", VECTORS, ids=["click-vector", "open-vector"])
def test_spec_vectors(lang, kind, fields, token):
    url = mint_with_snippet(lang, kind, fields, base_url="https://t.example.com/")
    assert token_of(url) == token
    path = {"open": f"/o/{token}.gif", "click": f"/c/{token}"}[kind]
    assert url == "https://t.example.com" + path


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
