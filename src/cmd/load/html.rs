//! `report.html`: one self-contained page (inline CSS and SVG, no scripts,
//! no external assets) with the summary, the plots and the tables.

use std::fmt::Write;

use serde_json::Value;

use super::report::Report;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

/// One line of a chart.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

/// The whole page.
pub fn render(report: &Report) -> String {
    let j = &report.json;
    let mut page = String::new();
    page.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>coxswain load test</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em auto;max-width:780px;color:#222}\
         table{border-collapse:collapse;margin:1em 0}\
         td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}\
         td:first-child,th:first-child{text-align:left}\
         svg{display:block;margin:1em 0;background:#fcfcfc;border:1px solid #eee}\
         .fail{color:#b00}</style></head><body>\n",
    );
    let _ = write!(
        page,
        "<h1>coxswain load test</h1>{}<pre>{}</pre>{LEGEND}",
        status(j),
        escape(&report.summary())
    );

    page.push_str("<h2>Startup latency (creation to Running)</h2>");
    let marks = [
        ("p50", report.startup.p50),
        ("p90", report.startup.p90),
        ("p99", report.startup.p99),
    ];
    let marks: &[(&str, f64)] = if report.startup.count == 0 {
        &[]
    } else {
        &marks
    };
    page.push_str(&histogram(&report.startup_values, marks));

    page.push_str("<h2>Pods over time</h2>");
    let pick = |f: fn(&super::tracker::Sample) -> usize| -> Vec<(f64, f64)> {
        thin(report.series.iter().map(|s| (s.t, f(s) as f64)).collect())
    };
    page.push_str(&line_chart(
        "seconds since the first create",
        "pods",
        &[
            Series {
                name: "live",
                color: "#888",
                points: pick(|s| s.live),
            },
            Series {
                name: "running",
                color: "#1f77b4",
                points: pick(|s| s.running),
            },
            Series {
                name: "ready",
                color: "#2ca02c",
                points: pick(|s| s.ready),
            },
        ],
        &step_marks(j),
    ));

    page.push_str("<h2>Throughput over time</h2>");
    page.push_str(&line_chart(
        "seconds since the first create",
        "pods per second",
        &[
            Series {
                name: "scheduled",
                color: "#ff7f0e",
                points: report.throughput.iter().map(|t| (t.0, t.1)).collect(),
            },
            Series {
                name: "running",
                color: "#1f77b4",
                points: report.throughput.iter().map(|t| (t.0, t.2)).collect(),
            },
        ],
        &step_marks(j),
    ));

    page.push_str("<h2>Configuration</h2><pre>");
    page.push_str(&escape(
        &serde_json::to_string_pretty(&j["config"]).unwrap_or_default(),
    ));
    page.push_str("</pre></body></html>\n");
    page
}

/// How the figures of the summary are defined.
const LEGEND: &str = "<p><small>Throughput counts the pods of the first step. \
     The average is their number over the span from the first create to the \
     last of them; the peak is the most of them in any sliding one-second \
     window, never below the average. When the span is under a second, all \
     of them fall in one window and the summary says so. Latencies with no \
     samples show as n/a. Objects in the store are counted at the end of the \
     run.</small></p>";

/// The opening verdict: whether every pod ran, and the first step that
/// failed, with its reason.
fn status(j: &Value) -> String {
    let failed = j["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["completed"] != true);
    let running = if j["all_running"] == true {
        "Every pod reached Running"
    } else {
        "Not every pod reached Running"
    };
    match failed {
        None if j["all_running"] == true => format!("<p>{running}.</p>"),
        None => format!("<p class=\"fail\">{running}.</p>"),
        Some(step) => format!(
            "<p class=\"fail\">Step {} failed: {}. {running}.</p>",
            escape(step["name"].as_str().unwrap_or("")),
            escape(step["error"].as_str().unwrap_or("no reason recorded"))
        ),
    }
}

/// Vertical marks where workload steps after the first began.
fn step_marks(j: &Value) -> Vec<(String, f64)> {
    j["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
        .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["started_s"].as_f64()?)))
        .collect()
}

/// At most ~800 points, keeping the shape.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let step = points.len().div_ceil(800).max(1);
    let last = points.last().copied();
    let mut out: Vec<(f64, f64)> = points.into_iter().step_by(step).collect();
    if let Some(last) = last
        && out.last() != Some(&last)
    {
        out.push(last);
    }
    out
}

/// A line chart with axes, ticks, a legend and vertical marks.
fn line_chart(x_label: &str, y_label: &str, series: &[Series], marks: &[(String, f64)]) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all.map(|p| p.1).fold(1.0, f64::max) * 1.05;
    let mut svg = frame(x_label, y_label, x_max, y_max);
    let (sx, sy) = scales(x_max, y_max);
    for (name, at) in marks {
        let x = sx(*at);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#c33\" \
             stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" \
             fill=\"#c33\">{}</text>",
            HEIGHT - BOTTOM,
            x + 3.0,
            TOP + 12.0,
            escape(name)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>",
            s.color,
            points.join(" ")
        );
        let lx = LEFT + 10.0 + 110.0 * i as f64;
        let _ = write!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"8\" width=\"12\" height=\"4\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"14\" font-size=\"12\">{}</text>",
            s.color,
            lx + 16.0,
            escape(s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of latencies (ms) with percentile marks.
fn histogram(values: &[f64], marks: &[(&str, f64)]) -> String {
    const BINS: usize = 40;
    let x_max = values.iter().copied().fold(1.0, f64::max);
    let width = x_max / BINS as f64;
    let mut counts = [0usize; BINS];
    for v in values {
        counts[((v / width) as usize).min(BINS - 1)] += 1;
    }
    let y_max = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.05;
    let mut svg = frame("milliseconds", "pods", x_max, y_max);
    let (sx, sy) = scales(x_max, y_max);
    for (i, &count) in counts.iter().enumerate() {
        let (x0, x1) = (sx(i as f64 * width), sx((i + 1) as f64 * width));
        let y = sy(count as f64);
        let _ = write!(
            svg,
            "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#1f77b4\"/>",
            (x1 - x0 - 1.0).max(0.5),
            (HEIGHT - BOTTOM - y).max(0.0)
        );
    }
    for (i, (name, at)) in marks.iter().enumerate() {
        let x = sx(*at);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#c33\" \
             stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" \
             fill=\"#c33\">{name} {at:.0}</text>",
            HEIGHT - BOTTOM,
            x + 3.0,
            TOP + 12.0 + 12.0 * i as f64
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Pixel scales for data ranges starting at zero.
fn scales(x_max: f64, y_max: f64) -> (impl Fn(f64) -> f64, impl Fn(f64) -> f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    (
        move |x: f64| LEFT + x / x_max * plot_w,
        move |y: f64| HEIGHT - BOTTOM - y / y_max * plot_h,
    )
}

/// The opening tag, axes, ticks and labels of a chart.
fn frame(x_label: &str, y_label: &str, x_max: f64, y_max: f64) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\">"
    );
    let (sx, sy) = scales(x_max, y_max);
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#444\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#444\"/>",
        b = HEIGHT - BOTTOM,
        r = WIDTH - RIGHT
    );
    for tick in ticks(x_max) {
        let x = sx(tick);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{b}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            HEIGHT - BOTTOM + 4.0,
            HEIGHT - BOTTOM + 16.0,
            label(tick),
            b = HEIGHT - BOTTOM
        );
    }
    for tick in ticks(y_max) {
        let y = sy(tick);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            label(tick),
            r = WIDTH - RIGHT
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\
         <text x=\"14\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" \
         transform=\"rotate(-90 14 {:.1})\">{}</text>",
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        escape(y_label)
    );
    svg
}

/// Round tick values from 0 to `max`, about six of them.
fn ticks(max: f64) -> Vec<f64> {
    let raw = max / 6.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    let mut out = Vec::new();
    let mut t = 0.0;
    while t <= max + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn label(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(10.0), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(9_500.0);
        assert_eq!(t[1], 2000.0);
        assert!(*t.last().unwrap() <= 9_500.0);
    }

    #[test]
    fn charts_are_well_formed_svg() {
        let svg = line_chart(
            "x",
            "y <pods>",
            &[Series {
                name: "running",
                color: "#000",
                points: vec![(0.0, 0.0), (1.0, 5.0)],
            }],
            &[("scale".into(), 0.5)],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("y &lt;pods&gt;"));
        let h = histogram(&[1.0, 2.0, 3.0], &[("p50", 2.0)]);
        assert_eq!(h.matches("<rect").count(), 40);
    }

    #[test]
    fn a_failed_step_leads_the_page_with_its_reason() {
        let mut pods = vec![crate::cmd::load::report::tests::pending_pod(); 2];
        for pod in &mut pods {
            pod.running = Some(0.5);
        }
        use crate::cmd::load::report::tests::step;
        let steps = vec![
            step("create", 0.0, 1.0, None),
            step("delete", 1.0, 0.5, Some("deleting pod <x>: refused")),
        ];
        let mut report = crate::cmd::load::report::tests::report_of(pods, steps);
        report.json["all_running"] = true.into();
        let page = render(&report);
        let body = &page[page.find("<h1>").unwrap()..];
        assert!(
            body.contains(
                "<h1>coxswain load test</h1><p class=\"fail\">Step delete failed: \
                           deleting pod &lt;x&gt;: refused."
            ),
            "{body}"
        );
        assert!(!body.contains("<p>Every pod reached Running.</p>"));
        assert_eq!(
            status(&json!({"all_running": true, "steps": [{"completed": true}]})),
            "<p>Every pod reached Running.</p>"
        );
    }
}
