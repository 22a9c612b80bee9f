//! A small load test under plain `cargo test`: `coxswain load` on simulated
//! nodes (no Docker, no root), checking that every pod reaches Running and
//! that the reports are written and well formed. It asserts no timings:
//! figures and targets live in `benches/README.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const NODES: &str = "20";
const PODS: u64 = 1000;

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/load-test")
        .join(format!("small-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_small_load_runs_every_pod_and_writes_well_formed_reports() {
    let out = out_dir();
    let output = Command::new(env!("CARGO_BIN_EXE_coxswain"))
        .args(["load", "--nodes", NODES, "--pods", &PODS.to_string()])
        .args([
            "--replicas",
            "50",
            "--progress",
            "never",
            "--timeout",
            "240",
        ])
        .args(["--churn", "scale,delete"])
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running coxswain load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "coxswain load failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("pods running"),
        "no summary table:\n{stdout}"
    );

    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json written");
    let report: Value = serde_json::from_str(&text).expect("report.json is JSON");
    assert_eq!(report["pods_requested"], PODS);
    assert_eq!(report["pods_running"], PODS);
    assert_eq!(report["all_running"], true);
    assert!(report["seconds_to_all_running"].as_f64().unwrap() > 0.0);
    let startup = &report["startup_latency_ms"];
    for key in ["p50", "p90", "p99", "max"] {
        assert!(
            startup[key].is_number(),
            "startup_latency_ms.{key}: {startup}"
        );
    }
    assert!(startup["p50"].as_f64() <= startup["p99"].as_f64());
    assert!(startup["p99"].as_f64() <= startup["max"].as_f64());
    assert_eq!(startup["count"], PODS);
    assert!(report["rss_peak_bytes"].as_u64().unwrap() > 0);
    assert!(report["cpu_seconds"].as_f64().unwrap() > 0.0);
    let api = report["api_latency"].as_array().unwrap();
    assert!(
        api.iter()
            .any(|a| a["verb"] == "CREATE" && a["resource"] == "pods/binding"),
        "the scheduler's binds are timed: {api:?}"
    );
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["create", "scale-down", "scale-up", "delete"]);
    for step in report["steps"].as_array().unwrap() {
        assert_eq!(step["completed"], true, "{step}");
        assert!(step.get("error").is_none(), "{step}");
    }
    // Counted at the end, after the delete step: no pods are left.
    let pods_left = report["store_objects"]["pods"].as_u64().unwrap_or(0);
    assert_eq!(pods_left, 0, "store_objects: {}", report["store_objects"]);
    for key in [
        "scheduling_throughput_pods_per_s",
        "running_throughput_pods_per_s",
    ] {
        let t = &report[key];
        if t["span_s"].as_f64().unwrap() >= 1.0 {
            assert!(t["peak_1s"].as_f64() >= t["average"].as_f64(), "{key}: {t}");
        }
    }

    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg").count(), 3, "three plots");
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    // Self-contained: nothing to fetch.
    for external in ["src=", "href=", "<script", "@import"] {
        assert!(!html.contains(external), "report.html refers to {external}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
