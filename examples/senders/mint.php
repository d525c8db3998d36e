<?php
// Mint trackedge open, click and unsubscribe URLs (token v1), PHP's standard library only.
//
//   TRACKEDGE_SECRET=... TRACKEDGE_KEY_ID=k1 TRACKEDGE_BASE_URL=https://t.example.com \
//     php mint.php click '{"c":"spring-sale","r":"r-42","l":"hero","u":"https://shop.example.com/"}'
//
// It refuses what trackedge refuses, with trackedge's reasons (vectors.json
// holds the cases every minter is tested on). `s` (send time) is set to now
// unless given (`"s": null` leaves it out): it feeds machine-click
// detection. Any other null field is as if absent.
const TRACKEDGE_ROUTES = ['open' => ['o', '/o/%s.gif'], 'click' => ['c', '/c/%s'], 'unsubscribe' => ['u', '/u/%s']];
const TRACKEDGE_JSON = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR;

/** A field trackedge would refuse; the message names the field and why. */
class TrackedgeRefused extends InvalidArgumentException {}

function trackedge_b64url(string $bytes): string { return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '='); }

/** Code points, as trackedge counts them (no mbstring needed). */
function trackedge_chars(string $s): int { return preg_match_all('/./us', $s); }

/** The WHATWG IPv4 parser: dotted decimal, octal (0..) and hex (0x..) parts. */
function trackedge_ipv4(string $host): ?string {
    $parts = explode('.', $host);
    if (count($parts) > 1 && end($parts) === '') array_pop($parts);
    if (count($parts) > 4) return null;
    $nums = [];
    foreach ($parts as $p) {
        if ($p === '') return null;
        if (strlen($p) >= 2 && strtolower(substr($p, 0, 2)) === '0x') { $digits = substr($p, 2); $ok = $digits === '' || ctype_xdigit($digits); $n = $digits === '' ? 0 : hexdec($digits); }
        elseif (strlen($p) > 1 && $p[0] === '0') { $digits = substr($p, 1); $ok = preg_match('/^[0-7]+$/', $digits) === 1; $n = $ok ? octdec($digits) : 0; }
        else { $ok = ctype_digit($p); $n = $ok ? (float) $p : 0; }
        if (!$ok) return null;
        $nums[] = $n;
    }
    $last = array_pop($nums);
    foreach ($nums as $n) if ($n > 255) return null;
    if ($last >= 256 ** (4 - count($nums))) return null;
    $n = (int) $last;
    foreach ($nums as $i => $v) $n += ((int) $v) << (8 * (3 - $i));
    return implode('.', [($n >> 24) & 255, ($n >> 16) & 255, ($n >> 8) & 255, $n & 255]);
}

/** The WHATWG serialization of an IPv6 literal (without brackets), or null. */
function trackedge_ipv6(string $body): ?string {
    if (substr_count($body, '::') > 1 || !preg_match('/^[0-9A-Fa-f:.]+$/', $body)) return null;
    $groups = function (string $s): ?array {
        if ($s === '') return [];
        $gs = explode(':', $s);
        $out = [];
        foreach ($gs as $i => $g) {
            if ($i === count($gs) - 1 && preg_match('/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/', $g, $m)) {
                $b = array_slice($m, 1);
                foreach ($b as $x) if ((int) $x > 255 || (strlen($x) > 1 && $x[0] === '0')) return null;
                $out[] = ((int) $b[0]) << 8 | (int) $b[1];
                $out[] = ((int) $b[2]) << 8 | (int) $b[3];
            } elseif (preg_match('/^[0-9A-Fa-f]{1,4}$/', $g)) {
                $out[] = hexdec($g);
            } else {
                return null;
            }
        }
        return $out;
    };
    $compressed = str_contains($body, '::');
    [$head, $tail] = $compressed ? explode('::', $body, 2) : [$body, ''];
    $h = $groups($head);
    $t = $groups($tail);
    if ($h === null || $t === null || (!$compressed && count($h) !== 8) || ($compressed && count($h) + count($t) > 7)) return null;
    $g = array_merge($h, array_fill(0, 8 - count($h) - count($t), 0), $t);
    [$bestLen, $bestAt, $start] = [0, -1, -1]; // the longest run of two or more zeros, the first on a tie
    for ($i = 0; $i <= 8; $i++) {
        if ($i < 8 && $g[$i] === 0) { if ($start < 0) $start = $i; }
        elseif ($start >= 0) { if ($i - $start > $bestLen && $i - $start > 1) [$bestLen, $bestAt] = [$i - $start, $start]; $start = -1; }
    }
    $hexes = array_map('dechex', $g);
    if ($bestAt < 0) return implode(':', $hexes);
    return implode(':', array_slice($hexes, 0, $bestAt)) . '::' . implode(':', array_slice($hexes, $bestAt + $bestLen));
}

/** Why trackedge would refuse $u as a destination (its check_destination), or null. */
function trackedge_destination_error(string $u): ?string {
    if (strlen($u) > 2048) return 'longer than 2048 bytes';
    if (preg_match('/[^\x21-\x7e]|\\\\/', $u)) return 'contains whitespace, control, non-ASCII or backslash characters';
    if (!preg_match('#^https?://#i', $u)) return 'not an absolute http(s) URL';
    $rest = substr($u, strpos($u, '://') + 3);
    preg_match('#^[^/?\#]*#', $rest, $m); $authority = $m[0];
    // A browser skips further slashes after "https://" and reads the host there.
    preg_match('#^[^/?\#]*#', ltrim($rest, '/'), $m); $effective = $m[0];
    $at = strrpos($effective, '@');
    [$userinfo, $hostport] = $at === false ? ['', $effective] : [substr($effective, 0, $at), substr($effective, $at + 1)];
    $port = null;
    if (str_starts_with($hostport, '[')) {
        $close = strpos($hostport, ']');
        if ($close === false) return 'does not parse as a URL';
        $host = substr($hostport, 0, $close + 1);
        $after = substr($hostport, $close + 1);
        if ($after !== '') { if ($after[0] !== ':') return 'does not parse as a URL'; $port = substr($after, 1); }
    } else {
        $parts = explode(':', $hostport, 2);
        $host = $parts[0];
        $port = $parts[1] ?? null;
    }
    if ($port !== null && $port !== '' && (!ctype_digit($port) || (float) $port > 65535)) return 'does not parse as a URL';
    if (str_starts_with($host, '[')) {
        $v6 = trackedge_ipv6(substr($host, 1, -1));
        if ($v6 === null) return 'does not parse as a URL';
        $parsed = "[$v6]";
    } else {
        $decoded = preg_replace_callback('/%([0-9A-Fa-f]{2})/', fn ($m) => chr(hexdec($m[1])), $host);
        if ($decoded === '' || preg_match('/[\x00-\x20#%\/:<>?@\[\\\\\]^|\x7f]/', $decoded)) return 'does not parse as a URL';
        $labels = explode('.', rtrim($decoded, '.'));
        $last = end($labels);
        if ($last !== '' && preg_match('/^(\d+|0[xX][0-9A-Fa-f]*)$/', $last)) {
            $parsed = trackedge_ipv4($decoded);
            if ($parsed === null) return 'does not parse as a URL';
        } else {
            $parsed = strtolower($decoded);
        }
    }
    if ($userinfo !== '' && $userinfo !== ':') return 'carries userinfo';
    if ($authority === '') return 'has an empty authority';
    $colon = strrpos($authority, ':');
    $raw = $colon !== false && !str_contains(substr($authority, $colon), ']') ? substr($authority, 0, $colon) : $authority;
    if (strtolower($parsed) !== strtolower($raw)) return 'has a host the URL parser reads differently';
    return null;
}

/**
 * The claims trackedge would accept for $kind, in `trackedge sign`'s order,
 * with `s` set to now when missing; throws TrackedgeRefused otherwise.
 * $fields is json_decode($json) output (objects as stdClass, so {} and [] differ).
 */
function trackedge_check(string $kind, $fields): array {
    if (!isset(TRACKEDGE_ROUTES[$kind])) throw new TrackedgeRefused('kind ' . json_encode($kind, TRACKEDGE_JSON) . ': expected open, click or unsubscribe');
    if (!($fields instanceof stdClass)) throw new TrackedgeRefused('fields must be a JSON object');
    $all = get_object_vars($fields);
    $f = array_filter($all, fn ($v) => $v !== null);
    $claims = [];
    $c = $f['c'] ?? null;
    if (!is_string($c) || trackedge_chars($c) < 1 || trackedge_chars($c) > 128) throw new TrackedgeRefused('c: campaign must be 1-128 characters');
    $claims['c'] = $c;
    foreach (['r', 'm', 'l'] as $k) {
        if (!array_key_exists($k, $f)) continue;
        if (!is_string($f[$k])) throw new TrackedgeRefused("$k: must be a string");
        if (trackedge_chars($f[$k]) > 128) throw new TrackedgeRefused("$k: an id is longer than 128 characters");
        $claims[$k] = $f[$k];
    }
    if (array_key_exists('u', $f)) {
        if (!is_string($f['u'])) throw new TrackedgeRefused('u: must be a string');
        $why = trackedge_destination_error($f['u']);
        if ($why !== null) throw new TrackedgeRefused("u: $why");
        $claims['u'] = $f['u'];
    } elseif ($kind === 'click') {
        throw new TrackedgeRefused('u: a click needs a destination URL');
    }
    foreach (['s', 'x'] as $k) {
        if (array_key_exists($k, $f) && !is_int($f[$k])) throw new TrackedgeRefused("$k: must be an integer (unix seconds)");
    }
    if (array_key_exists('s', $f)) $claims['s'] = $f['s'];
    elseif (!array_key_exists('s', $all)) $claims['s'] = time(); // "s": null asks for no send time
    if (array_key_exists('x', $f)) {
        if ($f['x'] <= time()) throw new TrackedgeRefused('x: already past: an expired token is invalid');
        $claims['x'] = $f['x'];
    }
    if (array_key_exists('a', $f)) {
        $a = $f['a'];
        if (!($a instanceof stdClass)) throw new TrackedgeRefused('a: must be an object of string to string');
        $a = get_object_vars($a);
        foreach ($a as $v) if (!is_string($v)) throw new TrackedgeRefused('a: must be an object of string to string');
        if (count($a) > 16) throw new TrackedgeRefused('a: more than 16 attributes');
        ksort($a, SORT_STRING);
        $claims['a'] = (object) $a;
    }
    return $claims;
}

// $fields: c (campaign, required), r, m, l, u (destination), s, x (unix seconds), a (object).
// Arrays are accepted too: ['c' => 'spring-sale', 'a' => ['variant' => 'B']].
function trackedge_token(string $secret, string $keyId, string $kind, $fields): string {
    if (is_array($fields)) $fields = json_decode(json_encode((object) $fields, TRACKEDGE_JSON), false, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
    $claims = trackedge_check($kind, $fields);
    $claims = ['k' => $keyId, 't' => TRACKEDGE_ROUTES[$kind][0]] + $claims;
    $payload = trackedge_b64url(json_encode($claims, TRACKEDGE_JSON));
    $token = $payload . '.' . trackedge_b64url(substr(hash_hmac('sha256', 'trackedge:v1:' . $payload, $secret, true), 0, 16));
    if (strlen($token) > 4096) throw new TrackedgeRefused('token: longer than 4096 bytes (shorten a, u or the ids)');
    return $token;
}

function trackedge_url(string $base, string $kind, $fields, string $secret, string $keyId): string {
    $token = trackedge_token($secret, $keyId, $kind, $fields); // refuses an unknown kind first
    return rtrim($base, '/') . sprintf(TRACKEDGE_ROUTES[$kind][1], $token);
}

if (PHP_SAPI === 'cli' && realpath($argv[0]) === __FILE__) {
    if ($argc !== 3) {
        fwrite(STDERR, "usage: mint.php open|click|unsubscribe '{\"c\":\"campaign\",...}'\n");
        exit(64);
    }
    $secret = (string) getenv('TRACKEDGE_SECRET');
    if ($secret === '') {
        fwrite(STDERR, "mint: TRACKEDGE_SECRET is not set: use the secret of one of the server's signing.keys "
            . "(for the Quick start server, the development key: see examples/senders/README.md)\n");
        exit(64);
    }
    if (strlen($secret) < 32) {
        fwrite(STDERR, "mint: TRACKEDGE_SECRET is shorter than 32 bytes: trackedge refuses such keys\n");
        exit(64);
    }
    try {
        $fields = json_decode($argv[2], false, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
    } catch (JsonException $e) {
        fwrite(STDERR, "mint: fields are not JSON: {$e->getMessage()}\n");
        exit(64);
    }
    try {
        echo trackedge_url(getenv('TRACKEDGE_BASE_URL') ?: 'http://localhost:8080', $argv[1], $fields,
            $secret, getenv('TRACKEDGE_KEY_ID') ?: 'k1'), "\n";
    } catch (TrackedgeRefused $e) {
        fwrite(STDERR, "mint: {$e->getMessage()}\n");
        exit(64);
    }
}
