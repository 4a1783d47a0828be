//! Backup names, the `.sha256` sidecar and `.json` manifest formats, and listing what is on disk.
//!
//! The reader rule (the first invariant): a backup exists only when its data file AND its
//! sidecar exist. Everything else in a database directory is either debris from an interrupted
//! run (temp files, a sidecar whose data never arrived) or a foreign file we never touch.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::chain::{Chain, Compression, Format, Stage};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// Prefix of every temp file pgbackup creates; anything with it is debris after a crash.
pub const TEMP_PREFIX: &str = ".pgbackup-tmp.";

/// Format version written into manifests.
pub const MANIFEST_VERSION: u32 = 2;

const TS_FORMAT: &str = "%Y%m%d_%H%M%S";

/// What a data file holds, its name's first suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// SQL (`.sql`): a plain dump, or the cluster globals.
    Sql,
    /// A pg_dump custom archive (`.dump`).
    Dump,
    /// A tar of a pg_dump directory-format dump (`.tar`).
    Tar,
    /// A Redis snapshot (`.rdb`).
    Rdb,
}

/// The data files the catalog knows: plain SQL (`.sql.*`), a pg_dump custom archive
/// (`.dump.*`) or a directory-format dump's tar (`.tar.*`), then the compression (`gz`, `zst`),
/// then `.age` when encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// What it holds.
    pub container: Container,
    /// zstd (`.zst`), else gzip (`.gz`).
    pub zstd: bool,
    /// Encrypted with age (`.age`).
    pub encrypted: bool,
}

impl Kind {
    /// Plain SQL, gzip: what `pg_dump | gzip` makes.
    pub const SQL_GZ: Kind = Kind {
        container: Container::Sql,
        zstd: false,
        encrypted: false,
    };

    const SUFFIXES: [&'static str; 16] = [
        "sql.gz",
        "sql.zst",
        "dump.gz",
        "dump.zst",
        "tar.gz",
        "tar.zst",
        "rdb.gz",
        "rdb.zst",
        "sql.gz.age",
        "sql.zst.age",
        "dump.gz.age",
        "dump.zst.age",
        "tar.gz.age",
        "tar.zst.age",
        "rdb.gz.age",
        "rdb.zst.age",
    ];

    fn index(self) -> usize {
        let c = match self.container {
            Container::Sql => 0,
            Container::Dump => 1,
            Container::Tar => 2,
            Container::Rdb => 3,
        };
        usize::from(self.zstd) + 2 * c + 8 * usize::from(self.encrypted)
    }

    fn from_index(i: usize) -> Kind {
        Kind {
            zstd: i % 2 != 0,
            container: match (i % 8) / 2 {
                0 => Container::Sql,
                1 => Container::Dump,
                2 => Container::Tar,
                _ => Container::Rdb,
            },
            encrypted: i >= 8,
        }
    }

    /// The file-name suffix, without the leading dot.
    pub fn suffix(self) -> &'static str {
        Self::SUFFIXES[self.index()]
    }

    /// The kind (and with it the name's suffix) a chain produces.
    pub fn of(chain: &Chain) -> Kind {
        Kind {
            container: match chain.format {
                Format::Plain | Format::Globals => Container::Sql,
                Format::Custom => Container::Dump,
                Format::Directory => Container::Tar,
                Format::Rdb => Container::Rdb,
            },
            zstd: matches!(chain.compression, Compression::Zstd { .. }),
            encrypted: chain.encrypted,
        }
    }

    /// The kind a file of any name most likely is, by its suffix (a `pg_dump -Fc | zstd` file
    /// of an old script named `app.dump.zst`): encrypted for `.age`, zstd for `.zst`, else
    /// gzip; a custom archive for `.dump.*`, a directory-format dump for `.tar.*`, else plain
    /// SQL.
    pub fn guess(file_name: &str) -> Kind {
        let (name, encrypted) = match file_name.strip_suffix(".age") {
            Some(n) => (n, true),
            None => (file_name, false),
        };
        let stem = name.rsplit_once('.').map(|(stem, _)| stem).unwrap_or("");
        Kind {
            zstd: name.ends_with(".zst"),
            container: if stem.ends_with(".dump") {
                Container::Dump
            } else if stem.ends_with(".tar") {
                Container::Tar
            } else if stem.ends_with(".rdb") {
                Container::Rdb
            } else {
                Container::Sql
            },
            encrypted,
        }
    }

    /// The chain a file's name implies, for a backup without a (readable) manifest.
    pub fn chain(self) -> Chain {
        // The level does not matter to a reader.
        let compression = if self.zstd {
            Compression::Zstd {
                level: 3,
                threads: 1,
            }
        } else {
            Compression::Gzip {
                level: 6,
                threads: 1,
            }
        };
        Chain {
            format: match self.container {
                Container::Sql => Format::Plain,
                Container::Dump => Format::Custom,
                Container::Tar => Format::Directory,
                Container::Rdb => Format::Rdb,
            },
            compression,
            encrypted: self.encrypted,
        }
    }
}

/// A parsed backup name: `<database>_<YYYYMMDD>_<HHMMSS>.<suffix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupName {
    /// The database's directory name.
    pub database: String,
    /// When the backup started (UTC, second precision).
    pub timestamp: DateTime<Utc>,
    /// The data format.
    pub kind: Kind,
}

impl BackupName {
    /// A new name for `database` at `timestamp` (sub-seconds dropped).
    pub fn new(database: &str, timestamp: DateTime<Utc>, kind: Kind) -> Self {
        let timestamp = DateTime::from_timestamp(timestamp.timestamp(), 0).unwrap_or(timestamp);
        BackupName {
            database: database.to_string(),
            timestamp,
            kind,
        }
    }

    /// The data file name.
    pub fn file_name(&self) -> String {
        format!(
            "{}_{}.{}",
            self.database,
            self.timestamp.format(TS_FORMAT),
            self.kind.suffix()
        )
    }

    /// The sidecar's file name.
    pub fn sidecar_name(&self) -> String {
        format!("{}.sha256", self.file_name())
    }

    /// The manifest's file name.
    pub fn manifest_name(&self) -> String {
        format!("{}.json", self.file_name())
    }

    /// The chain the name implies, for a backup without a (readable) manifest: its kind's,
    /// and the globals' format in the globals' directory.
    pub fn chain(&self) -> Chain {
        let mut chain = self.kind.chain();
        if is_globals_name(&self.database) {
            chain.format = Format::Globals;
        }
        chain
    }

    /// Parse a data file name; `None` for anything that is not exactly our scheme.
    pub fn parse(file_name: &str) -> Option<Self> {
        let (stem, kind) = Kind::SUFFIXES.iter().enumerate().find_map(|(i, suffix)| {
            let stem = file_name.strip_suffix(suffix)?.strip_suffix('.')?;
            Some((stem, Kind::from_index(i)))
        })?;
        // stem = <database>_<YYYYMMDD>_<HHMMSS>; the database may itself contain '_'.
        if stem.len() < 17 {
            return None;
        }
        // Not `split_at`: a foreign file's name may put a multi-byte character across the cut
        // (found by fuzzing; it panicked `list` and retention on such a file).
        let (db_part, ts) = stem.split_at_checked(stem.len() - 15)?;
        let database = db_part.strip_suffix('_')?;
        if !is_catalog_name(database) {
            return None;
        }
        let ts_ok = ts.len() == 15
            && ts.as_bytes()[8] == b'_'
            && ts
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 8 || b.is_ascii_digit());
        if !ts_ok {
            return None;
        }
        let naive = NaiveDateTime::parse_from_str(ts, TS_FORMAT).ok()?;
        Some(BackupName {
            database: database.to_string(),
            timestamp: naive.and_utc(),
            kind,
        })
    }
}

/// Whether `name` may be used as a database directory name: letters, digits, `-`, `_`, `.`,
/// not starting with `.` or `_` (reserved for temp files and `_globals`), at most 128 bytes.
pub fn is_valid_dir_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['.', '_'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The directory (and file-name prefix) of the cluster globals of the one server backed up.
pub const GLOBALS: &str = "_globals";

/// Whether `name` is the globals' directory: [`GLOBALS`], or `_globals-<server>` when several
/// servers are backed up. No configured database can take it (a leading `_` is refused).
pub fn is_globals_name(name: &str) -> bool {
    name == GLOBALS
        || name
            .strip_prefix("_globals-")
            .is_some_and(|rest| !rest.is_empty() && is_valid_dir_name(&format!("x{rest}")))
}

/// Whether `name` is a directory the catalog reads: a database's, or the globals'.
pub fn is_catalog_name(name: &str) -> bool {
    is_valid_dir_name(name) || is_globals_name(name)
}

/// The collision-free directory name used in zero-config mode for a server database name.
///
/// The rule, documented in pgbackup(1): keep ASCII letters, digits and `_`; write `-` as `--`;
/// write every other byte of the UTF-8 name (and a leading `_`) as `-xx` (lower-case hex). The
/// mapping is injective: reading left to right, `--` is a literal dash and `-` followed by two hex
/// digits is an escaped byte, so two different names never share a directory.
pub fn escape_db_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        match b {
            b'_' if i == 0 => out.push_str("-5f"),
            b'-' => out.push_str("--"),
            b if b.is_ascii_alphanumeric() || b == b'_' => out.push(b as char),
            b => out.push_str(&format!("-{b:02x}")),
        }
    }
    out
}

/// The sidecar's content: exactly what `sha256sum` prints, so `sha256sum -c` accepts it.
pub fn sidecar_line(sha256_hex: &str, file_name: &str) -> String {
    format!("{sha256_hex}  {file_name}\n")
}

/// The sizes a well-formed sidecar of `file_name` can have: `<64 hex>  <name>\n`, or with
/// `\r\n` (a sidecar that went through a Windows editor; `sha256sum -c` accepts it too).
pub fn sidecar_sizes(file_name: &str) -> [u64; 2] {
    let n = 64 + 2 + file_name.len() as u64 + 1;
    [n, n + 1]
}

/// Parse a sidecar: `(hex digest, file name)`; `None` when it is not in `sha256sum` format.
/// A `\r\n` line end is accepted, as `sha256sum -c` accepts it.
pub fn parse_sidecar(text: &str) -> Option<(String, String)> {
    let line = match text.strip_suffix("\r\n") {
        Some(l) => l,
        None => text.strip_suffix('\n').unwrap_or(text),
    };
    // No control characters in the name: a line break, a `\r` or a NUL is never one of ours,
    // and would make the line mean two things (found by fuzzing).
    if line.chars().any(char::is_control) {
        return None;
    }
    let (hex, rest) = line.split_at_checked(64)?;
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || name.is_empty() {
        return None;
    }
    Some((hex.to_ascii_lowercase(), name.to_string()))
}

/// Row count of one table as found in the dump itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// Schema name (unquoted).
    pub schema: String,
    /// Table name (unquoted).
    pub table: String,
    /// Rows in the dump's COPY block.
    pub rows: u64,
}

/// The `.json` manifest written beside each backup. Never contains a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format_version: u32,
    /// The configured database name (the directory name).
    pub database: String,
    /// The database name on the server.
    pub dbname: String,
    /// `host:port` of the server (no credentials).
    pub host: String,
    /// The data file's name.
    pub file: String,
    /// `server_version` as reported by the server.
    pub server_version: String,
    /// `pg_dump --version`.
    pub pg_dump_version: String,
    /// When the dump started.
    pub started_at: DateTime<Utc>,
    /// When the data file was complete.
    pub finished_at: DateTime<Utc>,
    /// Duration in seconds.
    pub duration_secs: f64,
    /// Size of the data file.
    pub compressed_bytes: u64,
    /// Size of the uncompressed dump.
    pub raw_bytes: u64,
    /// SHA-256 of the data file, lower-case hex.
    pub sha256: String,
    /// An encrypted backup's plaintext (the compressed stream, what `age -d FILE` prints):
    /// its SHA-256, lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_sha256: Option<String>,
    /// ... and its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_bytes: Option<u64>,
    /// "gzip".
    pub compression: String,
    /// The gzip level used.
    pub compression_level: u32,
    /// "plain".
    pub dump_format: String,
    /// Every stage of the stream, with its parameters (format version 2; the read side is
    /// built from it). Version 1 manifests have none: their `dump_format` and `compression`
    /// fields say the same. Both are written, so that an older pgbackup still reads it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Free text given with `--description`.
    #[serde(default)]
    pub description: Option<String>,
    /// pgbackup's version.
    pub tool_version: String,
    /// Row counts per table, counted in the dump stream (same snapshot as the data).
    #[serde(default)]
    pub tables: Vec<TableRows>,
    /// Extensions installed in the database, with schema and version (restore makes the ones
    /// the dump does not create in the same schema).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<ExtensionInfo>,
    /// What a plain dump leaves out: database settings, role-in-database settings, comment,
    /// encoding and locale (restore applies them when it creates the database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_properties: Option<DatabaseProperties>,
    /// A Redis snapshot's facts (server, RDB version, key counts at snapshot time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisFacts>,
    /// Results of `pgbackup verify`, oldest first: the last [`KEPT_VERIFICATIONS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verifications: Vec<Verification>,
    /// How many verifications there were in all (the older ones are counted, not kept).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub verifications_total: u64,
    /// Fields this version does not know (written by a newer one): kept when rewriting.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// How many verification results a manifest keeps: a weekly verify must not grow it forever.
pub const KEPT_VERIFICATIONS: usize = 10;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Manifest {
    /// Record one verification: kept with the last [`KEPT_VERIFICATIONS`], counted in
    /// `verifications_total` (a manifest written before the count existed counts what it has).
    pub fn record_verification(&mut self, v: Verification) {
        let before = self
            .verifications_total
            .max(self.verifications.len() as u64);
        self.verifications.push(v);
        let excess = self.verifications.len().saturating_sub(KEPT_VERIFICATIONS);
        self.verifications.drain(..excess);
        self.verifications_total = before + 1;
    }
}

/// One `pgbackup verify` of a backup, as recorded in its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// Whether every check passed.
    pub ok: bool,
    /// How long it took.
    pub duration_secs: f64,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
    /// pgbackup's version.
    pub tool_version: String,
}

/// What a Redis snapshot's manifest records beside the key counts of its `tables` (which are
/// counted in the RDB stream itself, the same snapshot as the data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisFacts {
    /// `role` from `INFO` (master, slave), empty when INFO was not allowed.
    #[serde(default)]
    pub role: String,
    /// `valkey_version`, for a Valkey server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valkey_version: Option<String>,
    /// The RDB format version of the snapshot (its header).
    pub rdb_version: u32,
    /// Keys per logical database by `INFO keyspace` just before the snapshot (the live
    /// server's count, which may differ from the snapshot's by the writes in between).
    #[serde(default)]
    pub server_keyspace: std::collections::BTreeMap<u64, u64>,
    /// Keys with a TTL per logical database, in the snapshot.
    #[serde(default)]
    pub volatile: std::collections::BTreeMap<u64, u64>,
    /// Functions libraries in the snapshot.
    #[serde(default)]
    pub functions: u64,
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// "sidecar", "sha256", "gzip", "complete", "manifest", "test-restore".
    pub name: String,
    /// Passed?
    pub ok: bool,
    /// What was found, in words.
    pub detail: String,
}

impl Manifest {
    /// The chain this manifest records (see [`Chain::from_record`]).
    pub fn chain(&self) -> Result<Chain, String> {
        Chain::from_record(
            &self.stages,
            &self.dump_format,
            &self.compression,
            self.compression_level,
        )
    }
}

/// A manifest as written to disk: pretty JSON with a final newline.
pub fn manifest_bytes(m: &Manifest) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(m).expect("a manifest is plain data");
    v.push(b'\n');
    v
}

/// The directory of one database under the storage root.
pub fn db_dir(root: &Path, database: &str) -> PathBuf {
    root.join(database)
}

/// One file (object) in a database's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// File name inside the database directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (mtime; an object's Last-Modified), when known.
    pub modified: Option<DateTime<Utc>>,
}

/// Whether `name` is a data file, sidecar or manifest of our naming scheme for `db`.
pub fn is_ours(db: &str, name: &str) -> bool {
    let data = [".sha256", ".json"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name);
    BackupName::parse(data).is_some_and(|b| b.database == db)
}

/// The files of `db` that a reader must never count and that an interrupted run of ours left:
/// a data file without its sidecar, and a sidecar or manifest without its data file. Only
/// names of our scheme for `db`; foreign files are never debris.
pub fn debris_in<'a>(db: &str, files: &'a [StoredFile]) -> Vec<&'a StoredFile> {
    let names: HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    files
        .iter()
        .filter(|f| {
            if let Some(b) = BackupName::parse(&f.name).filter(|b| b.database == db) {
                return !names.contains(b.sidecar_name().as_str());
            }
            [".sha256", ".json"].iter().any(|ext| {
                f.name
                    .strip_suffix(ext)
                    .and_then(BackupName::parse)
                    .is_some_and(|b| b.database == db && !names.contains(b.file_name().as_str()))
            })
        })
        .collect()
}

/// One backup by our naming scheme, as a storage sees it.
#[derive(Debug, Clone)]
pub struct StoredBackup {
    /// The parsed name.
    pub name: BackupName,
    /// Size of the data file.
    pub size: u64,
    /// Whether the sidecar is there (the reader rule: without it, this is not a backup).
    pub has_sidecar: bool,
    /// Whether the manifest is there.
    pub has_manifest: bool,
}

/// Group a directory listing into backups by our naming scheme, oldest first. This is the
/// reader rule, the one place that says what a backup is: a data file of our scheme for `db`
/// AND its sidecar, of a size a well-formed sidecar of that name has (an empty or truncated
/// sidecar is no sidecar: keep-min must never count such a backup, and `list` must not call
/// it checksummed). The sidecar's content is checked by verify.
pub fn backups_in(db: &str, files: &[StoredFile]) -> Vec<StoredBackup> {
    let names: HashSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let sizes: std::collections::HashMap<&str, u64> =
        files.iter().map(|f| (f.name.as_str(), f.size)).collect();
    let mut out: Vec<StoredBackup> = files
        .iter()
        .filter_map(|f| {
            let name = BackupName::parse(&f.name)?;
            let sidecar_ok = sizes
                .get(name.sidecar_name().as_str())
                .is_some_and(|s| sidecar_sizes(&f.name).contains(s));
            (name.database == db).then(|| StoredBackup {
                has_sidecar: sidecar_ok,
                has_manifest: names.contains(name.manifest_name().as_str()),
                size: f.size,
                name,
            })
        })
        .collect();
    out.sort_by_key(|b| b.name.timestamp);
    out
}

// The database-level facts a manifest records (captured and applied by `crate::dbprops`).

/// An installed extension, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionInfo {
    /// `extname`.
    pub name: String,
    /// The schema it lives in.
    pub schema: String,
    /// `extversion`.
    pub version: String,
}

/// One role-in-database setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleSetting {
    /// The role.
    pub role: String,
    /// `name=value`, as `pg_db_role_setting` holds it.
    pub setting: String,
}

/// The database-level properties a plain dump leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseProperties {
    /// `ALTER DATABASE ... SET` settings, `name=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// `ALTER ROLE ... IN DATABASE ... SET` settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_settings: Vec<RoleSetting>,
    /// `COMMENT ON DATABASE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Encoding name (`UTF8`).
    #[serde(default)]
    pub encoding: String,
    /// `datcollate`.
    #[serde(default)]
    pub collate: String,
    /// `datctype`.
    #[serde(default)]
    pub ctype: String,
    /// `libc`, `icu` or `builtin` (PostgreSQL 15+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_provider: Option<String>,
    /// The ICU (or builtin) locale, when the provider is not libc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icu_locale: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn globals_names_are_the_catalog_s_and_no_database_s() {
        for ok in ["_globals", "_globals-127.0.0.1-3a5432", "_globals-db1"] {
            assert!(is_globals_name(ok) && is_catalog_name(ok), "{ok}");
            assert!(
                !is_valid_dir_name(ok),
                "a configured database cannot be called {ok}"
            );
        }
        for no in [
            "_globals-",
            "_globalsx",
            "_globals-a/b",
            "globals",
            "_safety",
        ] {
            assert!(!is_globals_name(no), "{no}");
        }
        let n = BackupName::parse("_globals_20261202_020000.sql.gz").unwrap();
        assert_eq!(n.database, "_globals");
        assert!(BackupName::parse("_other_20261202_020000.sql.gz").is_none());
    }

    use super::*;
    use chrono::TimeZone;

    fn f(name: &str) -> StoredFile {
        let size = match name.strip_suffix(".sha256") {
            Some(data) => sidecar_sizes(data)[0],
            None => 1,
        };
        StoredFile {
            name: name.into(),
            size,
            modified: None,
        }
    }

    #[test]
    fn an_empty_or_truncated_sidecar_is_no_sidecar() {
        let data = "db_20260102_000000.sql.gz";
        for (size, counts) in [
            (0, false),
            (10, false),
            (sidecar_sizes(data)[0], true),
            (sidecar_sizes(data)[1], true),
        ] {
            let files = [
                f(data),
                StoredFile {
                    name: format!("{data}.sha256"),
                    size,
                    modified: None,
                },
            ];
            assert_eq!(
                backups_in("db", &files)[0].has_sidecar,
                counts,
                "size {size}"
            );
        }
        let hex = "b".repeat(64);
        assert_eq!(
            parse_sidecar(&format!("{hex}  {data}\r\n")),
            Some((hex, data.to_string()))
        );
    }

    #[test]
    fn debris_is_ours_only_and_never_a_backup() {
        let files = [
            f("db_20260102_000000.sql.gz"),
            f("db_20260102_000000.sql.gz.sha256"),
            f("db_20260102_000000.sql.gz.json"),
            f("db_20260103_000000.sql.gz"),
            f("db_20260103_000000.sql.gz.json"),
            f("db_20260104_000000.sql.gz.sha256"),
            f("other_20260104_000000.sql.gz.sha256"),
            f("other_20260105_000000.sql.gz"),
            f("notes.txt"),
        ];
        let d: Vec<&str> = debris_in("db", &files)
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            d,
            vec![
                "db_20260103_000000.sql.gz",
                "db_20260104_000000.sql.gz.sha256"
            ]
        );
        assert!(is_ours("db", "db_20260102_000000.sql.gz.json"));
        assert!(!is_ours("db", "other_20260102_000000.sql.gz.json"));
        assert!(!is_ours("db", "notes.txt"));
    }

    #[test]
    fn backups_follow_the_reader_rule_and_skip_foreign_names() {
        let files = [
            f("db_20260102_000000.sql.gz"),
            f("db_20260102_000000.sql.gz.sha256"),
            f("db_20260101_000000.sql.gz"),
            f("db_20260101_000000.sql.gz.json"),
            f("other_20260101_000000.sql.gz"),
            f("notes.txt"),
            f("db_20260103_000000.sql.gz.sha256"),
        ];
        let b = backups_in("db", &files);
        let names: Vec<_> = b
            .iter()
            .map(|b| (b.name.file_name(), b.has_sidecar, b.has_manifest))
            .collect();
        assert_eq!(
            names,
            vec![
                ("db_20260101_000000.sql.gz".to_string(), false, true),
                ("db_20260102_000000.sql.gz".to_string(), true, false),
            ]
        );
    }

    #[test]
    fn name_round_trip() {
        let ts = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let n = BackupName::new("clara_main", ts, Kind::SQL_GZ);
        assert_eq!(n.file_name(), "clara_main_20260102_030405.sql.gz");
        assert_eq!(n.sidecar_name(), "clara_main_20260102_030405.sql.gz.sha256");
        assert_eq!(BackupName::parse(&n.file_name()), Some(n));
        let dotted = BackupName::new("app.v2", ts, Kind::SQL_GZ);
        assert_eq!(BackupName::parse(&dotted.file_name()), Some(dotted));
    }

    #[test]
    fn foreign_names_are_not_ours() {
        for n in [
            "clara_20260102_030405.sql",
            "clara_20260102_030405.sql.gz.sha256",
            "clara_20260102_030405.sql.gz.json",
            "clara_20260102_030405.gz",
            ".x_20260102_030405.sql.gz",
            "clara_2026010_030405.sql.gz",
            "clara_20261302_030405.sql.gz",
            "clara20260102_030405.sql.gz",
            "_20260102_030405.sql.gz",
            ".pgbackup-tmp.abc",
            "backup_clara_20250122_020015.sql.gz.bak",
            "notes.txt",
        ] {
            assert_eq!(BackupName::parse(n), None, "{n}");
        }
        // The legacy `backup_<db>_<ts>` files parse as a database called `backup_<db>`, which
        // only matters if such a directory is configured.
        assert!(BackupName::parse("backup_clara_20250122_020015.sql.gz").is_some());
    }

    #[test]
    fn escaping_is_injective_and_valid() {
        let names = [
            "clara",
            "my-db",
            "my--db",
            "my_db",
            "_globals",
            "a.b",
            "a-2eb",
            "Straße",
            "we\"ird name",
            "-",
            "--",
            "x-",
            "x-2d",
        ];
        let mut seen = std::collections::HashMap::new();
        for n in names {
            let e = escape_db_name(n);
            assert!(is_valid_dir_name(&e), "{n:?} -> {e:?}");
            if let Some(prev) = seen.insert(e.clone(), n) {
                panic!("{prev:?} and {n:?} both map to {e:?}");
            }
        }
        assert_eq!(escape_db_name("clara_main"), "clara_main");
        assert_eq!(escape_db_name("my-db"), "my--db");
        assert_eq!(escape_db_name("a.b"), "a-2eb");
    }

    /// Fuzzing found these: a multi-byte character across the timestamp cut panicked, and a
    /// name ending in carriage returns did not read back as itself.
    #[test]
    fn fuzz_regressions() {
        assert_eq!(BackupName::parse(".g1\u{2cc}q.gz_______.1[.sql.gz"), None);
        assert_eq!(BackupName::parse("d\u{2cc}_20260102_030405.sql.gz"), None);
        let hex = "a".repeat(64);
        assert_eq!(parse_sidecar(&format!("{hex}  x\r\r")), None);
        assert_eq!(parse_sidecar(&format!("{hex}  x\0y\n")), None);
    }

    #[test]
    fn sidecar_format_matches_sha256sum() {
        let hex = "a".repeat(64);
        let line = sidecar_line(&hex, "x.sql.gz");
        assert_eq!(line, format!("{hex}  x.sql.gz\n"));
        assert_eq!(parse_sidecar(&line), Some((hex.clone(), "x.sql.gz".into())));
        assert_eq!(parse_sidecar("abc  x.sql.gz\n"), None);
        assert_eq!(parse_sidecar(&format!("{hex}  a\n{hex}  b\n")), None);
    }
}
