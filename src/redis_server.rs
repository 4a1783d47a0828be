//! A throwaway `redis-server` (or `valkey-server`) that loads a snapshot: the test restore of a
//! Redis backup, and a restore's rehearsal.
//!
//! It runs as pgbackup's own child in a private (0700) directory: no TCP port (`port 0`), a
//! unix socket only its owner may open, no saving (`save ""`, `appendonly no`), and it is
//! killed and its directory removed when dropped. It is configured as the replica of a port
//! pgbackup holds open and never answers, for one reason: a master drops the keys whose TTL
//! has passed while it loads, a replica keeps them (its master would expire them), so the
//! keys it holds are exactly the keys the snapshot holds and their count can be compared with
//! the manifest's, whatever the time now.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis::{Addr, Client, RedisTarget, Reply};

/// A server program and what it says it is.
#[derive(Debug, Clone)]
pub struct ServerProgram {
    /// Its path.
    pub path: PathBuf,
    /// `v=` of `--version`.
    pub version: String,
    /// Valkey rather than Redis.
    pub valkey: bool,
}

impl ServerProgram {
    /// `configured`, else `redis-server`, else `valkey-server` from PATH; asks `--version`.
    pub fn find(configured: Option<&Path>) -> Result<ServerProgram, String> {
        let candidates: Vec<PathBuf> = match configured {
            Some(p) => vec![p.to_path_buf()],
            None => vec!["redis-server".into(), "valkey-server".into()],
        };
        let mut last = String::new();
        for c in &candidates {
            match Command::new(c)
                .arg("--version")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
            {
                Ok(out) if out.status.success() => {
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    return parse_version(&text)
                        .map(|(version, valkey)| ServerProgram {
                            path: c.clone(),
                            version,
                            valkey,
                        })
                        .ok_or_else(|| {
                            format!(
                                "{} --version answered \"{}\", not a Redis or Valkey server's version",
                                c.display(),
                                text.trim()
                            )
                        });
                }
                Ok(out) => last = format!("{} --version exited with {}", c.display(), out.status),
                Err(e) => last = format!("{}: {e}", c.display()),
            }
        }
        Err(match configured {
            Some(_) => format!("{last}; check [verify] redis-server-path"),
            None => format!(
                "no redis-server or valkey-server found ({last}); install one (apt install redis-server) or set [verify] redis-server-path"
            ),
        })
    }

    /// The newest RDB format version this server loads, when known.
    pub fn max_rdb_version(&self) -> Option<u32> {
        max_rdb_version(&self.version, self.valkey)
    }

    /// "redis-server 7.0.15" (for messages).
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            self.version
        )
    }
}

/// `Redis server v=7.0.15 sha=...` -> ("7.0.15", false); `Valkey server v=8.0.1` -> valkey.
pub fn parse_version(text: &str) -> Option<(String, bool)> {
    let valkey = text.trim_start().starts_with("Valkey");
    if !valkey && !text.trim_start().starts_with("Redis") {
        return None;
    }
    let v = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("v="))?
        .to_string();
    Some((v, valkey))
}

/// The newest RDB version a server of this version loads (`None`: a version newer than this
/// table, which its own load will judge). Redis: 4.0 wrote 8, 5.0 to 6.2 wrote 9, 7.0 10,
/// 7.2 11, 7.4 and 8.0 12; Valkey 7.2 and 8 write 11.
pub fn max_rdb_version(version: &str, valkey: bool) -> Option<u32> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    if valkey {
        return match major {
            7 | 8 => Some(11),
            _ => None,
        };
    }
    match (major, minor) {
        (0..=2, _) => Some(6),
        (3, 0..=1) => Some(6),
        (3, _) => Some(7),
        (4, _) => Some(8),
        (5 | 6, _) => Some(9),
        (7, 0..=1) => Some(10),
        (7, 2..=3) => Some(11),
        (7, _) | (8, 0) => Some(12),
        _ => None,
    }
}

/// The RDB version of the snapshot file at `path` (`None`: not an RDB file).
pub fn rdb_version_of(path: &Path) -> Option<u32> {
    let mut head = [0u8; 9];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    crate::rdb::header_version(&head)
}

/// A running throwaway server; killed and removed on drop.
#[derive(Debug)]
pub struct Throwaway {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket_dir: Option<tempfile::TempDir>,
    socket: PathBuf,
    log: PathBuf,
    /// The "master" port: held, never answered.
    _master: TcpListener,
    program: ServerProgram,
}

/// A value for a redis.conf line, quoted (paths may hold spaces); a newline or NUL is refused.
fn conf_quote(v: &str) -> Result<String, String> {
    if v.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "the path {v:?} holds a line break, which a redis.conf cannot carry; use a directory without one ([verify] or --temp-dir)"
        ));
    }
    Ok(format!(
        "\"{}\"",
        v.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

impl Throwaway {
    /// Start `program` on the snapshot `rdb` (linked into the server's private directory,
    /// which is made under `temp_root`: the same file system), with room for `databases` logical databases. Returns
    /// once the server answers (it may still be loading: see [`Throwaway::wait_loaded`]).
    pub fn start(
        program: &ServerProgram,
        rdb: &Path,
        temp_root: &Path,
        databases: u64,
    ) -> Result<Throwaway, String> {
        let dir = tempfile::Builder::new()
            .prefix(crate::catalog::TEMP_PREFIX)
            .tempdir_in(temp_root)
            .map_err(|e| {
                format!(
                    "cannot make a private directory in {} for the throwaway redis-server: {e}",
                    temp_root.display()
                )
            })?;
        let data = dir.path().join("dump.rdb");
        std::fs::hard_link(rdb, &data)
            .or_else(|_| std::fs::rename(rdb, &data))
            .map_err(|e| {
                format!(
                    "cannot move the snapshot {} into {}: {e}",
                    rdb.display(),
                    dir.path().display()
                )
            })?;
        // A unix socket's path is limited to 107 bytes: under a deep temp root the socket
        // goes into a second private directory in the system's temp directory.
        let mut socket = dir.path().join("redis.sock");
        let mut socket_dir = None;
        if socket.as_os_str().len() > 100 {
            let d = tempfile::Builder::new()
                .prefix(crate::catalog::TEMP_PREFIX)
                .tempdir()
                .map_err(|e| format!("cannot make a private directory for the socket: {e}"))?;
            socket = d.path().join("redis.sock");
            socket_dir = Some(d);
        }
        let log = dir.path().join("redis.log");
        let master = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot hold a loopback port for the throwaway server: {e}"))?;
        let master_port = master
            .local_addr()
            .map_err(|e| format!("cannot hold a loopback port: {e}"))?
            .port();
        let mut conf = vec![
            "port 0".to_string(),
            format!("unixsocket {}", conf_quote(&socket.to_string_lossy())?),
            "unixsocketperm 700".into(),
            format!("dir {}", conf_quote(&dir.path().to_string_lossy())?),
            "dbfilename dump.rdb".into(),
            "save \"\"".into(),
            "appendonly no".into(),
            "daemonize no".into(),
            format!("logfile {}", conf_quote(&log.to_string_lossy())?),
            format!("databases {}", databases.clamp(16, 1 << 20)),
            format!("replicaof 127.0.0.1 {master_port}"),
            "replica-serve-stale-data yes".into(),
            "replica-read-only yes".into(),
        ];
        // DEBUG DIGEST: allowed on the private socket (Redis 7 turned DEBUG off by default
        // and added this switch; older servers have DEBUG on and would refuse the line).
        if program.valkey
            || program
                .version
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok())
                .is_some_and(|m| m >= 7)
        {
            conf.push("enable-debug-command local".into());
        }
        let conf_path = dir.path().join("redis.conf");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&conf_path)
                .and_then(|mut f| f.write_all((conf.join("\n") + "\n").as_bytes()))
                .map_err(|e| format!("cannot write {}: {e}", conf_path.display()))?;
        }
        let child = Command::new(&program.path)
            .arg(&conf_path)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.path.display()))?;
        Ok(Throwaway {
            child: Some(child),
            dir,
            socket_dir,
            socket,
            log,
            _master: master,
            program: program.clone(),
        })
    }

    /// Where a client reaches it.
    pub fn target(&self) -> RedisTarget {
        RedisTarget {
            name: "test-restore".into(),
            addr: Addr::Unix(self.socket.clone()),
            user: None,
            password: None,
            password_source: None,
            sentinel_password: None,
            tls: None,
            mode: Default::default(),
        }
    }

    /// The private directory (the snapshot is `dump.rdb` in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server's log says went wrong (for a message): its warnings before a crash
    /// report, without the start-up chatter; the last `lines` of them.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(f) = std::fs::File::open(&self.log) {
            let _ = f.take(4 << 20).read_to_string(&mut text);
        }
        let before_report = text
            .split("=== REDIS BUG REPORT START")
            .next()
            .unwrap_or("");
        let said: Vec<&str> = before_report
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(log_message)
            .filter(|m| !is_chatter(m))
            .collect();
        said[said.len().saturating_sub(lines)..].join("; ")
    }

    /// Wait until the server answers PING with PONG (not `-LOADING`), at most `timeout`;
    /// an exit on the way is an error with the log's last lines (an RDB it cannot read).
    pub fn wait_loaded(&mut self, timeout: Option<Duration>) -> Result<Client, String> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut stderr = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = (&mut e).take(64 * 1024).read_to_string(&mut stderr);
                    }
                    let mut said = self.log_tail(3);
                    if said.is_empty() {
                        said = stderr.trim().replace('\n', "; ");
                    }
                    self.child = None;
                    return Err(format!(
                        "{} exited ({status}) while loading the snapshot: {said}",
                        self.program.describe()
                    ));
                }
            }
            if crate::signals::interrupted().is_some() {
                return Err("interrupted".into());
            }
            if timeout.is_some_and(|t| started.elapsed() > t) {
                return Err(format!(
                    "{} had not loaded the snapshot after {} s (the [verify] restore-timeout-secs)",
                    self.program.describe(),
                    started.elapsed().as_secs()
                ));
            }
            if self.socket.exists() {
                if let Ok(mut c) = crate::redis::connect(&self.target(), Duration::from_secs(30)) {
                    match c.command(&[b"PING"]) {
                        Ok(Reply::Status(s)) if s == "PONG" => return Ok(c),
                        // -LOADING: not yet.
                        _ => {}
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop it now (SIGKILL: nothing is to be saved) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.socket_dir.take();
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A redis log line without its `pid:role dd Mon yyyy hh:mm:ss.mmm <level>` prefix.
fn log_message(line: &str) -> &str {
    let t: Vec<&str> = line.trim().splitn(7, ' ').collect();
    if t.len() == 7 && t[0].contains(':') && matches!(t[5], "." | "-" | "*" | "#") {
        t[6]
    } else {
        line.trim()
    }
}

/// Start-up lines of every run, which say nothing of the snapshot.
fn is_chatter(message: &str) -> bool {
    [
        "oO0OoO0OoO0Oo",
        "Redis version=",
        "Valkey version=",
        "Configuration loaded",
        "monotonic clock",
        "Running mode=",
        "Server initialized",
        "WARNING Memory overcommit",
        "WARNING: The TCP backlog",
        "Ready to accept connections",
        "Loading RDB produced by",
        "RDB age",
        "RDB memory usage",
    ]
    .iter()
    .any(|c| message.contains(c))
}

/// What a loaded server holds: keys per logical database (`INFO keyspace`), Functions
/// libraries, and `DEBUG DIGEST` when the server allows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Keys per logical database.
    pub keyspace: std::collections::BTreeMap<u64, u64>,
    /// `FUNCTION LIST` length (`None`: the server has no functions, before 7.0).
    pub functions: Option<u64>,
    /// `DEBUG DIGEST` (`None`: not allowed).
    pub digest: Option<String>,
}

/// Ask a loaded server what it holds.
pub fn loaded(c: &mut Client) -> Result<Loaded, String> {
    let info = c.server_info().map_err(|e| e.to_string())?;
    let functions = match c.command(&[b"FUNCTION", b"LIST"]) {
        Ok(Reply::Array(Some(items))) => Some(items.len() as u64),
        _ => None,
    };
    let digest = match c.command(&[b"DEBUG", b"DIGEST"]) {
        Ok(r @ (Reply::Status(_) | Reply::Bulk(Some(_)))) => r
            .text()
            .ok()
            .filter(|d| d.len() == 40 && d.bytes().all(|b| b.is_ascii_hexdigit())),
        _ => None,
    };
    Ok(Loaded {
        keyspace: info.keyspace,
        functions,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"),
            Some(("7.0.15".into(), false))
        );
        assert_eq!(
            parse_version("Valkey server v=8.0.1 sha=00000000:0"),
            Some(("8.0.1".into(), true))
        );
        assert_eq!(parse_version("KeyDB 6"), None);
        assert_eq!(max_rdb_version("7.0.15", false), Some(10));
        assert_eq!(max_rdb_version("7.2.4", false), Some(11));
        assert_eq!(max_rdb_version("7.4.1", false), Some(12));
        assert_eq!(max_rdb_version("6.2.14", false), Some(9));
        assert_eq!(max_rdb_version("9.0.0", false), None);
        assert_eq!(max_rdb_version("8.0.1", true), Some(11));
        assert_eq!(max_rdb_version("x", false), None);
    }

    #[test]
    fn conf_values_are_quoted() {
        assert_eq!(conf_quote("/a b/c").unwrap(), "\"/a b/c\"");
        assert_eq!(conf_quote("/a\"b\\").unwrap(), "\"/a\\\"b\\\\\"");
        assert!(conf_quote("/a\nb").is_err());
    }

    #[test]
    fn log_lines() {
        assert_eq!(
            log_message("4242:S 02 Dec 2026 21:00:00.123 # Can't handle RDB format version 12"),
            "Can't handle RDB format version 12"
        );
        assert_eq!(log_message("plain"), "plain");
    }
}
