//! The run lock: an flock on `<local-dir>/.pgbackup.lock` holding the holder's pid, so that two
//! runs never write the same tree at once. The kernel drops the lock when the process dies, so a
//! `kill -9` never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::Error;

/// Name of the lock file inside the backup root.
pub const LOCK_FILE: &str = ".pgbackup.lock";

/// A held lock; released on drop.
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock<File>,
    /// The lock file.
    pub path: PathBuf,
}

impl RunLock {
    /// Take the lock in `root` without waiting. Exit 75 (with the holder's pid) if it is held.
    pub fn acquire(root: &Path) -> Result<RunLock, Error> {
        let path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| Error::Output {
                what: "lock file",
                path: path.clone(),
                source,
            })?;
        let _ = crate::fsutil::give_away(&path);
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let _ = lock.set_len(0);
                let _ = lock.rewind();
                let _ = writeln!(&mut *lock, "{}", std::process::id());
                let _ = lock.sync_all();
                Ok(RunLock { _lock: lock, path })
            }
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                Err(Error::Locked {
                    path,
                    pid: s.trim().parse().ok(),
                })
            }
            Err((_, errno)) => Err(Error::Output {
                what: "lock file",
                path,
                source: std::io::Error::from(errno),
            }),
        }
    }
}
