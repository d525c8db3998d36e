<?php
// Mint trackedge open, click and unsubscribe URLs (token v1), PHP's standard library only.
//
//   TRACKEDGE_SECRET=... TRACKEDGE_KEY_ID=k1 TRACKEDGE_BASE_URL=https://t.example.com \
//     php mint.php click '{"c":"spring-sale","r":"r-42","l":"hero","u":"https://shop.example.com/"}'
const TRACKEDGE_ROUTES = ['open' => ['o', '/o/%s.gif'], 'click' => ['c', '/c/%s'], 'unsubscribe' => ['u', '/u/%s']];

function trackedge_b64url(string $bytes): string { return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '='); }

// $fields: c (campaign, required), r, m, l, u (destination), s, x (unix seconds), a (array).
function trackedge_token(string $secret, string $keyId, string $kind, array $fields): string {
    $claims = ['k' => $keyId, 't' => TRACKEDGE_ROUTES[$kind][0]];
    foreach (str_split('crmlusxa') as $f) if (array_key_exists($f, $fields)) $claims[$f] = $fields[$f]; // `trackedge sign`'s order
    if (isset($claims['a'])) { $a = (array) $claims['a']; ksort($a, SORT_STRING); $claims['a'] = (object) $a; }
    $payload = trackedge_b64url(json_encode($claims, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR));
    return $payload . '.' . trackedge_b64url(substr(hash_hmac('sha256', 'trackedge:v1:' . $payload, $secret, true), 0, 16));
}

function trackedge_url(string $base, string $kind, array $fields, string $secret, string $keyId): string {
    return rtrim($base, '/') . sprintf(TRACKEDGE_ROUTES[$kind][1], trackedge_token($secret, $keyId, $kind, $fields));
}

if (PHP_SAPI === 'cli' && realpath($argv[0]) === __FILE__) {
    echo trackedge_url(getenv('TRACKEDGE_BASE_URL') ?: 'http://localhost:8080', $argv[1],
        json_decode($argv[2], true, 512, JSON_THROW_ON_ERROR), getenv('TRACKEDGE_SECRET'), getenv('TRACKEDGE_KEY_ID') ?: 'k1'), "\n";
}
