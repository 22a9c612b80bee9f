//! The in-memory store: writes, point reads, ranges and watch fan-out.

use std::sync::Arc;

use coxswain_core::store::{Key, MemoryStore, Prefix, Store, WriteOp};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

fn pod(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": format!("pod-{i}"), "namespace": "default",
                        "labels": {"app": "bench", "n": i.to_string()}},
           "spec": {"nodeName": format!("node-{}", i % 100),
                    "containers": [{"name": "c", "image": "coxswain/web:0.1"}]}})
}

fn filled(n: usize, runtime: &tokio::runtime::Runtime) -> MemoryStore {
    let store = MemoryStore::new();
    runtime.block_on(async {
        for i in 0..n {
            store
                .write(
                    Key::new("pods", "default", &format!("pod-{i}")),
                    WriteOp::Create(pod(i)),
                )
                .await
                .unwrap();
        }
    });
    store
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    c.bench_function("store/put", |b| {
        let store = MemoryStore::new();
        let mut i = 0usize;
        b.iter(|| {
            i += 1;
            let key = Key::new("pods", "default", &format!("pod-{}", i % 10_000));
            runtime
                .block_on(store.write(
                    key,
                    WriteOp::Update {
                        expected: None,
                        object: pod(i),
                    },
                ))
                .ok();
        });
    });

    let store = filled(10_000, &runtime);
    c.bench_function("store/get", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % 10_000;
            store
                .get(&Key::new("pods", "default", &format!("pod-{i}")))
                .unwrap()
        });
    });
    c.bench_function("store/list_10k", |b| {
        let prefix = Prefix {
            resource: "pods".into(),
            namespace: Some("default".into()),
        };
        b.iter(|| store.list(&prefix).records.len());
    });

    let mut group = c.benchmark_group("store/watch_fanout");
    for watchers in [1usize, 100] {
        group.bench_with_input(
            BenchmarkId::from_parameter(watchers),
            &watchers,
            |b, &watchers| {
                let store = Arc::new(MemoryStore::new());
                b.iter(|| {
                    runtime.block_on(async {
                        let start = store.revision();
                        let mut handles = Vec::new();
                        for _ in 0..watchers {
                            let mut cursor = store.watch(start).unwrap();
                            handles.push(tokio::spawn(async move {
                                cursor.next_batch().await.unwrap().len()
                            }));
                        }
                        let key = Key::new("pods", "default", "watched");
                        let op = if store.get(&key).is_some() {
                            WriteOp::Update {
                                expected: None,
                                object: pod(0),
                            }
                        } else {
                            WriteOp::Create(pod(0))
                        };
                        store.write(key, op).await.unwrap();
                        for handle in handles {
                            handle.await.unwrap();
                        }
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group!(store, benches);
criterion_main!(store);
