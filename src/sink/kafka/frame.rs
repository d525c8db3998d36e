//! A spooled record's frame on disk (the layout is in [`super::spool`]'s
//! documentation): encoding, decoding, and the scan that recovers every
//! intact record of a segment around damage.

/// Marks the start of every record ("TESP").
const MAGIC: u32 = 0x5053_4554;
/// Frame bytes before the body.
const FRAME: usize = 12;
/// Largest body accepted when reading; anything bigger is damage.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One Kafka record as it will be produced on replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    pub ts_ms: i64,
    pub key: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
}

impl SpoolRecord {
    /// Appends the framed record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[0; 8]); // len and crc, filled in below
        out.extend_from_slice(&self.ts_ms.to_le_bytes());
        let key = &self.key[..self.key.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
        let headers = &self.headers[..self.headers.len().min(u8::MAX as usize)];
        out.push(headers.len() as u8);
        for (name, value) in headers {
            let name = &name.as_bytes()[..name.len().min(u8::MAX as usize)];
            let value = &value[..value.len().min(u16::MAX as usize)];
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&self.payload);
        let len = (out.len() - start - FRAME) as u32;
        out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&len.to_le_bytes());
        h.update(&out[start + FRAME..]);
        out[start + 8..start + 12].copy_from_slice(&h.finalize().to_le_bytes());
    }

    /// The framed size of this record.
    pub fn encoded_len(&self) -> usize {
        FRAME
            + 8
            + 2
            + self.key.len()
            + 1
            + self
                .headers
                .iter()
                .map(|(n, v)| 1 + n.len() + 2 + v.len())
                .sum::<usize>()
            + self.payload.len()
    }

    fn decode_body(b: &[u8]) -> Option<SpoolRecord> {
        let mut r = Reader(b);
        let ts_ms = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let klen = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
        let key = r.take(klen)?.to_vec();
        let n = r.take(1)?[0] as usize;
        let mut headers = Vec::with_capacity(n);
        for _ in 0..n {
            let nlen = r.take(1)?[0] as usize;
            let name = String::from_utf8(r.take(nlen)?.to_vec()).ok()?;
            let vlen = u16::from_le_bytes(r.take(2)?.try_into().ok()?) as usize;
            headers.push((name, r.take(vlen)?.to_vec()));
        }
        Some(SpoolRecord {
            ts_ms,
            key,
            headers,
            payload: r.0.to_vec(),
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
}

/// What reading a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<SpoolRecord>,
    /// Damaged records skipped (a torn tail counts as one).
    pub corrupt: usize,
}

/// Decodes every intact record of a segment's bytes, skipping damage.
pub fn scan(data: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0;
    let mut in_damage = false;
    while pos + FRAME <= data.len() {
        let magic = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap());
        let ok = magic == MAGIC && {
            let len = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap());
            len <= MAX_BODY
                && pos + FRAME + len <= data.len()
                && {
                    let mut h = crc32fast::Hasher::new();
                    h.update(&data[pos + 4..pos + 8]);
                    h.update(&data[pos + FRAME..pos + FRAME + len]);
                    h.finalize() == crc
                }
                && match SpoolRecord::decode_body(&data[pos + FRAME..pos + FRAME + len]) {
                    Some(rec) => {
                        out.records.push(rec);
                        pos += FRAME + len;
                        true
                    }
                    None => false,
                }
        };
        if ok {
            in_damage = false;
        } else {
            // Count each damaged stretch once, then look for the next magic.
            if !in_damage {
                out.corrupt += 1;
                in_damage = true;
            }
            pos += 1;
        }
    }
    if pos < data.len() && !in_damage {
        out.corrupt += 1; // a torn tail shorter than a frame
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn rec(i: i64) -> SpoolRecord {
        SpoolRecord {
            ts_ms: 1_763_942_400_000 + i,
            key: format!("r-{i}").into_bytes(),
            headers: vec![("ce_id".into(), format!("id-{i}").into_bytes())],
            payload: format!("{{\"n\":{i}}}").into_bytes(),
        }
    }

    pub fn encode(recs: &[SpoolRecord]) -> Vec<u8> {
        let mut b = Vec::new();
        for r in recs {
            r.encode_into(&mut b);
        }
        b
    }

    #[test]
    fn round_trip() {
        let recs: Vec<_> = (0..50).map(rec).collect();
        let b = encode(&recs);
        assert_eq!(b.len(), recs.iter().map(|r| r.encoded_len()).sum::<usize>());
        assert_eq!(
            scan(&b),
            Scan {
                records: recs,
                corrupt: 0
            }
        );
    }

    #[test]
    fn torn_tail_keeps_every_intact_record() {
        let recs: Vec<_> = (0..10).map(rec).collect();
        let b = encode(&recs);
        for cut in 1..recs[9].encoded_len() {
            let s = scan(&b[..b.len() - cut]);
            assert_eq!(s.records, recs[..9], "cut {cut}");
            assert_eq!(s.corrupt, 1, "cut {cut}");
        }
    }

    #[test]
    fn a_flipped_byte_loses_only_its_record() {
        let recs: Vec<_> = (0..10).map(rec).collect();
        let b = encode(&recs);
        let start5: usize = recs[..5].iter().map(|r| r.encoded_len()).sum();
        for off in 0..recs[5].encoded_len() {
            let mut d = b.clone();
            d[start5 + off] ^= 0x40;
            let s = scan(&d);
            let mut want = recs.clone();
            want.remove(5);
            assert_eq!(s.records, want, "flip at {off}");
            assert_eq!(s.corrupt, 1);
        }
    }
}
