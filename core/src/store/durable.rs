//! The durable store: the [`Store`] contract, kept across restarts and
//! crashes.
//!
//! What callers may rely on, beyond the [`Store`] contract:
//!
//! * a write is acknowledged only after its log entry reached the disk
//!   (`fdatasync`); after a crash every acknowledged write is back, with its
//!   revision, and no revision is handed out twice;
//! * concurrent writes share one sync (group commit): writers decide their
//!   writes in order under a lock, and a log thread appends everything
//!   decided while its previous sync ran in one write and syncs once, so
//!   deciding overlaps syncing (see [`Decider`]);
//! * every write is answered in the order it was decided, refusals too: a
//!   writer told of a conflict can read the write it conflicted with;
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
//! [`WalWriter`]. Which one is used is decided at open
//! ([`DurableOptions::wal_io`]) and logged, with whether the kernel allows
//! io_uring.
//!
//! [`close`]: DurableStore::close

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Decides writes, in the writers' threads, one at a time.
    decider: Arc<Mutex<Decider>>,
    /// To the snapshot thread.
    requests: mpsc::Sender<Request>,
    snapshots: Mutex<Option<JoinHandle<()>>>,
    /// Held for the store's life; released when it is dropped.
    _lock: DataDirLock,
}

/// What the writers, the log thread, the snapshot thread and the readers
/// share.
struct Shared {
    state: RwLock<State>,
    log: Arc<WatchLog>,
    /// Why writes are refused, once the log failed.
    failed: OnceLock<String>,
    /// The revision of the latest write applied to `state` (`state.revision`
    /// without the lock), for the decider to drop what it need not overlay
    /// any more.
    applied: AtomicU64,
    /// A periodic snapshot is under way (asked for, not yet written).
    snapshotting: AtomicBool,
}

/// The acknowledged state.
struct State {
    records: BTreeMap<Key, Record>,
    /// The revision of the latest acknowledged write.
    revision: u64,
}

/// Where a write's outcome goes.
type Reply = oneshot::Sender<Result<Record, StoreError>>;

/// Where a snapshot's revision goes.
type SnapshotReply = oneshot::Sender<Result<u64, StoreError>>;

/// Work for the snapshot thread: from callers, and from the log thread.
enum Request {
    /// Writes a snapshot now and answers with its revision.
    Snapshot { reply: SnapshotReply },
    /// Stops, after writing a last snapshot if `snapshot` is set.
    Close {
        snapshot: bool,
        reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
    /// From the log thread: the log moved to a new segment, and the
    /// records a snapshot at the revision before it holds.
    Rotated {
        cut: Result<Cut, String>,
        why: Rotation,
    },
}

/// Work for the log thread, in revision order.
enum LogWork {
    Write(LogWrite),
    /// Start a new segment at `next_revision`, then cut a snapshot there.
    Rotate {
        next_revision: u64,
        why: Rotation,
    },
}

/// A decided write and its log frame, or one refused: its writer is
/// answered after the writes decided before it are applied, so that what
/// it conflicted with can be read when it hears of it.
enum LogWrite {
    Logged { frame: Vec<u8>, decided: Decided },
    Refused { error: StoreError, reply: Reply },
}

/// Why a snapshot is cut.
enum Rotation {
    /// Enough writes since the last one: written in the background.
    Periodic,
    /// Asked for: written in the snapshot thread, and answered.
    Asked(SnapshotReply),
    /// The last one before the store closes.
    Close,
}

/// What recovery found, for the start-up log line.
struct Recovered {
    records: BTreeMap<Key, Record>,
    revision: u64,
    snapshot_revision: u64,
    replayed: u64,
    /// The last log segment, if any.
    tail: Option<Tail>,
}

/// The last log segment as recovery left it: `len` bytes of whole frames,
/// then zeros to `allocated`.
struct Tail {
    start: u64,
    path: PathBuf,
    len: u64,
    allocated: u64,
    /// The revision of its last entry, if it has one.
    newest: Option<u64>,
}

impl Tail {
    /// Whether the next write, `revision + 1`, may go at its end: the log
    /// stays one sequence. (A start then appends to it rather than leave a
    /// new, almost empty segment behind each time.)
    fn continues(&self, revision: u64) -> bool {
        match self.newest {
            Some(newest) => newest == revision,
            None => self.start == revision + 1,
        }
    }
}

impl DurableStore {
    /// Opens (or creates) the store in `dir` with default options.
    pub fn open(dir: &Path) -> Result<DurableStore, OpenError> {
        DurableStore::open_with(dir, DurableOptions::default())
    }

    /// Locks `dir`, recovers the state it holds and starts the log and snapshot threads.
    pub fn open_with(dir: &Path, options: DurableOptions) -> Result<DurableStore, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let lock = DataDirLock::acquire(dir)?;
        remove_temporary_files(dir);

        let started = std::time::Instant::now();
        let mut recovered = recover(dir)?;
        let io_uring = match wal::io_uring_available() {
            Ok(()) => "available".to_owned(),
            Err(reason) => reason,
        };
        let (io, segment_bytes) = (options.wal_io, options.segment_bytes);
        let wal = match recovered.tail.take() {
            Some(tail) if tail.continues(recovered.revision) => {
                let (start, len, allocated) = (tail.start, tail.len, tail.allocated);
                WalWriter::resume(dir, &tail.path, start, len, allocated, io, segment_bytes)?
            }
            _ => WalWriter::open(dir, recovered.revision + 1, io, segment_bytes)?,
        };
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
            applied: AtomicU64::new(recovered.revision),
            snapshotting: AtomicBool::new(false),
        });
        let (requests, receiver) = mpsc::channel();
        let (to_log, log_work) = mpsc::channel();
        let (log_shared, rotated) = (shared.clone(), requests.clone());
        let log = std::thread::Builder::new()
            .name("store-log".into())
            .spawn(move || log_thread(wal, log_shared, log_work, rotated))
            .expect("spawning the store log thread");
        let decider = Arc::new(Mutex::new(Decider {
            to_log: Some(to_log),
            decided: recovered.revision,
            pending: HashMap::new(),
            prune_at: PRUNE_AT,
            last_cut: recovered.revision - recovered.replayed,
            snapshot_every: options.snapshot_every,
        }));
        let snapshotter = Snapshotter {
            shared: shared.clone(),
            decider: decider.clone(),
            dir: dir.to_owned(),
            log: Some(log),
            background: None,
        };
        let handle = std::thread::Builder::new()
            .name("store-snapshots".into())
            .spawn(move || snapshotter.run(receiver))
            .expect("spawning the store snapshot thread");
        Ok(DurableStore {
            shared,
            decider,
            requests,
            snapshots: Mutex::new(Some(handle)),
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
        let handle = self
            .snapshots
            .lock()
            .expect("snapshot thread handle")
            .take();
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
        let handle = self.snapshots.lock().map(|mut h| h.take()).unwrap_or(None);
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
        self.decider
            .lock()
            .expect("store poisoned")
            .write(&self.shared, key, op, reply);
        Box::pin(async move { answer.await.unwrap_or_else(|_| Err(stopped())) })
    }

    fn watch(&self, after: u64) -> Result<WatchCursor, StoreError> {
        self.shared.log.cursor(after)
    }
}

/// Decides writes in order, in the writers' threads, under a lock.
///
/// Writes go through two steps, so that deciding the next writes overlaps
/// the sync of the ones before: the decider checks each write against the
/// applied state plus the writes it decided before that are not applied
/// yet (`pending`), gives it the next revision, encodes its log frame and
/// hands it to the log thread; the log thread appends everything handed
/// to it during its last sync in one write, syncs once, then applies those
/// writes to the state and the watch log and answers their writers. Only
/// the log thread changes the state; snapshots are cut there too, between
/// two appends, and written by the snapshot thread.
struct Decider {
    /// To the log thread; `None` once the store is closing.
    to_log: Option<mpsc::Sender<LogWork>>,
    /// The revision of the latest decided write (acknowledged or not).
    decided: u64,
    /// Decided but maybe not applied yet: each key's newest decided state
    /// and its revision (`None`: deleted).
    pending: HashMap<Key, (u64, Option<Record>)>,
    /// `pending` is pruned when it reaches this size.
    prune_at: usize,
    /// The revision the last snapshot covers (or was asked to cover).
    last_cut: u64,
    snapshot_every: u64,
}

/// `pending` is pruned of applied writes once it holds this many keys
/// (and then again at twice what is left).
const PRUNE_AT: usize = 256;

/// A write that passed its preconditions, waiting for the sync.
struct Decided {
    kind: EventType,
    record: Record,
    previous: Option<Record>,
    reply: Reply,
}

impl Decider {
    fn write(&mut self, shared: &Shared, key: Key, op: Prepared, reply: Reply) {
        if self.to_log.is_none() {
            let _ = reply.send(Err(stopped()));
            return;
        }
        if let Some(reason) = shared.failed.get() {
            let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
            return;
        }
        if self.pending.len() >= self.prune_at {
            // What the state holds needs no overlay.
            let applied = shared.applied.load(Ordering::Acquire);
            self.pending.retain(|_, (revision, _)| *revision > applied);
            self.prune_at = PRUNE_AT.max(self.pending.len() * 2);
        }
        let current = match self.pending.get(&key) {
            Some((_, pending)) => pending.clone(),
            None => {
                let state = shared.state.read().expect("store poisoned");
                state.records.get(&key).cloned()
            }
        };
        let (kind, record) = match decide(&key, op, current.as_ref(), self.decided + 1) {
            Ok(decided) => decided,
            Err(error) => {
                self.to_log(LogWork::Write(LogWrite::Refused { error, reply }));
                return;
            }
        };
        self.decided += 1;
        let deleted = kind == EventType::Deleted;
        let mut frame = Vec::new();
        wal::encode_frame(&log_entry(&record, deleted), &mut frame);
        let after = (!deleted).then(|| record.clone());
        self.pending.insert(key, (self.decided, after));
        let decided = Decided {
            kind,
            record,
            previous: current,
            reply,
        };
        self.to_log(LogWork::Write(LogWrite::Logged { frame, decided }));

        let due = self.decided - self.last_cut >= self.snapshot_every;
        if due && !shared.snapshotting.swap(true, Ordering::AcqRel) {
            let _ = self.rotate(Rotation::Periodic);
        }
    }

    fn to_log(&self, work: LogWork) {
        if let Some(to_log) = &self.to_log {
            // The log thread only stops once `to_log` is dropped.
            let _ = to_log.send(work);
        }
    }

    /// Asks the log thread to start a new segment after the writes decided
    /// so far and to cut a snapshot there. Gives `why` back if the store is
    /// closing.
    fn rotate(&mut self, why: Rotation) -> Result<(), Rotation> {
        if self.to_log.is_none() {
            return Err(why);
        }
        self.last_cut = self.decided;
        let next_revision = self.decided + 1;
        self.to_log(LogWork::Rotate { next_revision, why });
        Ok(())
    }
}

/// The thread that writes snapshots and closes the store.
struct Snapshotter {
    shared: Arc<Shared>,
    decider: Arc<Mutex<Decider>>,
    dir: PathBuf,
    log: Option<JoinHandle<()>>,
    /// The background snapshot in progress, if any.
    background: Option<JoinHandle<()>>,
}

impl Snapshotter {
    fn run(mut self, requests: mpsc::Receiver<Request>) {
        let mut close_reply = None;
        let mut result = Ok(());
        while let Ok(request) = requests.recv() {
            match request {
                Request::Snapshot { reply } => {
                    let mut decider = self.decider.lock().expect("store poisoned");
                    if let Err(Rotation::Asked(reply)) = decider.rotate(Rotation::Asked(reply)) {
                        let _ = reply.send(Err(stopped()));
                    }
                }
                Request::Close { snapshot, reply } => {
                    close_reply = reply;
                    let mut decider = self.decider.lock().expect("store poisoned");
                    let wanted = snapshot
                        && self.shared.failed.get().is_none()
                        && decider.decided > decider.last_cut;
                    let asked = wanted && decider.rotate(Rotation::Close).is_ok();
                    // No write is decided after this: the log thread stops
                    // once it has logged, applied and answered the ones
                    // handed to it.
                    decider.to_log = None;
                    drop(decider);
                    if !asked {
                        break;
                    }
                }
                Request::Rotated { cut, why } => {
                    let closing = matches!(why, Rotation::Close);
                    let written = self.write(cut, why);
                    if closing {
                        result = written;
                        break;
                    }
                }
            }
        }

        if let Some(log) = self.log.take() {
            let _ = log.join();
        }
        // Rotations the log thread did before it stopped.
        while let Ok(request) = requests.try_recv() {
            match request {
                Request::Rotated { cut, why } => {
                    let _ = self.write(cut, why);
                }
                Request::Snapshot { reply } => {
                    let _ = reply.send(Err(stopped()));
                }
                Request::Close { reply, .. } => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
        }
        self.wait_for_background();
        let revision = self.shared.state.read().expect("store poisoned").revision;
        tracing::info!(revision, "store closed");
        if let Some(reply) = close_reply {
            let _ = reply.send(result);
        }
    }

    /// Writes the snapshot of a cut: in the background if it is periodic
    /// (and the store is open), here otherwise.
    fn write(&mut self, cut: Result<Cut, String>, why: Rotation) -> Result<(), StoreError> {
        let cut = cut.map_err(|reason| {
            tracing::warn!(error = %reason, "starting a new log segment failed");
            StoreError::Unavailable(reason)
        });
        self.wait_for_background();
        let result = match (cut, &why) {
            (Err(error), _) => Err(error),
            (Ok(Cut { revision, records }), Rotation::Periodic) => {
                let (dir, shared) = (self.dir.clone(), self.shared.clone());
                self.background = Some(std::thread::spawn(move || {
                    if let Err(error) = write_and_prune(&dir, revision, &records) {
                        tracing::warn!(error = %error, revision, "writing a snapshot failed");
                    }
                    shared.snapshotting.store(false, Ordering::Release);
                }));
                return Ok(());
            }
            (Ok(Cut { revision, records }), _) => write_and_prune(&self.dir, revision, &records)
                .map(|()| revision)
                .map_err(|e| StoreError::Unavailable(format!("writing a snapshot failed: {e}"))),
        };
        match why {
            Rotation::Periodic => self.shared.snapshotting.store(false, Ordering::Release),
            Rotation::Asked(reply) => {
                let _ = reply.send(result.clone());
            }
            Rotation::Close => {}
        }
        result.map(|_| ())
    }

    fn wait_for_background(&mut self) {
        if let Some(handle) = self.background.take() {
            let _ = handle.join();
        }
    }
}

/// The records a snapshot at `revision` holds, taken by the log thread
/// right after it moved the log to a segment starting after `revision`.
struct Cut {
    revision: u64,
    records: Vec<Record>,
}

/// The log thread: appends and syncs the writes the decider hands it, as
/// many at once as have queued up, then applies them and answers their
/// writers. After a failed append it writes nothing more and refuses
/// everything handed to it.
fn log_thread(
    mut wal: WalWriter,
    shared: Arc<Shared>,
    work: mpsc::Receiver<LogWork>,
    done: mpsc::Sender<Request>,
) {
    let mut next = work.recv().ok();
    while let Some(first) = next.take() {
        let mut queued = Vec::new();
        let rotate = match first {
            LogWork::Rotate { next_revision, why } => Some((next_revision, why)),
            LogWork::Write(write) => {
                queued.push(write);
                // Whatever else is queued goes in the same append, up to a
                // rotation, which comes after it.
                loop {
                    match work.try_recv() {
                        Ok(LogWork::Write(write)) => queued.push(write),
                        Ok(LogWork::Rotate { next_revision, why }) => {
                            break Some((next_revision, why));
                        }
                        Err(_) => break None,
                    }
                }
            }
        };
        if !queued.is_empty() {
            let outcome = match shared.failed.get() {
                Some(reason) => Err(reason.clone()),
                None => append_all(&mut wal, &queued),
            };
            apply(&shared, queued, outcome);
        }
        if let Some((next_revision, why)) = rotate {
            let cut = match shared.failed.get() {
                Some(reason) => Err(reason.clone()),
                None => wal.rotate(next_revision).map_err(|e| e.to_string()),
            }
            .map(|()| {
                let state = shared.state.read().expect("store poisoned");
                Cut {
                    revision: state.revision,
                    records: state.records.values().cloned().collect(),
                }
            });
            let _ = done.send(Request::Rotated { cut, why });
        }
        next = work.recv().ok();
    }
}

/// Appends the frames of `writes` (consecutive, in revision order) in one
/// write and one sync.
fn append_all(wal: &mut WalWriter, writes: &[LogWrite]) -> Result<(), String> {
    let frames: Vec<(&[u8], u64)> = writes
        .iter()
        .filter_map(|write| match write {
            LogWrite::Logged { frame, decided } => Some((&frame[..], decided.record.revision)),
            LogWrite::Refused { .. } => None,
        })
        .collect();
    let joined;
    let bytes = match frames.as_slice() {
        [] => return Ok(()),
        [(only, _)] => *only,
        many => {
            joined = many
                .iter()
                .map(|(frame, _)| *frame)
                .collect::<Vec<_>>()
                .concat();
            &joined[..]
        }
    };
    wal.append(bytes, frames[0].1)
        .map_err(|error| format!("the write-ahead log failed: {error}"))
}

/// Applies writes the log is done with: on the disk, they go to the state
/// and the watch log, and every writer is answered in order; if the log
/// failed, their writers are refused, and so is every later write.
fn apply(shared: &Shared, writes: Vec<LogWrite>, outcome: Result<(), String>) {
    if let Err(reason) = outcome {
        if shared.failed.set(reason.clone()).is_ok() {
            tracing::error!(error = %reason, "writing the log failed; refusing writes from now on");
        }
        for write in writes {
            let reply = match write {
                LogWrite::Logged { decided, .. } => decided.reply,
                LogWrite::Refused { reply, .. } => reply,
            };
            let _ = reply.send(Err(StoreError::Unavailable(reason.clone())));
        }
        return;
    }
    let last = writes.iter().rev().find_map(|write| match write {
        LogWrite::Logged { decided, .. } => Some(decided.record.revision),
        LogWrite::Refused { .. } => None,
    });
    if let Some(last) = last {
        let mut state = shared.state.write().expect("store poisoned");
        for write in &writes {
            let LogWrite::Logged { decided, .. } = write else {
                continue;
            };
            if decided.kind == EventType::Deleted {
                state.records.remove(&decided.record.key);
            } else {
                state
                    .records
                    .insert(decided.record.key.clone(), decided.record.clone());
            }
        }
        state.revision = last;
        drop(state);
        shared.applied.store(last, Ordering::Release);
    }
    for write in writes {
        match write {
            LogWrite::Logged { decided, .. } => {
                shared.log.append(Event {
                    kind: decided.kind,
                    record: decided.record.clone(),
                    previous: decided.previous,
                });
                let _ = decided.reply.send(Ok(decided.record));
            }
            LogWrite::Refused { error, reply } => {
                let _ = reply.send(Err(error));
            }
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
        tail: None,
    };
    if let Some((_, path)) = snapshot::list(dir)?.pop() {
        let snapshot = snapshot::open(&path)?;
        recovered.records = load_snapshot(&snapshot);
        recovered.revision = snapshot.body().revision.to_native();
        recovered.snapshot_revision = recovered.revision;
    }

    let segments = wal::list_segments(dir)?;
    let last = segments.len().saturating_sub(1);
    for (index, (start, path)) in segments.iter().enumerate() {
        let mut newest = None;
        let scanned = wal::scan_segment(path, |entry| {
            let revision = entry.revision.to_native();
            newest = Some(revision);
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
        if index == last {
            recovered.tail = Some(Tail {
                start: *start,
                path: path.clone(),
                len: end.valid_len,
                allocated: if end.torn.is_some() {
                    end.valid_len
                } else {
                    end.file_len
                },
                newest,
            });
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

/// Stops the store without a last snapshot, as a crash would leave
/// the directory (minus a torn tail).
#[cfg(test)]
impl DurableStore {
    async fn stop_without_snapshot(&self) {
        self.stop(false).await.unwrap();
    }
}

#[cfg(test)]
mod tests;
