//! Criterion benchmarks live in `benches/`; figures are recorded in
//! `README.md` beside this crate. What the benchmarks and the measuring
//! binaries share: the objects they write.

use coxswain_core::store::Key;
use serde_json::{Value, json};

/// Pod number `i`, with `padding` bytes of annotation: about 1 KiB of JSON
/// with 400.
pub fn pod(i: usize, padding: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": format!("pod-{i}"), "namespace": "default",
                        "uid": format!("00000000-0000-4000-8000-{i:012}"),
                        "labels": {"app": "bench", "n": i.to_string()},
                        "annotations": {"bench/padding": "x".repeat(padding)}},
           "spec": {"nodeName": format!("node-{}", i % 100),
                    "containers": [{"name": "c", "image": "coxswain/web:0.1",
                                    "ports": [{"containerPort": 8080}],
                                    "resources": {"requests": {"cpu": "10m"}}}]},
           "status": {"phase": "Running", "podIP": format!("10.0.{}.{}", i / 250 % 250, i % 250)}})
}

/// The store key of pod number `i`.
pub fn key(i: usize) -> Key {
    Key::new("pods", "default", &format!("pod-{i}"))
}
