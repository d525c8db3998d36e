//! What the live producer and the spool's replay share, below both: the
//! record format (key, CloudEvents headers), the tag a record carries
//! through librdkafka, the reading of a delivery report, and which Kafka
//! errors mean what.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;

use crate::event::Event;

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

/// librdkafka headers from name/value pairs.
pub fn owned_headers<'a>(
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a [u8])>,
) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(pairs.len());
    for (key, value) in pairs {
        h = h.insert(Header {
            key,
            value: Some(value),
        });
    }
    h
}

/// An event's id and time as text, formatted into fixed buffers: no
/// allocation per record.
pub struct Ids {
    id: [u8; 36],
    time: [u8; 32],
    time_len: usize,
}

impl Ids {
    pub fn of(event: &Event) -> Ids {
        let mut ids = Ids {
            id: [0; 36],
            time: [0; 32],
            time_len: 0,
        };
        event.event_id.hyphenated().encode_lower(&mut ids.id);
        let time = UNIX_EPOCH + Duration::from_millis(event.ts_ms.max(0) as u64);
        let mut w = Fixed {
            buf: &mut ids.time,
            len: 0,
        };
        // RFC 3339 with milliseconds is 24 bytes; the buffer holds 32.
        let _ = write!(w, "{}", humantime::format_rfc3339_millis(time));
        ids.time_len = w.len;
        ids
    }

    pub fn id(&self) -> &str {
        std::str::from_utf8(&self.id).expect("a UUID is ASCII")
    }

    pub fn time(&self) -> &str {
        std::str::from_utf8(&self.time[..self.time_len]).expect("a timestamp is ASCII")
    }
}

/// `fmt::Write` into a fixed buffer; what does not fit is an error.
struct Fixed<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl std::fmt::Write for Fixed<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// How many CloudEvents headers a record carries.
pub const CE_HEADERS: usize = 6;

/// The CloudEvents binary-mode headers of an event: names (NUL-terminated,
/// as librdkafka takes them) and borrowed values.
pub type CeHeaders<'a> = [(&'static CStr, &'a str); CE_HEADERS];

/// The CloudEvents binary-mode headers of an event, all borrowed.
pub fn cloudevent_headers<'a>(event: &Event, ids: &'a Ids, source: &'a str) -> CeHeaders<'a> {
    [
        (c"ce_specversion", "1.0"),
        (c"ce_id", ids.id()),
        (c"ce_type", event.kind.cloudevent_type()),
        (c"ce_source", source),
        (c"ce_time", ids.time()),
        (c"content-type", "application/json"),
    ]
}

/// The record key: the recipient, so each recipient's events stay in
/// order on one partition; else the event id.
pub fn record_key<'a>(event: &'a Event, ids: &'a Ids) -> &'a str {
    match &event.recipient {
        Some(r) => r,
        None => ids.id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn records_are_keyed_by_recipient_with_cloudevent_headers() {
        let mut ev = Event::new(EventType::Click, 1_763_942_400_123, "GET");
        let ids = Ids::of(&ev);
        assert_eq!(record_key(&ev, &ids), ev.event_id.to_string());
        ev.recipient = Some("r-42".into());
        assert_eq!(record_key(&ev, &ids), "r-42");
        let h = cloudevent_headers(&ev, &ids, "https://t.example.com");
        let get = |k: &str| h.iter().find(|(n, _)| n.to_str() == Ok(k)).unwrap().1;
        assert_eq!(get("ce_type"), "trackedge.click.v1");
        assert_eq!(get("ce_time"), "2025-11-24T00:00:00.123Z");
        assert_eq!(get("ce_id"), ev.event_id.to_string());
    }
}
