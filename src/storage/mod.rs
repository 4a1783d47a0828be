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

/// A place that holds backups, in two levels.
///
/// **Objects by key.** A key is a relative path of `/`-separated components (see
/// [`check_key`]): `clara/clara_20261123_020013.sql.gz`, later `main/wal/00000001/...` or
/// `_globals/...`. Every storage implements these: list a directory, open, create (invisible
/// until committed), put, delete.
///
/// **The backup layout** over the keys, the same for every storage (provided methods): one
/// directory per database (or all in the root for a legacy flat prefix, [`Storage::flat`]), the
/// reader rule ([`backups_in`]: data AND sidecar), the commit order, the manifest.
pub trait Storage: std::fmt::Debug {
    /// "local" or "s3": what `list` and `prune` print in their WHERE column.
    fn kind(&self) -> &'static str;

    /// Where this is, for messages: a directory or `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// The path or URL of a key, for messages and `list`.
    fn describe_key(&self, key: &str) -> String {
        format!("{}/{key}", self.location().trim_end_matches('/'))
    }

    /// The regular objects directly under `dir` (a key without a trailing `/`; `""` is the
    /// root), any name, sorted by name; none when `dir` does not exist.
    fn list(&self, dir: &str) -> Result<Vec<StoredFile>>;

    /// The directories directly under `dir`, sorted.
    fn list_dirs(&self, dir: &str) -> Result<Vec<String>>;

    /// Start writing `key`, streamed. `size_hint` is an upper estimate of its size (S3 fixes
    /// its part size from it before the first part).
    fn create(&self, key: &str, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>>;

    /// Write a small object atomically (complete or not at all).
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;

    /// Open an object to read, streamed: a regular file locally (never a FIFO or a link), a GET
    /// in S3 that resumes with a Range after a dropped connection. A missing one is an error.
    fn open<'a>(&'a self, key: &str) -> Result<Box<dyn Read + 'a>>;

    /// Stream an object's content into `out`; returns the byte count. A read failure is an
    /// input error of the storage, a write failure an output error of `out`.
    fn fetch(&self, key: &str, out: &mut dyn Write) -> Result<u64> {
        let mut input = self.open(key)?;
        copy_out(&mut *input, out, &self.describe_key(key))
    }

    /// Delete an object; a missing one is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// When a retention lock (S3 Object Lock) still protects `key`, if one does.
    fn locked_until(&self, _key: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(None)
    }

    /// Remove what interrupted writes of ours left in `db` (never a backup, never a foreign
    /// file); returns what was removed. Must run under the run lock.
    fn clean_incomplete(&self, db: &str) -> Result<Vec<String>>;

    // ---------------------------------------------------------------------------------------
    // The backup layout

    /// Whether every database's files lie in the root (a legacy flat prefix) rather than in
    /// one directory per database.
    fn flat(&self) -> bool {
        false
    }

    /// The directory of `db`'s backups.
    fn db_dir(&self, db: &str) -> String {
        if self.flat() {
            String::new()
        } else {
            db.to_string()
        }
    }

    /// The key of `file` of database `db`.
    fn key_of(&self, db: &str, file: &str) -> String {
        match self.db_dir(db) {
            d if d.is_empty() => file.to_string(),
            d => format!("{d}/{file}"),
        }
    }

    /// The path or URL of one file of `db`.
    fn describe(&self, db: &str, file: &str) -> String {
        self.describe_key(&self.key_of(db, file))
    }

    /// The databases (valid names only, sorted): the directories of the root, or in a flat
    /// layout the databases the backup names in the root name.
    fn databases(&self) -> Result<Vec<String>> {
        let mut dbs: Vec<String> = if self.flat() {
            self.list("")?
                .iter()
                .filter_map(|f| BackupName::parse(&f.name))
                .map(|n| n.database)
                .collect()
        } else {
            self.list_dirs("")?
        };
        dbs.retain(|d| crate::catalog::is_catalog_name(d));
        dbs.sort();
        dbs.dedup();
        Ok(dbs)
    }

    /// The files in `db`'s directory, any name (none when it does not exist).
    fn files(&self, db: &str) -> Result<Vec<StoredFile>> {
        self.list(&self.db_dir(db))
    }

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
        self.put_sidecar_and_manifest(db, name, sidecar, manifest)?;
        Ok(size)
    }

    /// Write a backup's sidecar, then its manifest (each atomically).
    fn put_sidecar_and_manifest(
        &self,
        db: &str,
        name: &BackupName,
        sidecar: &[u8],
        manifest: &[u8],
    ) -> Result<()> {
        self.put(&self.key_of(db, &name.sidecar_name()), sidecar)?;
        self.put(&self.key_of(db, &name.manifest_name()), manifest)
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

    /// The manifest of a backup, when it is there and readable (at most 64 MiB, as verify reads
    /// it); anything else is no manifest for a reader (verify reports what is wrong with it).
    fn read_manifest(&self, name: &BackupName) -> Option<Manifest> {
        let input = self
            .open(&self.key_of(&name.database, &name.manifest_name()))
            .ok()?;
        let mut bytes = Vec::new();
        input.take(64 << 20).read_to_end(&mut bytes).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Whether `key` is one a storage takes: `/`-separated components, none empty, `.` or `..`,
/// none with a control character or a backslash, at most 1024 bytes (S3's limit). Every key is
/// built from checked names, so a bad one is a bug; storages refuse it rather than write
/// outside their root.
pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && !c.chars().any(|ch| ch.is_control() || ch == '\\')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Output {
            what: "object key",
            path: key.into(),
            source: std::io::Error::other(
                "not a valid key (empty, absolute, or with . or .. components)",
            ),
        })
    }
}

/// Like [`check_key`] for a directory: `""` (the root) is one too.
pub fn check_dir(dir: &str) -> Result<()> {
    if dir.is_empty() {
        Ok(())
    } else {
        check_key(dir)
    }
}

/// The directory part of a key (`""` for a key in the root) and its last component.
pub fn split_key(key: &str) -> (&str, &str) {
    match key.rfind('/') {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => ("", key),
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
            Err(e) => {
                return Err(Error::from_stream(e, |source| Error::Input {
                    what: "backup file",
                    path: what.into(),
                    source,
                }))
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
