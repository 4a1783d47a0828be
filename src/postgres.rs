//! The PostgreSQL client programs as child processes: pg_dump and psql. Argv, environment,
//! stderr capture, exit status and timeouts live here.
//!
//! Passwords reach the children only through a 0600 passfile named by `PGPASSFILE` in the
//! child's environment; argv carries the connection string with the password removed.
//! Children run with `-w` (never prompt) and stdin closed, and with `LC_MESSAGES=C` so that their
//! messages can be classified.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::conninfo::ConnInfo;
use crate::secret::Secret;

/// Default connection timeout handed to libpq when neither the environment nor the connection
/// string sets one: an unreachable host fails in seconds instead of hanging the timer job.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u32 = 10;

const STDERR_KEEP: usize = 50;

/// Errors talking to PostgreSQL. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to database {db} ({target}): {detail}; {hint}")]
    Connect {
        /// The configured database name.
        db: String,
        /// The masked connection string.
        target: String,
        /// What libpq said.
        detail: String,
        /// What to do.
        hint: String,
    },
    /// A client program could not be started.
    #[error("cannot run {program}: {source}; install the PostgreSQL client (apt install postgresql-client) or set [backup] {key}")]
    Spawn {
        /// The program.
        program: String,
        /// The config key that names it.
        key: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A query failed after connecting.
    #[error("query on database {db} failed: {detail}")]
    Query {
        /// The configured database name.
        db: String,
        /// What psql said.
        detail: String,
    },
    /// pg_dump is older than the server.
    #[error("pg_dump {dump_version} cannot dump database {db}: the server runs PostgreSQL {server_version}; set [backup] pg-dump-path to a pg_dump of major version {server_major} or newer (e.g. /usr/lib/postgresql/{server_major}/bin/pg_dump)")]
    VersionMismatch {
        /// The configured database name.
        db: String,
        /// pg_dump's version.
        dump_version: String,
        /// The server's version.
        server_version: String,
        /// The server's major version.
        server_major: u32,
    },
}

/// `program` as PATH finds it, except Debian's `pg_wrapper` (/usr/bin/psql and friends link to
/// it): a Perl script that only picks a version and costs about 80 ms per start, which a
/// restore pays three times. When exactly one version is installed under /usr/lib/postgresql,
/// that is the one it would pick, and it is run directly; otherwise (several versions, or no
/// wrapper) the bare name is kept and pg_wrapper's own rules apply.
fn unwrapped(program: &str) -> PathBuf {
    unwrapped_in(
        program,
        std::env::var_os("PATH"),
        Path::new("/usr/lib/postgresql"),
    )
    .unwrap_or_else(|| PathBuf::from(program))
}

fn unwrapped_in(
    program: &str,
    path: Option<std::ffi::OsString>,
    versions: &Path,
) -> Option<PathBuf> {
    let found = std::env::split_paths(&path?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())?;
    let real = std::fs::canonicalize(&found).ok()?;
    if real.file_name()? != "pg_wrapper" {
        return None;
    }
    let mut candidates = std::fs::read_dir(versions)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(program))
        .filter(|p| p.is_file());
    let only = candidates.next()?;
    candidates.next().is_none().then_some(only)
}

/// Where the client programs are.
#[derive(Debug, Clone)]
pub struct PgTools {
    /// pg_dump.
    pub pg_dump: PathBuf,
    /// psql.
    pub psql: PathBuf,
    /// pg_restore (for custom-format backups).
    pub pg_restore: PathBuf,
    /// pg_dumpall (for the cluster globals).
    pub pg_dumpall: PathBuf,
}

impl PgTools {
    /// `pg_dump` from `pg_dump_path` (else PATH); `psql` from `psql_path`, else beside a
    /// configured pg_dump, else PATH; `pg_restore` beside a configured pg_dump, else PATH.
    pub fn new(pg_dump_path: Option<&Path>, psql_path: Option<&Path>) -> Self {
        let pg_dump = pg_dump_path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| unwrapped("pg_dump"));
        let beside = |program: &str| {
            pg_dump_path
                .and_then(Path::parent)
                .map(|d| d.join(program))
                .filter(|p| p.exists())
                .unwrap_or_else(|| unwrapped(program))
        };
        let psql = psql_path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| beside("psql"));
        PgTools {
            pg_dump,
            psql,
            pg_restore: beside("pg_restore"),
            pg_dumpall: beside("pg_dumpall"),
        }
    }

    /// `pg_dump --version`, e.g. "15.18".
    pub fn pg_dump_version(&self) -> Result<String, PgError> {
        let mut cmd = Command::new(&self.pg_dump);
        clean_env(&mut cmd);
        let out = cmd
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| PgError::Spawn {
                program: self.pg_dump.display().to_string(),
                key: "pg-dump-path",
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        Ok(text
            .split_whitespace()
            .nth(2)
            .unwrap_or(text.trim())
            .to_string())
    }
}

/// Quote an SQL identifier: `"` + name with `"` doubled + `"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote an SQL string literal (standard_conforming_strings, the default since 9.1).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The major version of a version string: "15.18" -> 15, "9.6.1" -> 9, "17beta1" -> 17.
pub fn major_version(v: &str) -> Option<u32> {
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One database to talk to: how to connect and with which password.
#[derive(Debug, Clone)]
pub struct Target {
    /// The configured name (used in messages and file names).
    pub name: String,
    /// Connection string.
    pub conn: ConnInfo,
    /// Password, when configured (otherwise libpq's own PGPASSWORD/PGPASSFILE/~/.pgpass apply).
    pub password: Option<Secret>,
    /// Where the password came from, in the user's words ("password-file /etc/...",
    /// "credential db-password"): named by `config show` and by a refused password.
    pub password_source: Option<String>,
}

/// What a child program gets to connect: a passfile that exists only in memory (a memfd,
/// handed over as `/proc/self/fd/N`: nothing on disk, so a `kill -9` leaves no password
/// behind), and a clean environment.
#[derive(Debug)]
pub struct ClientEnv {
    passfile: Option<std::fs::File>,
    /// Where the password in the passfile came from (for messages).
    source: Option<String>,
    /// The user's own libpq password variable, when no password is configured (their choice).
    own_pgpassword: bool,
}

/// Environment variables a child may inherit besides libpq's own `PG*` ones: what a program
/// needs to find itself, its home (~/.pgpass, ~/.pg_service.conf, ~/.postgresql/), its locale
/// and time zone. Everything else (DATABASE_URL with its password, S3 and AWS keys, ...) stays
/// with pgbackup.
const CHILD_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_CTYPE",
    "LC_COLLATE",
    "TZ",
    "TMPDIR",
];

impl ClientEnv {
    /// Prepare the environment for `program` (its config key: `key`) connecting to `target`.
    pub fn new(target: &Target, program: &str, key: &'static str) -> Result<Self, PgError> {
        Self::write(target).map_err(|source| PgError::Spawn {
            program: format!("{program} (passfile)"),
            key,
            source,
        })
    }

    fn write(target: &Target) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let passfile = match &target.password {
            None => None,
            Some(pw) => {
                // Inherited by the child (not close-on-exec); libpq wants a regular 0600 file.
                let fd = nix::sys::memfd::memfd_create(
                    c"pgbackup-passfile",
                    nix::sys::memfd::MemFdCreateFlag::empty(),
                )
                .map_err(std::io::Error::from)?;
                let mut f = std::fs::File::from(fd);
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                writeln!(f, "*:*:*:*:{}", escape_passfile(pw.expose()))?;
                Some(f)
            }
        };
        Ok(ClientEnv {
            own_pgpassword: target.password.is_none(),
            source: target.password.as_ref().map(|_| {
                target
                    .password_source
                    .clone()
                    .unwrap_or_else(|| "the url".into())
            }),
            passfile,
        })
    }

    /// The passfile's name as the child sees it.
    fn passfile_path(&self) -> Option<String> {
        use std::os::fd::AsRawFd;
        self.passfile
            .as_ref()
            .map(|f| format!("/proc/self/fd/{}", f.as_raw_fd()))
    }

    /// Apply to a command: a clean environment (see [`clean_env`]), libpq's variables but the
    /// password ones when pgbackup supplies the password, the passfile, a connect timeout,
    /// English messages, stdin closed.
    pub fn apply(&self, cmd: &mut Command) {
        child_env(cmd, self.own_pgpassword);
        if let Some(p) = self.passfile_path() {
            cmd.env("PGPASSFILE", p);
        }
        if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
            cmd.env(
                "PGCONNECT_TIMEOUT",
                DEFAULT_CONNECT_TIMEOUT_SECS.to_string(),
            );
        }
        cmd.env("LC_MESSAGES", "C");
        cmd.stdin(Stdio::null());
    }

    /// A client's message with the passfile named as what it is, the user's password source
    /// (`password-file /etc/...`), not as `/proc/self/fd/N`.
    pub fn scrub(&self, text: &str) -> String {
        match (self.passfile_path(), &self.source) {
            // libpq's "password retrieved from file ..." line goes: the hint names the source.
            (Some(p), Some(source)) => text
                .lines()
                .filter(|l| l.trim() != format!("password retrieved from file \"{p}\""))
                .collect::<Vec<_>>()
                .join("\n")
                .replace(&format!("\"{p}\""), source),
            _ => text.to_string(),
        }
    }

    /// Turn the client's stderr into the one line worth showing and a hint naming this
    /// password's source.
    fn classify(&self, stderr: &str) -> (String, String, bool) {
        classify(stderr, self.source.as_deref())
    }
}

/// A clean environment for a child program: what it needs to run and libpq's own `PG*`
/// variables (see [`CHILD_ENV`]), nothing else of pgbackup's.
pub fn clean_env(cmd: &mut Command) {
    child_env(cmd, true);
}

fn child_env(cmd: &mut Command, with_pgpassword: bool) {
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        let libpq = name.starts_with("PG") && !name.starts_with("PGBACKUP");
        let keep = CHILD_ENV.contains(&name)
            || (libpq && (with_pgpassword || (name != "PGPASSWORD" && name != "PGPASSFILE")));
        if keep {
            cmd.env(&k, &v);
        }
    }
}

fn escape_passfile(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

/// The connection string argument for a child (`--dbname=...`), without the password.
fn dbname_arg(conn: &ConnInfo) -> OsString {
    let mut s = OsString::from("--dbname=");
    s.push(conn.without_password());
    s
}

/// Turn a client's stderr into the one line worth showing, and a hint.
fn classify(stderr: &str, password_source: Option<&str>) -> (String, String, bool) {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.trim_start_matches("psql: ")
                .trim_start_matches("pg_dump: ")
                .trim_start_matches("error: ")
        })
        .collect();
    let detail = join_lines(&lines);
    let lower = detail.to_lowercase();
    let is_connect = lower.contains("connection to server")
        || lower.contains("could not connect")
        || lower.contains("could not translate host name");
    let hint = if lower.contains("password authentication failed")
        || lower.contains("no password supplied")
        || lower.contains("password is required")
    {
        return (
            detail,
            match password_source {
                Some(source) => format!("check the password in {source} and the user name"),
                None => "check the password (password-file, password-credential, or PGPASSFILE) and the user name".into(),
            },
            is_connect,
        );
    } else if lower.contains("database") && lower.contains("does not exist") {
        "check the database name in url (or the [[database]] name)"
    } else if lower.contains("role") && lower.contains("does not exist") {
        "check the user name in url"
    } else if lower.contains("pg_hba.conf") {
        "allow this host and user in the server's pg_hba.conf"
    } else if lower.contains("connection refused")
        || lower.contains("no such file or directory")
        || lower.contains("timeout expired")
        || lower.contains("could not translate host name")
        || lower.contains("is the server running")
    {
        "is the server running, and are host and port right?"
    } else {
        "check url and that the server is running"
    };
    (detail, hint.into(), is_connect)
}

/// A client's stderr lines as one sentence: libpq splits a message over lines ("...failed:
/// FATAL:  password authentication failed ...", "password retrieved from file ..."), which
/// read as one run-on phrase when glued with a space; a line that does not end in
/// punctuation gets a semicolon, and runs of spaces become one.
fn join_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    for l in lines {
        if !out.is_empty() {
            if !out.ends_with(['.', ':', ';', ',', '?', '!']) {
                out.push(';');
            }
            out.push(' ');
        }
        out.push_str(&l.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    out
}

/// psql as a query runner.
#[derive(Debug)]
pub struct Psql<'a> {
    tools: &'a PgTools,
    target: &'a Target,
}

impl<'a> Psql<'a> {
    /// A runner for `target`.
    pub fn new(tools: &'a PgTools, target: &'a Target) -> Self {
        Psql { tools, target }
    }

    /// Run one SQL command; rows are returned as vectors of fields.
    pub fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, PgError> {
        let env = ClientEnv::new(self.target, "psql", "psql-path")?;
        let mut cmd = Command::new(&self.tools.psql);
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-w",
            "-0",
            "-F",
            "\x1f",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .arg(dbname_arg(&self.target.conn))
        .arg("-c")
        .arg(sql);
        env.apply(&mut cmd);
        let out = cmd.output().map_err(|source| PgError::Spawn {
            program: self.tools.psql.display().to_string(),
            key: "psql-path",
            source,
        })?;
        if !out.status.success() {
            let stderr = env.scrub(&String::from_utf8_lossy(&out.stderr));
            let (detail, hint, is_connect) = env.classify(&stderr);
            // psql exits 2 when the connection failed.
            return Err(if is_connect || out.status.code() == Some(2) {
                PgError::Connect {
                    db: self.target.name.clone(),
                    target: self.target.conn.masked().to_string(),
                    detail,
                    hint,
                }
            } else {
                PgError::Query {
                    db: self.target.name.clone(),
                    detail,
                }
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .split('\0')
            .map(|r| r.trim_start_matches('\n'))
            .filter(|r| !r.is_empty())
            .map(|r| r.split('\x1f').map(str::to_string).collect())
            .collect())
    }

    /// `server_version` of the server.
    pub fn server_version(&self) -> Result<String, PgError> {
        let rows = self.query("SHOW server_version")?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .map(|v| v.split_whitespace().next().unwrap_or(v).to_string())
            .unwrap_or_default())
    }

    /// `server_version` and the database's size on disk (an upper estimate of its dump).
    pub fn server_info(&self) -> Result<(String, Option<u64>), PgError> {
        let rows = self.query(
            "SELECT current_setting('server_version'), pg_database_size(current_database())",
        )?;
        let row = rows.first();
        let version = row
            .and_then(|r| r.first())
            .map(|v| v.split_whitespace().next().unwrap_or(v).to_string())
            .unwrap_or_default();
        let size = row
            .and_then(|r| r.get(1))
            .and_then(|s| s.trim().parse().ok());
        Ok((version, size))
    }

    /// Databases a zero-config run backs up: connectable, not templates, CONNECT allowed.
    pub fn list_databases(&self) -> Result<Vec<String>, PgError> {
        let rows = self.query(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate \
             AND has_database_privilege(datname, 'CONNECT') ORDER BY datname",
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }
}

/// A running pg_dump whose stdout is the dump.
#[derive(Debug)]
pub struct DumpProcess {
    /// The job it runs for (a cancel stops it).
    cancel: crate::run::Cancel,
    child: Child,
    stderr: Option<JoinHandle<Vec<String>>>,
    watchdog: Option<Watchdog>,
    _env: ClientEnv,
    name: String,
    target: String,
}

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// pg_dump could not connect.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// pg_dump exited non-zero or was killed.
    #[error("pg_dump of {db} failed ({status}): {detail}")]
    Failed {
        /// Database.
        db: String,
        /// Exit status in words.
        status: String,
        /// The last lines of its stderr.
        detail: String,
    },
    /// pg_dump exited 0 but reported an error on stderr.
    #[error("pg_dump of {db} reported an error although it exited 0: {detail}")]
    StderrError {
        /// Database.
        db: String,
        /// The error lines.
        detail: String,
    },
    /// The dump did not finish within `dump-timeout-secs`.
    #[error("pg_dump of {db} did not finish within {secs} s and was stopped; raise [backup] dump-timeout-secs (BACKUP_DUMP_TIMEOUT) or find what blocks it (locks, a slow server)")]
    Timeout {
        /// Database.
        db: String,
        /// The limit.
        secs: u64,
    },
}

impl DumpProcess {
    /// Start `pg_dump` in `format` (a custom archive uncompressed: the chain compresses it)
    /// for `target` with `extra_args`.
    pub fn spawn(
        tools: &PgTools,
        target: &Target,
        format: crate::chain::Format,
        extra_args: &[String],
        timeout: Option<Duration>,
        cancel: &crate::run::Cancel,
    ) -> Result<(DumpProcess, ChildStdout), PgError> {
        let (program, key) = match format {
            crate::chain::Format::Globals => (&tools.pg_dumpall, "pg-dump-path"),
            _ => (&tools.pg_dump, "pg-dump-path"),
        };
        let env = ClientEnv::new(target, format.program(), key)?;
        let mut cmd = Command::new(program);
        match format {
            crate::chain::Format::Plain => cmd.arg("--format=plain"),
            crate::chain::Format::Custom => cmd.args(["--format=custom", "--compress=0"]),
            // Into a directory (`--file`, `--jobs` among the caller's arguments): nothing on
            // stdout.
            crate::chain::Format::Directory => cmd.args(["--format=directory", "--compress=0"]),
            crate::chain::Format::Globals => cmd.arg("--globals-only"),
            // Not pg_dump's: a Redis snapshot comes from crate::redis.
            crate::chain::Format::Rdb => {
                return Err(PgError::Spawn {
                    program: "pg_dump".into(),
                    key,
                    source: std::io::Error::other("a Redis snapshot is not made by pg_dump"),
                })
            }
        };
        cmd.arg("--no-password")
            .args(extra_args)
            .arg(dbname_arg(&target.conn))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        env.apply(&mut cmd);
        let mut child = spawn_in_group(&mut cmd, program, key)?;
        let stdout = child.stdout.take().expect("stdout was piped above");
        // A 1 MiB pipe (the default is 64 KiB) lets pg_dump keep going while we compress a burst.
        // Best effort: the limit is /proc/sys/fs/pipe-max-size.
        let _ = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&stdout),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20),
        );
        let stderr = child.stderr.take().expect("stderr was piped above");
        let name = target.name.clone();
        let stderr = collect_stderr(stderr, name.clone());
        cancel.register(child.id());
        let watchdog = timeout.map(|limit| Watchdog::start(child.id(), limit));
        Ok((
            DumpProcess {
                cancel: cancel.clone(),
                child,
                stderr: Some(stderr),
                watchdog,
                _env: env,
                name,
                target: target.conn.masked().to_string(),
            },
            stdout,
        ))
    }

    /// Stop pg_dump (and whatever it started) now (used when writing the output failed).
    pub fn kill(&mut self) {
        kill_group(self.child.id(), nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
    }

    /// Wait for pg_dump and check everything it told us. `timeout_secs` is for the message.
    pub fn finish(mut self, timeout_secs: u64) -> Result<(), DumpError> {
        let timed_out = self.watchdog.take().is_some_and(Watchdog::stop);
        let pid = self.child.id();
        let status = self.cancel.reap(pid, || self.child.wait());
        let lines = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if timed_out {
            return Err(DumpError::Timeout {
                db: self.name.clone(),
                secs: timeout_secs,
            });
        }
        let status = status.map_err(|e| DumpError::Failed {
            db: self.name.clone(),
            status: "wait failed".into(),
            detail: e.to_string(),
        })?;
        let text = self._env.scrub(&lines.join("\n"));
        if !status.success() {
            let (detail, hint, is_connect) = self._env.classify(&text);
            if is_connect {
                return Err(PgError::Connect {
                    db: self.name.clone(),
                    target: self.target.clone(),
                    detail,
                    hint,
                }
                .into());
            }
            let hint = dump_privilege_hint(&detail);
            return Err(DumpError::Failed {
                db: self.name.clone(),
                status: describe_status(status),
                detail: if detail.is_empty() {
                    "no message on stderr".into()
                } else {
                    format!("{detail}{hint}")
                },
            });
        }
        let errors: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("error:") || l.contains("FATAL:"))
            .collect();
        if !errors.is_empty() {
            return Err(DumpError::StderrError {
                db: self.name.clone(),
                detail: errors
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        Ok(())
    }
}

/// Start `cmd` (the `program` of config key `key`) in its own process group: a timeout or a
/// signal stops the whole group, so a wrapper (`ssh host pg_dump`, `docker exec`, a script
/// without `exec`) cannot outlive it with the pipe held open.
fn spawn_in_group(
    cmd: &mut Command,
    program: &Path,
    key: &'static str,
) -> Result<std::process::Child, PgError> {
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    cmd.spawn().map_err(|source| PgError::Spawn {
        program: program.display().to_string(),
        key,
        source,
    })
}

/// What a least-privilege backup role lacks, when pg_dump's error says (`pg_read_all_data` does
/// not bypass row-level security and gives no access to large objects).
fn dump_privilege_hint(detail: &str) -> &'static str {
    let lower = detail.to_lowercase();
    if lower.contains("would be affected by row-level security") {
        "; the backup role is subject to row-level security: give it BYPASSRLS (ALTER ROLE ... BYPASSRLS), as pg_dump needs every row"
    } else if lower.contains("permission denied for large object") {
        "; the backup role may not read large objects: GRANT SELECT ON LARGE OBJECT ... to it (or set lo_compat_privileges = on), or exclude them with pg-dump-args = [\"--no-large-objects\"]"
    } else if lower.contains("permission denied") {
        "; the backup role lacks a privilege: the usual role is CREATE ROLE backup LOGIN IN ROLE pg_read_all_data BYPASSRLS (see README)"
    } else {
        ""
    }
}

/// Signal the process group a child leads (children are started in their own group).
pub fn kill_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Stops a child (its whole process group) that runs longer than a limit: SIGTERM, then
/// SIGKILL 5 s later.
#[derive(Debug)]
struct Watchdog {
    tx: mpsc::Sender<()>,
    handle: JoinHandle<()>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(pid: u32, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let handle = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                flag.store(true, Ordering::SeqCst);
                // The child is not reaped before `stop` joined this thread, so the pid is still
                // the child's.
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGTERM);
                if let Err(mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(Duration::from_secs(5))
                {
                    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
        });
        Watchdog { tx, handle, fired }
    }

    /// Call before reaping the child. Whether the limit was hit.
    fn stop(self) -> bool {
        let _ = self.tx.send(());
        let _ = self.handle.join();
        self.fired.load(Ordering::SeqCst)
    }
}

/// Read a child's stderr on a thread: log each line as a warning, keep the last ones.
fn collect_stderr(stderr: std::process::ChildStderr, label: String) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut kept = std::collections::VecDeque::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.trim().is_empty() {
                continue;
            }
            // pg_dump's answer to the SIGTERM of a timeout or a stop ("pg_dump: terminated by
            // user") is not news: the error that follows says which it was. Kept for an error
            // whose cause is not known (somebody else's signal).
            if !line.ends_with(": terminated by user") {
                crate::log::warn(&format!("{label}: {line}"));
            }
            if kept.len() == STDERR_KEEP {
                kept.pop_front();
            }
            kept.push_back(line);
        }
        kept.into()
    })
}

/// Options of a restore through psql.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Drop ownership and privilege statements (`plain::PrivilegeFilter`).
    pub no_owner: bool,
    /// Run the whole dump in one transaction (`psql --single-transaction`).
    pub single_transaction: bool,
    /// Stop psql after this long.
    pub timeout: Option<Duration>,
    /// How the file is read (the read side of its chain: decryption, decompression).
    pub unpack: crate::codec::Unpack,
}

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// psql could not connect or could not be started.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// A statement failed (psql stopped at it).
    #[error("restore into {db} failed{}: {detail}", .line.map(|l| format!(" at line {l} of the dump")).unwrap_or_default())]
    Sql {
        /// The target's name.
        db: String,
        /// psql's error and the dump's lines around it.
        detail: String,
        /// The failing statement's line in the dump (psql's own count).
        line: Option<u64>,
        /// The error is a privilege the restoring role lacks, not a fault of the dump.
        privilege: bool,
    },
    /// The restore did not finish in time.
    #[error("restore into {db} did not finish within {secs} s and was stopped")]
    Timeout {
        /// The target's name.
        db: String,
        /// The limit.
        secs: u64,
    },
    /// Reading the backup failed.
    #[error("reading {path} failed: {source}")]
    Read {
        /// The backup file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A restoring client could not connect to `target`.
fn connect_error(target: &Target, detail: String, hint: String) -> RestoreError {
    PgError::Connect {
        db: target.name.clone(),
        target: target.conn.masked().to_string(),
        detail,
        hint,
    }
    .into()
}

/// Whether a restore's error is a privilege the restoring role lacks, not a fault of the dump.
fn is_privilege_error(detail: &str) -> bool {
    let lower = detail.to_lowercase();
    lower.contains("permission denied")
        || lower.contains("must be owner")
        || lower.contains("must be superuser")
        || lower.contains("must be a member of role")
        || lower.contains("only superuser")
}

/// A started client: the child, its watchdog, the thread that reads its stderr.
type Client = (
    std::process::Child,
    Option<Watchdog>,
    JoinHandle<Vec<String>>,
);

/// Start a restoring client (`cmd`, its stdin set by the caller) in its own process group,
/// registered with `cancel`, under the time limit, its stderr logged and kept.
fn start_client(
    mut cmd: Command,
    program: &Path,
    key: &'static str,
    target: &Target,
    timeout: Option<Duration>,
    cancel: &crate::run::Cancel,
) -> Result<Client, PgError> {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = spawn_in_group(&mut cmd, program, key)?;
    cancel.register(child.id());
    let watchdog = timeout.map(|limit| Watchdog::start(child.id(), limit));
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stderr = collect_stderr(
        child.stderr.take().expect("stderr was piped above"),
        format!("{name} {}", target.name),
    );
    Ok((child, watchdog, stderr))
}

/// Stream a plain dump, compressed as `opts` says, into psql connected to `target`.
/// Returns (compressed, raw) bytes.
/// `progress` is called about every `every` with the same pair.
pub fn restore_plain(
    tools: &PgTools,
    target: &Target,
    data: &Path,
    opts: RestoreOptions,
    cancel: &crate::run::Cancel,
    every: Duration,
    mut progress: impl FnMut(u64, u64),
) -> Result<(u64, u64), RestoreError> {
    use std::io::Read;
    let read_err = |source| RestoreError::Read {
        path: data.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(data).map_err(read_err)?;
    let (counted, read_so_far) = crate::codec::Counted::new(file);
    let unpack = opts.unpack.clone();
    let mut gz = crate::codec::unpack(&unpack, counted);

    let env = ClientEnv::new(target, "psql", "psql-path")?;
    let mut cmd = Command::new(&tools.psql);
    // `-f -`: psql then names the line of every error (psql:<stdin>:LINE: ERROR: ...); the
    // privilege filter keeps line breaks, so it is the dump's line.
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
    if opts.single_transaction {
        cmd.arg("--single-transaction");
    }
    cmd.arg(dbname_arg(&target.conn));
    env.apply(&mut cmd);
    cmd.stdin(Stdio::piped());
    let (mut child, watchdog, stderr) =
        start_client(cmd, &tools.psql, "psql-path", target, opts.timeout, cancel)?;
    let mut stdin = child.stdin.take().expect("stdin was piped above");

    let mut filter = opts.no_owner.then(crate::plain::PrivilegeFilter::default);
    let mut buf = vec![0u8; 256 * 1024];
    let mut filtered = Vec::with_capacity(256 * 1024 + 4096);
    let mut raw = 0u64;
    let mut last = std::time::Instant::now();
    let mut read_error = None;
    loop {
        let n = match gz.read(&mut buf) {
            Ok(0) => {
                if let Some(f) = &mut filter {
                    filtered.clear();
                    f.finish(&mut filtered);
                    let _ = stdin.write_all(&filtered);
                }
                break;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        raw += n as u64;
        let chunk = match &mut filter {
            Some(f) => {
                filtered.clear();
                f.process(&buf[..n], &mut filtered);
                &filtered[..]
            }
            None => &buf[..n],
        };
        // A write error means psql is gone (it stopped at an error): its status tells why.
        if stdin.write_all(chunk).is_err() {
            break;
        }
        if last.elapsed() >= every {
            last = std::time::Instant::now();
            progress(read_so_far.get(), raw);
        }
    }
    if read_error.is_some() {
        // Never let psql commit a half-read dump: stop it before closing its input.
        kill_group(child.id(), nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
    }
    drop(stdin);
    let timed_out = watchdog.is_some_and(Watchdog::stop);
    let pid = child.id();
    let status = cancel.reap(pid, || child.wait());
    let lines = stderr.join().unwrap_or_default();
    if timed_out {
        return Err(RestoreError::Timeout {
            db: target.name.clone(),
            secs: opts.timeout.map(|d| d.as_secs()).unwrap_or(0),
        });
    }
    if let Some(e) = read_error {
        return Err(read_err(e));
    }
    let status = status.map_err(|e| RestoreError::Sql {
        db: target.name.clone(),
        detail: format!("waiting for psql failed: {e}"),
        line: None,
        privilege: false,
    })?;
    if !status.success() {
        let text = env.scrub(&lines.join("\n"));
        let (detail, hint, is_connect) = env.classify(&text);
        if is_connect || status.code() == Some(2) {
            return Err(connect_error(target, detail, hint));
        }
        // psql's own words: "psql:<stdin>:LINE: ERROR: ...", then DETAIL/HINT/CONTEXT lines.
        let first_error = lines.iter().position(|l| l.contains("ERROR:")).unwrap_or(0);
        let line = lines
            .get(first_error)
            .and_then(|l| l.strip_prefix("psql:<stdin>:"))
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse::<u64>().ok());
        let mut detail = lines[first_error..]
            .iter()
            .take(8)
            .map(|l| l.trim())
            .map(|l| match l.strip_prefix("psql:<stdin>:") {
                Some(rest) => rest.split_once(": ").map(|x| x.1).unwrap_or(rest),
                None => l,
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let privilege = is_privilege_error(&detail);
        if let Some(n) = line {
            if let Some(context) = dump_lines(data, &unpack, n) {
                detail.push_str(&format!("\n  the dump around line {n}:\n{context}"));
            }
        }
        return Err(RestoreError::Sql {
            db: target.name.clone(),
            detail: if detail.is_empty() {
                describe_status(status)
            } else {
                detail
            },
            line,
            privilege,
        });
    }
    Ok((read_so_far.get(), raw))
}

/// Options of a restore of a custom archive through pg_restore.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveRestore<'a> {
    /// Parallel jobs (`pg_restore -j`; 1 with `single_transaction`).
    pub jobs: u32,
    /// Skip ownership and privileges (`--no-owner --no-privileges`).
    pub no_owner: bool,
    /// One transaction (`--single-transaction`; pg_restore then runs one job).
    pub single_transaction: bool,
    /// Only these schemas (`--schema`), when any.
    pub schemas: &'a [String],
    /// Only these tables (`--table`), when any.
    pub tables: &'a [String],
    /// Stop pg_restore after this long.
    pub timeout: Option<Duration>,
}

/// Restore the uncompressed custom archive at `archive` (a seekable file: pg_restore -j reads
/// its data blocks in any order), or the directory-format dump in the directory `archive`,
/// into `target`, stopping at the first error.
pub fn restore_archive(
    tools: &PgTools,
    target: &Target,
    archive: &Path,
    opts: ArchiveRestore<'_>,
    cancel: &crate::run::Cancel,
) -> Result<(), RestoreError> {
    let env = ClientEnv::new(target, "pg_restore", "pg-restore-path")?;
    let mut cmd = Command::new(&tools.pg_restore);
    cmd.args(["--no-password", "--exit-on-error"]);
    cmd.arg(if archive.is_dir() {
        "--format=directory"
    } else {
        "--format=custom"
    });
    if opts.single_transaction {
        cmd.arg("--single-transaction");
    } else {
        cmd.arg(format!("--jobs={}", opts.jobs.max(1)));
    }
    if opts.no_owner {
        cmd.args(["--no-owner", "--no-privileges"]);
    }
    if !(opts.schemas.is_empty() && opts.tables.is_empty()) {
        cmd.arg("--strict-names");
    }
    for s in opts.schemas {
        cmd.arg(format!("--schema={s}"));
    }
    for t in opts.tables {
        cmd.arg(format!("--table={t}"));
    }
    cmd.arg(dbname_arg(&target.conn)).arg(archive);
    env.apply(&mut cmd);
    cmd.stdin(Stdio::null());
    let (mut child, watchdog, stderr) = start_client(
        cmd,
        &tools.pg_restore,
        "pg-restore-path",
        target,
        opts.timeout,
        cancel,
    )?;
    let pid = child.id();
    let status = cancel.reap(pid, || child.wait());
    let timed_out = watchdog.is_some_and(Watchdog::stop);
    let lines = stderr.join().unwrap_or_default();
    if timed_out {
        return Err(RestoreError::Timeout {
            db: target.name.clone(),
            secs: opts.timeout.map(|d| d.as_secs()).unwrap_or(0),
        });
    }
    let status = status.map_err(|e| RestoreError::Sql {
        db: target.name.clone(),
        detail: format!("waiting for pg_restore failed: {e}"),
        line: None,
        privilege: false,
    })?;
    if status.success() {
        return Ok(());
    }
    let text = env.scrub(&lines.join("\n"));
    let (detail, hint, is_connect) = env.classify(&text);
    if is_connect {
        return Err(connect_error(target, detail, hint));
    }
    // "pg_restore: error: could not execute query: ERROR:  ...", then "Command was: ...".
    let shown: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("pg_restore: warning:"))
        .map(|l| {
            let l = l
                .trim_start_matches("pg_restore: ")
                .trim_start_matches("error: ");
            let mut c: String = l.chars().take(300).collect();
            if l.chars().count() > 300 {
                c.push_str(" ...");
            }
            crate::text::escape_control(&c)
        })
        .take(8)
        .collect();
    let detail = if shown.is_empty() {
        describe_status(status)
    } else {
        shown.join(" | ")
    };
    let privilege = is_privilege_error(&detail);
    Err(RestoreError::Sql {
        db: target.name.clone(),
        detail,
        line: None,
        privilege,
    })
}

/// Lines `n-2..=n+2` of the (gzip) dump at `data`, numbered, each cut at 200 characters and
/// with control characters escaped; read once more after a failure, streamed.
fn dump_lines(data: &Path, unpack: &crate::codec::Unpack, n: u64) -> Option<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(data).ok()?;
    let reader = std::io::BufReader::new(crate::codec::unpack(unpack, file));
    let first = n.saturating_sub(2).max(1);
    let mut out = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let no = i as u64 + 1;
        if no > n + 2 {
            break;
        }
        let line = line.ok()?;
        if no >= first {
            let text = String::from_utf8_lossy(&line);
            let mut shown: String = text.chars().take(200).collect();
            if text.chars().count() > 200 {
                shown.push_str(" ...");
            }
            out.push(format!(
                "  {} {no:>6}| {}",
                if no == n { ">" } else { " " },
                crate::text::escape_control(&shown)
            ));
        }
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| s.to_string());
            format!("killed by signal {name}")
        }
        _ => "unknown status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors() {
        assert_eq!(major_version("15.18"), Some(15));
        assert_eq!(major_version("9.6.24"), Some(9));
        assert_eq!(major_version("17beta1"), Some(17));
        assert_eq!(major_version("x"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(r#"we"ird; DROP"#), r#""we""ird; DROP""#);
        assert_eq!(quote_literal("o'neil"), "'o''neil'");
    }

    /// A refused password names where the user put it, never the memfd the child read it from.
    #[test]
    fn refused_password_names_its_source() {
        let target = Target {
            name: "shop".into(),
            conn: ConnInfo::parse("host=db user=app").unwrap(),
            password: Some(Secret::new("pw")),
            password_source: Some("password-file /etc/pgbackup/shop.pass".into()),
        };
        let env = ClientEnv::new(&target, "psql", "psql-path").unwrap();
        let fd = env.passfile_path().unwrap();
        let stderr = format!("pg_dump: error: connection to server at \"db\" (10.0.0.1), port 5432 failed: FATAL:  password authentication failed for user \"app\"\npassword retrieved from file \"{fd}\"\n");
        let (detail, hint, is_connect) = env.classify(&env.scrub(&stderr));
        assert!(is_connect);
        assert_eq!(detail, "connection to server at \"db\" (10.0.0.1), port 5432 failed: FATAL: password authentication failed for user \"app\"");
        assert_eq!(
            hint,
            "check the password in password-file /etc/pgbackup/shop.pass and the user name"
        );
    }

    /// Debian's pg_wrapper is skipped only when one installed version leaves it no choice.
    #[test]
    fn pg_wrapper_is_skipped_when_one_version_is_installed() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("usr/bin");
        let common = t.path().join("usr/share/postgresql-common");
        let lib = t.path().join("usr/lib/postgresql");
        for d in [&bin, &common, &lib.join("15/bin")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(common.join("pg_wrapper"), "#!/usr/bin/perl\n").unwrap();
        std::os::unix::fs::symlink("../share/postgresql-common/pg_wrapper", bin.join("psql"))
            .unwrap();
        std::fs::write(lib.join("15/bin/psql"), "").unwrap();
        let path = Some(bin.clone().into_os_string());
        assert_eq!(
            unwrapped_in("psql", path.clone(), &lib),
            Some(lib.join("15/bin/psql"))
        );
        // Two versions: pg_wrapper decides.
        std::fs::create_dir_all(lib.join("16/bin")).unwrap();
        std::fs::write(lib.join("16/bin/psql"), "").unwrap();
        assert_eq!(unwrapped_in("psql", path.clone(), &lib), None);
        // A psql that is not the wrapper is kept as PATH finds it.
        std::fs::remove_file(bin.join("psql")).unwrap();
        std::fs::write(bin.join("psql"), "").unwrap();
        assert_eq!(unwrapped_in("psql", path, &lib), None);
    }

    #[test]
    fn passfile_escaping() {
        assert_eq!(escape_passfile(r"a:b\c"), r"a\:b\\c");
    }

    #[test]
    fn classification() {
        let (d, h, c) = classify("psql: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n", None);
        assert!(c);
        assert_eq!(d, "connection to server at \"127.0.0.1\", port 1 failed: Connection refused; Is the server running on that host and accepting TCP/IP connections?");
        assert!(h.contains("server running"));
        let (_, h, _) = classify("psql: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"x\"", None);
        assert!(
            h.contains("password-file, password-credential, or PGPASSFILE"),
            "{h}"
        );
        let (_, h, _) = classify(
            "connection to server on socket failed: FATAL:  database \"nope\" does not exist",
            None,
        );
        assert!(h.contains("database name"));
    }
}
