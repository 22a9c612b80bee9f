//! `coxswain load`: starts a fresh cluster in this process, runs a workload
//! against it and reports what it measured from the API side.
//!
//! The cluster is the real one (apiserver, controller manager, scheduler,
//! kubelets with their pod workers) on simulated containers or on Docker.
//! The workload creates Deployments or bare pods, at a set rate or as fast
//! as it can, through the in-process transport or over HTTPS with several
//! connections; once every pod runs it can go on with churn steps (scale
//! down and up, a rolling update, deleting everything). The figures come
//! from a watch of the pods and from timing every API request of every
//! component. The run ends with a summary table on stdout and
//! `report.json` and `report.html` in the output directory; it fails (after
//! writing them) when a step did not complete.
//!
//! Files: `cluster.rs` (the in-process cluster), `tracker.rs` (pod
//! timelines from the watch), `report.rs` (figures, table, JSON),
//! `html.rs` (the page and its SVG plots).

mod cluster;
mod html;
mod report;
mod tracker;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use coxswain_core::api::{DeleteOptions, Deployment, Namespace, Pod, Resource};
use coxswain_core::apiserver::KINDS;
use coxswain_core::client::{Client, ListParams};
use coxswain_core::kubelet::sim::SimProfile;
use coxswain_core::store::Prefix;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub use self::cluster::RuntimeKind;
use self::cluster::{Cluster, DOCKER_IMAGE};
use self::report::{Inputs, ProcessUsage, Report, StepOutcome};
use self::tracker::{Sample, Tracker};

/// The namespace the workload lives in.
const NAMESPACE: &str = "load";

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Nodes to run (simulated, or kubelets sharing the Docker engine).
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Pods to create in all.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Create the pods through Deployments, or as bare pods.
    #[arg(long, value_enum, default_value = "deployments")]
    pub mode: Mode,
    /// Replicas per Deployment (the last one takes the remainder).
    #[arg(long, default_value_t = 100)]
    pub replicas: usize,
    /// Objects created per second; 0 creates them as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Create requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How the workload reaches the apiserver.
    #[arg(long, value_enum, default_value = "in-process")]
    pub transport: TransportKind,
    /// HTTPS connections the workload spreads its requests over.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Steps after every pod runs, in order (comma-separated): scale
    /// (down by half, then back), rollout (a rolling update of every
    /// Deployment), delete (everything, until the pods are gone).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub churn: Vec<Churn>,
    /// The container runtime of the nodes.
    #[arg(long, value_enum, default_value = "sim")]
    pub runtime: RuntimeKind,
    /// A simulation profile (YAML): delays and failure rates.
    #[arg(long)]
    pub sim_profile: Option<PathBuf>,
    /// Where the reports go (default: target/load/<UTC timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds each step may take before the run gives up.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Show a progress bar: auto (on a terminal), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Worker threads of the runtime the kubelets run on. The controller
    /// manager, the scheduler and the pod watch that measures have a thread
    /// each; in a real cluster every node would have CPUs of its own, so the
    /// nodes get more threads than the machine has cores, and with them
    /// most of the CPU when every thread is busy.
    #[arg(long, default_value_t = 8)]
    pub node_threads: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Deployments,
    Pods,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportKind {
    InProcess,
    Https,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Churn {
    Scale,
    Rollout,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Always,
    Never,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes > 0, "--nodes must be at least 1");
    anyhow::ensure!(args.replicas > 0, "--replicas must be at least 1");
    check_churn(args.mode, &args.churn)?;
    let profile = match &args.sim_profile {
        Some(path) => SimProfile::read(path)?,
        None => SimProfile::default(),
    };
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => {
            let stamp = coxswain_core::api::Time::now().0.format("%Y%m%d-%H%M%S");
            PathBuf::from("target/load").join(stamp.to_string())
        }
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = std::fs::canonicalize(&out)?;

    eprintln!(
        "load: starting a cluster with {} {:?} nodes in {}",
        args.nodes,
        args.runtime,
        out.display()
    );
    let mut cluster = Cluster::start(&out.join("cluster"), args.runtime, args.nodes, &profile)
        .await
        .context("starting the cluster")?;
    let clients = workload_clients(&cluster, &args)?;
    clients[0]
        .create(&Namespace::new(NAMESPACE))
        .await
        .context("creating the load namespace")?;
    let tracker = Tracker::start(clients[0].clone(), NAMESPACE).await?;

    let mut driver = Driver {
        args: args.clone(),
        clients,
        tracker,
        progress: match args.progress {
            ProgressMode::Always => true,
            ProgressMode::Never => false,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        },
        steps: Vec::new(),
        image: match args.runtime {
            RuntimeKind::Sim => "coxswain/web:0.1".to_owned(),
            RuntimeKind::Docker => DOCKER_IMAGE.to_owned(),
        },
        deployments: Vec::new(),
        bare_pods: BarePods::default(),
    };

    // Step 0: create the workload and wait until every pod runs.
    let first_create = driver.tracker.now();
    let created = driver.create_workload().await;
    let target = args.pods;
    let all_running = match &created {
        // Pods that were never sent will not run: waiting would only time out.
        Err(error) => {
            let reason = format!("{error:#}");
            driver.record("create", first_create, Some(reason))
        }
        Ok(()) => {
            driver
                .wait("create", &mut cluster, first_create, |s| {
                    s.running >= target && s.live == target
                })
                .await
        }
    };
    let pods_running = driver.tracker.sample().running;
    let all_running_at = all_running.then(|| {
        driver.tracker.with(|state| {
            state
                .pods
                .values()
                .filter(|p| p.step == 0)
                .filter_map(|p| p.running)
                .fold(first_create, f64::max)
        })
    });
    let creation_error = created.err();

    // Churn, only when the workload is up.
    if all_running && creation_error.is_none() {
        for (index, step) in args.churn.iter().enumerate() {
            driver.tracker.set_step(index + 1);
            if !driver.churn(*step, &mut cluster).await {
                break;
            }
        }
    }
    // Real containers are removed whatever happened.
    let deleted = args.churn.contains(&Churn::Delete);
    if args.runtime == RuntimeKind::Docker && !deleted {
        driver.tracker.set_step(args.churn.len() + 1);
        driver.churn(Churn::Delete, &mut cluster).await;
    }

    // At the end, after the churn steps: what the run left behind.
    let store_objects = count_objects(&cluster);
    let usage = ProcessUsage::read();
    let api = cluster.metrics.snapshot();
    let config = driver.config_json(&profile);
    let steps = std::mem::take(&mut driver.steps);
    let Driver { tracker, .. } = driver;
    let tracker = tracker.finish();
    let report = Report::build(Inputs {
        config,
        pods_requested: args.pods,
        first_create,
        all_running_at,
        pods_running,
        tracker: &tracker,
        api,
        usage,
        store_objects,
        steps: steps.clone(),
    });
    report.write(&out)?;
    cluster.stop();

    println!("\ncoxswain load test\n");
    print!("{}", report.summary());
    println!("\nreports: {}/report.json, report.html", out.display());

    if let Some(error) = creation_error {
        return Err(error.context("creating the workload failed"));
    }
    outcome(&steps)
}

/// Rejects churn steps that cannot work, before anything is created: a
/// rollout needs Deployments, and after `delete` nothing is left to scale
/// or roll out.
fn check_churn(mode: Mode, churn: &[Churn]) -> anyhow::Result<()> {
    if mode == Mode::Pods && churn.contains(&Churn::Rollout) {
        anyhow::bail!("--churn rollout: bare pods have no rollout; use --mode deployments");
    }
    if let Some(delete) = churn.iter().position(|c| *c == Churn::Delete)
        && let Some(after) = churn[delete..].iter().find(|c| **c != Churn::Delete)
    {
        anyhow::bail!(
            "--churn {}: comes after delete, when nothing is left to act on",
            format!("{after:?}").to_lowercase()
        );
    }
    Ok(())
}

/// The run's result from its steps: the first failed one, with its reason.
fn outcome(steps: &[StepOutcome]) -> anyhow::Result<()> {
    match steps.iter().find(|s| !s.completed) {
        Some(step) => anyhow::bail!(
            "step {} failed: {}",
            step.name,
            step.error.as_deref().unwrap_or("no reason recorded")
        ),
        None => Ok(()),
    }
}

/// The clients the workload uses: the cluster's in-process one, or one per
/// HTTPS connection.
fn workload_clients(cluster: &Cluster, args: &Args) -> anyhow::Result<Vec<Client>> {
    match args.transport {
        TransportKind::InProcess => Ok(vec![cluster.client.clone()]),
        TransportKind::Https => (0..args.connections.max(1))
            .map(|_| cluster.https_client())
            .collect(),
    }
}

/// Counts the records of every kind in the store.
fn count_objects(cluster: &Cluster) -> BTreeMap<String, usize> {
    KINDS
        .iter()
        .map(|info| {
            let prefix = Prefix {
                resource: info.store_resource(),
                namespace: None,
            };
            (
                info.plural.to_owned(),
                cluster.store.list(&prefix).records.len(),
            )
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// The workload's state as it runs.
struct Driver {
    args: Args,
    clients: Vec<Client>,
    tracker: Tracker,
    progress: bool,
    steps: Vec<StepOutcome>,
    image: String,
    /// Names and replicas of the Deployments created.
    deployments: Vec<(String, usize)>,
    /// Names of the bare pods (`--mode pods`).
    bare_pods: BarePods,
}

/// The names of the workload's bare pods. A name is never used twice: a
/// deleted pod keeps its name until its kubelet has finished it, so a new
/// pod under that name would be refused as already existing.
#[derive(Debug, Default)]
struct BarePods {
    /// Pods created and not deleted since, oldest first.
    live: Vec<String>,
    /// The number in the next new pod's name.
    next: usize,
}

impl BarePods {
    /// Fresh names for the pods that bring the live ones up to `count`,
    /// counted live from now on.
    fn grow_to(&mut self, count: usize) -> Vec<String> {
        let fresh: Vec<String> = (self.next..)
            .take(count.saturating_sub(self.live.len()))
            .map(|i| format!("load-{i:06}"))
            .collect();
        self.next += fresh.len();
        self.live.extend(fresh.iter().cloned());
        fresh
    }

    /// The newest live pods beyond `count`, to delete; no longer counted
    /// live.
    fn shrink_to(&mut self, count: usize) -> Vec<String> {
        let keep = count.min(self.live.len());
        self.live.split_off(keep)
    }
}

impl Driver {
    fn client(&self, index: usize) -> Client {
        self.clients[index % self.clients.len()].clone()
    }

    /// Creates every Deployment or pod, paced by `--rate`, at most
    /// `--concurrency` at once.
    async fn create_workload(&mut self) -> anyhow::Result<()> {
        match self.args.mode {
            Mode::Deployments => {
                let count = self.args.pods.div_ceil(self.args.replicas);
                self.deployments = (0..count)
                    .map(|i| {
                        let replicas = self
                            .args
                            .replicas
                            .min(self.args.pods - i * self.args.replicas);
                        (format!("load-{i:05}"), replicas)
                    })
                    .collect();
                let objects: Vec<Deployment> = self
                    .deployments
                    .iter()
                    .map(|(name, replicas)| deployment(name, *replicas, &self.image))
                    .collect::<anyhow::Result<_>>()?;
                self.create_all(objects).await
            }
            Mode::Pods => {
                let objects: Vec<Pod> = self
                    .bare_pods
                    .grow_to(self.args.pods)
                    .iter()
                    .map(|name| bare_pod(name, &self.image))
                    .collect::<anyhow::Result<_>>()?;
                self.create_all(objects).await
            }
        }
    }

    async fn create_all<T: Resource>(&self, objects: Vec<T>) -> anyhow::Result<()> {
        let started = Instant::now();
        let limit = Arc::new(Semaphore::new(self.args.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, object) in objects.into_iter().enumerate() {
            if self.args.rate > 0.0 {
                let due = started + Duration::from_secs_f64(index as f64 / self.args.rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let permit = limit.clone().acquire_owned().await?;
            let client = self.client(index);
            tasks.spawn(async move {
                let result = client.create(&object).await;
                drop(permit);
                result
                    .map(|_| ())
                    .with_context(|| format!("creating {} {}", T::KIND, object.name()))
            });
            // Reap as we go so that errors surface early.
            while let Some(done) = tasks.try_join_next() {
                done??;
            }
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }

    /// Waits until `done` holds for the counts, showing progress; records
    /// the step. Returns whether it completed in time.
    async fn wait(
        &mut self,
        name: &str,
        cluster: &mut Cluster,
        started: f64,
        done: impl Fn(&Sample) -> bool,
    ) -> bool {
        let deadline = Instant::now() + Duration::from_secs(self.args.timeout);
        let mut last_print = Instant::now();
        let error = loop {
            let sample = self.tracker.sample();
            if done(&sample) {
                break None;
            }
            if let Err(error) = cluster.check_components() {
                eprintln!("\nload: {error:#}");
                break Some(format!("{error:#}"));
            }
            if Instant::now() > deadline {
                break Some(self.timed_out());
            }
            if self.progress && last_print.elapsed() >= Duration::from_millis(200) {
                self.show(name, &sample, sample.t - started);
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let seconds = self.tracker.now() - started;
        if self.progress {
            let sample = self.tracker.sample();
            self.show(name, &sample, seconds);
            eprintln!();
        }
        eprintln!(
            "load: step {name} {} after {seconds:.2} s",
            if error.is_none() { "done" } else { "NOT done" }
        );
        self.record(name, started, error)
    }

    /// The reason of a step that ran out of time.
    fn timed_out(&self) -> String {
        format!("did not complete within {} s", self.args.timeout)
    }

    fn show(&self, name: &str, sample: &Sample, seconds: f64) {
        const WIDTH: usize = 30;
        let target = self.args.pods.max(1);
        let filled = (sample.running * WIDTH / target).min(WIDTH);
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(WIDTH - filled));
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r{name:<8} [{bar}] running {:>7}/{target}  live {:>7}  scheduled {:>7}  \
             {seconds:>6.1} s ",
            sample.running, sample.live, sample.scheduled_total
        );
        let _ = stderr.flush();
    }

    /// Runs one churn step and waits for its end; returns whether it
    /// completed.
    async fn churn(&mut self, step: Churn, cluster: &mut Cluster) -> bool {
        let total = self.args.pods;
        match step {
            Churn::Scale => {
                let started = self.tracker.now();
                let half = match self.scale(|replicas| replicas / 2).await {
                    Ok(half) => half,
                    Err(error) => return self.failed("scale-down", started, error),
                };
                let down = self
                    .wait("scale-down", cluster, started, |s| {
                        s.live == half && s.running >= half
                    })
                    .await;
                if !down {
                    return false;
                }
                let started = self.tracker.now();
                if let Err(error) = self.scale(|replicas| replicas).await {
                    return self.failed("scale-up", started, error);
                }
                self.wait("scale-up", cluster, started, |s| {
                    s.live == total && s.running >= total
                })
                .await
            }
            Churn::Rollout => {
                // `check_churn` let no rollout of bare pods through.
                let started = self.tracker.now();
                if let Err(error) = self.roll_out().await {
                    return self.failed("rollout", started, error);
                }
                let error = self.wait_rolled_out(cluster, started).await.err();
                self.record("rollout", started, error)
            }
            Churn::Delete => {
                let started = self.tracker.now();
                if let Err(error) = self.delete_all().await {
                    return self.failed("delete", started, error);
                }
                let gone = self.wait("delete", cluster, started, |s| s.live == 0).await;
                // Terminating pods count until the kubelets finish them.
                let started_gone = self.tracker.now();
                let deadline = Instant::now() + Duration::from_secs(self.args.timeout);
                while gone && self.tracker.with(|s| s.present()) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let finished = self.tracker.with(|s| s.present()) == 0;
                let timeout = self.timed_out();
                if let Some(last) = self.steps.last_mut() {
                    last.seconds += self.tracker.now() - started_gone;
                    if gone && !finished {
                        last.completed = false;
                        last.error = Some(format!("pods still terminating: {timeout}"));
                    }
                }
                gone && finished
            }
        }
    }

    /// Records step `name` as failed by `error`; returns false.
    fn failed(&mut self, name: &str, started: f64, error: anyhow::Error) -> bool {
        eprintln!("load: step {name} failed: {error:#}");
        self.record(name, started, Some(format!("{error:#}")))
    }

    /// Records step `name`, completed unless there is an `error`; returns
    /// whether it completed.
    fn record(&mut self, name: &str, started: f64, error: Option<String>) -> bool {
        let completed = error.is_none();
        self.steps.push(StepOutcome {
            name: name.to_owned(),
            started,
            seconds: self.tracker.now() - started,
            completed,
            error,
        });
        completed
    }

    /// Scales every Deployment to `replicas(original)`, or for bare pods
    /// deletes the newest ones or creates new ones until `replicas(--pods)`
    /// are live. Returns the live pods wanted.
    async fn scale(&mut self, replicas: impl Fn(usize) -> usize) -> anyhow::Result<usize> {
        let mut wanted = 0;
        match self.args.mode {
            Mode::Deployments => {
                let mut tasks = tokio::task::JoinSet::new();
                for (index, (name, original)) in self.deployments.iter().enumerate() {
                    let count = replicas(*original);
                    wanted += count;
                    let client = self.client(index);
                    let name = name.clone();
                    tasks.spawn(async move {
                        let patch = json!({"spec": {"replicas": count}});
                        patch_deployment(&client, &name, &patch)
                            .await
                            .with_context(|| format!("scaling Deployment {name}"))
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done??;
                }
            }
            Mode::Pods => {
                wanted = replicas(self.args.pods);
                let surplus = self.bare_pods.shrink_to(wanted);
                self.delete_pods(surplus).await?;
                let pods: Vec<Pod> = self
                    .bare_pods
                    .grow_to(wanted)
                    .iter()
                    .map(|name| bare_pod(name, &self.image))
                    .collect::<anyhow::Result<_>>()?;
                self.create_all(pods).await?;
            }
        }
        Ok(wanted)
    }

    /// Changes every Deployment's pod template, which rolls out new pods.
    async fn roll_out(&self) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (name, _)) in self.deployments.iter().enumerate() {
            let client = self.client(index);
            let name = name.clone();
            tasks.spawn(async move {
                let patch = json!({"spec": {"template": {"metadata": {"annotations": {
                    "load.coxswain.io/revision": "2"
                }}}}});
                patch_deployment(&client, &name, &patch)
                    .await
                    .with_context(|| format!("updating Deployment {name}"))
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }

    /// Waits until every Deployment reports its new pods updated and
    /// available and the old ones gone; the error says why it did not.
    async fn wait_rolled_out(&mut self, cluster: &mut Cluster, started: f64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(self.args.timeout);
        let client = self.client(0);
        loop {
            if let Ok(list) = client
                .list::<Deployment>(NAMESPACE, &ListParams::default())
                .await
            {
                let done = list.items.iter().all(|d| {
                    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    let generation = d.metadata.generation.unwrap_or(0);
                    d.status.as_ref().is_some_and(|s| {
                        s.observed_generation.unwrap_or(0) >= generation
                            && s.updated_replicas == Some(wanted)
                            && s.available_replicas == Some(wanted)
                            && s.replicas == Some(wanted)
                    })
                });
                if done && !list.items.is_empty() {
                    let sample = self.tracker.sample();
                    if sample.live == self.args.pods {
                        return Ok(());
                    }
                }
            }
            if let Err(error) = cluster.check_components() {
                return Err(format!("{error:#}"));
            }
            if Instant::now() > deadline {
                return Err(self.timed_out());
            }
            if self.progress {
                let sample = self.tracker.sample();
                self.show("rollout", &sample, self.tracker.now() - started);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Deletes every Deployment (their ReplicaSets and pods follow through
    /// the garbage collector) or every bare pod.
    async fn delete_all(&mut self) -> anyhow::Result<()> {
        match self.args.mode {
            Mode::Deployments => {
                let mut tasks = tokio::task::JoinSet::new();
                for (index, (name, _)) in self.deployments.iter().enumerate() {
                    let client = self.client(index);
                    let name = name.clone();
                    tasks.spawn(async move {
                        let options = DeleteOptions {
                            propagation_policy: Some("Background".into()),
                            ..Default::default()
                        };
                        match client
                            .delete::<Deployment>(NAMESPACE, &name, &options)
                            .await
                        {
                            Err(e) if !e.is_not_found() => {
                                Err(e).with_context(|| format!("deleting Deployment {name}"))
                            }
                            _ => Ok(()),
                        }
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done??;
                }
                Ok(())
            }
            Mode::Pods => {
                let pods = self
                    .client(0)
                    .list::<Pod>(NAMESPACE, &ListParams::default())
                    .await?;
                let names = pods.items.iter().map(|p| p.name().to_owned()).collect();
                self.bare_pods.shrink_to(0);
                self.delete_pods(names).await
            }
        }
    }

    async fn delete_pods(&self, names: Vec<String>) -> anyhow::Result<()> {
        let limit = Arc::new(Semaphore::new(self.args.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, name) in names.into_iter().enumerate() {
            let permit = limit.clone().acquire_owned().await?;
            let client = self.client(index);
            tasks.spawn(async move {
                let result = client
                    .delete::<Pod>(NAMESPACE, &name, &DeleteOptions::default())
                    .await;
                drop(permit);
                match result {
                    Err(e) if !e.is_not_found() => {
                        Err(e).with_context(|| format!("deleting pod {name}"))
                    }
                    _ => Ok(()),
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }

    fn config_json(&self, profile: &SimProfile) -> Value {
        let a = &self.args;
        json!({
            "nodes": a.nodes,
            "pods": a.pods,
            "mode": format!("{:?}", a.mode).to_lowercase(),
            "replicas_per_deployment": a.replicas,
            "deployments": self.deployments.len(),
            "rate_per_s": if a.rate > 0.0 { json!(a.rate) } else { json!("unlimited") },
            "concurrency": a.concurrency,
            "transport": match a.transport {
                TransportKind::InProcess => "in-process",
                TransportKind::Https => "https",
            },
            "connections": if a.transport == TransportKind::Https { a.connections } else { 0 },
            "runtime": format!("{:?}", a.runtime).to_lowercase(),
            "image": self.image,
            "churn": a.churn.iter().map(|c| format!("{c:?}").to_lowercase()).collect::<Vec<_>>(),
            "sim_profile": if a.runtime == RuntimeKind::Sim {
                sim_profile_json(profile)
            } else {
                Value::Null
            },
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "coxswain_version": coxswain_core::COXSWAIN_VERSION,
        })
    }
}

fn sim_profile_json(p: &SimProfile) -> Value {
    json!({
        "sandbox_start_ms": [p.sandbox_start_ms.0, p.sandbox_start_ms.1],
        "container_start_ms": [p.container_start_ms.0, p.container_start_ms.1],
        "pull_ms": [p.pull_ms.0, p.pull_ms.1],
        "stop_ms": [p.stop_ms.0, p.stop_ms.1],
        "sandbox_failure_rate": p.sandbox_failure_rate,
        "start_failure_rate": p.start_failure_rate,
        "exit_rate": p.exit_rate,
        "lifetime_ms": [p.lifetime_ms.0, p.lifetime_ms.1],
        "exit_code": p.exit_code,
    })
}

/// The pod template of the workload: one small container, no requests,
/// a one-second grace period so that deletions are quick.
fn pod_spec(image: &str) -> Value {
    json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "app",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
        }],
    })
}

fn deployment(name: &str, replicas: usize, image: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": pod_spec(image),
            },
        },
    }))?)
}

fn bare_pod(name: &str, image: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "load"}},
        "spec": pod_spec(image),
    }))?)
}

/// Merge-patches a Deployment of the workload, trying again on a conflict.
///
/// The patch carries no resourceVersion, so upstream's apiserver would
/// retry a conflict with a concurrent write (the deployment controller's
/// status update) itself; coxswain's answers it with 409 Conflict for now,
/// so the workload retries, a few times.
async fn patch_deployment(client: &Client, name: &str, patch: &Value) -> anyhow::Result<()> {
    let mut attempts = 0;
    loop {
        match client
            .merge_patch::<Deployment>(NAMESPACE, name, patch)
            .await
        {
            Err(error) if error.is_conflict() && attempts < 10 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(10 * attempts)).await;
            }
            result => return result.map(drop).map_err(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_pods_scaled_back_up_get_names_never_used_before() {
        let mut pods = BarePods::default();
        let first = pods.grow_to(40);
        assert_eq!(first.len(), 40);
        let deleted = pods.shrink_to(20);
        assert_eq!(deleted, first[20..]);
        let recreated = pods.grow_to(40);
        assert_eq!(recreated.len(), 20);
        assert!(recreated.iter().all(|name| !first.contains(name)));
        assert_eq!(recreated[0], "load-000040");
        assert_eq!(pods.live.len(), 40);
        // A second round goes on numbering after the highest name.
        pods.shrink_to(20);
        assert_eq!(pods.grow_to(40)[0], "load-000060");
    }

    #[test]
    fn a_rollout_of_bare_pods_is_refused_before_anything_is_created() {
        let error = check_churn(Mode::Pods, &[Churn::Scale, Churn::Rollout]).unwrap_err();
        assert!(
            error.to_string().contains("use --mode deployments"),
            "{error}"
        );
        check_churn(
            Mode::Deployments,
            &[Churn::Scale, Churn::Rollout, Churn::Delete],
        )
        .unwrap();
        check_churn(Mode::Pods, &[Churn::Scale, Churn::Delete, Churn::Delete]).unwrap();
    }

    #[test]
    fn steps_after_delete_are_refused_before_anything_is_created() {
        let error = check_churn(
            Mode::Deployments,
            &[Churn::Delete, Churn::Delete, Churn::Scale],
        )
        .unwrap_err();
        assert!(error.to_string().contains("scale"), "{error}");
    }

    #[test]
    fn the_run_fails_with_the_reason_of_the_first_failed_step() {
        let step = |name: &str, error| report::tests::step(name, 0.0, 0.5, error);
        assert!(outcome(&[step("create", None)]).is_ok());
        let error = outcome(&[
            step("create", None),
            step("scale-up", Some("creating Pod load-000021: already exists")),
            step("delete", Some("did not complete within 600 s")),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "step scale-up failed: creating Pod load-000021: already exists"
        );
    }
}
