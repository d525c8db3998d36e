#!/usr/bin/env node
// Mint trackedge open, click and unsubscribe URLs (token v1), Node's standard library only.
//
//   TRACKEDGE_SECRET=... TRACKEDGE_KEY_ID=k1 TRACKEDGE_BASE_URL=https://t.example.com \
//     node mint.js click '{"c":"spring-sale","r":"r-42","l":"hero","u":"https://shop.example.com/"}'
//
// It refuses what trackedge refuses, with trackedge's reasons (vectors.json
// holds the cases every minter is tested on). `s` (send time) is set to now
// unless given (`"s": null` leaves it out): it feeds machine-click
// detection. Any other null field is as if absent.
"use strict";
const crypto = require("node:crypto");

const ROUTES = { open: ["o", (t) => `/o/${t}.gif`], click: ["c", (t) => `/c/${t}`], unsubscribe: ["u", (t) => `/u/${t}`] };
const MAX_ID_CHARS = 128, MAX_ATTRS = 16, MAX_URL_BYTES = 2048, MAX_TOKEN_BYTES = 4096, MIN_SECRET_BYTES = 32;

// A field trackedge would refuse; the message names the field and why.
class Refused extends Error {}

const chars = (s) => [...s].length; // code points, as trackedge counts them
const isInt = (v) => Number.isSafeInteger(v);

// Why trackedge would refuse `u` as a destination (its check_destination),
// or null. Node's URL is the WHATWG parser browsers use, as trackedge's is.
function destinationError(u) {
  if (Buffer.byteLength(u) > MAX_URL_BYTES) return "longer than 2048 bytes";
  if ([...u].some((ch) => ch.codePointAt(0) < 0x21 || ch.codePointAt(0) >= 0x7f || ch === "\\"))
    return "contains whitespace, control, non-ASCII or backslash characters";
  if (!/^https?:\/\//i.test(u)) return "not an absolute http(s) URL";
  let parsed;
  try {
    parsed = new URL(u);
  } catch {
    return "does not parse as a URL";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return "not an absolute http(s) URL";
  if (!parsed.hostname) return "has no host";
  if (parsed.username || parsed.password) return "carries userinfo";
  const rest = u.slice(u.indexOf("://") + 3);
  const authority = rest.match(/^[^/?#]*/)[0];
  if (authority === "") return "has an empty authority";
  const colon = authority.lastIndexOf(":");
  const host = colon >= 0 && !authority.slice(colon).includes("]") ? authority.slice(0, colon) : authority;
  if (parsed.hostname.toLowerCase() !== host.toLowerCase()) return "has a host the URL parser reads differently";
  return null;
}

// The claims trackedge would accept for `kind`, in `trackedge sign`'s
// order (`a` as sorted [key, value] pairs), with `s` set to now when
// missing; throws Refused otherwise.
function check(kind, fields) {
  if (!Object.hasOwn(ROUTES, kind)) throw new Refused(`kind ${JSON.stringify(kind)}: expected open, click or unsubscribe`);
  if (fields === null || typeof fields !== "object" || Array.isArray(fields)) throw new Refused("fields must be a JSON object");
  const f = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== null));
  const claims = {};
  if (typeof f.c !== "string" || chars(f.c) < 1 || chars(f.c) > MAX_ID_CHARS) throw new Refused("c: campaign must be 1-128 characters");
  claims.c = f.c;
  for (const k of "rml") {
    if (!(k in f)) continue;
    if (typeof f[k] !== "string") throw new Refused(`${k}: must be a string`);
    if (chars(f[k]) > MAX_ID_CHARS) throw new Refused(`${k}: an id is longer than 128 characters`);
    claims[k] = f[k];
  }
  if ("u" in f) {
    if (typeof f.u !== "string") throw new Refused("u: must be a string");
    const why = destinationError(f.u);
    if (why) throw new Refused(`u: ${why}`);
    claims.u = f.u;
  } else if (kind === "click") {
    throw new Refused("u: a click needs a destination URL");
  }
  for (const k of "sx") if (k in f && !isInt(f[k])) throw new Refused(`${k}: must be an integer (unix seconds)`);
  const now = Math.floor(Date.now() / 1000);
  if ("s" in f) claims.s = f.s;
  else if (!("s" in fields)) claims.s = now; // "s": null asks for no send time
  if ("x" in f) {
    if (f.x <= now) throw new Refused("x: already past: an expired token is invalid");
    claims.x = f.x;
  }
  if ("a" in f) {
    const a = f.a;
    if (a === null || typeof a !== "object" || Array.isArray(a) || !Object.values(a).every((v) => typeof v === "string"))
      throw new Refused("a: must be an object of string to string");
    if (Object.keys(a).length > MAX_ATTRS) throw new Refused("a: more than 16 attributes");
    // Sorted by code point, as trackedge (and Python, Go, PHP) sort.
    const cmp = (x, y) => { const [p, q] = [[...x], [...y]]; for (let i = 0; i < Math.min(p.length, q.length); i++) if (p[i] !== q[i]) return p[i].codePointAt(0) - q[i].codePointAt(0); return p.length - q.length; };
    claims.a = Object.entries(a).sort(([x], [y]) => cmp(x, y));
  }
  return claims;
}

// fields: c (campaign, required), r, m, l, u (destination), s, x (unix seconds), a (object).
function token(secret, keyId, kind, fields) {
  const claims = { k: keyId, t: ROUTES[kind]?.[0], ...check(kind, fields) };
  // Written by hand: a JS object would put keys such as "10" before "9".
  const json = (o) => "{" + (Array.isArray(o) ? o : Object.entries(o)).map(([k, v]) =>
    JSON.stringify(k) + ":" + (Array.isArray(v) ? json(v) : JSON.stringify(v))).join(",") + "}";
  const payload = Buffer.from(json(claims)).toString("base64url");
  const mac = crypto.createHmac("sha256", secret).update("trackedge:v1:" + payload).digest();
  const tok = payload + "." + mac.subarray(0, 16).toString("base64url");
  if (tok.length > MAX_TOKEN_BYTES) throw new Refused("token: longer than 4096 bytes (shorten a, u or the ids)");
  return tok;
}

function url(base, kind, fields, secret, keyId) {
  const tok = token(secret, keyId, kind, fields); // refuses an unknown kind first
  return base.replace(/\/+$/, "") + ROUTES[kind][1](tok);
}

module.exports = { token, url, check, Refused };

function main(argv, env) {
  if (argv.length !== 2) {
    console.error("usage: mint.js open|click|unsubscribe '{\"c\":\"campaign\",...}'");
    return 64;
  }
  const secret = env.TRACKEDGE_SECRET || "";
  if (!secret) {
    console.error("mint: TRACKEDGE_SECRET is not set: use the secret of one of the server's signing.keys " +
      "(for the Quick start server, the development key: see examples/senders/README.md)");
    return 64;
  }
  if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
    console.error("mint: TRACKEDGE_SECRET is shorter than 32 bytes: trackedge refuses such keys");
    return 64;
  }
  let fields;
  try {
    fields = JSON.parse(argv[1]);
  } catch (e) {
    console.error(`mint: fields are not JSON: ${e.message}`);
    return 64;
  }
  try {
    console.log(url(env.TRACKEDGE_BASE_URL || "http://localhost:8080", argv[0], fields, secret, env.TRACKEDGE_KEY_ID || "k1"));
  } catch (e) {
    if (!(e instanceof Refused)) throw e;
    console.error(`mint: ${e.message}`);
    return 64;
  }
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2), process.env);
