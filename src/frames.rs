//! A watch on the HTTP/2 frames a client sends, for what h2 does not cap.
//!
//! Every SETTINGS frame costs the server an acknowledgement, and h2 only
//! refuses a new one while the last is unacknowledged: a client sending one
//! per round trip keeps a serving thread busy indefinitely (issue 21: 10M
//! in 15 s pushed pixel p99 to 112 ms). A connection is allowed
//! [`MAX_SETTINGS`] SETTINGS frames in its life (a real client sends one,
//! plus the acknowledgement of ours); past that it is closed.
//!
//! The guard reads the bytes as they arrive, below hyper: an HTTP/1
//! connection is recognised by its first bytes (not the HTTP/2 preface)
//! and costs nothing after them.

/// SETTINGS frames (with or without ACK) one connection may send.
pub const MAX_SETTINGS: u32 = 100;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame header bytes: length (24 bits), type, flags, stream id.
const HEADER: usize = 9;
const SETTINGS: u8 = 0x4;

/// Where the reader is in the client's byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// This many bytes of the preface seen so far.
    Preface(usize),
    /// Not HTTP/2: nothing more to watch.
    Http1,
    /// Inside a frame header.
    Header { buf: [u8; HEADER], len: usize },
    /// Inside a frame's payload.
    Payload { left: usize },
}

/// Counts one connection's SETTINGS frames.
#[derive(Debug)]
pub struct FrameGuard {
    state: State,
    settings: u32,
}

/// The connection sent more SETTINGS frames than [`MAX_SETTINGS`].
#[derive(Debug, PartialEq, Eq)]
pub struct Flood;

impl Default for FrameGuard {
    fn default() -> Self {
        FrameGuard {
            state: State::Preface(0),
            settings: 0,
        }
    }
}

impl FrameGuard {
    /// Takes the next bytes the client sent.
    pub fn feed(&mut self, mut b: &[u8]) -> Result<(), Flood> {
        while !b.is_empty() {
            match &mut self.state {
                State::Http1 => return Ok(()),
                State::Preface(seen) => {
                    let n = (PREFACE.len() - *seen).min(b.len());
                    if b[..n] != PREFACE[*seen..*seen + n] {
                        self.state = State::Http1;
                        return Ok(());
                    }
                    *seen += n;
                    b = &b[n..];
                    if *seen == PREFACE.len() {
                        self.state = State::Header {
                            buf: [0; HEADER],
                            len: 0,
                        };
                    }
                }
                State::Header { buf, len } => {
                    let n = (HEADER - *len).min(b.len());
                    buf[*len..*len + n].copy_from_slice(&b[..n]);
                    *len += n;
                    b = &b[n..];
                    if *len == HEADER {
                        let length = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                        if buf[3] == SETTINGS {
                            self.settings += 1;
                            if self.settings > MAX_SETTINGS {
                                return Err(Flood);
                            }
                        }
                        self.state = if length == 0 {
                            State::Header {
                                buf: [0; HEADER],
                                len: 0,
                            }
                        } else {
                            State::Payload { left: length }
                        };
                    }
                }
                State::Payload { left } => {
                    let n = (*left).min(b.len());
                    *left -= n;
                    b = &b[n..];
                    if *left == 0 {
                        self.state = State::Header {
                            buf: [0; HEADER],
                            len: 0,
                        };
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
        let l = payload.len() as u32;
        let mut f = vec![(l >> 16) as u8, (l >> 8) as u8, l as u8, ty, 0, 0, 0, 0, 0];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn http1_is_let_through_whatever_follows() {
        let mut g = FrameGuard::default();
        assert_eq!(g.feed(b"POST /u/x HTTP/1.1\r\n"), Ok(()));
        assert_eq!(g.feed(&frame(SETTINGS, &[]).repeat(500)), Ok(()));
    }

    #[test]
    fn settings_past_the_cap_are_a_flood_across_reads_and_payloads() {
        let mut stream = PREFACE.to_vec();
        // Other frames with payloads between, which are skipped.
        stream.extend(frame(0x1, &[7; 300]));
        for _ in 0..MAX_SETTINGS {
            stream.extend(frame(SETTINGS, &[0; 6]));
            stream.extend(frame(0x8, &[0, 0, 1, 0]));
        }
        let mut g = FrameGuard::default();
        // Fed in odd-sized pieces, as reads come.
        for chunk in stream.chunks(7) {
            assert_eq!(g.feed(chunk), Ok(()));
        }
        assert_eq!(g.feed(&frame(SETTINGS, &[])), Err(Flood));
    }
}
