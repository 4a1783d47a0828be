//! The local backup tree: a key is a path under the backup root, every directory on the way
//! private (0700); data files are written to a temp file, fsynced and renamed into place;
//! symlinked directories are refused (a link could point a run's writes or deletes anywhere).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{check_dir, check_key, split_key, ObjectWriter, Storage, StoredFile};
use crate::catalog::{self, BackupName};
use crate::error::{Error, Result};
use crate::fsutil;

/// The local backup tree.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    /// Whether a symlinked database directory is read (never written, pruned or cleaned).
    follow_links: bool,
}

impl LocalStorage {
    /// Backups under `root`.
    pub fn new(root: &Path) -> Self {
        LocalStorage {
            root: root.to_path_buf(),
            follow_links: false,
        }
    }

    /// Backups under `root`, for the commands that only read (list, status, verify, restore,
    /// metrics): a symlinked database directory is followed for listing and reading (an
    /// operator may have moved one to another disk); writes and deletes still refuse it.
    pub fn reading(root: &Path) -> Self {
        LocalStorage {
            follow_links: true,
            ..Self::new(root)
        }
    }

    /// The backup root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `db`.
    pub fn dir(&self, db: &str) -> PathBuf {
        catalog::db_dir(&self.root, db)
    }

    /// The path of a key (checked).
    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// The directories of `dir` from the root down, each refused when it is a symlink: always
    /// for writes, for reads unless this storage follows links.
    fn check_dirs(&self, dir: &str, writing: bool) -> Result<PathBuf> {
        check_dir(dir)?;
        let mut path = self.root.clone();
        for c in dir.split('/').filter(|c| !c.is_empty()) {
            path.push(c);
            if writing || !self.follow_links {
                check_not_symlink(&path)?;
            }
        }
        Ok(path)
    }

    /// The directory of `key`, created (0700, every level) if missing; symlinks are refused.
    fn ensure_parent(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        let (dir, _) = split_key(key);
        let mut path = self.root.clone();
        for c in dir.split('/').filter(|c| !c.is_empty()) {
            path.push(c);
            check_not_symlink(&path)?;
            fsutil::ensure_private_dir(&path).map_err(|source| Error::Output {
                what: "backup directory",
                path: path.clone(),
                source,
            })?;
        }
        Ok(path)
    }
}

/// Retention and writes never follow a symlinked database directory.
fn check_not_symlink(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Output {
            what: "backup directory",
            path: dir.to_path_buf(),
            source: io::Error::other("it is a symlink; pgbackup never follows links here"),
        }),
        _ => Ok(()),
    }
}

/// A local data file being written: a temp file in the database directory.
#[derive(Debug)]
struct LocalWriter {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

/// Writes go to the file itself: NamedTempFile's own `Write` wraps errors in a path message
/// that hides the OS error (and with it the "disk is full" hint).
impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.as_file_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.as_file_mut().flush()
    }
}

impl ObjectWriter for LocalWriter {
    fn commit(self: Box<Self>) -> Result<u64> {
        let dest = self.dest.clone();
        let out = |source| Error::Output {
            what: "backup file",
            path: dest.clone(),
            source,
        };
        self.tmp.as_file().sync_all().map_err(out)?;
        let size = self.tmp.as_file().metadata().map_err(out)?.len();
        self.tmp.persist(&self.dest).map_err(|e| out(e.error))?;
        if let Some(dir) = self.dest.parent() {
            fsutil::fsync_dir(dir).map_err(out)?;
        }
        Ok(size)
    }
}

impl Storage for LocalStorage {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn describe_key(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    fn list(&self, dir: &str) -> Result<Vec<StoredFile>> {
        let path = self.check_dirs(dir, false)?;
        regular_files(&path).map_err(|source| Error::Input {
            what: "backup directory",
            path,
            source,
        })
    }

    fn list_dirs(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.check_dirs(dir, false)?;
        subdirs(&path).map_err(|source| Error::Input {
            what: "backup directory",
            path,
            source,
        })
    }

    fn create(&self, key: &str, _size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        let dir = self.ensure_parent(key)?;
        let dest = self.path(key)?;
        let tmp = fsutil::temp_in(&dir).map_err(|source| Error::Output {
            what: "backup file",
            path: dest.clone(),
            source,
        })?;
        Ok(Box::new(LocalWriter { tmp, dest }))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.ensure_parent(key)?;
        let (_, file) = split_key(key);
        fsutil::write_atomic(&dir, file, bytes)
            .and_then(|()| fsutil::fsync_dir(&dir))
            .map_err(|source| Error::Output {
                what: "backup file",
                path: dir.join(file),
                source,
            })
    }

    fn open<'a>(&'a self, key: &str) -> Result<Box<dyn Read + 'a>> {
        let path = self.path(key)?;
        let input = |source| Error::Input {
            what: "backup file",
            path: path.clone(),
            source,
        };
        self.check_dirs(split_key(key).0, false)?;
        // O_NONBLOCK: opening a FIFO must not hang; O_NOFOLLOW: a link is not a backup file.
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(input)?;
        if !f.metadata().map_err(input)?.is_file() {
            return Err(input(io::Error::other("not a regular file")));
        }
        Ok(Box::new(f))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let dir = self.check_dirs(split_key(key).0, true)?;
        let out = |source| Error::Output {
            what: "backup file",
            path: path.clone(),
            source,
        };
        match fs::remove_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(out(e)),
            Ok(()) => fsutil::fsync_dir(&dir).map_err(out),
        }
    }

    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>> {
        let dir = self.check_dirs(&self.db_dir(db), true)?;
        fsutil::clean_debris(&dir, db).map_err(|source| Error::Output {
            what: "backup directory",
            path: dir,
            source,
        })
    }

    /// Locally the data file's rename is the single commit point: sidecar and manifest go
    /// first, and are removed again when the data file does not make it.
    fn commit_backup(
        &self,
        db: &str,
        name: &BackupName,
        data: Box<dyn ObjectWriter>,
        sidecar: &[u8],
        manifest: &[u8],
    ) -> Result<u64> {
        let dir = self.dir(db);
        let result = (|| {
            self.put_sidecar_and_manifest(db, name, sidecar, manifest)?;
            let size = data.commit()?;
            fsutil::fsync_dir(&self.root).map_err(|source| Error::Output {
                what: "backup directory",
                path: self.root.clone(),
                source,
            })?;
            Ok(size)
        })();
        if result.is_err() && !dir.join(name.file_name()).exists() {
            let _ = fs::remove_file(dir.join(name.sidecar_name()));
            let _ = fs::remove_file(dir.join(name.manifest_name()));
        }
        result
    }
}

/// The regular files of a directory (symlinks and subdirectories are not followed), sorted by
/// name, without our temp files; a missing directory is empty.
fn regular_files(dir: &Path) -> io::Result<Vec<StoredFile>> {
    let Some(rd) = fsutil::read_dir_if_exists(dir)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for de in rd {
        let de = de?;
        let meta = fs::symlink_metadata(de.path())?;
        if !meta.file_type().is_file() {
            continue;
        }
        if let Some(name) = de.file_name().to_str() {
            // A write in progress is no object yet (S3 does not list incomplete uploads either).
            if name.starts_with(catalog::TEMP_PREFIX) {
                continue;
            }
            out.push(StoredFile {
                name: name.to_string(),
                size: meta.len(),
                modified: meta
                    .modified()
                    .ok()
                    .map(chrono::DateTime::<chrono::Utc>::from),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The directories under `root` (not links), sorted; the layout keeps the valid names.
fn subdirs(root: &Path) -> io::Result<Vec<String>> {
    let Some(rd) = fsutil::read_dir_if_exists(root)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for de in rd {
        let de = de?;
        if !de.file_type()?.is_dir() {
            continue;
        }
        if let Some(n) = de.file_name().to_str() {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}
