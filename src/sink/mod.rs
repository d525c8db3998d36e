//! Where accepted events go, behind one trait so the request path never
//! knows which sink it feeds: [`writer`] (a file or stdout), [`kafka`]
//! (with its disk spool), both fed through the bounded [`queue`].
//!
//! Contract for every sink: `submit` never blocks or awaits; every event it
//! is given is counted as accepted and ends up either delivered or dropped
//! with a reason (`accepted = delivered + dropped + pending`); `shutdown`
//! flushes everything accepted before it returns.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, SinkKind};
use crate::event::Event;

pub mod kafka;
pub mod queue;
pub mod writer;

/// What readiness says of a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Delivering.
    Ok,
    /// Not delivering, but keeping every event (e.g. in the spool).
    Degraded(String),
    /// Can neither deliver nor keep events.
    Down(String),
}

/// A destination for events.
pub trait Sink: Send + Sync {
    /// Takes an event without waiting.
    fn submit(&self, event: Event);
    /// Whether events are delivered, kept for later, or neither.
    fn health(&self) -> Health;
    /// Events accepted and not yet delivered or dropped.
    fn pending(&self) -> usize;
    /// Delivers or accounts for every accepted event, waiting at most
    /// `timeout`. Blocking: call it off the async runtime.
    fn shutdown(&self, timeout: Duration);
}

/// Builds the sink the configuration names.
pub fn from_config(cfg: &Config) -> anyhow::Result<Arc<dyn Sink>> {
    match cfg.sink.kind {
        SinkKind::File => Ok(Arc::new(writer::WriterSink::file(
            &cfg.sink.file_path,
            cfg.sink.queue_capacity,
        )?)),
        SinkKind::Stdout => Ok(Arc::new(writer::WriterSink::stdout(
            cfg.sink.queue_capacity,
        ))),
        SinkKind::Kafka => Ok(Arc::new(kafka::KafkaSink::start(
            &cfg.kafka,
            cfg.server.public_url.as_str(),
            cfg.sink.queue_capacity,
        )?)),
    }
}
