//! Turning what a load test saw into figures: percentiles, throughput,
//! process usage; then the summary table, `report.json` and `report.html`.
//!
//! `report.json` always has `pods_requested`, `pods_running`,
//! `seconds_to_all_running` (null when not all pods ran),
//! `startup_latency_ms` (`p50`, `p90`, `p99`, `max`: creation to Running, as
//! the watch saw them) and `rss_peak_bytes`; the rest is described in
//! `benches/README.md`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::html;
use super::tracker::{Sample, TrackerState};

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles; all zero for no values.
    pub fn of(mut values: Vec<f64>) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let index = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[index]
        };
        Percentiles {
            count: values.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: values[values.len() - 1],
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "p50": round(self.p50),
            "p90": round(self.p90),
            "p99": round(self.p99),
            "max": round(self.max),
        })
    }
}

/// Latency of one verb on one resource.
#[derive(Clone, Debug)]
pub struct ApiLatency {
    pub verb: String,
    pub resource: String,
    pub stats: Percentiles,
}

/// Resident memory and CPU time of this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessUsage {
    pub rss_peak_bytes: u64,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessUsage {
    /// Reads `/proc/self/status` (VmHWM, VmRSS) and `/proc/self/stat`
    /// (utime + stime, in USER_HZ = 100 ticks a second on Linux).
    pub fn read() -> ProcessUsage {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at 3.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime is field 14 and stime 15 of the whole line: 11 and 12 here.
        ProcessUsage {
            rss_peak_bytes: kib("VmHWM:"),
            rss_bytes: kib("VmRSS:"),
            cpu_seconds: (ticks(11) + ticks(12)) as f64 / 100.0,
        }
    }
}

/// How one step of the workload went.
#[derive(Clone, Debug)]
pub struct StepOutcome {
    pub name: String,
    /// Seconds since the tracker started.
    pub started: f64,
    pub seconds: f64,
    pub completed: bool,
}

/// Everything a report is made of.
pub struct Inputs<'a> {
    pub config: Value,
    pub pods_requested: usize,
    /// When the first create was sent, in tracker seconds.
    pub first_create: f64,
    /// When every requested pod was Running, in tracker seconds.
    pub all_running_at: Option<f64>,
    /// Most pods of the first step seen Running at once.
    pub pods_running: usize,
    pub tracker: &'a TrackerState,
    pub api: BTreeMap<(&'static str, String), Vec<u32>>,
    pub usage: ProcessUsage,
    pub store_objects: BTreeMap<String, usize>,
    pub steps: Vec<StepOutcome>,
}

/// The figures, ready to print and write.
pub struct Report {
    pub json: Value,
    pub startup: Percentiles,
    pub stages: Vec<(&'static str, Percentiles)>,
    pub api: Vec<ApiLatency>,
    /// (t, live, running, ready) since the first create.
    pub series: Vec<Sample>,
    /// Per-second (t, scheduled, running) counts since the first create.
    pub throughput: Vec<(f64, f64, f64)>,
    /// Startup latencies, ms, for the histogram.
    pub startup_values: Vec<f64>,
}

impl Report {
    pub fn build(inputs: Inputs<'_>) -> Report {
        let first = inputs.first_create;
        let initial: Vec<_> = inputs
            .tracker
            .pods
            .values()
            .filter(|p| p.step == 0)
            .collect();
        let ms = |from: f64, to: f64| (to - from) * 1000.0;
        let startup_values: Vec<f64> = initial
            .iter()
            .filter_map(|p| Some(ms(p.created, p.running?)))
            .collect();
        let startup = Percentiles::of(startup_values.clone());
        let stage = |f: &dyn Fn(&super::tracker::PodTimeline) -> Option<f64>| {
            Percentiles::of(initial.iter().filter_map(|p| f(p)).collect())
        };
        let stages = vec![
            (
                "created_to_scheduled",
                stage(&|p| Some(ms(p.created, p.scheduled?))),
            ),
            (
                "scheduled_to_running",
                stage(&|p| Some(ms(p.scheduled?, p.running?))),
            ),
            (
                "running_to_ready",
                stage(&|p| Some(ms(p.running?, p.ready?))),
            ),
            (
                "created_to_ready",
                stage(&|p| Some(ms(p.created, p.ready?))),
            ),
            ("created_to_running", startup),
        ];

        let api: Vec<ApiLatency> = inputs
            .api
            .iter()
            .map(|((verb, resource), micros)| ApiLatency {
                verb: (*verb).to_owned(),
                resource: resource.clone(),
                stats: Percentiles::of(micros.iter().map(|&m| f64::from(m) / 1000.0).collect()),
            })
            .collect();
        // Watches stay open; their figure is the time to the first byte.
        let not_watch = api.iter().filter(|a| a.verb != "WATCH");
        let api_max_ms = not_watch.clone().map(|a| a.stats.max).fold(0.0, f64::max);
        let over_one_second: usize = inputs
            .api
            .iter()
            .filter(|((verb, _), _)| *verb != "WATCH")
            .map(|(_, micros)| micros.iter().filter(|&&m| m > 1_000_000).count())
            .sum();
        let api_requests: usize = inputs.api.values().map(Vec::len).sum();

        let series: Vec<Sample> = inputs
            .tracker
            .samples
            .iter()
            .filter(|s| s.t >= first)
            .map(|s| Sample {
                t: s.t - first,
                ..*s
            })
            .collect();
        let throughput = per_second(&series);
        let last_of = |f: &dyn Fn(&super::tracker::PodTimeline) -> Option<f64>| {
            initial.iter().filter_map(|p| f(p)).fold(first, f64::max)
        };
        let rate = |count: usize, until: f64| {
            if until > first {
                count as f64 / (until - first)
            } else {
                0.0
            }
        };
        let scheduled = initial.iter().filter(|p| p.scheduled.is_some()).count();
        let running = initial.iter().filter(|p| p.running.is_some()).count();
        let scheduling_rate = rate(scheduled, last_of(&|p| p.scheduled));
        let running_rate = rate(running, last_of(&|p| p.running));
        let peak =
            |pick: fn(&(f64, f64, f64)) -> f64| throughput.iter().map(pick).fold(0.0, f64::max);

        let stage_json: serde_json::Map<String, Value> = stages
            .iter()
            .map(|(name, p)| ((*name).to_owned(), p.to_json()))
            .collect();
        let api_json: Vec<Value> = api
            .iter()
            .map(|a| {
                json!({
                    "verb": a.verb,
                    "resource": a.resource,
                    "count": a.stats.count,
                    "p50_ms": round(a.stats.p50),
                    "p99_ms": round(a.stats.p99),
                    "max_ms": round(a.stats.max),
                })
            })
            .collect();
        let steps_json: Vec<Value> = inputs
            .steps
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "started_s": round(s.started - first),
                    "seconds": round(s.seconds),
                    "completed": s.completed,
                })
            })
            .collect();
        let json = json!({
            "schema": "coxswain-load/1",
            "config": inputs.config,
            "pods_requested": inputs.pods_requested,
            "pods_running": inputs.pods_running,
            "all_running": inputs.all_running_at.is_some(),
            "seconds_to_all_running": inputs.all_running_at.map(|t| round(t - first)),
            "startup_latency_ms": startup.to_json(),
            "stage_latency_ms": stage_json,
            "scheduling_throughput_pods_per_s": {
                "average": round(scheduling_rate),
                "peak_1s": round(peak(|t| t.1)),
            },
            "running_throughput_pods_per_s": {
                "average": round(running_rate),
                "peak_1s": round(peak(|t| t.2)),
            },
            "api_requests_total": api_requests,
            "api_max_ms": round(api_max_ms),
            "api_requests_over_1s": over_one_second,
            "api_latency": api_json,
            "rss_peak_bytes": inputs.usage.rss_peak_bytes,
            "rss_final_bytes": inputs.usage.rss_bytes,
            "cpu_seconds": round(inputs.usage.cpu_seconds),
            "store_objects": inputs.store_objects,
            "watch_relists": inputs.tracker.relists,
            "steps": steps_json,
        });
        Report {
            json,
            startup,
            stages,
            api,
            series,
            throughput,
            startup_values,
        }
    }

    /// The one table printed at the end.
    pub fn summary(&self) -> String {
        let j = &self.json;
        let mut out = String::new();
        let mut row = |name: &str, value: String| {
            out.push_str(&format!("  {name:<34} {value}\n"));
        };
        let config = &j["config"];
        row(
            "workload",
            format!(
                "{} pods as {} on {} {} nodes, client {}",
                j["pods_requested"],
                config["mode"].as_str().unwrap_or(""),
                config["nodes"],
                config["runtime"].as_str().unwrap_or(""),
                config["transport"].as_str().unwrap_or(""),
            ),
        );
        row(
            "pods running",
            format!("{} of {}", j["pods_running"], j["pods_requested"]),
        );
        row(
            "first create to all running",
            match j["seconds_to_all_running"].as_f64() {
                Some(s) => format!("{s:.2} s"),
                None => "not reached".into(),
            },
        );
        for (name, p) in &self.stages {
            row(
                &format!("{} (ms)", name.replace('_', " ")),
                format!(
                    "p50 {:>8.1}  p90 {:>8.1}  p99 {:>8.1}  max {:>8.1}",
                    p.p50, p.p90, p.p99, p.max
                ),
            );
        }
        let rate = |key: &str| {
            format!(
                "{:.0} pods/s average, {:.0} peak (1 s)",
                j[key]["average"].as_f64().unwrap_or(0.0),
                j[key]["peak_1s"].as_f64().unwrap_or(0.0)
            )
        };
        row(
            "scheduling throughput",
            rate("scheduling_throughput_pods_per_s"),
        );
        row(
            "created-to-running throughput",
            rate("running_throughput_pods_per_s"),
        );
        row(
            "API requests",
            format!(
                "{} total, slowest {:.1} ms, {} over 1 s",
                j["api_requests_total"], j["api_max_ms"], j["api_requests_over_1s"]
            ),
        );
        row(
            "memory (resident)",
            format!(
                "peak {}, final {}",
                mib(j["rss_peak_bytes"].as_u64().unwrap_or(0)),
                mib(j["rss_final_bytes"].as_u64().unwrap_or(0))
            ),
        );
        row(
            "CPU time",
            format!("{:.1} s", j["cpu_seconds"].as_f64().unwrap_or(0.0)),
        );
        let objects: Vec<String> = j["store_objects"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        row("objects in the store", objects.join(", "));
        for step in j["steps"].as_array().into_iter().flatten().skip(1) {
            row(
                &format!("step {}", step["name"].as_str().unwrap_or("")),
                format!(
                    "{:.2} s{}",
                    step["seconds"].as_f64().unwrap_or(0.0),
                    if step["completed"] == true {
                        ""
                    } else {
                        " (not completed)"
                    }
                ),
            );
        }
        out.push_str("\n  API latency by verb and resource (ms):\n");
        out.push_str(&format!(
            "  {:<7} {:<28} {:>8} {:>9} {:>9} {:>9}\n",
            "verb", "resource", "count", "p50", "p99", "max"
        ));
        for a in &self.api {
            out.push_str(&format!(
                "  {:<7} {:<28} {:>8} {:>9.2} {:>9.2} {:>9.2}\n",
                a.verb, a.resource, a.stats.count, a.stats.p50, a.stats.p99, a.stats.max
            ));
        }
        out
    }

    /// Writes `report.json` and `report.html` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let json_path = dir.join("report.json");
        let text = serde_json::to_string_pretty(&self.json)?;
        std::fs::write(&json_path, text + "\n")
            .with_context(|| format!("writing {}", json_path.display()))?;
        let html_path = dir.join("report.html");
        std::fs::write(&html_path, html::render(self))
            .with_context(|| format!("writing {}", html_path.display()))?;
        Ok(())
    }
}

/// Scheduled and running pods per second, from the cumulative counts.
fn per_second(series: &[Sample]) -> Vec<(f64, f64, f64)> {
    let mut out = Vec::new();
    let Some(last) = series.last() else {
        return out;
    };
    let at = |t: f64| {
        // The last sample at or before t.
        let i = series.partition_point(|s| s.t <= t);
        series.get(i.saturating_sub(1)).copied().unwrap_or_default()
    };
    let mut second = 1.0;
    while second <= last.t.ceil() {
        let (a, b) = (at(second - 1.0), at(second));
        out.push((
            second,
            b.scheduled_total.saturating_sub(a.scheduled_total) as f64,
            b.running_total.saturating_sub(a.running_total) as f64,
        ));
        second += 1.0;
    }
    out
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(vec![]).count, 0);
        assert_eq!(Percentiles::of(vec![7.0]).p99, 7.0);
    }

    #[test]
    fn throughput_is_counted_per_second() {
        let sample = |t: f64, scheduled: usize, running: usize| Sample {
            t,
            scheduled_total: scheduled,
            running_total: running,
            ..Sample::default()
        };
        let series = [
            sample(0.0, 0, 0),
            sample(0.5, 10, 0),
            sample(1.0, 30, 5),
            sample(2.0, 40, 40),
        ];
        assert_eq!(per_second(&series), [(1.0, 30.0, 5.0), (2.0, 10.0, 35.0)]);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let usage = ProcessUsage::read();
        assert!(usage.rss_peak_bytes >= usage.rss_bytes && usage.rss_bytes > 0);
    }
}
