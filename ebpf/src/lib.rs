//! eBPF pod tracing: probes written in C and loaded with aya.
//!
//! This crate is a placeholder for the probes of issue 4; it reports, honestly,
//! that no probes are built yet so that the node agent can say so once and
//! carry on with the API-side timeline only.

/// Why kernel tracing is not available in this build.
pub fn unavailable_reason() -> &'static str {
    "eBPF probes are not part of this build yet"
}
