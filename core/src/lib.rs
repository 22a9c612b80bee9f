//! coxswain's libraries, one module per room of the cluster.
//!
//! Layers, from the bottom: `api` (types without IO), `store` (records,
//! revisions, watch), `apiserver` (HTTP over the store), `client` (the one way
//! every component talks to the cluster), then the components built on the
//! client: `controllers`, `scheduler`, `kubelet`.

pub mod api;
pub mod apiserver;
pub mod client;
pub mod controllers;
pub mod kubelet;
pub mod scheduler;
pub mod store;
pub mod trace;

/// The Kubernetes version whose API coxswain serves.
pub const KUBERNETES_VERSION: &str = "v1.35.0";

/// The version components report (kubelet version, `/version`).
pub const COXSWAIN_VERSION: &str = concat!("v1.35.0+coxswain.", env!("CARGO_PKG_VERSION"));
