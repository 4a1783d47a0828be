//! Test harness: one real, ephemeral PostgreSQL cluster per test binary, and a `TestEnv` per test
//! (temp dir, config file, a `pgbackup` command with a clean environment).
//!
//! The cluster is started by `scripts/pg-ephemeral.sh` on 127.0.0.1 and a free port (as the
//! `postgres` user when we are root). A watcher process stops it and removes its directory when
//! the test binary exits. Nothing here skips: without a PostgreSQL server the tests fail.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "s3cr3t-Pa55word";

/// A schema that exercises what plain dumps must carry: several schemas, quoted identifiers,
/// unicode, bytea, jsonb, arrays, large objects, sequences, views and a partitioned table.
pub const RICH_SCHEMA: &str = r#"
CREATE SCHEMA app;
CREATE SCHEMA "Sales Dept";
CREATE TABLE app.items (
  id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), tags text[], meta jsonb,
  blob bytea, created timestamptz DEFAULT '2026-01-01 00:00:00+00');
INSERT INTO app.items (name, price, tags, meta, blob)
  SELECT 'item ' || g || ' ünïcødé ☃ 日本', g * 1.5, ARRAY['a' || g, 'b,"c"'],
         jsonb_build_object('n', g, 'nested', jsonb_build_object('x', g, 's', 'ü')),
         decode(md5(g::text), 'hex')
  FROM generate_series(1, 2000) g;
INSERT INTO app.items (name, tags, meta, blob)
  VALUES (E'tab\there\nnewline \\ backslash ''quote''', '{}', '{"quote": "\""}', '\x00ff00');
CREATE TABLE "Sales Dept"."Order Lines" ("Line ID" int PRIMARY KEY, "Qty" int, note text);
INSERT INTO "Sales Dept"."Order Lines" SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE g END, NULL
  FROM generate_series(1, 300) g;
CREATE SEQUENCE app.counter START 100;
SELECT setval('app.counter', 4242);
CREATE VIEW app.expensive AS SELECT id, name FROM app.items WHERE price > 1000;
CREATE TABLE app.events (id int, at date NOT NULL, payload text) PARTITION BY RANGE (at);
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO app.events SELECT g, date '2025-06-01' + (g % 400), 'p' || g FROM generate_series(1, 1000) g;
SELECT lo_from_bytea(0, convert_to('large object ' || repeat('x', 20000), 'UTF8'));
SELECT lo_from_bytea(0, '\xdeadbeef');
"#;

/// The shared cluster.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    pub bindir: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pgbackup-it-{}", std::process::id()));
        let out = Command::new(repo().join("scripts/pg-ephemeral.sh"))
            .arg("start")
            .arg(&dir)
            .arg(PASSWORD)
            .output()
            .expect("run scripts/pg-ephemeral.sh");
        assert!(
            out.status.success(),
            "could not start an ephemeral PostgreSQL (install the `postgresql` package): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let get = |k: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("{k} missing in {text}"))
                .to_string()
        };
        let port: u16 = get("PGPORT").parse().expect("port");
        let bindir = PathBuf::from(get("PGBINDIR"));
        // Stop the cluster when this test process is gone.
        let watcher = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{script}' stop '{dir}'",
            pid = std::process::id(),
            script = repo().join("scripts/pg-ephemeral.sh").display(),
            dir = dir.display()
        );
        // Deliberately not waited for: it outlives this process to clean up after it.
        #[allow(clippy::zombie_processes)]
        let _watcher = Command::new("setsid")
            .args(["sh", "-c", &watcher])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cluster watcher");
        Cluster { dir, port, bindir }
    })
}

impl Cluster {
    /// psql over the local socket as `postgres` (trusted), ON_ERROR_STOP, unaligned, tuples only.
    pub fn psql_cmd(&self, db: &str) -> Command {
        let mut c = Command::new(self.bindir.join("psql"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PGHOST", &self.dir)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db]);
        c
    }

    /// Run SQL and return stdout; panics with psql's stderr on failure.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = self
            .psql_cmd(db)
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed on {db}: {}\nSQL: {sql}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A fresh database with a unique name starting with `prefix`.
    pub fn create_db(&self, prefix: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        self.sql("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// A libpq URI for `db` over TCP as postgres, without password.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Per-table fingerprints (md5 of all rows in a stable order), large objects and sequences.
    pub fn fingerprint(&self, db: &str) -> BTreeMap<String, String> {
        let tables = self.sql(
            db,
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p','v','m') \
             AND n.nspname NOT IN ('pg_catalog','information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
        );
        let mut out = BTreeMap::new();
        for t in tables.lines().filter(|l| !l.is_empty()) {
            let fp = self.sql(
                db,
                &format!(
                    "SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') FROM {t} x"
                ),
            );
            out.insert(t.to_string(), fp);
        }
        let seqs = self.sql(
            db,
            "SELECT format('%I.%I', schemaname, sequencename) || '=' || coalesce(last_value::text, 'null') \
             FROM pg_sequences ORDER BY 1",
        );
        for s in seqs.lines().filter(|l| !l.is_empty()) {
            let (k, v) = s.split_once('=').expect("seq line");
            out.insert(format!("sequence {k}"), v.to_string());
        }
        out.insert(
            "large objects".into(),
            self.sql(
                db,
                "SELECT count(*) || ':' || coalesce(md5(string_agg(oid::text || '=' || encode(lo_get(oid), 'hex'), ',' ORDER BY oid)), '-') FROM pg_largeobject_metadata",
            ),
        );
        out
    }

    /// Hold an ACCESS EXCLUSIVE lock on `table` in `db` until the returned guard is dropped;
    /// pg_dump then waits on its ACCESS SHARE lock, which makes "mid-dump" deterministic.
    pub fn hold_lock(&self, db: &str, table: &str) -> LockHolder {
        self.session(
            db,
            &format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);"),
            "the lock to be granted",
            "JOIN pg_locks l USING (pid) WHERE l.mode = 'AccessExclusiveLock' AND l.granted \
             AND l.locktype = 'relation' AND",
        )
    }

    /// An idle session connected to `db` (it would block DROP DATABASE), until dropped.
    pub fn hold_session(&self, db: &str) -> LockHolder {
        self.session(
            db,
            "SELECT pg_sleep(120)",
            "the session to connect",
            "WHERE",
        )
    }

    /// A psql session running `sql` in `db`, once pg_stat_activity `a` joined by `condition`
    /// (which ends with WHERE or AND) shows it; killed and terminated when the guard drops.
    fn session(&self, db: &str, sql: &str, what: &str, condition: &str) -> LockHolder {
        let tag = format!("session_{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        let child = self
            .psql_cmd(db)
            .env("PGAPPNAME", &tag)
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn psql session");
        let holder = LockHolder {
            child,
            tag,
            db: db.to_string(),
        };
        wait_for(Duration::from_secs(20), what, || {
            self.sql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_activity a {condition} a.application_name = '{}'",
                    holder.tag
                ),
            ) != "0"
        });
        holder
    }

    /// Wait until a pg_dump on `db` is blocked on a lock; returns its backend pid.
    pub fn wait_for_blocked_dump(&self, db: &str) -> String {
        let mut pid = String::new();
        wait_for(
            Duration::from_secs(30),
            "pg_dump to wait on the lock",
            || {
                pid = self.sql(
                    "postgres",
                    &format!(
                        "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' \
                     AND application_name = 'pg_dump' AND wait_event_type = 'Lock' LIMIT 1"
                    ),
                );
                !pid.is_empty()
            },
        );
        pid
    }
}

/// A session holding a table lock; killed (and its backend terminated) on drop.
#[derive(Debug)]
pub struct LockHolder {
    child: Child,
    tag: String,
    db: String,
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        cluster().sql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
                self.tag
            ),
        );
    }
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Poll `cond` every 100 ms until true or panic after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A per-test directory with a config file and a backup root.
#[derive(Debug)]
pub struct TestEnv {
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
    pub backups: PathBuf,
    pub password_file: PathBuf,
}

/// Config text a scenario writes once its environment exists.
type ConfigPart = Box<dyn FnOnce(&TestEnv) -> String>;

/// The set-up most integration tests repeat, in one place: a fresh database on the shared
/// cluster, its schema and rows, a config that names it (with more sections before it), and a
/// first backup that must succeed.
///
/// ```ignore
/// let (env, db) = Scenario::new("vt", "verify").sql(ROWS).config("[verify]\n...").backed_up();
/// ```
pub struct Scenario {
    prefix: String,
    name: String,
    sql: Vec<String>,
    config: Vec<ConfigPart>,
}

impl Scenario {
    /// A database `prefix_<unique>` on the shared cluster, configured as `name`.
    pub fn new(prefix: &str, name: &str) -> Self {
        Scenario {
            prefix: prefix.to_string(),
            name: name.to_string(),
            sql: Vec::new(),
            config: Vec::new(),
        }
    }

    /// SQL run in the database before anything else (schema, rows).
    pub fn sql(mut self, sql: &str) -> Self {
        self.sql.push(sql.to_string());
        self
    }

    /// Config text placed before the `[[database]]` entry.
    pub fn config(self, text: &str) -> Self {
        let text = text.to_string();
        self.config_with(move |_| text)
    }

    /// Config text that needs the environment (its temp directory, its key files).
    pub fn config_with(mut self, f: impl FnOnce(&TestEnv) -> String + 'static) -> Self {
        self.config.push(Box::new(f));
        self
    }

    /// The environment and the database's name on the server, the config written.
    pub fn build(self) -> (TestEnv, String) {
        let c = cluster();
        let db = c.create_db(&self.prefix);
        for sql in &self.sql {
            c.sql(&db, sql);
        }
        let env = TestEnv::new();
        let mut text = String::new();
        for f in self.config {
            text.push_str(&f(&env));
            text.push('\n');
        }
        text.push_str(&env.db_entry(&self.name, &db));
        env.write_config(&text);
        (env, db)
    }

    /// [`Scenario::build`], then one backup that must succeed.
    pub fn backed_up(self) -> (TestEnv, String) {
        let (env, db) = self.build();
        env.run(&["backup"]).expect_code(0);
        (env, db)
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("pgbackup-test.")
            .tempdir()
            .expect("tempdir");
        let backups = tmp.path().join("backups");
        let password_file = tmp.path().join("pw");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write pw");
        set_mode(&password_file, 0o600);
        TestEnv {
            config: tmp.path().join("pgbackup.toml"),
            backups,
            password_file,
            tmp,
        }
    }

    /// The `[storage]` section plus `extra` (more sections, `[[database]]` entries).
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "[storage]\nlocal-dir = \"{}\"\n\n{extra}",
            self.backups.display()
        );
        std::fs::write(&self.config, text).expect("write config");
    }

    /// A `[[database]]` entry for `db` on the shared cluster, with the right password file.
    pub fn db_entry(&self, name: &str, db: &str) -> String {
        format!(
            "[[database]]\nname = \"{name}\"\nurl = \"{}\"\npassword-file = \"{}\"\n\n",
            cluster().url(db),
            self.password_file.display()
        )
    }

    /// `pgbackup --config <config> ARGS` with a clean environment (PATH only).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgbackup"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Start `pgbackup ARGS` in the background, output captured.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pgbackup")
    }

    /// A fresh node_exporter textfile directory in this test's temp dir.
    pub fn textfile_dir(&self) -> PathBuf {
        let dir = self.tmp.path().join("textfile");
        std::fs::create_dir_all(&dir).expect("create textfile dir");
        dir
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run pgbackup"))
    }

    pub fn db_dir(&self, name: &str) -> PathBuf {
        self.backups.join(name)
    }

    /// Names in a database directory, sorted.
    pub fn files(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = match std::fs::read_dir(self.db_dir(name)) {
            Ok(rd) => rd
                .map(|e| e.expect("dirent").file_name().to_string_lossy().to_string())
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// The newest data file of a database.
    pub fn latest(&self, name: &str) -> PathBuf {
        let files = self.data_files(name);
        self.db_dir(name).join(
            files
                .last()
                .unwrap_or_else(|| panic!("no backup of {name}")),
        )
    }

    /// `restore --db NAME --latest --target URL --create --yes`: the newest backup of `name`
    /// into a new database.
    pub fn restore_latest(&self, name: &str, target_url: &str) -> Run {
        self.restore_latest_with(name, target_url, &[])
    }

    /// [`TestEnv::restore_latest`] with more arguments (`--jobs 2`).
    pub fn restore_latest_with(&self, name: &str, target_url: &str, more: &[&str]) -> Run {
        let mut args = vec![
            "restore", "--db", name, "--latest", "--target", target_url, "--create", "--yes",
        ];
        args.extend_from_slice(more);
        self.run(&args)
    }

    /// Data files (`*.sql.*`, `*.dump.*`, `*.tar.*`, gz or zst, each perhaps `.age`)
    /// of a database.
    pub fn data_files(&self, name: &str) -> Vec<String> {
        self.files(name)
            .into_iter()
            .filter(|f| {
                let f = f.strip_suffix(".age").unwrap_or(f);
                [
                    ".sql.gz",
                    ".sql.zst",
                    ".dump.gz",
                    ".dump.zst",
                    ".tar.gz",
                    ".tar.zst",
                    ".rdb.gz",
                    ".rdb.zst",
                ]
                .iter()
                .any(|s| f.ends_with(s))
                    && !f.starts_with('.')
            })
            .collect()
    }
}

/// `sha256sum -c` of a data file's sidecar, run where it lies (as a user would): asserts that
/// it says `NAME: OK`.
#[track_caller]
pub fn expect_sha256sum_ok(file: &Path) {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(
        sh(&format!(
            "cd '{}' && sha256sum -c '{name}.sha256' 2>&1",
            file.parent().unwrap().display()
        ))
        .trim(),
        format!("{name}: OK")
    );
}

/// The manifest beside a data file, as JSON.
pub fn manifest_json(file: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(format!("{}.json", file.display())).unwrap()).unwrap()
}

/// Whether the database `name` exists on the shared cluster.
pub fn db_exists(name: &str) -> bool {
    cluster().sql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{}'",
            name.replace('\'', "''")
        ),
    ) == "1"
}

/// `restore --backup NAME --target <never> --create --yes` is refused (65, "refusing to
/// restore") before the target database exists.
pub fn expect_restore_refused(env: &TestEnv, backup: &str, never: &str) {
    env.run(&[
        "restore",
        "--backup",
        backup,
        "--target",
        &cluster().url(never),
        "--create",
        "--yes",
    ])
    .expect_code(65)
    .expect_stderr("refusing to restore");
    assert!(!db_exists(never), "{never} was created");
}

/// A tmpfs of `size` (e.g. "1m") mounted on `dir` (created) until the guard is dropped: a full
/// disk on demand. Needs root, as the tests and CI run.
pub fn small_disk(dir: &Path, size: &str) -> Unmount {
    std::fs::create_dir_all(dir).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .status()
        .expect("run mount");
    assert!(
        st.success(),
        "mounting a tmpfs needs root (the tests and CI run as root)"
    );
    Unmount(dir.to_path_buf())
}

/// Unmounts its directory when dropped.
pub struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A finished pgbackup run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).to_string(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn expect_stderr_or_stdout(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle) || self.stdout.contains(needle),
            "output lacks {needle:?}:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn expect_no_secret(&self) -> &Self {
        assert!(
            !self.stderr.contains(PASSWORD) && !self.stdout.contains(PASSWORD),
            "the password leaked:\n{}\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// gzip `bytes` into `path` and write a matching sidecar: a "valid" backup of anything.
pub fn write_gz_with_sidecar(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
    refresh_sidecar(path);
}

/// Rewrite the sidecar (and the manifest's checksum and sizes, when present) to match the file,
/// as someone who tampered with the data would.
pub fn refresh_sidecar(path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let dir = path.parent().unwrap();
    let sum = sh(&format!("cd '{}' && sha256sum '{name}'", dir.display()));
    std::fs::write(dir.join(format!("{name}.sha256")), &sum).unwrap();
    let manifest = dir.join(format!("{name}.json"));
    if let Ok(bytes) = std::fs::read(&manifest) {
        let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        m["sha256"] = sum[..64].into();
        m["compressed_bytes"] = std::fs::metadata(path).unwrap().len().into();
        let raw = sh(&format!(
            "{{ zcat '{}' 2>/dev/null || true; }} | wc -c",
            path.display()
        ));
        m["raw_bytes"] = raw.trim().parse::<u64>().unwrap().into();
        std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
}

/// Decompress a backup into a String (small test backups only).
pub fn zcat(path: &Path) -> String {
    sh(&format!("zcat '{}'", path.display()))
}

/// Run a shell pipeline, asserting success; returns stdout.
#[track_caller]
pub fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "shell failed: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Throwaway TLS material (tests/fixtures/tls.py gen): a private CA that no trust store holds,
/// and certificates it signed for 127.0.0.1 (`server`), for another name (`wrongname`) and for
/// 127.0.0.1 but long expired (`expired`). Shared per test binary.
#[derive(Debug)]
pub struct Tls {
    pub dir: PathBuf,
}

static TLS: OnceLock<Tls> = OnceLock::new();

pub fn tls() -> &'static Tls {
    TLS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pgbackup-it-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tls dir");
        let out = Command::new(venv_bin("python3"))
            .arg(repo().join("tests/fixtures/tls.py"))
            .arg("gen")
            .arg(&dir)
            .output()
            .expect("run tests/fixtures/tls.py");
        assert!(
            out.status.success(),
            "tls.py gen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tls { dir }
    })
}

impl Tls {
    /// The private CA's certificate (what `ca-file` and `SSL_CERT_FILE` point at).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// A bare TLS server on 127.0.0.1 presenting certificate `name` (it answers 503 to any
    /// request); returns its port. It lives as long as this test process.
    pub fn serve(&self, name: &str) -> u16 {
        let (cert, key) = self.cert(name);
        let port = free_port();
        spawn_for_test_process(&format!(
            "'{}' '{}' serve '{}' '{}' {port}",
            venv_bin("python3").display(),
            repo().join("tests/fixtures/tls.py").display(),
            cert.display(),
            key.display()
        ));
        wait_for(Duration::from_secs(20), "tls.py serve to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        port
    }
}

/// Run `script` (a shell command line) in the background until this test process exits.
pub fn spawn_for_test_process(script: &str) {
    let watcher = format!(
        "{script} & m=$!; while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill $m",
        pid = std::process::id()
    );
    #[allow(clippy::zombie_processes)]
    let _ = Command::new("setsid")
        .args(["sh", "-c", &watcher])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a test server");
}

/// A moto S3 server on 127.0.0.1 over https (a certificate of the private CA of [`tls`]) with
/// signature checking on, shared per test binary, and the access key of an IAM user allowed
/// s3:*. moto comes from scripts/test.sh's venv (.venv). With `PGBACKUP_TEST_S3_ENDPOINT` set
/// (scripts/test-s3-garage.sh does), the tests use that server instead, with
/// `PGBACKUP_TEST_S3_ACCESS_KEY`, `_SECRET_KEY`, `_REGION` and, for https, `_CA_FILE`.
#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// Keys that may read the bucket but not write to it.
    pub denied_key: (String, String),
    /// Keys that may read and write but not delete (moto only).
    pub no_delete_key: Option<(String, String)>,
    /// The CA that signed the server's certificate (https endpoints).
    pub ca_file: Option<PathBuf>,
    /// An IAM role that web-identity credentials may assume (moto only).
    pub role_arn: Option<String>,
    /// Keys of an IAM user allowed sts:* (moto only; the credential fakes sign with them).
    pub sts_key: Option<(String, String)>,
}

static S3: OnceLock<S3Server> = OnceLock::new();

pub fn venv_bin(name: &str) -> PathBuf {
    let p = repo().join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh, which installs moto and awscli into .venv",
        p.display()
    );
    p
}

pub fn s3_server() -> &'static S3Server {
    S3.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("PGBACKUP_TEST_S3_ENDPOINT") {
            let var = |n: &str| {
                std::env::var(format!("PGBACKUP_TEST_S3_{n}"))
                    .unwrap_or_else(|_| panic!("PGBACKUP_TEST_S3_ENDPOINT is set, so PGBACKUP_TEST_S3_{n} must be too"))
            };
            return S3Server {
                ca_file: std::env::var_os("PGBACKUP_TEST_S3_CA_FILE").map(PathBuf::from),
                endpoint,
                access_key: var("ACCESS_KEY"),
                secret_key: var("SECRET_KEY"),
                region: var("REGION"),
                denied_key: (var("DENIED_ACCESS_KEY"), var("DENIED_SECRET_KEY")),
                role_arn: None,
                sts_key: None,
                no_delete_key: None,
            };
        }
        let port = free_port();
        let endpoint = format!("https://127.0.0.1:{port}");
        let ca = tls().ca();
        let (cert, key) = tls().cert("server");
        // The first 14 requests (IAM setup) are not authenticated; everything after is.
        let watcher = format!(
            "'{}' -H 127.0.0.1 -p {port} --ssl-cert '{}' --ssl-key '{}' & m=$!; while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill $m",
            venv_bin("moto_server").display(),
            cert.display(),
            key.display(),
            pid = std::process::id()
        );
        #[allow(clippy::zombie_processes)]
        let _server = Command::new("setsid")
            .args(["sh", "-c", &watcher])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "14")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Its log, for when a test fails on a server error.
            .stderr(
                std::fs::File::create(std::env::temp_dir().join("pgbackup-test-moto.log"))
                    .expect("moto log"),
            )
            .spawn()
            .expect("start moto_server");
        wait_for(Duration::from_secs(30), "moto_server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let aws = |args: &[&str]| {
            let out = Command::new(venv_bin("aws"))
                .args(["--endpoint-url", &endpoint, "--output", "json"])
                .arg("--ca-bundle")
                .arg(&ca)
                .args(args)
                .env("AWS_ACCESS_KEY_ID", "setup")
                .env("AWS_SECRET_ACCESS_KEY", "setup")
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .output()
                .expect("aws");
            assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        let s3_policy = |actions: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{actions},"Resource":"*"}}]}}"#
            )
        };
        let user = |name: &str, actions: &str| {
            aws(&["iam", "create-user", "--user-name", name]);
            aws(&[
                "iam", "put-user-policy", "--user-name", name, "--policy-name", "s3",
                "--policy-document", &s3_policy(actions),
            ]);
            let keys: serde_json::Value =
                serde_json::from_str(&aws(&["iam", "create-access-key", "--user-name", name])).unwrap();
            (
                keys["AccessKey"]["AccessKeyId"].as_str().unwrap().to_string(),
                keys["AccessKey"]["SecretAccessKey"].as_str().unwrap().to_string(),
            )
        };
        let (access_key, secret_key) = user("pgbackup", r#""s3:*""#);
        let denied_key = user("pgbackup-reader", r#"["s3:ListBucket","s3:GetObject"]"#);
        let sts_key = user("pgbackup-sts", r#""sts:*""#);
        let no_delete_key = user(
            "pgbackup-nodelete",
            r#"["s3:ListBucket","s3:GetObject","s3:PutObject","s3:AbortMultipartUpload","s3:ListBucketMultipartUploads"]"#,
        );
        // A role for web identity (Kubernetes IRSA) and for the instance-metadata fake.
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/oidc.example"},"Action":"sts:AssumeRoleWithWebIdentity"},{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;
        let role: serde_json::Value = serde_json::from_str(&aws(&[
            "iam", "create-role", "--role-name", "pgbackup-irsa",
            "--assume-role-policy-document", trust,
        ]))
        .unwrap();
        aws(&[
            "iam", "put-role-policy", "--role-name", "pgbackup-irsa", "--policy-name", "s3",
            "--policy-document", &s3_policy(r#""s3:*""#),
        ]);
        S3Server {
            endpoint,
            access_key,
            secret_key,
            region: "us-east-1".into(),
            denied_key,
            ca_file: Some(ca),
            role_arn: role["Role"]["Arn"].as_str().map(str::to_string),
            sts_key: Some(sts_key),
            no_delete_key: Some(no_delete_key),
        }
    })
}

impl S3Server {
    /// An independent client (awscli) with the IAM user's keys.
    pub fn aws(&self, args: &[&str]) -> Run {
        Run::from(
            Command::new(venv_bin("aws"))
                .args(["--endpoint-url", &self.endpoint, "--output", "json"])
                .args(
                    self.ca_file
                        .iter()
                        .flat_map(|ca| [std::ffi::OsStr::new("--ca-bundle"), ca.as_os_str()]),
                )
                .args(args)
                .env("AWS_ACCESS_KEY_ID", &self.access_key)
                .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
                .env("AWS_DEFAULT_REGION", &self.region)
                .output()
                .expect("aws"),
        )
    }

    /// A new bucket with a unique name.
    pub fn bucket(&self, prefix: &str) -> String {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        self.aws(&["s3api", "create-bucket", "--bucket", &name])
            .expect_code(0);
        name
    }
}
