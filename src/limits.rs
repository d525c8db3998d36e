//! Connection limits shared by every listener that serves the public
//! routes (plain and TLS): how many connections one client address may
//! hold, and the count of what was refused. Touched once per connection,
//! never per request.

use std::sync::Arc;

/// Why a connection was refused: the `reason` label of
/// `trackedge_connections_refused_total`.
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// Every `server.max_connections` slot was taken (the client waited
    /// in the backlog).
    MaxConnections,
    /// Its address already held `server.max_connections_per_address`.
    PerAddressLimit,
}

pub fn refused(why: Refused) {
    let reason = match why {
        Refused::MaxConnections => "max_connections",
        Refused::PerAddressLimit => "per_address_limit",
    };
    metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => reason).increment(1);
}

/// Connections held per client address, shared by every serving thread of
/// a listener, so no single address takes more than its share of the
/// slots. Touched once per connection, never per request.
pub struct PerAddress {
    max: usize,
    /// Addresses that carry everyone's connections (the load balancer).
    exempt: Vec<ipnet::IpNet>,
    held: dashmap::DashMap<std::net::IpAddr, usize>,
}

/// One connection's place in [`PerAddress`]; given back when dropped.
pub struct AddressSlot {
    of: Option<(Arc<PerAddress>, std::net::IpAddr)>,
}

impl PerAddress {
    pub fn new(max: usize, exempt: Vec<ipnet::IpNet>) -> PerAddress {
        PerAddress {
            max,
            exempt,
            held: dashmap::DashMap::new(),
        }
    }

    /// A slot for a connection from `ip`, or None when it holds its share.
    pub fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        if self.exempt.iter().any(|n| n.contains(&ip)) {
            return Some(AddressSlot { of: None });
        }
        let mut n = self.held.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            of: Some((self.clone(), ip)),
        })
    }

    /// Connections `ip` holds now.
    pub fn held(&self, ip: std::net::IpAddr) -> usize {
        self.held.get(&ip.to_canonical()).map_or(0, |n| *n)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((gate, ip)) = self.of.take() {
            gate.held.remove_if_mut(&ip, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}
