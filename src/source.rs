//! What produces a backup's stream, and how its end is judged. The pipeline and the storage do
//! not know what made the bytes: `pg_dump` ([`PgDump`]) is the first source;
//! `pg_basebackup`, `pg_dumpall --globals-only` and Redis slot in as more implementations, and
//! the fast test tier drives backups with a [`ScriptedSource`] (no PostgreSQL, milliseconds).

use std::io::Read;
use std::time::Duration;

use crate::chain::Format;
use crate::config::{Config, Database};
use crate::dbprops::DatabaseInfo;
use crate::error::{Error, Result};
use crate::postgres::{major_version, DumpError, DumpProcess, PgError, PgTools, Psql, Target};

/// Where a stream came from, as the manifest records it (never a credential).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The database's name on the server.
    pub dbname: String,
    /// `host:port`.
    pub host: String,
    /// The producing program's version (`pg_dump --version`).
    pub program_version: String,
}

/// A producer of one backup's stream.
///
/// The backup calls, in order: [`facts`](Source::facts), [`start`](Source::start), then reads
/// the stream to its end (or [`kill`](Source::kill)s the source when the write side failed), then
/// [`finish`](Source::finish), whose error means the backup must not become visible.
pub trait Source {
    /// The stream's format: the chain's first stage, and with it the observer that reads it.
    fn format(&self) -> Format;

    /// Where the stream comes from, for the manifest.
    fn origin(&self) -> Origin;

    /// Facts gathered just before the stream starts (server version, size, what the format
    /// leaves out); an error when this source cannot produce a faithful stream of it.
    fn facts(&mut self) -> Result<DatabaseInfo>;

    /// Start producing; the stream is read to its end.
    fn start(&mut self) -> Result<Box<dyn Read + Send>>;

    /// Stop producing now (writing the stream failed); `finish` is still called.
    fn kill(&mut self);

    /// Something the facts showed that the run should say (a limit of the role).
    fn note(&self) -> Option<String> {
        None
    }

    /// Judge the end: the producer's exit status and messages, and `incomplete`, why the
    /// format's observer did not see a whole stream (`None`: it did).
    fn finish(&mut self, incomplete: Option<String>) -> Result<()>;
}

/// A server newer than the client (`client_version`, its `--version`) is refused: the client
/// would refuse it too, after a connection.
fn refuse_newer_server(target: &Target, client_version: &str, server_version: &str) -> Result<()> {
    if let (Some(s), Some(d)) = (major_version(server_version), major_version(client_version)) {
        if s > d {
            return Err(PgError::VersionMismatch {
                db: target.name.clone(),
                dump_version: client_version.to_string(),
                server_version: server_version.to_string(),
                server_major: s,
            }
            .into());
        }
    }
    Ok(())
}

/// `pg_dump` of one database, in the plain or the custom format.
#[derive(Debug)]
pub struct PgDump<'a> {
    format: Format,
    tools: &'a PgTools,
    version: &'a str,
    target: &'a Target,
    extra_args: &'a [String],
    timeout: Option<Duration>,
    cancel: &'a crate::run::Cancel,
    process: Option<DumpProcess>,
}

impl<'a> PgDump<'a> {
    /// The dump of a configured database: its target and extra arguments, the configured
    /// format and time limit, for the job `cancel`.
    pub fn of(
        cfg: &Config,
        tools: &'a PgTools,
        version: &'a str,
        db: &'a Database,
        cancel: &'a crate::run::Cancel,
    ) -> Self {
        Self::new(
            tools,
            version,
            &db.target,
            &db.pg_dump_args,
            cfg.dump_timeout,
            cancel,
        )
        .in_format(cfg.format)
    }

    /// The same dump in `format`.
    pub fn in_format(self, format: Format) -> Self {
        PgDump { format, ..self }
    }

    /// A dump of `target` by the pg_dump of `tools` (its `--version` is `version`), with the
    /// configured extra arguments and time limit, for the job `cancel` (which stops it).
    pub fn new(
        tools: &'a PgTools,
        version: &'a str,
        target: &'a Target,
        extra_args: &'a [String],
        timeout: Option<Duration>,
        cancel: &'a crate::run::Cancel,
    ) -> Self {
        PgDump {
            format: Format::Plain,
            tools,
            version,
            target,
            extra_args,
            timeout,
            cancel,
            process: None,
        }
    }
}

impl Source for PgDump<'_> {
    fn format(&self) -> Format {
        self.format
    }

    fn origin(&self) -> Origin {
        Origin {
            dbname: self
                .target
                .conn
                .get("dbname")
                .unwrap_or_default()
                .to_string(),
            host: self.target.conn.host_port(),
            program_version: self.version.to_string(),
        }
    }

    /// Settings, comment, locale and extensions: what the plain dump leaves out (just before
    /// the dump; a change in between is as likely as one right after it). A server newer than
    /// pg_dump is refused: pg_dump would refuse it too, after a connection.
    fn facts(&mut self) -> Result<DatabaseInfo> {
        let info = crate::dbprops::capture(&Psql::new(self.tools, self.target))?;
        refuse_newer_server(self.target, self.version, &info.server_version)?;
        Ok(info)
    }

    fn start(&mut self) -> Result<Box<dyn Read + Send>> {
        let (process, stdout) = DumpProcess::spawn(
            self.tools,
            self.target,
            self.format,
            self.extra_args,
            self.timeout,
            self.cancel,
        )?;
        self.process = Some(process);
        Ok(Box::new(stdout))
    }

    fn kill(&mut self) {
        if let Some(p) = self.process.as_mut() {
            p.kill();
        }
    }

    fn finish(&mut self, incomplete: Option<String>) -> Result<()> {
        if let Some(p) = self.process.take() {
            p.finish(self.timeout.map(|d| d.as_secs()).unwrap_or(0))?;
        }
        if let Some(why) = incomplete {
            return Err(Error::Incomplete {
                db: self.target.name.clone(),
                why,
            });
        }
        Ok(())
    }
}

/// `pg_dumpall --globals-only` of one server: roles, memberships, role settings and
/// tablespaces. A role that is not a superuser cannot read the password hashes (pg_authid):
/// then `--no-role-passwords`, and a note says so.
#[derive(Debug)]
pub struct PgDumpAll<'a> {
    dump: PgDump<'a>,
    args: Vec<String>,
    /// What [`Source::facts`] found worth saying (the passwords left out).
    pub note: Option<String>,
}

impl<'a> PgDumpAll<'a> {
    /// The globals of the server `target` points at (any database on it), by the pg_dumpall
    /// beside `tools`' pg_dump (whose `--version` is `version`).
    pub fn new(
        tools: &'a PgTools,
        version: &'a str,
        target: &'a Target,
        timeout: Option<Duration>,
        cancel: &'a crate::run::Cancel,
    ) -> Self {
        PgDumpAll {
            dump: PgDump::new(tools, version, target, &[], timeout, cancel)
                .in_format(Format::Globals),
            args: Vec::new(),
            note: None,
        }
    }
}

impl Source for PgDumpAll<'_> {
    fn format(&self) -> Format {
        Format::Globals
    }

    fn origin(&self) -> Origin {
        Origin {
            dbname: "(cluster globals)".into(),
            ..self.dump.origin()
        }
    }

    fn facts(&mut self) -> Result<DatabaseInfo> {
        let psql = Psql::new(self.dump.tools, self.dump.target);
        let rows = psql.query(
            "SELECT current_setting('server_version'), \
             (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        )?;
        let row = rows.first().cloned().unwrap_or_default();
        let server_version = row.first().cloned().unwrap_or_default();
        if row.get(1).map(String::as_str) != Some("t") {
            self.args = vec!["--no-role-passwords".into()];
            self.note = Some(format!(
                "{}: the role is not a superuser and cannot read pg_authid: the globals are dumped with --no-role-passwords (roles restored from them have no password until one is set)",
                self.dump.target.name
            ));
        }
        refuse_newer_server(self.dump.target, self.dump.version, &server_version)?;
        Ok(DatabaseInfo {
            server_version,
            ..DatabaseInfo::default()
        })
    }

    fn start(&mut self) -> Result<Box<dyn Read + Send>> {
        let (process, stdout) = DumpProcess::spawn(
            self.dump.tools,
            self.dump.target,
            Format::Globals,
            &self.args,
            self.dump.timeout,
            self.dump.cancel,
        )?;
        self.dump.process = Some(process);
        Ok(Box::new(stdout))
    }

    fn note(&self) -> Option<String> {
        self.note.clone()
    }

    fn kill(&mut self) {
        self.dump.kill();
    }

    fn finish(&mut self, incomplete: Option<String>) -> Result<()> {
        self.dump.finish(incomplete)
    }
}

/// A source that plays a script: facts, a stream, and how it ends. For the fast test tier
/// (backups against [`MemoryStorage`](crate::storage::MemoryStorage) in milliseconds).
#[derive(Debug, Clone, Default)]
pub struct ScriptedSource {
    /// The database name the errors carry.
    pub name: String,
    /// What [`Source::facts`] returns.
    pub facts: DatabaseInfo,
    /// The stream.
    pub stream: Vec<u8>,
    /// When set, the producer "exits" with this message: `finish` fails as a failed pg_dump.
    pub fails_with: Option<String>,
    /// Whether `start` was called (a skipped backup never starts its source).
    pub started: bool,
    /// Whether `kill` was called.
    pub killed: bool,
}

impl Source for ScriptedSource {
    fn format(&self) -> Format {
        Format::Plain
    }

    fn origin(&self) -> Origin {
        Origin {
            dbname: self.name.clone(),
            host: "scripted:0".into(),
            program_version: "pg_dump (PostgreSQL) 15.0".into(),
        }
    }

    fn facts(&mut self) -> Result<DatabaseInfo> {
        Ok(self.facts.clone())
    }

    fn start(&mut self) -> Result<Box<dyn Read + Send>> {
        self.started = true;
        Ok(Box::new(std::io::Cursor::new(self.stream.clone())))
    }

    fn kill(&mut self) {
        self.killed = true;
    }

    fn finish(&mut self, incomplete: Option<String>) -> Result<()> {
        if let Some(detail) = &self.fails_with {
            return Err(Error::Dump(DumpError::Failed {
                db: self.name.clone(),
                status: "exit status 1".into(),
                detail: detail.clone(),
            }));
        }
        if let Some(why) = incomplete {
            return Err(Error::Incomplete {
                db: self.name.clone(),
                why,
            });
        }
        Ok(())
    }
}
