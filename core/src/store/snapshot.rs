//! Snapshots: every live record at one revision, as one rkyv archive.
//!
//! What callers may rely on:
//!
//! * [`write`] streams the archive to a temporary file, syncs it and renames
//!   it into place, so a snapshot file is either whole or absent;
//! * [`open`] maps the newest file in place and checks its header, length,
//!   CRC-32 and archive structure before anything is read from it, and fails
//!   with [`SnapshotError::Corrupt`] otherwise: a snapshot is never half
//!   loaded;
//! * the records of an opened snapshot are read in place: their JSON is a
//!   [`Bytes`] slice of the mapping, not a copy.
//!
//! File layout: a 32-byte header (`CXSNAP01`, body length as u64 LE, CRC-32
//! of the body as u32 LE, zero padding) and then the archive, so the archive
//! starts aligned inside the page-aligned mapping.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rkyv::rancor;
use rkyv::with::InlineAsBox;

const MAGIC: &[u8; 8] = b"CXSNAP01";
const HEADER: usize = 32;

/// One live record, borrowed from the store while the snapshot is written.
#[derive(rkyv::Archive, rkyv::Serialize)]
pub struct SnapshotRecord<'a> {
    #[rkyv(with = InlineAsBox)]
    pub resource: &'a str,
    #[rkyv(with = InlineAsBox)]
    pub namespace: &'a str,
    #[rkyv(with = InlineAsBox)]
    pub name: &'a str,
    pub revision: u64,
    #[rkyv(with = InlineAsBox)]
    pub json: &'a [u8],
}

/// The archive's root: the store's revision and every live record.
#[derive(rkyv::Archive, rkyv::Serialize)]
pub struct SnapshotBody<'a> {
    pub revision: u64,
    pub records: Vec<SnapshotRecord<'a>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "snapshot {} is corrupt ({reason}); refusing to start: move it away only if the \
         write-ahead log still holds every revision it covers",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The snapshot file of `revision` in `dir`.
pub fn path(dir: &Path, revision: u64) -> PathBuf {
    dir.join(format!("snapshot-{revision:020}.rkyv"))
}

/// Every snapshot of `dir` with its revision, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("listing", dir))? {
        let entry = entry.map_err(io("listing", dir))?;
        let name = entry.file_name();
        let Some(revision) = name
            .to_str()
            .and_then(|n| n.strip_prefix("snapshot-"))
            .and_then(|n| n.strip_suffix(".rkyv"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((revision, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// A writer that keeps the CRC-32 of what passes through it.
struct Checksummed<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `body` as the snapshot of `body.revision` in `dir`, durably.
pub fn write(dir: &Path, body: &SnapshotBody<'_>) -> Result<PathBuf, SnapshotError> {
    let target = path(dir, body.revision);
    let tmp = target.with_extension("rkyv.tmp");
    let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
    file.write_all(&[0; HEADER]).map_err(io("writing", &tmp))?;

    let out = Checksummed {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
        len: 0,
    };
    let mut out = rkyv::api::high::to_bytes_in::<_, rancor::Error>(
        body,
        rkyv::ser::writer::IoWriter::new(out),
    )
    .map_err(|e| SnapshotError::Io {
        op: "archiving into",
        path: tmp.clone(),
        source: std::io::Error::other(e.to_string()),
    })?
    .into_inner();
    out.flush().map_err(io("writing", &tmp))?;
    let mut file = out
        .inner
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io("writing", &tmp))?;
    let (crc, len) = (out.crc.finalize(), out.len);

    let mut header = [0u8; HEADER];
    header[..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&len.to_le_bytes());
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(&header))
        .and_then(|_| file.sync_all())
        .map_err(io("writing", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, &target).map_err(io("renaming", &tmp))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the directory", dir))?;
    Ok(target)
}

/// A validated snapshot, mapped in place.
pub struct OpenSnapshot {
    /// The whole file; records' JSON are slices of it.
    file: Bytes,
}

impl OpenSnapshot {
    /// The archived root.
    pub fn body(&self) -> &ArchivedSnapshotBody<'static> {
        // SAFETY: `open` validated these bytes with `rkyv::access` and they
        // never change: the mapping is private to this value and read-only.
        unsafe { rkyv::access_unchecked::<ArchivedSnapshotBody<'static>>(&self.file[HEADER..]) }
    }

    /// `part` (which must lie inside this snapshot) as shared bytes, without
    /// a copy.
    pub fn share(&self, part: &[u8]) -> Bytes {
        self.file.slice_ref(part)
    }
}

/// Maps and validates the snapshot at `path`.
pub fn open(path: &Path) -> Result<OpenSnapshot, SnapshotError> {
    let corrupt = |reason: &str| SnapshotError::Corrupt {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let file = File::open(path).map_err(io("opening", path))?;
    let len = file
        .metadata()
        .map_err(io("reading the size of", path))?
        .len();
    if len < HEADER as u64 {
        return Err(corrupt("shorter than its header"));
    }
    // SAFETY: snapshot files are written once under a temporary name and
    // never modified after the rename; the data directory lock keeps other
    // coxswain processes out.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io("mapping", path))?;
    if &map[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let body_len = u64::from_le_bytes(map[8..16].try_into().expect("8 bytes"));
    if body_len != len - HEADER as u64 {
        return Err(corrupt(&format!(
            "header says {body_len} bytes of body, the file has {}",
            len - HEADER as u64
        )));
    }
    let crc = u32::from_le_bytes(map[16..20].try_into().expect("4 bytes"));
    if crc32fast::hash(&map[HEADER..]) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    rkyv::access::<ArchivedSnapshotBody<'static>, rancor::Error>(&map[HEADER..])
        .map_err(|e| corrupt(&format!("invalid archive: {e}")))?;
    Ok(OpenSnapshot {
        file: Bytes::from_owner(map),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdir::TestDir;

    fn body(revision: u64) -> SnapshotBody<'static> {
        SnapshotBody {
            revision,
            records: vec![SnapshotRecord {
                resource: "pods",
                namespace: "default",
                name: "a",
                revision: revision - 1,
                json: b"{\"a\":1}",
            }],
        }
    }

    #[test]
    fn a_written_snapshot_opens_with_its_records_in_place() {
        let dir = TestDir::new("snap-roundtrip");
        let written = write(dir.path(), &body(7)).unwrap();
        let snapshot = open(&written).unwrap();
        let archived = snapshot.body();
        assert_eq!(archived.revision.to_native(), 7);
        let record = &archived.records[0];
        assert_eq!(&*record.name, "a");
        assert_eq!(&snapshot.share(&record.json)[..], b"{\"a\":1}");
    }

    #[test]
    fn any_flipped_byte_makes_the_snapshot_refused() {
        let dir = TestDir::new("snap-corrupt");
        let written = write(dir.path(), &body(7)).unwrap();
        let good = std::fs::read(&written).unwrap();
        for at in [0, 9, 17, HEADER, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&written, &bad).unwrap();
            assert!(
                matches!(open(&written), Err(SnapshotError::Corrupt { .. })),
                "flipped byte {at}"
            );
        }
        std::fs::write(&written, &good[..good.len() - 3]).unwrap();
        assert!(matches!(open(&written), Err(SnapshotError::Corrupt { .. })));
    }
}
