//! Configuration: the TOML file, environment overrides, secrets, validation.
//!
//! Two layers, as in ripgrep's LowArgs -> HiArgs: [`FileConfig`] mirrors the TOML exactly (kebab
//! case, unknown keys rejected); [`Config::load`] merges the environment over it and turns it into
//! checked values, collecting every problem so `pgbackup config check` can list them all.
//!
//! By section: `storage` (`[storage.s3]` and where its keys come from), `databases`
//! (`[[database]]` and the old setups' environment database), `env` (the one table of
//! environment names), `show` (`pgbackup config show`). Validation reads the files it names
//! (passwords, S3 keys, credentials, a CA file) through [`secrets::Files`], so that a test can
//! check a configuration without a disk; loading applies nothing (the binary configures the
//! log from `[log]`).
//!
//! Precedence, highest first: command-line flags, environment variables, the config file,
//! built-in defaults. The config file is `--config PATH`, else `$PGBACKUP_CONFIG`, else
//! `/etc/pgbackup/pgbackup.toml`; only the last may be missing (then defaults apply).

mod databases;
mod encryption;
pub mod env;
pub mod secrets;
mod show;
mod storage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::conninfo::ConnInfo;
use crate::error::{ConfigProblems, Error};
use crate::postgres::Target;
use crate::secret::Secret;

/// The config file used when neither `--config` nor `$PGBACKUP_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pgbackup/pgbackup.toml";
/// Default backup root.
pub const DEFAULT_LOCAL_DIR: &str = "/var/lib/pgbackup";
/// Default gzip level.
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 6;
/// Default time limit of a test restore: a stuck restore never outlives the next weekly run.
pub const DEFAULT_RESTORE_TIMEOUT_SECS: u64 = 6 * 3600;
/// Default node_exporter textfile-collector directory (Debian's prometheus-node-exporter).
pub const DEFAULT_TEXTFILE_DIR: &str = "/var/lib/prometheus/node-exporter";
/// Default days a safety backup is kept.
pub const DEFAULT_KEEP_SAFETY_DAYS: u32 = 7;
/// Default dump timeout: a dump stuck on a lock never outlives the next night's run.
pub const DEFAULT_DUMP_TIMEOUT_SECS: u64 = 86_400;

// ------------------------------------------------------------------------------------------------
// The file, exactly as written.

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// `[storage]`.
    #[serde(default)]
    pub storage: StorageFile,
    /// `[backup]`.
    #[serde(default)]
    pub backup: BackupFile,
    /// `[retention]`.
    #[serde(default)]
    pub retention: RetentionFile,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsFile,
    /// `[verify]`.
    #[serde(default)]
    pub verify: VerifyFile,
    /// `[log]`.
    #[serde(default)]
    pub log: LogFile,
    /// `[encryption]`.
    #[serde(default)]
    pub encryption: encryption::EncryptionFile,
    /// `[[database]]`.
    #[serde(default)]
    pub database: Vec<DatabaseFile>,
    /// `[[redis]]`.
    #[serde(default)]
    pub redis: Vec<RedisFile>,
}

/// One `[[redis]]` entry: a Redis (or Valkey) server snapshotted over the replication
/// protocol.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RedisFile {
    /// Name: directory and file-name prefix.
    pub name: String,
    /// `redis://[user@]host[:port]` or `unix:///path/to/redis.sock` (or `sentinel`).
    pub url: Option<String>,
    /// Sentinels (`host:port`) to ask for the current master of `master-name`, instead of `url`.
    pub sentinel: Option<Vec<String>>,
    /// Sentinel's name of the master.
    pub master_name: Option<String>,
    /// With `sentinel`: snapshot the `master` (default) or a healthy `replica`.
    pub snapshot_from: Option<String>,
    /// The ACL user, with `sentinel` (with `url`, it is in the URL).
    pub user: Option<String>,
    /// The Sentinels' own password (their `requirepass`).
    pub sentinel_password_file: Option<PathBuf>,
    /// With `rediss://`: a CA to trust beside the system's (PEM).
    pub ca_file: Option<PathBuf>,
    /// With `rediss://`: a client certificate (PEM), for `tls-auth-clients`.
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// Use TLS with `sentinel` (the master and the Sentinels).
    pub tls: Option<bool>,
    /// `sync` (default: over the replication protocol) or `bgsave` (BGSAVE, then the file).
    pub mode: Option<String>,
    /// With `mode = "bgsave"`: the RDB file (default: CONFIG GET dir and dbfilename).
    pub rdb_path: Option<PathBuf>,
    /// File holding the password (`requirepass`, or the ACL user's).
    pub password_file: Option<PathBuf>,
    /// Name of a systemd credential holding the password.
    pub password_credential: Option<String>,
    /// Longest wait for any byte of the snapshot, in seconds (default 60).
    pub stall_timeout_secs: Option<u64>,
}

/// `[retention]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetentionFile {
    /// Keep every backup younger than this many days.
    pub keep_days: Option<i64>,
    /// Newest backup of each of the last N days that have one.
    pub keep_daily: Option<i64>,
    /// Newest backup of each of the last N ISO weeks that have one.
    pub keep_weekly: Option<i64>,
    /// Newest backup of each of the last N months that have one.
    pub keep_monthly: Option<i64>,
    /// Always keep the newest N complete backups (at least 1).
    pub keep_min: Option<i64>,
    /// Days a safety backup (taken before a restore overwrites a database) is kept.
    pub keep_safety_days: Option<i64>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsFile {
    /// node_exporter's textfile-collector directory.
    pub textfile_dir: Option<PathBuf>,
    /// Names the metrics file `pgbackup-<instance>.prom`, for several configurations that share
    /// one textfile directory (default: `pgbackup.prom`).
    pub instance: Option<String>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogFile {
    /// auto, journal, stderr or syslog.
    #[serde(default)]
    pub target: crate::log::LogTarget,
    /// The syslog socket (default /dev/log).
    pub syslog_socket: Option<PathBuf>,
}

/// `[verify]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VerifyFile {
    /// Server (and role) where test restores run; default: each backup's own server.
    pub restore_url: Option<String>,
    /// Password for `restore-url`.
    pub restore_password_file: Option<PathBuf>,
    /// Stop a test restore after this many seconds (0 = no limit).
    pub restore_timeout_secs: Option<i64>,
    /// The redis-server (or valkey-server) a Redis snapshot's test restore loads it into
    /// (default: redis-server, else valkey-server, from PATH).
    pub redis_server_path: Option<PathBuf>,
}

/// `[storage]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StorageFile {
    /// Root of the local backup tree.
    pub local_dir: Option<PathBuf>,
    /// `[storage.s3]`.
    pub s3: Option<S3File>,
}

/// `[storage.s3]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct S3File {
    /// Bucket name.
    pub bucket: Option<String>,
    /// Endpoint URL (empty or absent for AWS).
    pub endpoint: Option<String>,
    /// Region (default us-east-1).
    pub region: Option<String>,
    /// Key prefix (default "backups/").
    pub prefix: Option<String>,
    /// Access key id (prefer access-key-file).
    pub access_key: Option<String>,
    /// File holding the access key id.
    pub access_key_file: Option<PathBuf>,
    /// Secret access key (prefer secret-key-file).
    pub secret_key: Option<String>,
    /// File holding the secret access key.
    pub secret_key_file: Option<PathBuf>,
    /// Path-style addressing (default: on with a custom endpoint).
    pub path_style: Option<bool>,
    /// Storage class, e.g. STANDARD_IA.
    pub storage_class: Option<String>,
    /// Server-side encryption header value, e.g. AES256.
    pub server_side_encryption: Option<String>,
    /// Multipart part size in MiB (5-5120, default 16).
    pub part_size_mib: Option<i64>,
    /// Keep the local copy after the upload (default true); false streams straight to S3.
    pub keep_local: Option<bool>,
    /// Extra prefixes that `list` (and verify/restore) read, never write or prune.
    pub list_prefixes: Option<Vec<String>>,
    /// A transfer with no progress for this many seconds is a stall (default 120).
    pub stall_timeout_secs: Option<i64>,
    /// Abort our incomplete multipart uploads older than this many hours (default 24).
    pub abort_incomplete_after_hours: Option<i64>,
    /// PEM file of a private CA to trust besides the system store.
    pub ca_file: Option<PathBuf>,
    /// "governance" or "compliance": write every object with an Object Lock retention.
    pub object_lock: Option<String>,
    /// Days each object stays locked.
    pub object_lock_days: Option<i64>,
}

/// `[backup]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupFile {
    /// `plain` (default: SQL for psql), `custom` (pg_dump's archive for pg_restore) or
    /// `directory` (pg_dump's directory format, dumped in parallel, stored as a tar).
    pub format: Option<String>,
    /// Also back up each server's roles and tablespaces (`pg_dumpall --globals-only`).
    pub globals: Option<bool>,
    /// `gzip` (default) or `zstd`.
    pub compression: Option<String>,
    /// gzip level 1-9 (default 6), zstd 1-19 (default 3).
    pub compression_level: Option<i64>,
    /// zstd's compression workers (default: the CPUs; 1 compresses in the calling thread).
    pub compression_threads: Option<i64>,
    /// pg_dump's parallel jobs for `format = "directory"` (default: the CPUs, at most 8).
    pub dump_jobs: Option<i64>,
    /// Skip a database whose last backup is younger than this (0 = off).
    pub respawn_protection_hours: Option<i64>,
    /// Kill pg_dump after this many seconds (0 = no limit).
    pub dump_timeout_secs: Option<i64>,
    /// pg_dump binary.
    pub pg_dump_path: Option<PathBuf>,
    /// psql binary.
    pub psql_path: Option<PathBuf>,
    /// pg_restore binary (default: beside pg-dump-path, else from PATH).
    pub pg_restore_path: Option<PathBuf>,
}

/// One `[[database]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatabaseFile {
    /// Name: directory and file-name prefix.
    pub name: String,
    /// libpq URI or keyword string (default: `dbname=<name>` with libpq's defaults).
    pub url: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// Name of a systemd credential holding the password.
    pub password_credential: Option<String>,
    /// Extensions the database needs before a restore.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Extra pg_dump arguments.
    #[serde(default)]
    pub pg_dump_args: Vec<String>,
}

// ------------------------------------------------------------------------------------------------
// The checked result.

/// One database to back up.
#[derive(Debug, Clone)]
pub struct Database {
    /// How to reach it.
    pub target: Target,
    /// Extensions needed before restore.
    pub extensions: Vec<String>,
    /// Extra pg_dump arguments.
    pub pg_dump_args: Vec<String>,
    /// Remarks about this database's settings (its password file readable by others, ...),
    /// logged when it is selected: see [`Config::warnings_for`].
    pub warnings: Vec<String>,
}

impl Database {
    /// The configured name.
    pub fn name(&self) -> &str {
        &self.target.name
    }
}

/// The effective, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    /// Environment variables that overrode something.
    pub env_overrides: Vec<String>,
    /// Non-fatal remarks to log.
    pub warnings: Vec<String>,
    /// Backup root.
    pub local_dir: PathBuf,
    /// gzip level.
    pub compression_level: u32,
    /// The compressor, its level and threads.
    pub compression: crate::chain::Compression,
    /// The dump format (`[backup] format`).
    pub format: crate::chain::Format,
    /// pg_dump's parallel jobs for the directory format (`[backup] dump-jobs`).
    pub dump_jobs: u32,
    /// Back up each server's globals once per run (`[backup] globals`).
    pub globals: bool,
    /// The public keys new backups are encrypted to (`[encryption]`); none: not encrypted.
    pub encrypt_to: Option<crate::crypt::Recipients>,
    /// The private keys that decrypt backups, or why there are none.
    pub keys: crate::crypt::Keys,
    /// Respawn protection (0 = off).
    pub respawn_protection_hours: u32,
    /// pg_dump time limit.
    pub dump_timeout: Option<Duration>,
    /// pg_dump binary.
    pub pg_dump_path: Option<PathBuf>,
    /// psql binary.
    pub psql_path: Option<PathBuf>,
    /// pg_restore binary.
    pub pg_restore_path: Option<PathBuf>,
    /// Configured databases; empty (with no `[[redis]]` either) means zero-config discovery.
    pub databases: Vec<Database>,
    /// Configured Redis servers.
    pub redis: Vec<crate::redis::RedisTarget>,
    /// Their stall timeouts, by name.
    pub redis_stall: std::collections::HashMap<String, std::time::Duration>,
    /// Where test restores run (`[verify] restore-url`); None: each backup's own server.
    pub verify_target: Option<Target>,
    /// S3 upload, when configured.
    pub s3: Option<crate::s3::S3Config>,
    /// Time limit of a test restore.
    pub verify_restore_timeout: Option<Duration>,
    /// `[verify] redis-server-path`.
    pub redis_server_path: Option<PathBuf>,
    /// `[log] target`.
    pub log_target: crate::log::LogTarget,
    /// `[log] syslog-socket`.
    pub syslog_socket: PathBuf,
    /// Retention policy.
    pub retention: crate::retention::Policy,
    /// Days a safety backup is kept (`[retention] keep-safety-days`).
    pub keep_safety_days: u32,
    /// node_exporter textfile directory (`[metrics] textfile-dir`); none: no metrics file.
    pub textfile_dir: Option<PathBuf>,
    /// The metrics file's name in `textfile_dir`.
    pub metrics_file: String,
}

/// Reads an environment variable; empty values count as unset (compose files often set `X=""`).
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A `[metrics] instance`: it becomes part of a file name.
fn is_valid_instance(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The process environment, with empty values treated as unset.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// Which file to read: `--config`, else `$PGBACKUP_CONFIG`, else the default (may be missing).
pub fn resolve_path(cli: Option<&Path>, env: EnvFn) -> (PathBuf, bool) {
    if let Some(p) = cli {
        return (p.to_path_buf(), true);
    }
    if let Some((p, _)) = env::get(&mut |n| env(n), "config") {
        return (PathBuf::from(p), true);
    }
    (PathBuf::from(DEFAULT_CONFIG_PATH), false)
}

impl Config {
    /// The remarks to log for a run over `selected` databases (by name; empty: all of them):
    /// the configuration's own, then each selected database's.
    pub fn warnings_for<'a>(&'a self, selected: &'a [String]) -> impl Iterator<Item = &'a String> {
        self.warnings.iter().chain(
            self.databases
                .iter()
                .filter(move |d| selected.is_empty() || selected.iter().any(|s| s == d.name()))
                .flat_map(|d| d.warnings.iter()),
        )
    }

    /// Read, merge and check. Every problem found is reported in one error (exit 78). Nothing
    /// else happens: the caller applies `[log]` (`crate::log::configure`).
    pub fn load(cli_path: Option<&Path>, env: EnvFn) -> Result<Config, Error> {
        let (path, explicit) = resolve_path(cli_path, env);
        let mut problems = ConfigProblems::default();
        let where_ = path.display().to_string();
        let (file, source) = match std::fs::read_to_string(&path) {
            Ok(text) => match toml::from_str::<FileConfig>(&text) {
                Ok(f) => (f, Some(path.clone())),
                Err(e) => {
                    let mut msg = e.message().trim().to_string();
                    if msg.starts_with("unknown field") {
                        msg.push_str("; remove the key or fix its spelling (see pgbackup.toml(5))");
                    }
                    let msg = msg.replace("expected i64", "expected an integer");
                    let place = match e.span() {
                        Some(span) => {
                            let line_no = text[..span.start].matches('\n').count() + 1;
                            let line = text.lines().nth(line_no - 1).unwrap_or_default();
                            format!("{where_}: line {line_no}: `{}`", line.trim())
                        }
                        None => where_.clone(),
                    };
                    problems.push(place, msg);
                    return Err(problems.into());
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                (FileConfig::default(), None)
            }
            Err(e) => {
                problems.push(
                    where_,
                    format!(
                        "cannot read the config file: {e}; pass --config PATH or set PGBACKUP_CONFIG"
                    ),
                );
                return Err(problems.into());
            }
        };
        let cfg = Self::from_file(file, source, env, &mut problems);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems.into())
        }
    }

    /// Merge the environment over `file` and check it; problems are appended to `problems`.
    /// Secret and other files are read from disk.
    pub fn from_file(
        file: FileConfig,
        source: Option<PathBuf>,
        env: EnvFn,
        problems: &mut ConfigProblems,
    ) -> Config {
        Self::from_file_with(file, source, env, &secrets::Disk, problems)
    }

    /// [`Config::from_file`] with the files (secrets, credentials, programs) read through
    /// `files`: validation itself touches nothing.
    pub fn from_file_with(
        mut file: FileConfig,
        source: Option<PathBuf>,
        env: EnvFn,
        files: &dyn secrets::Files,
        problems: &mut ConfigProblems,
    ) -> Config {
        let file_place = source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(built-in defaults)".into());
        let key = |k: &str| format!("{file_place}: {k}");
        let mut env_overrides = Vec::new();
        let mut warnings = Vec::new();
        let mut env_get = |name: &str| {
            let v = env(name);
            if v.is_some() {
                env_overrides.push(name.to_string());
            }
            v
        };

        for (name, instead) in env::ignored(env) {
            warnings.push(format!(
                "environment variable {name} is set, but pgbackup does not read it: {instead}"
            ));
        }

        // [storage]
        let (local_dir, local_dir_place) = match env::get(&mut env_get, "storage.local-dir") {
            Some((v, var)) => (PathBuf::from(v), format!("environment variable {var}")),
            None => (
                file.storage
                    .local_dir
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCAL_DIR)),
                key("storage.local-dir"),
            ),
        };
        if local_dir.as_os_str().is_empty() {
            problems.push(local_dir_place, "must not be empty");
        } else if let Some(why) = crate::fsutil::unsafe_root(&local_dir) {
            problems.push(local_dir_place, why);
        }

        // [storage.s3]
        let s3 = storage::s3_config(
            file.storage.s3.take(),
            env,
            files,
            &mut env_get,
            problems,
            &key,
            &mut warnings,
        );

        // [backup]
        let format = {
            let (name, place) = match env::get(&mut env_get, "backup.format") {
                Some((v, var)) => (v, format!("environment variable {var}")),
                None => (
                    file.backup.format.clone().unwrap_or_else(|| "plain".into()),
                    key("backup.format"),
                ),
            };
            let name = name.trim().to_ascii_lowercase();
            crate::chain::Format::from_name(&name)
                .filter(|f| *f != crate::chain::Format::Globals)
                .unwrap_or_else(|| {
                    problems.push(
                        place,
                        format!("\"{name}\" is not a format pgbackup writes; use \"plain\" (SQL, restored by psql), \"custom\" (pg_dump's archive, restored by pg_restore in parallel) or \"directory\" (pg_dump -Fd, dumped and restored in parallel; set dump-jobs)"),
                    );
                    crate::chain::Format::Plain
                })
        };
        let (algorithm, algorithm_place) = match env::get(&mut env_get, "backup.compression") {
            Some((v, var)) => (v, format!("environment variable {var}")),
            None => (
                file.backup
                    .compression
                    .clone()
                    .unwrap_or_else(|| "gzip".into()),
                key("backup.compression"),
            ),
        };
        let algorithm = algorithm.trim().to_ascii_lowercase();
        let (levels, default_level) = match crate::chain::Compression::levels(&algorithm) {
            Some(l) => l,
            None => {
                problems.push(
                    algorithm_place,
                    format!("\"{algorithm}\" is not a compression pgbackup writes; use \"gzip\" or \"zstd\""),
                );
                crate::chain::Compression::levels("gzip").expect("gzip is known")
            }
        };
        let level_hint = format!(
            "use a {} level from {} (fastest) to {} (smallest)",
            if algorithm == "zstd" { "zstd" } else { "gzip" },
            levels.start(),
            levels.end()
        );
        let mut int_setting = |file_key: &str,
                               file_val: Option<i64>,
                               default: i64,
                               range: std::ops::RangeInclusive<i64>,
                               what: &str| {
            let (val, place) = match env::get(&mut env_get, file_key) {
                Some((s, env_name)) => match s.trim().parse::<i64>() {
                    Ok(v) => (v, format!("environment variable {env_name}")),
                    Err(_) => {
                        problems.push(
                            format!("environment variable {env_name}"),
                            format!("\"{s}\" is not a whole number; {what}"),
                        );
                        return default;
                    }
                },
                None => (file_val.unwrap_or(default), key(file_key)),
            };
            if !range.contains(&val) {
                problems.push(place, format!("{val} is out of range; {what}"));
                return default;
            }
            val
        };
        let compression_level = int_setting(
            "backup.compression-level",
            file.backup.compression_level,
            i64::from(default_level),
            i64::from(*levels.start())..=i64::from(*levels.end()),
            &level_hint,
        ) as u32;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        let compression_threads = int_setting(
            "backup.compression-threads",
            file.backup.compression_threads,
            cpus.min(64),
            1..=256,
            "use a number of threads from 1 to 256",
        ) as u32;
        let dump_jobs = int_setting(
            "backup.dump-jobs",
            file.backup.dump_jobs,
            cpus.min(8),
            1..=64,
            "use a number of pg_dump jobs from 1 to 64 (each is one more connection)",
        ) as u32;
        let compression = if algorithm == "zstd" {
            crate::chain::Compression::Zstd {
                level: compression_level,
                threads: compression_threads,
            }
        } else {
            crate::chain::Compression::Gzip {
                level: compression_level,
                threads: compression_threads,
            }
        };
        let respawn_protection_hours = int_setting(
            "backup.respawn-protection-hours",
            file.backup.respawn_protection_hours,
            0,
            0..=24 * 366,
            "use hours from 0 (off) to 8784",
        ) as u32;
        let dump_timeout_secs = int_setting(
            "backup.dump-timeout-secs",
            file.backup.dump_timeout_secs,
            DEFAULT_DUMP_TIMEOUT_SECS as i64,
            0..=i64::from(u32::MAX),
            "use seconds, 0 for no limit",
        );
        let dump_timeout =
            (dump_timeout_secs > 0).then(|| Duration::from_secs(dump_timeout_secs as u64));
        for (k, p) in [
            ("backup.pg-dump-path", &file.backup.pg_dump_path),
            ("backup.psql-path", &file.backup.psql_path),
            ("backup.pg-restore-path", &file.backup.pg_restore_path),
            ("verify.redis-server-path", &file.verify.redis_server_path),
        ] {
            if let Some(p) = p {
                if !files.is_file(p) {
                    problems.push(
                        key(k),
                        format!(
                            "{} does not exist; give the full path of the program (e.g. {})",
                            p.display(),
                            if k == "verify.redis-server-path" {
                                "/usr/bin/redis-server".to_string()
                            } else {
                                format!(
                                    "/usr/lib/postgresql/15/bin/{}",
                                    p.file_name().and_then(|n| n.to_str()).unwrap_or("pg_dump")
                                )
                            }
                        ),
                    );
                }
            }
        }
        // [retention]
        let r = &file.retention;
        let keep_days = match env::get(&mut env_get, "retention.keep-days") {
            Some((v, var)) => match v.trim().parse::<u32>() {
                Ok(d) => Some(d),
                Err(_) => {
                    problems.push(
                        format!("environment variable {var}"),
                        format!("\"{v}\" is not a whole number of days"),
                    );
                    None
                }
            },
            None => r.keep_days.and_then(|d| {
                let ok = (0..=100_000).contains(&d);
                if !ok {
                    problems.push(
                        key("retention.keep-days"),
                        format!("{d} is out of range; use days from 0 to 100000"),
                    );
                }
                ok.then_some(d as u32)
            }),
        };
        let keep_safety_days = match r.keep_safety_days {
            None => DEFAULT_KEEP_SAFETY_DAYS,
            Some(d) if (0..=100_000).contains(&d) => d as u32,
            Some(d) => {
                problems.push(
                    key("retention.keep-safety-days"),
                    format!("{d} is out of range; use days from 0 to 100000"),
                );
                DEFAULT_KEEP_SAFETY_DAYS
            }
        };
        let mut count = |k: &str, v: Option<i64>, min: i64, default: u32| -> u32 {
            match v {
                None => default,
                Some(n) if (min..=100_000).contains(&n) => n as u32,
                Some(n) => {
                    problems.push(
                        key(k),
                        format!("{n} is out of range; use a count from {min} to 100000"),
                    );
                    default
                }
            }
        };
        let retention = crate::retention::Policy {
            keep_days,
            keep_daily: count("retention.keep-daily", r.keep_daily, 0, 0),
            keep_weekly: count("retention.keep-weekly", r.keep_weekly, 0, 0),
            keep_monthly: count("retention.keep-monthly", r.keep_monthly, 0, 0),
            keep_min: count("retention.keep-min", r.keep_min, 1, 1),
        };

        // [metrics]
        // Only where it is configured (the packaged configuration names node_exporter's
        // directory): a throwaway run must not put its metrics where a live Prometheus scrapes.
        // An empty value turns it off.
        let textfile_dir = env::get(&mut env_get, "metrics.textfile-dir")
            .map(|v| v.0)
            .map(PathBuf::from)
            .or(file.metrics.textfile_dir)
            .filter(|p| !p.as_os_str().is_empty());
        let metrics_file = match &file.metrics.instance {
            None => crate::metrics::FILE_NAME.to_string(),
            Some(i) if is_valid_instance(i) => format!("pgbackup-{i}.prom"),
            Some(i) => {
                problems.push(
                    key("metrics.instance"),
                    format!("\"{i}\" is not an instance name; use letters, digits, '-' and '_' (at most 64)"),
                );
                crate::metrics::FILE_NAME.to_string()
            }
        };

        // [[database]], and the database of the old setups' environment names
        let databases = databases::databases(
            &file.database,
            env,
            &mut env_get,
            files,
            &key,
            problems,
            &mut warnings,
        );

        // [[redis]]
        let (redis, redis_stall) = databases::redis(
            &file.redis,
            &databases,
            env,
            files,
            &key,
            problems,
            &mut warnings,
        );

        // [encryption]
        let (encrypt_to, keys) =
            encryption::encryption(&file.encryption, env, files, &key, problems, &mut warnings);

        // [verify]
        let verify_restore_timeout = match file.verify.restore_timeout_secs {
            None => Some(Duration::from_secs(DEFAULT_RESTORE_TIMEOUT_SECS)),
            Some(0) => None,
            Some(n) if n > 0 => Some(Duration::from_secs(n as u64)),
            Some(n) => {
                problems.push(
                    key("verify.restore-timeout-secs"),
                    format!("{n} is negative; use seconds, 0 for no limit"),
                );
                None
            }
        };
        let verify_target = match &file.verify.restore_url {
            None => {
                if file.verify.restore_password_file.is_some() {
                    problems.push(
                        key("verify.restore-password-file"),
                        "is set without verify.restore-url; set both or neither",
                    );
                }
                None
            }
            Some(u) => match ConnInfo::parse(u) {
                Err(e) => {
                    problems.push(key("verify.restore-url"), e.to_string());
                    None
                }
                Ok(conn) => {
                    let (password, password_source) = match &file.verify.restore_password_file {
                        Some(p) => match files.secret(p, &mut warnings) {
                            Ok(s) => (
                                Some(s),
                                Some(format!("[verify] restore-password-file {}", p.display())),
                            ),
                            Err(e) => {
                                problems.push(key("verify.restore-password-file"), e);
                                (None, None)
                            }
                        },
                        None => (
                            conn.password().map(Secret::new),
                            Some("[verify] restore-url".into()),
                        ),
                    };
                    Some(Target {
                        name: "(verify restore server)".into(),
                        conn,
                        password,
                        password_source,
                    })
                }
            },
        };

        Config {
            s3,
            log_target: file.log.target,
            syslog_socket: file
                .log
                .syslog_socket
                .unwrap_or_else(|| PathBuf::from("/dev/log")),
            verify_restore_timeout,
            redis_server_path: file.verify.redis_server_path,
            retention,
            keep_safety_days,
            textfile_dir,
            metrics_file,
            verify_target,
            source,
            env_overrides,
            warnings,
            local_dir,
            compression_level,
            compression,
            format,
            dump_jobs,
            globals: file.backup.globals.unwrap_or(false),
            encrypt_to,
            keys,
            respawn_protection_hours,
            dump_timeout,
            pg_dump_path: file.backup.pg_dump_path,
            psql_path: file.backup.psql_path,
            pg_restore_path: file.backup.pg_restore_path,
            databases,
            redis,
            redis_stall,
        }
    }

    /// The chain a backup is written through (source format, compression).
    pub fn chain(&self) -> crate::chain::Chain {
        crate::chain::Chain {
            format: self.format,
            compression: self.compression,
            encrypted: self.encrypt_to.is_some(),
        }
    }

    /// Where large temp files and directories go (a restore's decompressed archive, a
    /// directory-format dump): `explicit` (`--temp-dir`), else the backup root (the same file
    /// system, the same 0700 directory), else the system's temp directory (a host without a
    /// root yet: a restore from `--file`, S3 only).
    pub fn temp_root(&self, explicit: Option<&Path>) -> PathBuf {
        match explicit {
            Some(d) => d.to_path_buf(),
            None if self.local_dir.is_dir() => self.local_dir.clone(),
            None => std::env::temp_dir(),
        }
    }

    /// The client programs.
    pub fn tools(&self) -> crate::postgres::PgTools {
        let mut t =
            crate::postgres::PgTools::new(self.pg_dump_path.as_deref(), self.psql_path.as_deref());
        if let Some(p) = &self.pg_restore_path {
            t.pg_restore = p.clone();
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigProblems> {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| map.get(k).cloned();
        let file: FileConfig = toml::from_str(toml).map_err(|e| {
            let mut p = ConfigProblems::default();
            p.push("test", e.to_string());
            p
        })?;
        let mut problems = ConfigProblems::default();
        let cfg = Config::from_file(file, Some("/t.toml".into()), &env, &mut problems);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }

    /// `[[redis]]`: a URL (or Sentinels) and a name of its own; a password in the URL, TLS
    /// settings without TLS, and a name a database has are refused with the reason.
    #[test]
    fn redis_entries() {
        let c = load_str(
            "[[redis]]\nname = \"cache\"\nurl = \"redis://backup@10.0.0.5:6380\"\nstall-timeout-secs = 5\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.redis.len(), 1);
        assert_eq!(c.redis[0].user.as_deref(), Some("backup"));
        assert_eq!(c.redis[0].addr.to_string(), "10.0.0.5:6380");
        assert_eq!(c.redis_stall["cache"], std::time::Duration::from_secs(5));
        let c = load_str(
            "[[redis]]\nname = \"s\"\nsentinel = [\"10.0.0.5:26379\", \"[::1]:26380\"]\nmaster-name = \"mymaster\"\nuser = \"backup\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.redis[0].addr.to_string(),
            "master mymaster by Sentinel 10.0.0.5:26379, [::1]:26380"
        );
        assert_eq!(c.redis[0].user.as_deref(), Some("backup"));
        for (toml, needle) in [
            (
                "[[redis]]\nname = \"c\"\nurl = \"redis://h\"\nsentinel = [\"h:1\"]\nmaster-name = \"m\"\n",
                "not both",
            ),
            ("[[redis]]\nname = \"c\"\n", "missing"),
            (
                "[[redis]]\nname = \"c\"\nsentinel = [\"h:1\"]\n",
                "required with sentinel",
            ),
            (
                "[[redis]]\nname = \"c\"\nsentinel = [\"h\"]\nmaster-name = \"m\"\n",
                "is not host:port",
            ),
            (
                "[[redis]]\nname = \"c\"\nurl = \"redis://h\"\nuser = \"u\"\n",
                "only with sentinel",
            ),
            (
                "[[redis]]\nname = \"c\"\nurl = \"redis://u:pw@h\"\n",
                "password-file",
            ),
            (
                "[[redis]]\nname = \"c\"\nurl = \"redis://h\"\nca-file = \"/x.pem\"\n",
                "need TLS",
            ),
            (
                "[[redis]]\nname = \"c\"\nurl = \"rediss://h\"\ntls-cert-file = \"/x.pem\"\n",
                "go together",
            ),
            (
                "[[redis]]\nname = \"c\"\nurl = \"rediss://h\"\nca-file = \"/nonexistent.pem\"\n",
                "cannot read ca-file /nonexistent.pem",
            ),
            (
                "[[redis]]\nname = \"_c\"\nurl = \"redis://h\"\n",
                "not a valid name",
            ),
            (
                "[[database]]\nname = \"c\"\n[[redis]]\nname = \"c\"\nurl = \"redis://h\"\n",
                "configured twice",
            ),
            (
                "[[redis]]\nname = \"c\"\nurl = \"redis://h\"\nport = 1\n",
                "unknown field",
            ),
        ] {
            let e = load_str(toml, &[]).unwrap_err().to_string();
            assert!(e.contains(needle), "{toml}: {e}");
        }
    }

    #[test]
    fn defaults() {
        let c = load_str("", &[]).unwrap();
        assert_eq!(c.local_dir, PathBuf::from(DEFAULT_LOCAL_DIR));
        assert_eq!(c.compression_level, 6);
        assert_eq!(c.respawn_protection_hours, 0);
        assert_eq!(
            c.dump_timeout,
            Some(Duration::from_secs(DEFAULT_DUMP_TIMEOUT_SECS))
        );
        assert!(c.databases.is_empty());
    }

    #[test]
    fn unknown_key_is_rejected() {
        let e = toml::from_str::<FileConfig>("[backup]\ncompresion-level = 5\n").unwrap_err();
        assert!(e.message().contains("compresion-level"), "{e}");
        assert!(e.message().contains("compression-level"), "{e}");
    }

    #[test]
    fn every_problem_is_listed() {
        let e = load_str(
            "[backup]\ncompression-level = 12\n[[database]]\nname = \"../etc\"\n[[database]]\nname = \"ok\"\nurl = \"postgresql://h:port/x\"\n",
            &[("RESPAWN_PROTECTION_HOURS", "soon")],
        )
        .unwrap_err();
        let text = ConfigProblems(e.0.clone()).to_string();
        assert_eq!(e.0.len(), 4, "{text}");
        assert!(text.contains("backup.compression-level"), "{text}");
        assert!(text.contains("database[0].name"), "{text}");
        assert!(text.contains("database[1].url"), "{text}");
        assert!(text.contains("RESPAWN_PROTECTION_HOURS"), "{text}");
    }

    #[test]
    fn env_overrides_file() {
        let c = load_str(
            "[storage]\nlocal-dir = \"/a\"\n[backup]\ncompression-level = 3\n",
            &[("BACKUP_DIR", "/b"), ("BACKUP_COMPRESSION_LEVEL", "9")],
        )
        .unwrap();
        assert_eq!(c.local_dir, PathBuf::from("/b"));
        assert_eq!(c.compression_level, 9);
        let c = load_str("", &[("BACKUP_DIR", "/b"), ("BACKUP_LOCAL_DIR", "/c")]).unwrap();
        assert_eq!(c.local_dir, PathBuf::from("/c"));
    }

    #[test]
    fn database_url_defines_a_database() {
        let c = load_str("", &[("DATABASE_URL", "postgresql://u:pw@h:5/clara_main")]).unwrap();
        assert_eq!(c.databases.len(), 1);
        let d = &c.databases[0];
        assert_eq!(d.name(), "clara_main");
        assert_eq!(d.target.password.as_ref().map(|s| s.expose()), Some("pw"));
        let shown = c.to_display_toml();
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(shown.contains("u:***@h:5"), "{shown}");
    }

    #[test]
    fn database_url_with_several_databases_is_ambiguous() {
        let e = load_str(
            "[[database]]\nname = \"a\"\n[[database]]\nname = \"b\"\n",
            &[("DATABASE_URL", "postgresql://h/x")],
        )
        .unwrap_err();
        assert!(e.0[0].place.contains("DATABASE_URL"));
    }

    #[test]
    fn missing_password_file_is_a_problem() {
        let e = load_str(
            "[[database]]\nname = \"a\"\npassword-file = \"/nonexistent/pw\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.0[0].place.ends_with("database[0].password-file"));
        assert!(e.0[0].message.contains("/nonexistent/pw"));
    }

    /// Files held in memory: what validation reads goes through [`secrets::Files`].
    struct Mem(HashMap<&'static str, &'static str>);

    impl secrets::Files for Mem {
        fn secret(&self, path: &Path, _: &mut Vec<String>) -> Result<Secret, String> {
            match self.0.get(path.to_str().unwrap_or_default()) {
                Some(s) => Ok(Secret::new((*s).to_string())),
                None => Err(format!("cannot read {}: not there", path.display())),
            }
        }
        fn text(&self, path: &Path) -> std::io::Result<String> {
            self.0
                .get(path.to_str().unwrap_or_default())
                .map(|s| (*s).to_string())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
        fn is_file(&self, path: &Path) -> bool {
            self.0.contains_key(path.to_str().unwrap_or_default())
        }
    }

    #[test]
    fn validation_reads_secrets_through_the_injected_files_only() {
        let toml = "[storage.s3]\nbucket = \"b\"\nendpoint = \"https://127.0.0.1:9000\"\n\
            access-key-file = \"/mem/ak\"\nsecret-key-file = \"/mem/sk\"\nca-file = \"/mem/ca.pem\"\n\
            [[database]]\nname = \"a\"\npassword-file = \"/mem/pw\"\n\
            [[database]]\nname = \"b\"\npassword-credential = \"b-pw\"\n";
        let files = Mem(HashMap::from([
            ("/mem/ak", "AKIDEXAMPLE"),
            ("/mem/sk", "s3-secret"),
            ("/mem/ca.pem", "-----BEGIN CERTIFICATE-----"),
            ("/mem/pw", "pw-of-a"),
            ("/creds/b-pw", "pw-of-b"),
        ]));
        let env = |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| "/creds".to_string());
        let check = |files: &Mem| {
            let mut problems = ConfigProblems::default();
            let file: FileConfig = toml::from_str(toml).unwrap();
            let cfg = Config::from_file_with(file, None, &env, files, &mut problems);
            (cfg, problems)
        };
        let (cfg, problems) = check(&files);
        assert!(problems.is_empty(), "{problems:?}");
        let pw = |i: usize| {
            cfg.databases[i]
                .target
                .password
                .as_ref()
                .unwrap()
                .expose()
                .to_string()
        };
        assert_eq!(
            (pw(0), pw(1)),
            ("pw-of-a".to_string(), "pw-of-b".to_string())
        );
        let shown = cfg.to_display_toml();
        assert!(
            !shown.contains("s3-secret") && !shown.contains("pw-of"),
            "{shown}"
        );

        // Without the files, every one that is missing is a problem naming it.
        let (_, problems) = check(&Mem(HashMap::new()));
        let text = format!("{problems:?}");
        for missing in ["/mem/ak", "/mem/pw", "/creds/b-pw", "/mem/ca.pem"] {
            assert!(text.contains(missing), "{missing} not reported: {text}");
        }
    }
}
