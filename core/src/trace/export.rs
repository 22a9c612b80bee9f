//! Chrome trace event JSON (what Perfetto and `chrome://tracing` open) from
//! a pod's kernel events.
//!
//! Each container is a thread row of one process row (the pod); every event
//! is an instant event (`ph: "i"`) on its container's row, named after its
//! kind and carrying the whole event in `args`; a process's life from exec
//! to exit is a complete event (`ph: "X"`). Times are microseconds since the
//! Unix epoch, as the format wants microseconds.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{EventKind, TraceEvent};

/// The trace of `events` (one pod's, in time order) as a JSON document.
pub fn chrome_trace(pod: &str, events: &[TraceEvent]) -> Value {
    let mut rows: HashMap<String, u64> = HashMap::new();
    let mut out = vec![json!({
        "ph": "M", "name": "process_name", "pid": 1, "tid": 0,
        "args": {"name": format!("pod {pod}")},
    })];
    let mut started: HashMap<u32, (u64, String)> = HashMap::new();
    for event in events {
        let container = event
            .container
            .clone()
            .unwrap_or_else(|| "(runtime)".into());
        let next = rows.len() as u64 + 1;
        let tid = *rows.entry(container.clone()).or_insert_with(|| {
            out.push(json!({
                "ph": "M", "name": "thread_name", "pid": 1, "tid": next,
                "args": {"name": container},
            }));
            next
        });
        let ts = event.time_ns as f64 / 1000.0;
        let args = serde_json::to_value(event).unwrap_or(Value::Null);
        out.push(json!({
            "ph": "i", "s": "t", "name": event.kind.as_str(), "cat": "kernel",
            "pid": 1, "tid": tid, "ts": ts, "args": args,
        }));
        match event.kind {
            EventKind::Exec => {
                started.insert(event.tgid, (event.time_ns, event.name.clone()));
            }
            EventKind::Exit => {
                if let Some((start, name)) = started.remove(&event.tgid) {
                    out.push(json!({
                        "ph": "X", "name": name, "cat": "process", "pid": 1, "tid": tid,
                        "ts": start as f64 / 1000.0,
                        "dur": event.time_ns.saturating_sub(start) as f64 / 1000.0,
                        "args": {"pid": event.tgid, "exit_code": event.exit_code,
                                 "exit_signal": event.exit_signal},
                    }));
                }
            }
            _ => {}
        }
    }
    json!({ "traceEvents": out, "displayTimeUnit": "ms" })
}
