//! The fault mode of a link: up, blackholed, refusing, or resetting mid-stream.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::WanError;

/// What a link does with its connections. A change applies to new and open
/// connections alike.
///
/// As JSON it is internally tagged by `mode`: `{"mode":"up"}`,
/// `{"mode":"blackhole"}` (alias `partitioned`), `{"mode":"refuse"}`,
/// `{"mode":"reset-mid-stream","after_bytes":100}`. As text (command line) it
/// is `up`, `blackhole`, `partitioned`, `refuse` or `reset-mid-stream:100`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Mode {
    /// Forward both ways, after the link's delay.
    Up,
    /// A partition: accept connections, never forward or answer, hold them
    /// open. Data already read stays held and is delivered once the link is
    /// up again.
    #[serde(alias = "partitioned")]
    Blackhole,
    /// Reset connections (RST): new ones right after accepting, open ones at
    /// once.
    Refuse,
    /// Forward, then reset both sides once `after_bytes` bytes have been
    /// delivered upstream-to-client on a connection since the mode was set.
    ResetMidStream {
        /// Bytes delivered to the client before the reset.
        after_bytes: u64,
    },
}

impl Mode {
    /// Whether data flows in this mode (possibly until a reset).
    pub fn forwards(self) -> bool {
        matches!(self, Mode::Up | Mode::ResetMidStream { .. })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Up => f.write_str("up"),
            Mode::Blackhole => f.write_str("blackhole"),
            Mode::Refuse => f.write_str("refuse"),
            Mode::ResetMidStream { after_bytes } => write!(f, "reset-mid-stream:{after_bytes}"),
        }
    }
}

impl FromStr for Mode {
    type Err = WanError;

    /// Parses `up`, `blackhole`, `partitioned`, `refuse` or
    /// `reset-mid-stream:N` (also `reset-mid-stream=N`), ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || WanError::InvalidMode {
            input: s.to_string(),
        };
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "up" => return Ok(Mode::Up),
            "blackhole" | "partitioned" => return Ok(Mode::Blackhole),
            "refuse" => return Ok(Mode::Refuse),
            _ => {}
        }
        let bytes = lower
            .strip_prefix("reset-mid-stream")
            .and_then(|rest| rest.strip_prefix(':').or_else(|| rest.strip_prefix('=')))
            .ok_or_else(invalid)?;
        let after_bytes = bytes.parse::<u64>().map_err(|_| invalid())?;
        Ok(Mode::ResetMidStream { after_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        for mode in [
            Mode::Up,
            Mode::Blackhole,
            Mode::Refuse,
            Mode::ResetMidStream { after_bytes: 100 },
        ] {
            assert_eq!(mode.to_string().parse::<Mode>().unwrap(), mode);
        }
        assert_eq!("partitioned".parse::<Mode>().unwrap(), Mode::Blackhole);
        assert_eq!(" UP ".parse::<Mode>().unwrap(), Mode::Up);
        assert_eq!(
            "reset-mid-stream=7".parse::<Mode>().unwrap(),
            Mode::ResetMidStream { after_bytes: 7 }
        );
    }

    #[test]
    fn text_rejects_garbage() {
        for bad in [
            "",
            "down",
            "reset-mid-stream",
            "reset-mid-stream:",
            "reset-mid-stream:-1",
            "upx",
        ] {
            let err = bad.parse::<Mode>().unwrap_err();
            assert!(err.to_string().contains("expected up"), "{bad}: {err}");
        }
    }

    #[test]
    fn json_round_trip() {
        for mode in [
            Mode::Up,
            Mode::Blackhole,
            Mode::Refuse,
            Mode::ResetMidStream { after_bytes: 100 },
        ] {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(serde_json::from_str::<Mode>(&json).unwrap(), mode, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Mode::ResetMidStream { after_bytes: 100 }).unwrap(),
            r#"{"mode":"reset-mid-stream","after_bytes":100}"#
        );
        assert_eq!(
            serde_json::to_string(&Mode::Up).unwrap(),
            r#"{"mode":"up"}"#
        );
    }

    #[test]
    fn json_alias_and_errors() {
        let m: Mode = serde_json::from_str(r#"{"mode":"partitioned"}"#).unwrap();
        assert_eq!(m, Mode::Blackhole);
        assert!(serde_json::from_str::<Mode>(r#"{"mode":"reset-mid-stream"}"#).is_err());
        assert!(serde_json::from_str::<Mode>(r#"{"mode":"bogus"}"#).is_err());
        assert!(serde_json::from_str::<Mode>(r#""up""#).is_err());
    }
}
