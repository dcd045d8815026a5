//! Node-to-node frames on the purge control connection: a version byte, a
//! big-endian u32 length, then a bincode body, decoded with a size limit.
//!
//! bincode stays inside this module (pinned at 2.0.1): swapping the codec is
//! a change to this one file.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::purge::{PurgeRecord, PurgeSelector};

/// The protocol version carried in every frame.
pub const WIRE_VERSION: u8 = 1;

/// The largest body accepted, in bytes.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer closed the connection cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// Reading or writing the socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The frame has a version this node does not speak.
    #[error("unsupported frame version {0} (this node speaks {WIRE_VERSION})")]
    Version(u8),
    /// The length prefix exceeds the limit.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// The body does not decode.
    #[error("malformed frame: {0}")]
    Decode(String),
    /// The frame does not encode.
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

/// Everything that travels on the control connection between the origin's
/// control listener and an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlFrame {
    /// Edge -> origin, first frame: who I am and what I have applied.
    Hello {
        /// The edge's id.
        edge_id: String,
        /// The edge's region.
        region: String,
        /// The edge's public address.
        public_addr: String,
        /// The last sequence number it applied (0: none).
        last_applied: u64,
        /// When the edge's cache began filling (ms since the epoch): with
        /// `last_applied == 0`, records issued before this cannot concern
        /// it and need not be sent.
        cache_since_ms: u64,
    },
    /// Origin -> edge, answer to Hello.
    Welcome {
        /// The newest sequence number in the log.
        head_seq: u64,
        /// The oldest sequence still in the log (after compaction).
        oldest_seq: u64,
    },
    /// Origin -> edge: a purge to apply, in order.
    Record(PurgeRecord),
    /// Origin -> edge: the edge is behind what the log still holds; drop the
    /// whole cache, then count `up_to_seq` as applied.
    ResetCache {
        /// The sequence number the reset stands for.
        up_to_seq: u64,
        /// Why.
        reason: String,
    },
    /// Edge -> origin: a record was applied.
    Applied {
        /// Its sequence number.
        seq: u64,
        /// Entries removed or marked stale.
        affected: u64,
    },
    /// Either way: the link is alive.
    Heartbeat {
        /// Sender's clock, ms since the epoch.
        at_ms: u64,
        /// Sender's view of the newest sequence (origin) or last applied (edge).
        seq: u64,
    },
    /// Origin -> edge: how many entries would this selector affect?
    DryRun {
        /// Correlates the answer.
        request: u64,
        /// The selector.
        selector: PurgeSelector,
    },
    /// Edge -> origin: the answer to a DryRun.
    DryRunResult {
        /// The request it answers.
        request: u64,
        /// Entries that would be affected.
        affected: u64,
    },
    /// Either way: a fatal problem, then the sender closes.
    Error {
        /// What went wrong.
        reason: String,
    },
}

impl ControlFrame {
    /// The variant's name, for logs and protocol errors.
    pub fn name(&self) -> &'static str {
        match self {
            ControlFrame::Hello { .. } => "Hello",
            ControlFrame::Welcome { .. } => "Welcome",
            ControlFrame::Record(_) => "Record",
            ControlFrame::ResetCache { .. } => "ResetCache",
            ControlFrame::Applied { .. } => "Applied",
            ControlFrame::Heartbeat { .. } => "Heartbeat",
            ControlFrame::DryRun { .. } => "DryRun",
            ControlFrame::DryRunResult { .. } => "DryRunResult",
            ControlFrame::Error { .. } => "Error",
        }
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes a value as one frame (header and body).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let body = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(WIRE_VERSION);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a frame body (without header).
pub fn decode_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WireError> {
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| WireError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(WireError::Decode(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(value)
}

/// Encodes a value without a frame header (for the purge log file).
pub fn encode_body<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| WireError::Encode(e.to_string()))
}

/// Reads one frame. A clean EOF before the header is `Closed`.
pub async fn read_frame<R, T>(reader: &mut R) -> Result<T, WireError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let mut header = [0u8; 5];
    match reader.read_exact(&mut header[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    if header[0] != WIRE_VERSION {
        return Err(WireError::Version(header[0]));
    }
    reader.read_exact(&mut header[1..]).await?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    decode_body(&body)
}

/// Writes one frame and flushes.
pub async fn write_frame<W, T>(writer: &mut W, value: &T) -> Result<(), WireError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = encode(value)?;
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let frame = ControlFrame::Record(PurgeRecord {
            id: uuid::Uuid::now_v7(),
            seq: 7,
            issued_at_ms: 1,
            selector: PurgeSelector::Tags(vec!["a".into()]),
            soft: true,
        });
        let bytes = encode(&frame).unwrap();
        let mut r = &bytes[..];
        let back: ControlFrame = read_frame(&mut r).await.unwrap();
        assert_eq!(back, frame);
    }

    #[tokio::test]
    async fn bad_frames_are_errors_not_panics() {
        let mut r: &[u8] = &[9, 0, 0, 0, 1, 0];
        assert!(matches!(
            read_frame::<_, ControlFrame>(&mut r).await,
            Err(WireError::Version(9))
        ));
        let mut r: &[u8] = &[WIRE_VERSION, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame::<_, ControlFrame>(&mut r).await,
            Err(WireError::TooLarge(_))
        ));
        let mut r: &[u8] = &[WIRE_VERSION, 0, 0, 0, 3, 200, 201, 202];
        assert!(matches!(
            read_frame::<_, ControlFrame>(&mut r).await,
            Err(WireError::Decode(_))
        ));
        let mut r: &[u8] = &[];
        assert!(matches!(
            read_frame::<_, ControlFrame>(&mut r).await,
            Err(WireError::Closed)
        ));
        let mut r: &[u8] = &[WIRE_VERSION, 0, 0];
        assert!(matches!(
            read_frame::<_, ControlFrame>(&mut r).await,
            Err(WireError::Io(_))
        ));
    }
}
