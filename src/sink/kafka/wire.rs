//! What the live producer and the spool's replay share, below both: the tag
//! a record carries through librdkafka, the reading of a delivery report,
//! and which Kafka errors mean what.

use rdkafka::types::RDKafkaErrorCode;

/// Which record a delivery report is about: a live event, or record
/// `index` of a segment sent in replay attempt `attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Live,
    Replayed { attempt: u32, index: u32 },
}

impl Tag {
    /// The opaque word librdkafka carries: 0 for live records, `attempt <<
    /// 32 | index` for replayed ones (attempts start at 1, so a replayed
    /// record never packs to 0).
    pub fn pack(self) -> usize {
        match self {
            Tag::Live => 0,
            Tag::Replayed { attempt, index } => {
                debug_assert!(attempt != 0, "attempt 0 would read as live");
                ((attempt as u64) << 32 | index as u64) as usize
            }
        }
    }

    pub fn unpack(opaque: usize) -> Tag {
        if opaque == 0 {
            return Tag::Live;
        }
        let v = opaque as u64;
        Tag::Replayed {
            attempt: (v >> 32) as u32,
            index: v as u32,
        }
    }
}

/// The next replay attempt's number after `a`, skipping 0 (see [`Tag::pack`]).
pub fn next_attempt(a: u32) -> u32 {
    match a.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// Errors after which an idempotent producer's id or epoch is no good: the
/// broker has fenced it or lost its state. Only a new producer recovers.
pub fn breaks_producer(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::InvalidProducerIdMapping
        )
    )
}

/// Errors that retrying will never fix: the record is dropped and counted.
pub fn is_permanent(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

/// Failures our own shutdown or producer swap caused: they say nothing of
/// Kafka's health.
pub fn is_purge(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight)
    )
}

/// What a delivery report says of a replayed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered, or refused for good and counted dropped.
    Delivered,
    /// Refused for a reason that may pass: one of its tries.
    Refused,
    /// Not delivered for a reason that says nothing of the record (Kafka
    /// away, a purge): sent again, no try counted.
    NotSent,
}
