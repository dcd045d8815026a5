//! Errors of the WAN emulator: every variant names the link or address at fault.

use std::net::SocketAddr;
use std::time::Duration;

/// Why a WAN emulator operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WanError {
    /// A link configuration was refused before anything was bound.
    #[error("link `{link}`: invalid configuration: {reason}")]
    InvalidConfig {
        /// The link's name.
        link: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The link's listener could not be bound.
    #[error("link `{link}`: cannot listen on {addr}: {source}")]
    Bind {
        /// The link's name.
        link: String,
        /// The requested listen address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A `NAME=LISTEN->UPSTREAM` link spec could not be parsed.
    #[error(
        "invalid link `{spec}`: {reason} (expected NAME=LISTEN->UPSTREAM, \
         e.g. origin=127.0.0.9:0->127.0.0.5:8080)"
    )]
    InvalidLinkSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A mode name could not be parsed.
    #[error(
        "invalid mode `{input}`: expected up, blackhole (or partitioned), refuse \
         or reset-mid-stream:BYTES"
    )]
    InvalidMode {
        /// The mode as given.
        input: String,
    },
    /// The admin API could not be reached.
    #[error("admin API at {addr}: cannot connect: {source}")]
    AdminConnect {
        /// The admin API's address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP exchange with the admin API failed.
    #[error("admin API at {addr}: {what}: HTTP error: {source}")]
    AdminHttp {
        /// The admin API's address.
        addr: SocketAddr,
        /// The request, e.g. `PUT /links/origin`.
        what: String,
        /// The HTTP error.
        source: hyper::Error,
    },
    /// The admin API did not answer in time.
    #[error("admin API at {addr}: {what}: no answer within {timeout:?}")]
    AdminTimeout {
        /// The admin API's address.
        addr: SocketAddr,
        /// The request, e.g. `PUT /links/origin`.
        what: String,
        /// How long the client waited.
        timeout: Duration,
    },
    /// The admin API answered with an error status (e.g. 404 unknown link).
    #[error("admin API at {addr}: {what}: status {status}: {message}")]
    AdminStatus {
        /// The admin API's address.
        addr: SocketAddr,
        /// The request, e.g. `PUT /links/origin`.
        what: String,
        /// The HTTP status code.
        status: u16,
        /// The error message from the response body.
        message: String,
    },
    /// The admin API's answer, or the request to send it, was malformed.
    #[error("admin API at {addr}: {what}: {message}")]
    AdminProtocol {
        /// The admin API's address.
        addr: SocketAddr,
        /// The request, e.g. `GET /links`.
        what: String,
        /// What is wrong.
        message: String,
    },
}
