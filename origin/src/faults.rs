//! Fault injection for tests, set with `PUT /_fault`.

use std::sync::Mutex;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The injected fault; absent fields inject nothing, and fields combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Answer every request with this status and a short body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Wait this long before sending the response head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Declare the full Content-Length but abort after this many body bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<u64>,
}

/// Why a fault description was refused.
#[derive(Debug, Error)]
pub enum FaultError {
    /// The body is not a JSON fault description.
    #[error("invalid fault JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The status is not a final status code (200..=599).
    #[error("fault status must be between 200 and 599, got {0}")]
    Status(u16),
}

impl Fault {
    /// Parses and checks a JSON fault description such as `{"status": 503}`.
    pub fn from_json(body: &[u8]) -> Result<Fault, FaultError> {
        let fault: Fault = serde_json::from_slice(body)?;
        if let Some(code) = fault.status {
            if !(200..=599).contains(&code) {
                return Err(FaultError::Status(code));
            }
        }
        Ok(fault)
    }

    /// The injected status, if any.
    pub fn status_code(&self) -> Option<StatusCode> {
        self.status.and_then(|s| StatusCode::from_u16(s).ok())
    }

    /// The injected delay, if any.
    pub fn delay(&self) -> Option<Duration> {
        self.delay_ms.map(Duration::from_millis)
    }
}

/// The currently injected fault, shared by all connections.
#[derive(Debug, Default)]
pub struct Faults(Mutex<Fault>);

impl Faults {
    /// The fault in force now.
    pub fn current(&self) -> Fault {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the fault in force (`Fault::default()` clears it).
    pub fn set(&self, fault: Fault) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_combines_fields() {
        let f = Fault::from_json(br#"{"status": 503, "delay_ms": 10}"#).unwrap();
        assert_eq!(f.status_code(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(f.delay(), Some(Duration::from_millis(10)));
        assert_eq!(Fault::from_json(b"{}").unwrap(), Fault::default());
        assert!(Fault::from_json(br#"{"status": 99}"#).is_err());
        assert!(Fault::from_json(br#"{"bogus": 1}"#).is_err());
    }
}
