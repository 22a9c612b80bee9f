//! `coxswain trace`: a node's or a pod's kernel events, read from the node
//! agent through the apiserver.
//!
//! Human-readable lines by default; `--output json` prints one event per
//! line as JSON; `--output perfetto` prints a pod's trace as Chrome trace
//! event JSON (open it in Perfetto). `--follow` keeps streaming.
//! `--status` prints each container's end as the kubelet reported it and as
//! the kernel recorded it, and any process left running after the pod.
//! `--serve` starts a loopback proxy that adds the kubeconfig's token,
//! prints the URL of the pod's trace viewer through it, and serves until
//! interrupted.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use coxswain_core::trace::TraceEvent;
use coxswain_core::trace::export::chrome_trace;
use coxswain_core::trace::remote::TraceClient;
use coxswain_core::trace::serve::ViewerProxy;

#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig of the cluster.
    #[arg(long, env = "KUBECONFIG", default_value = ".coxswain/kubeconfig")]
    pub kubeconfig: PathBuf,
    /// One pod's events, as NAMESPACE/NAME (or NAME in `default`).
    #[arg(long)]
    pub pod: Option<String>,
    /// A node's events (default: the pod's node, else the first node).
    #[arg(long)]
    pub node: Option<String>,
    /// Keep streaming new events.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// text, json (one event per line) or perfetto (a pod's Chrome trace).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Print the pod's container endings: the kubelet's view and the
    /// kernel's.
    #[arg(long, conflicts_with_all = ["follow", "serve"])]
    pub status: bool,
    /// Serve the pod's trace viewer through a loopback proxy that adds the
    /// kubeconfig's token; prints the URL to open.
    #[arg(long, visible_alias = "open", conflicts_with = "follow")]
    pub serve: bool,
    /// Where `--serve` listens (loopback only; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
    Perfetto,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = TraceClient::from_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("loading kubeconfig {}", args.kubeconfig.display()))?;
    let pod = args.pod.as_deref().map(|p| match p.split_once('/') {
        Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
        None => ("default".to_owned(), p.to_owned()),
    });

    if args.serve {
        let Some((namespace, name)) = &pod else {
            bail!("--serve needs --pod");
        };
        return serve(&args, &client, namespace, name).await;
    }
    if args.status {
        let Some((namespace, name)) = &pod else {
            bail!("--status needs --pod");
        };
        return status(&client, args.node.as_deref(), namespace, name).await;
    }

    if args.output == Output::Perfetto {
        let Some((namespace, name)) = &pod else {
            bail!("--output perfetto needs --pod");
        };
        if args.follow {
            bail!("--output perfetto writes a finished trace: drop --follow");
        }
        let report = client.pod_report(namespace, name).await?;
        let trace = chrome_trace(&report.trace.pod, &report.trace.events);
        println!("{}", serde_json::to_string(&trace)?);
        return Ok(());
    }

    let node = match (&args.node, &pod) {
        (Some(node), _) => node.clone(),
        (None, Some((namespace, name))) => client.node_of(namespace, name).await?,
        (None, None) => client.first_node().await?,
    };
    let key = pod
        .as_ref()
        .map(|(namespace, name)| format!("{namespace}/{name}"));
    let mut events = client.events(&node, key.as_deref(), args.follow).await?;
    let mut out = std::io::stdout().lock();
    while let Some(event) = events.recv().await {
        let event = event?;
        let line = match args.output {
            Output::Json => serde_json::to_string(&event)?,
            _ => text_line(&event),
        };
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

/// Serves the viewer of `namespace/name` until Ctrl-C or SIGTERM.
async fn serve(
    args: &Args,
    client: &TraceClient,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    let node = client.node_of(namespace, name).await?;
    let proxy = ViewerProxy::bind(&args.kubeconfig, args.listen).await?;
    let url = proxy.viewer_url(&node, namespace, name)?;
    // The URL is the one line on stdout, for people and for scripts.
    println!("{url}");
    std::io::stdout().flush()?;
    eprintln!("serving the trace viewer of {namespace}/{name}; Ctrl-C stops");
    proxy.run(super::shutdown_signal()).await?;
    Ok(())
}

/// One line per container instance: restarts, the kubelet's view, the
/// kernel's; then whether the pod was removed and what still runs.
/// With `node`, works for a pod already gone from the API.
async fn status(
    client: &TraceClient,
    node: Option<&str>,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    let report = match node {
        Some(node) => client.pod_report_on(node, namespace, name).await?,
        None => client.pod_report(namespace, name).await?,
    };
    let pod = client.pod(namespace, name).await.ok();
    let pod = pod.map(|p| serde_json::to_value(&p)).transpose()?;
    let statuses = pod
        .as_ref()
        .and_then(|p| p["status"]["containerStatuses"].as_array().cloned())
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<16} {:>8}  {:<44} KERNEL",
        "CONTAINER", "RESTARTS", "KUBELET"
    )?;
    let mut names: Vec<&str> = Vec::new();
    for record in &report.trace.containers {
        if record.container != "POD" && !names.contains(&record.container.as_str()) {
            names.push(&record.container);
        }
    }
    for container in names {
        let status = statuses.iter().find(|s| s["name"] == container);
        let restarts = status.and_then(|s| s["restartCount"].as_u64()).unwrap_or(0);
        let kubelet = status.map(kubelet_view).unwrap_or_else(|| "-".into());
        let kernel = report
            .trace
            .containers
            .iter()
            .rfind(|c| c.container == container)
            .and_then(|c| c.kernel_summary())
            .unwrap_or_else(|| "running (no end recorded)".into());
        writeln!(out, "{container:<16} {restarts:>8}  {kubelet:<44} {kernel}")?;
    }
    if report.trace.removed_ns.is_some() {
        match report.trace.leftovers.len() {
            0 => writeln!(out, "pod removed; no process left running")?,
            n => writeln!(out, "pod removed; {n} process(es) still running:")?,
        }
    }
    for leftover in &report.trace.leftovers {
        writeln!(
            out,
            "  {} pid {} ({}) still runs",
            leftover.container, leftover.pid, leftover.comm
        )?;
    }
    if !report.status.available {
        writeln!(
            out,
            "kernel events unavailable on {}: {}",
            report.node,
            report.status.reason.as_deref().unwrap_or("unknown reason")
        )?;
    }
    Ok(())
}

/// The kubelet's view of one container status: its state, and its last
/// termination when it restarted.
fn kubelet_view(status: &serde_json::Value) -> String {
    let state = |s: &serde_json::Value| -> Option<String> {
        if let Some(t) = s.get("terminated") {
            let reason = t["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            return Some(format!("exit code {}{reason}", t["exitCode"]));
        }
        if s.get("running").is_some() {
            return Some("running".into());
        }
        s.get("waiting")
            .map(|w| format!("waiting: {}", w["reason"].as_str().unwrap_or("")))
    };
    let now = state(&status["state"]).unwrap_or_else(|| "-".into());
    match state(&status["lastState"]) {
        Some(last) => format!("{now}; last: {last}"),
        None => now,
    }
}

/// `HH:MM:SS.mmm  namespace/pod  container  pid/comm what`.
fn text_line(event: &TraceEvent) -> String {
    let seconds = (event.time_ns / 1_000_000_000) % 86_400;
    let millis = (event.time_ns / 1_000_000) % 1000;
    format!(
        "{:02}:{:02}:{:02}.{millis:03} UTC  {:<24} {:<12} {}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        event.pod.as_deref().unwrap_or("-"),
        event.container.as_deref().unwrap_or("-"),
        event.summary()
    )
}
