//! The durable store: the [`Store`] contract, kept across restarts and
//! crashes.
//!
//! What callers may rely on, beyond the [`Store`] contract:
//!
//! * a write is acknowledged only after its log entry reached the disk
//!   (`fdatasync`); after a crash every acknowledged write is back, with its
//!   revision, and no revision is handed out twice;
//! * concurrent writes share one sync (group commit): one committer thread
//!   takes every write queued while the previous sync ran, decides them in
//!   order, appends them in one write and syncs once;
//! * readers never wait for the disk: `get` and `list` read the acknowledged
//!   state under a read lock, and watchers read the [`WatchLog`];
//! * on open, the newest snapshot is mapped in place and validated, then the
//!   log after it is replayed; a torn log tail is cut at the last whole
//!   record and reported with a warning; a corrupt snapshot, or a log with a
//!   hole, is refused with an error instead of being half loaded;
//! * every `snapshot_every` writes a snapshot is written in the background,
//!   and the log segments and snapshots it covers are removed; [`close`]
//!   (and dropping the store) writes a last one;
//! * the data directory is locked: a second store on it fails to open.
//!
//! After the log fails to write, the store refuses every further write
//! ([`StoreError::Unavailable`]): what reached the disk is unknown, and only
//! a restart, which reads it back, can tell.
//!
//! The log is written with plain file IO (`pwrite` + `fdatasync`), or
//! through io_uring (the write and its `fdatasync` linked in one
//! submission) when asked for and the kernel allows it, over zeros written
//! ahead (the next segment is zeroed by a thread of its own); see
//! [`WalWriter`]. Which one is used is
//! decided at open ([`DurableOptions::wal_io`]) and logged, with whether the
//! kernel allows io_uring.
//!
//! [`close`]: DurableStore::close

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::lock::{DataDirLock, LockError};
use super::memory::DEFAULT_WATCH_WINDOW;
use super::snapshot::{self, SnapshotBody, SnapshotError, SnapshotRecord};
use super::wal::{self, WalEntry, WalError, WalIo, WalWriter};
use super::{
    Event, EventType, Key, Prefix, Prepared, Record, Snapshot, Store, StoreError, WatchCursor,
    WatchLog, WriteOp, decide,
};

/// The most writes decided and synced together.
const MAX_BATCH: usize = 4096;

/// Tuning of a [`DurableStore`].
#[derive(Clone, Debug)]
pub struct DurableOptions {
    /// Number of events a watch can resume across.
    pub watch_window: usize,
    /// Writes between two background snapshots.
    pub snapshot_every: u64,
    /// Size of the log segments zeroed ahead; the log moves to the next one
    /// when a batch no longer fits (see [`WalWriter`]).
    pub segment_bytes: u64,
    /// How the log reaches the disk.
    pub wal_io: WalIo,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            watch_window: DEFAULT_WATCH_WINDOW,
            snapshot_every: 200_000,
            segment_bytes: 64 * 1024 * 1024,
            wal_io: WalIo::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("creating the data directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(
        "log segment {} is corrupt at byte {offset} ({reason}), and later segments follow it",
        path.display()
    )]
    CorruptLog {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    #[error(
        "log segment {} jumps from revision {previous} to {found}: revisions are missing",
        path.display()
    )]
    Gap {
        path: PathBuf,
        previous: u64,
        found: u64,
    },
}

/// A store whose writes survive restarts; see the module docs.
pub struct DurableStore {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Request>,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// Held for the store's life; released when it is dropped.
    _lock: DataDirLock,
}

/// What the committer and the readers share.
struct Shared {
    state: RwLock<State>,
    log: Arc<WatchLog>,
    /// Why writes are refused, once the log failed.
    failed: OnceLock<String>,
}

/// The acknowledged state.
struct State {
    records: BTreeMap<Key, Record>,
    /// The revision of the latest acknowledged write.
    revision: u64,
}

/// Where a write's outcome goes.
type Reply = oneshot::Sender<Result<Record, StoreError>>;

/// Work for the committer thread.
enum Request {
    Write {
        key: Key,
        /// Encoded by the writer, so the committer only decides and copies.
        op: Prepared,
        reply: oneshot::Sender<Result<Record, StoreError>>,
    },
    /// Writes a snapshot now and answers with its revision.
    Snapshot {
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Stops, after writing a last snapshot if `snapshot` is set.
    Close {
        snapshot: bool,
        reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
}

/// What recovery found, for the start-up log line.
struct Recovered {
    records: BTreeMap<Key, Record>,
    revision: u64,
    snapshot_revision: u64,
    replayed: u64,
}

impl DurableStore {
    /// Opens (or creates) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<DurableStore, OpenError> {
        DurableStore::open_with(dir, DurableOptions::default())
    }

    /// Locks `dir`, recovers the state it holds and starts the committer.
    pub fn open_with(dir: &Path, options: DurableOptions) -> Result<DurableStore, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let lock = DataDirLock::acquire(dir)?;
        remove_temporary_files(dir);

        let started = std::time::Instant::now();
        let recovered = recover(dir)?;
        let io_uring = match wal::io_uring_available() {
            Ok(()) => "available".to_owned(),
            Err(reason) => reason,
        };
        let wal = WalWriter::open(
            dir,
            recovered.revision + 1,
            options.wal_io,
            options.segment_bytes,
        )?;
        tracing::info!(
            dir = %dir.display(),
            revision = recovered.revision,
            records = recovered.records.len(),
            snapshot_revision = recovered.snapshot_revision,
            replayed = recovered.replayed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            wal_io = wal.io().name(),
            wal_io_asked = options.wal_io.name(),
            io_uring = %io_uring,
            "store opened"
        );

        let shared = Arc::new(Shared {
            log: WatchLog::resuming(options.watch_window, recovered.revision),
            state: RwLock::new(State {
                records: recovered.records,
                revision: recovered.revision,
            }),
            failed: OnceLock::new(),
        });
        let (requests, receiver) = mpsc::channel();
        let committer = Committer {
            shared: shared.clone(),
            dir: dir.to_owned(),
            wal,
            options,
            since_snapshot: recovered.replayed,
            background: None,
        };
        let handle = std::thread::Builder::new()
            .name("store-committer".into())
            .spawn(move || committer.run(receiver))
            .expect("spawning the store committer thread");
        Ok(DurableStore {
            shared,
            requests,
            committer: Mutex::new(Some(handle)),
            _lock: lock,
        })
    }

    /// Writes a snapshot of every live record now; resolves to its revision.
    pub async fn snapshot(&self) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Snapshot { reply })?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Writes a last snapshot and stops accepting writes. Reads keep working.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.stop(true).await
    }

    async fn stop(&self, snapshot: bool) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let reply = Some(reply);
        if self.send(Request::Close { snapshot, reply }).is_err() {
            return Ok(());
        }
        let result = answer.await.unwrap_or(Ok(()));
        let handle = self.committer.lock().expect("committer handle").take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        result
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.requests.send(request).map_err(|_| stopped())
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

impl Drop for DurableStore {
    fn drop(&mut self) {
        let handle = self.committer.lock().map(|mut h| h.take()).unwrap_or(None);
        if let Some(handle) = handle {
            let close = Request::Close {
                snapshot: true,
                reply: None,
            };
            let _ = self.requests.send(close);
            let _ = handle.join();
        }
    }
}

impl Store for DurableStore {
    fn get(&self, key: &Key) -> Option<Record> {
        let state = self.shared.state.read().expect("store poisoned");
        state.records.get(key).cloned()
    }

    fn list(&self, prefix: &Prefix) -> Snapshot {
        let state = self.shared.state.read().expect("store poisoned");
        super::snapshot_of(&state.records, prefix, state.revision)
    }

    fn revision(&self) -> u64 {
        self.shared.state.read().expect("store poisoned").revision
    }

    fn write(&self, key: Key, op: WriteOp) -> BoxFuture<'_, Result<Record, StoreError>> {
        let (reply, answer) = oneshot::channel();
        let op = Prepared::new(&key, op);
        let sent = self.send(Request::Write { key, op, reply });
        Box::pin(async move {
            sent?;
            answer.await.unwrap_or_else(|_| Err(stopped()))
        })
    }

    fn watch(&self, after: u64) -> Result<WatchCursor, StoreError> {
        self.shared.log.cursor(after)
    }
}

/// The one thread that decides, logs and applies writes.
struct Committer {
    shared: Arc<Shared>,
    dir: PathBuf,
    wal: WalWriter,
    options: DurableOptions,
    /// Writes logged since the last snapshot.
    since_snapshot: u64,
    /// The background snapshot in progress, if any.
    background: Option<JoinHandle<()>>,
}

/// A write that passed its preconditions, waiting for the sync.
struct Decided {
    kind: EventType,
    record: Record,
    previous: Option<Record>,
    reply: oneshot::Sender<Result<Record, StoreError>>,
}

impl Committer {
    fn run(mut self, requests: mpsc::Receiver<Request>) {
        let mut close_reply = None;
        let mut last_snapshot = true;
        while let Ok(first) = requests.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let mut writes = Vec::with_capacity(batch.len());
            let mut snapshots = Vec::new();
            let mut close = None;
            for request in batch {
                match request {
                    Request::Write { key, op, reply } => writes.push((key, op, reply)),
                    Request::Snapshot { reply } => snapshots.push(reply),
                    Request::Close { snapshot, reply } => close = Some((snapshot, reply)),
                }
            }
            self.commit(writes);
            for reply in snapshots {
                let _ = reply.send(self.snapshot_now());
            }
            if let Some((snapshot, reply)) = close {
                last_snapshot = snapshot;
                close_reply = reply;
                break;
            }
            self.maybe_snapshot_in_background();
        }

        // Closed, or every handle dropped: leave a snapshot for a fast start.
        let skip = !last_snapshot || self.shared.failed.get().is_some();
        let result = if skip || self.since_snapshot == 0 {
            self.wait_for_background();
            Ok(())
        } else {
            self.snapshot_now().map(|_| ())
        };
        tracing::info!(revision = self.revision(), "store closed");
        if let Some(reply) = close_reply {
            let _ = reply.send(result);
        }
        // Writes still queued are answered "unavailable" when their reply
        // senders drop with the receiver.
    }

    fn revision(&self) -> u64 {
        self.shared.state.read().expect("store poisoned").revision
    }

    /// Decides a batch against the acknowledged state plus the batch's own
    /// earlier writes, logs and syncs it once, then publishes it.
    fn commit(&mut self, writes: Vec<(Key, Prepared, Reply)>) {
        if writes.is_empty() {
            return;
        }
        if let Some(reason) = self.shared.failed.get() {
            for (_, _, reply) in writes {
                let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
            }
            return;
        }

        let mut decided = Vec::with_capacity(writes.len());
        let mut frames = Vec::new();
        let (mut revision, first_revision);
        {
            let state = self.shared.state.read().expect("store poisoned");
            revision = state.revision;
            first_revision = revision + 1;
            let mut overlay: HashMap<Key, Option<Record>> = HashMap::new();
            for (key, op, reply) in writes {
                let current = match overlay.get(&key) {
                    Some(pending) => pending.clone(),
                    None => state.records.get(&key).cloned(),
                };
                match decide(&key, op, current.as_ref(), revision + 1) {
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                    Ok((kind, record)) => {
                        revision += 1;
                        let deleted = kind == EventType::Deleted;
                        wal::encode_frame(&log_entry(&record, deleted), &mut frames);
                        overlay.insert(key, (!deleted).then(|| record.clone()));
                        decided.push(Decided {
                            kind,
                            record,
                            previous: current,
                            reply,
                        });
                    }
                }
            }
        }
        if decided.is_empty() {
            return;
        }

        if let Err(error) = self.wal.append(&frames, first_revision) {
            tracing::error!(error = %error, "writing the log failed; refusing writes from now on");
            let reason = format!("the write-ahead log failed: {error}");
            let _ = self.shared.failed.set(reason.clone());
            for write in decided {
                let _ = write
                    .reply
                    .send(Err(StoreError::Unavailable(reason.clone())));
            }
            return;
        }

        {
            let mut state = self.shared.state.write().expect("store poisoned");
            for write in &decided {
                if write.kind == EventType::Deleted {
                    state.records.remove(&write.record.key);
                } else {
                    state
                        .records
                        .insert(write.record.key.clone(), write.record.clone());
                }
            }
            state.revision = revision;
        }
        self.since_snapshot += decided.len() as u64;
        for write in decided {
            self.shared.log.append(Event {
                kind: write.kind,
                record: write.record.clone(),
                previous: write.previous,
            });
            let _ = write.reply.send(Ok(write.record));
        }
    }

    /// Starts a background snapshot once enough writes were logged.
    fn maybe_snapshot_in_background(&mut self) {
        if self.since_snapshot < self.options.snapshot_every {
            return;
        }
        if self.background.as_ref().is_some_and(|b| !b.is_finished()) {
            return;
        }
        self.wait_for_background();
        let Some((revision, records)) = self.cut_for_snapshot() else {
            return;
        };
        let dir = self.dir.clone();
        self.background = Some(std::thread::spawn(move || {
            if let Err(error) = write_and_prune(&dir, revision, &records) {
                tracing::warn!(error = %error, revision, "writing a snapshot failed");
            }
        }));
    }

    /// Writes a snapshot in this thread; the committer waits for it.
    fn snapshot_now(&mut self) -> Result<u64, StoreError> {
        self.wait_for_background();
        let Some((revision, records)) = self.cut_for_snapshot() else {
            return Err(StoreError::Unavailable(
                "starting a new log segment failed".into(),
            ));
        };
        write_and_prune(&self.dir, revision, &records)
            .map(|_| revision)
            .map_err(|e| StoreError::Unavailable(format!("writing a snapshot failed: {e}")))
    }

    /// Starts a new log segment after the current revision and takes the
    /// records the snapshot will hold (shared, not copied).
    fn cut_for_snapshot(&mut self) -> Option<(u64, Vec<Record>)> {
        let state = self.shared.state.read().expect("store poisoned");
        if let Err(error) = self.wal.rotate(state.revision + 1) {
            tracing::warn!(error = %error, "starting a new log segment failed");
            return None;
        }
        self.since_snapshot = 0;
        Some((state.revision, state.records.values().cloned().collect()))
    }

    fn wait_for_background(&mut self) {
        if let Some(handle) = self.background.take() {
            let _ = handle.join();
        }
    }
}

fn log_entry(record: &Record, deleted: bool) -> WalEntry {
    WalEntry {
        revision: record.revision,
        resource: record.key.resource.clone(),
        namespace: record.key.namespace.clone(),
        name: record.key.name.clone(),
        deleted,
        json: if deleted {
            Vec::new()
        } else {
            record.json.to_vec()
        },
    }
}

/// Writes the snapshot of `records` at `revision`, then removes the older
/// snapshots and every log segment it covers.
fn write_and_prune(dir: &Path, revision: u64, records: &[Record]) -> Result<(), OpenError> {
    let started = std::time::Instant::now();
    let body = SnapshotBody {
        revision,
        records: records
            .iter()
            .map(|r| SnapshotRecord {
                resource: &r.key.resource,
                namespace: &r.key.namespace,
                name: &r.key.name,
                revision: r.revision,
                json: &r.json,
            })
            .collect(),
    };
    let path = snapshot::write(dir, &body)?;
    // The segment after `revision` was started before the records were
    // taken, so every older segment ends at or before `revision`.
    for (start, segment) in wal::list_segments(dir)? {
        if start <= revision {
            remove(&segment);
        }
    }
    for (older, file) in snapshot::list(dir)? {
        if older < revision {
            remove(&file);
        }
    }
    wal::sync_dir(dir)?;
    tracing::info!(
        path = %path.display(),
        revision,
        records = records.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot written"
    );
    Ok(())
}

fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "removing a covered file failed");
    }
}

fn remove_temporary_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            remove(&entry.path());
        }
    }
}

/// Loads the newest snapshot and replays the log after it.
fn recover(dir: &Path) -> Result<Recovered, OpenError> {
    let mut recovered = Recovered {
        records: BTreeMap::new(),
        revision: 1,
        snapshot_revision: 0,
        replayed: 0,
    };
    if let Some((_, path)) = snapshot::list(dir)?.pop() {
        let snapshot = snapshot::open(&path)?;
        recovered.records = load_snapshot(&snapshot);
        recovered.revision = snapshot.body().revision.to_native();
        recovered.snapshot_revision = recovered.revision;
    }

    let segments = wal::list_segments(dir)?;
    let last = segments.len().saturating_sub(1);
    for (index, (_, path)) in segments.iter().enumerate() {
        let scanned = wal::scan_segment(path, |entry| {
            let revision = entry.revision.to_native();
            if revision <= recovered.revision {
                return Ok(());
            }
            if revision != recovered.revision + 1 {
                return Err(OpenError::Gap {
                    path: path.clone(),
                    previous: recovered.revision,
                    found: revision,
                });
            }
            let key = Key::new(&entry.resource, &entry.namespace, &entry.name);
            if entry.deleted {
                recovered.records.remove(&key);
            } else {
                let json = Bytes::copy_from_slice(&entry.json);
                recovered
                    .records
                    .insert(key.clone(), Record::new(key, revision, json));
            }
            recovered.revision = revision;
            recovered.replayed += 1;
            Ok(())
        })?;
        let end = scanned?;
        if let Some(reason) = end.torn {
            if index != last {
                return Err(OpenError::CorruptLog {
                    path: path.clone(),
                    offset: end.valid_len,
                    reason,
                });
            }
            tracing::warn!(
                path = %path.display(),
                kept_bytes = end.valid_len,
                dropped_bytes = end.file_len - end.valid_len,
                reason,
                revision = recovered.revision,
                "cut a torn log tail at the last whole record"
            );
            wal::truncate_segment(path, end.valid_len)?;
        }
    }
    Ok(recovered)
}

/// Builds the records of a snapshot: keys are copied, each record's JSON
/// stays in the mapping (shared, not copied), nothing is parsed. The
/// snapshot was validated when it was opened.
fn load_snapshot(snapshot: &snapshot::OpenSnapshot) -> BTreeMap<Key, Record> {
    // Snapshots are written in key order, which makes this a bulk build.
    snapshot
        .body()
        .records
        .iter()
        .map(|r| {
            let key = Key::new(&r.resource, &r.namespace, &r.name);
            let json = snapshot.share(&r.json);
            (key.clone(), Record::new(key, r.revision.to_native(), json))
        })
        .collect()
}

/// Stops the committer without a last snapshot, as a crash would leave
/// the directory (minus a torn tail).
#[cfg(test)]
impl DurableStore {
    async fn stop_without_snapshot(&self) {
        self.stop(false).await.unwrap();
    }
}

#[cfg(test)]
mod tests;
