//! The integrity pass before a restore, and for a custom archive the copy pg_restore reads.
//!
//! `pg_restore -j` needs a seekable file, and a compressed archive is not one: the pass that
//! checks the backup (checksum, decompression, the archive's structure) writes the
//! decompressed archive into a private temp file at the same time, so the bytes pg_restore
//! reads are the bytes that were checked, read once. The file costs the archive's
//! uncompressed size on disk (the manifest's `raw_bytes`; checked before starting) and is
//! removed when the restore ends, whatever happens.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::chain::Format;
use crate::error::{Error, Result};
use crate::verify::{
    chain_of, check_integrity, check_integrity_extracting, BackupFiles, Integrity,
};

/// Room left beside the decompressed archive (the file system's own needs, a log).
const MARGIN: u64 = 64 << 20;

/// A decompressed custom archive in a private (0600) temp file, removed on drop.
#[derive(Debug)]
pub struct Extracted {
    file: tempfile::NamedTempFile,
}

impl Extracted {
    /// The archive's path, for pg_restore.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Where a restore's temp files go: `explicit` (`--temp-dir`), else the backup root, else the
/// system's temp directory (a restore from `--file` on a host without a root).
pub fn temp_root(cfg: &crate::config::Config, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(d) => d.to_path_buf(),
        None if cfg.local_dir.is_dir() => cfg.local_dir.clone(),
        None => std::env::temp_dir(),
    }
}

/// The bytes a backup's decompressed archive takes: what its manifest records.
pub fn extract_size(files: &BackupFiles) -> Option<u64> {
    files.read_manifest().map(|m| m.raw_bytes)
}

/// Check `files` before a restore: for a custom archive also decompress it into a temp
/// directory under `temp_root` (after checking the room: exit 73 with the figures when there
/// is not enough). A write failure on the way (a full disk) is an error too.
pub fn check_for_restore(
    files: &BackupFiles,
    keys: &crate::crypt::Keys,
    temp_root: &Path,
    progress: impl FnMut(u64),
) -> Result<(Integrity, Option<Extracted>)> {
    let input_err = |source| Error::Input {
        what: "backup file",
        path: files.data.clone(),
        source,
    };
    let custom = chain_of(&files.file_name(), &files.manifest_state())
        .is_ok_and(|c| c.format == Format::Custom);
    if !custom {
        return Ok((
            check_integrity(files, keys, progress).map_err(input_err)?,
            None,
        ));
    }
    let out_err = |path: &Path, source| Error::Output {
        what: "the decompressed archive for pg_restore",
        path: path.to_path_buf(),
        source,
    };
    if let (Some(need), Some((free, _))) =
        (extract_size(files), super::inventory::free_space(temp_root))
    {
        if need.saturating_add(MARGIN) > free {
            return Err(out_err(
                temp_root,
                std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!(
                        "pg_restore needs the archive decompressed, {} (and {} to spare), but only {} is free; free some space or pass --temp-dir DIR on a larger file system (nothing was changed)",
                        crate::text::human_bytes(need),
                        crate::text::human_bytes(MARGIN),
                        crate::text::human_bytes(free)
                    ),
                ),
            ));
        }
    }
    let file = crate::fsutil::temp_in(temp_root).map_err(|e| out_err(temp_root, e))?;
    let path = file.path().to_path_buf();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file.as_file());
    let mut integrity =
        check_integrity_extracting(files, keys, &mut out, progress).map_err(input_err)?;
    if let Some(e) = integrity.extract_error.take() {
        return Err(out_err(&path, e));
    }
    out.flush().map_err(|e| out_err(&path, e))?;
    drop(out);
    Ok((integrity, Some(Extracted { file })))
}
