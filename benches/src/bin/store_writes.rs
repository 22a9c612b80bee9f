//! `store-writes`: write throughput of the durable store alone, and where
//! its CPU goes, thread by thread: the tool behind "What limits it" in
//! benches/README.md.
//!
//! Usage: `store-writes DIR [WRITERS] [WRITES] [SEGMENT_MIB]` (defaults 64,
//! 100000, 64). DIR is emptied first. Preloads 10,000 pods of about 1 KiB,
//! then runs three rounds of WRITES unconditional updates spread over
//! WRITERS tasks, and prints for each round the writes per second, the mean
//! wait for an acknowledgement, and the CPU seconds each thread (by name)
//! used. Threads spawned without a name carry their parent's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use coxswain_benches::{key, pod};
use coxswain_core::store::{DurableOptions, DurableStore, Store, WriteOp};

/// The allocator the coxswain binary runs with (see src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: usize = 10_000;

/// CPU seconds used so far by this process's threads, summed by name.
fn cpu_by_thread() -> BTreeMap<String, f64> {
    let mut seconds = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return seconds;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(stat), Ok(name)) = (
            std::fs::read_to_string(path.join("stat")),
            std::fs::read_to_string(path.join("comm")),
        ) else {
            continue;
        };
        // Fields after the command's closing parenthesis; utime and stime
        // are the 12th and 13th of them, in clock ticks (100 per second).
        let fields: Vec<&str> = stat[stat.rfind(')').map_or(0, |i| i + 2)..]
            .split(' ')
            .collect();
        let ticks: f64 = fields[11..13]
            .iter()
            .filter_map(|f| f.parse::<f64>().ok())
            .sum();
        *seconds.entry(name.trim().to_owned()).or_default() += ticks / 100.0;
    }
    seconds
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: store-writes DIR [WRITERS] [WRITES] [SEGMENT_MIB]");
        std::process::exit(2);
    };
    let number = |index: usize, default: usize| {
        args.get(index).map_or(default, |a| {
            a.parse().unwrap_or_else(|_| panic!("not a number: {a}"))
        })
    };
    let (writers, writes, segment_mib) = (number(2, 64), number(3, 100_000), number(4, 64));
    let _ = std::fs::remove_dir_all(&dir);
    let options = DurableOptions {
        segment_bytes: segment_mib as u64 * 1024 * 1024,
        ..DurableOptions::default()
    };
    let store = Arc::new(DurableStore::open_with(&dir, options).expect("opening the store"));
    for i in 0..KEYS {
        store
            .write(key(i), WriteOp::Create(pod(i, 400)))
            .await
            .expect("preloading");
    }
    let per_writer = writes.div_ceil(writers);
    for round in 1..=3 {
        let before = cpu_by_thread();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut waited = 0.0;
                for i in
                    (writer * per_writer..(writer + 1) * per_writer).take_while(|&i| i < writes)
                {
                    let op = WriteOp::Update {
                        expected: None,
                        object: pod(i % KEYS, 400),
                    };
                    let acknowledged = store.write(key(i % KEYS), op);
                    let sent = Instant::now();
                    acknowledged.await.expect("writing");
                    waited += sent.elapsed().as_secs_f64();
                }
                waited
            }));
        }
        let mut waited = 0.0;
        for task in tasks {
            waited += task.await.expect("a writer panicked");
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut used = cpu_by_thread();
        for (name, cpu) in before {
            *used.entry(name).or_default() -= cpu;
        }
        let total: f64 = used.values().filter(|c| **c > 0.0).sum();
        let threads: Vec<String> = used
            .iter()
            .filter(|(_, cpu)| **cpu > 0.0)
            .map(|(name, cpu)| format!("{name} {cpu:.2}"))
            .collect();
        println!(
            "round {round}: {:.0} writes/s, acknowledged after {:.0} us on average; \
             CPU {total:.2} s ({:.1} us per write): {}",
            writes as f64 / seconds,
            waited / writes as f64 * 1e6,
            total / writes as f64 * 1e6,
            threads.join(", ")
        );
    }
    store.close().await.expect("closing the store");
}
