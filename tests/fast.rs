#![allow(clippy::unwrap_used)]

//! The fast tier: whole backups driven by a scripted source into the in-memory storage, in
//! milliseconds and without PostgreSQL (the real-server tier in tests/integration stays; this is
//! beside it, never instead). What is checked here is the operation's logic: the reader rule
//! after a backup, respawn protection, names taken within one second, and that a failed or
//! incomplete stream leaves nothing visible.

use std::io::Read;

use pgbackup::catalog;
use pgbackup::config::{Config, FileConfig};
use pgbackup::error::ConfigProblems;
use std::sync::{Arc, Mutex};

use pgbackup::job::{Cancel, Event, Job, Listener};
use pgbackup::ops::backup::{backup_one, run_databases, Outcome, Request};
use pgbackup::report::Recorder;
use pgbackup::source::ScriptedSource;
use pgbackup::storage::{LocalStorage, MemoryStorage, Storage};
use sha2::{Digest, Sha256};

const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\nSET x = 1;\n\
COPY public.t (a, b) FROM stdin;\n1\tx\n2\ty\n3\tz\n\\.\n\n\
COPY \"My Schema\".\"odd\"\"name\" (n) FROM stdin;\n\\.\n\n\
--\n-- PostgreSQL database dump complete\n--\n\n";

/// A checked configuration from TOML, with the local root in a temp directory.
fn config(root: &std::path::Path, extra: &str) -> Config {
    let text = format!("[storage]\nlocal-dir = \"{}\"\n{extra}", root.display());
    let file: FileConfig = toml::from_str(&text).unwrap();
    let mut problems = ConfigProblems::default();
    let cfg = Config::from_file(file, None, &|_| None, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    cfg
}

/// A job nobody listens to.
fn job() -> Job {
    Job::new(Cancel::new())
}

/// A listener that writes each event down as a short line.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl Listener for Log {
    fn event(&self, e: &Event<'_>) {
        let line = match e {
            Event::RunStarted => "run started".to_string(),
            Event::Started { db, index, total } => format!("{db}: started {}/{total}", index + 1),
            Event::Progress { .. } | Event::Notice { .. } => return,
            Event::Completed { db, manifest, .. } => {
                format!("{db}: completed {} rows", manifest.tables[0].rows)
            }
            Event::Uploaded { db, .. } => format!("{db}: uploaded"),
            Event::Skipped { db, .. } => format!("{db}: skipped"),
            Event::Retained { db, file, .. } => format!("{db}: retention {file}"),
            Event::Failed {
                db, step, error, ..
            } => {
                format!("{db}: {step:?} failed, exit {}", error.exit_code())
            }
            Event::RunFinished {
                total,
                failed,
                interrupted,
            } => format!("finished: {failed}/{total} failed, interrupted {interrupted:?}"),
        };
        self.0.lock().unwrap().push(line);
    }
}

fn source(stream: &str) -> ScriptedSource {
    ScriptedSource {
        name: "fast".into(),
        stream: stream.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn a_complete_stream_becomes_a_backup_that_the_reader_rule_counts() {
    let root = tempfile::tempdir().unwrap();
    let cfg = config(root.path(), "");
    let store = MemoryStorage::new();
    let mut src = source(DUMP);
    let out = backup_one(&cfg, "fast", &mut src, false, Some("first"), &store, &job()).unwrap();
    let Outcome::Done { manifest, .. } = out else {
        panic!("skipped")
    };
    let complete = store.complete_backups("fast").unwrap();
    assert_eq!(complete.len(), 1);
    let name = &complete[0].name;
    assert_eq!(name.file_name(), manifest.file);

    // The data is the stream, gzip'd; the sidecar is its SHA-256 in sha256sum format.
    let mut data = Vec::new();
    store
        .fetch(&format!("fast/{}", name.file_name()), &mut data)
        .unwrap();
    assert_eq!(gunzip(&data), DUMP);
    let mut sidecar = Vec::new();
    store
        .fetch(&format!("fast/{}", name.sidecar_name()), &mut sidecar)
        .unwrap();
    let (hex, file) = catalog::parse_sidecar(&String::from_utf8(sidecar).unwrap()).unwrap();
    assert_eq!(hex, format!("{:x}", Sha256::digest(&data)));
    assert_eq!(file, name.file_name());

    // The manifest read back from the storage: rows counted in the stream, the chain, sizes.
    let m = store.read_manifest(name).unwrap();
    assert_eq!(m.raw_bytes, DUMP.len() as u64);
    assert_eq!(m.compressed_bytes, data.len() as u64);
    assert_eq!(m.description.as_deref(), Some("first"));
    let rows: Vec<(String, String, u64)> = m
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.table.clone(), t.rows))
        .collect();
    assert_eq!(
        rows,
        [
            ("public".into(), "t".into(), 3),
            ("My Schema".into(), "odd\"name".into(), 0)
        ]
    );
    assert_eq!(m.chain().unwrap(), cfg.chain());
    assert!(src.started && !src.killed);
}

#[test]
fn respawn_protection_skips_without_starting_the_source_and_force_overrides_it() {
    let root = tempfile::tempdir().unwrap();
    let cfg = config(root.path(), "[backup]\nrespawn-protection-hours = 20\n");
    let store = MemoryStorage::new();
    backup_one(&cfg, "fast", &mut source(DUMP), false, None, &store, &job()).unwrap();

    let mut again = source(DUMP);
    match backup_one(&cfg, "fast", &mut again, false, None, &store, &job()).unwrap() {
        Outcome::Skipped { reason } => {
            assert!(reason.contains("respawn-protection-hours = 20"), "{reason}");
            assert!(reason.contains("--force"), "{reason}");
        }
        Outcome::Done { .. } => panic!("a second backup within 20 hours was not skipped"),
    }
    assert!(!again.started, "a skipped backup started its source");
    assert_eq!(store.complete_backups("fast").unwrap().len(), 1);

    let mut forced = source(DUMP);
    assert!(matches!(
        backup_one(&cfg, "fast", &mut forced, true, None, &store, &job()).unwrap(),
        Outcome::Done { .. }
    ));
    assert_eq!(store.complete_backups("fast").unwrap().len(), 2);
}

#[test]
fn backups_within_one_second_get_distinct_names_and_none_is_overwritten() {
    let root = tempfile::tempdir().unwrap();
    let cfg = config(root.path(), "");
    let store = MemoryStorage::new();
    let mut names = Vec::new();
    for i in 0..4 {
        let stream = DUMP.replace("SET x = 1;", &format!("SET x = {i};"));
        match backup_one(
            &cfg,
            "fast",
            &mut source(&stream),
            true,
            None,
            &store,
            &job(),
        )
        .unwrap()
        {
            Outcome::Done { manifest, .. } => names.push(manifest.file.clone()),
            Outcome::Skipped { .. } => panic!("a forced backup was skipped"),
        }
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{names:?}");
    // Each holds its own stream.
    for (i, n) in names.iter().enumerate() {
        let mut data = Vec::new();
        store.fetch(&format!("fast/{n}"), &mut data).unwrap();
        assert!(gunzip(&data).contains(&format!("SET x = {i};")), "{n}");
    }
    assert_eq!(store.complete_backups("fast").unwrap().len(), 4);
}

#[test]
fn an_incomplete_stream_leaves_nothing_visible_and_fails_with_1() {
    let root = tempfile::tempdir().unwrap();
    let cfg = config(root.path(), "");
    let store = MemoryStorage::new();
    let cut = &DUMP[..DUMP.find("-- PostgreSQL database dump complete").unwrap()];
    let err = backup_one(&cfg, "fast", &mut source(cut), false, None, &store, &job()).unwrap_err();
    assert_eq!(err.exit_code(), 1, "{err}");
    assert!(err.to_string().contains("fast"), "{err}");
    assert!(
        store.files("fast").unwrap().is_empty(),
        "something is visible"
    );
    assert!(
        store.clean_incomplete("fast").unwrap().is_empty(),
        "debris left"
    );
}

#[test]
fn a_failing_source_is_its_own_error_and_leaves_nothing_visible() {
    let root = tempfile::tempdir().unwrap();
    let cfg = config(root.path(), "");
    let store = MemoryStorage::new();
    // A producer that wrote a whole-looking dump and then exited non-zero: never a backup.
    let mut src = ScriptedSource {
        fails_with: Some("pg_dump: error: query failed: out of memory".into()),
        ..source(DUMP)
    };
    let err = backup_one(&cfg, "fast", &mut src, false, None, &store, &job()).unwrap_err();
    assert_eq!(err.exit_code(), 1, "{err}");
    assert!(err.to_string().contains("out of memory"), "{err}");
    assert!(store.files("fast").unwrap().is_empty());
    assert!(store.clean_incomplete("fast").unwrap().is_empty());
}

/// Three databases from a config with a local root (the fast tier's run of a whole job).
fn three(root: &std::path::Path) -> Config {
    config(
        root,
        "[metrics]\ntextfile-dir = \"\"\n\
         [[database]]\nname = \"a\"\n[[database]]\nname = \"b\"\n[[database]]\nname = \"c\"\n",
    )
}

fn scripted<'d>(db: &'d pgbackup::config::Database) -> Box<dyn pgbackup::source::Source + 'd> {
    let mut s = source(DUMP);
    s.name = db.name().to_string();
    if db.name() == "b" {
        s.fails_with = Some("pg_dump: error: connection to server failed".into());
    }
    Box::new(s)
}

#[test]
fn a_run_tells_its_listeners_each_step_and_one_failure_does_not_stop_the_others() {
    let root = tempfile::tempdir().unwrap();
    let cfg = three(root.path());
    let log = Arc::new(Log::default());
    let recorder = Arc::new(Recorder::new(&cfg));
    let job = job().listen(log.clone()).listen(recorder.clone());
    let result = run_databases(
        &cfg,
        &job,
        &Request::default(),
        &cfg.databases,
        &mut scripted,
    );
    let err = recorder.finish(result).unwrap_err();
    assert_eq!(err.exit_code(), 1, "{err}");
    assert_eq!(
        *log.0.lock().unwrap(),
        [
            "a: started 1/3",
            "a: completed 3 rows",
            "b: started 2/3",
            "b: Backup failed, exit 1",
            "c: started 3/3",
            "c: completed 3 rows",
            "finished: 1/3 failed, interrupted None",
        ]
    );
    // The recorder listened: the state file says what happened to each database.
    let st = pgbackup::state::load(root.path());
    let ok = |db: &str| st.databases[db].last_run_ok;
    assert_eq!(
        (ok("a"), ok("b"), ok("c")),
        (Some(true), Some(false), Some(true))
    );
    assert!(st.databases["b"]
        .last_error
        .as_deref()
        .unwrap()
        .contains("connection"));
    assert_eq!(st.last_run_ok, Some(false));
}

#[test]
fn a_cancelled_job_starts_no_database_and_says_it_was_interrupted() {
    let root = tempfile::tempdir().unwrap();
    let cfg = three(root.path());
    let log = Arc::new(Log::default());
    let parent = Cancel::new();
    let job = Job::new(parent.child()).listen(log.clone());
    let sibling = Job::new(parent.child());
    job.cancel.cancel(15);
    let err = run_databases(
        &cfg,
        &job,
        &Request::default(),
        &cfg.databases,
        &mut scripted,
    )
    .unwrap_err();
    assert!(
        matches!(err, pgbackup::error::Error::Interrupted(15)),
        "{err}"
    );
    assert_eq!(
        *log.0.lock().unwrap(),
        ["finished: 0/3 failed, interrupted Some(15)"]
    );
    assert!(LocalStorage::new(root.path())
        .databases()
        .unwrap()
        .is_empty());
    // Another job of the same process is not affected.
    assert_eq!(sibling.cancelled(), None);
    let one = &cfg.databases[..1];
    run_databases(&cfg, &sibling, &Request::default(), one, &mut scripted).unwrap();
    assert_eq!(LocalStorage::new(root.path()).databases().unwrap(), ["a"]);
}

/// One type for "a backup and where it is": local first, a backup in both places once (as the
/// local copy), the ones only a store holds after, incomplete local files only when asked for.
#[test]
fn backups_everywhere_are_listed_once_local_first() {
    use pgbackup::ops::catalog::{backups_of, Place, Which};
    let root = tempfile::tempdir().unwrap();
    let cfg = config(root.path(), "");
    let local = LocalStorage::new(root.path());
    let (remote, other) = (MemoryStorage::new(), MemoryStorage::new());
    let put = |store: &MemoryStorage, file: &str, data: &[u8]| {
        let sidecar = catalog::sidecar_line(&format!("{:x}", Sha256::digest(data)), file);
        store.put(&format!("fast/{file}"), data).unwrap();
        store
            .put(&format!("fast/{file}.sha256"), sidecar.as_bytes())
            .unwrap();
    };
    // One backup only local, one in both places, one in each store only.
    backup_one(&cfg, "fast", &mut source(DUMP), true, None, &local, &job()).unwrap();
    put(&remote, "fast_20250101_000000.sql.gz", b"remote");
    put(&other, "fast_20250102_000000.sql.gz", b"other");
    let both = local.complete_backups("fast").unwrap()[0].name.file_name();
    let data = std::fs::read(root.path().join("fast").join(&both)).unwrap();
    put(&remote, &both, &data);
    // A local data file without its sidecar.
    let lone = "fast_20200101_000000.sql.gz";
    std::fs::write(root.path().join("fast").join(lone), b"x").unwrap();

    let stores = [remote, other];
    let found = backups_of(&cfg, &stores, "fast", Which::Complete).unwrap();
    let places: Vec<Place> = found.iter().map(|l| l.place.clone()).collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(matches!(places[0], Place::Local(_)), "{found:?}");
    assert_eq!(places[1..], [Place::Stored(0), Place::Stored(1)]);
    assert!(found.iter().all(|l| l.backup.has_sidecar));
    let names: std::collections::HashSet<String> =
        found.iter().map(|l| l.name().file_name()).collect();
    assert_eq!(names.len(), 3, "a backup was listed twice");

    let every = backups_of(&cfg, &stores, "fast", Which::EveryLocalFile).unwrap();
    assert_eq!(every.len(), 4);
    assert_eq!(every[0].name().file_name(), lone);
    assert!(!every[0].backup.has_sidecar);
}
