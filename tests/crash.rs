//! Crash safety of the durable store, through the API.
//!
//! `coxswain apiserver` runs as a child process on one data directory while
//! concurrent writers create Leases over HTTPS; at a random moment the child
//! is killed with SIGKILL, then restarted on the same directory, many times.
//! After every restart:
//!
//! * every acknowledged write is present, whole, with the resourceVersion
//!   its acknowledgement carried;
//! * a write that was in flight at the kill is either absent or whole, and
//!   one found absent never shows up later;
//! * no resourceVersion is handed out twice: every write acknowledged after
//!   a restart has a revision above every one acknowledged before it.
//!
//! The last round stops the child with SIGTERM, so the clean-shutdown
//! snapshot is checked too. Rounds alternate the log's IO path (std,
//! io_uring). The test needs no root and no Docker; it runs the
//! binary cargo built for this package (or `COXSWAIN_BIN`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coxswain_core::api::{Lease, LeaseSpec};
use coxswain_core::client::{Client, ListParams};

/// Kill-and-restart rounds.
const ROUNDS: usize = 30;
/// Concurrent writers in each round.
const WRITERS: usize = 8;

fn binary() -> PathBuf {
    std::env::var_os("COXSWAIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_coxswain")))
}

/// The payload a lease carries, derived from its name so that a restored
/// object can be checked for being whole.
fn payload(name: &str) -> String {
    format!("{name}:").repeat(40)
}

/// A small seeded generator: the seed is printed, so a failure can be rerun.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A running `coxswain apiserver`.
struct Apiserver {
    child: Child,
    kubeconfig: PathBuf,
}

impl Apiserver {
    fn start(dir: &Path, round: usize) -> Apiserver {
        let log = dir.join(format!("apiserver-{round}.log"));
        let mut child = Command::new(binary())
            .args(["apiserver", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            // Both log IO paths, round by round, on one directory.
            .args(["--wal-io", if round % 2 == 0 { "std" } else { "io_uring" }])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting coxswain apiserver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains("apiserver ready") => {}
            other => panic!(
                "apiserver round {round} did not start ({other:?}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
        Apiserver {
            child,
            kubeconfig: dir.join("kubeconfig"),
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "apiserver exited with {status}");
    }
}

/// What the test knows about every write it sent.
#[derive(Default)]
struct Ledger {
    /// Acknowledged: name and the resourceVersion of the acknowledgement.
    acked: BTreeMap<String, u64>,
    /// Sent, but the acknowledgement never came.
    in_flight: BTreeSet<String>,
    /// In flight at a kill and found absent after it: must never appear.
    lost: BTreeSet<String>,
    /// The highest acknowledged revision before the current round.
    highest_before_round: u64,
}

fn resource_version(lease: &Lease) -> u64 {
    lease
        .metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .expect("a stored object has a numeric resourceVersion")
}

async fn check_after_restart(client: &Client, ledger: &mut Ledger, round: usize) {
    let list = client
        .list::<Lease>("default", &ListParams::default())
        .await
        .expect("listing leases after a restart");
    let mut found = BTreeMap::new();
    let mut versions = BTreeSet::new();
    for lease in &list.items {
        let name = lease.metadata.name.clone().unwrap();
        let rv = resource_version(lease);
        assert!(
            versions.insert(rv),
            "round {round}: revision {rv} is used twice"
        );
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
        assert_eq!(
            holder.as_deref(),
            Some(payload(&name).as_str()),
            "round {round}: {name} is not whole"
        );
        found.insert(name, rv);
    }
    for (name, rv) in &ledger.acked {
        assert_eq!(
            found.get(name),
            Some(rv),
            "round {round}: acknowledged write {name} at revision {rv} is missing or moved"
        );
    }
    for name in std::mem::take(&mut ledger.in_flight) {
        match found.get(&name) {
            Some(rv) => {
                ledger.acked.insert(name, *rv);
            }
            None => {
                ledger.lost.insert(name);
            }
        }
    }
    for name in found.keys() {
        assert!(
            ledger.acked.contains_key(name),
            "round {round}: {name} appeared without being written, or after it was lost"
        );
    }
    ledger.highest_before_round = ledger.acked.values().copied().max().unwrap_or(0);
}

/// Creates leases until the server goes away.
async fn write_until_killed(client: Client, ledger: Arc<Mutex<Ledger>>, round: usize, w: usize) {
    for seq in 0.. {
        let name = format!("r{round}-w{w}-{seq}");
        let mut lease = Lease::new("default", &name);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(payload(&name)),
            ..LeaseSpec::default()
        });
        ledger.lock().unwrap().in_flight.insert(name.clone());
        let Ok(created) = client.create(&lease).await else {
            return;
        };
        let rv = resource_version(&created);
        let mut ledger = ledger.lock().unwrap();
        assert!(
            rv > ledger.highest_before_round,
            "round {round}: {name} got revision {rv}, not above {}",
            ledger.highest_before_round
        );
        ledger.in_flight.remove(&name);
        ledger.acked.insert(name, rv);
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}, data directory {}", dir.display());
    let mut rng = Rng(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let started = Instant::now();

    for round in 0..ROUNDS {
        let server = Apiserver::start(&dir, round);
        let client = Client::from_kubeconfig(&server.kubeconfig).unwrap();
        runtime.block_on(async {
            check_after_restart(&client, &mut ledger.lock().unwrap(), round).await;
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let task = write_until_killed(client.clone(), ledger.clone(), round, w);
                runtime.spawn(task)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50 + rng.below(500)));
        server.kill();
        for writer in writers {
            runtime
                .block_on(writer)
                .expect("a writer failed its checks");
        }
    }

    // A last restart, a check, and a clean stop that leaves a snapshot.
    let server = Apiserver::start(&dir, ROUNDS);
    let client = Client::from_kubeconfig(&server.kubeconfig).unwrap();
    runtime.block_on(check_after_restart(
        &client,
        &mut ledger.lock().unwrap(),
        ROUNDS,
    ));
    server.terminate();
    let server = Apiserver::start(&dir, ROUNDS + 1);
    let client = Client::from_kubeconfig(&server.kubeconfig).unwrap();
    runtime.block_on(check_after_restart(
        &client,
        &mut ledger.lock().unwrap(),
        ROUNDS + 1,
    ));
    server.terminate();

    let ledger = ledger.lock().unwrap();
    println!(
        "{} rounds in {:.1} s: {} writes acknowledged, {} in flight at a kill and lost",
        ROUNDS,
        started.elapsed().as_secs_f64(),
        ledger.acked.len(),
        ledger.lost.len()
    );
    assert!(!ledger.acked.is_empty(), "no write was acknowledged at all");
    let _ = std::fs::remove_dir_all(&dir);
}
