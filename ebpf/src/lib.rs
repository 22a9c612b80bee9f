//! eBPF pod tracing: probes written in C (CO-RE, compiled by clang in
//! `build.rs`), loaded and attached with aya, and the events they report.
//!
//! Contract: [`Probes::load`] attaches the probes or returns why it cannot
//! (a build without clang, no kernel BTF, no privileges); the caller logs
//! that once and works on without kernel events. Only tasks in the cgroups
//! and namespaces given to [`ProbeControl`], their descendants, and the
//! runtime's processes while a [`RuntimeWindow`] is open produce events.
//! Events are decoded into [`TraceEvent`], which the node agent attributes
//! to pods and containers and serves as JSON.

pub mod event;
pub mod host;
pub mod probes;

pub use event::{EventKind, Namespaces, TraceEvent};
pub use probes::{ProbeControl, ProbeError, Probes, RuntimeWindow};
