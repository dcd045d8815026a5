//! The WAN emulator: a TCP proxy per link with delay, jitter and fault modes.
//!
//! A link listens on a loopback address and forwards each connection to its
//! upstream, delaying every chunk of data by a one-way delay (plus jitter) in
//! each direction, without reordering. Its [`Mode`] emulates faults: a
//! partition ([`Mode::Blackhole`]), a refusing peer ([`Mode::Refuse`]) or a
//! connection cut mid-response ([`Mode::ResetMidStream`]); a mode change
//! applies to open connections too. Links are driven in-process through a
//! [`LinkHandle`], or remotely through the admin HTTP API ([`serve_admin`],
//! [`AdminClient`]); `edgecache wan` ([`run`]) runs them as a process.

mod admin;
mod cli;
mod client;
mod error;
mod link;
mod mode;
mod pump;

pub use admin::serve_admin;
pub use cli::{LinkSpec, WanArgs, run, run_with};
pub use client::AdminClient;
pub use error::WanError;
pub use link::{Link, LinkConfig, LinkHandle, LinkState, LinkStats, MAX_DELAY};
pub use mode::Mode;
