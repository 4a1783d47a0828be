//! Backups at hand for the readers that need a file (verify, restore): a path, a name under the
//! backup root, or a backup that only S3 holds, downloaded (streamed) into a private temp
//! directory that is removed when dropped.

use std::path::{Path, PathBuf};

use crate::catalog::{self, BackupName};
use crate::config::Config;
use crate::error::{Error, Result};
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
) -> Result<BackupFiles> {
    let local = resolve_backup(&cfg.local_dir, arg);
    let Some(name) = BackupName::parse(arg).filter(|_| local.is_err() && !arg.contains('/')) else {
        return local;
    };
    for store in stores {
        let found = store
            .backups(&name.database)?
            .into_iter()
            .any(|b| b.name == name);
        if found {
            let f = fetch_backup(cfg, store, &name)?;
            let files = f.files.clone();
            fetched.push(f);
            return Ok(files);
        }
    }
    local
}

/// The newest complete backup of `db` in the first S3 location that has one, downloaded.
pub fn fetch_latest(cfg: &Config, stores: &[S3Store], db: &str) -> Result<Option<Fetched>> {
    for store in stores {
        if let Some(b) = store.latest(db)? {
            return fetch_backup(cfg, store, &b.name).map(Some);
        }
    }
    Ok(None)
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
/// restored like a local one. A missing sidecar or manifest stays missing, so the checks
/// report it.
pub fn fetch_backup(cfg: &Config, store: &dyn Storage, name: &BackupName) -> Result<Fetched> {
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
    let download = |f: &str| -> Result<()> {
        let path = dir.path().join(f);
        let out_err = |source| Error::Output {
            what: "download",
            path: path.clone(),
            source,
        };
        let mut out = std::fs::File::create(&path).map_err(out_err)?;
        store.fetch(&store.key_of(&name.database, f), &mut out)?;
        out.sync_all().map_err(out_err)
    };
    download(&file)?;
    for extra in [name.sidecar_name(), name.manifest_name()] {
        if let Err(e) = download(&extra) {
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
    if !path.is_file() {
        return Err(Error::Usage(format!(
            "backup {arg} not found in {}",
            catalog::db_dir(root, &name.database).display()
        )));
    }
    Ok(BackupFiles::for_data(&path))
}
