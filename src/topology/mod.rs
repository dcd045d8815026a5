//! The lab's geography: regions with their client subnets and edges, the
//! round-trip time between each pair of regions, each region's shield, and
//! the origin's region. Read from a TOML file, or the built-in default
//! (`default.toml`: origin in us-east, three regions with two edges each).

mod cidr;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use cidr::{CidrError, Ipv4Cidr};

/// The built-in topology, as TOML.
pub const DEFAULT_TOPOLOGY: &str = include_str!("default.toml");

/// The name of the origin node; no edge or region may use it.
pub const ORIGIN: &str = "origin";

/// Most regions a topology may have (the lab gives each a /24).
pub const MAX_REGIONS: usize = 50;

/// Most edges a region may have.
pub const MAX_EDGES_PER_REGION: usize = 40;

/// Largest round-trip time accepted, in milliseconds.
pub const MAX_RTT_MS: u32 = 10_000;

/// Why a topology was refused. Validation errors name the key.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("{path}: cannot read the topology: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Malformed TOML, an unknown key or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and key).
        message: String,
    },
    /// A value that parsed but makes no sense.
    #[error("{path}: `{key}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key, e.g. `regions[1].shield`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// A region: where its clients come from and which edges serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Region name, e.g. `eu-west`.
    pub name: String,
    /// Source subnet of the region's clients (a loopback CIDR); the steering
    /// DNS tells regions apart by it.
    pub clients: Ipv4Cidr,
    /// Names of the region's edges.
    pub edges: Vec<String>,
    /// The edge the others fill from (tiered cache); none: every edge of
    /// the region fills from the origin.
    #[serde(default)]
    pub shield: Option<String>,
}

/// A whole topology. Build it with [`Topology::parse`], [`Topology::load`]
/// or [`Topology::builtin`], which validate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The name the steering DNS is authoritative for.
    #[serde(default = "default_cdn_name")]
    pub cdn_name: String,
    /// Region of the origin.
    pub origin_region: String,
    /// Loopback /16 holding the lab's nodes, links, DNS and control API.
    #[serde(default = "default_subnet")]
    pub subnet: Ipv4Cidr,
    /// Round trip between two points of one region, in milliseconds.
    #[serde(default = "default_intra_rtt")]
    pub intra_region_rtt_ms: u32,
    /// The regions, nearest-first order is computed from `rtt_ms`.
    pub regions: Vec<Region>,
    /// Round trip between regions: `"a/b" = ms`, one entry per pair.
    pub rtt_ms: BTreeMap<String, u32>,
}

fn default_cdn_name() -> String {
    "cdn.edgecache.test".to_string()
}

fn default_subnet() -> Ipv4Cidr {
    Ipv4Cidr::new(Ipv4Addr::new(127, 0, 0, 0), 16).unwrap_or_else(|_| unreachable!())
}

fn default_intra_rtt() -> u32 {
    2
}

/// Names of regions and nodes: what a WAN link name allows, minus dots.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

impl Topology {
    /// The built-in topology.
    pub fn builtin() -> Topology {
        match Topology::parse(DEFAULT_TOPOLOGY, Path::new("<built-in>")) {
            Ok(t) => t,
            // The built-in text is checked by a unit test.
            Err(e) => unreachable!("built-in topology is invalid: {e}"),
        }
    }

    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Topology::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Topology, TopologyError> {
        let topology: Topology = toml::from_str(text).map_err(|e| TopologyError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        topology.validate(path)?;
        Ok(topology)
    }

    /// Checks the values; errors name the offending key.
    pub fn validate(&self, path: &Path) -> Result<(), TopologyError> {
        let invalid = |key: String, reason: String| TopologyError::Invalid {
            path: path.to_path_buf(),
            key,
            reason,
        };
        if self.cdn_name.is_empty()
            || self.cdn_name.len() > 200
            || !self.cdn_name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        {
            return Err(invalid(
                "cdn_name".into(),
                format!("`{}` is not a DNS name", self.cdn_name),
            ));
        }
        if self.subnet.prefix() != 16 || self.subnet.base().octets()[0] != 127 {
            return Err(invalid(
                "subnet".into(),
                format!("{} must be a /16 inside 127.0.0.0/8", self.subnet),
            ));
        }
        if self.intra_region_rtt_ms > MAX_RTT_MS {
            return Err(invalid(
                "intra_region_rtt_ms".into(),
                format!("must be at most {MAX_RTT_MS}"),
            ));
        }
        if self.regions.is_empty() || self.regions.len() > MAX_REGIONS {
            return Err(invalid(
                "regions".into(),
                format!("expected 1 to {MAX_REGIONS} regions"),
            ));
        }
        let mut names: Vec<&str> = vec![ORIGIN];
        for (i, region) in self.regions.iter().enumerate() {
            let key = |k: &str| format!("regions[{i}].{k}");
            if !valid_name(&region.name) {
                return Err(invalid(
                    key("name"),
                    format!("`{}`: use 1 to 40 of [A-Za-z0-9_-]", region.name),
                ));
            }
            if names.contains(&region.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("`{}` is used twice", region.name),
                ));
            }
            names.push(&region.name);
            if region.clients.base().octets()[0] != 127 {
                return Err(invalid(
                    key("clients"),
                    format!("{} is not inside 127.0.0.0/8", region.clients),
                ));
            }
            if let Some(other) = self.regions[..i]
                .iter()
                .find(|r| r.clients.overlaps(&region.clients))
            {
                return Err(invalid(
                    key("clients"),
                    format!("{} overlaps the clients of {}", region.clients, other.name),
                ));
            }
            if region.edges.is_empty() || region.edges.len() > MAX_EDGES_PER_REGION {
                return Err(invalid(
                    key("edges"),
                    format!("expected 1 to {MAX_EDGES_PER_REGION} edges"),
                ));
            }
            for edge in &region.edges {
                if !valid_name(edge) {
                    return Err(invalid(
                        key("edges"),
                        format!("`{edge}`: use 1 to 40 of [A-Za-z0-9_-]"),
                    ));
                }
                if names.contains(&edge.as_str()) {
                    return Err(invalid(key("edges"), format!("`{edge}` is used twice")));
                }
                names.push(edge);
            }
            if let Some(shield) = &region.shield {
                if !region.edges.contains(shield) {
                    return Err(invalid(
                        key("shield"),
                        format!("`{shield}` is not an edge of {}", region.name),
                    ));
                }
            }
        }
        if self.region(&self.origin_region).is_none() {
            return Err(invalid(
                "origin_region".into(),
                format!("`{}` is not a region", self.origin_region),
            ));
        }
        self.validate_rtts(&invalid)
    }

    fn validate_rtts(
        &self,
        invalid: &dyn Fn(String, String) -> TopologyError,
    ) -> Result<(), TopologyError> {
        for (pair, ms) in &self.rtt_ms {
            let key = format!("rtt_ms.\"{pair}\"");
            let Some((a, b)) = pair.split_once('/') else {
                return Err(invalid(key, "expected \"REGION/REGION\"".into()));
            };
            for r in [a, b] {
                if self.region(r).is_none() {
                    return Err(invalid(key, format!("`{r}` is not a region")));
                }
            }
            if *ms > MAX_RTT_MS {
                return Err(invalid(key, format!("must be at most {MAX_RTT_MS}")));
            }
            let reverse = format!("{b}/{a}");
            if a != b && self.rtt_ms.contains_key(&reverse) {
                return Err(invalid(key, format!("also given as \"{reverse}\"")));
            }
        }
        for (i, a) in self.regions.iter().enumerate() {
            for b in &self.regions[i + 1..] {
                if self.rtt_ms(&a.name, &b.name).is_none() {
                    return Err(invalid(
                        format!("rtt_ms.\"{}/{}\"", a.name, b.name),
                        "missing: every pair of regions needs a round-trip time".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The index of region `name` in `regions`.
    pub fn region_index(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.name == name)
    }

    /// The region holding edge `node`, or the origin's region for the
    /// origin.
    pub fn region_of_node(&self, node: &str) -> Option<&Region> {
        if node == ORIGIN {
            return self.region(&self.origin_region);
        }
        self.regions
            .iter()
            .find(|r| r.edges.iter().any(|e| e == node))
    }

    /// The region whose client subnet holds `ip`.
    pub fn region_of_client(&self, ip: Ipv4Addr) -> Option<&Region> {
        self.regions.iter().find(|r| r.clients.contains(ip))
    }

    /// Round trip between regions `a` and `b` in milliseconds (the
    /// intra-region RTT when `a == b`, unless given as `"a/a"`).
    pub fn rtt_ms(&self, a: &str, b: &str) -> Option<u32> {
        self.rtt_ms
            .get(&format!("{a}/{b}"))
            .or_else(|| self.rtt_ms.get(&format!("{b}/{a}")))
            .copied()
            .or_else(|| (a == b).then_some(self.intra_region_rtt_ms))
    }

    /// Every region with its RTT from `from`, nearest first (ties keep the
    /// file's order).
    pub fn regions_by_distance(&self, from: &str) -> Vec<(&Region, u32)> {
        let mut out: Vec<(&Region, u32)> = self
            .regions
            .iter()
            .map(|r| (r, self.rtt_ms(from, &r.name).unwrap_or(u32::MAX)))
            .collect();
        out.sort_by_key(|(_, ms)| *ms);
        out
    }

    /// Every edge name, region by region.
    pub fn edges(&self) -> impl Iterator<Item = (&Region, &str)> {
        self.regions
            .iter()
            .flat_map(|r| r.edges.iter().map(move |e| (r, e.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Topology, TopologyError> {
        Topology::parse(text, Path::new("topo.toml"))
    }

    const SMALL: &str = r#"
origin_region = "a"
[[regions]]
name = "a"
clients = "127.9.1.0/24"
edges = ["a1", "a2"]
shield = "a1"
[[regions]]
name = "b"
clients = "127.9.2.0/24"
edges = ["b1"]
[rtt_ms]
"a/b" = 40
"#;

    #[test]
    fn builtin_is_valid() {
        let t = Topology::builtin();
        assert_eq!(t.regions.len(), 3);
        assert_eq!(t.origin_region, "us-east");
        assert_eq!(t.rtt_ms("eu-west", "us-east"), Some(75));
        assert_eq!(t.rtt_ms("ap-south", "ap-south"), Some(2));
        let order: Vec<&str> = t
            .regions_by_distance("eu-west")
            .iter()
            .map(|(r, _)| r.name.as_str())
            .collect();
        assert_eq!(order, ["eu-west", "us-east", "ap-south"]);
        assert_eq!(
            t.region_of_client(Ipv4Addr::new(127, 0, 3, 9))
                .map(|r| r.name.as_str()),
            Some("ap-south")
        );
        assert_eq!(t.edges().count(), 6);
    }

    #[test]
    fn small_topology_parses() {
        let t = parse(SMALL).unwrap();
        assert_eq!(t.cdn_name, "cdn.edgecache.test");
        assert_eq!(t.region_of_node("b1").map(|r| r.name.as_str()), Some("b"));
        assert_eq!(t.region_of_node(ORIGIN).map(|r| r.name.as_str()), Some("a"));
    }

    #[test]
    fn errors_name_the_key() {
        for (from, to, key) in [
            ("shield = \"a1\"", "shield = \"b1\"", "regions[0].shield"),
            ("\"a/b\" = 40", "\"a/c\" = 40", "rtt_ms.\"a/c\""),
            ("\"a/b\" = 40", "\"a/a\" = 1", "rtt_ms.\"a/b\""),
            ("127.9.2.0/24", "127.9.1.0/25", "regions[1].clients"),
            (
                "origin_region = \"a\"",
                "origin_region = \"z\"",
                "origin_region",
            ),
            ("edges = [\"b1\"]", "edges = [\"a1\"]", "regions[1].edges"),
            ("edges = [\"b1\"]", "edges = []", "regions[1].edges"),
            ("name = \"b\"", "name = \"origin\"", "regions[1].name"),
        ] {
            let text = SMALL.replace(from, to);
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
        }
        let err = parse(&SMALL.replace("origin_region", "origin_regio"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("origin_regio"), "{err}");
    }
}
