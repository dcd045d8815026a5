//! The on-disk format of the built-in purge log, and the replay scan.
//!
//! The file is a sequence of entries, each a big-endian u32 body length, the
//! body (a bincode-encoded [`LogEntry`], via `crate::wire`), and a
//! big-endian CRC32 of the body. The first entry is always a
//! [`LogEntry::Header`] carrying the base sequence (the last sequence folded
//! away by compaction), so numbering continues after compaction.

use serde::{Deserialize, Serialize};

use super::PurgeRecord;
use super::log::PurgeLogError;
use crate::wire::{self, MAX_FRAME_BYTES};

/// Version of the file layout, in the header.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Bytes around each body: length prefix and checksum.
const OVERHEAD: usize = 8;

/// One entry of the log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LogEntry {
    /// First entry of every file.
    Header {
        /// [`FORMAT_VERSION`].
        format: u32,
        /// The last sequence number no longer in the file (0: none folded).
        base_seq: u64,
        /// When this file was written, ms since the epoch.
        created_ms: u64,
    },
    /// A purge.
    Record(PurgeRecord),
}

/// Encodes one entry: length, body, CRC32.
pub(crate) fn encode_entry(entry: &LogEntry) -> Result<Vec<u8>, PurgeLogError> {
    let body = wire::encode_body(entry).map_err(|e| PurgeLogError::Encode(e.to_string()))?;
    if body.is_empty() || body.len() > MAX_FRAME_BYTES {
        return Err(PurgeLogError::Encode(format!(
            "entry of {} bytes is outside 1..={MAX_FRAME_BYTES}",
            body.len()
        )));
    }
    let len = u32::try_from(body.len()).expect("bounded by MAX_FRAME_BYTES");
    let mut out = Vec::with_capacity(body.len() + OVERHEAD);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    Ok(out)
}

/// A torn tail found by [`scan`]: an incomplete or damaged last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TornTail {
    /// Offset where the good prefix ends (the file is cut here).
    pub offset: u64,
    /// Bytes after it.
    pub bytes: u64,
    /// What was wrong.
    pub reason: String,
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// From the header (0 when there is none yet).
    pub base_seq: u64,
    /// Whether the good prefix holds a header.
    pub has_header: bool,
    /// The records, dense from `base_seq + 1`.
    pub records: Vec<PurgeRecord>,
    /// Length of the good prefix.
    pub good_len: u64,
    /// A torn tail to cut, if any.
    pub torn: Option<TornTail>,
}

/// Why one entry could not be read.
enum Bad {
    /// Incomplete or damaged, and reaching the end of the file.
    Torn(String),
    /// Damaged with more data after it.
    Corrupt(String),
}

/// Reads the entry at the start of `rest`: the entry and its length.
fn parse_one(rest: &[u8]) -> Result<(LogEntry, usize), Bad> {
    let Some(prefix) = rest.get(..4) else {
        return Err(Bad::Torn(format!(
            "short length prefix ({} bytes)",
            rest.len()
        )));
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let total = len.saturating_add(OVERHEAD);
    if total > rest.len() {
        return Err(Bad::Torn(format!(
            "entry of {len} bytes does not fit in the {} bytes left",
            rest.len()
        )));
    }
    if len == 0 || len > MAX_FRAME_BYTES {
        return Err(Bad::Corrupt(format!("implausible entry length {len}")));
    }
    let body = &rest[4..4 + len];
    let crc = &rest[4 + len..total];
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != stored {
        let reason = "checksum mismatch".to_string();
        return Err(if total == rest.len() {
            Bad::Torn(format!("{reason} on the last entry"))
        } else {
            Bad::Corrupt(reason)
        });
    }
    let entry = wire::decode_body::<LogEntry>(body)
        .map_err(|e| Bad::Corrupt(format!("undecodable entry: {e}")))?;
    Ok((entry, total))
}

/// Replays a whole log file. A damaged end (short length, short body, bad
/// checksum on the last entry, or a tail of zero bytes) is reported as
/// [`Scanned::torn`]; damage followed by more data is an error naming the
/// offset, and so are a missing header and a sequence gap.
pub(crate) fn scan(bytes: &[u8], location: &str) -> Result<Scanned, PurgeLogError> {
    let corrupt = |offset: usize, reason: String| PurgeLogError::Corrupt {
        location: location.to_string(),
        offset: offset as u64,
        reason,
    };
    let mut scanned = Scanned {
        base_seq: 0,
        has_header: false,
        records: Vec::new(),
        good_len: 0,
        torn: None,
    };
    let mut offset = 0usize;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let (entry, used) = match parse_one(rest) {
            Ok(parsed) => parsed,
            Err(Bad::Torn(reason)) => {
                scanned.torn = Some(torn(offset, rest.len(), reason));
                break;
            }
            Err(Bad::Corrupt(reason)) if rest.iter().all(|&b| b == 0) => {
                let reason = format!("zero-filled tail ({reason})");
                scanned.torn = Some(torn(offset, rest.len(), reason));
                break;
            }
            Err(Bad::Corrupt(reason)) => return Err(corrupt(offset, reason)),
        };
        match entry {
            LogEntry::Header {
                format, base_seq, ..
            } => {
                if offset != 0 {
                    return Err(corrupt(offset, "a header after the start".into()));
                }
                if format != FORMAT_VERSION {
                    return Err(corrupt(
                        offset,
                        format!("format {format}, this build reads {FORMAT_VERSION}"),
                    ));
                }
                scanned.has_header = true;
                scanned.base_seq = base_seq;
            }
            LogEntry::Record(record) => {
                if !scanned.has_header {
                    return Err(corrupt(offset, "no header before the first record".into()));
                }
                let expected = scanned.base_seq + scanned.records.len() as u64 + 1;
                if record.seq != expected {
                    return Err(corrupt(
                        offset,
                        format!("sequence {} where {expected} was expected", record.seq),
                    ));
                }
                scanned.records.push(record);
            }
        }
        offset += used;
        scanned.good_len = offset as u64;
    }
    Ok(scanned)
}

fn torn(offset: usize, bytes: usize, reason: String) -> TornTail {
    TornTail {
        offset: offset as u64,
        bytes: bytes as u64,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purge::PurgeSelector;

    fn record(seq: u64) -> LogEntry {
        LogEntry::Record(PurgeRecord {
            id: uuid::Uuid::now_v7(),
            seq,
            issued_at_ms: seq,
            selector: PurgeSelector::Urls(vec![format!("http://x/{seq}")]),
            soft: false,
        })
    }

    fn file(base: u64, seqs: &[u64]) -> Vec<u8> {
        let mut out = encode_entry(&LogEntry::Header {
            format: FORMAT_VERSION,
            base_seq: base,
            created_ms: 0,
        })
        .unwrap();
        for &s in seqs {
            out.extend(encode_entry(&record(s)).unwrap());
        }
        out
    }

    #[test]
    fn clean_file_replays() {
        let bytes = file(4, &[5, 6, 7]);
        let s = scan(&bytes, "t").unwrap();
        assert_eq!(s.base_seq, 4);
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.good_len, bytes.len() as u64);
        assert!(s.torn.is_none());
        assert!(!scan(&[], "t").unwrap().has_header);
    }

    #[test]
    fn every_truncation_is_a_torn_tail() {
        let full = file(0, &[1, 2]);
        let two = file(0, &[1]).len();
        for cut in two + 1..full.len() {
            let s = scan(&full[..cut], "t").unwrap();
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.good_len, two as u64);
            assert_eq!(s.torn.unwrap().bytes, (cut - two) as u64);
        }
    }

    #[test]
    fn zero_tail_is_torn_and_middle_damage_is_an_error() {
        let mut bytes = file(0, &[1]);
        let good = bytes.len();
        bytes.extend([0u8; 32]);
        let s = scan(&bytes, "t").unwrap();
        assert_eq!(s.good_len, good as u64);

        let mut bytes = file(0, &[1, 2]);
        let at = file(0, &[]).len() + 6;
        bytes[at] ^= 0xff;
        let err = scan(&bytes, "t").unwrap_err().to_string();
        assert!(err.contains("offset"), "{err}");
    }

    #[test]
    fn gaps_and_missing_headers_are_errors() {
        let mut bytes = file(0, &[1]);
        bytes.extend(encode_entry(&record(3)).unwrap());
        assert!(scan(&bytes, "t").is_err());
        let bytes = encode_entry(&record(1)).unwrap();
        assert!(scan(&bytes, "t").is_err());
    }
}
