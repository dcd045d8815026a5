//! edgecache: the shared library of a geo-replicated CDN edge cache.
//!
//! HTTP cache semantics (RFC 9111), cache keys, configuration, the WAN
//! emulator, and the `edgecache` command's subcommands live here so that the
//! `edge` and `origin` nodes and the tests can share them.

pub mod bench;
pub mod cache_key;
pub mod config;
pub mod http_cache;
pub mod lab;
pub mod logging;
pub mod probe;
pub mod purge;
pub mod purge_cli;
pub mod signals;
pub mod steering;
pub mod topology;
pub mod wan;
pub mod wire;
