//! Human-friendly units in config files: durations ("500ms", "30s", "1d")
//! and byte sizes ("64KiB", "256MiB", "1GB", or a plain number of bytes).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration or size string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The value had no number in front.
    #[error("`{0}`: expected a number followed by a unit")]
    NoNumber(String),
    /// The unit suffix is not one we know.
    #[error("`{value}`: unknown unit `{unit}` (expected {expected})")]
    UnknownUnit {
        /// The whole value as written.
        value: String,
        /// The suffix that was not understood.
        unit: String,
        /// The units that are accepted.
        expected: &'static str,
    },
    /// The value does not fit.
    #[error("`{0}`: value too large")]
    Overflow(String),
}

/// A duration written as a number with a unit: `ms`, `s`, `m`, `h`, `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`; a bare `0` is zero.
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let value = text.trim();
        let (num, unit) = split_number(value)?;
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" | "" if num == 0 || !unit.is_empty() => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(UnitError::UnknownUnit {
                    value: value.to_string(),
                    unit: unit.to_string(),
                    expected: "ms, s, m, h or d",
                });
            }
        };
        let millis = num
            .checked_mul(millis_per_unit)
            .ok_or_else(|| UnitError::Overflow(value.to_string()))?;
        Ok(HumanDuration(Duration::from_millis(millis)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 86_400_000 == 0 && ms > 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms % 3_600_000 == 0 && ms > 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        HumanDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes, written as a number with an optional unit: `B`, `KB`,
/// `KiB`, `MB`, `MiB`, `GB`, `GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"64KiB"`, `"256MiB"`, `"1GB"`, `"1000"`.
    pub fn parse(text: &str) -> Result<Self, UnitError> {
        let value = text.trim();
        let (num, unit) = split_number(value)?;
        let factor: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "kib" => 1 << 10,
            "mb" | "m" => 1_000_000,
            "mib" => 1 << 20,
            "gb" | "g" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => {
                return Err(UnitError::UnknownUnit {
                    value: value.to_string(),
                    unit: unit.to_string(),
                    expected: "B, KB, KiB, MB, MiB, GB or GiB",
                });
            }
        };
        num.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| UnitError::Overflow(value.to_string()))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b >= 1 << 30 && b % (1 << 30) == 0 {
            write!(f, "{}GiB", b >> 30)
        } else if b >= 1 << 20 && b % (1 << 20) == 0 {
            write!(f, "{}MiB", b >> 20)
        } else if b >= 1 << 10 && b % (1 << 10) == 0 {
            write!(f, "{}KiB", b >> 10)
        } else {
            write!(f, "{b}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn split_number(value: &str) -> Result<(u64, &str), UnitError> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(UnitError::NoNumber(value.to_string()));
    }
    let num = value[..digits]
        .parse::<u64>()
        .map_err(|_| UnitError::Overflow(value.to_string()))?;
    Ok((num, value[digits..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            HumanDuration::parse("250ms").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            HumanDuration::parse("30s").unwrap().0,
            Duration::from_secs(30)
        );
        assert_eq!(
            HumanDuration::parse("5m").unwrap().0,
            Duration::from_secs(300)
        );
        assert_eq!(
            HumanDuration::parse("1d").unwrap().0,
            Duration::from_secs(86_400)
        );
        assert_eq!(HumanDuration::parse("0").unwrap().0, Duration::ZERO);
        assert!(
            HumanDuration::parse("30").is_err(),
            "a bare non-zero number is ambiguous"
        );
        assert!(HumanDuration::parse("1w").is_err());
        assert!(HumanDuration::parse("s").is_err());
        assert!(HumanDuration::parse("99999999999999999999d").is_err());
        assert_eq!(HumanDuration::parse("1d").unwrap().to_string(), "1d");
        assert_eq!(
            HumanDuration::parse("1500ms").unwrap().to_string(),
            "1500ms"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("64KiB").unwrap().0, 65_536);
        assert_eq!(ByteSize::parse("8 MiB").unwrap().0, 8 << 20);
        assert_eq!(ByteSize::parse("1GB").unwrap().0, 1_000_000_000);
        assert_eq!(ByteSize::parse("1000").unwrap().0, 1000);
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
    }
}
