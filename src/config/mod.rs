//! Configuration types shared by the nodes: the edge's TOML config file, its
//! routes (the per-route stale-versus-error policy) and the units it uses.

mod edge;
mod route;
mod tls;
mod units;

pub use edge::{
    AdminSettings, CacheSettings, ConfigError, ControlSettings, DnsSettings, EdgeConfig,
    HealthSettings, LimitSettings, OriginClientSettings, SetCookieSetting,
};
pub use route::{FailureKind, OnOriginFailure, Route, RouteTable};
pub use tls::{CertPair, TlsSettings, UNKEYED_HEADERS, host_allowed};
pub use units::{ByteSize, HumanDuration, UnitError};
