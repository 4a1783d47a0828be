//! A Redis (or Valkey) snapshot over the replication protocol, as `redis-cli --rdb` takes it:
//! no access to the server's files, only a connection. `AUTH`, `INFO` (the version, role and
//! key counts for the manifest), `REPLCONF capa eof` (a diskless master may then stream the
//! snapshot without a length, ended by a 40-byte mark), `REPLCONF rdb-only 1` (Redis 7.2+: no
//! command stream after the snapshot; refused by older servers, which is fine), then `SYNC`.
//! The answer is newlines while the master prepares (keep-alives), then `$<length>` or
//! `$EOF:<mark>`, then the RDB. [`Snapshot`] reads exactly the RDB bytes.
//!
//! The password goes over the connection only (never argv or an environment). An ACL user
//! needs `+sync +replconf` (and `+info` for the key counts, `+auth` is implied).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// Where a Redis server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// `host:port`.
    Tcp(String, u16),
    /// A unix socket.
    Unix(PathBuf),
    /// The current master of `master` by the first of these Sentinels that answers (or, with
    /// `replica`, a healthy replica of it they know).
    Sentinel {
        /// Sentinel's name of the master (`master-name`).
        master: String,
        /// `host:port` of each Sentinel, asked in order.
        sentinels: Vec<(String, u16)>,
        /// Snapshot a replica of the master instead (`snapshot-from = "replica"`).
        replica: bool,
    },
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            Addr::Tcp(h, p) => write!(f, "{h}:{p}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Sentinel {
                master,
                sentinels,
                replica,
            } => write!(
                f,
                "{}{master} by Sentinel {}",
                if *replica { "a replica of " } else { "master " },
                sentinels
                    .iter()
                    .map(|(h, p)| Addr::Tcp(h.clone(), *p).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A server to snapshot and how to log in.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// The configured name (messages, file names).
    pub name: String,
    /// Where it listens.
    pub addr: Addr,
    /// The ACL user (`None`: `default`).
    pub user: Option<String>,
    /// The password, when one is needed.
    pub password: Option<Secret>,
    /// Where the password came from ("password-file /etc/...").
    pub password_source: Option<String>,
    /// The Sentinels' own password (`requirepass` of sentinel.conf), with [`Addr::Sentinel`].
    pub sentinel_password: Option<Secret>,
    /// TLS (`rediss://`): the client configuration (also for the Sentinels).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// How the snapshot is taken.
    pub mode: SnapshotMode,
}

/// How a snapshot is taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Over the replication protocol (`SYNC`): no file access needed.
    #[default]
    Sync,
    /// `BGSAVE`, then the file it wrote is read: for servers where SYNC is refused, with
    /// pgbackup on the same host. `rdb_path` overrides `CONFIG GET dir` + `dbfilename`.
    Bgsave {
        /// The RDB file, when CONFIG is not allowed or the path differs here.
        rdb_path: Option<PathBuf>,
    },
}

/// `BGSAVE`, wait until it is done (a new `LASTSAVE`, `rdb_bgsave_in_progress:0`, status
/// ok), then open the file it wrote (`rdb_path`, else `CONFIG GET dir` and `dbfilename`). The
/// open file is the snapshot: a later save renames a new file over it, which leaves this one
/// whole. `limit` bounds the wait; `cancel` stops it.
pub fn bgsave_snapshot(
    target: &RedisTarget,
    rdb_path: Option<&std::path::Path>,
    limit: Option<Duration>,
    cancel: &crate::run::Cancel,
) -> Result<(ServerInfo, std::fs::File), RedisError> {
    let name = target.name.clone();
    let mut c = connect(target, Duration::from_secs(60))?;
    let mut info = c.info()?;
    info.connected_to = c.addr().to_string();
    let lastsave = |c: &mut Client| -> Result<i64, RedisError> {
        match c.command(&[b"LASTSAVE"])? {
            Reply::Int(n) => Ok(n),
            Reply::Error(e) if e.starts_with("NOPERM") => Err(c.denied("LASTSAVE", e)),
            other => Err(RedisError::Refused {
                name: c.name.clone(),
                command: "LASTSAVE",
                reply: other.text().unwrap_or_else(|e| e),
            }),
        }
    };
    let before = lastsave(&mut c)?;
    // LASTSAVE counts seconds: a save within the second of the last one does not change it;
    // `rdb_saves` (Redis 7) counts saves, and a save seen running and then done counts too.
    let saves = |f: &std::collections::HashMap<String, String>| {
        f.get("rdb_saves").and_then(|n| n.parse::<u64>().ok())
    };
    let saves_before = saves(&c.info_fields()?);
    let mut seen_running = false;
    match c.command(&[b"BGSAVE"])? {
        Reply::Status(_) => {}
        // Another save is running: its file is as recent as ours would be, near enough.
        Reply::Error(e) if e.contains("already in progress") => {}
        Reply::Error(e) if e.starts_with("NOPERM") => {
            return Err(RedisError::NoPermission {
                name,
                command: "BGSAVE",
                reply: e,
            })
        }
        other => {
            return Err(RedisError::Refused {
                name,
                command: "BGSAVE",
                reply: other.text().unwrap_or_else(|e| e),
            })
        }
    }
    let started = std::time::Instant::now();
    loop {
        if let Some(sig) = cancel.cancelled() {
            return Err(RedisError::Io {
                name,
                what: "waiting for BGSAVE".into(),
                source: io::Error::new(
                    io::ErrorKind::Interrupted,
                    format!("stopped by {}", crate::signals::name(sig)),
                ),
            });
        }
        let fields = c.info_fields()?;
        let busy = fields.get("rdb_bgsave_in_progress").map(String::as_str) == Some("1");
        seen_running |= busy;
        let counted = matches!((saves_before, saves(&fields)), (Some(b), Some(n)) if n > b);
        if !busy && (counted || seen_running || lastsave(&mut c)? > before) {
            if fields.get("rdb_last_bgsave_status").map(String::as_str) == Some("err") {
                return Err(RedisError::Refused {
                    name,
                    command: "BGSAVE",
                    reply: "the save failed (rdb_last_bgsave_status:err; see the server's log: its disk?)".into(),
                });
            }
            break;
        }
        if !busy && started.elapsed() > Duration::from_secs(30) && lastsave(&mut c)? == before {
            return Err(RedisError::Refused {
                name,
                command: "BGSAVE",
                reply: "no save ran within 30 s (LASTSAVE did not change)".into(),
            });
        }
        if limit.is_some_and(|l| started.elapsed() > l) {
            return Err(RedisError::Refused {
                name,
                command: "BGSAVE",
                reply: format!(
                    "not done after {} s (dump-timeout-secs)",
                    started.elapsed().as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let saved_at = lastsave(&mut c)?;
    let path = match rdb_path {
        Some(p) => p.to_path_buf(),
        None => {
            let get = |c: &mut Client, key: &str| -> Result<String, RedisError> {
                match c.command(&[b"CONFIG", b"GET", key.as_bytes()])? {
                    Reply::Array(Some(items)) if items.len() == 2 => {
                        Ok(items[1].text().unwrap_or_default())
                    }
                    other => Err(RedisError::Refused {
                        name: c.name.clone(),
                        command: "CONFIG GET",
                        reply: format!(
                            "{} (set rdb-path to the RDB file instead)",
                            other.text().unwrap_or_else(|e| e)
                        ),
                    }),
                }
            };
            let dir = get(&mut c, "dir")?;
            let file = get(&mut c, "dbfilename")?;
            PathBuf::from(dir).join(file)
        }
    };
    let file = std::fs::File::open(&path).map_err(|e| RedisError::Io {
        name: name.clone(),
        what: format!(
            "opening the saved snapshot {} (mode = \"bgsave\" reads the server's own file: pgbackup must run on its host, with read access, e.g. in the redis group; or set rdb-path)",
            path.display()
        ),
        source: e,
    })?;
    // The file must be the one this save wrote, not a stale copy on another host's path.
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    if let Some(m) = modified {
        if (m - saved_at).abs() > 5 {
            return Err(RedisError::Refused {
                name,
                command: "BGSAVE",
                reply: format!(
                    "{} was written at {m}, not by this save (LASTSAVE {saved_at}): is pgbackup on another host than the server, or rdb-path wrong?",
                    path.display()
                ),
            });
        }
    }
    Ok((info, file))
}

/// What the Sentinels say of a master: its address, and the state `check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelView {
    /// The Sentinel that answered.
    pub sentinel: String,
    /// The master's `host:port`.
    pub master: (String, u16),
    /// `flags` of `SENTINEL master` (master, s_down, o_down, ...).
    pub flags: String,
    /// Replicas Sentinel knows.
    pub replicas: u64,
    /// Other Sentinels it knows.
    pub other_sentinels: u64,
    /// `SENTINEL ckquorum`: `Ok(message)` when a failover could be authorised.
    pub quorum: Result<String, String>,
    /// The replicas that are healthy (flags exactly `slave`, link ok): `host:port`.
    pub healthy_replicas: Vec<(String, u16)>,
}

/// Ask the Sentinels, in order, for the current master of `master`; the first that knows it
/// answers. Every failure is named when none does.
pub fn ask_sentinels(
    target: &RedisTarget,
    master: &str,
    sentinels: &[(String, u16)],
    timeout: Duration,
) -> Result<SentinelView, RedisError> {
    let mut failures = Vec::new();
    for (h, p) in sentinels {
        let one = RedisTarget {
            name: target.name.clone(),
            addr: Addr::Tcp(h.clone(), *p),
            user: None,
            password: target.sentinel_password.clone(),
            password_source: Some("sentinel-password-file".into()),
            sentinel_password: None,
            tls: target.tls.clone(),
            mode: SnapshotMode::Sync,
        };
        let mut c = match connect(&one, timeout) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{h}:{p}: {e}"));
                continue;
            }
        };
        let addr = match c.command(&[b"SENTINEL", b"get-master-addr-by-name", master.as_bytes()]) {
            Ok(Reply::Array(Some(items))) if items.len() == 2 => {
                let host = items[0].text().unwrap_or_default();
                let port = items[1].text().ok().and_then(|p| p.parse::<u16>().ok());
                match port {
                    Some(port) if !host.is_empty() => (host, port),
                    _ => {
                        failures.push(format!("{h}:{p}: an address it cannot have given"));
                        continue;
                    }
                }
            }
            Ok(Reply::Array(None)) | Ok(Reply::Bulk(None)) => {
                failures.push(format!(
                    "{h}:{p}: no master named {master} (check master-name)"
                ));
                continue;
            }
            Ok(other) => {
                failures.push(format!("{h}:{p}: {}", other.text().unwrap_or_else(|e| e)));
                continue;
            }
            Err(e) => {
                failures.push(format!("{h}:{p}: {e}"));
                continue;
            }
        };
        let mut fields = std::collections::HashMap::new();
        if let Ok(Reply::Array(Some(items))) =
            c.command(&[b"SENTINEL", b"master", master.as_bytes()])
        {
            for pair in items.chunks(2) {
                if let [k, v] = pair {
                    fields.insert(k.text().unwrap_or_default(), v.text().unwrap_or_default());
                }
            }
        }
        let quorum = match c.command(&[b"SENTINEL", b"ckquorum", master.as_bytes()]) {
            Ok(Reply::Status(s)) => Ok(s),
            Ok(Reply::Error(e)) => Err(e),
            Ok(other) => Err(other.text().unwrap_or_else(|e| e)),
            Err(e) => Err(e.to_string()),
        };
        let mut healthy_replicas = Vec::new();
        if let Ok(Reply::Array(Some(replicas))) =
            c.command(&[b"SENTINEL", b"replicas", master.as_bytes()])
        {
            for r in replicas {
                let Reply::Array(Some(items)) = r else {
                    continue;
                };
                let map: std::collections::HashMap<String, String> = items
                    .chunks(2)
                    .filter_map(|p| match p {
                        [k, v] => Some((k.text().ok()?, v.text().ok()?)),
                        _ => None,
                    })
                    .collect();
                let healthy = map.get("flags").map(String::as_str) == Some("slave")
                    && map.get("master-link-status").map(String::as_str) == Some("ok");
                if let (true, Some(ip), Some(port)) = (
                    healthy,
                    map.get("ip"),
                    map.get("port").and_then(|p| p.parse::<u16>().ok()),
                ) {
                    healthy_replicas.push((ip.clone(), port));
                }
            }
        }
        let num = |k: &str| fields.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        return Ok(SentinelView {
            healthy_replicas,
            sentinel: format!("{h}:{p}"),
            master: addr,
            flags: fields.get("flags").cloned().unwrap_or_default(),
            replicas: num("num-slaves"),
            other_sentinels: num("num-other-sentinels"),
            quorum,
        });
    }
    Err(RedisError::Sentinel {
        name: target.name.clone(),
        master: master.to_string(),
        why: failures.join("; "),
    })
}

/// Whether `url` asks for TLS (`rediss://`).
pub fn is_tls_url(url: &str) -> bool {
    url.starts_with("rediss://")
}

/// A TLS client configuration for `rediss://`: the system's roots plus `ca_file`, and a client
/// certificate when the server asks for one (`tls-auth-clients`, Redis's default).
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::s3::http::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in crate::s3::http::trust_roots(ca_file)?.iter() {
        let _ = roots.add(CertificateDer::from(c.der().to_vec()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!(
                        "tls-cert-file {}: {e}; give the PEM certificate (chain) of the client",
                        cert.display()
                    )
                })?;
            if certs.is_empty() {
                return Err(format!(
                    "tls-cert-file {} holds no certificate",
                    cert.display()
                ));
            }
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "tls-key-file {}: {e}; give the client certificate's PEM private key",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| format!("tls-cert-file and tls-key-file do not go together: {e}"))?
        }
    };
    Ok(std::sync::Arc::new(config))
}

/// Parse `redis://[user@]host[:port][/db]` or `unix:///path/to/socket` (a password in the URL
/// is refused: it belongs in a file).
pub fn parse_url(url: &str) -> Result<(Addr, Option<String>), String> {
    if let Some(path) = url.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!(
                "\"{url}\": a unix socket URL needs an absolute path (unix:///run/redis/redis.sock)"
            ));
        }
        return Ok((Addr::Unix(PathBuf::from(path)), None));
    }
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or_else(|| {
            format!(
                "\"{url}\" is not a redis://, rediss:// or unix:// URL (redis://[user@]host[:port])"
            )
        })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => {
            if u.contains(':') {
                return Err(
                    "the URL contains a password; put it in password-file (or a systemd credential) instead".into(),
                );
            }
            (Some(u.to_string()).filter(|u| !u.is_empty()), h)
        }
        None => (None, authority),
    };
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| format!("\"{url}\": an IPv6 address needs its closing ']'"))?;
        (h.to_string(), p.strip_prefix(':').unwrap_or(""))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (hostport.to_string(), ""),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{url}\" names no host"));
    }
    let port = if port.is_empty() {
        6379
    } else {
        port.parse::<u16>().map_err(|_| {
            format!("\"{url}\": the port \"{port}\" is not a number from 1 to 65535")
        })?
    };
    Ok((Addr::Tcp(host, port), user))
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No connection.
    #[error("cannot connect to Redis {name} at {addr}: {source}; is the server running, and are host and port right?")]
    Connect {
        /// The configured name.
        name: String,
        /// Where.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The TLS handshake failed (a certificate, a protocol).
    #[error("TLS with Redis {name} at {addr} failed: {why}")]
    Tls {
        /// The configured name.
        name: String,
        /// Where.
        addr: String,
        /// What, with the hint.
        why: String,
    },
    /// The login was refused.
    #[error("Redis {name} refused the login: {reply}; {hint}")]
    Auth {
        /// The configured name.
        name: String,
        /// What the server said.
        reply: String,
        /// What to check.
        hint: String,
    },
    /// A command the snapshot needs is not allowed for this user.
    #[error("Redis {name} did not allow {command}: {reply}; give the backup user the ACL `+sync +replconf +info` (ACL SETUSER <user> +sync +replconf +info)")]
    NoPermission {
        /// The configured name.
        name: String,
        /// The command.
        command: &'static str,
        /// What the server said.
        reply: String,
    },
    /// The server answered something else than the protocol says.
    #[error("Redis {name} answered {command} with {reply}")]
    Refused {
        /// The configured name.
        name: String,
        /// The command.
        command: &'static str,
        /// What the server said.
        reply: String,
    },
    /// The snapshot arrived but is not whole (its structure or checksum).
    #[error("the snapshot of Redis {name} is not whole: it {why}; the backup was discarded")]
    Incomplete {
        /// The configured name.
        name: String,
        /// What the observer found.
        why: String,
    },
    /// No Sentinel named the master.
    #[error("no Sentinel of Redis {name} named the current master of {master}: {why}")]
    Sentinel {
        /// The configured name.
        name: String,
        /// `master-name`.
        master: String,
        /// Each Sentinel's failure.
        why: String,
    },
    /// A restore into the server failed on the way (its data may be the snapshot's, or the
    /// old data, as the message says).
    #[error("restoring Redis {name}: {what}")]
    Restore {
        /// The configured name.
        name: String,
        /// What happened, and where the data stands.
        what: String,
    },
    /// The connection broke or stalled.
    #[error("Redis {name}: {what}: {source}")]
    Io {
        /// The configured name.
        name: String,
        /// What was going on.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// What the server said about itself before the snapshot (`INFO`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerInfo {
    /// `redis_version` (Valkey reports one too, for compatibility).
    pub version: String,
    /// `valkey_version`, when the server is Valkey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valkey_version: Option<String>,
    /// `role`: master or slave.
    pub role: String,
    /// Keys per logical database (`INFO keyspace`), when INFO was allowed.
    pub keyspace: std::collections::BTreeMap<u64, u64>,
    /// Whether INFO was allowed at all.
    pub info_allowed: bool,
    /// The address the snapshot came from (a Sentinel's master, resolved).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub connected_to: String,
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Conn {
    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(Some(d)),
            Conn::Unix(s) => s.set_read_timeout(Some(d)),
            Conn::Tls(s) => s.sock.set_read_timeout(Some(d)),
        }
    }

    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Conn::Tcp(s) => Some(s),
            Conn::Tls(s) => Some(&s.sock),
            Conn::Unix(_) => None,
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// A TLS handshake failure with what to check.
fn tls_hint(e: io::Error) -> io::Error {
    let text = e.to_string();
    let hint = if text.contains("UnknownIssuer") {
        "; the server's certificate is not signed by a trusted CA: set ca-file to the CA's PEM"
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        "; the server's certificate is for another name than the URL's host"
    } else if text.contains("Expired") || text.contains("expired") {
        "; the server's certificate has expired"
    } else if text.contains("CertificateRequired") || text.contains("HandshakeFailure") {
        "; the server may require a client certificate (tls-auth-clients): set tls-cert-file and tls-key-file"
    } else {
        ""
    };
    io::Error::new(e.kind(), format!("TLS: {text}{hint}"))
}

/// A command as a RESP array of bulk strings.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An open snapshot: the RDB bytes, exactly, as they arrive.
pub struct Snapshot {
    conn: BufReader<Conn>,
    mode: Mode,
    name: String,
    read: u64,
    marked: bool,
    /// The longest wait for a byte.
    stall: Duration,
    /// Stop when this job is cancelled (checked every [`POLL`]).
    cancel: Option<crate::run::Cancel>,
}

/// How often a snapshot waiting for bytes looks at its job's cancellation.
const POLL: Duration = Duration::from_millis(500);

enum Mode {
    /// `$<length>`: this many bytes left.
    Length(u64),
    /// `$EOF:<mark>`: until the mark; `held` are bytes read but not yet given out (they may
    /// be the mark's beginning).
    Mark {
        mark: Vec<u8>,
        held: Vec<u8>,
    },
    /// The mark was found: these last bytes of the RDB, then the end.
    Tail(Vec<u8>),
    Done,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("name", &self.name)
            .field("read", &self.read)
            .finish()
    }
}

/// Connect and log in (`AUTH` when a password is set); `timeout` bounds every read and write.
pub fn connect(target: &RedisTarget, timeout: Duration) -> Result<Client, RedisError> {
    let name = target.name.clone();
    let resolved;
    let addr = match &target.addr {
        Addr::Sentinel {
            master,
            sentinels,
            replica,
        } => {
            let view = ask_sentinels(target, master, sentinels, timeout)?;
            resolved = if *replica {
                let Some((h, p)) = view.healthy_replicas.first().cloned() else {
                    return Err(RedisError::Sentinel {
                        name,
                        master: master.clone(),
                        why: format!(
                            "Sentinel {} knows no healthy replica of it (snapshot-from = \"replica\"); {} known in all",
                            view.sentinel, view.replicas
                        ),
                    });
                };
                Addr::Tcp(h, p)
            } else {
                Addr::Tcp(view.master.0, view.master.1)
            };
            &resolved
        }
        a => a,
    };
    let connect_err = |source| RedisError::Connect {
        name: name.clone(),
        addr: addr.to_string(),
        source,
    };
    let conn = match addr {
        Addr::Unix(p) => {
            let s = UnixStream::connect(p).map_err(connect_err)?;
            s.set_read_timeout(Some(timeout)).map_err(connect_err)?;
            s.set_write_timeout(Some(timeout)).map_err(connect_err)?;
            Conn::Unix(s)
        }
        Addr::Tcp(h, p) => {
            use std::net::ToSocketAddrs;
            let addrs: Vec<_> = (h.as_str(), *p)
                .to_socket_addrs()
                .map_err(connect_err)?
                .collect();
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            let mut found = None;
            for a in addrs {
                match TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let s = found.ok_or_else(|| connect_err(last))?;
            s.set_read_timeout(Some(timeout)).map_err(connect_err)?;
            s.set_write_timeout(Some(timeout)).map_err(connect_err)?;
            let _ = s.set_nodelay(true);
            match &target.tls {
                None => Conn::Tcp(s),
                Some(config) => {
                    let server =
                        rustls::pki_types::ServerName::try_from(h.clone()).map_err(|e| {
                            connect_err(io::Error::new(
                                io::ErrorKind::InvalidInput,
                                format!("\"{h}\" is not a name TLS can check: {e}"),
                            ))
                        })?;
                    let tls = rustls::ClientConnection::new(config.clone(), server)
                        .map_err(|e| connect_err(io::Error::other(format!("TLS: {e}"))))?;
                    let mut stream = rustls::StreamOwned::new(tls, s);
                    // The handshake now, so that a certificate problem is a connect error.
                    while stream.conn.is_handshaking() {
                        stream
                            .conn
                            .complete_io(&mut stream.sock)
                            .map_err(|e| RedisError::Tls {
                                name: name.clone(),
                                addr: addr.to_string(),
                                why: tls_hint(e).to_string(),
                            })?;
                    }
                    Conn::Tls(Box::new(stream))
                }
            }
        }
        Addr::Sentinel { .. } => unreachable!("resolved above"),
    };
    let mut c = Client {
        conn: BufReader::with_capacity(256 * 1024, conn),
        name: name.clone(),
        addr: addr.clone(),
    };
    if let Some(pw) = &target.password {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(u) = &target.user {
            args.push(u.as_bytes());
        }
        args.push(pw.expose().as_bytes());
        let reply = c.call(&args, "AUTH")?;
        if !reply.starts_with('+') {
            let hint = match &target.password_source {
                Some(s) => format!("check the password in {s} and the user name"),
                None => "check the password and the user name".into(),
            };
            return Err(RedisError::Auth {
                name,
                reply: reply.trim_start_matches('-').to_string(),
                hint,
            });
        }
    }
    Ok(c)
}

/// Connect, log in, ask what the server is, and start the snapshot. `stall` is the longest
/// wait for any byte (the keep-alive newlines arrive every second while a master prepares).
pub fn snapshot(
    target: &RedisTarget,
    stall: Duration,
) -> Result<(ServerInfo, Snapshot), RedisError> {
    let name = target.name.clone();
    let mut c = connect(target, stall)?;
    let mut info = c.info()?;
    info.connected_to = c.addr().to_string();
    if let (
        Addr::Sentinel {
            master, replica, ..
        },
        false,
    ) = (&target.addr, info.role.is_empty())
    {
        if *replica && info.role != "slave" {
            return Err(RedisError::Refused {
                name,
                command: "INFO",
                reply: format!(
                    "role {}: Sentinel named {} a replica of {master}, but it is not (a failover under way?); the next run asks again",
                    info.role, info.connected_to
                ),
            });
        }
        if !*replica && info.role != "master" {
            return Err(RedisError::Refused {
                name,
                command: "INFO",
                reply: format!(
                    "role {}: Sentinel named {} the master of {master}, but it is not (a failover under way?); the next run asks again",
                    info.role, info.connected_to
                ),
            });
        }
    }
    for (args, what) in [
        (&[&b"REPLCONF"[..], b"capa", b"eof"][..], "REPLCONF"),
        (
            &[&b"REPLCONF"[..], b"rdb-only", b"1"][..],
            "REPLCONF rdb-only",
        ),
    ] {
        let reply = c.call(args, what)?;
        if reply.starts_with("-NOPERM") || reply.starts_with("-NOAUTH") {
            return Err(c.denied(what, reply));
        }
        // An older server does not know rdb-only: it then streams commands after the
        // snapshot, which Snapshot never reads.
        if !reply.starts_with('+') && what == "REPLCONF" {
            return Err(RedisError::Refused {
                name,
                command: "REPLCONF capa eof",
                reply,
            });
        }
    }
    c.send(&[b"SYNC"], "SYNC")?;
    // Newlines while the master prepares, then the header.
    let header = loop {
        let line = c.line("waiting for the snapshot to start")?;
        if !line.is_empty() {
            break line;
        }
    };
    let mode = if let Some(mark) = header.strip_prefix("$EOF:") {
        if mark.len() != 40 {
            return Err(RedisError::Refused {
                name,
                command: "SYNC",
                reply: format!("an EOF mark of {} bytes, not 40", mark.len()),
            });
        }
        Mode::Mark {
            mark: mark.as_bytes().to_vec(),
            held: Vec::new(),
        }
    } else if let Some(n) = header.strip_prefix('$').and_then(|n| n.parse::<u64>().ok()) {
        Mode::Length(n)
    } else if header.starts_with("-NOPERM") || header.starts_with("-NOAUTH") {
        return Err(c.denied("SYNC", header));
    } else if header.contains("unknown command") {
        return Err(RedisError::Refused {
            name,
            command: "SYNC",
            reply: format!(
                "{header}: SYNC is disabled on this server (renamed, or a managed service); with pgbackup on the server's host, set mode = \"bgsave\" in its [[redis]]"
            ),
        });
    } else {
        return Err(RedisError::Refused {
            name,
            command: "SYNC",
            reply: header,
        });
    };
    let marked = matches!(mode, Mode::Mark { .. });
    c.conn
        .get_ref()
        .set_read_timeout(POLL)
        .map_err(|e| c.io("setting the socket's timeout", e))?;
    Ok((
        info,
        Snapshot {
            conn: c.conn,
            mode,
            name: target.name.clone(),
            read: 0,
            marked,
            stall,
            cancel: None,
        },
    ))
}

/// A logged-in connection ([`connect`]).
pub struct Client {
    conn: BufReader<Conn>,
    name: String,
    addr: Addr,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("name", &self.name).finish()
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...` (without the dash).
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$n` bytes, or `$-1` (none).
    Bulk(Option<Vec<u8>>),
    /// `*n` replies, or `*-1` (none).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (a status, a bulk string, a number), or the error's message.
    pub fn text(&self) -> Result<String, String> {
        match self {
            Reply::Status(s) => Ok(s.clone()),
            Reply::Error(e) => Err(e.clone()),
            Reply::Int(n) => Ok(n.to_string()),
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            Reply::Bulk(None) | Reply::Array(None) => Ok(String::new()),
            Reply::Array(Some(items)) => Ok(items
                .iter()
                .map(|i| i.text().unwrap_or_else(|e| e))
                .collect::<Vec<_>>()
                .join(" ")),
        }
    }
}

/// Replies nested deeper than this are refused (a hostile or broken server).
const REPLY_DEPTH: usize = 8;
/// Elements of one reply, all arrays together (SENTINEL replicas of a large set-up is a few
/// thousand): a server that sends endless arrays is refused, not buffered.
const REPLY_ELEMENTS_MAX: usize = 1 << 20;

/// One RESP2 reply from `r`: bounded in depth, element count, bulk size and line length, so
/// that a hostile or broken server costs an error, never unbounded memory.
pub fn read_reply<R: BufRead>(r: &mut R) -> io::Result<Reply> {
    let mut budget = (REPLY_ELEMENTS_MAX, REPLY_BYTES_MAX);
    read_reply_in(r, 0, &mut budget)
}

/// Bulk bytes of one reply, all together.
const REPLY_BYTES_MAX: usize = 64 << 20;

fn read_reply_in<R: BufRead>(
    r: &mut R,
    depth: usize,
    budget: &mut (usize, usize),
) -> io::Result<Reply> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let mut raw = Vec::new();
    let n = (&mut *r).take(64 * 1024).read_until(b'\n', &mut raw)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    if raw.last() != Some(&b'\n') {
        return Err(bad("a reply line longer than 64 KiB".into()));
    }
    while raw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        raw.pop();
    }
    let line = String::from_utf8_lossy(&raw).into_owned();
    let (kind, rest) = match line.char_indices().nth(1) {
        Some((i, _)) => line.split_at(i),
        None => (line.as_str(), ""),
    };
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("\"{}\" is not a RESP reply", line.escape_debug())))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(number()?),
        "$" => {
            let n = number()?;
            if n < 0 {
                Reply::Bulk(None)
            } else if n as u64 > REPLY_BULK_MAX.min(budget.1) as u64 {
                return Err(bad(format!("a reply of {n} bytes")));
            } else {
                budget.1 -= n as usize;
                let mut body = vec![0u8; n as usize + 2];
                r.read_exact(&mut body)?;
                body.truncate(n as usize);
                Reply::Bulk(Some(body))
            }
        }
        "*" => {
            let n = number()?;
            if n < 0 {
                Reply::Array(None)
            } else if depth >= REPLY_DEPTH || n as u64 > budget.0 as u64 {
                return Err(bad(format!(
                    "an array of {n} elements, {depth} deep: more than a reply holds"
                )));
            } else {
                budget.0 -= n as usize;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(read_reply_in(r, depth + 1, budget)?);
                }
                Reply::Array(Some(items))
            }
        }
        _ => {
            return Err(bad(format!(
                "\"{}\" is not a RESP reply",
                line.chars().take(80).collect::<String>().escape_debug()
            )))
        }
    })
}
/// Bulk strings longer than this are refused (INFO, CONFIG GET, DEBUG DIGEST are small).
const REPLY_BULK_MAX: usize = 16 << 20;

impl Client {
    /// Send a command and read its whole reply.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let what = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
        self.send(args, &what)?;
        self.reply(&what)
    }

    fn reply(&mut self, what: &str) -> Result<Reply, RedisError> {
        read_reply(&mut self.conn).map_err(|e| self.io(&format!("reading the reply to {what}"), e))
    }

    /// `INFO` parsed (see [`parse_info`]).
    pub fn server_info(&mut self) -> Result<ServerInfo, RedisError> {
        self.info()
    }

    /// Every `field:value` line of `INFO` (empty when INFO is not allowed).
    pub fn info_fields(&mut self) -> Result<std::collections::HashMap<String, String>, RedisError> {
        match self.command(&[b"INFO"])? {
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b)
                .lines()
                .filter_map(|l| l.trim().split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()),
            _ => Ok(Default::default()),
        }
    }

    /// For a TCP connection: this end's address and the server's (the address a server
    /// reaches this host at, and where it connects from); `None` on a unix socket.
    pub fn local_and_peer(&self) -> Option<(std::net::IpAddr, std::net::IpAddr)> {
        let s = self.conn.get_ref().tcp()?;
        Some((s.local_addr().ok()?.ip(), s.peer_addr().ok()?.ip()))
    }

    /// The address it is connected to (a Sentinel's master resolved).
    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    /// The name this client was made for (messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn io(&self, what: &str, source: io::Error) -> RedisError {
        // A TLS alert after the handshake (TLS 1.3 refuses a missing client certificate
        // only then) gets the same hint as one during it.
        let source = if source.to_string().contains("alert") {
            tls_hint(source)
        } else {
            source
        };
        RedisError::Io {
            name: self.name.clone(),
            what: what.to_string(),
            source,
        }
    }

    fn denied(&self, command: &'static str, reply: String) -> RedisError {
        RedisError::NoPermission {
            name: self.name.clone(),
            command,
            reply: reply.trim_start_matches('-').to_string(),
        }
    }

    fn send(&mut self, args: &[&[u8]], what: &str) -> Result<(), RedisError> {
        let bytes = resp(args);
        self.conn
            .get_mut()
            .write_all(&bytes)
            .map_err(|e| self.io(&format!("sending {what}"), e))
    }

    /// One line, without its CR LF (a bare LF ends a keep-alive).
    fn line(&mut self, what: &str) -> Result<String, RedisError> {
        let mut buf = Vec::new();
        let n = (&mut self.conn)
            .take(64 * 1024)
            .read_until(b'\n', &mut buf)
            .map_err(|e| self.io(what, e))?;
        if n == 0 {
            return Err(self.io(
                what,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ),
            ));
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Send a command and read a one-line reply (`+OK`, `-ERR ...`, or a bulk header).
    fn call(&mut self, args: &[&[u8]], what: &'static str) -> Result<String, RedisError> {
        self.send(args, what)?;
        self.line(&format!("reading the reply to {what}"))
    }

    /// `INFO`: version, role and key counts; a user without `+info` gets defaults.
    fn info(&mut self) -> Result<ServerInfo, RedisError> {
        // Through the bounded reader: a length a hostile server announces is never allocated.
        match self.command(&[b"INFO"])? {
            Reply::Bulk(Some(body)) => Ok(parse_info(&String::from_utf8_lossy(&body))),
            Reply::Error(e) if e.starts_with("NOPERM") => Ok(ServerInfo::default()),
            Reply::Error(e) if e.starts_with("NOAUTH") => Err(RedisError::Auth {
                name: self.name.clone(),
                reply: e,
                hint: "the server needs a password: set password-file (or password-credential)"
                    .into(),
            }),
            other => Err(RedisError::Refused {
                name: self.name.clone(),
                command: "INFO",
                reply: other.text().unwrap_or_else(|e| format!("-{e}")),
            }),
        }
    }
}

/// The fields of `INFO` the manifest keeps.
pub fn parse_info(text: &str) -> ServerInfo {
    let mut info = ServerInfo {
        info_allowed: true,
        ..ServerInfo::default()
    };
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once(':') else {
            continue;
        };
        match k {
            "redis_version" => info.version = v.to_string(),
            "valkey_version" => info.valkey_version = Some(v.to_string()),
            "role" => info.role = v.to_string(),
            _ => {
                // db0:keys=3,expires=1,avg_ttl=0
                if let Some(n) = k.strip_prefix("db").and_then(|n| n.parse::<u64>().ok()) {
                    let keys = v
                        .split(',')
                        .find_map(|f| f.strip_prefix("keys="))
                        .and_then(|n| n.parse::<u64>().ok());
                    if let Some(keys) = keys {
                        info.keyspace.insert(n, keys);
                    }
                }
            }
        }
    }
    info
}

impl Snapshot {
    /// Stop reading (an error) once `cancel` is cancelled.
    pub fn stop_on(&mut self, cancel: crate::run::Cancel) {
        self.cancel = Some(cancel);
    }

    /// Read from the connection, waiting at most the stall limit for a byte, and not past a
    /// cancellation.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut waited = Duration::ZERO;
        loop {
            if let Some(sig) = self.cancel.as_ref().and_then(|c| c.cancelled()) {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    format!("stopped by signal {sig}"),
                ));
            }
            match self.conn.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    waited += POLL;
                    if waited >= self.stall {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "no byte for {} s (raise the [[redis]] stall-timeout-secs if the server is only slow)",
                                self.stall.as_secs()
                            ),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the master streams it diskless, ended by a mark (`$EOF:`), rather than with a
    /// length announced first (`$<length>`, from an RDB file it wrote).
    pub fn diskless(&self) -> bool {
        self.marked
    }

    /// Bytes of the RDB given out so far.
    pub fn given(&self) -> u64 {
        self.read
    }

    fn broke(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "the snapshot of Redis {} broke off after {} bytes: {e}",
                self.name, self.read
            ),
        )
    }
}

impl Read for Snapshot {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.mode {
                Mode::Done => return Ok(0),
                Mode::Length(0) => {
                    self.mode = Mode::Done;
                    return Ok(0);
                }
                Mode::Length(left) => {
                    let want = (*left).min(buf.len() as u64) as usize;
                    let n = match self.fill(&mut buf[..want]) {
                        Ok(n) => n,
                        Err(e) => return Err(self.broke(e)),
                    };
                    let Mode::Length(left) = &mut self.mode else {
                        unreachable!("the mode changes only below");
                    };
                    if n == 0 {
                        let left = *left;
                        return Err(self.broke(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the server closed the connection {left} bytes before the announced end"),
                        )));
                    }
                    *left -= n as u64;
                    self.read += n as u64;
                    return Ok(n);
                }
                Mode::Mark { mark, held } => {
                    // Give out what cannot be part of the mark any more.
                    if held.len() > mark.len() {
                        let n = (held.len() - mark.len()).min(buf.len());
                        buf[..n].copy_from_slice(&held[..n]);
                        held.drain(..n);
                        self.read += n as u64;
                        return Ok(n);
                    }
                    let mut chunk = vec![0u8; 64 * 1024];
                    let n = match self.fill(&mut chunk) {
                        Ok(n) => n,
                        Err(e) => return Err(self.broke(e)),
                    };
                    let Mode::Mark { mark, held } = &mut self.mode else {
                        unreachable!("the mode changes only below");
                    };
                    if n == 0 {
                        return Err(self.broke(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the connection before the snapshot's end mark",
                        )));
                    }
                    held.extend_from_slice(&chunk[..n]);
                    // The mark ends the RDB; what follows it (a command stream of a server
                    // without rdb-only) is never given out.
                    if let Some(at) = memchr::memmem::find(held, mark) {
                        held.truncate(at);
                        self.mode = Mode::Tail(std::mem::take(held));
                    }
                }
                Mode::Tail(rest) => {
                    if rest.is_empty() {
                        self.mode = Mode::Done;
                        return Ok(0);
                    }
                    let n = rest.len().min(buf.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    rest.drain(..n);
                    self.read += n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://cache.internal").unwrap(),
            (Addr::Tcp("cache.internal".into(), 6379), None)
        );
        assert_eq!(
            parse_url("redis://backup@10.0.0.5:6380/0").unwrap(),
            (Addr::Tcp("10.0.0.5".into(), 6380), Some("backup".into()))
        );
        assert_eq!(
            parse_url("redis://[::1]:7000").unwrap(),
            (Addr::Tcp("::1".into(), 7000), None)
        );
        assert_eq!(
            parse_url("unix:///run/redis/redis.sock").unwrap(),
            (Addr::Unix("/run/redis/redis.sock".into()), None)
        );
        assert!(parse_url("redis://u:secret@h")
            .unwrap_err()
            .contains("password-file"));
        assert_eq!(
            parse_url("rediss://h:6380").unwrap(),
            (Addr::Tcp("h".into(), 6380), None)
        );
        assert!(is_tls_url("rediss://h") && !is_tls_url("redis://h"));
        assert!(parse_url("http://h").is_err());
        assert!(parse_url("redis://h:99999").is_err());
    }

    #[test]
    fn replies_are_read_and_bounded() {
        let read = |b: &[u8]| read_reply(&mut std::io::Cursor::new(b.to_vec()));
        assert_eq!(read(b"+OK\r\n").unwrap(), Reply::Status("OK".into()));
        assert_eq!(read(b"-ERR no\r\n").unwrap(), Reply::Error("ERR no".into()));
        assert_eq!(read(b":42\r\n").unwrap(), Reply::Int(42));
        assert_eq!(read(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            read(b"*2\r\n$1\r\na\r\n:1\r\n").unwrap(),
            Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Int(1)]))
        );
        // A first character of several bytes, a truncated bulk, a bulk too large, nesting too
        // deep, more elements than a reply holds, a line without end: errors, no panic.
        for bad in [
            "\u{e9}x\r\n".as_bytes(),
            b"$10\r\nabc",
            b"$999999999999\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
            b"*2000000\r\n",
            b":12",
            b"",
        ] {
            assert!(read(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let endless = b"*1000000\r\n".repeat(3);
        assert!(read(&endless).is_err());
        let mut big = b"*5\r\n".to_vec();
        for _ in 0..5 {
            big.extend_from_slice(format!("${}\r\n", 15 << 20).as_bytes());
            big.extend(std::iter::repeat_n(b'x', 15 << 20));
            big.extend_from_slice(b"\r\n");
        }
        let e = read(&big).unwrap_err();
        assert!(e.to_string().contains("a reply of"), "{e}");
    }

    #[test]
    fn info_fields() {
        let i = parse_info("# Server\r\nredis_version:7.0.15\r\n# Replication\r\nrole:master\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb5:keys=10,expires=0,avg_ttl=0\r\n");
        assert_eq!(i.version, "7.0.15");
        assert_eq!(i.role, "master");
        assert_eq!(i.keyspace.get(&0), Some(&3));
        assert_eq!(i.keyspace.get(&5), Some(&10));
    }
}
