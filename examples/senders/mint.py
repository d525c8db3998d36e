#!/usr/bin/env python3
"""Mint trackedge open, click and unsubscribe URLs (token v1), standard library only.

    TRACKEDGE_SECRET=... TRACKEDGE_KEY_ID=k1 TRACKEDGE_BASE_URL=https://t.example.com \
      python3 mint.py click '{"c":"spring-sale","r":"r-42","l":"hero","u":"https://shop.example.com/"}'

It refuses what trackedge refuses, with trackedge's reasons (vectors.json
holds the cases every minter is tested on): a link the server would answer
with a 404, or a pixel it would count as invalid, is never printed.
`s` (send time) is set to now unless given (`"s": null` leaves it out): it
feeds machine-click detection. Any other null field is as if absent.
"""
import base64, hashlib, hmac, json, os, re, sys, time

ROUTES = {"open": ("o", "/o/{}.gif"), "click": ("c", "/c/{}"), "unsubscribe": ("u", "/u/{}")}
MAX_ID_CHARS, MAX_ATTRS, MAX_URL_BYTES, MAX_TOKEN_BYTES, MIN_SECRET_BYTES = 128, 16, 2048, 4096, 32
I64 = range(-(2**63), 2**63)


class Refused(ValueError):
    """A field trackedge would refuse; the message names the field and why."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ipv4(host: str):
    """The WHATWG IPv4 parser: dotted decimal, octal (0..) and hex (0x..) parts."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4 or "" in parts:
        return None
    nums = []
    for p in parts:
        base, digits = (16, p[2:]) if p[:2].lower() == "0x" else (8, p[1:]) if len(p) > 1 and p[0] == "0" else (10, p)
        try:
            nums.append(int(digits, base) if digits else 0)
        except ValueError:
            return None
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        return None
    n = nums[-1] + sum(v << (8 * (3 - i)) for i, v in enumerate(nums[:-1]))
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


def ipv6(body: str):
    """The WHATWG serialization of an IPv6 literal (without brackets), or None."""
    if body.count("::") > 1 or not re.fullmatch(r"[0-9A-Fa-f:.]+", body):
        return None
    head, _, tail = body.partition("::") if "::" in body else (body, "", None)
    def groups(s):
        out = []
        for i, g in enumerate(s.split(":") if s else []):
            if "." in g:  # an embedded IPv4 address, last only
                v4 = re.fullmatch(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})", g)
                if not v4 or i != len(s.split(":")) - 1 or any(int(x) > 255 or (len(x) > 1 and x[0] == "0") for x in v4.groups()):
                    raise ValueError
                a, b, c, d = map(int, v4.groups())
                out += [a << 8 | b, c << 8 | d]
            elif re.fullmatch(r"[0-9A-Fa-f]{1,4}", g):
                out.append(int(g, 16))
            else:
                raise ValueError
        return out
    try:
        h, t = groups(head), groups(tail) if tail is not None else []
    except ValueError:
        return None
    if tail is None and len(h) != 8 or tail is not None and len(h) + len(t) > 7:
        return None
    g = h + [0] * (8 - len(h) - len(t)) + t
    best, start = (0, -1), None  # the longest run of two or more zeros, the first on a tie
    for i, v in enumerate(g + [1]):
        if v == 0 and start is None:
            start = i
        elif v != 0 and start is not None:
            if i - start > best[0] and i - start > 1:
                best = (i - start, start)
            start = None
    hexes = [format(v, "x") for v in g]
    if best[1] < 0:
        return ":".join(hexes)
    return ":".join(hexes[: best[1]]) + "::" + ":".join(hexes[best[1] + best[0]:])


def destination_error(u: str):
    """Why trackedge would refuse `u` as a destination (its check_destination), or None."""
    if len(u.encode()) > MAX_URL_BYTES:
        return "longer than 2048 bytes"
    if any(not 0x21 <= ord(ch) < 0x7F or ch == "\\" for ch in u):
        return "contains whitespace, control, non-ASCII or backslash characters"
    if not re.match(r"(?i)https?://", u):
        return "not an absolute http(s) URL"
    rest = u[u.index("://") + 3:]
    authority = re.match(r"[^/?#]*", rest).group()
    # A browser skips further slashes after "https://" and reads the host there.
    effective = re.match(r"[^/?#]*", rest.lstrip("/")).group()
    userinfo, _, hostport = effective.rpartition("@")
    if hostport.startswith("["):
        host, close, port = hostport.partition("]")
        host += close
        port = port[1:] if port.startswith(":") else None if port == "" else "x"
    else:
        host, colon, port = hostport.partition(":")
        port = port if colon else None
    if port is not None and (not re.fullmatch(r"\d*", port) or port and int(port) > 65535):
        return "does not parse as a URL"
    if host.startswith("["):
        if not host.endswith("]") or ipv6(host[1:-1]) is None:
            return "does not parse as a URL"
        parsed = "[" + ipv6(host[1:-1]) + "]"
    else:
        try:
            decoded = re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), host)
        except ValueError:
            return "does not parse as a URL"
        if decoded == "" or re.search(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]", decoded):
            return "does not parse as a URL"
        last = decoded.rstrip(".").rsplit(".", 1)[-1] if decoded.rstrip(".") else ""
        if re.fullmatch(r"\d+|0[xX][0-9A-Fa-f]*", last):
            parsed = ipv4(decoded)
            if parsed is None:
                return "does not parse as a URL"
        else:
            parsed = decoded.lower()
    if userinfo not in ("", ":"):
        return "carries userinfo"
    if authority == "":
        return "has an empty authority"
    colon = authority.rfind(":")
    raw = authority[:colon] if colon >= 0 and "]" not in authority[colon:] else authority
    if parsed.lower() != raw.lower():
        return "has a host the URL parser reads differently"
    return None


def check(kind: str, fields: dict) -> dict:
    """The claims trackedge would accept for `kind`, in `trackedge sign`'s
    order, with `s` set to now when missing; Refused says what is wrong."""
    if kind not in ROUTES:
        raise Refused(f"kind {json.dumps(kind)}: expected open, click or unsubscribe")
    if not isinstance(fields, dict):
        raise Refused("fields must be a JSON object")
    f = {k: v for k, v in fields.items() if v is not None}
    claims = {}
    c = f.get("c")
    if not isinstance(c, str) or not 1 <= len(c) <= MAX_ID_CHARS:
        raise Refused("c: campaign must be 1-128 characters")
    claims["c"] = c
    for k in "rml":
        if k in f:
            if not isinstance(f[k], str):
                raise Refused(f"{k}: must be a string")
            if len(f[k]) > MAX_ID_CHARS:
                raise Refused(f"{k}: an id is longer than 128 characters")
            claims[k] = f[k]
    if "u" in f:
        if not isinstance(f["u"], str):
            raise Refused("u: must be a string")
        why = destination_error(f["u"])
        if why:
            raise Refused(f"u: {why}")
        claims["u"] = f["u"]
    elif kind == "click":
        raise Refused("u: a click needs a destination URL")
    for k in "sx":
        if k in f and (type(f[k]) is not int or f[k] not in I64):
            raise Refused(f"{k}: must be an integer (unix seconds)")
    if "s" in f or "s" not in fields:  # "s": null asks for no send time
        claims["s"] = f.get("s", int(time.time()))
    if "x" in f:
        if f["x"] <= int(time.time()):
            raise Refused("x: already past: an expired token is invalid")
        claims["x"] = f["x"]
    if "a" in f:
        a = f["a"]
        if not isinstance(a, dict) or not all(isinstance(v, str) for v in a.values()):
            raise Refused("a: must be an object of string to string")
        if len(a) > MAX_ATTRS:
            raise Refused("a: more than 16 attributes")
        claims["a"] = dict(sorted(a.items()))
    return claims


def token(secret: str, key_id: str, kind: str, fields: dict) -> str:
    """fields: c (campaign, required), r, m, l, u (destination), s, x (unix seconds), a (dict)."""
    claims = {"k": key_id, "t": ROUTES[kind][0] if kind in ROUTES else None, **check(kind, fields)}
    payload = b64url(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    mac = hmac.new(secret.encode(), b"trackedge:v1:" + payload.encode(), hashlib.sha256)
    tok = payload + "." + b64url(mac.digest()[:16])
    if len(tok) > MAX_TOKEN_BYTES:
        raise Refused("token: longer than 4096 bytes (shorten a, u or the ids)")
    return tok


def url(base: str, kind: str, fields: dict, secret: str, key_id: str) -> str:
    tok = token(secret, key_id, kind, fields)  # refuses an unknown kind first
    return base.rstrip("/") + ROUTES[kind][1].format(tok)


def main(argv, env) -> int:
    if len(argv) != 3:
        print("usage: mint.py open|click|unsubscribe '{\"c\":\"campaign\",...}'", file=sys.stderr)
        return 64
    secret = env.get("TRACKEDGE_SECRET", "")
    if not secret:
        print("mint: TRACKEDGE_SECRET is not set: use the secret of one of the server's signing.keys "
              "(for the Quick start server, the development key: see examples/senders/README.md)", file=sys.stderr)
        return 64
    if len(secret.encode()) < MIN_SECRET_BYTES:
        print("mint: TRACKEDGE_SECRET is shorter than 32 bytes: trackedge refuses such keys", file=sys.stderr)
        return 64
    try:
        fields = json.loads(argv[2])
        print(url(env.get("TRACKEDGE_BASE_URL", "http://localhost:8080"), argv[1], fields,
                  secret, env.get("TRACKEDGE_KEY_ID", "k1")))
    except json.JSONDecodeError as e:
        print(f"mint: fields are not JSON: {e}", file=sys.stderr)
        return 64
    except Refused as e:
        print(f"mint: {e}", file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv, os.environ))
