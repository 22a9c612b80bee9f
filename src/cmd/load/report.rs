//! Turning what a load test saw into figures: percentiles, throughput,
//! process usage; then the summary table, `report.json` and `report.html`.
//!
//! `report.json` always has `pods_requested`, `pods_running`,
//! `seconds_to_all_running` (null when not all pods ran),
//! `startup_latency_ms` (`count`, and `p50`, `p90`, `p99`, `max`: creation to
//! Running, as the watch saw them; the four are null when `count` is 0) and
//! `rss_peak_bytes`; every step has an `error` string when it failed. The
//! rest is described in `benches/README.md`.
//!
//! Throughput counts the pods of the first step as they reached a stage
//! (scheduled, Running). Its `average` is their number over `span_s`, the
//! time from the first create to the last of them; `peak_1s` is the most of
//! them in any sliding one-second window, never less than the average (the
//! whole span, when at least a second long, is itself such a window). When
//! the span is shorter than a second, every pod falls in one window:
//! `peak_1s` is then their number, and the average a rate over the span.
//! `store_objects` is counted at the end of the run, after the churn steps.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::html;
use super::tracker::{PodTimeline, Sample, TrackerState};

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
    /// Nearest-rank percentiles; `count` 0 (and zeros that mean nothing)
    /// for no values.
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

    /// `count` and the four figures, which are null without samples.
    pub fn to_json(self) -> Value {
        let figure = |value: f64| {
            if self.count == 0 {
                Value::Null
            } else {
                json!(round(value))
            }
        };
        json!({
            "count": self.count,
            "p50": figure(self.p50),
            "p90": figure(self.p90),
            "p99": figure(self.p99),
            "max": figure(self.max),
        })
    }

    /// The four figures for the summary table, `n/a` without samples.
    pub fn row(self) -> String {
        if self.count == 0 {
            return format!(
                "p50 {:>8}  p90 {:>8}  p99 {:>8}  max {:>8}  (no samples)",
                "n/a", "n/a", "n/a", "n/a"
            );
        }
        format!(
            "p50 {:>8.1}  p90 {:>8.1}  p99 {:>8.1}  max {:>8.1}",
            self.p50, self.p90, self.p99, self.max
        )
    }
}

/// How fast pods reached a stage; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Throughput {
    pub count: usize,
    /// Seconds from the first create to the last pod counted.
    pub span: f64,
    /// Pods per second over the span.
    pub average: f64,
    /// Most pods in any one-second window, at least the average for spans
    /// of a second or more.
    pub peak_1s: f64,
}

impl Throughput {
    /// From the times (tracker seconds) pods reached the stage, the first
    /// create being at `first`.
    pub fn of(first: f64, mut times: Vec<f64>) -> Throughput {
        times.sort_by(f64::total_cmp);
        let Some(&last) = times.last() else {
            return Throughput::default();
        };
        let count = times.len();
        let span = (last - first).max(0.0);
        let average = if span > 0.0 { count as f64 / span } else { 0.0 };
        if span < 1.0 {
            return Throughput {
                count,
                span,
                average,
                peak_1s: count as f64,
            };
        }
        // The window [times[start], times[start] + 1 s) slides over every
        // event; the busiest holds the most.
        let mut most = 0;
        let mut start = 0;
        for (end, &t) in times.iter().enumerate() {
            while t - times[start] >= 1.0 {
                start += 1;
            }
            most = most.max(end + 1 - start);
        }
        Throughput {
            count,
            span,
            average,
            peak_1s: (most as f64).max(average),
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "count": self.count,
            "span_s": round(self.span),
            "average": round(self.average),
            "peak_1s": round(self.peak_1s),
        })
    }

    /// One cell of the summary table.
    pub fn describe(self) -> String {
        if self.count == 0 {
            "n/a (no pods)".to_owned()
        } else if self.span < 1.0 {
            format!(
                "all {} pods within {:.2} s (under 1 s): {:.0} pods/s over that span",
                self.count, self.span, self.average
            )
        } else {
            format!(
                "{:.0} pods/s average, {:.0} peak (busiest 1 s)",
                self.average, self.peak_1s
            )
        }
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
    /// Why it did not complete.
    pub error: Option<String>,
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
    pub scheduling: Throughput,
    pub running: Throughput,
    pub startup: Percentiles,
    pub stages: Vec<(&'static str, Percentiles)>,
    pub api: Vec<ApiLatency>,
    /// (t, live, running, ready) since the first create.
    pub series: Vec<Sample>,
    /// Per-second (t, scheduled, running) counts since the first create,
    /// for the plot.
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
        let stage = |f: &dyn Fn(&PodTimeline) -> Option<f64>| {
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
        let scheduling =
            Throughput::of(first, initial.iter().filter_map(|p| p.scheduled).collect());
        let running = Throughput::of(first, initial.iter().filter_map(|p| p.running).collect());

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
                let mut step = json!({
                    "name": s.name,
                    "started_s": round(s.started - first),
                    "seconds": round(s.seconds),
                    "completed": s.completed,
                });
                if let Some(error) = &s.error {
                    step["error"] = json!(error);
                }
                step
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
            "scheduling_throughput_pods_per_s": scheduling.to_json(),
            "running_throughput_pods_per_s": running.to_json(),
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
            scheduling,
            running,
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
            row(&format!("{} (ms)", name.replace('_', " ")), p.row());
        }
        row("scheduling throughput", self.scheduling.describe());
        row("created-to-running throughput", self.running.describe());
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
        row("objects in the store at the end", objects.join(", "));
        // The create step shows only when it failed: its time is above.
        let steps = j["steps"].as_array().into_iter().flatten();
        for (index, step) in steps.enumerate() {
            let error = step["error"].as_str();
            if index == 0 && error.is_none() {
                continue;
            }
            let status = match (step["completed"] == true, error) {
                (true, _) => String::new(),
                (false, Some(error)) => format!(" (failed: {error})"),
                (false, None) => " (not completed)".to_owned(),
            };
            row(
                &format!("step {}", step["name"].as_str().unwrap_or("")),
                format!("{:.2} s{status}", step["seconds"].as_f64().unwrap_or(0.0)),
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
pub(super) mod tests {
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

    /// A report of a run whose tracker saw `pods` and whose steps went as
    /// `steps` say.
    pub(in crate::cmd::load) fn report_of(
        pods: Vec<PodTimeline>,
        steps: Vec<StepOutcome>,
    ) -> Report {
        let mut tracker = TrackerState::default();
        tracker.pods = pods
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("uid-{i}"), p))
            .collect();
        let mut store_objects = BTreeMap::new();
        store_objects.insert("pods".to_owned(), 3);
        Report::build(Inputs {
            config: json!({"mode": "pods"}),
            pods_requested: 50,
            first_create: 0.0,
            all_running_at: None,
            pods_running: 0,
            tracker: &tracker,
            api: BTreeMap::new(),
            usage: ProcessUsage::default(),
            store_objects,
            steps,
        })
    }

    pub(in crate::cmd::load) fn pending_pod() -> PodTimeline {
        PodTimeline::new(0, 0.1)
    }

    /// A step of the run, failed with `error` when given.
    pub(in crate::cmd::load) fn step(
        name: &str,
        started: f64,
        seconds: f64,
        error: Option<&str>,
    ) -> StepOutcome {
        StepOutcome {
            name: name.into(),
            started,
            seconds,
            completed: error.is_none(),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn latencies_without_samples_are_null_and_shown_as_not_available() {
        let report = report_of(vec![pending_pod(); 50], vec![]);
        let startup = &report.json["startup_latency_ms"];
        assert_eq!(startup["count"], 0);
        for key in ["p50", "p90", "p99", "max"] {
            assert!(
                startup[key].is_null(),
                "startup_latency_ms.{key}: {startup}"
            );
        }
        let summary = report.summary();
        let row = summary
            .lines()
            .find(|l| l.contains("created to running (ms)"))
            .unwrap();
        assert!(row.contains("n/a") && !row.contains("0.0"), "{row}");
        // With samples the figures stay numbers.
        let p = Percentiles::of(vec![5.0]).to_json();
        assert_eq!(
            (p["count"].as_u64(), p["p50"].as_f64()),
            (Some(1), Some(5.0))
        );
    }

    #[test]
    fn the_peak_second_slides_over_bucket_edges() {
        // 100 pods between 0.9 s and 1.1 s: fixed one-second buckets would
        // split them 50 and 50; a sliding window sees all 100.
        let times: Vec<f64> = (0..100).map(|i| 0.9 + 0.002 * f64::from(i)).collect();
        let mut times = times;
        times.push(3.0);
        let t = Throughput::of(0.0, times);
        assert_eq!(t.count, 101);
        assert_eq!(t.peak_1s, 100.0);
        assert!((t.average - 101.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn the_peak_is_never_below_the_average_over_a_second_or_more() {
        // Bunched at both ends of a 1.5 s span: no one-second window holds
        // more than 75, yet the span itself carries 100 a second.
        let mut times = vec![0.49; 75];
        times.extend(vec![1.5; 75]);
        let t = Throughput::of(0.0, times);
        assert!((t.average - 100.0).abs() < 1e-9);
        assert!(t.peak_1s >= t.average, "{t:?}");
    }

    #[test]
    fn a_span_under_a_second_is_said_to_be_one() {
        let times: Vec<f64> = (0..1000).map(|i| 0.04 + 0.0004 * f64::from(i)).collect();
        let t = Throughput::of(0.0, times);
        assert!(t.span < 1.0);
        assert_eq!(t.peak_1s, 1000.0);
        assert!(t.describe().contains("under 1 s"), "{}", t.describe());
        assert_eq!(Throughput::of(0.0, vec![]).describe(), "n/a (no pods)");
    }

    #[test]
    fn failed_steps_carry_their_reason() {
        let steps = vec![
            step("create", 0.0, 1.0, None),
            step(
                "scale-up",
                1.0,
                0.5,
                Some("creating Pod load-000021: already exists"),
            ),
        ];
        let report = report_of(vec![], steps);
        let json_steps = report.json["steps"].as_array().unwrap();
        assert!(json_steps[0].get("error").is_none());
        assert_eq!(
            json_steps[1]["error"],
            "creating Pod load-000021: already exists"
        );
        assert!(
            report
                .summary()
                .contains("(failed: creating Pod load-000021: already exists)")
        );
    }

    #[test]
    fn objects_in_the_store_are_labelled_as_counted_at_the_end() {
        let summary = report_of(vec![], vec![]).summary();
        assert!(
            summary.contains("objects in the store at the end"),
            "{summary}"
        );
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let usage = ProcessUsage::read();
        assert!(usage.rss_peak_bytes >= usage.rss_bytes && usage.rss_bytes > 0);
    }
}
