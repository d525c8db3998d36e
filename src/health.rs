//! The server's lifecycle phase and what readiness makes of it (contract §4).
//!
//! The server sets the phase ([`crate::server`]); the admin listener reads
//! it ([`crate::admin`]). Nothing here touches a request.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::metrics::{READY, SINK_UP};
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
/// the reason it should not. Only the phase makes a node unready: sink
/// trouble (Kafka down, a full spool) reaches every node of a fleet at
/// once, and a fleet that all turned unready would break every pixel and
/// link it serves; the node answers on and says what is wrong.
/// Mirrors the sink's state in `trackedge_sink_up`.
pub fn readiness(phase: Phase, sink: &dyn Sink) -> Readiness {
    match phase {
        Phase::Starting => Readiness::Unready("starting"),
        Phase::Draining => Readiness::Unready("shutting down"),
        Phase::Ready => match sink_note(sink) {
            None => Readiness::Ready,
            Some(why) => Readiness::Degraded(why),
        },
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Serving, and events reach the sink.
    Ready,
    /// Serving, with sink trouble said in words.
    Degraded(String),
    /// Not to be sent traffic (503), and why.
    Unready(&'static str),
}

/// What is wrong with the sink, if anything; sets `trackedge_sink_up`.
pub fn sink_note(sink: &dyn Sink) -> Option<String> {
    let note = match sink.health() {
        Health::Ok => None,
        Health::Degraded(why) | Health::Down(why) => Some(why),
    };
    metrics::gauge!(SINK_UP).set(if note.is_none() { 1.0 } else { 0.0 });
    note
}
