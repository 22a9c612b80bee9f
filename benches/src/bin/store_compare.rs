//! `store-compare`: the same workload against coxswain's durable store and
//! against etcd, from one client process; run by `cargo xtask bench store`,
//! which starts etcd on loopback with a fresh data directory.
//!
//! Usage: `store-compare --etcd http://127.0.0.1:PORT --data-dir DIR`
//!
//! The coxswain store is embedded (called in this process through the
//! `Store` trait, as the apiserver calls it); etcd is reached over gRPC on
//! loopback, as Kubernetes' apiserver reaches it. Both sync every write to
//! disk before acknowledging it. Values are the same 1 KiB pod JSON.
//!
//! Prints a table (operation, etcd, coxswain, ratio) in operations per
//! second, a few coxswain-only figures (watch latency with 1000 watchers,
//! memory per record, cold start), and a last line
//! `ratio coxswain/etcd: writes@64=R reads=R range=R`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coxswain_benches::{key, pod};
use coxswain_core::store::{DurableOptions, DurableStore, Prefix, Store, WalIo, WriteOp};
use etcd_client::{Client as Etcd, GetOptions};

/// Keys written before the timed runs; reads and ranges cover all of them.
const PRELOAD: usize = 10_000;
/// etcd's client refuses responses above 4 MiB: ranges are read in pages.
const ETCD_PAGE: i64 = 2_500;

/// The allocator the coxswain binary runs with (see src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn etcd_key(i: usize) -> String {
    format!("/registry/pods/default/pod-{i}")
}

/// Runs `ops` operations spread over `tasks` tasks; returns operations/s.
async fn run<F, Fut>(tasks: usize, ops: usize, op: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let per_task = ops.div_ceil(tasks);
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            for i in (t * per_task..(t + 1) * per_task).take_while(|&i| i < ops) {
                op(i).await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(ops as f64 / started.elapsed().as_secs_f64())
}

struct Row {
    operation: &'static str,
    etcd: f64,
    coxswain: f64,
}

fn coxswain_put(store: &Arc<DurableStore>, i: usize) -> impl Future<Output = Result<()>> + use<> {
    let store = store.clone();
    async move {
        let op = WriteOp::Update {
            expected: None,
            object: pod(i % PRELOAD, 400),
        };
        store.write(key(i % PRELOAD), op).await?;
        Ok(())
    }
}

fn etcd_put(etcd: &Etcd, i: usize) -> impl Future<Output = Result<()>> + use<> {
    let mut etcd = etcd.clone();
    async move {
        let value = serde_json::to_vec(&pod(i % PRELOAD, 400))?;
        etcd.put(etcd_key(i % PRELOAD), value, None).await?;
        Ok(())
    }
}

/// Creates the [`PRELOAD`] pods the timed writes then update.
async fn preload(store: &Arc<DurableStore>) -> Result<()> {
    let s = store.clone();
    run(64, PRELOAD, move |i| {
        let s = s.clone();
        async move {
            s.write(key(i), WriteOp::Create(pod(i, 400))).await?;
            Ok(())
        }
    })
    .await?;
    Ok(())
}

async fn compare(etcd_url: &str, dir: PathBuf) -> Result<Vec<Row>> {
    let etcd = Etcd::connect([etcd_url], None).await?;
    let store = Arc::new(DurableStore::open(&dir.join("coxswain"))?);
    eprintln!("store-compare: preloading {PRELOAD} keys into each");
    {
        preload(&store).await?;
        let e = etcd.clone();
        run(64, PRELOAD, move |i| etcd_put(&e, i)).await?;
    }

    let mut rows = Vec::new();
    for (operation, tasks, etcd_ops, coxswain_ops) in [
        ("writes@1", 1, 1_000, 5_000),
        ("writes@16", 16, 10_000, 50_000),
        ("writes@64", 64, 20_000, 100_000),
    ] {
        eprintln!("store-compare: {operation}");
        let e = etcd.clone();
        let etcd_rate = run(tasks, etcd_ops, move |i| etcd_put(&e, i)).await?;
        let s = store.clone();
        let coxswain_rate = run(tasks, coxswain_ops, move |i| coxswain_put(&s, i)).await?;
        rows.push(Row {
            operation,
            etcd: etcd_rate,
            coxswain: coxswain_rate,
        });
    }

    eprintln!("store-compare: reads");
    let e = etcd.clone();
    let etcd_reads = run(16, 40_000, move |i| {
        let mut e = e.clone();
        async move {
            let found = e.get(etcd_key(i * 7919 % PRELOAD), None).await?;
            assert_eq!(found.kvs().len(), 1);
            Ok(())
        }
    })
    .await?;
    let s = store.clone();
    let coxswain_reads = run(16, 2_000_000, move |i| {
        let found = s.get(&key(i * 7919 % PRELOAD)).is_some();
        async move {
            assert!(found);
            Ok(())
        }
    })
    .await?;
    rows.push(Row {
        operation: "reads (get, 16 readers)",
        etcd: etcd_reads,
        coxswain: coxswain_reads,
    });

    eprintln!("store-compare: range");
    let e = etcd.clone();
    let etcd_range = run(1, 20, move |_| {
        let mut e = e.clone();
        async move {
            let (mut start, end, mut count) = (
                "/registry/pods/default/".to_owned(),
                "/registry/pods/default0",
                0,
            );
            loop {
                let options = GetOptions::new().with_range(end).with_limit(ETCD_PAGE);
                let page = e.get(start.clone(), Some(options)).await?;
                count += page.kvs().len();
                match page.kvs().last() {
                    Some(last) if page.more() => start = format!("{}\0", last.key_str()?),
                    _ => break,
                }
            }
            assert_eq!(count, PRELOAD);
            Ok(())
        }
    })
    .await?;
    let s = store.clone();
    let coxswain_range = run(1, 200, move |_| {
        let prefix = Prefix {
            resource: "pods".into(),
            namespace: Some("default".into()),
        };
        let count = s.list(&prefix).records.len();
        async move {
            assert_eq!(count, PRELOAD);
            Ok(())
        }
    })
    .await?;
    rows.push(Row {
        operation: "range (list of 10k)",
        etcd: etcd_range,
        coxswain: coxswain_range,
    });
    store.close().await?;
    Ok(rows)
}

/// Writes/s with 1, 16 and 64 writers on a store whose log is written with
/// `wal_io`.
async fn writes_through(dir: PathBuf, wal_io: WalIo) -> Result<Vec<f64>> {
    let options = DurableOptions {
        wal_io,
        ..DurableOptions::default()
    };
    let store = Arc::new(DurableStore::open_with(&dir, options)?);
    preload(&store).await?;
    let mut rates = Vec::new();
    for (tasks, ops) in [(1, 5_000), (16, 50_000), (64, 100_000)] {
        let s = store.clone();
        rates.push(run(tasks, ops, move |i| coxswain_put(&s, i)).await?);
    }
    store.close().await?;
    Ok(rates)
}

/// The 99th percentiles of the delay to each of 1000 watchers receiving a
/// write's event: from the write's start (the sync included), and from its
/// acknowledgement (zero when the watcher had it first).
async fn watch_p99(dir: PathBuf) -> Result<(Duration, Duration)> {
    let store = Arc::new(DurableStore::open(&dir)?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let start = store.revision();
    let mut watchers = Vec::new();
    for _ in 0..1000 {
        let mut cursor = store.watch(start)?;
        let tx = tx.clone();
        watchers.push(tokio::spawn(async move {
            while let Ok(batch) = cursor.next_batch().await {
                let now = Instant::now();
                for event in batch {
                    let _ = tx.send((event.record.revision, now));
                }
            }
        }));
    }
    let mut from_start = Vec::new();
    let mut from_ack = Vec::new();
    for i in 0..200 {
        let began = Instant::now();
        let op = if i == 0 {
            WriteOp::Create(pod(0, 400))
        } else {
            WriteOp::Update {
                expected: None,
                object: pod(0, 400),
            }
        };
        let revision = store.write(key(0), op).await?.revision;
        let acked = Instant::now();
        for _ in 0..1000 {
            let (seen, at) = rx.recv().await.ok_or("watchers stopped")?;
            assert_eq!(seen, revision);
            from_start.push(at.duration_since(began));
            from_ack.push(at.saturating_duration_since(acked));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for watcher in watchers {
        watcher.abort();
    }
    store.close().await?;
    from_start.sort();
    from_ack.sort();
    let p99 = |v: &[Duration]| v[v.len() * 99 / 100];
    Ok((p99(&from_start), p99(&from_ack)))
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Memory per record with 100k pods of about 2 KiB, and the cold start of
/// that store.
async fn memory_and_cold_start(dir: PathBuf) -> Result<(f64, usize, Duration)> {
    const N: usize = 100_000;
    let json_len = serde_json::to_vec(&pod(0, 1400))?.len();
    let before = rss_bytes();
    let store = Arc::new(DurableStore::open(&dir)?);
    let s = store.clone();
    run(64, N, move |i| {
        let s = s.clone();
        async move {
            s.write(key(i), WriteOp::Create(pod(i, 1400))).await?;
            Ok(())
        }
    })
    .await?;
    let per_record = (rss_bytes().saturating_sub(before)) as f64 / N as f64;
    store.close().await?;
    drop(store);
    let started = Instant::now();
    let reopened = DurableStore::open(&dir)?;
    let cold = started.elapsed();
    assert_eq!(reopened.revision(), N as u64 + 1);
    Ok((per_record, json_len, cold))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .ok_or_else(|| {
                format!("usage: store-compare --etcd URL --data-dir DIR (missing {name})")
            })
    };
    let etcd = arg("--etcd")?;
    let dir = PathBuf::from(arg("--data-dir")?);

    let rows = compare(&etcd, dir.clone()).await?;
    eprintln!("store-compare: writes through each log IO path");
    let mut paths = Vec::new();
    for (label, wal_io) in [("std", WalIo::Std), ("io_uring", WalIo::IoUring)] {
        paths.push((label, writes_through(dir.join(label), wal_io).await?));
    }
    eprintln!("store-compare: watch latency with 1000 watchers");
    let p99 = watch_p99(dir.join("watch")).await?;
    eprintln!("store-compare: memory and cold start with 100k records");
    let (per_record, json_len, cold) = memory_and_cold_start(dir.join("memory")).await?;

    println!(
        "{:<26} {:>14} {:>14} {:>8}",
        "operation (ops/s)", "etcd", "coxswain", "ratio"
    );
    for row in &rows {
        println!(
            "{:<26} {:>14.0} {:>14.0} {:>7.1}x",
            row.operation,
            row.etcd,
            row.coxswain,
            row.coxswain / row.etcd
        );
    }
    for (index, writers) in [1, 16, 64].into_iter().enumerate() {
        println!(
            "coxswain writes@{writers} by log IO path: {}",
            paths
                .iter()
                .map(|(label, rates)| format!("{label} {:.0}/s", rates[index]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "coxswain watch p99, 1000 watchers: {:.2} ms from the write's start (sync included), \
         {:.2} ms after its acknowledgement",
        p99.0.as_secs_f64() * 1e3,
        p99.1.as_secs_f64() * 1e3
    );
    println!(
        "coxswain memory: {:.1} KiB RSS per record of {json_len} B JSON; 1M records ≈ {:.2} GiB",
        per_record / 1024.0,
        per_record * 1e6 / (1u64 << 30) as f64
    );
    println!(
        "coxswain cold start of 100k records: {} ms",
        cold.as_millis()
    );
    let ratio = |op: &str| {
        rows.iter()
            .find(|r| r.operation.starts_with(op))
            .map_or(0.0, |r| r.coxswain / r.etcd)
    };
    println!(
        "ratio coxswain/etcd: writes@64={:.1} reads={:.1} range={:.1}",
        ratio("writes@64"),
        ratio("reads"),
        ratio("range")
    );
    Ok(())
}
