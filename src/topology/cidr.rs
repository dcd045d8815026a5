//! IPv4 CIDR blocks (`127.0.1.0/24`), as the topology uses them for client
//! subnets and the lab's address space.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a CIDR block did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an IPv4 CIDR block like 127.0.1.0/24: {reason}")]
pub struct CidrError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// An IPv4 network: a base address with its host bits cleared, and a prefix
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    base: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network `base/prefix`; host bits of `base` must be zero.
    pub fn new(base: Ipv4Addr, prefix: u8) -> Result<Ipv4Cidr, CidrError> {
        let error = |reason| CidrError {
            text: format!("{base}/{prefix}"),
            reason,
        };
        if prefix > 32 {
            return Err(error("the prefix length is above 32"));
        }
        if u32::from(base) & !mask(prefix) != 0 {
            return Err(error("the address has host bits set"));
        }
        Ok(Ipv4Cidr { base, prefix })
    }

    /// The first address of the network.
    pub fn base(&self) -> Ipv4Addr {
        self.base
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.base)
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// The address at `offset` from the base, if still inside the network.
    pub fn nth(&self, offset: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        if u64::from(offset) >= size {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.base).wrapping_add(offset)))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |reason| CidrError {
            text: s.to_string(),
            reason,
        };
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(|| error("no `/`"))?;
        let base: Ipv4Addr = ip.parse().map_err(|_| error("bad IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| error("bad prefix length"))?;
        Ipv4Cidr::new(base, prefix).map_err(|e| error(e.reason))
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_contains() {
        let c: Ipv4Cidr = "127.0.1.0/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(127, 0, 1, 77)));
        assert!(!c.contains(Ipv4Addr::new(127, 0, 2, 1)));
        assert_eq!(c.nth(5), Some(Ipv4Addr::new(127, 0, 1, 5)));
        assert_eq!(c.nth(256), None);
        assert_eq!(c.to_string(), "127.0.1.0/24");
        let big: Ipv4Cidr = "127.0.0.0/16".parse().unwrap();
        assert!(big.overlaps(&c) && c.overlaps(&big));
        assert!(!c.overlaps(&"127.0.2.0/24".parse().unwrap()));
    }

    #[test]
    fn refuses_bad_blocks() {
        for bad in ["127.0.1.1/24", "127.0.1.0", "127.0.1.0/33", "x/8"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }
}
