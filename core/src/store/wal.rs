//! The write-ahead log: every acknowledged write, in revision order, on disk.
//!
//! What callers may rely on:
//!
//! * the log is a series of segment files `wal-<first revision>.log`; each
//!   holds frames of one rkyv-archived [`WalEntry`] each, with a CRC-32 over
//!   the frame's length and payload;
//! * [`WalWriter::append`] returns only after the frames reached the disk
//!   (`fdatasync`), so a caller may acknowledge the writes they carry;
//! * [`scan_segment`] hands out each whole, valid entry in place (archived,
//!   not deserialised) and reports where the valid part ends, so recovery can
//!   cut a torn tail at the last whole record.
//!
//! Two IO paths write the log, chosen when the store opens ([`WalIo`]):
//! io_uring (the write and the `fdatasync` submitted together, linked, in
//! one system call) and plain file IO (`pwrite`, then `fdatasync`). Both
//! leave the same bytes. Plain file IO is the default: on the machines we
//! measured it was faster at every concurrency (benches/README.md); a
//! write through io_uring goes to the kernel's worker threads and back.
//!
//! Frame layout, all integers little-endian:
//!
//! ```text
//! [payload length: u32][crc32(length bytes ++ payload): u32][payload][0-7 bytes of padding]
//! ```
//!
//! Frames start at multiples of 8 bytes, so an archive read from a mapping of
//! the file is aligned as rkyv expects. A segment may end in zeros (the
//! writer grows files ahead of its frames): a run of zeros to the end of the
//! file is a clean end, not a torn tail.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use rkyv::rancor;

/// Bytes before a frame's payload.
const HEADER: usize = 8;
/// Frames and payloads are aligned to this many bytes.
const ALIGN: usize = 8;
/// Larger lengths are taken as garbage, not as a record.
const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// One logged write: the record's new state, or its deletion.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
pub struct WalEntry {
    pub revision: u64,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub deleted: bool,
    /// The object's JSON with its resourceVersion stamped; empty for deletes.
    pub json: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Appends one entry's frame to `out`.
pub fn encode_frame(entry: &WalEntry, out: &mut Vec<u8>) {
    let payload = rkyv::to_bytes::<rancor::Error>(entry).expect("WAL entries always archive");
    let len = u32::try_from(payload.len()).expect("a WAL entry is below 4 GiB");
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(&payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&payload);
    out.resize(out.len().next_multiple_of(ALIGN), 0);
}

/// The segment file that starts at `revision`.
pub fn segment_path(dir: &Path, revision: u64) -> PathBuf {
    dir.join(format!("wal-{revision:020}.log"))
}

/// Every segment of `dir` with the revision it starts at, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(start) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((start, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// Where the valid part of a scanned segment ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    /// Length of the whole, valid frames at the start of the file (without
    /// the zeros after them).
    pub valid_len: u64,
    /// Length of the file; more than `valid_len` when the tail is torn or
    /// ends in zeros.
    pub file_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub torn: Option<&'static str>,
}

/// Reads a segment and calls `each` on every whole, valid entry in order,
/// stopping at the first frame that is cut short, fails its checksum or is
/// not a valid archive. An error from `each` stops the scan and is returned.
pub fn scan_segment<E>(
    path: &Path,
    mut each: impl FnMut(&ArchivedWalEntry) -> Result<(), E>,
) -> Result<Result<ScanEnd, E>, WalError> {
    let file = File::open(path).map_err(io("opening", path))?;
    let file_len = file
        .metadata()
        .map_err(io("reading the size of", path))?
        .len();
    if file_len == 0 {
        return Ok(Ok(ScanEnd {
            valid_len: 0,
            file_len,
            torn: None,
        }));
    }
    // SAFETY: the data directory lock keeps every other coxswain process
    // from writing this file, and this process does not change it while the
    // mapping lives (it is dropped before a torn tail is cut).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io("mapping", path))?;
    let bytes: &[u8] = &map;

    let mut offset = 0usize;
    let torn = loop {
        if offset == bytes.len() {
            break None;
        }
        if bytes.len() - offset < HEADER {
            break Some("a frame header is cut short");
        }
        let len_bytes: [u8; 4] = bytes[offset..offset + 4].try_into().expect("4 bytes");
        let crc_bytes: [u8; 4] = bytes[offset + 4..offset + 8].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len == 0 && bytes[offset..].iter().all(|&b| b == 0) {
            // The zeros the writer grows the file by: the clean end.
            break None;
        }
        if len == 0 || len > MAX_PAYLOAD {
            break Some("a frame length is zero or implausible");
        }
        let start = offset + HEADER;
        let end = start + len;
        // A frame without its padding was never acknowledged: the padding
        // is written with it.
        if end.next_multiple_of(ALIGN) > bytes.len() {
            break Some("a frame is cut short");
        }
        let payload = &bytes[start..end];
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len_bytes);
        crc.update(payload);
        if crc.finalize() != u32::from_le_bytes(crc_bytes) {
            break Some("a frame fails its checksum");
        }
        let Ok(entry) = rkyv::access::<ArchivedWalEntry, rancor::Error>(payload) else {
            break Some("a frame is not a valid archive");
        };
        if let Err(e) = each(entry) {
            return Ok(Err(e));
        }
        offset = end.next_multiple_of(ALIGN);
    };
    Ok(Ok(ScanEnd {
        valid_len: offset as u64,
        file_len,
        torn,
    }))
}

/// Cuts a segment at `len` bytes and makes the cut durable.
pub fn truncate_segment(path: &Path, len: u64) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("opening", path))?;
    file.set_len(len).map_err(io("truncating", path))?;
    file.sync_all().map_err(io("syncing", path))
}

/// Makes the directory entries of `dir` (created, renamed, removed files)
/// durable.
pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the directory", dir))
}

/// How the log reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WalIo {
    /// io_uring when the kernel allows it, plain file IO otherwise.
    Auto,
    /// `pwrite` and `fdatasync` (the default: measured faster).
    #[default]
    Std,
    /// io_uring: write and `fdatasync` linked in one submission. Falls back
    /// to plain file IO when the kernel refuses io_uring.
    IoUring,
}

impl WalIo {
    pub fn name(self) -> &'static str {
        match self {
            WalIo::Auto => "auto",
            WalIo::Std => "std::fs pwrite + fdatasync",
            WalIo::IoUring => "io_uring write + fdatasync, linked",
        }
    }
}

impl std::str::FromStr for WalIo {
    type Err = String;

    fn from_str(text: &str) -> Result<WalIo, String> {
        match text {
            "auto" => Ok(WalIo::Auto),
            "std" => Ok(WalIo::Std),
            "io_uring" | "io-uring" | "uring" => Ok(WalIo::IoUring),
            other => Err(format!(
                "unknown log IO {other:?}: expected auto, std or io_uring"
            )),
        }
    }
}

/// Whether the kernel sets up an io_uring for this process, and why not.
pub fn io_uring_available() -> Result<(), String> {
    io_uring::IoUring::new(RING_ENTRIES)
        .map(drop)
        .map_err(|error| format!("io_uring unavailable: {error}"))
}

/// Submission queue size: a write and a sync per append.
const RING_ENTRIES: u32 = 8;

/// The open tail segment, appended to by the log thread alone.
///
/// Syncs should write data blocks only: appending past the end of a file
/// makes every `fdatasync` commit the new size too, and writing into
/// blocks reserved with `fallocate` makes it commit their conversion; on
/// the disks we measured either cost a third to a half more per sync. So
/// frames overwrite zeros written and synced before. Zeroing a file is not
/// free either (about 3.6 ms per MiB here, as much as the frames cost): in
/// the critical path it was a tenth to a third of a busy log's time. So
/// the next segment is zeroed and synced ahead by a thread of its own, in a
/// file of its own (an `fdatasync` of the tail would otherwise wait for its
/// pages), and the writer moves to it when a batch no longer fits. Until
/// one is ready (the first segment after a start, or when writes outrun
/// the zeroing) the tail grows by [`GROW`] bytes of zeros at a time.
pub struct WalWriter {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    /// Revision of the segment's first entry (its name).
    start: u64,
    /// Bytes of frames in the segment; the next frame goes here.
    len: u64,
    /// Size of the file: frames, then zeros.
    allocated: u64,
    /// Size of the segments prepared ahead.
    segment_bytes: u64,
    /// The next segment, being zeroed in the background.
    next: Option<JoinHandle<std::io::Result<File>>>,
    /// The ring, when the log is written through io_uring.
    ring: Option<io_uring::IoUring>,
}

/// The tail grows by this many bytes of zeros (or a segment's, if less) at a
/// time when no prepared segment is ready.
const GROW: u64 = 4 * 1024 * 1024;

/// Where the next segment is zeroed before it is renamed into the log.
/// Left over after a crash, it is removed at the next open (`.tmp`).
const NEXT_SEGMENT: &str = "next-segment.tmp";

impl WalWriter {
    /// Opens a fresh segment starting at `start`, and makes its directory
    /// entry durable. A file of that name can only be left over from an
    /// earlier run that logged nothing into it (recovery would otherwise
    /// have replayed its entries and started later), so it is emptied.
    /// Segments prepared later are `segment_bytes` long.
    pub fn open(
        dir: &Path,
        start: u64,
        wanted: WalIo,
        segment_bytes: u64,
    ) -> Result<WalWriter, WalError> {
        let (path, file) = fresh_segment(dir, start)?;
        Ok(WalWriter {
            dir: dir.to_owned(),
            file,
            path,
            start,
            len: 0,
            allocated: 0,
            segment_bytes: segment_bytes.max(ALIGN as u64),
            next: None,
            ring: ring(wanted),
        })
    }

    /// Reopens the segment at `path`, which starts at `start`, to append
    /// after its first `len` bytes of whole frames; the bytes after them,
    /// to `allocated`, are zeros.
    pub fn resume(
        dir: &Path,
        path: &Path,
        start: u64,
        len: u64,
        allocated: u64,
        wanted: WalIo,
        segment_bytes: u64,
    ) -> Result<WalWriter, WalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io("opening", path))?;
        Ok(WalWriter {
            dir: dir.to_owned(),
            file,
            path: path.to_owned(),
            start,
            len,
            allocated,
            segment_bytes: segment_bytes.max(ALIGN as u64),
            next: None,
            ring: ring(wanted),
        })
    }

    /// The IO path this log writes through.
    pub fn io(&self) -> WalIo {
        if self.ring.is_some() {
            WalIo::IoUring
        } else {
            WalIo::Std
        }
    }

    /// Writes `frames`, whose first entry is `first_revision`, and waits
    /// until they are on the disk. They go to a new segment when they do
    /// not fit in the zeros of this one and a prepared segment is ready.
    pub fn append(&mut self, frames: &[u8], first_revision: u64) -> Result<(), WalError> {
        use std::os::unix::fs::FileExt;

        let fits = self.len + frames.len() as u64 <= self.allocated;
        let ready = self.next.as_ref().is_some_and(|next| next.is_finished());
        if !fits && ready && self.len > 0 {
            self.start_segment(first_revision, true)?;
        }
        let end = self.len + frames.len() as u64;
        if end > self.allocated {
            let target = end.next_multiple_of(GROW.min(self.segment_bytes));
            let zeros = vec![0u8; (target - self.allocated) as usize];
            self.file
                .write_all_at(&zeros, self.allocated)
                .map_err(io("growing", &self.path))?;
            self.allocated = target;
        }
        let (written, synced) = match self.ring.as_mut() {
            Some(ring) => write_and_sync_linked(ring, &self.file, frames, self.len)
                .map_err(io("appending through io_uring to", &self.path))?,
            None => (0, false),
        };
        if written < frames.len() {
            // Plain file IO, or the rest of a short io_uring write.
            self.file
                .write_all_at(&frames[written..], self.len + written as u64)
                .map_err(io("appending to", &self.path))?;
        }
        if !synced || written < frames.len() {
            self.file.sync_data().map_err(io("syncing", &self.path))?;
        }
        self.len = end;
        // Past half a chunk, a log is busy enough to be worth a segment
        // prepared ahead (a quiet one never pays for zeroing one).
        if self.next.is_none() && self.len >= (GROW / 2).min(self.segment_bytes / 2) {
            let (path, bytes) = (self.dir.join(NEXT_SEGMENT), self.segment_bytes);
            self.next = Some(std::thread::spawn(move || zeroed_file(&path, bytes)));
        }
        Ok(())
    }

    /// Starts a new, empty segment whose first entry will be `next_revision`
    /// (for a snapshot to cover the ones before). A segment prepared ahead
    /// is kept for when a batch no longer fits: a tail of zeros would cost
    /// the next start a scan of them.
    pub fn rotate(&mut self, next_revision: u64) -> Result<(), WalError> {
        self.start_segment(next_revision, false)
    }

    /// Starts the segment whose first entry will be `next_revision`: the
    /// prepared one if asked for and ready, a fresh empty one otherwise (a
    /// preparation still running is left to finish for the next turn).
    fn start_segment(&mut self, next_revision: u64, prepared: bool) -> Result<(), WalError> {
        if next_revision == self.start {
            return Ok(());
        }
        let ready = prepared.then(|| self.next.take_if(|next| next.is_finished()));
        let prepared = match ready.flatten() {
            Some(next) => match next.join() {
                Ok(Ok(file)) => Some(file),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "zeroing the next log segment failed; growing instead");
                    None
                }
                Err(_) => None,
            },
            None => None,
        };
        match prepared {
            Some(file) => {
                let path = segment_path(&self.dir, next_revision);
                let allocated = file
                    .metadata()
                    .map_err(io("reading the size of", &path))?
                    .len();
                std::fs::rename(self.dir.join(NEXT_SEGMENT), &path)
                    .map_err(io("renaming the prepared segment to", &path))?;
                sync_dir(&self.dir)?;
                self.file = file;
                self.path = path;
                self.allocated = allocated;
            }
            None => {
                (self.path, self.file) = fresh_segment(&self.dir, next_revision)?;
                self.allocated = 0;
            }
        }
        self.start = next_revision;
        self.len = 0;
        Ok(())
    }

    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.len
    }
}

impl Drop for WalWriter {
    /// Removes the segment prepared ahead, unused (after its zeroing ends).
    fn drop(&mut self) {
        if let Some(next) = self.next.take() {
            let _ = next.join();
            let _ = std::fs::remove_file(self.dir.join(NEXT_SEGMENT));
        }
    }
}

/// io_uring when asked for (or left to `Auto`) and the kernel sets one up;
/// plain file IO otherwise.
fn ring(wanted: WalIo) -> Option<io_uring::IoUring> {
    match wanted {
        WalIo::Std => None,
        WalIo::Auto | WalIo::IoUring => io_uring::IoUring::new(RING_ENTRIES).ok(),
    }
}

/// Creates (or empties) the segment starting at `start` and makes its
/// directory entry durable.
fn fresh_segment(dir: &Path, start: u64) -> Result<(PathBuf, File), WalError> {
    let path = segment_path(dir, start);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    sync_dir(dir)?;
    Ok((path, file))
}

/// Writes a file of `bytes` zeros at `path` and syncs it, size included.
///
/// The zeros are written back a chunk at a time as they are written, so
/// that the disk's queue never holds more than a chunk of them ahead of a
/// sync of the log's tail.
fn zeroed_file(path: &Path, bytes: u64) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;

    const CHUNK: u64 = 256 * 1024;
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    let zeros = vec![0u8; CHUNK.min(bytes) as usize];
    let mut offset = 0;
    while offset < bytes {
        let n = (bytes - offset).min(CHUNK);
        file.write_all_at(&zeros[..n as usize], offset)?;
        // SAFETY: a plain system call on a file descriptor we own.
        let written = unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                n as libc::off64_t,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )
        };
        if written != 0 {
            return Err(std::io::Error::last_os_error());
        }
        offset += n;
    }
    file.sync_all()?;
    Ok(file)
}

/// Submits a write of `frames` at `offset` and an `fdatasync` linked after
/// it, and waits for both. Returns how many bytes were written and whether
/// the sync ran after them (a short write cancels it); the caller finishes
/// what is left with plain file IO.
fn write_and_sync_linked(
    ring: &mut io_uring::IoUring,
    file: &File,
    frames: &[u8],
    offset: u64,
) -> std::io::Result<(usize, bool)> {
    use std::os::fd::AsRawFd;

    use io_uring::{opcode, squeue, types};

    const WRITE: u64 = 1;
    const SYNC: u64 = 2;
    /// `ECANCELED`: the linked sync, after a short write.
    const CANCELED: i32 = 125;
    let fd = types::Fd(file.as_raw_fd());
    let len = u32::try_from(frames.len()).expect("a batch of frames is below 4 GiB");
    let write = opcode::Write::new(fd, frames.as_ptr(), len)
        .offset(offset)
        .build()
        .flags(squeue::Flags::IO_LINK)
        .user_data(WRITE);
    let sync = opcode::Fsync::new(fd)
        .flags(types::FsyncFlags::DATASYNC)
        .build()
        .user_data(SYNC);
    // SAFETY: `frames` and `file` outlive both operations: this function
    // waits for both completions before it returns, errors included.
    unsafe {
        let mut queue = ring.submission();
        queue
            .push(&write)
            .and_then(|()| queue.push(&sync))
            .map_err(|_| std::io::Error::other("the io_uring submission queue is full"))?;
    }
    let (mut written, mut synced, mut error) = (0, false, None);
    let mut completed = 0;
    while completed < 2 {
        match ring.submit_and_wait(2 - completed) {
            Ok(_) => {}
            // The operations are still in flight: wait again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for completion in ring.completion() {
            completed += 1;
            let result = completion.result();
            match (completion.user_data(), result) {
                (_, result) if result < 0 && result != -CANCELED => {
                    error = Some(std::io::Error::from_raw_os_error(-result));
                }
                (WRITE, result) => written = result.max(0) as usize,
                (_, result) => synced = result >= 0,
            }
        }
    }
    match error {
        Some(error) => Err(error),
        None => Ok((written, synced)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdir::TestDir;

    fn entry(revision: u64) -> WalEntry {
        WalEntry {
            revision,
            resource: "pods".into(),
            namespace: "default".into(),
            name: format!("pod-{revision}"),
            deleted: false,
            json: format!("{{\"n\":{revision}}}").into_bytes(),
        }
    }

    fn scan(path: &Path) -> (Vec<u64>, ScanEnd) {
        let mut seen = Vec::new();
        let end = scan_segment(path, |e| {
            seen.push(e.revision.to_native());
            Ok::<_, ()>(())
        })
        .unwrap()
        .unwrap();
        (seen, end)
    }

    #[test]
    fn appended_entries_are_scanned_back_in_order() {
        let dir = TestDir::new("wal-order");
        for io in [WalIo::Std, WalIo::IoUring] {
            let mut writer = WalWriter::open(dir.path(), 2, io, 1 << 20).unwrap();
            let allowed = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .is_ok_and(|v| v.trim() == "0");
            if allowed {
                assert_eq!(writer.io(), io, "the kernel allows io_uring");
            }
            let (mut frames, mut first) = (Vec::new(), 2);
            for revision in 2..12 {
                encode_frame(&entry(revision), &mut frames);
                // Appends of one frame and of several, back to back.
                if revision % 3 == 0 {
                    writer.append(&frames, first).unwrap();
                    frames.clear();
                    first = revision + 1;
                }
            }
            writer.append(&frames, first).unwrap();
            let (seen, end) = scan(&segment_path(dir.path(), 2));
            assert_eq!(seen, (2..12).collect::<Vec<_>>(), "{io:?}");
            // The zeros the writer grew the file by are a clean end.
            assert_eq!(end.torn, None);
            assert_eq!(end.valid_len, writer.len());
            assert!(end.file_len > end.valid_len);
        }
    }

    #[test]
    fn a_busy_log_moves_to_segments_zeroed_ahead_and_reads_back_whole() {
        let dir = TestDir::new("wal-prepared");
        let mut writer = WalWriter::open(dir.path(), 2, WalIo::Std, 4096).unwrap();
        let mut revision = 2;
        // Until a third segment starts, so that at least one prepared
        // segment was filled and left behind.
        while list_segments(dir.path()).unwrap().len() < 3 {
            let mut frames = Vec::new();
            encode_frame(&entry(revision), &mut frames);
            encode_frame(&entry(revision + 1), &mut frames);
            writer.append(&frames, revision).unwrap();
            revision += 2;
            if writer.next.is_some() {
                // Give the zeroing thread its time, as a busy log would.
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            assert!(
                revision < 10_000,
                "the log never moved to a prepared segment"
            );
        }
        let segments = list_segments(dir.path()).unwrap();
        let mut seen = Vec::new();
        for (start, path) in &segments {
            let (revisions, end) = scan(path);
            assert_eq!(revisions.first(), Some(start), "{}", path.display());
            assert_eq!(end.torn, None, "{}", path.display());
            seen.extend(revisions);
        }
        assert_eq!(seen, (2..revision).collect::<Vec<_>>());
        // A prepared segment was zeroed to its full size before use.
        assert_eq!(std::fs::metadata(&segments[1].1).unwrap().len(), 4096);

        // A rotation for a snapshot starts an empty segment, not a prepared
        // one (the next start would scan its zeros); dropping the writer
        // removes the prepared one.
        while writer.next.as_ref().is_some_and(|next| !next.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        writer.rotate(revision).unwrap();
        let tail = segment_path(dir.path(), revision);
        assert_eq!(std::fs::metadata(&tail).unwrap().len(), 0);
        drop(writer);
        assert!(!dir.path().join(NEXT_SEGMENT).exists());
    }

    #[test]
    fn every_cut_inside_the_last_frame_is_reported_as_a_torn_tail() {
        let dir = TestDir::new("wal-torn");
        let mut frames = Vec::new();
        encode_frame(&entry(2), &mut frames);
        let whole = frames.len();
        encode_frame(&entry(3), &mut frames);
        let path = segment_path(dir.path(), 2);
        for cut in whole + 1..frames.len() {
            std::fs::write(&path, &frames[..cut]).unwrap();
            let (seen, end) = scan(&path);
            assert_eq!(seen, vec![2], "cut at {cut}");
            assert_eq!(end.valid_len, whole as u64);
            assert!(end.torn.is_some());
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum_and_ends_the_valid_part() {
        let dir = TestDir::new("wal-flip");
        let mut frames = Vec::new();
        encode_frame(&entry(2), &mut frames);
        let whole = frames.len();
        encode_frame(&entry(3), &mut frames);
        frames[whole + HEADER + 3] ^= 0x10;
        let path = segment_path(dir.path(), 2);
        std::fs::write(&path, &frames).unwrap();
        let (seen, end) = scan(&path);
        assert_eq!(seen, vec![2]);
        assert_eq!(end.torn, Some("a frame fails its checksum"));
    }
}
