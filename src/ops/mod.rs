//! Operations: what the commands do, as engine calls with typed outcomes and no terminal I/O
//! (no tables, prompts or argument parsing). The commands in `crate::commands` choose, call and
//! render; they never call each other.

pub mod backup;
pub mod fetch;
pub mod inventory;
pub mod prune;

use crate::config::Config;
use crate::error::Result;

/// Create the backup root (0700) if it is missing.
pub fn ensure_root(cfg: &Config) -> Result<()> {
    crate::fsutil::ensure_private_dir(&cfg.local_dir).map_err(|source| {
        crate::error::Error::Output {
            what: "backup directory",
            path: cfg.local_dir.clone(),
            source,
        }
    })
}
