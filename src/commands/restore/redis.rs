//! `pgbackup restore` of a Redis snapshot, by replication: the checked, decompressed snapshot is
//! served by a feed of pgbackup's own ([`crate::redis_feed`]) and the target is told
//! `REPLICAOF` it, so that Redis loads the snapshot with its own code (and, with `appendonly
//! yes`, rewrites its append-only file from it, which a `dump.rdb` copied into place would
//! not do: Redis 7 ignores `dump.rdb` when an AOF exists), then `REPLICAOF NO ONE`.
//!
//! The order: the target's facts (a master, a version that reads the snapshot's RDB version),
//! the plan and confirmation, the lock, a safety snapshot of the target, the one-time token
//! as its `masterauth`, `REPLICAOF`, the load, the key counts compared (as a replica, before
//! any key can expire), `REPLICAOF NO ONE` and the old `masterauth` back, then the AOF
//! rewrite waited for. While it loads, the target is a read-only replica for its clients.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cli::RestoreArgs;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::redis::{Client, RedisError, RedisTarget, Reply};
use crate::secret::Secret;
use crate::verify::{BackupFiles, Integrity};
use crate::{log, notify};

/// How long the target has to connect to the feed after `REPLICAOF`.
const CONNECT_WITHIN: Duration = Duration::from_secs(30);

/// Restore `files` (a Redis snapshot that passed its checks; `rdb` its decompressed copy).
pub fn run(
    cfg: &Config,
    args: &RestoreArgs,
    files: &BackupFiles,
    integrity: &Integrity,
    rdb: &std::path::Path,
    checksum: &str,
) -> Result<()> {
    let file_name = files.file_name();
    let name = files
        .name
        .as_ref()
        .map(|n| n.database.clone())
        .or_else(|| args.database.clone())
        .unwrap_or_default();
    if let Some(dir) = &args.redis_dir {
        return into_dir(cfg, args, files, integrity, rdb, checksum, &name, dir);
    }
    let target = target_of(cfg, args, &name)?;
    let mut c = crate::redis::connect(&target, Duration::from_secs(30))?;
    let info = c.info_fields()?;
    if info.is_empty() {
        return Err(Error::Usage(format!(
            "Redis {} does not allow INFO for this user; a restore needs +info +replicaof +config|get +config|set (or an admin user); nothing was changed",
            target.addr
        )));
    }
    let version = info.get("redis_version").cloned().unwrap_or_default();
    let valkey = info.get("valkey_version").cloned();
    let described = match &valkey {
        Some(v) => format!("Valkey {v}"),
        None => format!("Redis {version}"),
    };
    if info.get("role").map(String::as_str) != Some("master") {
        return Err(Error::Usage(format!(
            "Redis {} is a replica (of {}:{}): its master would overwrite the restore; restore into the master, or run REPLICAOF NO ONE on it first (nothing was changed)",
            target.addr,
            info.get("master_host").map(String::as_str).unwrap_or("?"),
            info.get("master_port").map(String::as_str).unwrap_or("?")
        )));
    }
    let manifest = integrity.manifest.as_ref();
    let rdb_version = manifest
        .and_then(|m| m.redis.as_ref())
        .map(|r| r.rdb_version)
        .or_else(|| crate::redis_server::rdb_version_of(rdb))
        .unwrap_or(0);
    if let Some(max) = crate::redis_server::max_rdb_version(&version, valkey.is_some()) {
        if rdb_version > max {
            return Err(Error::Usage(format!(
                "{file_name} is RDB version {rdb_version}, which {described} on {} cannot load (it reads up to {max}); restore into a newer server (nothing was changed)",
                target.addr
            )));
        }
    }
    let expected: BTreeMap<u64, u64> = manifest
        .map(|m| m.tables.clone())
        .unwrap_or_else(|| integrity.tables.clone())
        .iter()
        .filter_map(|t| Some((t.schema.strip_prefix("db")?.parse().ok()?, t.rows)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let databases: u64 = info
        .get("databases")
        .and_then(|n| n.parse().ok())
        .unwrap_or(16);
    if let Some(db) = expected.keys().find(|db| **db >= databases) {
        // CONFIG GET databases, when INFO does not say.
        let configured = config_get(&mut c, "databases")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(databases);
        if *db >= configured {
            return Err(Error::Usage(format!(
                "{file_name} holds logical database {db}, but {} has databases {configured}; raise it in the target's redis.conf (nothing was changed)",
                target.addr
            )));
        }
    }
    let now = keyspace(&info);
    let now_keys: u64 = now.values().sum();
    let aof = info.get("aof_enabled").map(String::as_str) == Some("1");
    let rewrites_before = info.get("aof_rewrites").and_then(|n| n.parse::<u64>().ok());
    let safety = now_keys > 0 && !args.no_safety_backup;
    let want_keys: u64 = expected.values().sum();

    // The plan, and confirmation.
    let mut plan = format!(
        "restore plan:\n  backup:  {} ({}, {} uncompressed, RDB version {rdb_version}; {checksum}): {} in {}\n  target:  {described} at {}, {}\n",
        files.data.display(),
        super::super::human_bytes(std::fs::metadata(&files.data).map(|m| m.len()).unwrap_or(0)),
        super::super::human_bytes(integrity.raw_bytes),
        crate::text::count(want_keys, "key", "keys"),
        crate::text::count(expected.len() as u64, "logical database", "logical databases"),
        target.addr,
        if now_keys == 0 {
            "empty".to_string()
        } else {
            format!("{} now: ALL of them are replaced", crate::text::count(now_keys, "key", "keys"))
        }
    );
    if safety {
        plan.push_str("  a safety snapshot of the target is taken first\n");
    } else if now_keys > 0 {
        plan.push_str("  no safety snapshot (--no-safety-backup)\n");
    }
    plan.push_str("  method:  the target becomes a replica of pgbackup for the transfer (read-only for its clients), loads the snapshot, then is a master again\n");
    if aof {
        plan.push_str("  appendonly yes: Redis rewrites its append-only file from the restored data; the restore waits for it\n");
    }
    super::confirm(args, &plan)?;

    let _lock = crate::ops::lock_root(cfg)?;
    if safety {
        let job = super::safety_job();
        let stall = cfg
            .redis_stall
            .get(&target.name)
            .copied()
            .unwrap_or(Duration::from_secs(60));
        let mut source = crate::source::RedisSync::new(&target, stall, &job.cancel);
        super::safety_backup(
            cfg,
            &job,
            &target.name,
            &mut source,
            &format!("safety snapshot before restoring {file_name}"),
            &format!("safety snapshot of {}", target.addr),
        )?;
    }

    // The feed, on the address the target reaches us from.
    let (bind, peer) = match c.local_and_peer() {
        Some((local, peer)) => (local, Some(peer)),
        None => (std::net::IpAddr::from([127, 0, 0, 1]), None),
    };
    let mut feed = crate::redis_feed::Feed::start(rdb, bind, peer)
        .map_err(|what| restore_err(&target, what))?;
    let old_auth = config_get(&mut c, "masterauth").map_err(|e| {
        restore_err(
            &target,
            format!("the target refused CONFIG GET masterauth ({e}); the restore needs +config|get +config|set +replicaof; nothing was changed"),
        )
    })?;
    let old_auth = Secret::new(old_auth);
    expect_ok(
        c.command(&[
            b"CONFIG",
            b"SET",
            b"masterauth",
            feed.token().expose().as_bytes(),
        ])?,
        "CONFIG SET masterauth",
    )
    .map_err(|e| restore_err(&target, format!("{e}; nothing was changed")))?;
    let started = Instant::now();
    let ip = feed.addr().ip().to_string();
    let port = feed.addr().port().to_string();
    log::info(&format!(
        "restoring {file_name} into {}: REPLICAOF {} (if pgbackup is killed now, run REPLICAOF NO ONE on the target and put its masterauth back)",
        target.addr,
        feed.addr()
    ));
    let mut undo = Undo {
        target: &target,
        old_auth,
        replica: true,
        done: false,
    };
    // From here on every way out puts the target's settings back.
    let sent = c
        .command(&[b"REPLICAOF", ip.as_bytes(), port.as_bytes()])
        .map_err(|e| e.to_string())
        .and_then(|r| expect_ok(r, "REPLICAOF"));
    if let Err(e) = sent {
        undo.replica = false;
        undo.run(&mut c);
        return Err(restore_err(&target, format!("{e}; nothing was changed")));
    }

    let total = std::fs::metadata(rdb).map(|m| m.len()).unwrap_or(0);
    let limit = cfg.verify_restore_timeout;
    let mut last_status = Instant::now();
    let loaded = loop {
        std::thread::sleep(Duration::from_millis(200));
        let state = feed.state();
        if let Some(sig) = crate::signals::interrupted() {
            undo.run(&mut c);
            return Err(Error::Interrupted(sig));
        }
        if let Some(e) = &state.error {
            undo.run(&mut c);
            return Err(restore_err(
                &target,
                format!("the transfer failed: {e}; {}", undo.standing(state.done)),
            ));
        }
        if !state.authenticated && started.elapsed() > CONNECT_WITHIN {
            undo.run(&mut c);
            let refused = if state.refused.is_empty() {
                String::new()
            } else {
                format!(" (refused: {})", state.refused.join(", "))
            };
            return Err(restore_err(
                &target,
                format!(
                    "the target did not connect to pgbackup at {} within {} s{refused}: it must reach this host at that address (a firewall?); its data is unchanged",
                    feed.addr(),
                    CONNECT_WITHIN.as_secs()
                ),
            ));
        }
        if limit.is_some_and(|l| started.elapsed() > l) {
            undo.run(&mut c);
            return Err(restore_err(
                &target,
                format!(
                    "not loaded after {} s ([verify] restore-timeout-secs); {}",
                    started.elapsed().as_secs(),
                    undo.standing(state.done)
                ),
            ));
        }
        if last_status.elapsed() > Duration::from_secs(2) {
            last_status = Instant::now();
            notify::status(&format!(
                "restoring {file_name}: {} of {} sent",
                super::super::human_bytes(state.sent),
                super::super::human_bytes(total)
            ));
        }
        if !state.done {
            continue;
        }
        let now = match c.info_fields() {
            Ok(i) => i,
            // A connection broken while the server loads: a new one, and ask again.
            Err(RedisError::Io { .. }) => {
                match crate::redis::connect(&target, Duration::from_secs(30)) {
                    Ok(fresh) => c = fresh,
                    Err(e) => {
                        undo.run(&mut c);
                        return Err(e.into());
                    }
                }
                continue;
            }
            Err(e) => {
                undo.run(&mut c);
                return Err(e.into());
            }
        };
        let up = now.get("master_link_status").map(String::as_str) == Some("up");
        let syncing = now.get("master_sync_in_progress").map(String::as_str) == Some("1");
        let loading = now.get("loading").map(String::as_str) == Some("1");
        if up && !syncing && !loading {
            break now;
        }
    };
    let held = keyspace(&loaded);
    let mut problems = Vec::new();
    for db in expected.keys().chain(held.keys()) {
        let want = expected.get(db).copied().unwrap_or(0);
        let got = held.get(db).copied().unwrap_or(0);
        if want != got
            && !problems
                .iter()
                .any(|p: &String| p.starts_with(&format!("db{db}:")))
        {
            problems.push(format!("db{db}: {got} keys, the manifest says {want}"));
        }
    }
    undo.run(&mut c);
    if undo.failed() {
        return Err(restore_err(
            &target,
            "the snapshot was loaded, but the target could not be made a master again: run REPLICAOF NO ONE on it and put its masterauth back".into(),
        ));
    }
    feed.stop();
    if !problems.is_empty() {
        return Err(Error::Corrupt(format!(
            "restored {file_name} into {}, but the keys loaded differ from the manifest: {}",
            target.addr,
            problems.join("; ")
        )));
    }
    if aof {
        wait_for_rewrite(&mut c, &target, rewrites_before, limit, started)?;
    }
    log::info(&format!(
        "restored {file_name} into {}: {} in {} ({} sent) in {:.1} s{}",
        target.addr,
        crate::text::count(held.values().sum::<u64>(), "key", "keys"),
        crate::text::count(held.len() as u64, "logical database", "logical databases"),
        super::super::human_bytes(total),
        started.elapsed().as_secs_f64(),
        if aof {
            "; the append-only file was rewritten"
        } else {
            ""
        }
    ));
    Ok(())
}

/// The target: `--target redis://...` (with the configured entry's login, or `REDISCLI_AUTH`),
/// else the configured `[[redis]]` of the backup's name.
fn target_of(cfg: &Config, args: &RestoreArgs, name: &str) -> Result<RedisTarget> {
    let configured = cfg.redis.iter().find(|r| r.name == name);
    if let (None, Some(c)) = (&args.target, configured) {
        if matches!(c.addr, crate::redis::Addr::Sentinel { .. }) {
            return Err(Error::Usage(format!(
                "{name} is found through Sentinel, which would see its master turn into a replica during the restore and may fail over: stop the replicas' and Sentinels' role in it first, then pass --target redis://HOST:PORT of the master (pgbackup check shows it); nothing was changed"
            )));
        }
    }
    match &args.target {
        None => configured.cloned().ok_or_else(|| {
            Error::Usage(format!(
                "no [[redis]] named {name} is configured: pass --target redis://HOST:PORT (or unix:///path) to say where to restore"
            ))
        }),
        Some(url) => {
            let (addr, user) = crate::redis::parse_url(url).map_err(Error::Usage)?;
            let tls = if crate::redis::is_tls_url(url) {
                match configured.and_then(|c| c.tls.clone()) {
                    Some(t) => Some(t),
                    None => Some(crate::redis::tls_config(None, None).map_err(Error::Usage)?),
                }
            } else {
                None
            };
            let env_pw = std::env::var("REDISCLI_AUTH").ok().filter(|p| !p.is_empty());
            let (password, password_source) = match (configured, env_pw) {
                (Some(c), _) if c.password.is_some() => {
                    (c.password.clone(), c.password_source.clone())
                }
                (_, Some(p)) => (Some(Secret::new(p)), Some("REDISCLI_AUTH".to_string())),
                _ => (None, None),
            };
            Ok(RedisTarget {
                name: name.to_string(),
                addr,
                user: user.or_else(|| configured.and_then(|c| c.user.clone())),
                password,
                password_source,
                sentinel_password: configured.and_then(|c| c.sentinel_password.clone()),
                tls,
                mode: configured.map(|c| c.mode.clone()).unwrap_or_default(),
            })
        }
    }
}

/// What has to be put back on the target, whatever happens.
struct Undo<'a> {
    target: &'a RedisTarget,
    old_auth: Secret,
    replica: bool,
    done: bool,
}

impl Undo<'_> {
    /// `REPLICAOF NO ONE`, the old `masterauth`; on a fresh connection when the old one broke.
    fn run(&mut self, c: &mut Client) {
        if self.done {
            return;
        }
        let mut ok = true;
        for attempt in 0..2 {
            if attempt == 1 {
                match crate::redis::connect(self.target, Duration::from_secs(30)) {
                    Ok(fresh) => *c = fresh,
                    Err(_) => break,
                }
            }
            ok = true;
            if self.replica {
                ok &= expect_ok_io(c.command(&[b"REPLICAOF", b"NO", b"ONE"]));
            }
            ok &= expect_ok_io(c.command(&[
                b"CONFIG",
                b"SET",
                b"masterauth",
                self.old_auth.expose().as_bytes(),
            ]));
            if ok {
                break;
            }
        }
        self.done = ok;
        if !ok {
            log::error(&format!(
                "could not undo the restore's settings on {}: run REPLICAOF NO ONE on it and put its masterauth back",
                self.target.addr
            ));
        }
    }

    fn failed(&self) -> bool {
        !self.done
    }

    /// Where the target's data stands after a failure.
    fn standing(&self, sent: bool) -> &'static str {
        if sent {
            "the target may hold part of the snapshot, or none of its old data: restore again, or restore the safety snapshot (pgbackup list shows it)"
        } else {
            "the target's data is unchanged (Redis replaces it only once the whole snapshot has arrived)"
        }
    }
}

fn restore_err(target: &RedisTarget, what: String) -> Error {
    Error::Redis(RedisError::Restore {
        name: target.name.clone(),
        what,
    })
}

fn expect_ok(r: Reply, what: &str) -> std::result::Result<(), String> {
    match r {
        Reply::Status(_) => Ok(()),
        Reply::Error(e) if e.starts_with("NOPERM") => Err(format!(
            "the target refused {what}: {e}; the restore needs +replicaof +config|get +config|set +info (or an admin user)"
        )),
        other => Err(format!(
            "the target answered {what} with {}",
            other.text().unwrap_or_else(|e| e)
        )),
    }
}

fn expect_ok_io(r: std::result::Result<Reply, RedisError>) -> bool {
    matches!(r, Ok(Reply::Status(_)))
}

/// `CONFIG GET name`: its value.
fn config_get(c: &mut Client, name: &str) -> std::result::Result<String, String> {
    match c
        .command(&[b"CONFIG", b"GET", name.as_bytes()])
        .map_err(|e| e.to_string())?
    {
        Reply::Array(Some(items)) if items.len() == 2 => items[1].text().map_err(|e| e.to_string()),
        Reply::Array(_) => Ok(String::new()),
        other => Err(other.text().unwrap_or_else(|e| e)),
    }
}

/// `db<N>:keys=...` of INFO.
fn keyspace(info: &std::collections::HashMap<String, String>) -> BTreeMap<u64, u64> {
    info.iter()
        .filter_map(|(k, v)| {
            let db = k.strip_prefix("db")?.parse::<u64>().ok()?;
            let keys = v
                .split(',')
                .find_map(|f| f.strip_prefix("keys="))?
                .parse::<u64>()
                .ok()?;
            Some((db, keys))
        })
        .collect()
}

/// With `appendonly yes`: wait until Redis has rewritten its append-only file after the load
/// (a new `aof_rewrites`, none running or scheduled, the last one ok).
fn wait_for_rewrite(
    c: &mut Client,
    target: &RedisTarget,
    before: Option<u64>,
    limit: Option<Duration>,
    started: Instant,
) -> Result<()> {
    loop {
        let info = c.info_fields()?;
        let field = |k: &str| info.get(k).map(String::as_str).unwrap_or("");
        let rewrites = field("aof_rewrites").parse::<u64>().ok();
        let fresh = match (before, rewrites) {
            (Some(b), Some(n)) => n > b,
            _ => true,
        };
        let busy = field("aof_rewrite_in_progress") == "1" || field("aof_rewrite_scheduled") == "1";
        if fresh && !busy {
            if field("aof_last_bgrewrite_status") == "err" {
                return Err(restore_err(
                    target,
                    "the snapshot was loaded, but Redis could not rewrite its append-only file (see its log): until it can, a restart loses the restore".into(),
                ));
            }
            return Ok(());
        }
        if limit.is_some_and(|l| started.elapsed() > l) {
            return Err(restore_err(
                target,
                "the snapshot was loaded, but the append-only file's rewrite had not finished ([verify] restore-timeout-secs); check it before restarting Redis".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The names Redis 7 reads in its `dir` (defaults of dbfilename, appenddirname and
/// appendfilename).
const DBFILENAME: &str = "dump.rdb";
const APPENDDIRNAME: &str = "appendonlydir";
const APPENDFILENAME: &str = "appendonly.aof";

/// `restore --redis-dir DIR`: the snapshot written as the files a stopped Redis 7 starts from,
/// whatever its `appendonly`: `dump.rdb` (read with appendonly no) and `appendonlydir/` with the
/// snapshot as the AOF base and a manifest naming it (read with appendonly yes; Redis adds the
/// incremental file at start). What was there is renamed aside (`*.before-pgbackup-<time>`),
/// never deleted: with the server stopped, that is the safety copy. Refused while the
/// configured server of this name answers from this directory.
#[allow(clippy::too_many_arguments)]
fn into_dir(
    cfg: &Config,
    args: &RestoreArgs,
    files: &BackupFiles,
    integrity: &Integrity,
    rdb: &std::path::Path,
    checksum: &str,
    name: &str,
    dir: &std::path::Path,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let file_name = files.file_name();
    let meta = std::fs::metadata(dir).map_err(|source| Error::Input {
        what: "Redis data directory",
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory: give the stopped Redis's dir (CONFIG GET dir; /var/lib/redis on Debian)",
            dir.display()
        )));
    }
    // A running server would overwrite the files at its next save, or at shutdown.
    if let Some(t) = cfg.redis.iter().find(|r| r.name == name) {
        if let Ok(mut c) = crate::redis::connect(t, Duration::from_secs(5)) {
            let running_dir = config_get(&mut c, "dir").ok().map(std::path::PathBuf::from);
            let same = running_dir
                .as_ref()
                .is_some_and(|d| std::fs::canonicalize(d).ok() == std::fs::canonicalize(dir).ok());
            if same || running_dir.is_none() {
                return Err(Error::Usage(format!(
                    "Redis {name} at {} is running{}: stop it first (systemctl stop redis-server), or restore without --redis-dir, by replication; nothing was changed",
                    t.addr,
                    if same { format!(" on {}", dir.display()) } else { String::new() }
                )));
            }
        }
    }
    let stamp = chrono::Utc::now().format("%Y%m%d_%H%M%S").to_string();
    let keys: u64 = integrity.tables.iter().map(|t| t.rows).sum();
    let mut plan = format!(
        "restore plan:\n  backup:  {} ({}, {checksum}): {}\n  target:  the files of a stopped Redis in {}\n",
        files.data.display(),
        super::super::human_bytes(integrity.raw_bytes),
        crate::text::count(keys, "key", "keys"),
        dir.display()
    );
    let mut aside = Vec::new();
    for existing in [DBFILENAME, APPENDDIRNAME] {
        if dir.join(existing).exists() {
            aside.push(existing);
            plan.push_str(&format!(
                "  {existing} is renamed to {existing}.before-pgbackup-{stamp} (kept)\n"
            ));
        }
    }
    plan.push_str(&format!(
        "  written: {DBFILENAME} (read with appendonly no) and {APPENDDIRNAME}/ with the snapshot as its base (read with appendonly yes)\n  then start Redis: it loads the snapshot\n"
    ));
    super::confirm(args, &plan)?;
    let out_err = |path: &std::path::Path, source| Error::Output {
        what: "the restored Redis files",
        path: path.to_path_buf(),
        source,
    };
    // Written beside, then renamed into place: a full disk leaves the old files where they were.
    let staged = dir.join(format!(".pgbackup-tmp.restore-{stamp}"));
    std::fs::create_dir(&staged).map_err(|e| out_err(&staged, e))?;
    let result = (|| -> std::io::Result<()> {
        let aof = staged.join(APPENDDIRNAME);
        std::fs::create_dir(&aof)?;
        let base = format!("{APPENDFILENAME}.1.base.rdb");
        for to in [staged.join(DBFILENAME), aof.join(&base)] {
            std::fs::copy(rdb, &to)?;
            std::fs::File::open(&to)?.sync_all()?;
        }
        let manifest = aof.join(format!("{APPENDFILENAME}.manifest"));
        std::fs::write(&manifest, format!("file {base} seq 1 type b\n"))?;
        std::fs::File::open(&manifest)?.sync_all()?;
        crate::fsutil::fsync_dir(&aof)?;
        // The server's user must own what it will write to (as root, the directory's owner).
        if nix::unistd::geteuid().is_root() {
            let (uid, gid) = (
                Some(nix::unistd::Uid::from_raw(meta.uid())),
                Some(nix::unistd::Gid::from_raw(meta.gid())),
            );
            for p in [
                staged.join(DBFILENAME),
                aof.clone(),
                aof.join(&base),
                manifest.clone(),
            ] {
                nix::unistd::chown(&p, uid, gid).map_err(std::io::Error::from)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(out_err(dir, e));
    }
    for existing in &aside {
        let to = dir.join(format!("{existing}.before-pgbackup-{stamp}"));
        std::fs::rename(dir.join(existing), &to).map_err(|e| out_err(&to, e))?;
    }
    for name in [DBFILENAME, APPENDDIRNAME] {
        std::fs::rename(staged.join(name), dir.join(name)).map_err(|e| out_err(dir, e))?;
    }
    let _ = std::fs::remove_dir(&staged);
    crate::fsutil::fsync_dir(dir).map_err(|e| out_err(dir, e))?;
    log::info(&format!(
        "restored {file_name} into {}: {DBFILENAME} and {APPENDDIRNAME}/ ({}); start Redis now{}",
        dir.display(),
        crate::text::count(keys, "key", "keys"),
        if aside.is_empty() {
            String::new()
        } else {
            format!("; the old files were kept as *.before-pgbackup-{stamp}")
        }
    ));
    Ok(())
}
