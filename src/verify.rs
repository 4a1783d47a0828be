//! Integrity of one backup file, in one streaming pass with bounded memory (the read-side mirror
//! of `pipeline`, after pgBackRest's verify filter chain): the file's bytes are hashed as they are
//! read, decompressed, and watched for pg_dump's completion trailer; then the sidecar and the
//! manifest are compared with what was found.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::catalog::{self, BackupName, Check, Manifest, TableRows};
use crate::chain::Chain;
use crate::pipeline::hex;

const BUF_SIZE: usize = 256 * 1024;

/// The files that make up one backup.
#[derive(Debug, Clone)]
pub struct BackupFiles {
    /// The data file.
    pub data: PathBuf,
    /// `<data>.sha256`.
    pub sidecar: PathBuf,
    /// `<data>.json`.
    pub manifest: PathBuf,
    /// The parsed name, when the file follows our naming scheme.
    pub name: Option<BackupName>,
}

impl BackupFiles {
    /// The sidecar and manifest paths that belong to `data`.
    pub fn for_data(data: &Path) -> Self {
        let file_name = data
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        BackupFiles {
            sidecar: data.with_file_name(format!("{file_name}.sha256")),
            manifest: data.with_file_name(format!("{file_name}.json")),
            name: BackupName::parse(&file_name),
            data: data.to_path_buf(),
        }
    }

    /// The data file's name.
    pub fn file_name(&self) -> String {
        self.data
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    }

    /// The manifest, if present and readable.
    pub fn read_manifest(&self) -> Option<Manifest> {
        self.manifest_state().ok().flatten()
    }

    /// The manifest: `Ok(None)` when there is none, an error in words when it is there but not
    /// a manifest (garbage, not an object, a FIFO, ...).
    pub fn manifest_state(&self) -> Result<Option<Manifest>, String> {
        match read_regular(&self.manifest, 64 << 20) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", self.manifest.display())),
            Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes)
                .map(Some)
                .map_err(|e| {
                    format!(
                        "{} is not a pgbackup manifest ({e})",
                        self.manifest.display()
                    )
                }),
        }
    }
}

/// Read a small file, refusing anything but a regular file (opening a FIFO would block) and
/// anything larger than `limit`.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory)",
        ));
    }
    if meta.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes, more than a file of this kind can be", meta.len()),
        ));
    }
    std::fs::read(path)
}

/// What the integrity pass found.
#[derive(Debug, Default)]
pub struct Integrity {
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// The manifest, when present.
    pub manifest: Option<Manifest>,
    /// Uncompressed bytes read.
    pub raw_bytes: u64,
    /// Row counts found in the dump's COPY blocks.
    pub tables: Vec<TableRows>,
    /// Extensions the dump creates itself.
    pub created_extensions: Vec<String>,
    /// Schemas the dump creates itself.
    pub created_schemas: Vec<String>,
    /// COPY blocks whose table name could not be read.
    pub unnamed_copies: u64,
    /// The chain the file was read with (none when it is one this version does not know).
    pub chain: Option<Chain>,
    /// Writing the decompressed stream to [`Subject::extract`] failed (full disk): the copy is
    /// not whole, whatever the checks say.
    pub extract_error: Option<io::Error>,
    /// The identities that decrypted an encrypted backup (a restore reads it again with them).
    pub keys: Option<std::sync::Arc<crate::crypt::Identities>>,
    /// An encrypted backup could not be opened for want of the right key: a configuration
    /// problem (exit 78), not a damaged file, unless another check failed too.
    pub key_problem: bool,
}

impl Integrity {
    /// How to read the file again (decryption, decompression): known whenever the integrity
    /// pass could read it (always when [`Integrity::ok`]); `None` for a chain this version
    /// does not know.
    pub fn unpack(&self) -> Option<crate::codec::Unpack> {
        self.chain.map(|c| crate::codec::Unpack {
            compression: c.compression,
            keys: self.keys.clone(),
        })
    }

    /// Whether the only failures are for want of the right key (exit 78, not 65).
    pub fn only_key_problem(&self) -> bool {
        self.key_problem && self.checks.iter().all(|c| c.ok || c.name == "age")
    }

    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The failed checks, as one line.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// Hashes and counts the bytes read through it. A failure to read the backup itself (a disk
/// error, S3 unreachable after retries) is kept aside, so that it is reported as what it is,
/// never as a corrupt file; over the decrypted stream, a decryption failure (a damaged or cut
/// chunk) is kept aside the same way, so that it is not taken for a decompression error.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    failed: Option<io::Error>,
    /// The file's first bytes, to name what it is when it does not decompress.
    head: Vec<u8>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed.is_some() {
            return Err(io::Error::other("the backup could not be read"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.failed = Some(e);
                return Err(io::Error::other("the backup could not be read"));
            }
        };
        self.hasher.update(&buf[..n]);
        if self.head.len() < HEAD {
            let take = n.min(HEAD - self.head.len());
            self.head.extend_from_slice(&buf[..take]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

const HEAD: usize = 32;

/// " (age1..., ssh-ed25519 ...)": the public keys a manifest says a backup was encrypted to.
fn recipients_of(manifest: &Result<Option<Manifest>, String>) -> String {
    let Ok(Some(m)) = manifest else {
        return String::new();
    };
    let names: Vec<&str> = m
        .stages
        .iter()
        .filter_map(|s| match s {
            crate::chain::Stage::Encryption { recipients, .. } => Some(recipients),
            _ => None,
        })
        .flatten()
        .map(String::as_str)
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

/// What an uncompressed file that failed to decompress is, and what to do with it.
fn uncompressed_hint(head: &[u8]) -> &'static str {
    if head.starts_with(b"PGDMP") {
        "; the file is an uncompressed pg_dump custom archive (pg_dump -Fc): compress it (gzip -k FILE, then restore FILE.gz --no-sidecar) or restore it with pg_restore"
    } else if head.starts_with(b"--\n-- PostgreSQL database") {
        "; the file is uncompressed SQL (pg_dump without gzip): compress it (gzip -k FILE, then restore FILE.gz --no-sidecar) or restore it with psql"
    } else {
        ""
    }
}

/// What one integrity pass reads, wherever the backup is: the data stream, the sidecar's
/// content and the manifest. Built from local files ([`check_integrity`]) or from a storage's
/// objects ([`check_stored`]), so that a backup in S3 is checked streamed, with no local copy.
pub struct Subject<'a> {
    /// The data file's name.
    pub file_name: String,
    /// Its parsed name, when it follows our scheme.
    pub name: Option<BackupName>,
    /// Where the sidecar is, for messages.
    pub sidecar_at: String,
    /// The sidecar's content, or why it could not be read.
    pub sidecar: io::Result<Vec<u8>>,
    /// The manifest: none, one, or why it is not one (see [`BackupFiles::manifest_state`]).
    pub manifest: Result<Option<Manifest>, String>,
    /// The data, streamed.
    pub data: Box<dyn Read + 'a>,
    /// Where a copy of the decompressed stream goes as it is checked (a custom archive that
    /// pg_restore reads from a seekable file), if anywhere.
    pub extract: Option<&'a mut dyn Write>,
    /// The keys an encrypted backup is decrypted with (or why there are none).
    pub keys: crate::crypt::Keys,
}

impl std::fmt::Debug for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("file_name", &self.file_name)
            .finish_non_exhaustive()
    }
}

/// The chain a backup was written through: what its manifest records, else what its name
/// says (our names, or the suffix of another's: `app.dump.zst`). An error for a chain this
/// version does not know.
pub fn chain_of(
    file_name: &str,
    manifest: &Result<Option<Manifest>, String>,
) -> Result<Chain, String> {
    match manifest {
        Ok(Some(m)) => m.chain(),
        _ => Ok(BackupName::parse(file_name)
            .map(|n| n.chain())
            .unwrap_or_else(|| crate::catalog::Kind::guess(file_name).chain())),
    }
}

/// Check one local backup (see [`check_subject`]), decrypting with `keys` when it is
/// encrypted. The data must be a regular file.
pub fn check_integrity(
    files: &BackupFiles,
    keys: &crate::crypt::Keys,
    progress: impl FnMut(u64),
) -> io::Result<Integrity> {
    check_local(files, keys, None, progress)
}

/// Check one local backup as [`check_integrity`] does, writing its decompressed stream to
/// `extract` in the same pass (see [`Integrity::extract_error`]).
pub fn check_integrity_extracting(
    files: &BackupFiles,
    keys: &crate::crypt::Keys,
    extract: &mut dyn Write,
    progress: impl FnMut(u64),
) -> io::Result<Integrity> {
    check_local(files, keys, Some(extract), progress)
}

fn check_local(
    files: &BackupFiles,
    keys: &crate::crypt::Keys,
    extract: Option<&mut dyn Write>,
    progress: impl FnMut(u64),
) -> io::Result<Integrity> {
    let sidecar = read_regular(&files.sidecar, 64 << 10);
    if !std::fs::metadata(&files.data)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory)",
        ));
    }
    let subject = Subject {
        file_name: files.file_name(),
        name: files.name.clone(),
        sidecar_at: files.sidecar.display().to_string(),
        sidecar,
        manifest: files.manifest_state(),
        data: Box::new(File::open(&files.data)?),
        extract,
        keys: keys.clone(),
    };
    check_subject(subject, progress)
}

/// Check one backup in a storage, streamed through [`Storage::open`] (an S3 GET that resumes
/// with a Range after a dropped connection): nothing is written locally. A data object that
/// cannot be opened is an error; a missing sidecar or manifest is what the checks report.
pub fn check_stored(
    store: &dyn crate::storage::Storage,
    name: &BackupName,
    keys: &crate::crypt::Keys,
    transfers: &mut dyn crate::job::Transfers,
) -> crate::error::Result<Integrity> {
    let db = &name.database;
    let file_name = name.file_name();
    let small = |f: &str, limit: u64| -> io::Result<Vec<u8>> {
        let mut r = store.open(&store.key_of(db, f)).map_err(io::Error::other)?;
        let mut out = Vec::new();
        (&mut r).take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "larger than a file of this kind can be",
            ));
        }
        Ok(out)
    };
    // The data first: a missing object fails here, before anything else is read.
    let data = store.open(&store.key_of(db, &file_name))?;
    let sidecar = small(&name.sidecar_name(), 64 << 10);
    let manifest_at = store.describe(db, &name.manifest_name());
    let listed = store.files(db)?;
    let names_manifest = listed.iter().any(|f| f.name == name.manifest_name());
    let size = listed.iter().find(|f| f.name == file_name).map(|f| f.size);
    let manifest = if names_manifest {
        small(&name.manifest_name(), 64 << 20)
            .map_err(|e| format!("cannot read {manifest_at}: {e}"))
            .and_then(|bytes| {
                serde_json::from_slice::<Manifest>(&bytes)
                    .map(Some)
                    .map_err(|e| format!("{manifest_at} is not a pgbackup manifest ({e})"))
            })
    } else {
        Ok(None)
    };
    let subject = Subject {
        file_name: file_name.clone(),
        name: Some(name.clone()),
        sidecar_at: store.describe(db, &name.sidecar_name()),
        sidecar,
        manifest,
        data,
        extract: None,
        keys: keys.clone(),
    };
    transfers.start(&file_name, size);
    let mut read = 0;
    let checked = check_subject(subject, |n| {
        read = n;
        transfers.update(n);
    });
    transfers.finish(checked.as_ref().is_ok_and(|i| i.ok()), read);
    checked.map_err(|e| {
        crate::error::Error::from_stream(e, |source| crate::error::Error::Input {
            what: "backup",
            path: store.describe(db, &file_name).into(),
            source,
        })
    })
}

/// Check one backup: sidecar present and well-formed, SHA-256 matches, the stream decompresses
/// to the end, the dump carries pg_dump's completion trailer, and the manifest (when present)
/// agrees on size and checksum. `progress` gets the compressed bytes read so far, after each
/// read (the caller decides how often to say so).
pub fn check_subject(subject: Subject<'_>, mut progress: impl FnMut(u64)) -> io::Result<Integrity> {
    let mut checks = Vec::new();
    let file_name = subject.file_name.clone();

    // The sidecar: missing or malformed is a failure, never a pass.
    let sidecar_text = subject
        .sidecar
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let expected = match sidecar_text {
        Ok(text) => match catalog::parse_sidecar(&text) {
            Some((hex, name)) if name == file_name => {
                checks.push(check("sidecar", true, "present"));
                Some(hex)
            }
            Some((_, name)) => {
                checks.push(check(
                    "sidecar",
                    false,
                    format!(
                        "names \"{}\", not \"{}\"",
                        crate::text::escape_control(&name),
                        crate::text::escape_control(&file_name)
                    ),
                ));
                None
            }
            None => {
                checks.push(check(
                    "sidecar",
                    false,
                    format!("{} is not in sha256sum format", subject.sidecar_at),
                ));
                None
            }
        },
        Err(e) => {
            checks.push(check(
                "sidecar",
                false,
                format!("cannot read {}: {e}", subject.sidecar_at),
            ));
            None
        }
    };

    // The read side is built from the chain the manifest records (else the name's kind). A
    // chain this version does not know is a failed check, never a guess.
    let chain = chain_of(&subject.file_name, &subject.manifest);
    let chain = match chain {
        Ok(c) => c,
        Err(e) => {
            checks.push(check(
                "format",
                false,
                format!("{e}: a newer pgbackup wrote this backup; verify and restore it with that version"),
            ));
            return Ok(Integrity {
                checks,
                manifest: subject.manifest.ok().flatten(),
                ..Integrity::default()
            });
        }
    };
    let stage = chain.compression.name();
    let mut hashing = HashingReader {
        inner: subject.data,
        hasher: Sha256::new(),
        bytes: 0,
        failed: None,
        head: Vec::new(),
    };
    let mut observer = crate::observer::Observer::of(chain.format);
    let mut raw: u64 = 0;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut extract = subject.extract;
    let mut extract_error = None;
    // Decompress (and before that decrypt) to the end, feeding the observer and the copy.
    let mut decode = |input: &mut dyn Read, read_so_far: &dyn Fn() -> u64| -> Option<io::Error> {
        let mut gz = crate::codec::decoder(chain.compression, input);
        loop {
            match gz.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => {
                    observer.feed(&buf[..n]);
                    if let Some(out) = extract.as_mut() {
                        if let Err(e) = out.write_all(&buf[..n]) {
                            extract_error = Some(e);
                            extract = None;
                        }
                    }
                    raw += n as u64;
                    progress(read_so_far());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e),
            }
        }
    };
    // An encrypted backup: what decryption found (a check), the keys that opened it, the
    // plaintext's digest and size, and whether the keys were the problem (not the file).
    let mut age_check = None;
    let mut opened_with = None;
    let mut plaintext = None;
    let mut key_problem = false;
    // `None`: the stream was not decompressed at all (it did not decrypt).
    let gzip_error: Option<Option<io::Error>> = {
        let (counted, read_so_far) = crate::codec::Counted::new(&mut hashing);
        let read_so_far = move || read_so_far.get();
        if !chain.encrypted {
            let mut counted = counted;
            Some(decode(&mut counted, &read_so_far))
        } else {
            match &subject.keys {
                Err(why) => {
                    key_problem = true;
                    age_check = Some(check(
                        "age",
                        false,
                        format!("not checked: {why}. Only the stored bytes were checked (sha256 against the sidecar and the manifest); decryption, decompression, completeness and row counts were not"),
                    ));
                    None
                }
                Ok(ids) => match ids.open(counted) {
                    Err(crate::crypt::OpenError::NoMatchingKey) => {
                        key_problem = true;
                        age_check = Some(check(
                            "age",
                            false,
                            format!(
                                "the {} opens none of this backup's recipient stanzas: it was encrypted to other keys{} (or its header is damaged, which the sha256 check would show)",
                                ids.source(),
                                recipients_of(&subject.manifest)
                            ),
                        ));
                        None
                    }
                    Err(crate::crypt::OpenError::Damaged(why)) => {
                        age_check =
                            Some(check("age", false, format!("{why} (truncated or corrupt)")));
                        None
                    }
                    Ok(opened) => {
                        opened_with = Some(ids.clone());
                        let mut plain = HashingReader {
                            inner: opened,
                            hasher: Sha256::new(),
                            bytes: 0,
                            failed: None,
                            head: Vec::new(),
                        };
                        let e = decode(&mut plain, &read_so_far);
                        let digest = hex(&plain.hasher.finalize_reset());
                        match plain.failed.take() {
                            Some(f) => {
                                age_check = Some(check(
                                    "age",
                                    false,
                                    format!(
                                        "decryption failed after {} bytes: {f} (the file is damaged or cut)",
                                        plain.bytes
                                    ),
                                ));
                                None
                            }
                            None => {
                                plaintext = Some((digest, plain.bytes));
                                Some(e)
                            }
                        }
                    }
                },
            }
        }
    };
    // Hash whatever the decoder did not consume, so the checksum covers the whole file.
    let rest = io::copy(&mut hashing, &mut io::sink());
    if let Some(e) = hashing.failed.take() {
        return Err(e);
    }
    rest?;
    let actual = hex(&hashing.hasher.finalize());
    let size = hashing.bytes;

    if let Some(expected) = &expected {
        if *expected == actual {
            checks.push(check("sha256", true, actual.clone()));
        } else {
            checks.push(check(
                "sha256",
                false,
                format!("mismatch: sidecar says {expected}, file is {actual}"),
            ));
        }
    }
    let manifest_state = subject.manifest;
    let manifest = manifest_state.clone().ok().flatten();
    if let Some((digest, bytes)) = &plaintext {
        let recorded = manifest.as_ref().and_then(|m| m.plaintext_sha256.as_ref());
        age_check = Some(match recorded {
            Some(r) if r != digest => check(
                "age",
                false,
                format!("the decrypted stream's sha256 {digest} differs from the manifest's {r}"),
            ),
            _ => check(
                "age",
                true,
                format!(
                    "decrypted with the {}: {bytes} bytes{}",
                    opened_with
                        .as_ref()
                        .map(|i| i.source())
                        .unwrap_or("identity"),
                    if recorded.is_some() {
                        ", sha256 as the manifest records"
                    } else {
                        ""
                    }
                ),
            ),
        });
    }
    if let Some(c) = age_check {
        checks.push(c);
    }
    match &gzip_error {
        None => {}
        Some(None) if raw == 0 => {
            checks.push(check(stage, false, "the file decompresses to nothing"))
        }
        Some(None) => checks.push(check(stage, true, format!("{raw} bytes uncompressed"))),
        Some(Some(e)) => checks.push(check(
            stage,
            false,
            format!(
                "decompression failed after {raw} bytes: {e} (truncated or corrupt){}",
                if chain.encrypted {
                    ""
                } else {
                    uncompressed_hint(&hashing.head)
                }
            ),
        )),
    }
    if let Some(None) = &gzip_error {
        match (observer.incomplete_reason(), chain.format) {
            (None, crate::chain::Format::Plain) => checks.push(check(
                "complete",
                true,
                "pg_dump completion trailer present",
            )),
            (None, crate::chain::Format::Globals) => checks.push(check(
                "complete",
                true,
                "pg_dumpall completion trailer present",
            )),
            (None, crate::chain::Format::Custom) => checks.push(check(
                "complete",
                true,
                "custom archive whole: every data block of its table of contents present",
            )),
            (None, crate::chain::Format::Directory) => checks.push(check(
                "complete",
                true,
                "directory-format dump whole: toc.dat and every data file it names present",
            )),
            (None, crate::chain::Format::Rdb) => checks.push(check(
                "complete",
                true,
                "Redis snapshot whole: every opcode and value to EOF, CRC-64 trailer matches",
            )),
            (Some(why), _) => checks.push(check("complete", false, why)),
        }
    }
    let decoded = matches!(gzip_error, Some(None));

    match (&manifest_state, &manifest) {
        (Err(e), _) => checks.push(check("manifest", false, e.clone())),
        (Ok(_), None) => checks.push(check(
            "manifest",
            true,
            "missing (optional): no size or row counts to compare",
        )),
        (Ok(_), Some(m)) => {
            let mut problems = Vec::new();
            if m.sha256 != actual {
                problems.push(format!("sha256 {} differs from the file's", m.sha256));
            }
            if m.compressed_bytes != size {
                problems.push(format!(
                    "compressed size {} differs from the file's {size}",
                    m.compressed_bytes
                ));
            }
            if decoded && m.raw_bytes != raw {
                problems.push(format!(
                    "uncompressed size {} differs from the file's {raw}",
                    m.raw_bytes
                ));
            }
            if m.file != file_name {
                problems.push(format!("names \"{}\"", m.file));
            }
            if problems.is_empty() {
                checks.push(check("manifest", true, "size and checksum agree"));
            } else {
                checks.push(check("manifest", false, problems.join(", ")));
            }
        }
    }
    let (created_extensions, created_schemas) = observer.created();
    let unnamed_copies = observer.unnamed_copies();
    Ok(Integrity {
        chain: Some(chain),
        keys: opened_with,
        key_problem,
        checks,
        manifest,
        raw_bytes: raw,
        created_extensions,
        created_schemas,
        unnamed_copies,
        tables: observer.into_tables(),
        extract_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_backup(dir: &Path, body: &[u8]) -> BackupFiles {
        let data = dir.join("db_20260101_000000.sql.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body).unwrap();
        let bytes = gz.finish().unwrap();
        std::fs::write(&data, &bytes).unwrap();
        let sha = hex(&Sha256::digest(&bytes));
        std::fs::write(
            dir.join("db_20260101_000000.sql.gz.sha256"),
            catalog::sidecar_line(&sha, "db_20260101_000000.sql.gz"),
        )
        .unwrap();
        BackupFiles::for_data(&data)
    }

    fn no_keys() -> crate::crypt::Keys {
        Err(crate::crypt::NO_IDENTITY.into())
    }

    const GOOD: &[u8] = b"SET x;\nCOPY public.t (a) FROM stdin;\n1\n\\.\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n";

    #[test]
    fn good_backup_passes() {
        let d = tempfile::tempdir().unwrap();
        let f = write_backup(d.path(), GOOD);
        let r = check_integrity(&f, &no_keys(), |_| {}).unwrap();
        assert!(r.ok(), "{}", r.failures());
        assert_eq!(r.tables[0].rows, 1);
    }

    #[test]
    fn flipped_byte_fails_sha_and_gzip() {
        let d = tempfile::tempdir().unwrap();
        let f = write_backup(d.path(), GOOD);
        let mut bytes = std::fs::read(&f.data).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&f.data, &bytes).unwrap();
        let r = check_integrity(&f, &no_keys(), |_| {}).unwrap();
        assert!(!r.ok());
        assert!(
            r.failures().contains("sha256: mismatch"),
            "{}",
            r.failures()
        );
    }

    #[test]
    fn missing_trailer_fails_completeness() {
        let d = tempfile::tempdir().unwrap();
        let f = write_backup(d.path(), b"SET x;\nCOPY public.t (a) FROM stdin;\n1\n");
        let r = check_integrity(&f, &no_keys(), |_| {}).unwrap();
        assert!(r.failures().contains("complete:"), "{}", r.failures());
    }

    #[test]
    fn an_uncompressed_dump_is_named_with_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("old.dump.gz");
        std::fs::write(&data, b"PGDMP\x01\x0e\x00\x04\x08\x01 and the rest").unwrap();
        let r = check_integrity(&BackupFiles::for_data(&data), &no_keys(), |_| {}).unwrap();
        assert!(
            r.failures().contains("uncompressed pg_dump custom archive"),
            "{}",
            r.failures()
        );
    }

    #[test]
    fn missing_sidecar_is_a_failure() {
        let d = tempfile::tempdir().unwrap();
        let f = write_backup(d.path(), GOOD);
        std::fs::remove_file(&f.sidecar).unwrap();
        let r = check_integrity(&f, &no_keys(), |_| {}).unwrap();
        assert!(!r.ok());
        assert!(
            r.failures().contains("sidecar: cannot read"),
            "{}",
            r.failures()
        );
    }
}
