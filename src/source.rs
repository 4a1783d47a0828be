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

    /// What a Redis server said of itself (role, version, key counts), for the manifest.
    fn redis_facts(&self) -> Option<crate::catalog::RedisFacts> {
        None
    }
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

/// `pg_dump` of one database, in the plain, custom or directory format.
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
    /// The directory format: pg_dump's jobs, where its temp directory goes, and the directory
    /// (removed when the dump is dropped).
    dump_jobs: u32,
    temp_root: std::path::PathBuf,
    dir: Option<tempfile::TempDir>,
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
        let dump = Self::new(
            tools,
            version,
            &db.target,
            &db.pg_dump_args,
            cfg.dump_timeout,
            cancel,
        )
        .in_format(cfg.format);
        PgDump {
            dump_jobs: cfg.dump_jobs,
            temp_root: cfg.temp_root(None),
            ..dump
        }
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
            dump_jobs: 1,
            temp_root: std::env::temp_dir(),
            dir: None,
        }
    }

    /// The directory format: `pg_dump -Fd -j N` into a private temp directory, streamed as
    /// one tar while it runs: each data file goes into the stream (and is removed) as soon as
    /// pg_dump closes it, `toc.dat` (written last) at the end. Its exit is judged in
    /// [`Source::finish`], like a plain dump's.
    fn start_directory(&mut self) -> Result<Box<dyn Read + Send>> {
        let dir = tempfile::Builder::new()
            .prefix(crate::catalog::TEMP_PREFIX)
            .tempdir_in(&self.temp_root)
            .map_err(|source| Error::Output {
                what: "temp directory for pg_dump's directory format",
                path: self.temp_root.clone(),
                source,
            })?;
        // pg_dump takes an empty directory; it exists now so that it can be watched first.
        let out = dir.path().join("dump");
        let watched = std::fs::create_dir(&out)
            .and_then(|()| DirectoryTar::watch(&out))
            .map_err(|source| Error::Output {
                what: "temp directory for pg_dump's directory format",
                path: out.clone(),
                source,
            })?;
        // --no-sync: pgbackup fsyncs what it keeps, and pg_dump's own pass would reopen the
        // files that were already streamed and removed.
        let mut args = vec![
            format!("--jobs={}", self.dump_jobs.max(1)),
            "--no-sync".to_string(),
            format!("--file={}", out.display()),
        ];
        args.extend(self.extra_args.iter().cloned());
        let (process, stdout) = DumpProcess::spawn(
            self.tools,
            self.target,
            Format::Directory,
            &args,
            self.timeout,
            self.cancel,
        )?;
        self.process = Some(process);
        self.dir = Some(dir);
        Ok(Box::new(DirectoryTar::new(out, watched, stdout)))
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
        if self.format == Format::Directory {
            return self.start_directory();
        }
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
            let judged = p.finish(self.timeout.map(|d| d.as_secs()).unwrap_or(0));
            // The directory format writes to disk itself: its full disk is ours to name (73),
            // as the plain format's is.
            if let (Format::Directory, Err(DumpError::Failed { detail, .. })) =
                (self.format, &judged)
            {
                if detail.contains("No space left on device") {
                    return Err(Error::Output {
                        what: "temp directory for pg_dump's directory format",
                        path: self.temp_root.clone(),
                        source: std::io::Error::from_raw_os_error(28),
                    });
                }
            }
            judged?;
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

/// The files of a directory-format dump as one tar stream, while pg_dump writes them: a file
/// enters the stream when pg_dump closes it (inotify `IN_CLOSE_WRITE`; pg_dump writes each
/// file once) and is removed once streamed, so the temp directory holds only the files not
/// streamed yet. When pg_dump's stdout closes (it and its workers have exited), what is left
/// (`toc.dat`, and anything whose event was lost) follows, then the end marker. GNU headers,
/// mode 0600, no owner, time 0. Memory: one file's header and the read buffer.
#[derive(Debug)]
pub struct DirectoryTar {
    dir: std::path::PathBuf,
    watch: Option<nix::sys::inotify::Inotify>,
    stdout: Option<std::process::ChildStdout>,
    ready: std::collections::VecDeque<String>,
    streamed: std::collections::HashSet<String>,
    state: TarPart,
}

#[derive(Debug)]
enum TarPart {
    /// Before the next file.
    Next,
    /// A file's header (`pos` bytes of it given), then its body.
    Header {
        name: String,
        bytes: Box<[u8; 512]>,
        pos: usize,
        body: std::io::Take<std::fs::File>,
        size: u64,
    },
    /// A file's body, `left` bytes of it to come.
    Body {
        name: String,
        body: std::io::Take<std::fs::File>,
        left: u64,
        pad: usize,
    },
    /// Zeros: a body's padding to 512 bytes, then the next file.
    Pad(usize),
    /// The end-of-archive marker, `left` zeros to come.
    Trailer(usize),
}

impl DirectoryTar {
    /// Watch `dir` for files pg_dump finishes.
    pub fn watch(dir: &std::path::Path) -> std::io::Result<nix::sys::inotify::Inotify> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let i = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        i.add_watch(dir, AddWatchFlags::IN_CLOSE_WRITE)?;
        Ok(i)
    }

    /// The tar of what pg_dump writes into `dir` (watched by `watch`) until `stdout`, its
    /// standard output, closes.
    pub fn new(
        dir: std::path::PathBuf,
        watch: nix::sys::inotify::Inotify,
        stdout: std::process::ChildStdout,
    ) -> Self {
        DirectoryTar {
            dir,
            watch: Some(watch),
            stdout: Some(stdout),
            ready: Default::default(),
            streamed: Default::default(),
            state: TarPart::Next,
        }
    }

    /// Take the files closed since the last look.
    fn take_events(&mut self) -> std::io::Result<()> {
        let Some(w) = &self.watch else { return Ok(()) };
        loop {
            match w.read_events() {
                Ok(events) if events.is_empty() => return Ok(()),
                Ok(events) => {
                    for e in events {
                        if let Some(name) = e.name.and_then(|n| n.into_string().ok()) {
                            if !self.ready.contains(&name) {
                                self.ready.push_back(name);
                            }
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Wait until a file is ready or pg_dump has ended.
    fn wait(&mut self) -> std::io::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let (Some(w), Some(out)) = (&self.watch, &self.stdout) else {
            return Ok(());
        };
        let mut fds = [
            PollFd::new(w.as_fd(), PollFlags::POLLIN),
            PollFd::new(out.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let out_ready = fds[1].revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
        });
        if out_ready {
            let mut buf = [0u8; 4096];
            let ended = match self.stdout.as_mut().map(|o| o.read(&mut buf)) {
                Some(Ok(0)) | Some(Err(_)) | None => true,
                Some(Ok(_)) => false, // pg_dump writes nothing here; ignore it
            };
            if ended {
                self.stdout = None;
            }
        }
        self.take_events()
    }

    /// The next file to stream: a closed one, else (pg_dump ended) whatever is left in the
    /// directory, `toc.dat` last; `None` when all is streamed.
    fn next_file(&mut self) -> std::io::Result<Option<String>> {
        loop {
            self.take_events()?;
            while let Some(name) = self.ready.pop_front() {
                if !self.streamed.contains(&name) {
                    return Ok(Some(name));
                }
            }
            if self.stdout.is_some() {
                self.wait()?;
                continue;
            }
            // pg_dump has ended: the last events, then what no event named.
            if self.watch.is_some() {
                self.take_events()?;
                self.watch = None;
                continue;
            }
            let mut left = Vec::new();
            for e in std::fs::read_dir(&self.dir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !e.file_type()?.is_file() || !crate::archive::is_data_file_name(&name) {
                    return Err(std::io::Error::other(format!(
                        "\"{}\" in pg_dump's directory is not one of its data files",
                        name.escape_default()
                    )));
                }
                if self.streamed.contains(&name) {
                    return Err(std::io::Error::other(format!(
                        "pg_dump wrote {name} a second time after it was streamed"
                    )));
                }
                left.push(name);
            }
            left.sort_by_key(|n| (n == "toc.dat", n.clone()));
            if left.is_empty() {
                return Ok(None);
            }
            self.ready.extend(left);
        }
    }
}

fn zeros(buf: &mut [u8], n: usize) -> usize {
    let n = n.min(buf.len());
    buf[..n].fill(0);
    n
}

impl Read for DirectoryTar {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.state {
                TarPart::Next => {
                    let Some(name) = self.next_file()? else {
                        self.state = TarPart::Trailer(1024);
                        continue;
                    };
                    let file = std::fs::File::open(self.dir.join(&name))?;
                    let size = file.metadata()?.len();
                    let mut h = tar::Header::new_gnu();
                    h.set_path(&name)?;
                    h.set_size(size);
                    h.set_mode(0o600);
                    h.set_mtime(0);
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_cksum();
                    self.state = TarPart::Header {
                        name,
                        bytes: Box::new(*h.as_bytes()),
                        pos: 0,
                        body: file.take(size),
                        size,
                    };
                }
                TarPart::Header { bytes, pos, .. } if *pos < 512 => {
                    let n = (512 - *pos).min(buf.len());
                    buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                    *pos += n;
                    return Ok(n);
                }
                TarPart::Header { .. } => {
                    let TarPart::Header {
                        name, body, size, ..
                    } = std::mem::replace(&mut self.state, TarPart::Next)
                    else {
                        unreachable!("matched above")
                    };
                    let pad = ((512 - size % 512) % 512) as usize;
                    self.state = TarPart::Body {
                        name,
                        body,
                        left: size,
                        pad,
                    };
                }
                TarPart::Body { left: 0, .. } => {
                    let TarPart::Body { name, pad, .. } =
                        std::mem::replace(&mut self.state, TarPart::Next)
                    else {
                        unreachable!("matched above")
                    };
                    // Streamed: its space is given back now.
                    std::fs::remove_file(self.dir.join(&name))?;
                    self.streamed.insert(name);
                    self.state = TarPart::Pad(pad);
                }
                TarPart::Body { body, left, .. } => {
                    let want = (*left).min(buf.len() as u64) as usize;
                    let n = body.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "a file of pg_dump's directory shrank while it was read",
                        ));
                    }
                    *left -= n as u64;
                    return Ok(n);
                }
                TarPart::Pad(0) => self.state = TarPart::Next,
                TarPart::Pad(left) => {
                    let n = zeros(buf, *left);
                    *left -= n;
                    return Ok(n);
                }
                TarPart::Trailer(0) => return Ok(0),
                TarPart::Trailer(left) => {
                    let n = zeros(buf, *left);
                    *left -= n;
                    return Ok(n);
                }
            }
        }
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

/// A Redis (or Valkey) server's snapshot (`[[redis]]`): over the replication protocol
/// ([`crate::redis::snapshot`] logs in, reads `INFO` and starts `SYNC`), or with `mode =
/// "bgsave"` the file a `BGSAVE` wrote ([`crate::redis::bgsave_snapshot`]); the stream is the
/// RDB exactly, judged by the format's observer (structure through to the CRC-64 trailer).
pub struct RedisSync<'a> {
    target: &'a crate::redis::RedisTarget,
    stall: Duration,
    cancel: &'a crate::run::Cancel,
    info: Option<crate::redis::ServerInfo>,
    snapshot: Option<Box<dyn Read + Send>>,
    /// How long a BGSAVE may take (`dump-timeout-secs`).
    limit: Option<Duration>,
}

impl std::fmt::Debug for RedisSync<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSync")
            .field("target", &self.target.name)
            .finish()
    }
}

impl<'a> RedisSync<'a> {
    /// A snapshot of `target`, stalling at most `stall`, stopped with `cancel`.
    pub fn new(
        target: &'a crate::redis::RedisTarget,
        stall: Duration,
        cancel: &'a crate::run::Cancel,
    ) -> Self {
        RedisSync {
            target,
            stall,
            cancel,
            info: None,
            snapshot: None,
            limit: None,
        }
    }

    /// The longest wait for a BGSAVE (`mode = "bgsave"`).
    pub fn with_limit(mut self, limit: Option<Duration>) -> Self {
        self.limit = limit;
        self
    }
}

impl Source for RedisSync<'_> {
    fn format(&self) -> Format {
        Format::Rdb
    }

    fn origin(&self) -> Origin {
        let info = self.info.clone().unwrap_or_default();
        Origin {
            dbname: format!(
                "(redis {}{})",
                if info.role.is_empty() {
                    "server"
                } else {
                    info.role.as_str()
                },
                info.valkey_version
                    .as_ref()
                    .map(|v| format!(", valkey {v}"))
                    .unwrap_or_default()
            ),
            host: match (&self.target.addr, self.info.as_ref()) {
                (
                    crate::redis::Addr::Sentinel {
                        master, replica, ..
                    },
                    Some(i),
                ) => format!(
                    "{} ({}{master} by Sentinel)",
                    i.connected_to,
                    if *replica { "a replica of " } else { "master " }
                ),
                (a, _) => a.to_string(),
            },
            program_version: format!(
                "pgbackup {} ({})",
                env!("CARGO_PKG_VERSION"),
                match self.target.mode {
                    crate::redis::SnapshotMode::Sync => "SYNC",
                    crate::redis::SnapshotMode::Bgsave { .. } => "BGSAVE",
                }
            ),
        }
    }

    fn facts(&mut self) -> Result<DatabaseInfo> {
        let (info, stream): (_, Box<dyn Read + Send>) = match &self.target.mode {
            crate::redis::SnapshotMode::Sync => {
                let (info, mut snapshot) = crate::redis::snapshot(self.target, self.stall)?;
                snapshot.stop_on(self.cancel.clone());
                (info, Box::new(snapshot))
            }
            crate::redis::SnapshotMode::Bgsave { rdb_path } => {
                let (info, file) = crate::redis::bgsave_snapshot(
                    self.target,
                    rdb_path.as_deref(),
                    self.limit,
                    self.cancel,
                )?;
                (
                    info,
                    Box::new(std::io::BufReader::with_capacity(1 << 20, file)),
                )
            }
        };
        let server_version = info.version.clone();
        self.info = Some(info);
        self.snapshot = Some(stream);
        Ok(DatabaseInfo {
            server_version,
            ..DatabaseInfo::default()
        })
    }

    fn start(&mut self) -> Result<Box<dyn Read + Send>> {
        match self.snapshot.take() {
            Some(s) => Ok(s),
            None => Err(Error::Usage(
                "the Redis snapshot was started before its facts were read".into(),
            )),
        }
    }

    fn note(&self) -> Option<String> {
        self.info.as_ref().filter(|i| !i.info_allowed).map(|_| {
            format!(
                "redis {}: INFO is not allowed for this user, so the manifest has no key counts from the server; grant +info to compare them",
                self.target.name
            )
        })
    }

    fn redis_facts(&self) -> Option<crate::catalog::RedisFacts> {
        self.info.as_ref().map(|i| crate::catalog::RedisFacts {
            role: i.role.clone(),
            valkey_version: i.valkey_version.clone(),
            server_keyspace: i.keyspace.clone(),
            ..Default::default()
        })
    }

    fn kill(&mut self) {
        // The connection closes with the reader, dropped by the pipeline.
        self.snapshot = None;
    }

    fn finish(&mut self, incomplete: Option<String>) -> Result<()> {
        match incomplete {
            None => Ok(()),
            Some(why) => Err(crate::redis::RedisError::Incomplete {
                name: self.target.name.clone(),
                why,
            }
            .into()),
        }
    }
}
