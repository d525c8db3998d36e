//! Signed tokens, version 1 (contract §2): minting and constant-time verification.
//!
//! `token = base64url(JSON) "." base64url(HMAC-SHA256(secret, "trackedge:v1:" + payload)[..16])`.
//! The MAC covers the payload text exactly as sent, so a verifier never has
//! to re-encode JSON. This module owns the token format and the destination
//! URL rules; it knows nothing of HTTP or events.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation prefix in front of the payload before MACing.
const MAC_PREFIX: &[u8] = b"trackedge:v1:";
/// Bytes of HMAC output carried in the token.
pub const TAG_BYTES: usize = 16;
/// Longest token accepted, payload and tag together.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Longest destination URL accepted.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest campaign, recipient, message or link id.
pub const MAX_ID_CHARS: usize = 128;
/// Most sender attributes in one token.
pub const MAX_ATTRS: usize = 16;

/// Which route a token is for; a token only verifies on its own route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum TokenType {
    #[serde(rename = "o")]
    Open,
    #[serde(rename = "c")]
    Click,
    #[serde(rename = "u")]
    Unsubscribe,
}

/// The payload fields. Field order is the order minted JSON uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Claims {
    /// Key id: picks the secret.
    pub k: String,
    /// Route type.
    pub t: TokenType,
    /// Campaign id.
    pub c: String,
    /// Recipient id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<String>,
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<String>,
    /// Link id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l: Option<String>,
    /// Destination URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<String>,
    /// Send time, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<i64>,
    /// Expiry, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<i64>,
    /// Sender attributes copied to the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<BTreeMap<String, String>>,
}

impl Claims {
    /// A payload with only the required fields; `k` is filled in by signing.
    pub fn new(t: TokenType, campaign: impl Into<String>) -> Claims {
        Claims {
            k: String::new(),
            t,
            c: campaign.into(),
            r: None,
            m: None,
            l: None,
            u: None,
            s: None,
            x: None,
            a: None,
        }
    }
}

/// Why a token was refused; `reason()` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("signature does not verify")]
    BadSignature,
    #[error("unknown key id")]
    UnknownKey,
    #[error("token expired")]
    Expired,
    #[error("token is for another route")]
    WrongType,
    #[error("unsafe destination: {0}")]
    BadUrl(&'static str),
}

impl TokenError {
    /// The `reason` label of `trackedge_invalid_tokens_total`.
    pub fn reason(&self) -> Refusal {
        match self {
            TokenError::Malformed(_) => Refusal::Malformed,
            TokenError::BadSignature => Refusal::BadSignature,
            TokenError::UnknownKey => Refusal::UnknownKey,
            TokenError::Expired => Refusal::Expired,
            TokenError::WrongType => Refusal::WrongType,
            TokenError::BadUrl(_) => Refusal::BadUrl,
        }
    }
}

/// Why a token was refused, without the detail: the `reason` label of
/// `trackedge_invalid_tokens_total`, spelled only here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    BadSignature,
    UnknownKey,
    Expired,
    WrongType,
    BadUrl,
}

impl Refusal {
    pub const COUNT: usize = Refusal::BadUrl as usize + 1;

    pub fn label(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::UnknownKey => "unknown_key",
            Refusal::Expired => "expired",
            Refusal::WrongType => "wrong_type",
            Refusal::BadUrl => "bad_url",
        }
    }
}

/// The signing keys, with each HMAC already keyed so a verification only
/// clones the keyed state instead of hashing the secret again.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, HmacSha256)>,
}

impl Keyring {
    /// The first key signs; every key verifies.
    pub fn new(keys: &[(String, Vec<u8>)]) -> Keyring {
        assert!(!keys.is_empty(), "a keyring needs at least one key");
        let keys = keys
            .iter()
            .map(|(id, secret)| {
                let mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
                (id.clone(), mac)
            })
            .collect();
        Keyring { keys }
    }

    fn mac_for(&self, id: &str) -> Option<HmacSha256> {
        self.keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, m)| m.clone())
    }

    /// Mints a token with the signing key, setting `claims.k` to its id.
    pub fn sign(&self, claims: &mut Claims) -> String {
        let (id, mac) = &self.keys[0];
        claims.k = id.clone();
        let json = serde_json::to_vec(claims).expect("claims always serialize");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mut mac = mac.clone();
        mac.update(MAC_PREFIX);
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut token = payload;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&tag[..TAG_BYTES], &mut token);
        token
    }

    /// Decodes a token without checking anything but its shape. For
    /// `trackedge verify`, which shows a payload even when it is invalid.
    pub fn decode_unverified(token: &str) -> Result<Claims, TokenError> {
        let (payload, _) = token
            .split_once('.')
            .ok_or(TokenError::Malformed("no '.'"))?;
        decode_payload(payload)
    }

    /// Verifies a token for route `expected` at unix time `now_secs`.
    pub fn verify(
        &self,
        token: &str,
        expected: TokenType,
        now_secs: i64,
    ) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed("longer than 4096 bytes"));
        }
        let (payload, tag_b64) = token
            .split_once('.')
            .ok_or(TokenError::Malformed("no '.'"))?;
        let mut tag = [0u8; TAG_BYTES + 3];
        let tag_len = URL_SAFE_NO_PAD
            .decode_slice(tag_b64, &mut tag)
            .map_err(|_| TokenError::Malformed("tag is not base64url"))?;
        if tag_len != TAG_BYTES {
            return Err(TokenError::BadSignature);
        }
        let mut claims = decode_payload(payload)?;
        let mut mac = self.mac_for(&claims.k).ok_or(TokenError::UnknownKey)?;
        mac.update(MAC_PREFIX);
        mac.update(payload.as_bytes());
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(&tag[..TAG_BYTES])
            .map_err(|_| TokenError::BadSignature)?;
        if claims.t != expected {
            return Err(TokenError::WrongType);
        }
        if claims.x.is_some_and(|x| x <= now_secs) {
            return Err(TokenError::Expired);
        }
        check_limits(&claims)?;
        match (&claims.u, expected) {
            (None, TokenType::Click) => return Err(TokenError::BadUrl("a click token needs `u`")),
            (Some(u), TokenType::Click | TokenType::Unsubscribe) => {
                let exact = destination(u).map_err(TokenError::BadUrl)?;
                claims.u = Some(exact);
            }
            _ => {}
        }
        Ok(claims)
    }
}

/// The claims in a token's base64url payload.
fn decode_payload(payload: &str) -> Result<Claims, TokenError> {
    // Typical payloads decode on the stack; a buffer this small costs
    // nothing to clear, unlike one for the longest token.
    let mut buf = [0u8; 1024];
    let mut heap = Vec::new();
    let json: &[u8] = match URL_SAFE_NO_PAD.decode_slice(payload, &mut buf) {
        Ok(n) => &buf[..n],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            URL_SAFE_NO_PAD
                .decode_vec(payload, &mut heap)
                .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
            &heap
        }
        Err(_) => return Err(TokenError::Malformed("payload is not base64url")),
    };
    serde_json::from_slice(json)
        .map_err(|_| TokenError::Malformed("payload is not a v1 JSON object"))
}

fn check_limits(c: &Claims) -> Result<(), TokenError> {
    let n = c.c.chars().count();
    if n == 0 || n > MAX_ID_CHARS {
        return Err(TokenError::Malformed("campaign must be 1-128 characters"));
    }
    for id in [&c.r, &c.m, &c.l].into_iter().flatten() {
        if id.chars().count() > MAX_ID_CHARS {
            return Err(TokenError::Malformed("an id is longer than 128 characters"));
        }
    }
    if c.a.as_ref().is_some_and(|a| a.len() > MAX_ATTRS) {
        return Err(TokenError::Malformed("more than 16 attributes"));
    }
    Ok(())
}

/// Whether `u` is a destination trackedge will redirect to.
///
/// Only an absolute `http`/`https` URL with a host and no userinfo, in
/// printable ASCII (so no whitespace, control or bidi characters, and no
/// backslash that browsers read as a slash), at most 2048 bytes. The URL is
/// parsed with the WHATWG rules browsers use, so what is checked is what a
/// browser will follow. IDN hosts must be sent in their punycode form.
pub fn check_destination(u: &str) -> Result<(), &'static str> {
    destination(u).map(drop)
}

/// The destination as a browser will read it: [`check_destination`]'s
/// rules, and the URL's serialization, which is what a redirect sends, so
/// the Location is exactly what was validated. Refused too: an empty
/// authority (`https:///x`, which the parser reads as host `x`) and a host
/// the parser rewrites beyond case (`https://0x7f.1/` is 127.0.0.1).
pub fn destination(u: &str) -> Result<String, &'static str> {
    if u.len() > MAX_URL_BYTES {
        return Err("longer than 2048 bytes");
    }
    if u.bytes().any(|b| !(0x21..0x7f).contains(&b) || b == b'\\') {
        return Err("contains whitespace, control, non-ASCII or backslash characters");
    }
    let lower_prefix = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    if !(lower_prefix.starts_with("http://") || lower_prefix.starts_with("https://")) {
        return Err("not an absolute http(s) URL");
    }
    let parsed = url::Url::parse(u).map_err(|_| "does not parse as a URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("not an absolute http(s) URL");
    }
    match parsed.host_str() {
        Some(h) if !h.is_empty() => {}
        _ => return Err("has no host"),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("carries userinfo");
    }
    let rest = &u[u.find("://").expect("checked above") + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() {
        return Err("has an empty authority");
    }
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    if !parsed
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(host))
    {
        return Err("has a host the URL parser reads differently");
    }
    Ok(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
    const CLICK_VECTOR: &str = "eyJrIjoidGVzdCIsInQiOiJjIiwiYyI6InNwcmluZy1zYWxlIiwiciI6InItNDIiLCJsIjoiaGVybyIsInUiOiJodHRwczovL3Nob3AuZXhhbXBsZS5jb20vc2FsZT94PTEmeT0yIn0.9VUVtxmP8HCjlWenTk5Fog";
    const OPEN_VECTOR: &str = "eyJrIjoidGVzdCIsInQiOiJvIiwiYyI6InNwcmluZy1zYWxlIiwiciI6InItNDIiLCJzIjoxNzYzOTQyNDAwfQ.vPDti2DIhNxy1NjFkxB1DA";
    const NOW: i64 = 1_763_942_400;

    fn ring() -> Keyring {
        Keyring::new(&[("test".into(), SECRET.as_bytes().to_vec())])
    }

    #[test]
    fn spec_click_vector_verifies_and_mints_identically() {
        let claims = ring().verify(CLICK_VECTOR, TokenType::Click, NOW).unwrap();
        assert_eq!(claims.c, "spring-sale");
        assert_eq!(claims.r.as_deref(), Some("r-42"));
        assert_eq!(claims.l.as_deref(), Some("hero"));
        assert_eq!(
            claims.u.as_deref(),
            Some("https://shop.example.com/sale?x=1&y=2")
        );
        let mut again = claims.clone();
        assert_eq!(ring().sign(&mut again), CLICK_VECTOR);
    }

    #[test]
    fn spec_open_vector_verifies_and_mints_identically() {
        let claims = ring().verify(OPEN_VECTOR, TokenType::Open, NOW).unwrap();
        assert_eq!(claims.s, Some(1_763_942_400));
        let mut c = Claims::new(TokenType::Open, "spring-sale");
        c.r = Some("r-42".into());
        c.s = Some(1_763_942_400);
        assert_eq!(ring().sign(&mut c), OPEN_VECTOR);
    }

    #[test]
    fn each_failure_has_its_reason() {
        let r = ring();
        assert_eq!(
            r.verify(OPEN_VECTOR, TokenType::Click, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "wrong_type"
        );
        // Same tag, payload re-encoded with another campaign.
        let (_, tag) = OPEN_VECTOR.split_once('.').unwrap();
        let json = r#"{"k":"test","t":"o","c":"other-sale","r":"r-42","s":1763942400}"#;
        let tampered = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(json));
        assert_eq!(
            r.verify(&tampered, TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "bad_signature"
        );
        let mut bad_tag = OPEN_VECTOR.to_string();
        let n = bad_tag.len();
        bad_tag.replace_range(
            n - 2..n - 1,
            if &OPEN_VECTOR[n - 2..n - 1] == "A" {
                "B"
            } else {
                "A"
            },
        );
        assert_eq!(
            r.verify(&bad_tag, TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "bad_signature"
        );
        let other = Keyring::new(&[("other".into(), SECRET.as_bytes().to_vec())]);
        assert_eq!(
            other
                .verify(OPEN_VECTOR, TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "unknown_key"
        );
        assert_eq!(
            r.verify("garbage", TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "malformed"
        );
        assert_eq!(
            r.verify("a.b", TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "malformed"
        );
        let long = "a".repeat(5000);
        assert_eq!(
            r.verify(&long, TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "malformed"
        );

        let mut c = Claims::new(TokenType::Open, "x");
        c.x = Some(NOW - 1);
        let t = r.sign(&mut c);
        assert_eq!(
            r.verify(&t, TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "expired"
        );
        c.x = Some(NOW + 60);
        let t = r.sign(&mut c);
        assert!(r.verify(&t, TokenType::Open, NOW).is_ok());
    }

    #[test]
    fn rotated_keys_keep_verifying() {
        let old = Keyring::new(&[("old".into(), vec![7; 32])]);
        let mut c = Claims::new(TokenType::Open, "x");
        let t = old.sign(&mut c);
        let rotated = Keyring::new(&[("new".into(), vec![9; 32]), ("old".into(), vec![7; 32])]);
        assert!(rotated.verify(&t, TokenType::Open, NOW).is_ok());
        let mut c2 = Claims::new(TokenType::Open, "x");
        rotated.sign(&mut c2);
        assert_eq!(c2.k, "new");
    }

    #[test]
    fn field_limits() {
        let r = ring();
        let mut c = Claims::new(TokenType::Open, "c".repeat(129));
        let t = r.sign(&mut c);
        assert_eq!(
            r.verify(&t, TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "malformed"
        );
        let mut c = Claims::new(TokenType::Open, "");
        let t = r.sign(&mut c);
        assert_eq!(
            r.verify(&t, TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "malformed"
        );
        let mut c = Claims::new(TokenType::Open, "ok");
        c.a = Some((0..17).map(|i| (i.to_string(), "v".into())).collect());
        let t = r.sign(&mut c);
        assert_eq!(
            r.verify(&t, TokenType::Open, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "malformed"
        );
        let mut c = Claims::new(TokenType::Click, "ok");
        let t = r.sign(&mut c);
        assert_eq!(
            r.verify(&t, TokenType::Click, NOW)
                .unwrap_err()
                .reason()
                .label(),
            "bad_url"
        );
    }

    #[test]
    fn destinations() {
        for ok in [
            "https://shop.example.com/sale?x=1&y=2",
            "http://example.com",
            "HTTPS://Example.COM/a#frag",
            "https://xn--bcher-kva.example/",
        ] {
            assert_eq!(check_destination(ok), Ok(()), "{ok}");
        }
        // What a redirect sends is the serialization that was checked.
        assert_eq!(
            destination("HTTPS://Example.COM:443/a#frag").as_deref(),
            Ok("https://example.com/a#frag")
        );
        assert_eq!(
            destination("http://[::1]:8080/x").as_deref(),
            Ok("http://[::1]:8080/x")
        );
        let long = format!("https://example.com/{}", "a".repeat(3000));
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "//evil.example",
            "/relative",
            "https://ok.example@evil.example/",
            "https://user:pw@evil.example/",
            "https://evil.example/\r\nSet-Cookie:x=1",
            "https://evil.example/ x",
            "https:\\\\evil.example",
            "https:/\\evil.example",
            "ftp://example.com/",
            "https://",
            "https://bücher.example/",
            "https:///path",
            "https:///evil.example/",
            "https://0x7f.1/",
            "http://2130706433/",
            long.as_str(),
        ] {
            assert!(check_destination(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn long_payloads_verify_as_short_ones_do() {
        // A 2,000-byte destination decodes past the stack buffer.
        let mut c = Claims::new(TokenType::Click, "spring-sale");
        c.u = Some(format!("https://shop.example.com/{}", "a".repeat(2000)));
        let t = ring().sign(&mut c);
        assert_eq!(ring().verify(&t, TokenType::Click, NOW), Ok(c));
        let tampered = t.replacen("eyJ", "eyK", 1);
        assert!(ring().verify(&tampered, TokenType::Click, NOW).is_err());
    }
}
