//! Local file-system primitives for complete-or-invisible writes.
//!
//! tempfile does no fsync: every commit here is temp file -> write -> fsync -> rename -> fsync of
//! the directory, so that after a crash a name either points at complete data or does not exist.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::catalog::{BackupName, TEMP_PREFIX};

static OWNER: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();

/// When running as root on a backup root that belongs to another user (the `pgbackup` user of
/// the packaged service), give everything created inside to that user: an operator's
/// `sudo pgbackup backup` must not leave root-owned files that the timer-run service then cannot
/// read, update or lock.
pub fn adopt_owner_of(root: &Path) {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    if let Ok(m) = fs::metadata(root) {
        if m.uid() != 0 {
            let _ = OWNER.set((m.uid(), m.gid()));
        }
    }
}

/// Give `path` to the adopted owner, if any (see `adopt_owner_of`).
pub fn give_away(path: &Path) -> io::Result<()> {
    match OWNER.get() {
        Some(&(uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
        None => Ok(()),
    }
}

/// Create `dir` (and parents) with mode 0700 for what we create; tighten an existing `dir` to
/// 0700 when we own it.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    let existed = dir.exists();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if !existed {
        give_away(dir)?;
    }
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        // Best effort: a directory we do not own (e.g. a shared mount) keeps its mode.
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// fsync a directory, making renames in it durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new 0600 temp file in `dir` whose name marks it as ours.
pub fn temp_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    give_away(tmp.path())?;
    Ok(tmp)
}

/// Write `bytes` to `dir/name` atomically (temp, fsync, rename). The directory is not fsynced:
/// callers fsync it once after their last rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = temp_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

/// Remove what an interrupted run left in a database directory: our temp files, and sidecars or
/// manifests whose data file never arrived. Returns the names removed. Must run under the lock.
pub fn clean_debris(dir: &Path) -> io::Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for de in rd {
        let de = de?;
        if !de.file_type()?.is_file() {
            continue;
        }
        let Some(name) = de.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let orphan = [".sha256", ".json"].iter().any(|ext| {
            name.strip_suffix(ext)
                .and_then(BackupName::parse)
                .is_some_and(|b| !dir.join(b.file_name()).exists())
        });
        if name.starts_with(TEMP_PREFIX) || orphan {
            fs::remove_file(de.path())?;
            removed.push(name);
        }
    }
    if !removed.is_empty() {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debris_is_removed_and_backups_and_foreign_files_stay() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for n in [
            ".pgbackup-tmp.abc123",
            "db_20260101_000000.sql.gz",
            "db_20260101_000000.sql.gz.sha256",
            "db_20260101_000000.sql.gz.json",
            "db_20260102_000000.sql.gz.sha256",
            "db_20260102_000000.sql.gz.json",
            "notes.txt",
            "other.sha256",
        ] {
            fs::write(p.join(n), b"x").unwrap();
        }
        let mut removed = clean_debris(p).unwrap();
        removed.sort();
        assert_eq!(
            removed,
            vec![
                ".pgbackup-tmp.abc123",
                "db_20260102_000000.sql.gz.json",
                "db_20260102_000000.sql.gz.sha256"
            ]
        );
        for n in [
            "db_20260101_000000.sql.gz",
            "db_20260101_000000.sql.gz.sha256",
            "notes.txt",
            "other.sha256",
        ] {
            assert!(p.join(n).exists(), "{n}");
        }
    }

    #[test]
    fn atomic_write_is_private() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(d.path(), "f", b"hello").unwrap();
        let m = fs::metadata(d.path().join("f")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"hello");
    }
}
