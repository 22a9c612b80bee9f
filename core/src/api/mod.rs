//! Resource types whose JSON is exactly Kubernetes', and what the API
//! machinery needs to know about each kind.
//!
//! Every kind implements [`Resource`]: its group, version, kind, plural and
//! scope, and access to its metadata. Serialising one of these types gives
//! the JSON the upstream apiserver would give for the same object (checked
//! against `k8s-openapi` in tests); fields that coxswain does not interpret
//! are kept as raw JSON under their upstream names so nothing a user sends is
//! lost.

pub mod apps;
pub mod coordination;
pub mod core;
pub mod meta;
pub mod quantity;
pub mod selector;

pub use apps::*;
pub use coordination::*;
pub use core::*;
pub use meta::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What the API machinery knows about a kind.
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// API group, "" for the core group.
    const GROUP: &'static str;
    const VERSION: &'static str;
    /// `group/version`, or just the version for the core group.
    const API_VERSION: &'static str;
    const KIND: &'static str;
    /// Lowercase plural used in URLs (`pods`).
    const PLURAL: &'static str;
    const NAMESPACED: bool;

    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// The object's name, "" when unset.
    fn name(&self) -> &str {
        self.meta().name()
    }

    /// The object's namespace, "" when unset or cluster-scoped.
    fn namespace(&self) -> &str {
        self.meta().namespace()
    }
}

/// Implements [`Resource`] for a struct with `metadata: ObjectMeta`.
#[macro_export]
macro_rules! impl_resource {
    ($ty:ty, $group:expr, $version:expr, $api_version:expr, $kind:expr, $plural:expr, $namespaced:expr) => {
        impl $crate::api::Resource for $ty {
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const API_VERSION: &'static str = $api_version;
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $namespaced;

            fn meta(&self) -> &$crate::api::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut $crate::api::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
