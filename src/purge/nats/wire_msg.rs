//! The small messages beside the log: edges' heartbeats and per-record
//! acknowledgements, dry-run requests and answers, and the edge identity
//! kept in each durable consumer's description. Encoded like everything
//! else on the control plane, with `crate::wire`.

use serde::{Deserialize, Serialize};

use crate::purge::PurgeLogError;
use crate::purge::bus::EdgeInfo;

/// Marks the consumers that are edges (the description's prefix).
const EDGE_DESCRIPTION: &str = "edgecache edge ";

/// An edge's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Beat {
    /// Who.
    pub edge: EdgeInfo,
    /// Its last applied sequence.
    pub applied: u64,
}

/// An edge applied one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    /// The edge's id.
    pub edge_id: String,
    /// The record's sequence.
    pub seq: u64,
    /// Entries removed or marked stale.
    pub affected: u64,
}

/// Encodes a side message.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, PurgeLogError> {
    crate::wire::encode_body(value).map_err(|e| PurgeLogError::Encode(e.to_string()))
}

/// Decodes a side message; a bad one is logged and dropped.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    match crate::wire::decode_body(bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::debug!(error = %e, "NATS purge bus: dropping a malformed message");
            None
        }
    }
}

/// The description of an edge's durable consumer.
pub(crate) fn description_of_edge(edge: &EdgeInfo) -> String {
    let json = serde_json::to_string(edge).unwrap_or_default();
    format!("{EDGE_DESCRIPTION}{json}")
}

/// The edge behind a consumer description, if it is one.
pub(crate) fn edge_of_description(description: &str) -> Option<EdgeInfo> {
    serde_json::from_str(description.strip_prefix(EDGE_DESCRIPTION)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let edge = EdgeInfo {
            id: "e1".into(),
            region: "eu".into(),
            address: "127.0.0.1:1".into(),
        };
        let d = description_of_edge(&edge);
        assert_eq!(edge_of_description(&d), Some(edge.clone()));
        assert_eq!(edge_of_description("something else"), None);
        let beat = Beat { edge, applied: 3 };
        let bytes = encode(&beat).expect("encode");
        assert_eq!(decode::<Beat>(&bytes), Some(beat));
        assert_eq!(decode::<Report>(&[0xff, 0xff]), None);
    }
}
