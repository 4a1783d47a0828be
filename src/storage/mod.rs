//! Where backups live, behind one trait: the local directory tree ([`LocalStorage`]), S3-compatible
//! buckets (`crate::s3`) and a storage in memory for the fast test tier ([`MemoryStorage`]).
//!
//! All use the same layout, `<root>/<db>/<db>_<ts>.sql.gz` plus `.sha256` and `.json`, and the
//! same reader rule: a backup exists only when its data file AND its sidecar exist. What differs
//! is the commit order (see [`Storage::commit_backup`]) and what an interrupted write leaves
//! behind (temp files locally, incomplete multipart uploads in S3; [`Storage::clean_incomplete`]).

use std::io::{Read, Write};

pub use crate::catalog::{backups_in, StoredBackup, StoredFile};
use crate::catalog::{BackupName, Manifest};
use crate::error::{Error, Result};

mod local;
mod memory;
mod s3;

pub use local::LocalStorage;
pub use memory::MemoryStorage;

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

    /// Open a file to read, streamed: a regular file locally (never a FIFO or a link), a GET in
    /// S3 that resumes with a Range after a dropped connection. A missing file is an error.
    fn open<'a>(&'a self, db: &str, file: &str) -> Result<Box<dyn Read + 'a>>;

    /// Stream a file's content into `out`; returns the byte count. A read failure is an input
    /// error of the storage, a write failure an output error of `out`.
    fn fetch(&self, db: &str, file: &str, out: &mut dyn Write) -> Result<u64> {
        let mut input = self.open(db, file)?;
        copy_out(&mut *input, out, &self.describe(db, file))
    }

    /// The manifest of a backup, when it is there and readable (at most 64 MiB, as verify reads
    /// it); anything else is no manifest for a reader (verify reports what is wrong with it).
    fn read_manifest(&self, name: &BackupName) -> Option<Manifest> {
        let input = self.open(&name.database, &name.manifest_name()).ok()?;
        let mut bytes = Vec::new();
        input.take(64 << 20).read_to_end(&mut bytes).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

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

/// Copy `input` (the storage file `what`) into `out`, telling a read failure from a write one.
pub(crate) fn copy_out(input: &mut dyn Read, out: &mut dyn Write, what: &str) -> Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::Input {
                    what: "backup file",
                    path: what.into(),
                    source,
                })
            }
        };
        out.write_all(&buf[..n]).map_err(|source| Error::Output {
            what: "download",
            path: what.into(),
            source,
        })?;
        total += n as u64;
    }
}
