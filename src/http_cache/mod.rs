//! HTTP caching semantics for a shared cache (RFC 9111, RFC 9211, RFC 9213, RFC 5861).
//!
//! Pure functions and types, no I/O: directive parsing ([`cache_control`],
//! [`directives`]), storability ([`storable`]), freshness and age
//! ([`freshness`]), variants ([`vary`]), conditional requests
//! ([`conditional`]), 304 updates ([`update`]), invalidation
//! ([`invalidate`]), Cache-Status ([`cache_status`]) and ranges ([`range`]).

pub mod cache_control;
pub mod cache_status;
pub mod conditional;
pub mod directives;
pub mod freshness;
pub mod invalidate;
pub mod range;
pub mod storable;
pub mod update;
mod util;
pub mod vary;

#[cfg(test)]
mod robustness_tests;
