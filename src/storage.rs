//! Where backups live: the local directory tree and S3-compatible buckets, behind one trait.
//!
//! Both use the same layout, `<root>/<db>/<db>_<ts>.sql.gz` plus `.sha256` and `.json`, and the
//! same reader rule: a backup exists only when its data file AND its sidecar exist. What differs
//! is the commit order (see [`Storage::commit_backup`]) and what an interrupted write leaves
//! behind (temp files locally, incomplete multipart uploads in S3; [`Storage::clean_incomplete`]).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::catalog::{self, BackupName};
pub use crate::catalog::{backups_in, StoredBackup, StoredFile};
use crate::error::{Error, Result};
use crate::fsutil;

/// A data file being written: invisible under its name until [`ObjectWriter::commit`]; dropping
/// it uncommitted discards everything written (temp file removed, multipart upload aborted).
pub trait ObjectWriter: Write + Send {
    /// Make the object durable and visible under its name; returns its size.
    fn commit(self: Box<Self>) -> Result<u64>;
}

/// A place that holds backups.
pub trait Storage: std::fmt::Debug {
    /// "local" or "s3": what `list` and `prune` print in their WHERE column.
    fn kind(&self) -> &'static str;

    /// Where this is, for messages: a directory or `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// The path or URL of one file, for messages and `list`.
    fn describe(&self, db: &str, file: &str) -> String {
        format!("{}/{db}/{file}", self.location().trim_end_matches('/'))
    }

    /// The database directories (valid names only, sorted).
    fn databases(&self) -> Result<Vec<String>>;

    /// The regular files in one database directory, any name (none when it does not exist).
    fn files(&self, db: &str) -> Result<Vec<StoredFile>>;

    /// Start writing `file` of `db`, streamed. `size_hint` is an upper estimate of its size
    /// (S3 fixes its part size from it before the first part).
    fn create(&self, db: &str, file: &str, size_hint: Option<u64>)
        -> Result<Box<dyn ObjectWriter>>;

    /// Write a small file atomically (complete or not at all).
    fn put(&self, db: &str, file: &str, bytes: &[u8]) -> Result<()>;

    /// Stream a file's content into `out`; returns the byte count.
    fn fetch(&self, db: &str, file: &str, out: &mut dyn Write) -> Result<u64>;

    /// Delete a file; a missing one is not an error.
    fn delete(&self, db: &str, file: &str) -> Result<()>;

    /// When a retention lock (S3 Object Lock) still protects `file` of `db`, if one does.
    fn locked_until(
        &self,
        _db: &str,
        _file: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(None)
    }

    /// Remove what interrupted writes of ours left in `db` (never a backup, never a foreign
    /// file); returns what was removed. Must run under the run lock.
    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>>;

    /// Commit a new backup so that it becomes visible only when complete. The default is the S3
    /// order: data object first, then the sidecar (which makes it a backup), then the manifest.
    fn commit_backup(
        &self,
        db: &str,
        name: &BackupName,
        data: Box<dyn ObjectWriter>,
        sidecar: &[u8],
        manifest: &[u8],
    ) -> Result<u64> {
        let size = data.commit()?;
        self.put(db, &name.sidecar_name(), sidecar)?;
        self.put(db, &name.manifest_name(), manifest)?;
        Ok(size)
    }

    /// The data files of `db` that match our naming scheme, oldest first, with what else of each
    /// backup is there. Foreign files are never listed.
    fn backups(&self, db: &str) -> Result<Vec<StoredBackup>> {
        Ok(backups_in(db, &self.files(db)?))
    }

    /// Only the complete ones (data and sidecar), oldest first.
    fn complete_backups(&self, db: &str) -> Result<Vec<StoredBackup>> {
        Ok(self
            .backups(db)?
            .into_iter()
            .filter(|b| b.has_sidecar)
            .collect())
    }

    /// The newest complete backup of `db`.
    fn latest(&self, db: &str) -> Result<Option<StoredBackup>> {
        Ok(self.complete_backups(db)?.pop())
    }
}

/// The local backup tree.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Backups under `root`.
    pub fn new(root: &Path) -> Self {
        LocalStorage {
            root: root.to_path_buf(),
        }
    }

    /// The directory of `db`.
    pub fn dir(&self, db: &str) -> PathBuf {
        catalog::db_dir(&self.root, db)
    }

    /// The directory of `db`, created (0700) if missing; a symlink is refused.
    fn ensure_dir(&self, db: &str) -> Result<PathBuf> {
        let dir = self.dir(db);
        check_not_symlink(&dir)?;
        fsutil::ensure_private_dir(&dir).map_err(|source| Error::Output {
            what: "backup directory",
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
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

    fn databases(&self) -> Result<Vec<String>> {
        catalog::list_databases(&self.root).map_err(|source| Error::Input {
            what: "backup directory",
            path: self.root.clone(),
            source,
        })
    }

    fn files(&self, db: &str) -> Result<Vec<StoredFile>> {
        let dir = self.dir(db);
        check_not_symlink(&dir)?;
        catalog::regular_files(&dir).map_err(|source| Error::Input {
            what: "backup directory",
            path: dir,
            source,
        })
    }

    fn create(
        &self,
        db: &str,
        file: &str,
        _size_hint: Option<u64>,
    ) -> Result<Box<dyn ObjectWriter>> {
        let dir = self.ensure_dir(db)?;
        let dest = dir.join(file);
        let tmp = fsutil::temp_in(&dir).map_err(|source| Error::Output {
            what: "backup file",
            path: dest.clone(),
            source,
        })?;
        Ok(Box::new(LocalWriter { tmp, dest }))
    }

    fn put(&self, db: &str, file: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.ensure_dir(db)?;
        fsutil::write_atomic(&dir, file, bytes)
            .and_then(|()| fsutil::fsync_dir(&dir))
            .map_err(|source| Error::Output {
                what: "backup file",
                path: dir.join(file),
                source,
            })
    }

    fn fetch(&self, db: &str, file: &str, out: &mut dyn Write) -> Result<u64> {
        let path = self.dir(db).join(file);
        let input = |source| Error::Input {
            what: "backup file",
            path: path.clone(),
            source,
        };
        let mut f = fs::File::open(&path).map_err(input)?;
        io::copy(&mut f, out).map_err(input)
    }

    fn delete(&self, db: &str, file: &str) -> Result<()> {
        let dir = self.dir(db);
        check_not_symlink(&dir)?;
        let out = |source| Error::Output {
            what: "backup file",
            path: dir.join(file),
            source,
        };
        match fs::remove_file(dir.join(file)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(out(e)),
            Ok(()) => fsutil::fsync_dir(&dir).map_err(out),
        }
    }

    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>> {
        let dir = self.dir(db);
        check_not_symlink(&dir)?;
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
            self.put(db, &name.sidecar_name(), sidecar)?;
            self.put(db, &name.manifest_name(), manifest)?;
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

/// A storage in memory: for the fast test tier (operations tested in milliseconds, without a
/// file system or a server) and as the reference the conformance suite holds the others to.
/// It commits as S3 does (data first, then sidecar and manifest), and a write that was never
/// committed nor dropped (a killed run: `mem::forget`) stays as an incomplete upload until
/// [`Storage::clean_incomplete`] removes it.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: std::sync::Arc<std::sync::Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    /// `(db, file)` -> content and when it was written.
    objects: std::collections::BTreeMap<(String, String), (Vec<u8>, chrono::DateTime<chrono::Utc>)>,
    /// Writes in progress (or abandoned by a killed run), by id.
    pending: std::collections::BTreeMap<u64, (String, String)>,
    next_id: u64,
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set the time an object was written (to test ages: debris, retention).
    pub fn set_modified(&self, db: &str, file: &str, at: chrono::DateTime<chrono::Utc>) {
        if let Some(o) = self
            .state()
            .objects
            .get_mut(&(db.to_string(), file.to_string()))
        {
            o.1 = at;
        }
    }
}

/// A write into [`MemoryStorage`].
#[derive(Debug)]
struct MemoryWriter {
    store: MemoryStorage,
    id: u64,
    key: (String, String),
    buf: Vec<u8>,
}

impl Write for MemoryWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        self.store.state().pending.remove(&self.id);
    }
}

impl ObjectWriter for MemoryWriter {
    fn commit(mut self: Box<Self>) -> Result<u64> {
        let data = std::mem::take(&mut self.buf);
        let n = data.len() as u64;
        let mut st = self.store.state();
        st.pending.remove(&self.id);
        st.objects
            .insert(self.key.clone(), (data, chrono::Utc::now()));
        Ok(n)
    }
}

impl Storage for MemoryStorage {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn location(&self) -> String {
        "memory:".into()
    }

    fn databases(&self) -> Result<Vec<String>> {
        let mut dbs: Vec<String> = self
            .state()
            .objects
            .keys()
            .map(|(d, _)| d.clone())
            .filter(|d| catalog::is_valid_dir_name(d))
            .collect();
        dbs.dedup();
        Ok(dbs)
    }

    fn files(&self, db: &str) -> Result<Vec<StoredFile>> {
        Ok(self
            .state()
            .objects
            .iter()
            .filter(|((d, _), _)| d == db)
            .map(|((_, f), (data, at))| StoredFile {
                name: f.clone(),
                size: data.len() as u64,
                modified: Some(*at),
            })
            .collect())
    }

    fn create(
        &self,
        db: &str,
        file: &str,
        _size_hint: Option<u64>,
    ) -> Result<Box<dyn ObjectWriter>> {
        let key = (db.to_string(), file.to_string());
        let id = {
            let mut st = self.state();
            st.next_id += 1;
            let id = st.next_id;
            st.pending.insert(id, key.clone());
            id
        };
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            id,
            key,
            buf: Vec::new(),
        }))
    }

    fn put(&self, db: &str, file: &str, bytes: &[u8]) -> Result<()> {
        self.state().objects.insert(
            (db.to_string(), file.to_string()),
            (bytes.to_vec(), chrono::Utc::now()),
        );
        Ok(())
    }

    fn fetch(&self, db: &str, file: &str, out: &mut dyn Write) -> Result<u64> {
        let data = self
            .state()
            .objects
            .get(&(db.to_string(), file.to_string()))
            .map(|o| o.0.clone())
            .ok_or_else(|| Error::Input {
                what: "object",
                path: PathBuf::from(format!("memory:{db}/{file}")),
                source: io::Error::from(io::ErrorKind::NotFound),
            })?;
        out.write_all(&data).map_err(|source| Error::Output {
            what: "download",
            path: PathBuf::from(file),
            source,
        })?;
        Ok(data.len() as u64)
    }

    fn delete(&self, db: &str, file: &str) -> Result<()> {
        self.state()
            .objects
            .remove(&(db.to_string(), file.to_string()));
        Ok(())
    }

    /// Abandoned writes, and what an interrupted commit leaves (data first, as in S3): a data
    /// object without its sidecar, a sidecar or manifest without data.
    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let files = self.files(db)?;
        let mut st = self.state();
        let abandoned: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, (d, _))| d == db)
            .map(|(id, _)| *id)
            .collect();
        for id in abandoned {
            if let Some((_, f)) = st.pending.remove(&id) {
                removed.push(format!("abandoned write of {f}"));
            }
        }
        for f in catalog::debris_in(db, &files) {
            st.objects.remove(&(db.to_string(), f.name.clone()));
            removed.push(format!("orphaned {}", f.name));
        }
        Ok(removed)
    }
}
