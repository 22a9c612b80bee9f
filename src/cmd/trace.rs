//! `coxswain trace`: a node's or a pod's kernel events, read from the node
//! agent through the apiserver.
//!
//! Human-readable lines by default; `--output json` prints one event per
//! line as JSON; `--output perfetto` prints a pod's trace as Chrome trace
//! event JSON (open it in Perfetto). `--follow` keeps streaming.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use coxswain_core::trace::TraceEvent;
use coxswain_core::trace::export::chrome_trace;
use coxswain_core::trace::remote::TraceClient;

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
