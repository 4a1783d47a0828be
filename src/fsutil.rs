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

/// Create `dir` (and parents) with mode 0700. A directory that already exists keeps its mode:
/// pgbackup never changes the mode of a directory it did not create (a backup root pointed at
/// the wrong place must not take `/tmp`'s sticky bit or lock out other services). One that
/// others can read is reported once per process.
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
    let mode = meta.permissions().mode() & 0o7777;
    if existed && mode & 0o077 != 0 {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            crate::log::warn(&format!(
                "{} is open to other users (mode {mode:04o}): backups inside stay 0600, but chmod 700 it",
                dir.display()
            ))
        });
    }
    Ok(())
}

/// Directories no backup root may be: the file system's own.
const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/local",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/run",
    "/var/spool",
    "/var/tmp",
];

/// Why `path` cannot be a backup root, if it cannot: relative, a system directory (also through
/// a symlink), not a directory, or writable by everyone (or sticky, as /tmp): there anyone
/// could plant or replace backups, and retention and chmod would act on a shared place.
pub fn unsafe_root(path: &Path) -> Option<String> {
    if !path.is_absolute() {
        return Some(format!(
            "\"{}\" is a relative path, which would depend on the directory pgbackup is started in; give an absolute path such as /var/lib/pgbackup",
            path.display()
        ));
    }
    let lexical: std::path::PathBuf = path.components().collect();
    let resolved = fs::canonicalize(path).ok();
    for p in std::iter::once(&lexical).chain(resolved.iter()) {
        if SYSTEM_DIRS.iter().any(|s| Path::new(s) == p) {
            return Some(format!(
                "{} is a system directory{}; use a directory of its own such as /var/lib/pgbackup",
                path.display(),
                if p == &lexical {
                    String::new()
                } else {
                    format!(" ({})", p.display())
                }
            ));
        }
    }
    let meta = fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return Some(format!("{} exists and is not a directory", path.display()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 || mode & 0o1000 != 0 {
        return Some(format!(
            "{} is writable by every user (mode {mode:04o}): anyone could plant or replace backups there; use a directory of its own (pgbackup creates it 0700)",
            path.display()
        ));
    }
    None
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

/// The entries of `dir`, or `None` when it does not exist (a missing directory holds nothing).
pub fn read_dir_if_exists(dir: &Path) -> io::Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(Some(rd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Remove what an interrupted run left in the directory of database `db`: our temp files, and
/// sidecars or manifests of `db`'s backups whose data file never arrived (a file of another
/// database's name is foreign here and stays). Returns the names removed. Must run under the
/// lock.
pub fn clean_debris(dir: &Path, db: &str) -> io::Result<Vec<String>> {
    let Some(rd) = read_dir_if_exists(dir)? else {
        return Ok(Vec::new());
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
                .is_some_and(|b| b.database == db && !dir.join(b.file_name()).exists())
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

/// Remove our temp files and directories (`prefix...`) in `dir` that nothing has touched for
/// `older_than`: what a killed run left outside the database directories (state writes and
/// downloads in the backup root, metrics in the textfile directory). Young ones may belong to a
/// run going on now and stay. Returns the names removed.
pub fn clean_stale_temp(
    dir: &Path,
    prefix: &str,
    older_than: std::time::Duration,
) -> io::Result<Vec<String>> {
    let Some(rd) = read_dir_if_exists(dir)? else {
        return Ok(Vec::new());
    };
    let now = std::time::SystemTime::now();
    let stale = |m: &fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= older_than)
    };
    let mut removed = Vec::new();
    for de in rd {
        let de = de?;
        let Some(name) = de.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        let meta = fs::symlink_metadata(de.path())?;
        if meta.file_type().is_file() && stale(&meta) {
            fs::remove_file(de.path())?;
            removed.push(name);
        } else if meta.file_type().is_dir() {
            // A download directory: stale when it and everything in it are.
            let all_stale = stale(&meta)
                && fs::read_dir(de.path())?
                    .filter_map(|e| e.ok())
                    .filter_map(|e| fs::symlink_metadata(e.path()).ok())
                    .all(|m| stale(&m));
            if all_stale {
                fs::remove_dir_all(de.path())?;
                removed.push(name);
            }
        }
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
        fs::write(p.join("other_20260102_000000.sql.gz.sha256"), b"x").unwrap();
        let mut removed = clean_debris(p, "db").unwrap();
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
            "other_20260102_000000.sql.gz.sha256",
        ] {
            assert!(p.join(n).exists(), "{n}");
        }
    }

    #[test]
    fn only_stale_temp_files_of_ours_go() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        for n in [".pgbackup-tmp.old", ".pgbackup-tmp.new", "other.tmp"] {
            fs::write(p.join(n), b"x").unwrap();
        }
        fs::create_dir(p.join(".pgbackup-tmp.dl")).unwrap();
        fs::write(p.join(".pgbackup-tmp.dl/part"), b"x").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for n in [
            ".pgbackup-tmp.old",
            ".pgbackup-tmp.dl/part",
            ".pgbackup-tmp.dl",
        ] {
            fs::File::options()
                .write(true)
                .open(p.join(n))
                .or_else(|_| fs::File::open(p.join(n)))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let mut removed =
            clean_stale_temp(p, ".pgbackup-tmp.", std::time::Duration::from_secs(3600)).unwrap();
        removed.sort();
        assert_eq!(removed, vec![".pgbackup-tmp.dl", ".pgbackup-tmp.old"]);
        assert!(p.join(".pgbackup-tmp.new").exists() && p.join("other.tmp").exists());
    }

    #[test]
    fn dangerous_roots_are_refused_with_the_reason() {
        for p in ["/", "/tmp", "/etc", "/var/lib", "/usr/", "/var/./tmp"] {
            assert!(
                unsafe_root(Path::new(p))
                    .unwrap()
                    .contains("system directory"),
                "{p}"
            );
        }
        assert!(unsafe_root(Path::new("backups"))
            .unwrap()
            .contains("relative"));
        let d = tempfile::tempdir().unwrap();
        let shared = d.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(unsafe_root(&shared)
            .unwrap()
            .contains("writable by every user"));
        let link = d.path().join("link");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        assert!(unsafe_root(&link).unwrap().contains("(/etc)"));
        assert!(unsafe_root(&d.path().join("new")).is_none());
        assert!(unsafe_root(Path::new("/var/lib/pgbackup")).is_none());
    }

    #[test]
    fn an_existing_directory_keeps_its_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("root");
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        ensure_private_dir(&p.join("new")).unwrap();
        assert_eq!(
            fs::metadata(p.join("new")).unwrap().permissions().mode() & 0o7777,
            0o700
        );
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
