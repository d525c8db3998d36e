//! Connection limits shared by every listener that serves the public
//! routes (plain and TLS): how many connections one client address may
//! hold, and the count of what was refused. Touched once per connection,
//! never per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// The way in for every public listener, plain and TLS: a process-wide
/// slot (`server.max_connections`), then the client address's share.
#[derive(Clone)]
pub struct Gate {
    slots: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
}

/// A connection let in, with the places it holds until it is dropped.
pub struct Admitted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub held: (OwnedSemaphorePermit, AddressSlot),
}

impl Gate {
    pub fn new(slots: Arc<Semaphore>, per_address: Arc<PerAddress>) -> Gate {
        Gate { slots, per_address }
    }

    /// The next connection on `listener` within the limits, or None once
    /// `stop` turns true. Waits for a free slot before accepting, so
    /// excess clients wait in the kernel's backlog instead of costing
    /// memory; an address over its share is closed at once, keeping
    /// neither a slot nor any memory; a failed accept (out of fds and the
    /// like) backs off and goes on.
    pub async fn admit(
        &self,
        listener: &TcpListener,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Admitted> {
        let mut backoff = Duration::from_millis(5);
        loop {
            let permit = match self.slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    refused(Refused::MaxConnections);
                    tokio::select! {
                        p = self.slots.clone().acquire_owned() => p.expect("semaphore never closes"),
                        _ = stop.changed() => return None,
                    }
                }
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
                _ = stop.changed() => return None,
            };
            let Some(slot) = self.per_address.admit(peer.ip()) else {
                refused(Refused::PerAddressLimit);
                continue;
            };
            let _ = stream.set_nodelay(true);
            return Some(Admitted {
                stream,
                peer,
                held: (permit, slot),
            });
        }
    }
}

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
