//! The data directory lock: one store process per directory.
//!
//! [`DataDirLock::acquire`] takes an exclusive advisory lock (`flock`) on
//! `DIR/LOCK` without waiting. A second store on the same directory, in this
//! process or another, fails at once with [`LockError::Held`]. The lock lives
//! as long as the value and is released by the kernel when the process dies,
//! so a killed apiserver never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory.
const LOCK_FILE: &str = "LOCK";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {} is in use by another store (lock file {})",
        dir.display(),
        file.display()
    )]
    Held { dir: PathBuf, file: PathBuf },
    #[error("locking {}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// Exclusive ownership of a data directory, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    /// The open lock file; closing it releases the lock.
    _file: File,
}

impl DataDirLock {
    /// Locks `dir` (which must exist) or fails at once if it is taken.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            file: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    file: path,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        // The holder's pid helps an operator who finds the directory busy.
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testdir::TestDir;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = TestDir::new("lock");
        let first = DataDirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DataDirLock::acquire(dir.path()),
            Err(LockError::Held { .. })
        ));
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
