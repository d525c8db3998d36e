"""Shared helpers for the Python tests: the real trackedge binary on free
loopback ports, requests that never follow redirects, minting with the CLI
or with the sender snippets, and geo databases built here.

The binary is $TRACKEDGE_BIN, default target/debug/trackedge in the
repository (built by `cargo test` / `cargo build`, never here).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

import mmdbwrite

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("TRACKEDGE_BIN") or REPO / "target" / "debug" / "trackedge")
if not BIN.is_absolute():
    BIN = REPO / BIN
SCHEMA_PATH = REPO / "schema" / "event.v1.json"
SENDERS = REPO / "examples" / "senders"

# The contract §2 test key.
KEY_ID = "test"
SECRET = "test-secret-0123456789abcdef-0123456789"

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
BINGPREVIEW = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b"

# Client addresses, sent as X-Forwarded-For from loopback (a trusted proxy
# in every test config). The geo fixture knows the first three networks.
IP_US = "198.51.100.7"
IP_DE = "203.0.113.9"
IP_FR = "192.0.2.33"
IP_UNKNOWN = "100.64.1.2"
IP_GMAIL = "66.102.1.5"  # a built-in gmail_image_proxy network
IP_SAFE_LINKS = "40.92.3.4"  # a built-in ms_safe_links network


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_geo(directory: Path) -> tuple:
    """City and ASN databases for IP_US, IP_DE and IP_FR's networks."""
    city = mmdbwrite.Writer("GeoIP2-City")
    asn = mmdbwrite.Writer("GeoLite2-ASN")
    for net, cc, sub, name, lat, lon, num, org in [
        ("198.51.100.0/24", "US", "CA", "San Francisco", 37.7749, -122.4194, 64500, "Example Transit"),
        ("203.0.113.0/24", "DE", "BE", "Berlin", 52.52, 13.405, 64501, "Beispiel Netz GmbH"),
        ("192.0.2.0/24", "FR", "IDF", "Paris", 48.8566, 2.3522, 64502, "Exemple Réseau"),
    ]:
        city.insert(net, {
            "city": {"names": {"en": name}},
            "country": {"iso_code": cc},
            "subdivisions": [{"iso_code": sub}],
            "location": {"latitude": lat, "longitude": lon},
        })
        asn.insert(net, {"autonomous_system_number": mmdbwrite.Uint32(num), "autonomous_system_organization": org})
    c, a = directory / "city.mmdb", directory / "asn.mmdb"
    city.write(c)
    asn.write(a)
    return c, a


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> list of values
        self.body = body

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)


def request(url, method="GET", headers=None, body=None, timeout=10) -> Answer:
    """One HTTP/1.1 request; redirects are answers, not followed."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path + ("?" + u.query if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hs = {}
        for k, v in r.getheaders():
            hs.setdefault(k.lower(), []).append(v)
        return Answer(r.status, hs, data)
    finally:
        conn.close()


def toml_str(s) -> str:
    return json.dumps(str(s))


class Server:
    """A `trackedge serve` process with a file sink in `directory`."""

    def __init__(self, directory: Path, extra_toml: str = "", geo: bool = False):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.dir / "events.ndjson"
        self.log_path = self.dir / "trackedge.log"
        self.extra_toml = extra_toml
        self.geo = build_geo(self.dir) if geo else None
        self.proc = None

    def _write_config(self):
        self.port, self.admin_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin_base = f"http://127.0.0.1:{self.admin_port}"
        geo = ""
        if self.geo:
            geo = f"\n[geoip]\ncity_db = {toml_str(self.geo[0])}\nasn_db = {toml_str(self.geo[1])}\n"
        self.config = self.dir / "trackedge.toml"
        self.config.write_text(
            "[server]\n"
            f'listen = "127.0.0.1:{self.port}"\n'
            f'admin_listen = "127.0.0.1:{self.admin_port}"\n'
            f'public_url = "{self.base}"\n'
            'trusted_proxies = ["127.0.0.0/8"]\n'
            "worker_threads = 1\n"
            "shutdown_grace_ms = 2000\n"
            "[signing]\n"
            f'keys = [{{ id = "{KEY_ID}", secret = "{SECRET}" }}]\n'
            "[sink]\n"
            'kind = "file"\n'
            f"file_path = {toml_str(self.events_path)}\n"
            + geo
            + self.extra_toml
        )

    def start(self):
        if not BIN.exists():
            pytest.fail(f"no trackedge binary at {BIN} (set TRACKEDGE_BIN or run cargo build)")
        for _attempt in range(3):
            self._write_config()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [str(BIN), "serve", "--config", str(self.config)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.dir,
            )
            log.close()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    if request(self.admin_base + "/readyz", timeout=1).status == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            self.stop()
            if "in use" not in self.log_path.read_text(errors="replace"):
                break  # not a port race: no point in trying again
        pytest.fail(f"trackedge did not become ready; log:\n{self.log_path.read_text(errors='replace')}")

    def stop(self):
        """Stops the process we started (SIGTERM, then SIGKILL) by its pid."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def url(self, path):
        return self.base + path

    def get(self, path, headers=None):
        return request(self.base + path, "GET", headers)

    def head(self, path, headers=None):
        return request(self.base + path, "HEAD", headers)

    def post(self, path, body, headers=None):
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        return request(self.base + path, "POST", h, body)

    def admin(self, path):
        return request(self.admin_base + path)

    def stats(self, campaign):
        a = self.admin("/stats/campaigns/" + urllib.parse.quote(campaign, safe=""))
        assert a.status == 200, (campaign, a.status, a.body)
        return a.json()

    def sign(self, kind, campaign, recipient=None, message=None, link=None, url=None,
             sent_at=None, attrs=None) -> str:
        """`trackedge sign`: the full URL on public_url."""
        args = [str(BIN), "sign", kind, "--config", str(self.config), "--campaign", campaign]
        for flag, v in [("--recipient", recipient), ("--message", message), ("--link", link),
                        ("--url", url), ("--sent-at", sent_at)]:
            if v is not None:
                args += [flag, str(v)]
        for k, v in (attrs or {}).items():
            args += ["--attr", f"{k}={v}"]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def path_of(self, url) -> str:
        assert url.startswith(self.base + "/"), url
        return url[len(self.base):]

    def events(self):
        """Every event written so far (complete once the server stopped)."""
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line.strip()]

    def stop_and_read(self):
        self.stop()
        return self.events()


@pytest.fixture
def make_server(tmp_path):
    """Starts servers (`make_server(extra_toml, geo=True)`); stops them at the end."""
    started = []

    def make(extra_toml="", geo=False, name=None):
        s = Server(tmp_path / (name or f"node{len(started)}"), extra_toml, geo)
        started.append(s)
        return s.start()

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def server(make_server):
    return make_server(geo=True)


# The sender snippets: how to run each, and whether it can run here.
SNIPPETS = {
    "python": (["python3", str(SENDERS / "mint.py")], "python3"),
    "node": (["node", str(SENDERS / "mint.js")], "node"),
    "go": (["go", "run", str(SENDERS / "mint.go")], "go"),
    "php": (["php", str(SENDERS / "mint.php")], "php"),
}


def snippet_available(lang) -> bool:
    return shutil.which(SNIPPETS[lang][1]) is not None


_built: dict = {}


def snippet_cmd(lang) -> list:
    """How to run a snippet: Go's is built once per test run, not per call."""
    if lang != "go":
        return SNIPPETS[lang][0]
    if "go" not in _built:
        import tempfile
        exe = Path(tempfile.mkdtemp(prefix="trackedge-mint-go-")) / "mint"
        out = subprocess.run(["go", "build", "-o", str(exe), str(SENDERS / "mint.go")],
                             capture_output=True, text=True, timeout=300, cwd=SENDERS)
        assert out.returncode == 0, f"go build mint.go: {out.stderr}"
        _built["go"] = [str(exe)]
    return _built["go"]


def run_snippet(lang, kind, fields_json, env_overrides=None) -> subprocess.CompletedProcess:
    """Runs examples/senders/mint.* with `fields_json` (text) as it is; the
    environment holds the contract's test key unless overridden (a value
    of None removes the variable)."""
    env = dict(os.environ, TRACKEDGE_SECRET=SECRET, TRACKEDGE_KEY_ID=KEY_ID,
               TRACKEDGE_BASE_URL="http://localhost:8080")
    for k, v in (env_overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run(snippet_cmd(lang) + [kind, fields_json],
                          capture_output=True, text=True, env=env, timeout=300, cwd=SENDERS)


def mint_with_snippet(lang, kind, fields, base_url="http://localhost:8080",
                      secret=SECRET, key_id=KEY_ID) -> str:
    """Runs examples/senders/mint.* and returns the URL it prints."""
    out = run_snippet(lang, kind, json.dumps(fields, ensure_ascii=False),
                      {"TRACKEDGE_SECRET": secret, "TRACKEDGE_KEY_ID": key_id,
                       "TRACKEDGE_BASE_URL": base_url})
    assert out.returncode == 0, f"{lang}: {out.stderr}"
    return out.stdout.strip()


def token_of(url) -> str:
    last = urllib.parse.urlsplit(url).path.rsplit("/", 1)[1]
    return last[: -len(".gif")] if last.endswith(".gif") else last
