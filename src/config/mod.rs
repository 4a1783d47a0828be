//! Configuration: the TOML file, environment overrides, secrets, validation.
//!
//! Two layers, as in ripgrep's LowArgs -> HiArgs: [`FileConfig`] mirrors the TOML exactly (kebab
//! case, unknown keys rejected); [`Config::load`] merges the environment over it and turns it into
//! checked values, collecting every problem so `pgbackup config check` can list them all.
//!
//! Precedence, highest first: command-line flags, environment variables, the config file,
//! built-in defaults. The config file is `--config PATH`, else `$PGBACKUP_CONFIG`, else
//! `/etc/pgbackup/pgbackup.toml`; only the last may be missing (then defaults apply).

pub mod env;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::{escape_db_name, is_valid_dir_name};
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
    /// `[[database]]`.
    #[serde(default)]
    pub database: Vec<DatabaseFile>,
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
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsFile {
    /// node_exporter's textfile-collector directory.
    pub textfile_dir: Option<PathBuf>,
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
    /// gzip level 1-9.
    pub compression_level: Option<i64>,
    /// Skip a database whose last backup is younger than this (0 = off).
    pub respawn_protection_hours: Option<i64>,
    /// Kill pg_dump after this many seconds (0 = no limit).
    pub dump_timeout_secs: Option<i64>,
    /// pg_dump binary.
    pub pg_dump_path: Option<PathBuf>,
    /// psql binary.
    pub psql_path: Option<PathBuf>,
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
    /// Where the password came from, for `config show` ("password-file /etc/...").
    pub password_source: Option<String>,
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
    /// Respawn protection (0 = off).
    pub respawn_protection_hours: u32,
    /// pg_dump time limit.
    pub dump_timeout: Option<Duration>,
    /// pg_dump binary.
    pub pg_dump_path: Option<PathBuf>,
    /// psql binary.
    pub psql_path: Option<PathBuf>,
    /// Configured databases; empty means zero-config discovery.
    pub databases: Vec<Database>,
    /// Where test restores run (`[verify] restore-url`); None: each backup's own server.
    pub verify_target: Option<Target>,
    /// S3 upload, when configured.
    pub s3: Option<crate::s3::S3Config>,
    /// Time limit of a test restore.
    pub verify_restore_timeout: Option<Duration>,
    /// `[log] target`.
    pub log_target: crate::log::LogTarget,
    /// `[log] syslog-socket`.
    pub syslog_socket: PathBuf,
    /// Retention policy.
    pub retention: crate::retention::Policy,
    /// node_exporter textfile directory.
    pub textfile_dir: PathBuf,
}

/// Reads an environment variable; empty values count as unset (compose files often set `X=""`).
pub type EnvFn<'a> = &'a dyn Fn(&str) -> Option<String>;

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
    /// Read, merge and check. Every problem found is reported in one error (exit 78).
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
            crate::log::configure(cfg.log_target, &cfg.syslog_socket);
            Ok(cfg)
        } else {
            Err(problems.into())
        }
    }

    /// Merge the environment over `file` and check it; problems are appended to `problems`.
    pub fn from_file(
        mut file: FileConfig,
        source: Option<PathBuf>,
        env: EnvFn,
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
        let s3 = s3_config(
            file.storage.s3.take(),
            env,
            &mut env_get,
            problems,
            &key,
            &mut warnings,
        );

        // [backup]
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
            DEFAULT_COMPRESSION_LEVEL as i64,
            1..=9,
            "use a gzip level from 1 (fastest) to 9 (smallest)",
        ) as u32;
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
        ] {
            if let Some(p) = p {
                if !p.is_file() {
                    problems.push(
                        key(k),
                        format!(
                            "{} does not exist; give the full path of the program (e.g. /usr/lib/postgresql/15/bin/{})",
                            p.display(),
                            p.file_name().and_then(|n| n.to_str()).unwrap_or("pg_dump")
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
        let textfile_dir = env::get(&mut env_get, "metrics.textfile-dir")
            .map(|v| v.0)
            .map(PathBuf::from)
            .or(file.metrics.textfile_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_TEXTFILE_DIR));

        // [[database]]
        let mut databases = Vec::new();
        let mut names = std::collections::HashSet::new();
        let cred_dir = env("CREDENTIALS_DIRECTORY");
        for (i, d) in file.database.iter().enumerate() {
            let k = |sub: &str| key(&format!("database[{i}].{sub}"));
            if !is_valid_dir_name(&d.name) {
                problems.push(
                    k("name"),
                    format!(
                        "\"{}\" is not a valid name; use letters, digits, '-', '_' and '.', not starting with '.' or '_' (at most 128 bytes)",
                        d.name
                    ),
                );
            } else if !names.insert(d.name.clone()) {
                problems.push(
                    k("name"),
                    format!("\"{}\" is configured twice; names must be unique", d.name),
                );
            }
            let conn = match &d.url {
                Some(u) => match ConnInfo::parse(u) {
                    Ok(c) => c,
                    Err(e) => {
                        problems.push(k("url"), e.to_string());
                        continue;
                    }
                },
                None => ConnInfo::from_pairs(vec![("dbname".into(), d.name.clone())]),
            };
            if conn.password().is_some() {
                warnings.push(format!(
                    "database {}: the url contains a password; move it to password-file so the config file can be world-readable",
                    d.name
                ));
            }
            let mut password = None;
            let mut password_source = None;
            if d.password_file.is_some() && d.password_credential.is_some() {
                problems.push(
                    k("password-file"),
                    "set either password-file or password-credential, not both",
                );
            }
            if let Some(pf) = &d.password_file {
                match read_secret_file(pf, &mut warnings) {
                    Ok(s) => {
                        password = Some(s);
                        password_source = Some(format!("password-file {}", pf.display()));
                    }
                    Err(e) => problems.push(k("password-file"), e),
                }
            }
            if let Some(cred) = &d.password_credential {
                match &cred_dir {
                    // Outside the unit (an operator running `pgbackup list` by hand) the
                    // credential is not there; only a connection would need it.
                    None => warnings.push(format!(
                        "database {}: password-credential \"{cred}\" is only readable under systemd (LoadCredential=); outside it, libpq's PGPASSFILE or ~/.pgpass apply",
                        d.name
                    )),
                    Some(dir) if cred.contains('/') || cred.is_empty() => problems.push(
                        k("password-credential"),
                        format!("\"{cred}\" is not a credential name (no '/' allowed); credentials are looked up in {dir}"),
                    ),
                    Some(dir) => {
                        let p = Path::new(dir).join(cred);
                        match std::fs::read_to_string(&p) {
                            Ok(s) => {
                                password = Some(Secret::new(s));
                                password_source = Some(format!("credential {cred}"));
                            }
                            Err(e) => problems.push(
                                k("password-credential"),
                                format!("cannot read {}: {e}; check LoadCredential= in the unit", p.display()),
                            ),
                        }
                    }
                }
            }
            if password.is_none() {
                password = conn.password().map(Secret::new);
            }
            databases.push(Database {
                target: Target {
                    name: d.name.clone(),
                    conn,
                    password,
                },
                extensions: d.extensions.clone(),
                pg_dump_args: d.pg_dump_args.clone(),
                password_source,
            });
        }

        // Environment databases, for people coming from the shell-script setups.
        let env_password = match env_get("DB_PASSWORD_FILE") {
            Some(p) => match read_secret_file(Path::new(&p), &mut warnings) {
                Ok(s) => Some((s, format!("DB_PASSWORD_FILE {p}"))),
                Err(e) => {
                    problems.push("environment variable DB_PASSWORD_FILE", e);
                    None
                }
            },
            None => None,
        };
        let env_url = match (env_get("DATABASE_URL"), env_get("DATABASE_URL_FILE")) {
            (Some(u), _) => Some((u, "DATABASE_URL")),
            (None, Some(p)) => match read_secret_file(Path::new(&p), &mut warnings) {
                Ok(s) => Some((s.expose().trim().to_string(), "DATABASE_URL_FILE")),
                Err(e) => {
                    problems.push("environment variable DATABASE_URL_FILE", e);
                    None
                }
            },
            (None, None) => None,
        };
        let env_conn = match env_url {
            Some((u, var)) => match ConnInfo::parse(&u) {
                Ok(c) => Some((c, var)),
                Err(e) => {
                    problems.push(format!("environment variable {var}"), e.to_string());
                    None
                }
            },
            None => {
                let mut pairs = Vec::new();
                for (var, kw) in [
                    ("DB_HOST", "host"),
                    ("DB_PORT", "port"),
                    ("DB_NAME", "dbname"),
                    ("DB_USER", "user"),
                ] {
                    if let Some(v) = env_get(var) {
                        pairs.push((kw.to_string(), v));
                    }
                }
                if let Some(p) = env_get("DB_USER_FILE") {
                    match std::fs::read_to_string(&p) {
                        Ok(u) => pairs.push(("user".into(), u.trim().to_string())),
                        Err(e) => problems.push(
                            "environment variable DB_USER_FILE",
                            format!("cannot read {p}: {e}"),
                        ),
                    }
                }
                (!pairs.is_empty())
                    .then(|| (ConnInfo::from_pairs(pairs), "DB_HOST/DB_NAME/DB_USER"))
            }
        };
        if let Some((conn, var)) = env_conn {
            let pw = env_password.clone().or_else(|| {
                conn.password()
                    .map(|p| (Secret::new(p), format!("{var} (embedded)")))
            });
            match databases.len() {
                0 => {
                    let dbname = conn.get("dbname").unwrap_or("postgres").to_string();
                    let name = if is_valid_dir_name(&dbname) {
                        dbname
                    } else {
                        escape_db_name(&dbname)
                    };
                    databases.push(Database {
                        target: Target {
                            name,
                            conn,
                            password: pw.as_ref().map(|p| p.0.clone()),
                        },
                        extensions: Vec::new(),
                        pg_dump_args: Vec::new(),
                        password_source: pw.map(|p| p.1),
                    });
                }
                1 => {
                    let db = &mut databases[0];
                    db.target.conn = conn;
                    if let Some((s, src)) = pw {
                        db.target.password = Some(s);
                        db.password_source = Some(src);
                    }
                }
                n => problems.push(
                    format!("environment variable {var}"),
                    format!("is set, but the config file has {n} [[database]] entries and it is unclear which to override; unset it or set url per database"),
                ),
            }
        } else if let Some((s, src)) = env_password {
            if databases.len() == 1 {
                databases[0].target.password = Some(s);
                databases[0].password_source = Some(src);
            } else {
                problems.push(
                    "environment variable DB_PASSWORD_FILE",
                    "is set, but there is not exactly one database to apply it to; use password-file per [[database]]",
                );
            }
        }

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
                    let password = match &file.verify.restore_password_file {
                        Some(p) => match read_secret_file(p, &mut warnings) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                problems.push(key("verify.restore-password-file"), e);
                                None
                            }
                        },
                        None => conn.password().map(Secret::new),
                    };
                    Some(Target {
                        name: "(verify restore server)".into(),
                        conn,
                        password,
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
            retention,
            textfile_dir,
            verify_target,
            source,
            env_overrides,
            warnings,
            local_dir,
            compression_level,
            respawn_protection_hours,
            dump_timeout,
            pg_dump_path: file.backup.pg_dump_path,
            psql_path: file.backup.psql_path,
            databases,
        }
    }

    /// The chain a backup is written through (source format, compression).
    pub fn chain(&self) -> crate::chain::Chain {
        crate::chain::Chain::plain_gzip(self.compression_level)
    }

    /// The client programs.
    pub fn tools(&self) -> crate::postgres::PgTools {
        crate::postgres::PgTools::new(self.pg_dump_path.as_deref(), self.psql_path.as_deref())
    }

    /// The effective configuration as TOML, secrets masked (for `pgbackup config show`).
    pub fn to_display_toml(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct Shown<'a> {
            storage: ShownStorage<'a>,
            backup: ShownBackup<'a>,
            retention: ShownRetention,
            metrics: ShownMetrics<'a>,
            verify: ShownVerify<'a>,
            log: ShownLog<'a>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            database: Vec<ShownDb<'a>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownLog<'a> {
            target: &'a str,
            syslog_socket: &'a Path,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownRetention {
            #[serde(skip_serializing_if = "Option::is_none")]
            keep_days: Option<u32>,
            keep_daily: u32,
            keep_weekly: u32,
            keep_monthly: u32,
            keep_min: u32,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownMetrics<'a> {
            textfile_dir: &'a Path,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownVerify<'a> {
            restore_url: &'a str,
            restore_timeout_secs: u64,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownStorage<'a> {
            local_dir: &'a Path,
            #[serde(skip_serializing_if = "Option::is_none")]
            s3: Option<ShownS3<'a>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownS3<'a> {
            bucket: &'a str,
            endpoint: &'a str,
            region: &'a str,
            prefix: &'a str,
            credentials: String,
            path_style: bool,
            storage_class: &'a str,
            server_side_encryption: &'a str,
            part_size_mib: usize,
            keep_local: bool,
            list_prefixes: &'a [String],
            stall_timeout_secs: u64,
            abort_incomplete_after_hours: u64,
            ca_file: String,
            object_lock: String,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownBackup<'a> {
            compression_level: u32,
            respawn_protection_hours: u32,
            dump_timeout_secs: u64,
            pg_dump_path: String,
            psql_path: String,
            #[serde(skip)]
            _p: std::marker::PhantomData<&'a ()>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct ShownDb<'a> {
            name: &'a str,
            url: &'a str,
            password: &'a str,
            extensions: &'a [String],
            pg_dump_args: &'a [String],
        }
        let tools = self.tools();
        let shown = Shown {
            storage: ShownStorage {
                local_dir: &self.local_dir,
                s3: self.s3.as_ref().map(|c| ShownS3 {
                    bucket: &c.bucket,
                    endpoint: c.endpoint.as_deref().unwrap_or("(AWS)"),
                    region: &c.region,
                    prefix: &c.prefix,
                    credentials: crate::s3::creds::describe(&c.credentials),
                    path_style: c.path_style,
                    storage_class: c.storage_class.as_deref().unwrap_or("(bucket default)"),
                    server_side_encryption: c.server_side_encryption.as_deref().unwrap_or("(none)"),
                    part_size_mib: c.part_size >> 20,
                    keep_local: c.keep_local,
                    list_prefixes: &c.list_prefixes,
                    stall_timeout_secs: c.stall_timeout.as_secs(),
                    abort_incomplete_after_hours: c.abort_incomplete_after.as_secs() / 3600,
                    ca_file: c
                        .ca_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "(system store)".into()),
                    object_lock: match c.object_lock {
                        Some(l) => {
                            format!("{} for {} days", l.mode.header().to_lowercase(), l.days)
                        }
                        None => "(off)".into(),
                    },
                }),
            },
            backup: ShownBackup {
                compression_level: self.compression_level,
                respawn_protection_hours: self.respawn_protection_hours,
                dump_timeout_secs: self.dump_timeout.map(|d| d.as_secs()).unwrap_or(0),
                pg_dump_path: tools.pg_dump.display().to_string(),
                psql_path: tools.psql.display().to_string(),
                _p: std::marker::PhantomData,
            },
            retention: ShownRetention {
                keep_days: self.retention.keep_days,
                keep_daily: self.retention.keep_daily,
                keep_weekly: self.retention.keep_weekly,
                keep_monthly: self.retention.keep_monthly,
                keep_min: self.retention.keep_min,
            },
            metrics: ShownMetrics {
                textfile_dir: &self.textfile_dir,
            },
            verify: ShownVerify {
                restore_url: self
                    .verify_target
                    .as_ref()
                    .map(|t| t.conn.masked())
                    .unwrap_or("(each backup's own server)"),
                restore_timeout_secs: self
                    .verify_restore_timeout
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            },
            log: ShownLog {
                target: match self.log_target {
                    crate::log::LogTarget::Auto => "auto",
                    crate::log::LogTarget::Journal => "journal",
                    crate::log::LogTarget::Stderr => "stderr",
                    crate::log::LogTarget::Syslog => "syslog",
                },
                syslog_socket: &self.syslog_socket,
            },
            database: self
                .databases
                .iter()
                .map(|d| ShownDb {
                    name: d.name(),
                    url: d.target.conn.masked(),
                    password: match (&d.password_source, &d.target.password) {
                        (Some(s), _) => s.as_str(),
                        (None, Some(_)) => "(embedded in url, masked)",
                        (None, None) => "(libpq: PGPASSWORD, PGPASSFILE or ~/.pgpass)",
                    },
                    extensions: &d.extensions,
                    pg_dump_args: &d.pg_dump_args,
                })
                .collect(),
        };
        let mut out = format!(
            "# effective configuration\n# file: {}\n# environment overrides: {}\n",
            self.source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none (built-in defaults)".into()),
            if self.env_overrides.is_empty() {
                "none".to_string()
            } else {
                self.env_overrides.join(", ")
            }
        );
        if self.databases.is_empty() {
            out.push_str(
                "# no [[database]]: every connectable database of the server that libpq's defaults reach is backed up\n",
            );
        }
        out.push_str(&toml::to_string_pretty(&shown).unwrap_or_default());
        out
    }
}

/// `[storage.s3]` with its environment overrides (the names of the common container setups).
fn s3_config(
    file: Option<S3File>,
    env: EnvFn,
    env_get: &mut dyn FnMut(&str) -> Option<String>,
    problems: &mut ConfigProblems,
    key: &dyn Fn(&str) -> String,
    warnings: &mut Vec<String>,
) -> Option<crate::s3::S3Config> {
    let f = file.unwrap_or_default();
    fn first(
        env_get: &mut dyn FnMut(&str) -> Option<String>,
        setting: &str,
    ) -> Option<(String, String)> {
        env::get(env_get, setting).map(|(v, n)| (v, format!("environment variable {n}")))
    }
    let storage = first(env_get, "storage.kind").map(|v| v.0);
    if storage.as_deref() == Some("local") {
        return None;
    }
    let (bucket, bucket_place) = match first(env_get, "storage.s3.bucket") {
        Some(b) => b,
        None => match f.bucket {
            Some(b) => (b, key("storage.s3.bucket")),
            None => {
                if storage.as_deref() == Some("s3") {
                    problems.push(
                        "environment variable BACKUP_STORAGE",
                        "is s3, but no bucket is set; set S3_BUCKET or [storage.s3] bucket",
                    );
                }
                return None;
            }
        },
    };
    let (endpoint, endpoint_place) = match first(env_get, "storage.s3.endpoint") {
        Some((e, place)) => (Some(e), place),
        None => (f.endpoint, key("storage.s3.endpoint")),
    };
    let endpoint = endpoint.filter(|e| !e.is_empty());
    if let Some(e) = &endpoint {
        if let Err(msg) = crate::s3::http::Endpoint::parse(e) {
            problems.push(endpoint_place, msg);
        }
    }
    let chain = crate::s3::creds::ChainEnv::from_env(env);
    let region = first(env_get, "storage.s3.region")
        .map(|v| v.0)
        .or(f.region)
        .or_else(|| first(env_get, "storage.s3.default-region").map(|v| v.0))
        .or_else(|| chain.profile_region())
        .unwrap_or_else(|| "us-east-1".into());
    let keep_local_env = first(env_get, "storage.s3.keep-local").map(|v| v.0);
    let mut prefix = f.prefix.unwrap_or_else(|| "backups/".into());
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let credentials = s3_credentials(
        (f.access_key, f.access_key_file),
        (f.secret_key, f.secret_key_file),
        env,
        env_get,
        problems,
        key,
        warnings,
        chain,
    );
    let part_mib = f.part_size_mib.unwrap_or(16);
    if !(5..=5120).contains(&part_mib) {
        problems.push(
            key("storage.s3.part-size-mib"),
            format!("{part_mib} is out of range; S3 parts are 5 MiB to 5 GiB"),
        );
    }
    let keep_local = match keep_local_env {
        Some(v) => match parse_bool(&v) {
            Some(b) => b,
            None => {
                problems.push(
                    "environment variable BACKUP_KEEP_LOCAL",
                    format!("\"{v}\" is not a boolean; use true or false"),
                );
                true
            }
        },
        None => f.keep_local.unwrap_or(true),
    };
    let list_prefixes: Vec<String> = f
        .list_prefixes
        .unwrap_or_default()
        .into_iter()
        .map(|mut p| {
            if !p.is_empty() && !p.ends_with('/') {
                p.push('/');
            }
            p
        })
        .collect();
    if list_prefixes.contains(&prefix) {
        problems.push(
            key("storage.s3.list-prefixes"),
            format!(
                "contains the write prefix \"{prefix}\"; list only other (legacy) prefixes there"
            ),
        );
    }
    let stall = f.stall_timeout_secs.unwrap_or(120);
    if !(1..=86_400).contains(&stall) {
        problems.push(
            key("storage.s3.stall-timeout-secs"),
            format!("{stall} is out of range; use 1 to 86400 seconds"),
        );
    }
    let abort_after = f.abort_incomplete_after_hours.unwrap_or(24);
    if !(0..=8760).contains(&abort_after) {
        problems.push(
            key("storage.s3.abort-incomplete-after-hours"),
            format!("{abort_after} is out of range; use 0 to 8760 hours"),
        );
    }
    if let Some(ca) = &f.ca_file {
        if !ca.is_file() {
            problems.push(
                key("storage.s3.ca-file"),
                format!(
                    "{} does not exist; give the PEM file of the CA that signed the endpoint's certificate",
                    ca.display()
                ),
            );
        }
    }
    let object_lock = match (f.object_lock.as_deref(), f.object_lock_days) {
        (None, None) => None,
        (None, Some(_)) => {
            problems.push(
                key("storage.s3.object-lock-days"),
                "is set without object-lock; set object-lock = \"governance\" or \"compliance\" too",
            );
            None
        }
        (Some(mode), days) => {
            let mode = match mode.to_ascii_lowercase().as_str() {
                "governance" => Some(crate::s3::LockMode::Governance),
                "compliance" => Some(crate::s3::LockMode::Compliance),
                _ => {
                    problems.push(
                        key("storage.s3.object-lock"),
                        format!("\"{mode}\" is not a mode; use \"governance\" (deletable by users allowed s3:BypassGovernanceRetention) or \"compliance\" (nobody can delete before the date)"),
                    );
                    None
                }
            };
            let days = match days {
                Some(d) if (1..=36_500).contains(&d) => Some(d as u32),
                Some(d) => {
                    problems.push(
                        key("storage.s3.object-lock-days"),
                        format!("{d} is out of range; use 1 to 36500 days"),
                    );
                    None
                }
                None => {
                    problems.push(
                        key("storage.s3.object-lock-days"),
                        "is missing; object-lock needs the number of days each backup stays locked",
                    );
                    None
                }
            };
            mode.zip(days)
                .map(|(mode, days)| crate::s3::ObjectLock { mode, days })
        }
    };
    Some(crate::s3::S3Config {
        keep_local,
        list_prefixes,
        stall_timeout: std::time::Duration::from_secs(stall.clamp(1, 86_400) as u64),
        abort_incomplete_after: std::time::Duration::from_secs(
            abort_after.clamp(0, 8760) as u64 * 3600,
        ),
        path_style: f.path_style.unwrap_or(endpoint.is_some()),
        endpoint,
        region,
        prefix,
        credentials: credentials?,
        storage_class: f.storage_class,
        server_side_encryption: f.server_side_encryption,
        part_size: (part_mib.clamp(5, 5120) as usize) << 20,
        ca_file: f.ca_file,
        proxy: crate::s3::http::ProxyEnv::from_env(env),
        object_lock,
        bucket,
        bucket_place,
    })
}

/// The S3 keys, from the first source that has any, in the order the AWS tools use:
/// `S3_ACCESS_KEY`/`S3_SECRET_KEY` (and `_FILE`), the config file's keys or key files, the
/// systemd credentials `s3-access-key`/`s3-secret-key`, `AWS_ACCESS_KEY_ID`/
/// `AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` (and `_FILE`); else the run-time chain (shared
/// files, web identity, instance metadata). A source with only one of the two keys is a problem.
#[allow(clippy::too_many_arguments)]
fn s3_credentials(
    access: (Option<String>, Option<PathBuf>),
    secret: (Option<String>, Option<PathBuf>),
    env: EnvFn,
    env_get: &mut dyn FnMut(&str) -> Option<String>,
    problems: &mut ConfigProblems,
    key: &dyn Fn(&str) -> String,
    warnings: &mut Vec<String>,
    chain: crate::s3::creds::ChainEnv,
) -> Option<crate::s3::creds::CredentialSpec> {
    use crate::s3::creds::CredentialSpec;
    use crate::s3::sigv4::Credentials;
    let spec = |ak: Secret, sk: Secret, token: Option<Secret>, source: String| {
        Some(CredentialSpec::Static {
            creds: Credentials {
                access_key: ak,
                secret_key: sk,
                session_token: token,
            },
            source,
        })
    };
    // An environment pair: the variable itself, else its `_FILE` variant.
    let env_pair = |env_get: &mut dyn FnMut(&str) -> Option<String>,
                    ak_var: &str,
                    sk_var: &str,
                    problems: &mut ConfigProblems,
                    warnings: &mut Vec<String>| {
        let mut one = |var: &str| -> Option<(Secret, String)> {
            if let Some(v) = env_get(var) {
                return Some((Secret::new(v), var.to_string()));
            }
            let file_var = format!("{var}_FILE");
            let p = env_get(&file_var)?;
            match read_secret_file(Path::new(&p), warnings) {
                Ok(s) => Some((s, format!("{file_var} {p}"))),
                Err(e) => {
                    problems.push(format!("environment variable {file_var}"), e);
                    None
                }
            }
        };
        (one(ak_var), one(sk_var))
    };
    let missing_other = |problems: &mut ConfigProblems, have: &str, want: &str| {
        problems.push(
            have.to_string(),
            format!("is set but {want} is not; S3 needs both keys from one place"),
        );
    };
    match env_pair(
        env_get,
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        problems,
        warnings,
    ) {
        (Some((ak, a)), Some((sk, b))) => {
            return spec(ak, sk, None, format!("environment ({a}, {b})"))
        }
        (Some((_, a)), None) => {
            missing_other(
                problems,
                &format!("environment variable {a}"),
                "S3_SECRET_KEY",
            );
            return None;
        }
        (None, Some((_, b))) => {
            missing_other(
                problems,
                &format!("environment variable {b}"),
                "S3_ACCESS_KEY",
            );
            return None;
        }
        (None, None) => {}
    }
    // The config file: key files (preferred) or the keys themselves.
    let mut from_file = |what: &str, (value, file): (Option<String>, Option<PathBuf>)| {
        if let Some(p) = file {
            return match read_secret_file(&p, warnings) {
                Ok(s) => Some(Ok((s, format!("{what}-file {}", p.display())))),
                Err(e) => Some(Err((key(&format!("storage.s3.{what}-file")), e))),
            };
        }
        value.map(|v| {
            warnings.push(format!(
                "[storage.s3] {what} is written in the config file; prefer {what}-file or a systemd credential"
            ));
            Ok((Secret::new(v), format!("[storage.s3] {what}")))
        })
    };
    match (
        from_file("access-key", access),
        from_file("secret-key", secret),
    ) {
        (Some(Ok((ak, a))), Some(Ok((sk, b)))) => return spec(ak, sk, None, format!("{a}, {b}")),
        (Some(Err((place, e))), _) | (_, Some(Err((place, e)))) => {
            problems.push(place, e);
            return None;
        }
        (Some(Ok(_)), None) => {
            missing_other(
                problems,
                &key("storage.s3.access-key"),
                "secret-key (or secret-key-file)",
            );
            return None;
        }
        (None, Some(Ok(_))) => {
            missing_other(
                problems,
                &key("storage.s3.secret-key"),
                "access-key (or access-key-file)",
            );
            return None;
        }
        (None, None) => {}
    }
    if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
        let read = |n: &str| {
            std::fs::read_to_string(Path::new(&dir).join(n))
                .ok()
                .map(Secret::new)
        };
        match (read("s3-access-key"), read("s3-secret-key")) {
            (Some(ak), Some(sk)) => {
                return spec(
                    ak,
                    sk,
                    None,
                    "systemd credentials s3-access-key, s3-secret-key".into(),
                )
            }
            (Some(_), None) | (None, Some(_)) => {
                problems.push(
                    "systemd credentials",
                    "only one of s3-access-key and s3-secret-key is loaded; add the other LoadCredential=",
                );
                return None;
            }
            (None, None) => {}
        }
    }
    match env_pair(
        env_get,
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        problems,
        warnings,
    ) {
        (Some((ak, a)), Some((sk, b))) => {
            let token = env_get("AWS_SESSION_TOKEN").map(Secret::new);
            let t = if token.is_some() {
                ", AWS_SESSION_TOKEN"
            } else {
                ""
            };
            return spec(ak, sk, token, format!("environment ({a}, {b}{t})"));
        }
        (Some((_, a)), None) => {
            missing_other(
                problems,
                &format!("environment variable {a}"),
                "AWS_SECRET_ACCESS_KEY",
            );
            return None;
        }
        (None, Some((_, b))) => {
            missing_other(
                problems,
                &format!("environment variable {b}"),
                "AWS_ACCESS_KEY_ID",
            );
            return None;
        }
        (None, None) => {}
    }
    Some(CredentialSpec::Chain(chain))
}

/// A boolean from the environment: 1/true/yes/on or 0/false/no/off.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Read a secret from a file; warn when others can read it. Only a regular file of at most
/// 64 KiB: a FIFO or /dev/zero named by mistake must not hang the run.
fn read_secret_file(path: &Path, warnings: &mut Vec<String>) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let text = crate::verify::read_regular(path, 64 << 10)
        .and_then(|b| String::from_utf8(b).map_err(|_| std::io::Error::other("not UTF-8 text")));
    match text {
        Ok(s) => {
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o077 != 0 {
                    warnings.push(format!(
                        "{} is readable by other users; chmod 600 it",
                        path.display()
                    ));
                }
            }
            let s = Secret::new(s);
            if s.expose().is_empty() {
                return Err(format!("{} is empty; put the password in it", path.display()));
            }
            Ok(s)
        }
        Err(e) => Err(format!(
            "cannot read {}: {e}; create it (mode 0600, readable by the pgbackup user) or fix the path",
            path.display()
        )),
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
}
