//! Log setup shared by every binary: tracing to stderr, human-readable on a
//! terminal or JSON lines, filtered by `RUST_LOG` (default `info`, with
//! hickory-server at `warn`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `format` is `human` or `json`; anything
/// else falls back to human with a warning.
pub fn init(format: &str) {
    // hickory-server logs every DNS query at info: the lab's steering DNS
    // would flood the terminal.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
    if result.is_ok() && format != "json" && format != "human" {
        tracing::warn!(format, "unknown log format, using human");
    }
}
