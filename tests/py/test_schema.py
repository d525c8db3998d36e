"""schema/event.v1.json: every kind of event the real binary writes
validates against it, wrong events fail it, and it names exactly the
fields src/ serializes (a change to one without the other fails here)."""

import copy
import json
import re
import time

import pytest

from conftest import (
    BINGPREVIEW, CHROME, GMAIL_PROXY, IP_DE, IP_FR, IP_GMAIL, IP_SAFE_LINKS, IP_UNKNOWN, IP_US,
    REPO, SCHEMA_PATH,
)

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft202012Validator, "the schema declares JSON Schema 2020-12"
    cls.check_schema(schema)
    # Formats (ipv4, ipv6) are checked too, not only annotated.
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def errors(validator, event):
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(event)]


def traffic(srv):
    """Requests that make every kind of event; returns how many each should give."""
    now = int(time.time())
    xff = lambda ip, **h: {"X-Forwarded-For": ip, **h}  # noqa: E731
    expect = 0

    def ok(answer, status):
        assert answer.status == status, (answer.status, answer.body[:200])

    # Opens: a person with every token field and geo; HEAD; an image proxy;
    # an opted-out person (cookie), DNT, GPC; IPv6; no User-Agent at all.
    full = srv.sign("open", "schema-c", recipient="r-1", message="m-1", sent_at=now - 3600,
                    attrs={"variant": "B", "list": "weekly"})
    ok(srv.get(srv.path_of(full), xff(IP_US, **{"User-Agent": CHROME, "Cookie": "tev=0190-known"})), 200)
    ok(srv.head(srv.path_of(full), xff(IP_US, **{"User-Agent": CHROME})), 200)
    proxy = srv.sign("open", "schema-c", recipient="r-2")
    ok(srv.get(srv.path_of(proxy), xff(IP_GMAIL, **{"User-Agent": GMAIL_PROXY})), 200)
    ok(srv.get(srv.path_of(proxy), xff(IP_DE, **{"User-Agent": CHROME, "Cookie": "trackedge_optout=1; tev=0190-known"})), 200)
    ok(srv.get(srv.path_of(proxy), xff(IP_DE, **{"User-Agent": CHROME, "DNT": "1"})), 200)
    ok(srv.get(srv.path_of(proxy), xff(IP_US, **{"User-Agent": CHROME, "Sec-GPC": "1"})), 200)
    ok(srv.get(srv.path_of(proxy), xff("2001:db8:1:2::7")), 200)
    expect += 7

    # Clicks: a person with a Referer; HEAD; a scanner by network, by UA,
    # by timing; a click from an address no database knows.
    dest = "https://shop.example.com/sale?x=1&y=2"
    click = srv.sign("click", "schema-c", recipient="r-1", message="m-1", link="hero", url=dest,
                     sent_at=now - 3600, attrs={"variant": "B"})
    a = srv.get(srv.path_of(click), xff(IP_US, **{"User-Agent": CHROME, "Referer": "https://mail.example.net/inbox"}))
    ok(a, 302)
    assert a.header("location") == dest
    ok(srv.head(srv.path_of(click), xff(IP_US, **{"User-Agent": CHROME})), 302)
    ok(srv.get(srv.path_of(click), xff(IP_SAFE_LINKS, **{"User-Agent": CHROME})), 302)
    ok(srv.get(srv.path_of(click), xff(IP_UNKNOWN, **{"User-Agent": BINGPREVIEW})), 302)
    fresh = srv.sign("click", "schema-c", recipient="r-3", link="footer", url="https://example.com/", sent_at=now)
    ok(srv.get(srv.path_of(fresh), xff(IP_UNKNOWN, **{"User-Agent": CHROME})), 302)
    expect += 5

    # Unsubscribes: RFC 8058 one-click, and the confirmation page's button.
    unsub = srv.sign("unsubscribe", "schema-c", recipient="r-1", message="m-1")
    ok(srv.post(srv.path_of(unsub), "List-Unsubscribe=One-Click", xff(IP_US, **{"User-Agent": GMAIL_PROXY})), 200)
    expect += 1
    button = srv.post(srv.path_of(unsub), "confirm=yes", xff(IP_US, **{"User-Agent": CHROME}))
    if button.status == 200:  # contract §1: the page's button; older builds refuse it
        expect += 1

    # Beacons: every parameter; the page from the Referer; sendBeacon's POST.
    ok(srv.get("/p.gif?e=signup&page=https%3A%2F%2Fshop.example.com%2Fthanks&ref=https%3A%2F%2Fwww.example.org%2F"
               "&c=schema-c&src=affiliate-7", xff(IP_FR, **{"User-Agent": CHROME})), 200)
    ok(srv.get("/p.gif", xff(IP_US, **{"User-Agent": CHROME, "Referer": "https://shop.example.com/"})), 200)
    expect += 2
    if srv.post("/p.gif?e=click&c=schema-c", "", xff(IP_US)).status in (200, 204):
        expect += 1
    return expect


def test_every_event_the_binary_writes_validates(make_server, validator):
    srv = make_server(geo=True)
    expect = traffic(srv)
    events = srv.stop_and_read()
    assert len(events) == expect
    bad = {e["event_id"]: errors(validator, e) for e in events}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, json.dumps(bad, indent=1)

    # The traffic did cover every kind of event, with every optional part.
    kinds = {(e["type"], e["method"]) for e in events}
    for k in [("open", "GET"), ("open", "HEAD"), ("click", "GET"), ("click", "HEAD"),
              ("unsubscribe", "POST"), ("beacon", "GET")]:
        assert k in kinds, k
    assert {e["agent"]["kind"] for e in events} == {"human", "proxy", "bot"}
    assert {e["agent"].get("reason") for e in events} >= {"ua", "ip", "method", "timing"}
    assert any(e.get("one_click") is True for e in events)
    assert any(e["privacy"]["opted_out"] and "ip" not in e and "visitor" not in e for e in events)
    assert any(e["privacy"]["dnt"] for e in events) and any(e["privacy"]["gpc"] for e in events)
    assert any(set(e.get("geo", {})) >= {"country", "city", "latitude", "asn", "as_org"} for e in events)
    assert any(e.get("attrs") == {"list": "weekly", "variant": "B"} for e in events)
    assert any(":" in e.get("ip", "") for e in events), "an IPv6 client"
    assert any("ua" not in e for e in events), "a request without a User-Agent"
    beacon = next(e for e in events if e["type"] == "beacon" and e.get("src"))
    assert (beacon["name"], beacon["campaign"], beacon["url"], beacon["referer"]) == (
        "signup", "schema-c", "https://shop.example.com/thanks", "https://www.example.org/")


@pytest.fixture(scope="module")
def good_event():
    """A valid event with every part, as trackedge writes it."""
    return {
        "schema": "trackedge.event.v1",
        "event_id": "0193a6f0-7c1e-7b2a-9f00-1c2d3e4f5a6b",
        "type": "click",
        "ts_ms": 1763942400123,
        "campaign": "spring-sale", "recipient": "r-42", "message": "m-7", "link": "hero",
        "url": "https://shop.example.com/sale?x=1&y=2",
        "referer": "https://mail.example.net/",
        "sent_at_ms": 1763940000000, "attrs": {"variant": "B"},
        "method": "GET",
        "ip": "198.51.100.0",
        "geo": {"country": "US", "subdivision": "CA", "city": "San Francisco", "latitude": 37.7,
                "longitude": -122.4, "asn": 15169, "as_org": "Google LLC"},
        "ua": {"raw": CHROME, "name": "Chrome", "version": "120.0.0.0", "os": "Windows 10",
               "os_version": "NT 10.0", "category": "pc", "vendor": "Google"},
        "agent": {"kind": "human"},
        "visitor": "0190-known",
        "privacy": {"dnt": False, "gpc": False, "opted_out": False},
    }


def _set(path, value):
    def f(e):
        *parents, last = path.split(".")
        for p in parents:
            e = e[p]
        e[last] = value
    return f


def _del(path):
    def f(e):
        *parents, last = path.split(".")
        for p in parents:
            e = e[p]
        del e[last]
    return f


WRONG = {
    "missing event_id": _del("event_id"),
    "missing type": _del("type"),
    "missing privacy": _del("privacy"),
    "type view": _set("type", "view"),
    "extra top-level key": _set("extra", 1),
    "null value": _set("recipient", None),
    "null nested value": _set("geo.city", None),
    "agent.kind robot": _set("agent.kind", "robot"),
    "agent.reason unknown": _set("agent.reason", "vibes"),
    "extra key in agent": _set("agent.score", 0.9),
    "extra key in geo": _set("geo.region", "x"),
    "extra key in ua": _set("ua.engine", "Blink"),
    "extra key in privacy": _set("privacy.cookies", True),
    "attrs with 17 entries": _set("attrs", {f"k{i}": "v" for i in range(17)}),
    "attrs value not a string": _set("attrs", {"n": 1}),
    "schema v2": _set("schema", "trackedge.event.v2"),
    "event_id a UUIDv4": _set("event_id", "0193a6f0-7c1e-4b2a-9f00-1c2d3e4f5a6b"),
    "event_id upper case": _set("event_id", "0193A6F0-7C1E-7B2A-9F00-1C2D3E4F5A6B"),
    "ts_ms a string": _set("ts_ms", "1763942400123"),
    "ts_ms a float": _set("ts_ms", 1.5),
    "empty campaign": _set("campaign", ""),
    "campaign of 129": _set("campaign", "c" * 129),
    "recipient of 129": _set("recipient", "r" * 129),
    "method PUT": _set("method", "PUT"),
    "ip not an address": _set("ip", "example.com"),
    "country not ISO": _set("geo.country", "usa"),
    "latitude 91": _set("geo.latitude", 91),
    "privacy flag a string": _set("privacy.dnt", "false"),
    "click without url": _del("url"),
    "click without campaign": _del("campaign"),
    "one_click on a click": _set("one_click", True),
    "ua without raw": _del("ua.raw"),
}


@pytest.mark.parametrize("what", sorted(WRONG))
def test_wrong_events_fail(validator, good_event, what):
    assert errors(validator, good_event) == []
    e = copy.deepcopy(good_event)
    WRONG[what](e)
    assert errors(validator, e), f"{what} should not validate"


def test_unsubscribe_and_beacon_shapes(validator, good_event):
    u = {k: good_event[k] for k in ("schema", "event_id", "ts_ms", "campaign", "method", "agent", "privacy")}
    u.update(type="unsubscribe", method="POST", one_click=True)
    assert errors(validator, u) == []
    del u["one_click"]
    assert errors(validator, u), "an unsubscribe says whether it was one-click"
    b = {k: good_event[k] for k in ("schema", "event_id", "ts_ms", "method", "agent", "privacy")}
    b.update(type="beacon", name="pageview")
    assert errors(validator, b) == [], "a beacon needs no campaign"
    del b["name"]
    assert errors(validator, b)


# --- drift: the schema names what src/ serializes ---------------------------

# Fields the event struct may omit but the request path always fills in.
ALWAYS_SET = {"agent", "privacy"}


def rust_struct(name):
    """{json name: optional?} of `pub struct name` somewhere under src/."""
    for f in sorted((REPO / "src").rglob("*.rs")):
        m = re.search(r"(#\[[^\n]*\]\s*)*pub struct " + name + r"\b[^{;]*\{(.*?)\n\}", f.read_text(), re.S)
        if not m:
            continue
        head = m.group(0)[: m.group(0).index("pub struct")]
        assert "rename_all" not in head, f"{name}: rename_all is not understood by this test"
        fields, attrs = {}, ""
        for line in m.group(2).splitlines():
            line = line.strip()
            if line.startswith("#["):
                attrs += line
            elif line.startswith("pub "):
                fm = re.match(r"pub (?:\(crate\) )?(\w+)\s*:", line)
                assert fm, line
                assert "flatten" not in attrs, f"{name}: flatten is not understood by this test"
                rename = re.search(r'rename\s*=\s*"([^"]+)"', attrs)
                fields[rename.group(1) if rename else fm.group(1)] = "skip_serializing_if" in attrs
                attrs = ""
            elif line and not line.startswith("//"):
                attrs += line  # attributes spread over lines
        return fields
    pytest.fail(f"no `pub struct {name}` under src/: update this test with the event's new home")


def rust_enum(name):
    for f in sorted((REPO / "src").rglob("*.rs")):
        m = re.search(r'rename_all = "lowercase"\)\]\s*pub enum ' + name + r"\s*\{(.*?)\n\}", f.read_text(), re.S)
        if m:
            return {re.match(r"(\w+)", v.strip()).group(1).lower()
                    for v in m.group(1).split(",") if v.strip() and not v.strip().startswith("//")}
    pytest.fail(f"no lower-case serialized `pub enum {name}` under src/")


def test_schema_and_src_name_the_same_fields():
    schema = json.loads(SCHEMA_PATH.read_text())
    props = schema["properties"]
    event = rust_struct("Event")
    assert set(props) == set(event), "top-level fields differ between schema and src"
    required_by_rust = {k for k, optional in event.items() if not optional}
    assert set(schema["required"]) == required_by_rust | ALWAYS_SET
    for field, struct in [("geo", "Geo"), ("ua", "UserAgent"), ("agent", "Agent"), ("privacy", "Privacy")]:
        fields = rust_struct(struct)
        sub = props[field]
        assert sub["additionalProperties"] is False, field
        assert set(sub["properties"]) == set(fields), f"{field} fields differ between schema and {struct}"
        assert set(sub.get("required", [])) == {k for k, optional in fields.items() if not optional}, field
    assert set(props["type"]["enum"]) == rust_enum("EventType")
    assert set(props["agent"]["properties"]["kind"]["enum"]) == rust_enum("AgentKind")


def test_agent_reasons_in_src_are_in_the_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    allowed = set(schema["properties"]["agent"]["properties"]["reason"]["enum"])
    # Every reason goes through enrich::agent::Reason; its arms name them.
    text = (REPO / "src" / "enrich" / "agent" / "mod.rs").read_text()
    found = set(re.findall(r'Reason::\w+ => "(\w+)"', text))
    assert found, "no agent reasons found in src/enrich/agent/mod.rs: update this test"
    assert found <= allowed, f"reasons in src/ but not in the schema: {found - allowed}"


def test_events_as_spec_section_1_describes(make_server, validator):
    """The routes whose events contract §1 spells out: a click's Referer, GET /u/
    (never an unsubscribe), the unsubscribe page's button, sendBeacon's POST."""
    srv = make_server()
    h = {"X-Forwarded-For": IP_US, "User-Agent": CHROME}
    click = srv.sign("click", "spec-1", recipient="r-1", link="hero", url="https://example.com/x",
                     sent_at=int(time.time()) - 3600)
    assert srv.get(srv.path_of(click), {**h, "Referer": "https://webmail.example.net/read/1"}).status == 302

    unsub = srv.sign("unsubscribe", "spec-1", recipient="r-1")
    page = srv.get(srv.path_of(unsub), h)
    assert page.status == 200 and b"<form" in page.body.lower(), "GET shows a page with a button"
    with_pref = srv.sign("unsubscribe", "spec-1", recipient="r-1", url="https://example.com/preferences")
    a = srv.get(srv.path_of(with_pref), h)
    assert (a.status, a.header("location")) == (302, "https://example.com/preferences")
    button = srv.post(srv.path_of(unsub), "confirm=1", h)
    assert button.status == 200
    one_click = srv.post(srv.path_of(unsub), "List-Unsubscribe=One-Click", h)
    assert one_click.status == 200

    beacon = srv.post("/p.gif?e=purchase&c=spec-1", "", h)
    assert beacon.status in (200, 204)

    events = srv.stop_and_read()
    for e in events:
        assert errors(validator, e) == [], e
    assert [(e["type"], e["method"], e.get("one_click")) for e in events] == [
        ("click", "GET", None),
        ("unsubscribe", "POST", False),
        ("unsubscribe", "POST", True),
        ("beacon", "POST", None),
    ]
    assert events[0].get("referer") == "https://webmail.example.net/read/1"
    assert events[3]["name"] == "purchase" and events[3]["campaign"] == "spec-1"
