//! Backups at hand for the readers that need a file (verify, restore): a path, a name under the
//! backup root, or a backup that only S3 holds, downloaded (streamed) into a private temp
//! directory that is removed when dropped.

use std::path::{Path, PathBuf};

use crate::catalog::{self, BackupName};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::job::Transfers;
use crate::log;
use crate::s3::S3Store;
use crate::storage::Storage;
use crate::verify::BackupFiles;

/// A named backup: local when it is there, else from the first S3 location that has it.
pub fn resolve_or_fetch(
    cfg: &Config,
    stores: &[S3Store],
    arg: &str,
    fetched: &mut Vec<Fetched>,
    transfers: &mut dyn Transfers,
) -> Result<BackupFiles> {
    match resolve_or_locate(cfg, stores, arg)? {
        Located::Local(files) => Ok(files),
        Located::Stored(i, name) => {
            let f = fetch_backup(cfg, &stores[i], &name, transfers)?;
            let files = f.files.clone();
            fetched.push(f);
            Ok(files)
        }
    }
}

/// Where a named backup is.
#[derive(Debug)]
pub enum Located {
    /// Under the backup root, or the path given.
    Local(BackupFiles),
    /// Only in `stores[i]`.
    Stored(usize, BackupName),
}

/// A named backup: local when it is there, else the first S3 location that has it (nothing is
/// downloaded); the local error when none has it.
pub fn resolve_or_locate(cfg: &Config, stores: &[S3Store], arg: &str) -> Result<Located> {
    let local = resolve_backup(&cfg.local_dir, arg);
    let Some(name) = BackupName::parse(arg).filter(|_| local.is_err() && !arg.contains('/')) else {
        return local.map(Located::Local);
    };
    for (i, store) in stores.iter().enumerate() {
        let found = store
            .backups(&name.database)?
            .into_iter()
            .any(|b| b.name == name);
        if found {
            return Ok(Located::Stored(i, name));
        }
    }
    local.map(Located::Local)
}

/// A backup fetched from S3 into a private temp directory under the backup root, removed when
/// this is dropped.
#[derive(Debug)]
pub struct Fetched {
    /// The downloaded files.
    pub files: BackupFiles,
    _dir: tempfile::TempDir,
}

/// Download a backup (data, sidecar, manifest) from a storage, streamed, to be verified or
/// restored like a local one, telling `transfers` the bytes. A missing sidecar or manifest
/// stays missing, so the checks report it.
pub fn fetch_backup(
    cfg: &Config,
    store: &dyn Storage,
    name: &BackupName,
    transfers: &mut dyn Transfers,
) -> Result<Fetched> {
    super::ensure_root(cfg)?;
    let dir = tempfile::Builder::new()
        .prefix(crate::catalog::TEMP_PREFIX)
        .tempdir_in(&cfg.local_dir)
        .map_err(|source| Error::Output {
            what: "download directory",
            path: cfg.local_dir.clone(),
            source,
        })?;
    let file = name.file_name();
    log::info(&format!(
        "downloading {}",
        store.describe(&name.database, &file)
    ));
    let listed = store.files(&name.database)?;
    let download = |f: &str, transfers: &mut dyn Transfers| -> Result<()> {
        let path = dir.path().join(f);
        let out_err = |source| Error::Output {
            what: "download",
            path: path.clone(),
            source,
        };
        let mut out = std::fs::File::create(&path).map_err(out_err)?;
        transfers.start(f, listed.iter().find(|l| l.name == f).map(|l| l.size));
        let mut counted = CountingWriter {
            inner: &mut out,
            done: 0,
            transfers,
        };
        let fetched = store.fetch(&store.key_of(&name.database, f), &mut counted);
        let done = counted.done;
        transfers.finish(fetched.is_ok(), done);
        fetched?;
        out.sync_all().map_err(out_err)
    };
    download(&file, transfers)?;
    for extra in [name.sidecar_name(), name.manifest_name()] {
        if let Err(e) = download(&extra, &mut ()) {
            let _ = std::fs::remove_file(dir.path().join(&extra));
            log::debug(&format!("{extra}: {e}"));
        }
    }
    let mut files = BackupFiles::for_data(&dir.path().join(&file));
    files.name = Some(name.clone());
    Ok(Fetched { files, _dir: dir })
}

/// A backup named on the command line: a path, or a name under the backup root.
pub fn resolve_backup(root: &Path, arg: &str) -> Result<BackupFiles> {
    let as_path = PathBuf::from(arg);
    if arg.contains('/') || as_path.exists() {
        if !as_path.is_file() {
            return Err(Error::Usage(format!("{arg}: no such backup file")));
        }
        return Ok(BackupFiles::for_data(&as_path));
    }
    let name = BackupName::parse(arg).ok_or_else(|| {
        Error::Usage(format!(
            "\"{arg}\" is neither a file nor a backup name like clara_20261123_020013.sql.gz"
        ))
    })?;
    let path = catalog::db_dir(root, &name.database).join(name.file_name());
    // A safety backup is restorable by its name too.
    let safety =
        catalog::db_dir(&root.join(super::SAFETY_DIR), &name.database).join(name.file_name());
    match [path, safety].into_iter().find(|p| p.is_file()) {
        Some(p) => Ok(BackupFiles::for_data(&p)),
        None => Err(Error::Usage(format!(
            "backup {arg} not found in {}",
            catalog::db_dir(root, &name.database).display()
        ))),
    }
}

/// Counts the bytes written through it and tells `transfers`.
struct CountingWriter<'a, W> {
    inner: W,
    done: u64,
    transfers: &'a mut dyn Transfers,
}

impl<W: std::io::Write> std::io::Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        self.transfers.update(self.done);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
