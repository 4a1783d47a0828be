//! The crate's error type and the one place where errors become exit codes.
//!
//! Rules:
//! - Modules return typed errors that carry the object they are about (database, path, key).
//! - Messages are lowercase, name the problem, and end with what to do when there is something
//!   the operator can do ("...; check password-file").
//! - An error is logged exactly once, by `main`, after the command returned it.
//! - Secrets never reach a message: connection strings are shown masked (`ConnInfo::masked`).
//!
//! Exit codes: the one table is [`crate::exit`]; the one mapping is at the end of this file.

use std::fmt;
use std::path::PathBuf;

use crate::postgres::{DumpError, PgError, RestoreError};
use crate::s3::S3Failure;

/// Exit code: success.
pub const EXIT_OK: u8 = crate::exit::ExitClass::Ok.code();
/// Exit code: a backup or verification failed.
pub const EXIT_FAILED: u8 = crate::exit::ExitClass::Failed.code();
/// Exit code: usage error.
pub const EXIT_USAGE: u8 = crate::exit::ExitClass::Usage.code();
/// Exit code: corrupt or incomplete backup.
pub const EXIT_DATAERR: u8 = crate::exit::ExitClass::DataErr.code();
/// Exit code: database or storage unreachable.
pub const EXIT_UNAVAILABLE: u8 = crate::exit::ExitClass::Unavailable.code();
/// Exit code: cannot create output.
pub const EXIT_CANTCREAT: u8 = crate::exit::ExitClass::CantCreat.code();
/// Exit code: another run holds the lock.
pub const EXIT_TEMPFAIL: u8 = crate::exit::ExitClass::TempFail.code();
/// Exit code: configuration error.
pub const EXIT_CONFIG: u8 = crate::exit::ExitClass::Config.code();

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can make a pgbackup command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was wrong in a way clap could not see.
    #[error("{0}")]
    Usage(String),

    /// The configuration has one or more problems; all of them are listed.
    #[error("{0}")]
    Config(ConfigProblems),

    /// Another pgbackup run holds the lock.
    #[error("another pgbackup run{} holds the lock {}; wait for it to finish (or check `pgbackup status`)",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), .path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, when it could be read.
        pid: Option<i32>,
    },

    /// A file or directory could not be created or written.
    #[error("cannot write {what} {}: {source}{}", .path.display(), hint_for_io(.source))]
    Output {
        /// What was being written ("backup directory", "lock file", ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", .path.display())]
    Input {
        /// What was being read.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A PostgreSQL server could not be reached or refused us.
    #[error("{0}")]
    Postgres(#[from] crate::postgres::PgError),

    /// A Redis server could not be reached, refused us, or sent a snapshot that is not whole.
    #[error("{0}")]
    Redis(#[from] crate::redis::RedisError),

    /// One or more databases failed to back up (each was already reported).
    #[error("{failed} of {} failed: {names}", crate::text::count(*.total as u64, .what.0, .what.1))]
    BackupsFailed {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        total: usize,
        /// What they are: "database backup(s)", "Redis snapshot(s)", or "backup(s)" for both.
        what: (&'static str, &'static str),
        /// The failed databases, comma separated.
        names: String,
        /// The exit code that describes the failures best.
        code: u8,
    },

    /// pg_dump failed.
    #[error(transparent)]
    Dump(#[from] crate::postgres::DumpError),

    /// pg_dump exited 0 but the dump is not complete.
    #[error("the dump of {db} is not whole although pg_dump exited 0: {why}; the backup was discarded (check the server log and pg-dump-args)")]
    Incomplete {
        /// Database.
        db: String,
        /// What the format's observer found.
        why: String,
    },

    /// A backup file is corrupt or incomplete.
    #[error("{0}")]
    Corrupt(String),

    /// One or more backups failed verification (each was already reported).
    #[error("{failed} of {} failed verification", crate::text::count(*.total as u64, "backup", "backups"))]
    VerifyFailed {
        /// How many failed.
        failed: usize,
        /// How many were verified.
        total: usize,
        /// 65 when corrupt, 69 when a server was unreachable, else 1.
        code: u8,
    },

    /// The command already said everything (e.g. `check`'s one line); exit with this code.
    #[error("")]
    Silent(u8),

    /// S3 storage failed.
    #[error(transparent)]
    S3(#[from] crate::s3::S3Failure),

    /// The operator answered no.
    #[error("cancelled; nothing was changed")]
    Cancelled,

    /// A restore failed.
    #[error(transparent)]
    Restore(#[from] crate::postgres::RestoreError),

    /// A signal stopped the run.
    #[error("interrupted by {}: the backup in progress was discarded and no further database was started", crate::signals::name(*.0))]
    Interrupted(i32),
}

fn hint_for_io(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match e.raw_os_error() {
        Some(28) => "; the disk is full: free space or point [storage] local-dir elsewhere",
        Some(30) => "; the file system is read-only",
        _ => match e.kind() {
            ErrorKind::PermissionDenied => {
                "; check ownership and permissions (the service runs as the pgbackup user)"
            }
            ErrorKind::NotFound => "; does the parent directory exist?",
            _ => "",
        },
    }
}

impl Error {
    /// An I/O error of a storage stream (an S3 object reader or writer carries its failure in
    /// the io::Error): the S3 failure comes out as itself, with its exit code; anything else as
    /// `other(e)` (disk full, a local read error).
    pub fn from_stream(e: std::io::Error, other: impl FnOnce(std::io::Error) -> Error) -> Error {
        if !e.get_ref().is_some_and(|i| i.is::<S3Failure>()) {
            return other(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|i| i.downcast::<S3Failure>()) {
            Some(Ok(f)) => Error::S3(*f),
            Some(Err(inner)) => other(std::io::Error::new(kind, inner)),
            None => other(std::io::Error::from(kind)),
        }
    }

    /// The process exit code for this error (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        of_error(self)
    }
}

impl PgError {
    /// The exit code (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        of_pg(self)
    }
}

impl RestoreError {
    /// The exit code (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        of_restore(self)
    }
}

impl S3Failure {
    /// The exit code (see [`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        of_s3(self)
    }
}

/// One configuration problem: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where: `file: key`, or an environment variable.
    pub place: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// All configuration problems found in one pass.
#[derive(Debug, Clone, Default)]
pub struct ConfigProblems(pub Vec<ConfigProblem>);

impl ConfigProblems {
    /// Record a problem.
    pub fn push(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            place: place.into(),
            message: message.into(),
        });
    }

    /// Whether any problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "configuration error{}:", if n == 1 { "" } else { "s" })?;
        for p in &self.0 {
            write!(f, "\n  {}: {}", p.place, p.message)?;
        }
        Ok(())
    }
}

impl From<ConfigProblems> for Error {
    fn from(p: ConfigProblems) -> Self {
        Error::Config(p)
    }
}
// ------------------------------------------------------------------------------------------------
// The mapping: the one place that decides which failure is which code. The `exit_code()` of
// every error type is here, next to the others, so that no two can disagree.

/// The class of a run's error.
pub fn of_error(e: &Error) -> u8 {
    use crate::exit::ExitClass as C;
    match e {
        Error::Usage(_) => C::Usage.code(),
        Error::Config(_) => C::Config.code(),
        Error::Locked { .. } => C::TempFail.code(),
        Error::Output { .. } => C::CantCreat.code(),
        Error::Input { .. } => C::Failed.code(),
        Error::Postgres(e) => of_pg(e),
        Error::Redis(
            crate::redis::RedisError::Incomplete { .. } | crate::redis::RedisError::Restore { .. },
        ) => C::Failed.code(),
        Error::Redis(_) => C::Unavailable.code(),
        Error::BackupsFailed { code, .. } => *code,
        Error::Dump(e) => of_dump(e),
        Error::Incomplete { .. } => C::Failed.code(),
        Error::Corrupt(_) => C::DataErr.code(),
        Error::VerifyFailed { code, .. } => *code,
        Error::Restore(e) => of_restore(e),
        Error::Cancelled => C::Failed.code(),
        Error::S3(e) => of_s3(e),
        Error::Silent(code) => *code,
        Error::Interrupted(sig) => 128u8.saturating_add(*sig as u8),
    }
}

/// PostgreSQL: unreachable or refusing is 69, an old pg_dump a configuration matter.
pub fn of_pg(e: &PgError) -> u8 {
    use crate::exit::ExitClass as C;
    match e {
        PgError::Connect { .. } | PgError::Spawn { .. } => C::Unavailable.code(),
        PgError::Query { .. } => C::Failed.code(),
        PgError::VersionMismatch { .. } => C::Config.code(),
    }
}

/// pg_dump: a connection failure is the server's, anything else the dump's.
pub fn of_dump(e: &DumpError) -> u8 {
    match e {
        DumpError::Pg(e) => of_pg(e),
        _ => crate::exit::ExitClass::Failed.code(),
    }
}

/// A restore: a failing statement or time limit is 1, an unreadable backup 65.
pub fn of_restore(e: &RestoreError) -> u8 {
    use crate::exit::ExitClass as C;
    match e {
        RestoreError::Pg(e) => of_pg(e),
        RestoreError::Sql { .. } | RestoreError::Timeout { .. } => C::Failed.code(),
        RestoreError::Read { .. } => C::DataErr.code(),
    }
}

/// S3: unreachable or refusing is 69, configuration 78, local I/O 73.
pub fn of_s3(e: &S3Failure) -> u8 {
    use crate::exit::ExitClass as C;
    match e {
        S3Failure::ReadOnly { .. } => C::Usage.code(),
        S3Failure::Read { .. } => C::CantCreat.code(),
        S3Failure::NoCredentials { .. }
        | S3Failure::LockNotEnabled { .. }
        | S3Failure::Config { .. } => C::Config.code(),
        _ => C::Unavailable.code(),
    }
}
