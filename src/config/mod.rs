//! Configuration types shared by the nodes: the edge's TOML config file, its
//! routes (the per-route stale-versus-error policy) and the units it uses.

mod edge;
mod route;
mod units;

pub use edge::{
    CacheSettings, ConfigError, DnsSettings, EdgeConfig, HealthSettings, LimitSettings,
    OriginClientSettings, SetCookieSetting,
};
pub use route::{FailureKind, OnOriginFailure, Route, RouteTable};
pub use units::{ByteSize, HumanDuration, UnitError};
