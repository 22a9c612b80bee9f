//! Logging for the whole binary: `tracing` to stderr, filtered by
//! `RUST_LOG` (default: info for coxswain, warn for everything else).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,coxswain=info,coxswain_core=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
