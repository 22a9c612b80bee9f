//! The store: writes (alone and under 16 and 64 concurrent writers), point
//! reads, ranges of 10k and 100k, watch fan-out to 1, 100 and 1000 watchers,
//! and the cold start of a durable store holding 100k objects.
//!
//! Writes are measured on the durable store (every write synced to disk,
//! concurrent writers sharing a sync) and, for reference, on the in-memory
//! store; reads, ranges and watches on the durable store. Inputs are fixed:
//! pod `i` is always the same object. Figures are in `benches/README.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coxswain_benches::{key, pod};
use coxswain_core::store::{DurableStore, Key, MemoryStore, Prefix, Store, WriteOp};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// The allocator the coxswain binary runs with (see src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A fresh directory under the target dir, removed when dropped.
struct BenchDir(PathBuf);

impl BenchDir {
    fn new(label: &str) -> BenchDir {
        let path =
            std::env::temp_dir().join(format!("coxswain-bench-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        BenchDir(path)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes pods `0..n` from 64 concurrent writers.
async fn fill(store: &Arc<dyn Store>, n: usize) {
    let writers = 64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(writers) {
                store
                    .write(key(i), WriteOp::Create(pod(i, 400)))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// `iters` updates of pods `0..10_000`, spread over `writers` tasks.
async fn concurrent_puts(store: &Arc<dyn Store>, writers: usize, iters: u64) -> Duration {
    let per_writer = iters.div_ceil(writers as u64) as usize;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..per_writer {
                let i = (w * per_writer + n) % 10_000;
                let op = WriteOp::Update {
                    expected: None,
                    object: pod(i, 400),
                };
                store.write(key(i), op).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn writes(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let dir = BenchDir::new("writes");
    let durable: Arc<dyn Store> = Arc::new(DurableStore::open(&dir.0).unwrap());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for store in [&durable, &memory] {
        runtime.block_on(fill(store, 10_000));
    }

    let mut group = c.benchmark_group("store/put");
    group.throughput(Throughput::Elements(1));
    for (name, store) in [("durable", &durable), ("memory", &memory)] {
        group.bench_function(BenchmarkId::new(name, 1), |b| {
            b.iter_custom(|iters| runtime.block_on(concurrent_puts(store, 1, iters)));
        });
        for writers in [16, 64] {
            group.bench_function(BenchmarkId::new(name, writers), |b| {
                b.iter_custom(|iters| runtime.block_on(concurrent_puts(store, writers, iters)));
            });
        }
    }
    group.finish();
}

fn reads(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let dir = BenchDir::new("reads");
    let store: Arc<dyn Store> = Arc::new(DurableStore::open(&dir.0).unwrap());
    runtime.block_on(fill(&store, 100_000));

    c.bench_function("store/get", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7919) % 100_000;
            store.get(&key(i)).unwrap()
        });
    });

    let mut group = c.benchmark_group("store/list");
    group.sample_size(20);
    let pods = Prefix {
        resource: "pods".into(),
        namespace: Some("default".into()),
    };
    group.bench_function("100k", |b| b.iter(|| store.list(&pods).records.len()));
    // 10k of the 100k: the pods of one namespace among ten.
    let small = BenchDir::new("list-10k");
    let ten: Arc<dyn Store> = Arc::new(DurableStore::open(&small.0).unwrap());
    runtime.block_on(async {
        fill(&ten, 10_000).await;
        for i in 10_000..20_000 {
            let other = Key::new("pods", "other", &format!("pod-{i}"));
            ten.write(other, WriteOp::Create(pod(i, 400)))
                .await
                .unwrap();
        }
    });
    group.bench_function("10k", |b| b.iter(|| ten.list(&pods).records.len()));
    group.finish();
}

fn watch_fanout(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("store/watch_fanout");
    group.sample_size(20);
    for watchers in [1usize, 100, 1000] {
        let dir = BenchDir::new("watch");
        let store: Arc<dyn Store> = Arc::new(DurableStore::open(&dir.0).unwrap());
        let (done, mut delivered) = tokio::sync::mpsc::unbounded_channel::<()>();
        let start = store.revision();
        let tasks: Vec<_> = (0..watchers)
            .map(|_| {
                let mut cursor = store.watch(start).unwrap();
                let done = done.clone();
                runtime.spawn(async move {
                    while let Ok(batch) = cursor.next_batch().await {
                        for _ in batch {
                            if done.send(()).is_err() {
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::from_parameter(watchers), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    i += 1;
                    let op = if i == 1 {
                        WriteOp::Create(pod(0, 400))
                    } else {
                        WriteOp::Update {
                            expected: None,
                            object: pod(0, 400),
                        }
                    };
                    store.write(key(0), op).await.unwrap();
                    for _ in 0..watchers {
                        delivered.recv().await.unwrap();
                    }
                })
            });
        });
        for task in tasks {
            task.abort();
        }
    }
    group.finish();
}

fn cold_start(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let dir = BenchDir::new("cold");
    {
        let store = Arc::new(DurableStore::open(&dir.0).unwrap());
        let as_store: Arc<dyn Store> = store.clone();
        runtime.block_on(fill(&as_store, 100_000));
        runtime.block_on(store.close()).unwrap();
    }
    let mut group = c.benchmark_group("store/cold_start");
    group.sample_size(10);
    group.bench_function("100k", |b| {
        // One store at a time holds the directory's lock: each is dropped
        // (its close not timed) before the next opens.
        b.iter_custom(|iters| {
            let mut opening = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let store = DurableStore::open(&dir.0).unwrap();
                opening += started.elapsed();
                assert_eq!(store.revision(), 100_001);
                drop(store);
            }
            opening
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    writes(c, &runtime);
    reads(c, &runtime);
    watch_fanout(c, &runtime);
    cold_start(c, &runtime);
}

criterion_group!(store, benches);
criterion_main!(store);
