//! The server's lifecycle phase and what readiness makes of it (SPEC §4).
//!
//! The server sets the phase ([`crate::server`]); the admin listener reads
//! it ([`crate::admin`]). Nothing here touches a request.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::metrics::READY;
use crate::sink::{Health, Sink};

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Ready = 1,
    Draining = 2,
}

/// The phase, shared by the server that moves it and the probes that read it.
pub struct Lifecycle {
    phase: AtomicU8,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: AtomicU8::new(Phase::Starting as u8),
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Ready,
            2 => Phase::Draining,
            _ => Phase::Starting,
        }
    }

    /// Moves to `p` and mirrors it in `trackedge_ready`.
    pub fn set(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
        metrics::gauge!(READY).set(if p == Phase::Ready { 1.0 } else { 0.0 });
    }
}

/// `Ok` (with a note when degraded) when the node should get traffic, else
/// the reason it should not.
pub fn readiness(phase: Phase, sink: &dyn Sink) -> Result<Option<String>, String> {
    match phase {
        Phase::Starting => return Err("starting".into()),
        Phase::Draining => return Err("shutting down".into()),
        Phase::Ready => {}
    }
    match sink.health() {
        Health::Ok => Ok(None),
        Health::Degraded(why) => Ok(Some(why)),
        Health::Down(why) => Err(why),
    }
}
