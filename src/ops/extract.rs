//! The integrity pass before a restore, and for a custom archive (or a directory-format dump)
//! the copy pg_restore reads.
//!
//! `pg_restore -j` needs a seekable file (or a directory), and a compressed stream is not one:
//! the pass that checks the backup (checksum, decryption, decompression, the archive's
//! structure) writes the decompressed archive into a private temp file (a directory-format
//! dump: unpacks its tar into a private temp directory) at the same time, so the bytes
//! pg_restore reads are the bytes that were checked, read once. The copy costs the archive's
//! uncompressed size on disk (the manifest's `raw_bytes`; checked before starting) and is
//! removed when the restore ends, whatever happens. A Redis snapshot is decompressed the same
//! way: redis-server loads a file (`dump.rdb`), not a stream.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::chain::Format;
use crate::error::{Error, Result};
use crate::verify::{
    chain_of, check_integrity, check_integrity_extracting, BackupFiles, Integrity,
};

/// Whether a check other than the sidecar's failed.
fn failed_beyond_sidecar(i: &Integrity) -> bool {
    i.checks.iter().any(|c| !c.ok && c.name != "sidecar")
}

/// Room left beside the decompressed archive (the file system's own needs, a log).
const MARGIN: u64 = 64 << 20;

/// A decompressed custom archive in a private (0600) temp file, or a directory-format dump
/// unpacked into a private (0700) temp directory; removed on drop.
#[derive(Debug)]
pub enum Extracted {
    /// A custom archive.
    File(tempfile::NamedTempFile),
    /// A directory-format dump: its directory (`dump` inside the temp directory).
    Dir(tempfile::TempDir, PathBuf),
}

impl Extracted {
    /// The archive's path (file or directory), for pg_restore.
    pub fn path(&self) -> &Path {
        match self {
            Extracted::File(f) => f.path(),
            Extracted::Dir(_, dump) => dump,
        }
    }
}

/// A writer that unpacks a directory-format dump's tar stream into `dir`, file by file (names
/// are checked by the parser: plain file names only, never a path).
struct Unpack {
    dir: PathBuf,
    tar: crate::dirdump::TarParser,
    file: Option<std::io::BufWriter<std::fs::File>>,
    error: Option<std::io::Error>,
}

impl Write for Unpack {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let Unpack {
            dir,
            tar,
            file,
            error,
        } = self;
        tar.feed(buf, &mut |ev| {
            if error.is_some() {
                return;
            }
            let r = match ev {
                crate::dirdump::TarEvent::File { name, .. } => {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(dir.join(name))
                        .map(|f| *file = Some(std::io::BufWriter::with_capacity(1 << 20, f)))
                }
                crate::dirdump::TarEvent::Data(d) => match file.as_mut() {
                    Some(f) => f.write_all(d),
                    None => Ok(()),
                },
                crate::dirdump::TarEvent::FileEnd => match file.take() {
                    Some(f) => f.into_inner().map(drop).map_err(|e| e.into_error()),
                    None => Ok(()),
                },
            };
            if let Err(e) = r {
                *error = Some(e);
            }
        });
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
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
    let format = chain_of(&files.file_name(), &files.manifest_state()).map(|c| c.format);
    let rdb = format.as_ref().is_ok_and(|f| *f == Format::Rdb);
    if !format.as_ref().is_ok_and(|f| f.is_archive() || rdb) {
        return Ok((
            check_integrity(files, keys, progress).map_err(input_err)?,
            None,
        ));
    }
    let out_err = |path: &Path, source| Error::Output {
        what: if rdb {
            "the decompressed snapshot for redis-server"
        } else {
            "the decompressed archive for pg_restore"
        },
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
                        "{} needs the {} decompressed, {} (and {} to spare), but only {} is free; free some space or pass --temp-dir DIR on a larger file system (nothing was changed)",
                        if rdb { "redis-server" } else { "pg_restore" },
                        if rdb { "snapshot" } else { "archive" },
                        crate::text::human_bytes(need),
                        crate::text::human_bytes(MARGIN),
                        crate::text::human_bytes(free)
                    ),
                ),
            ));
        }
    }
    if format.is_ok_and(|f| f == Format::Directory) {
        let dir = tempfile::Builder::new()
            .prefix(crate::catalog::TEMP_PREFIX)
            .tempdir_in(temp_root)
            .map_err(|e| out_err(temp_root, e))?;
        let dump = dir.path().join("dump");
        std::fs::create_dir(&dump).map_err(|e| out_err(&dump, e))?;
        let mut out = Unpack {
            dir: dump.clone(),
            tar: crate::dirdump::TarParser::default(),
            file: None,
            error: None,
        };
        let mut integrity =
            check_integrity_extracting(files, keys, &mut out, progress).map_err(input_err)?;
        // A backup that failed a check (beyond a missing sidecar, which --no-sidecar accepts) is
        // refused as such (65), whatever its copy met (a hostile tar's second file of one name).
        if failed_beyond_sidecar(&integrity) {
            return Ok((integrity, None));
        }
        if let Some(e) = integrity.extract_error.take() {
            return Err(out_err(&dump, e));
        }
        out.flush().map_err(|e| out_err(&dump, e))?;
        return Ok((integrity, Some(Extracted::Dir(dir, dump))));
    }
    let file = crate::fsutil::temp_in(temp_root).map_err(|e| out_err(temp_root, e))?;
    let path = file.path().to_path_buf();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file.as_file());
    let mut integrity =
        check_integrity_extracting(files, keys, &mut out, progress).map_err(input_err)?;
    // A backup that failed a check (beyond a missing sidecar, which --no-sidecar accepts) is
    // refused as such (65), whatever its copy met.
    if failed_beyond_sidecar(&integrity) {
        return Ok((integrity, None));
    }
    if let Some(e) = integrity.extract_error.take() {
        return Err(out_err(&path, e));
    }
    out.flush().map_err(|e| out_err(&path, e))?;
    drop(out);
    Ok((integrity, Some(Extracted::File(file))))
}
