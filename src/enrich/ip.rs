//! The client address: believed from `X-Forwarded-For` only when the peer is
//! a trusted proxy, and anonymized before it leaves the process.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::header::HeaderMap;
use ipnet::IpNet;

use crate::config::IpAnonymization;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// One `X-Forwarded-For` element: a bare address, or one with a port.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client address of a request from `peer`.
///
/// Walks `X-Forwarded-For` right to left while the hop it came from is a
/// trusted proxy; the first untrusted address is the client. A header from
/// an untrusted peer is ignored, so clients cannot forge their address.
/// RFC 7239 `Forwarded` is not read: the load balancers in front of edge
/// servers send `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut current = peer.to_canonical();
    if trusted.is_empty() || !is_trusted(current, trusted) {
        return current;
    }
    // Several header lines are one list, in order.
    let lines: Vec<&[u8]> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    for line in lines.iter().rev() {
        let Ok(line) = std::str::from_utf8(line) else {
            return current;
        };
        for hop in line.rsplit(',') {
            match parse_hop(hop) {
                Some(ip) => {
                    current = ip;
                    if !is_trusted(ip, trusted) {
                        return current;
                    }
                }
                // A garbled hop: nothing left of it can be believed.
                None => return current,
            }
        }
    }
    current
}

/// The address as it may appear in an event.
pub fn anonymize(ip: IpAddr, mode: IpAnonymization) -> IpAddr {
    match (mode, ip) {
        (IpAnonymization::None, ip) => ip,
        (IpAnonymization::Truncate, IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        (IpAnonymization::Truncate, IpAddr::V6(v6)) => {
            let s = v6.segments();
            if s[0] == 0x2002 {
                // 6to4 (RFC 3056) carries the whole IPv4 address in bits
                // 16-47: a /48 would keep it. Cut it to its /24 as well.
                return IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2] & 0xff00, 0, 0, 0, 0, 0));
            }
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in v {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let ip = client_ip(
            "203.0.113.9".parse().unwrap(),
            &xff(&["1.2.3.4"]),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(ip.to_string(), "203.0.113.9");
    }

    #[test]
    fn trusted_chain_is_walked_right_to_left() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = xff(&["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        let ip = client_ip("10.0.0.2".parse().unwrap(), &h, &trusted);
        assert_eq!(ip.to_string(), "198.51.100.7");
        let h = xff(&["198.51.100.7:5555"]);
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &h, &trusted).to_string(),
            "198.51.100.7"
        );
        let h = xff(&["garbage, 10.9.9.9"]);
        assert_eq!(
            client_ip("10.0.0.2".parse().unwrap(), &h, &trusted).to_string(),
            "10.9.9.9"
        );
        let ip = client_ip(
            "::ffff:10.0.0.2".parse().unwrap(),
            &xff(&["2001:db8::1"]),
            &trusted,
        );
        assert_eq!(ip.to_string(), "2001:db8::1");
    }

    #[test]
    fn truncation() {
        let t = IpAnonymization::Truncate;
        assert_eq!(
            anonymize("198.51.100.77".parse().unwrap(), t).to_string(),
            "198.51.100.0"
        );
        assert_eq!(
            anonymize("2001:db8:abcd:12::1".parse().unwrap(), t).to_string(),
            "2001:db8:abcd::"
        );
        assert_eq!(
            anonymize("198.51.100.77".parse().unwrap(), IpAnonymization::None).to_string(),
            "198.51.100.77"
        );
    }

    #[test]
    fn six_to_four_keeps_only_the_embedded_v4_slash_24() {
        // 2002:cb00:7109::/48 embeds 203.0.113.9.
        let ip: IpAddr = "2002:cb00:7109:1:2:3:4:5".parse().unwrap();
        assert_eq!(
            anonymize(ip, IpAnonymization::Truncate).to_string(),
            "2002:cb00:7100::"
        );
        let plain: IpAddr = "2001:db8:1234:5678::1".parse().unwrap();
        assert_eq!(
            anonymize(plain, IpAnonymization::Truncate).to_string(),
            "2001:db8:1234::"
        );
    }
}
