//! A snapshot served as a replication master, for the restore of a Redis server that pgbackup
//! reaches only over the network: the target is told `REPLICAOF <us>`, loads the snapshot as
//! a replica's full resynchronisation (its own code, its own AOF handling: Redis rewrites the
//! append-only file after a full sync), then is told `REPLICAOF NO ONE`.
//!
//! The feed listens on one ephemeral port of the address the target reaches pgbackup from,
//! answers one replica, and serves the snapshot only to a replica that logs in with a one-time
//! token (the restore sets it as the target's `masterauth` for the transfer) from the target's
//! address: nobody else on the network can take the data while the port is open.
//!
//! The protocol, as a replica speaks it: `PING` (+PONG), `AUTH [user] token` (+OK),
//! `REPLCONF listening-port|ip-address|capa ...` (+OK), `PSYNC replid offset` (or `SYNC`):
//! `+FULLRESYNC <replid> 0`, then `$<length>` and the RDB's bytes. Then the replica sends
//! `REPLCONF ACK <offset>` every second (never answered); the feed sends a `PING` every
//! few seconds so that its link stays up until the restore ends it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::secret::Secret;

/// Where the feed is, as the restore sees it.
#[derive(Debug, Clone, Default)]
pub struct FeedState {
    /// A replica connected (from this address).
    pub connected: Option<SocketAddr>,
    /// It logged in with the token.
    pub authenticated: bool,
    /// Bytes of the snapshot sent.
    pub sent: u64,
    /// The whole snapshot was sent.
    pub done: bool,
    /// Why the feed stopped, when it failed (a refused connection is noted, not fatal).
    pub error: Option<String>,
    /// Connections refused (wrong address or token).
    pub refused: Vec<String>,
}

/// A running feed; stopped (connection closed) when dropped.
#[derive(Debug)]
pub struct Feed {
    addr: SocketAddr,
    token: Secret,
    state: Arc<Mutex<FeedState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Bytes sent (also in `state`, readable without the lock).
    sent: Arc<AtomicU64>,
}

/// `n` random bytes from the kernel, hex (Linux only, as pgbackup is: no crate for 16 lines).
fn random_hex(n: usize) -> Result<String, String> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A 40-hex-digit replication id.
fn replid() -> String {
    random_hex(20).unwrap_or_else(|_| "0".repeat(40))
}

impl Feed {
    /// Listen on `bind` (port chosen by the kernel) for one replica from `peer` (`None`: any
    /// address of this host, for a target on a unix socket or loopback) and serve it the RDB
    /// file `rdb`.
    pub fn start(rdb: &Path, bind: IpAddr, peer: Option<IpAddr>) -> Result<Feed, String> {
        let listener = TcpListener::bind((bind, 0))
            .map_err(|e| format!("cannot listen on {bind} for the target to connect: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
        // A one-time token for `masterauth`: 32 random bytes.
        let token = Secret::new(random_hex(32)?);
        let state = Arc::new(Mutex::new(FeedState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            listener,
            rdb: rdb.to_path_buf(),
            peer,
            token: token.clone(),
            state: state.clone(),
            stop: stop.clone(),
            sent: sent.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("redis-feed".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the feed: {e}"))?;
        Ok(Feed {
            addr,
            token,
            state,
            stop,
            thread: Some(thread),
            sent,
        })
    }

    /// The address the target is told to replicate from.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token the target must log in with (its `masterauth` for the transfer).
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// Where it stands.
    pub fn state(&self) -> FeedState {
        let mut s = self.state.lock().map(|s| s.clone()).unwrap_or_default();
        s.sent = self.sent.load(Ordering::Relaxed);
        s
    }

    /// Close the connection and stop.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    listener: TcpListener,
    rdb: PathBuf,
    peer: Option<IpAddr>,
    token: Secret,
    state: Arc<Mutex<FeedState>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
}

/// Commands a replica sends before PSYNC; more, or longer ones, end the connection.
const MAX_HANDSHAKE: usize = 32;
const MAX_ARG: usize = 4096;

impl Worker {
    fn set(&self, f: impl FnOnce(&mut FeedState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }

    fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((conn, from)) => {
                    let allowed = match self.peer {
                        Some(p) => same_ip(p, from.ip()),
                        None => from.ip().is_loopback() || is_local(from.ip()),
                    };
                    if !allowed {
                        self.set(|s| s.refused.push(format!("{from} (not the target's address)")));
                        continue;
                    }
                    self.set(|s| s.connected = Some(from));
                    match self.serve(conn) {
                        Ok(true) => return,
                        Ok(false) => {
                            self.set(|s| s.refused.push(format!("{from} (without the token)")))
                        }
                        Err(e) => {
                            let stopped = self.stop.load(Ordering::Relaxed);
                            self.set(|s| {
                                if !stopped && !s.done {
                                    s.error = Some(e);
                                }
                            });
                            return;
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    self.set(|s| s.error = Some(format!("accepting the target's connection: {e}")));
                    return;
                }
            }
        }
    }

    /// One replica: `Ok(true)` when it took the snapshot and the feed ended (stopped), `Ok(false)`
    /// when it did not log in with the token.
    fn serve(&self, conn: TcpStream) -> Result<bool, String> {
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        conn.set_nonblocking(false)
            .map_err(|e| io("the connection", e))?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| io("the connection", e))?;
        conn.set_write_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| io("the connection", e))?;
        let mut out = conn.try_clone().map_err(|e| io("the connection", e))?;
        let mut input = BufReader::new(conn);
        let mut authenticated = false;
        for _ in 0..MAX_HANDSHAKE {
            let args =
                read_command(&mut input).map_err(|e| io("reading the replica's command", e))?;
            let cmd = args
                .first()
                .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
                .unwrap_or_default();
            match cmd.as_str() {
                "PING" => out.write_all(if authenticated {
                    b"+PONG\r\n"
                } else {
                    b"-NOAUTH Authentication required.\r\n"
                }),
                "AUTH" => {
                    let given = args.last().map(|a| a.as_slice()).unwrap_or_default();
                    if args.len() >= 2 && constant_time_eq(given, self.token.expose().as_bytes()) {
                        authenticated = true;
                        self.set(|s| s.authenticated = true);
                        out.write_all(b"+OK\r\n")
                    } else {
                        let _ = out.write_all(b"-WRONGPASS invalid username-password pair\r\n");
                        return Ok(false);
                    }
                }
                "REPLCONF" if authenticated => out.write_all(b"+OK\r\n"),
                "PSYNC" | "SYNC" if authenticated => {
                    let id = replid();
                    if cmd == "PSYNC" {
                        out.write_all(format!("+FULLRESYNC {id} 0\r\n").as_bytes())
                            .map_err(|e| io("answering PSYNC", e))?;
                    }
                    self.send_snapshot(&mut out)?;
                    self.keep_alive(&mut out, &mut input);
                    return Ok(true);
                }
                _ if !authenticated => {
                    let _ = out.write_all(b"-NOAUTH Authentication required.\r\n");
                    return Ok(false);
                }
                _ => out.write_all(b"+OK\r\n"),
            }
            .map_err(|e| io("answering the replica", e))?;
        }
        Err("the replica sent too many commands before PSYNC".into())
    }

    fn send_snapshot(&self, out: &mut TcpStream) -> Result<(), String> {
        let mut file = std::fs::File::open(&self.rdb)
            .map_err(|e| format!("cannot open {}: {e}", self.rdb.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", self.rdb.display()))?
            .len();
        out.write_all(format!("${len}\r\n").as_bytes())
            .map_err(|e| format!("sending the snapshot: {e}"))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err("stopped".into());
            }
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("reading {}: {e}", self.rdb.display()))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| format!("sending the snapshot: {e}"))?;
            self.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        out.flush()
            .map_err(|e| format!("sending the snapshot: {e}"))?;
        self.set(|s| s.done = true);
        Ok(())
    }

    /// Until stopped: drain the replica's ACKs, and PING it every 5 s.
    fn keep_alive(&self, out: &mut TcpStream, input: &mut BufReader<TcpStream>) {
        let _ = input
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)));
        let mut last_ping = Instant::now();
        let mut sink = [0u8; 4096];
        while !self.stop.load(Ordering::Relaxed) {
            match input.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
            if last_ping.elapsed() > Duration::from_secs(5) {
                last_ping = Instant::now();
                if out.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
                    return;
                }
            }
        }
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    canon(a) == canon(b)
}

/// Whether `ip` is one of this host's addresses (a local target connecting over a non-loopback
/// address of its own host).
fn is_local(ip: IpAddr) -> bool {
    TcpListener::bind((ip, 0)).is_ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One command: a RESP array of bulk strings, or an inline line (`PING\r\n`); bounded (16
/// arguments of at most 4 KiB), whatever a stranger on the port sends.
pub fn read_command(input: &mut impl BufRead) -> std::io::Result<Vec<Vec<u8>>> {
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let mut line = Vec::new();
    input.take(MAX_ARG as u64).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the replica closed the connection",
        ));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    if line.first() != Some(&b'*') {
        return Ok(line
            .split(|b| *b == b' ')
            .filter(|w| !w.is_empty())
            .map(<[u8]>::to_vec)
            .collect());
    }
    let n: usize = std::str::from_utf8(&line[1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n <= 16)
        .ok_or_else(|| bad("a malformed command"))?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let mut head = Vec::new();
        input.take(64).read_until(b'\n', &mut head)?;
        let len: usize = std::str::from_utf8(head.strip_prefix(b"$").unwrap_or_default())
            .ok()
            .map(str::trim)
            .and_then(|s| s.parse().ok())
            .filter(|n| *n <= MAX_ARG)
            .ok_or_else(|| bad("a malformed argument"))?;
        let mut arg = vec![0u8; len + 2];
        input.read_exact(&mut arg)?;
        arg.truncate(len);
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_in_both_forms() {
        let mut r = std::io::Cursor::new(
            b"*3\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\nPING\r\n".to_vec(),
        );
        assert_eq!(
            read_command(&mut r).unwrap(),
            vec![b"REPLCONF".to_vec(), b"capa".to_vec(), b"eof".to_vec()]
        );
        assert_eq!(read_command(&mut r).unwrap(), vec![b"PING".to_vec()]);
        assert!(read_command(&mut r).is_err());
        let mut huge = std::io::Cursor::new(b"*2\r\n$999999\r\n".to_vec());
        assert!(read_command(&mut huge).is_err());
    }

    #[test]
    fn addresses_compare_across_families() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(same_ip(v4, mapped));
        assert!(!same_ip(v4, "127.0.0.2".parse().unwrap()));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
