//! Redis snapshots over the replication protocol (#16), against real redis-server processes
//! started here on private unix sockets and loopback ports: every value type, TTLs, several
//! logical databases and a Functions library; both forms of the answer (diskless `$EOF:` and
//! `$<length>`); wrong password, an ACL user without SYNC, a server that closes mid-transfer,
//! and damaged snapshots.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pgbackup::rdb::RdbObserver;
use pgbackup::redis::{snapshot, Addr, RedisError, RedisTarget};
use pgbackup::secret::Secret;

use crate::harness::*;

const PASSWORD: &str = "redis-test-pw-0Qx";

/// A redis-server of this test's own (killed when dropped).
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    extra: Vec<String>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(&dir, port, extra);
        let s = Server {
            child,
            dir,
            port,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.wait_up();
        s
    }

    /// Kill it (no save) and start it again on the same directory and settings.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = Self::spawn(&self.dir, self.port, &extra);
        self.wait_up();
    }

    fn wait_up(&self) {
        wait_for(Duration::from_secs(20), "redis-server to answer", || {
            self.cli(&["PING"]).trim() == "PONG"
        });
    }

    fn spawn(dir: &tempfile::TempDir, port: u16, extra: &[&str]) -> Child {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--unixsocket")
            .arg(dir.path().join("redis.sock"))
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--enable-debug-command", "local"])
            .args(["--requirepass", PASSWORD])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn()
            .expect("redis-server (Debian package redis-server; scripts/test.sh installs it)")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// redis-cli over the socket (the password through REDISCLI_AUTH, not argv).
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .env("REDISCLI_AUTH", PASSWORD)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Feed commands (one per line) through redis-cli.
    fn pipe(&self, commands: &str) {
        let mut child = Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .env("REDISCLI_AUTH", PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(commands.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }

    fn target(&self, addr: Addr) -> RedisTarget {
        RedisTarget {
            name: "cache".into(),
            addr,
            user: None,
            password: Some(Secret::new(PASSWORD)),
            password_source: Some("password-file /etc/pgbackup/redis.pass".into()),
            sentinel_password: None,
            tls: None,
            mode: Default::default(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keys of every type, in three logical databases, some with a TTL, and a Functions library.
/// Returns the keys per database.
fn load(s: &Server) -> Vec<(u64, u64)> {
    let mut cmds = String::new();
    cmds.push_str("SELECT 0\nSET s hello\nSET n 12345\nSET big ");
    cmds.push_str(&"x".repeat(100_000));
    cmds.push_str("\nSET ttl v EX 3600\n");
    cmds.push_str("HSET hsmall f1 v1 f2 v2\n");
    for i in 0..600 {
        cmds.push_str(&format!("HSET hbig f{i} value-{i}\n"));
    }
    cmds.push_str("RPUSH lsmall a b c\n");
    for i in 0..3000 {
        cmds.push_str(&format!("RPUSH lbig item-{i}-{}\n", "y".repeat(20)));
    }
    cmds.push_str("SADD sint 1 2 3 4\nSADD sstr a b c\n");
    for i in 0..700 {
        cmds.push_str(&format!("SADD sbig member-{i}\n"));
    }
    cmds.push_str("ZADD zsmall 1 a 2.5 b\n");
    for i in 0..300 {
        cmds.push_str(&format!("ZADD zbig {i}.5 m{i}\n"));
    }
    cmds.push_str("XADD st * f v\nXADD st * g w\nXGROUP CREATE st grp 0\nXREADGROUP GROUP grp alice COUNT 1 STREAMS st >\n");
    cmds.push_str("PFADD hll a b c d e\nSETBIT bits 1000 1\n");
    cmds.push_str("EXPIRE hbig 7200\n");
    cmds.push_str("SELECT 1\nSET one 1\nLPUSH l x\n");
    cmds.push_str("SELECT 7\nSET seven 7\n");
    s.pipe(&cmds);
    s.pipe("FUNCTION LOAD \"#!lua name=mylib\\nredis.register_function('myfunc', function(keys, args) return args[1] end)\"\n");
    vec![(0, 16), (1, 2), (7, 1)]
}

/// The manifest's keys per logical database, as `(db<N>, keys)`.
fn key_counts(m: &serde_json::Value) -> Vec<(String, u64)> {
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["schema"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What [`load`] returns, in the manifest's terms.
fn as_counts(expected: &[(u64, u64)]) -> Vec<(String, u64)> {
    expected
        .iter()
        .map(|(d, k)| (format!("db{d}"), *k))
        .collect()
}

fn observe(bytes: &[u8]) -> RdbObserver {
    let mut o = RdbObserver::default();
    for c in bytes.chunks(8191) {
        o.feed(c);
    }
    o
}

fn take(target: &RedisTarget) -> (pgbackup::redis::ServerInfo, Vec<u8>) {
    take_form(target).0
}

/// The snapshot, and whether it came in the diskless form.
fn take_form(target: &RedisTarget) -> ((pgbackup::redis::ServerInfo, Vec<u8>), bool) {
    let (info, mut snap) = snapshot(target, Duration::from_secs(30)).expect("snapshot");
    let mut bytes = Vec::new();
    snap.read_to_end(&mut bytes).expect("read the snapshot");
    assert_eq!(snap.given(), bytes.len() as u64);
    ((info, bytes), snap.diskless())
}

fn check_with_redis_check_rdb(dir: &Path, bytes: &[u8]) {
    let f = dir.join("fetched.rdb");
    std::fs::write(&f, bytes).unwrap();
    let out = Command::new("redis-check-rdb").arg(&f).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("RDB looks OK"),
        "redis-check-rdb: {text}"
    );
}

#[test]
fn a_snapshot_over_sync_in_both_forms_is_whole_and_counts_every_key() {
    let s = Server::start(&[]);
    let expected = load(&s);
    let digest_before = s.cli(&["DEBUG", "DIGEST"]);
    for diskless in ["yes", "no"] {
        s.cli(&["CONFIG", "SET", "repl-diskless-sync", diskless]);
        s.cli(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
        for addr in [
            Addr::Unix(s.socket()),
            Addr::Tcp("127.0.0.1".into(), s.port),
        ] {
            let ((info, bytes), form) = take_form(&s.target(addr.clone()));
            assert_eq!(form, diskless == "yes", "the answer's form");
            let o = observe(&bytes);
            assert_eq!(o.incomplete_reason(), None, "diskless {diskless}, {addr}");
            assert_eq!(o.version(), 10, "Redis 7.0 writes RDB version 10");
            assert_ne!(o.checksum(), Some(0), "the server writes a CRC-64");
            assert_eq!(o.functions(), 1, "the Functions library");
            let counted: Vec<(u64, u64)> = o.keys().iter().map(|(d, k)| (*d, k.keys)).collect();
            assert_eq!(counted, expected, "keys per database");
            assert_eq!(o.keys()[&0].expires, 2, "the keys with a TTL");
            let from_info: Vec<(u64, u64)> = info.keyspace.iter().map(|(d, k)| (*d, *k)).collect();
            assert_eq!(from_info, expected, "INFO keyspace");
            assert!(info.version.starts_with("7."), "{info:?}");
            assert_eq!(info.role, "master");
            assert_eq!(o.aux().get("redis-ver"), Some(&info.version));
            check_with_redis_check_rdb(s.dir.path(), &bytes);
        }
    }
    // Loaded into a fresh server, the snapshot is the same data.
    let f = s.dir.path().join("fetched.rdb");
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&f, restored.path().join("dump.rdb")).unwrap();
    let port = free_port();
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--unixsocket")
        .arg(restored.path().join("r.sock"))
        .arg("--dir")
        .arg(restored.path())
        .args(["--dbfilename", "dump.rdb", "--appendonly", "no"])
        .args(["--enable-debug-command", "local"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(restored.path().join("r.sock"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for(Duration::from_secs(20), "the restored server", || {
        cli(&["PING"]).trim() == "PONG"
    });
    let digest_after = cli(&["DEBUG", "DIGEST"]);
    let functions = cli(&["FUNCTION", "LIST"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        digest_after, digest_before,
        "DEBUG DIGEST of the loaded snapshot"
    );
    assert!(functions.contains("mylib"), "{functions}");
}

#[test]
fn wrong_password_and_a_user_without_sync_are_named_with_the_fix() {
    let s = Server::start(&[]);
    let mut t = s.target(Addr::Unix(s.socket()));
    t.password = Some(Secret::new("not-it"));
    let e = snapshot(&t, Duration::from_secs(10)).unwrap_err();
    assert!(matches!(e, RedisError::Auth { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("check the password in password-file /etc/pgbackup/redis.pass"),
        "{msg}"
    );
    assert!(!msg.contains("not-it"), "{msg}");

    // An ACL user that may log in and read INFO but not replicate.
    s.cli(&[
        "ACL",
        "SETUSER",
        "reader",
        "on",
        ">reader-pw",
        "+info",
        "+replconf",
    ]);
    let t = RedisTarget {
        user: Some("reader".into()),
        password: Some(Secret::new("reader-pw")),
        ..s.target(Addr::Unix(s.socket()))
    };
    let e = snapshot(&t, Duration::from_secs(10)).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            RedisError::NoPermission {
                command: "SYNC",
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("+sync +replconf +info"), "{msg}");

    // +sync +replconf alone (no +info) is enough for the snapshot itself.
    s.cli(&[
        "ACL",
        "SETUSER",
        "syncer",
        "on",
        ">syncer-pw",
        "+sync",
        "+replconf",
    ]);
    let t = RedisTarget {
        user: Some("syncer".into()),
        password: Some(Secret::new("syncer-pw")),
        ..s.target(Addr::Unix(s.socket()))
    };
    let (info, bytes) = take(&t);
    assert!(!info.info_allowed);
    assert_eq!(observe(&bytes).incomplete_reason(), None);
}

/// A server that answers every command with +OK, announces a snapshot of 1000 bytes, sends
/// 100 and closes.
fn half_a_snapshot_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        loop {
            let n = conn.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if text.contains("INFO") && !text.contains("REPLCONF") {
                let body = "# Server\r\nredis_version:7.0.15\r\nrole:master\r\n";
                let _ = conn.write_all(format!("${}\r\n{body}\r\n", body.len()).as_bytes());
                seen.clear();
            } else if text.contains("SYNC") && !text.contains("REPLCONF") {
                let _ = conn.write_all(b"\n\n$1000\r\nREDIS0010");
                let _ = conn.write_all(&[0u8; 91]);
                return;
            } else if text.contains("REPLCONF") {
                let _ = conn.write_all(b"+OK\r\n");
                seen.clear();
            }
        }
    });
    port
}

#[test]
fn a_server_that_closes_mid_transfer_and_damaged_snapshots_are_caught() {
    let port = half_a_snapshot_server();
    let t = RedisTarget {
        name: "half".into(),
        addr: Addr::Tcp("127.0.0.1".into(), port),
        user: None,
        password: None,
        password_source: None,
        sentinel_password: None,
        tls: None,
        mode: Default::default(),
    };
    let (_, mut snap) = snapshot(&t, Duration::from_secs(10)).expect("the transfer starts");
    let mut bytes = Vec::new();
    let e = snap.read_to_end(&mut bytes).unwrap_err();
    assert!(e.to_string().contains("broke off after 100 bytes"), "{e}");
    assert!(
        e.to_string().contains("900 bytes before the announced end"),
        "{e}"
    );

    // A real snapshot, cut and bit-flipped: never whole.
    let s = Server::start(&[]);
    load(&s);
    let (_, bytes) = take(&s.target(Addr::Unix(s.socket())));
    for cut in [9, bytes.len() / 2, bytes.len() - 9, bytes.len() - 1] {
        assert!(
            observe(&bytes[..cut]).incomplete_reason().is_some(),
            "cut at {cut} of {}",
            bytes.len()
        );
    }
    for at in [20, bytes.len() / 3, bytes.len() / 2, bytes.len() - 12] {
        let mut b = bytes.clone();
        b[at] ^= 0x04;
        let why = observe(&b).incomplete_reason();
        assert!(why.is_some(), "a flipped bit at {at} passed");
    }
}

/// `pgbackup backup` with a `[[redis]]` entry (and no PostgreSQL database): a snapshot over
/// SYNC beside the databases' backups, with sidecar and manifest, that `sha256sum -c`,
/// `zstd -d` and `redis-check-rdb` accept; `verify` checks its structure and key counts; a
/// flipped bit is 65; `list` shows it; `restore` says it cannot yet, and what to do.
#[test]
fn pgbackup_backs_up_and_verifies_a_redis_server() {
    // No 5-second wait for more replicas before the fork: the short TTL below is timed.
    let s = Server::start(&["--repl-diskless-sync-delay", "0"]);
    let mut expected = load(&s);
    let env = TestEnv::new();
    let pw = env.tmp.path().join("redis.pass");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let entry = format!(
        "[backup]\ncompression = \"zstd\"\n\n[[redis]]\nname = \"cache\"\nurl = \"unix://{}\"\npassword-file = \"{}\"\n",
        s.socket().display(),
        pw.display()
    );
    env.write_config(&entry);
    s.pipe("SELECT 0\nSET short v PX 3000\n");
    expected[0].1 += 1;
    let digest_before = s.cli(&["DEBUG", "DIGEST"]).trim().to_string();
    assert_eq!(digest_before.len(), 40, "{digest_before}");
    let r = env.run(&["backup"]);
    r.expect_code(0)
        .expect_stderr_or_stdout("cache: backup complete")
        .expect_stderr_or_stdout("20 keys in 3 logical databases");
    let files = env.data_files("cache");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].starts_with("cache_") && files[0].ends_with(".rdb.zst"),
        "{files:?}"
    );
    let file = env.db_dir("cache").join(&files[0]);
    expect_sha256sum_ok(&file);
    let rdb = env.tmp.path().join("plain.rdb");
    sh(&format!(
        "zstd -q -d -c '{}' > '{}'",
        file.display(),
        rdb.display()
    ));
    check_with_redis_check_rdb(env.tmp.path(), &std::fs::read(&rdb).unwrap());

    let m = manifest_json(&file);
    assert_eq!(m["dump_format"], "rdb");
    assert!(
        m["server_version"].as_str().unwrap().starts_with("7."),
        "{m}"
    );
    let (counted, want) = (key_counts(&m), as_counts(&expected));
    assert_eq!(counted, want, "keys per database in the manifest: {m}");
    for out in [
        &r.stdout,
        &r.stderr,
        &std::fs::read_to_string(format!("{}.json", file.display())).unwrap(),
    ] {
        assert!(!out.contains(PASSWORD), "the password leaked: {out}");
    }

    env.run(&["verify", "--db", "cache"])
        .expect_code(0)
        .expect_stderr_or_stdout("ok");
    let json = env.run(&["verify", "--db", "cache", "--json"]);
    json.expect_code(0)
        .expect_stderr_or_stdout("Redis snapshot whole");
    let facts = &m["redis"];
    assert_eq!(facts["rdb_version"], 10, "{m}");
    assert_eq!(facts["role"], "master", "{m}");
    assert_eq!(facts["functions"], 1, "{m}");
    assert_eq!(facts["volatile"]["0"], 3, "{m}");
    for (db, keys) in &expected {
        assert_eq!(facts["server_keyspace"][db.to_string()], *keys, "{m}");
    }

    // The test restore: a throwaway redis-server loads the snapshot; its keys per database
    // are the manifest's, and its DEBUG DIGEST is the source's at snapshot time, although the
    // key with a 2-second TTL expired on the source since.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        s.cli(&["EXISTS", "short"]).trim(),
        "0",
        "the short key expired"
    );
    let r = env.run(&["verify", "--db", "cache", "--test-restore", "--json"]);
    r.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let tr = rows[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "test-restore")
        .cloned()
        .unwrap_or_default();
    assert_eq!(tr["ok"], true, "{}", r.stdout);
    let detail = tr["detail"].as_str().unwrap();
    let total: u64 = expected.iter().map(|(_, k)| k).sum();
    assert!(
        detail.contains(&format!(
            "{total} keys in 3 logical databases match the manifest"
        )),
        "{detail}"
    );
    assert!(detail.contains("1 Functions library"), "{detail}");
    assert!(
        detail.contains(&format!("DEBUG DIGEST {digest_before}")),
        "the digest at snapshot time was {digest_before}: {detail}"
    );
    assert!(
        std::fs::read_dir(&env.backups)
            .unwrap()
            .flatten()
            .all(|e| !e
                .file_name()
                .to_string_lossy()
                .starts_with(".pgbackup-tmp.")),
        "the throwaway server's directory was removed"
    );
    // A server too old for the snapshot's RDB version: a clear refusal, not a load error.
    let old = env.tmp.path().join("old-redis-server");
    std::fs::write(
        &old,
        "#!/bin/sh\necho 'Redis server v=6.2.0 sha=0 bits=64'\n",
    )
    .unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.write_config(&format!(
        "{entry}\n[verify]\nredis-server-path = \"{}\"\n",
        old.display()
    ));
    env.run(&["verify", "--db", "cache", "--test-restore"])
        .expect_code(1)
        .expect_stderr_or_stdout("RDB version 10, which old-redis-server 6.2.0 cannot load");
    env.write_config(&entry);

    env.run(&["list"])
        .expect_code(0)
        .expect_stderr_or_stdout("rdb zstd-3");

    // A flipped bit inside the snapshot, sidecar made to match: the RDB checks catch it.
    let mut plain = std::fs::read(&rdb).unwrap();
    let at = plain.len() / 2;
    plain[at] ^= 0x01;
    std::fs::write(&rdb, &plain).unwrap();
    sh(&format!(
        "zstd -q -f '{}' -o '{}'",
        rdb.display(),
        file.display()
    ));
    sh(&format!(
        "cd '{}' && sha256sum '{}' > '{}.sha256'",
        file.parent().unwrap().display(),
        files[0],
        files[0]
    ));
    let r = env.run(&["verify", "--db", "cache", "--json"]);
    r.expect_code(65);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let complete = rows[0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "complete")
        .cloned()
        .unwrap_or_default();
    assert_eq!(complete["ok"], false, "{}", r.stdout);
}

/// An RDB whose structure and checksum are sound but which Redis refuses (a key twice in one
/// database): the test restore's server says why, and the backup fails verification (65).
#[test]
fn a_snapshot_redis_refuses_to_load_fails_the_test_restore() {
    let env = TestEnv::new();
    env.write_config("");
    let mut rdb = b"REDIS0010".to_vec();
    rdb.extend_from_slice(&[0xFE, 0x00]);
    for v in [b'1', b'2'] {
        rdb.extend_from_slice(&[0x00, 0x01, b'a', 0x01, v]);
    }
    rdb.push(0xFF);
    let crc = pgbackup::rdb::crc64(&rdb);
    rdb.extend_from_slice(&crc.to_le_bytes());
    let dir = env.db_dir("cache");
    std::fs::create_dir_all(&dir).unwrap();
    let plain = env.tmp.path().join("dup.rdb");
    std::fs::write(&plain, &rdb).unwrap();
    let name = "cache_20261201_000000.rdb.zst";
    sh(&format!(
        "zstd -q '{}' -o '{}/{name}' && cd '{}' && sha256sum {name} > {name}.sha256",
        plain.display(),
        dir.display(),
        dir.display()
    ));
    // Whole as far as the stream goes: the structure and CRC pass.
    env.run(&["verify", "--db", "cache"]).expect_code(0);
    let r = env.run(&["verify", "--db", "cache", "--test-restore"]);
    r.expect_code(65)
        .expect_stderr_or_stdout("redis-server 7.0.15 exited")
        .expect_stderr_or_stdout("RDB has duplicated key 'a' in DB 0");
}

/// The `[[redis]] cache` entry for server `s`, with its password file.
fn cache_entry(env: &TestEnv, s: &Server) -> String {
    let pw = env.tmp.path().join("redis.pass");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    format!(
        "[backup]\ncompression = \"zstd\"\n\n[[redis]]\nname = \"cache\"\nurl = \"unix://{}\"\npassword-file = \"{}\"\n",
        s.socket().display(),
        pw.display()
    )
}

/// `pgbackup restore` of a snapshot by replication: into a server with other data and
/// `appendonly yes` (a safety snapshot first; the restored data survives a restart, so the AOF
/// was rewritten from it), over TCP into an empty one without AOF; DEBUG DIGEST equal to the
/// source's each time, the target a master again with its masterauth as before.
#[test]
fn restore_by_replication_with_and_without_aof() {
    let src = Server::start(&["--repl-diskless-sync-delay", "0"]);
    let expected = load(&src);
    let digest = src.cli(&["DEBUG", "DIGEST"]).trim().to_string();
    let env = TestEnv::new();
    env.write_config(&cache_entry(&env, &src));
    env.run(&["backup"]).expect_code(0);
    drop(src);

    let mut dst = Server::start(&["--appendonly", "yes", "--masterauth", "old-secret-kept"]);
    dst.pipe("SET old 1\nSET old2 2\nSELECT 3\nSET x y\n");
    env.write_config(&cache_entry(&env, &dst));
    let r = env.run(&["restore", "--db", "cache", "--latest", "--yes"]);
    r.expect_code(0)
        .expect_stderr("a safety snapshot of the target is taken first")
        .expect_stderr("appendonly yes")
        .expect_stderr("the append-only file was rewritten");
    assert_eq!(dst.cli(&["DEBUG", "DIGEST"]).trim(), digest, "{}", r.stderr);
    assert!(dst.cli(&["ROLE"]).starts_with("master"), "a master again");
    assert!(
        dst.cli(&["CONFIG", "GET", "masterauth"])
            .contains("old-secret-kept"),
        "masterauth put back"
    );
    for out in [&r.stdout, &r.stderr] {
        assert!(
            !out.contains(PASSWORD) && !out.contains("old-secret-kept"),
            "{out}"
        );
    }
    let total: u64 = expected.iter().map(|(_, k)| k).sum();
    assert!(
        r.stderr
            .contains(&format!("{total} keys in 3 logical databases")),
        "{}",
        r.stderr
    );
    // The safety snapshot holds the old data (3 keys in db0 and db3).
    let safety = env.backups.join("_safety").join("cache");
    let snaps: Vec<_> = std::fs::read_dir(&safety)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".rdb.zst"))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let m = manifest_json(&snaps[0]);
    assert_eq!(m["tables"][0]["rows"], 2, "{m}");
    assert_eq!(m["tables"][1]["schema"], "db3", "{m}");
    // With appendonly yes Redis starts from its AOF: the restore is in it.
    dst.restart();
    assert_eq!(
        dst.cli(&["DEBUG", "DIGEST"]).trim(),
        digest,
        "after a restart"
    );

    // Over TCP, into an empty server without AOF: no safety snapshot needed.
    let plain = Server::start(&[]);
    let entry = cache_entry(&env, &plain).replace(
        &format!("unix://{}", plain.socket().display()),
        &format!("redis://127.0.0.1:{}", plain.port),
    );
    env.write_config(&entry);
    let r = env.run(&["restore", "--db", "cache", "--latest", "--yes"]);
    r.expect_code(0);
    assert!(!r.stderr.contains("safety snapshot"), "{}", r.stderr);
    assert_eq!(plain.cli(&["DEBUG", "DIGEST"]).trim(), digest);
}

/// Refusals before anything changes: a target that is a replica (2), a target too old for
/// the snapshot's RDB version (2), a feed connection without the token (refused, no data).
#[test]
fn restore_refuses_a_replica_an_older_server_and_strangers() {
    let src = Server::start(&["--repl-diskless-sync-delay", "0"]);
    load(&src);
    let env = TestEnv::new();
    env.write_config(&cache_entry(&env, &src));
    env.run(&["backup"]).expect_code(0);

    let replica = Server::start(&["--masterauth", PASSWORD]);
    assert!(replica
        .cli(&["REPLICAOF", "127.0.0.1", &src.port.to_string()])
        .contains("OK"));
    env.write_config(&cache_entry(&env, &replica));
    env.run(&["restore", "--db", "cache", "--latest", "--yes"])
        .expect_code(2)
        .expect_stderr("is a replica")
        .expect_stderr("nothing was changed");

    // An old server (a fake that says 6.2.0 in INFO).
    let port = old_server();
    let entry = cache_entry(&env, &src).replace(
        &format!("unix://{}", src.socket().display()),
        &format!("redis://127.0.0.1:{port}"),
    );
    env.write_config(&entry);
    env.run(&["restore", "--db", "cache", "--latest", "--yes"])
        .expect_code(2)
        .expect_stderr("RDB version 10, which Redis 6.2.0")
        .expect_stderr("reads up to 9");

    // The feed serves only a replica with the token, and only from the target's address.
    let rdb = env.tmp.path().join("x.rdb");
    std::fs::write(&rdb, b"REDIS0010").unwrap();
    let feed = pgbackup::redis_feed::Feed::start(&rdb, "127.0.0.1".parse().unwrap(), None).unwrap();
    let mut c = std::net::TcpStream::connect(feed.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"PSYNC ? -1\r\n").unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("-NOAUTH"), "{got}");
    assert!(!got.contains("REDIS"), "{got}");
    let mut c = std::net::TcpStream::connect(feed.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"AUTH default wrong-token\r\nPSYNC ? -1\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("-WRONGPASS"), "{got}");
    assert!(!got.contains("REDIS"), "{got}");
    wait_for(Duration::from_secs(5), "both refusals noted", || {
        feed.state().refused.len() == 2
    });
    assert!(!feed.state().done);
}

/// A server that answers AUTH with +OK and INFO as Redis 6.2.0, master.
fn old_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = conn.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    if text.contains("INFO") {
                        let body = "# Server\r\nredis_version:6.2.0\r\nrole:master\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n";
                        let _ = conn.write_all(format!("${}\r\n{body}\r\n", body.len()).as_bytes());
                    } else {
                        let _ = conn.write_all(b"+OK\r\n");
                    }
                }
            });
        }
    });
    port
}

/// `backup --only redis` (what pgbackup-redis.timer runs) and `--only postgres` with both kinds
/// configured; `--only` naming the wrong kind, or a kind not configured, is a usage error.
#[test]
fn only_selects_redis_or_postgres() {
    let s = Server::start(&["--repl-diskless-sync-delay", "0"]);
    load(&s);
    let env = TestEnv::new();
    let db = cluster().create_db("only");
    let entry = cache_entry(&env, &s);
    env.write_config(&format!("{entry}\n{}", env.db_entry("shop", &db)));
    env.run(&["backup", "--only", "redis"]).expect_code(0);
    assert_eq!(env.data_files("cache").len(), 1);
    assert!(
        env.data_files("shop").is_empty(),
        "--only redis dumped PostgreSQL"
    );
    env.run(&["backup", "--only", "postgres", "--force"])
        .expect_code(0);
    assert_eq!(env.data_files("shop").len(), 1);
    assert_eq!(
        env.data_files("cache").len(),
        1,
        "--only postgres took a snapshot"
    );
    env.run(&["backup", "--only", "redis", "--db", "shop"])
        .expect_code(2)
        .expect_stderr("shop is not a [[redis]] server");
    env.run(&["backup", "--only", "postgres", "--db", "cache"])
        .expect_code(2)
        .expect_stderr("names a [[redis]] server");
    env.write_config(&env.db_entry("shop", &db));
    env.run(&["backup", "--only", "redis"])
        .expect_code(2)
        .expect_stderr("no [[redis]] server is configured");
    env.write_config(&entry);
    env.run(&["backup", "--only", "postgres"])
        .expect_code(2)
        .expect_stderr("no [[database]] is configured");
}

/// A Sentinel of this test's own, monitoring `master` as `mymaster` (quorum 1, quick failure
/// detection), killed when dropped.
struct Sentinel {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Sentinel {
    fn start(master: &Server) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\nsentinel auth-pass mymaster {PASSWORD}\nsentinel down-after-milliseconds mymaster 2000\nsentinel failover-timeout mymaster 10000\n",
                dir.path().display(),
                master.port
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        let s = Sentinel {
            child,
            _dir: dir,
            port,
        };
        wait_for(Duration::from_secs(20), "Sentinel to answer", || {
            s.cli(&["PING"]).trim() == "PONG"
        });
        s
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn master_port(&self) -> String {
        self.cli(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .lines()
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[[redis]] sentinel` and `master-name`: the snapshot comes from the master Sentinel names,
/// before and after a failover between two backups; `check` reports Sentinel's state (its
/// replicas, a wrong master name is CRITICAL).
#[test]
fn sentinel_names_the_master_before_and_after_a_failover() {
    let master = Server::start(&["--repl-diskless-sync-delay", "0", "--masterauth", PASSWORD]);
    load(&master);
    let replica = Server::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--masterauth",
        PASSWORD,
        "--replicaof",
        "127.0.0.1",
        &master.port.to_string(),
    ]);
    wait_for(Duration::from_secs(30), "the replica to sync", || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    let sentinel = Sentinel::start(&master);
    wait_for(
        Duration::from_secs(30),
        "Sentinel to see the replica",
        || {
            sentinel
                .cli(&["SENTINEL", "replicas", "mymaster"])
                .contains(&replica.port.to_string())
        },
    );
    let env = TestEnv::new();
    let entry = cache_entry(&env, &master).replace(
        &format!("url = \"unix://{}\"", master.socket().display()),
        &format!(
            "sentinel = [\"127.0.0.1:{}\"]\nmaster-name = \"mymaster\"",
            sentinel.port
        ),
    );
    assert!(entry.contains("sentinel ="), "{entry}");
    env.write_config(&entry);
    env.run(&["backup"]).expect_code(0);
    let first = env.data_files("cache");
    assert_eq!(first.len(), 1);
    let m = manifest_json(&env.db_dir("cache").join(&first[0]));
    assert!(
        m["host"].as_str().unwrap().contains(&format!(
            "127.0.0.1:{} (master mymaster by Sentinel)",
            master.port
        )),
        "{m}"
    );
    let r = env.run(&["check", "--db", "cache"]);
    r.expect_code(0);
    assert!(r.stdout.contains("'cache_replicas'=1"), "{}", r.stdout);

    // snapshot-from = "replica": the snapshot comes from the healthy replica Sentinel knows.
    wait_for(
        Duration::from_secs(30),
        "Sentinel to see the replica's link up",
        || {
            let r = sentinel.cli(&["SENTINEL", "replicas", "mymaster"]);
            r.contains("master-link-status") && r.lines().any(|l| l.trim() == "ok")
        },
    );
    env.write_config(&entry.replace(
        "master-name = \"mymaster\"",
        "master-name = \"mymaster\"\nsnapshot-from = \"replica\"",
    ));
    env.run(&["backup", "--force"]).expect_code(0);
    let files = env.data_files("cache");
    assert_eq!(files.len(), 2, "{files:?}");
    let m = manifest_json(&env.db_dir("cache").join(&files[1]));
    assert!(
        m["host"].as_str().unwrap().contains(&format!(
            "127.0.0.1:{} (a replica of mymaster by Sentinel)",
            replica.port
        )),
        "{m}"
    );
    assert_eq!(m["redis"]["role"], "slave", "{m}");
    env.write_config(&entry);

    // A failover between two backups: the next snapshot comes from the new master.
    assert!(sentinel
        .cli(&["SENTINEL", "failover", "mymaster"])
        .contains("OK"));
    wait_for(Duration::from_secs(60), "the failover", || {
        sentinel.master_port() == replica.port.to_string()
            && replica.cli(&["ROLE"]).starts_with("master")
    });
    replica.pipe("SELECT 0\nSET after-failover 1\n");
    env.run(&["backup", "--force"]).expect_code(0);
    let files = env.data_files("cache");
    assert_eq!(files.len(), 3, "{files:?}");
    let m = manifest_json(&env.db_dir("cache").join(&files[2]));
    assert!(
        m["host"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{} (master", replica.port)),
        "{m}"
    );
    assert_eq!(
        m["tables"][0]["rows"], 17,
        "the key written after the failover: {m}"
    );

    // A master name Sentinel does not know: the backup fails and names it; check is CRITICAL.
    env.write_config(&entry.replace("\"mymaster\"", "\"nosuch\""));
    env.run(&["backup", "--force"])
        .expect_code(69)
        .expect_stderr("no master named nosuch");
    env.run(&["check", "--db", "cache"])
        .expect_code(2)
        .expect_stderr_or_stdout("no master named nosuch");
}

/// `rediss://` against redis-server with TLS only (no plain TCP port), a certificate of a
/// private CA and `tls-auth-clients yes` (Redis's default): with ca-file and a client
/// certificate the snapshot is taken and verified; without the CA, without the client
/// certificate, and against a certificate for another name, the backup fails (69) naming the fix.
#[test]
fn rediss_with_a_private_ca_and_a_client_certificate() {
    let t = tls();
    let (cert, key) = t.cert("server");
    let port = free_port();
    let ca = t.ca();
    let tls_args = |cert: &Path, key: &Path| -> Vec<String> {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert.display().to_string(),
            "--tls-key-file",
            &key.display().to_string(),
            "--tls-ca-cert-file",
            &ca.display().to_string(),
            "--tls-auth-clients",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let args = tls_args(&cert, &key);
    let s = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let expected = load(&s);
    let env = TestEnv::new();
    let (ccert, ckey) = t.cert("client");
    let base = cache_entry(&env, &s).replace(
        &format!("unix://{}", s.socket().display()),
        &format!("rediss://127.0.0.1:{port}"),
    );
    let full = format!(
        "{base}ca-file = \"{}\"\ntls-cert-file = \"{}\"\ntls-key-file = \"{}\"\n",
        ca.display(),
        ccert.display(),
        ckey.display()
    );
    env.write_config(&full);
    env.run(&["backup"]).expect_code(0);
    let files = env.data_files("cache");
    assert_eq!(files.len(), 1);
    let m = manifest_json(&env.db_dir("cache").join(&files[0]));
    let total: u64 = expected.iter().map(|(_, k)| k).sum();
    let counted: u64 = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, total, "{m}");
    env.run(&["verify", "--db", "cache"]).expect_code(0);

    // No ca-file: the private CA is in no trust store.
    env.write_config(&format!(
        "{base}tls-cert-file = \"{}\"\ntls-key-file = \"{}\"\n",
        ccert.display(),
        ckey.display()
    ));
    env.run(&["backup", "--force"])
        .expect_code(69)
        .expect_stderr("set ca-file");
    // No client certificate for a server that requires one.
    env.write_config(&format!("{base}ca-file = \"{}\"\n", ca.display()));
    env.run(&["backup", "--force"])
        .expect_code(69)
        .expect_stderr("tls-cert-file");
    assert_eq!(
        env.data_files("cache").len(),
        1,
        "no backup from a failed TLS login"
    );
    drop(s);

    // A certificate for another name.
    let (wcert, wkey) = t.cert("wrongname");
    let args = tls_args(&wcert, &wkey);
    let _w = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    env.write_config(&full);
    env.run(&["backup", "--force"])
        .expect_code(69)
        .expect_stderr("another name");
}

/// Keys no shell or file name would survive: newlines, NUL, CR LF inside, a RESP-looking
/// `$EOF:` line, `../..`, 4 KiB of UTF-8, a 512 KiB key, binary values holding `REDIS0010` and
/// an RDB EOF opcode: backup, test restore and restore keep every byte (DEBUG DIGEST equal).
#[test]
fn hostile_keys_survive_backup_test_restore_and_restore() {
    let src = Server::start(&["--repl-diskless-sync-delay", "0"]);
    let keys: Vec<Vec<u8>> = vec![
        b"line\nbreak".to_vec(),
        b"nul\0byte".to_vec(),
        b"crlf\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
        b"$EOF:0123456789012345678901234567890123456789".to_vec(),
        b"../../etc/passwd".to_vec(),
        "\u{1F600}\u{202E}rtl\u{0301}".repeat(256).into_bytes(),
        vec![b'k'; 512 * 1024],
        (0u8..=255).collect(),
    ];
    {
        // Through the protocol directly: redis-cli's argv cannot carry NUL.
        let mut c = std::os::unix::net::UnixStream::connect(src.socket()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut cmds = Vec::new();
        let mut push = |args: &[&[u8]]| {
            cmds.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                cmds.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                cmds.extend_from_slice(a);
                cmds.extend_from_slice(b"\r\n");
            }
        };
        push(&[b"AUTH", PASSWORD.as_bytes()]);
        for (i, k) in keys.iter().enumerate() {
            let mut v = b"REDIS0010\xff\xfe\x00".to_vec();
            v.extend_from_slice(k);
            if i % 2 == 0 {
                push(&[b"SET", k, &v]);
            } else {
                push(&[b"HSET", k, k, &v]);
            }
        }
        c.write_all(&cmds).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.iter().filter(|b| **b == b'\n').count() < keys.len() + 1 {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert!(!got.contains(&b'-'), "{}", String::from_utf8_lossy(&got));
    }
    assert_eq!(src.cli(&["DBSIZE"]).trim(), keys.len().to_string());
    let digest = src.cli(&["DEBUG", "DIGEST"]).trim().to_string();
    let env = TestEnv::new();
    env.write_config(&cache_entry(&env, &src));
    env.run(&["backup"]).expect_code(0);
    let r = env.run(&["verify", "--db", "cache", "--test-restore"]);
    r.expect_code(0)
        .expect_stderr_or_stdout(&format!("DEBUG DIGEST {digest}"));
    let dst = Server::start(&[]);
    env.write_config(&cache_entry(&env, &dst));
    env.run(&["restore", "--db", "cache", "--latest", "--yes"])
        .expect_code(0);
    assert_eq!(dst.cli(&["DEBUG", "DIGEST"]).trim(), digest);
}

/// A TCP relay to a Redis server that passes what the client sends at once and what the server
/// sends slowly (16 KiB every 20 ms), so that a snapshot is caught in the middle.
fn slow_relay(to: u16) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { return };
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                return;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
            });
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c_write.write_all(&buf[..n]).is_err() {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            });
        }
    });
    port
}

/// Failures that must not cost a backup: a full disk (73, the earlier snapshot whole, no temp
/// file), a kill -9 in the middle of a snapshot (nothing visible; the next run cleans up and
/// succeeds), and a backup dated in the future by a clock that was ahead (kept and warned
/// about; retention does not count it and keeps the newest real one).
#[test]
fn redis_full_disk_kill_9_and_a_future_dated_snapshot() {
    let s = Server::start(&["--repl-diskless-sync-delay", "0"]);
    load(&s);
    let env = TestEnv::new();
    let mnt = env.tmp.path().join("small");
    let _guard = small_disk(&mnt, "1m");
    let entry = cache_entry(&env, &s);
    let on_small = |entry: &str| {
        std::fs::write(
            &env.config,
            format!("[storage]\nlocal-dir = \"{}\"\n{entry}", mnt.display()),
        )
        .unwrap();
    };
    on_small(&entry);
    env.run(&["backup"]).expect_code(0);
    let dir = mnt.join("cache");
    let before: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(before.len(), 3, "{before:?}");
    // 3 MiB of random letters do not compress into 1 MiB.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut cmds = String::from("SELECT 2\n");
    for i in 0..96 {
        let random: String = (0..32 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(alphabet[(x % 62) as usize])
            })
            .collect();
        cmds.push_str(&format!("SET big{i} {random}\n"));
    }
    s.pipe(&cmds);
    env.run(&["backup", "--force"])
        .expect_code(73)
        .expect_stderr("disk is full");
    let mut after: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    after.sort();
    let mut want = before.clone();
    want.sort();
    assert_eq!(after, want, "only the earlier snapshot remains");
    sh(&format!("cd '{}' && sha256sum -c *.sha256", dir.display()));
    drop(_guard);

    // kill -9 in the middle of a snapshot, read through a slow relay.
    let relay = slow_relay(s.port);
    let slow = entry.replace(
        &format!("unix://{}", s.socket().display()),
        &format!("redis://127.0.0.1:{relay}"),
    );
    env.write_config(&slow);
    let mut child = env
        .cmd(&["backup"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "the snapshot's temp file", || {
        env.files("cache")
            .iter()
            .any(|f| f.starts_with(".pgbackup-tmp"))
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        env.data_files("cache").is_empty(),
        "{:?}",
        env.files("cache")
    );
    env.write_config(&entry);
    env.run(&["backup"]).expect_code(0);
    assert_eq!(env.data_files("cache").len(), 1);
    assert!(
        !env.files("cache")
            .iter()
            .any(|f| f.starts_with(".pgbackup-tmp")),
        "the next run removed the killed run's temp file: {:?}",
        env.files("cache")
    );

    // The only real snapshot is a month old, and one is dated 2031 (the clock was ahead when
    // it was taken): prune with keep-days 1 and keep-min 1 keeps both, because the future one
    // does not count as the newest (if it did, the real one would go).
    let d = env.db_dir("cache");
    let real = env.data_files("cache")[0].clone();
    let stamp = real[6..21].to_string();
    let old = real.replace(&stamp, "20261101_020000");
    let future = real.replace(&stamp, "20310101_020000");
    for name in [&old, &future] {
        std::fs::copy(d.join(&real), d.join(name)).unwrap();
        sh(&format!(
            "cd '{}' && sha256sum '{name}' > '{name}.sha256'",
            d.display()
        ));
    }
    for suffix in ["", ".sha256", ".json"] {
        let _ = std::fs::remove_file(d.join(format!("{real}{suffix}")));
    }
    env.write_config(&format!(
        "{entry}\n[retention]\nkeep-days = 1\nkeep-min = 1\n"
    ));
    let r = env.run(&["prune"]);
    r.expect_code(0).expect_stderr_or_stdout("in the future");
    let mut files = env.data_files("cache");
    files.sort();
    assert_eq!(files, vec![old.clone(), future.clone()], "{}", r.stderr);
}

/// `mode = "bgsave"` for a server whose SYNC is disabled (renamed away, as managed services
/// do): SYNC's refusal names the mode; BGSAVE and the server's own file give a snapshot whose
/// keys are the server's; a wrong rdb-path (a file this save did not write) is refused.
#[test]
fn bgsave_mode_when_sync_is_disabled() {
    let s = Server::start(&[
        "--rename-command",
        "SYNC",
        "",
        "--rename-command",
        "PSYNC",
        "",
    ]);
    let expected = load(&s);
    let env = TestEnv::new();
    let entry = cache_entry(&env, &s);
    env.write_config(&entry);
    env.run(&["backup"])
        .expect_code(69)
        .expect_stderr("set mode = \"bgsave\"");
    env.write_config(&format!("{entry}mode = \"bgsave\"\n"));
    env.run(&["backup"]).expect_code(0);
    let files = env.data_files("cache");
    assert_eq!(files.len(), 1);
    let m = manifest_json(&env.db_dir("cache").join(&files[0]));
    let (counted, want) = (key_counts(&m), as_counts(&expected));
    assert_eq!(counted, want, "{m}");
    assert!(
        m["pg_dump_version"].as_str().unwrap().contains("BGSAVE"),
        "{m}"
    );
    env.run(&["verify", "--db", "cache", "--test-restore"])
        .expect_code(0);
    // An old file at rdb-path: not what this save wrote.
    let stale = env.tmp.path().join("stale.rdb");
    std::fs::copy(s.dir.path().join("dump.rdb"), &stale).unwrap();
    sh(&format!("touch -d '2020-01-01' '{}'", stale.display()));
    env.write_config(&format!(
        "{entry}mode = \"bgsave\"\nrdb-path = \"{}\"\n",
        stale.display()
    ));
    env.run(&["backup", "--force"])
        .expect_code(69)
        .expect_stderr("not by this save");
}

/// `restore --redis-dir DIR` for a stopped Redis: refused while the configured server runs
/// there; into a server with appendonly yes (its old AOF and dump.rdb moved aside, kept) and
/// one with appendonly no, each started afterwards shows the source's DEBUG DIGEST.
#[test]
fn restore_into_the_files_of_a_stopped_redis_with_and_without_aof() {
    let src = Server::start(&["--repl-diskless-sync-delay", "0"]);
    load(&src);
    let digest = src.cli(&["DEBUG", "DIGEST"]).trim().to_string();
    let env = TestEnv::new();
    env.write_config(&cache_entry(&env, &src));
    env.run(&["backup"]).expect_code(0);

    for aof in ["yes", "no"] {
        let mut dst = Server::start(&["--appendonly", aof]);
        dst.pipe("SET old 1\nSELECT 4\nSET older 2\n");
        assert_eq!(dst.cli(&["SAVE"]).trim(), "OK");
        env.write_config(&cache_entry(&env, &dst));
        let dir = dst.dir.path().to_path_buf();
        let dir_arg = dir.display().to_string();
        env.run(&[
            "restore",
            "--db",
            "cache",
            "--latest",
            "--yes",
            "--redis-dir",
            &dir_arg,
        ])
        .expect_code(2)
        .expect_stderr("is running");
        // Stopped (killed: nothing saved on the way out), restored into, started again.
        let _ = dst.child.kill();
        let _ = dst.child.wait();
        let r = env.run(&[
            "restore",
            "--db",
            "cache",
            "--latest",
            "--yes",
            "--redis-dir",
            &dir_arg,
        ]);
        r.expect_code(0).expect_stderr("start Redis now");
        let kept: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(".before-pgbackup-"))
            .collect();
        assert!(
            kept.iter()
                .any(|n| n.starts_with("dump.rdb.before-pgbackup-")),
            "appendonly {aof}: {kept:?}"
        );
        if aof == "yes" {
            assert!(
                kept.iter()
                    .any(|n| n.starts_with("appendonlydir.before-pgbackup-")),
                "{kept:?}"
            );
        }
        dst.restart();
        assert_eq!(
            dst.cli(&["DEBUG", "DIGEST"]).trim(),
            digest,
            "appendonly {aof}: {}",
            r.stderr
        );
        assert_eq!(dst.cli(&["EXISTS", "old"]).trim(), "0");
    }
}
