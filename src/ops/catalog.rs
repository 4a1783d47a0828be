//! The backups of a database wherever they are (the local tree, then each S3 location), as one
//! type: what `restore` offers to pick from and what `verify --all` walks. A backup in both
//! places is listed once, as the local copy (it needs no download).

use std::collections::HashSet;
use std::path::PathBuf;

use crate::catalog::{BackupName, StoredBackup};
use crate::config::Config;
use crate::error::Result;
use crate::storage::{LocalStorage, Storage};
use crate::verify::BackupFiles;

/// Where a backup is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Under the backup root (or a path given): its data file.
    Local(PathBuf),
    /// Only in `stores[i]`.
    Stored(usize),
}

/// One backup and where it is.
#[derive(Debug, Clone)]
pub struct Located {
    /// The backup as its storage lists it (name, size, sidecar and manifest present).
    pub backup: StoredBackup,
    /// Where it is.
    pub place: Place,
}

impl Located {
    /// The parsed name.
    pub fn name(&self) -> &BackupName {
        &self.backup.name
    }

    /// `local` or `s3`, for a WHERE column.
    pub fn location(&self) -> &'static str {
        match self.place {
            Place::Local(_) => "local",
            Place::Stored(_) => "s3",
        }
    }

    /// The local files, when it is local.
    pub fn files(&self) -> Option<BackupFiles> {
        match &self.place {
            Place::Local(path) => Some(BackupFiles::for_data(path)),
            Place::Stored(_) => None,
        }
    }
}

/// What to include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Complete backups only (data and sidecar: the reader rule), everywhere.
    Complete,
    /// Every local data file of our scheme, complete or not (verify says what is missing),
    /// and the complete backups only S3 holds.
    EveryLocalFile,
}

/// The backups of `db`, local first (read-only: a symlinked database directory is read), then
/// those only `stores` hold, each store in order; oldest first within each place.
pub fn backups_of<S: Storage>(
    cfg: &Config,
    stores: &[S],
    db: &str,
    which: Which,
) -> Result<Vec<Located>> {
    let local = LocalStorage::reading(&cfg.local_dir);
    let listed = match which {
        Which::Complete => local.complete_backups(db)?,
        Which::EveryLocalFile => local.backups(db)?,
    };
    let mut seen: HashSet<String> = listed.iter().map(|b| b.name.file_name()).collect();
    let mut out: Vec<Located> = listed
        .into_iter()
        .map(|b| Located {
            place: Place::Local(local.dir(db).join(b.name.file_name())),
            backup: b,
        })
        .collect();
    for (i, store) in stores.iter().enumerate() {
        for b in store.complete_backups(db)? {
            if seen.insert(b.name.file_name()) {
                out.push(Located {
                    backup: b,
                    place: Place::Stored(i),
                });
            }
        }
    }
    Ok(out)
}
