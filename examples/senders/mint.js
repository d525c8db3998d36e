#!/usr/bin/env node
// Mint trackedge open, click and unsubscribe URLs (token v1), Node's standard library only.
//
//   TRACKEDGE_SECRET=... TRACKEDGE_KEY_ID=k1 TRACKEDGE_BASE_URL=https://t.example.com \
//     node mint.js click '{"c":"spring-sale","r":"r-42","l":"hero","u":"https://shop.example.com/"}'
"use strict";
const crypto = require("node:crypto");

const ROUTES = { open: ["o", (t) => `/o/${t}.gif`], click: ["c", (t) => `/c/${t}`], unsubscribe: ["u", (t) => `/u/${t}`] };

// fields: c (campaign, required), r, m, l, u (destination), s, x (unix seconds), a (object).
function token(secret, keyId, kind, fields) {
  const claims = { k: keyId, t: ROUTES[kind][0] };
  for (const f of "crmlusxa") if (f in fields) claims[f] = fields[f]; // `trackedge sign`'s order
  if (claims.a) claims.a = Object.fromEntries(Object.entries(claims.a).sort(([x], [y]) => (x < y ? -1 : 1)));
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const mac = crypto.createHmac("sha256", secret).update("trackedge:v1:" + payload).digest();
  return payload + "." + mac.subarray(0, 16).toString("base64url");
}

function url(base, kind, fields, secret, keyId) {
  return base.replace(/\/+$/, "") + ROUTES[kind][1](token(secret, keyId, kind, fields));
}

module.exports = { token, url };

if (require.main === module) {
  const env = process.env;
  console.log(url(env.TRACKEDGE_BASE_URL || "http://localhost:8080", process.argv[2],
    JSON.parse(process.argv[3]), env.TRACKEDGE_SECRET, env.TRACKEDGE_KEY_ID || "k1"));
}
