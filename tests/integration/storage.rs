//! One conformance suite for every `Storage`: the local tree and S3 (moto in CI; Garage with
//! scripts/test-s3-garage.sh). Each must keep the same promises: a streamed write is invisible
//! until committed and gone when abandoned, the reader rule decides what is a backup, foreign
//! files are never listed as backups, and an interrupted write is cleaned up.

use std::io::{Read, Write};

use chrono::TimeZone;
use pgbackup::catalog::{BackupName, Kind};
use pgbackup::s3::creds::CredentialSpec;
use pgbackup::s3::sigv4::Credentials;
use pgbackup::s3::{S3Config, S3Store};
use pgbackup::secret::Secret;
use pgbackup::storage::{LocalStorage, Storage};
use sha2::{Digest, Sha256};

use crate::harness::*;

/// The key of `file` of database `db` (the layout's one directory per database).
fn k(db: &str, file: &str) -> String {
    format!("{db}/{file}")
}

/// Incompressible, reproducible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn name(db: &str, day: u32) -> BackupName {
    BackupName::new(
        db,
        chrono::Utc.with_ymd_and_hms(2026, 1, day, 2, 0, 0).unwrap(),
        Kind::SQL_GZ,
    )
}

fn fetch(store: &dyn Storage, db: &str, file: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let n = store.fetch(&k(db, file), &mut out).unwrap();
    assert_eq!(n as usize, out.len());
    out
}

fn backup_files(store: &dyn Storage, db: &str) -> Vec<String> {
    store
        .backups(db)
        .unwrap()
        .iter()
        .map(|b| b.name.file_name())
        .collect()
}

/// The suite. `part` is the store's part size (S3) so that objects span several parts.
/// `data_first` says whether the storage commits the data object before its sidecar (S3), so
/// that a data object without a sidecar is the debris of an interrupted commit; locally the
/// sidecar goes first and the data file's rename is the commit point.
fn conformance(store: &dyn Storage, part: usize, data_first: bool) {
    let db = "conf_db";
    assert!(store.files(db).unwrap().is_empty(), "starts empty");
    assert!(store.latest(db).unwrap().is_none());

    // A streamed write of 2.4 parts in odd-sized writes: invisible until commit.
    let data = noise(part * 2 + part / 2 + 7, 1);
    let n1 = name(db, 1);
    let mut w = store.create(&k(db, &n1.file_name()), None).unwrap();
    for chunk in data.chunks(100_003) {
        w.write_all(chunk).unwrap();
    }
    assert!(backup_files(store, db).is_empty(), "visible before commit");
    assert_eq!(w.commit().unwrap(), data.len() as u64);
    assert_eq!(
        Sha256::digest(fetch(store, db, &n1.file_name())),
        Sha256::digest(&data),
        "read back differs"
    );
    // Read streamed, in reads of an odd size, it is the same bytes; a missing file is an error.
    let mut reader = store.open(&k(db, &n1.file_name())).unwrap();
    let (mut got, mut buf) = (Vec::new(), vec![0u8; 40_961]);
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    drop(reader);
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(&data),
        "open reads back differently"
    );
    assert!(
        store
            .open(&k(db, "conf_db_20200101_000000.sql.gz"))
            .is_err(),
        "opened a missing file"
    );
    // Data without its sidecar is not a backup.
    assert_eq!(backup_files(store, db), vec![n1.file_name()]);
    assert!(store.complete_backups(db).unwrap().is_empty());
    let sidecar1 = format!("{:x}  {}\n", Sha256::digest(&data), n1.file_name());
    store
        .put(&k(db, &n1.sidecar_name()), sidecar1.as_bytes())
        .unwrap();

    // A committed backup: data, sidecar and manifest, and it is the latest.
    let n2 = name(db, 2);
    let mut w = store.create(&k(db, &n2.file_name()), Some(10)).unwrap();
    w.write_all(b"backup two").unwrap();
    let sidecar = format!("{:x}  {}\n", Sha256::digest(b"backup two"), n2.file_name());
    store
        .commit_backup(db, &n2, w, sidecar.as_bytes(), b"{}")
        .unwrap();
    let complete = store.complete_backups(db).unwrap();
    assert_eq!(complete.len(), 2);
    assert_eq!(complete[1].name, n2);
    assert!(complete[1].has_manifest);
    assert_eq!(complete[1].size, 10);
    assert_eq!(store.latest(db).unwrap().unwrap().name, n2);
    assert_eq!(fetch(store, db, &n2.sidecar_name()), sidecar.as_bytes());
    assert!(store.databases().unwrap().contains(&db.to_string()));

    // An abandoned write (dropped uncommitted, after a part went out) leaves nothing.
    let n3 = name(db, 3);
    let mut w = store.create(&k(db, &n3.file_name()), None).unwrap();
    w.write_all(&noise(part + 1000, 3)).unwrap();
    drop(w);
    assert!(!backup_files(store, db).contains(&n3.file_name()));
    assert!(
        store.clean_incomplete(db).unwrap().is_empty(),
        "a dropped write left debris"
    );

    // An interrupted write (the process died: nothing ran on the way out) is debris that
    // clean_incomplete removes, once.
    let n4 = name(db, 4);
    let mut w = store.create(&k(db, &n4.file_name()), None).unwrap();
    w.write_all(&noise(1000, 4)).unwrap();
    std::mem::forget(w);
    assert!(!backup_files(store, db).contains(&n4.file_name()));
    assert_eq!(store.clean_incomplete(db).unwrap().len(), 1);
    assert!(store.clean_incomplete(db).unwrap().is_empty());

    // Small files are replaced whole; foreign names are never backups, nor debris.
    store.put(&k(db, "notes.txt"), b"first").unwrap();
    store.put(&k(db, "notes.txt"), b"second").unwrap();
    assert_eq!(fetch(store, db, "notes.txt"), b"second");
    store
        .put(&k(db, "other_20260101_020000.sql.gz"), b"x")
        .unwrap();
    assert_eq!(
        backup_files(store, db),
        vec![n1.file_name(), n2.file_name()]
    );
    assert!(store.clean_incomplete(db).unwrap().is_empty());
    assert_eq!(fetch(store, db, "other_20260101_020000.sql.gz"), b"x");

    // An empty object round-trips.
    let n5 = name(db, 5);
    let w = store.create(&k(db, &n5.file_name()), Some(0)).unwrap();
    assert_eq!(w.commit().unwrap(), 0);
    assert!(fetch(store, db, &n5.file_name()).is_empty());

    // Deletes are idempotent and take effect.
    store.delete(&k(db, &n1.file_name())).unwrap();
    store.delete(&k(db, &n1.file_name())).unwrap();
    assert_eq!(
        backup_files(store, db),
        vec![n2.file_name(), n5.file_name()]
    );
    assert!(store
        .fetch(&k(db, &n1.file_name()), &mut Vec::new())
        .is_err());

    // What an interrupted commit leaves, by the storage's commit order: the data object of n5
    // (S3: data first, its sidecar never came) and n1's sidecar without its data are debris
    // there; locally only the sidecar is, and the data file stays (never a backup).
    let removed = store.clean_incomplete(db).unwrap();
    assert_eq!(removed.len(), if data_first { 2 } else { 1 }, "{removed:?}");
    assert!(!store
        .files(db)
        .unwrap()
        .iter()
        .any(|f| f.name == n1.sidecar_name()));
    assert_eq!(
        backup_files(store, db).contains(&n5.file_name()),
        !data_first
    );
    assert_eq!(store.latest(db).unwrap().unwrap().name, n2);

    // Keys beyond a database's directory (WAL segments, base backups, globals): nested
    // directories, listed one level at a time; a key that could leave the root is refused.
    let wal = "conf_cluster/wal/00000001";
    let seg = format!("{wal}/000000010000000000000001");
    let mut w = store.create(&seg, Some(7)).unwrap();
    w.write_all(b"segment").unwrap();
    assert!(store.list(wal).unwrap().is_empty(), "visible before commit");
    w.commit().unwrap();
    store.put(&format!("{wal}/00000001.history"), b"h").unwrap();
    let names: Vec<String> = store
        .list(wal)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["00000001.history", "000000010000000000000001"]);
    assert_eq!(store.list_dirs("conf_cluster/wal").unwrap(), ["00000001"]);
    assert_eq!(store.list_dirs("conf_cluster").unwrap(), ["wal"]);
    assert!(store.list("conf_cluster").unwrap().is_empty());
    assert!(store.list_dirs(wal).unwrap().is_empty());
    assert_eq!(fetch(store, wal, "000000010000000000000001"), b"segment");
    for bad in [
        "", "/abs", "a//b", "../x", "a/./b", "a/..", "a\\b", "a/b/", "a\nb",
    ] {
        assert!(store.put(bad, b"x").is_err(), "put {bad:?}");
        assert!(store.create(bad, None).is_err(), "create {bad:?}");
        assert!(store.open(bad).is_err(), "open {bad:?}");
        assert!(store.delete(bad).is_err(), "delete {bad:?}");
    }
    assert!(store.list("../x").is_err() && store.list_dirs("/").is_err());
    store.delete(&seg).unwrap();
    store.delete(&format!("{wal}/00000001.history")).unwrap();
    assert!(store.list(wal).unwrap().is_empty());
}

/// The in-memory storage of the fast tier keeps the same promises (S3's commit order).
#[test]
fn memory_storage_conformance() {
    conformance(&pgbackup::storage::MemoryStorage::new(), 1 << 20, true);
}

#[test]
fn local_storage_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&LocalStorage::new(dir.path()), 1 << 20, false);
}

/// A store on the test server with 5 MiB parts that aborts incomplete uploads at once.
pub fn test_store(s3: &S3Server, bucket: &str, prefix: &str) -> S3Store {
    let cfg = S3Config {
        bucket: bucket.to_string(),
        endpoint: Some(s3.endpoint.clone()),
        region: s3.region.clone(),
        prefix: prefix.to_string(),
        credentials: CredentialSpec::Static {
            creds: Credentials {
                access_key: Secret::new(&s3.access_key),
                secret_key: Secret::new(&s3.secret_key),
                session_token: None,
            },
            source: "test keys".into(),
        },
        path_style: true,
        storage_class: None,
        server_side_encryption: None,
        part_size: 5 << 20,
        keep_local: false,
        list_prefixes: Vec::new(),
        stall_timeout: std::time::Duration::from_secs(30),
        abort_incomplete_after: std::time::Duration::ZERO,
        ca_file: s3.ca_file.clone(),
        proxy: Default::default(),
        object_lock: None,
        bucket_place: "test".into(),
    };
    S3Store::new(&cfg).unwrap()
}

#[test]
fn s3_storage_conformance() {
    let s3 = s3_server();
    let bucket = s3.bucket("conf");
    let spool = tempfile::tempdir().unwrap();
    let store = test_store(s3, &bucket, "backups/").with_spool_dir(spool.path());
    conformance(&store, 5 << 20, true);
    // A 2.4-part stream really becomes a 3-part object (the ETag's suffix counts the parts),
    // and an independent client reads the same bytes.
    let data = noise((5 << 20) * 2 + (2 << 20), 9);
    let mut w = store
        .create(&k("conf_db", "conf_db_20260110_020000.sql.gz"), None)
        .unwrap();
    w.write_all(&data).unwrap();
    w.commit().unwrap();
    let head = s3.aws(&[
        "s3api",
        "head-object",
        "--bucket",
        &bucket,
        "--key",
        "backups/conf_db/conf_db_20260110_020000.sql.gz",
    ]);
    head.expect_code(0);
    assert!(head.stdout.contains("-3\\\""), "{}", head.stdout);
    let out = tempfile::tempdir().unwrap();
    let got = out.path().join("two");
    s3.aws(&[
        "s3",
        "cp",
        &format!("s3://{bucket}/backups/conf_db/conf_db_20260102_020000.sql.gz"),
        got.to_str().unwrap(),
    ])
    .expect_code(0);
    assert_eq!(std::fs::read(&got).unwrap(), b"backup two");
    // Nothing was spooled to stay: the spool files are unlinked from the start.
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

/// A download whose connection drops mid-body is resumed from the byte reached (a Range GET),
/// and the bytes read are the object's, not a repeat of its start.
#[test]
fn an_s3_read_cut_mid_body_resumes_with_a_range() {
    let s3 = s3_server();
    let bucket = s3.bucket("resume");
    let data = noise(3 << 20, 11);
    let file = "conf_db_20260111_020000.sql.gz";
    test_store(s3, &bucket, "backups/")
        .put(&k("conf_db", file), &data)
        .unwrap();
    let (mut proxy, via) = crate::s3::fault_proxy(s3, "cut-get");
    let store = test_store(&via, &bucket, "backups/");
    let mut got = Vec::new();
    let read = store
        .open(&k("conf_db", file))
        .unwrap()
        .read_to_end(&mut got)
        .map_err(|e| e.to_string());
    let _ = proxy.kill();
    let log = String::from_utf8_lossy(&proxy.wait_with_output().unwrap().stderr).to_string();
    assert!(
        log.contains("cut the body of a GET"),
        "the fault was not injected: {log}"
    );
    read.unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
}

/// Locally, a reader never opens a FIFO (it would hang) or a link as a backup file; a symlinked
/// database directory is read by the reading commands and refused by everything that writes.
#[test]
fn local_reads_refuse_fifos_and_links_and_follow_a_linked_directory_only_to_read() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let file = "moved_20260101_020000.sql.gz";
    std::fs::write(elsewhere.path().join(file), b"data").unwrap();
    let sidecar = format!("{:x}  {file}\n", Sha256::digest(b"data"));
    std::fs::write(elsewhere.path().join(format!("{file}.sha256")), &sidecar).unwrap();
    symlink(elsewhere.path(), root.path().join("moved")).unwrap();

    let strict = LocalStorage::new(root.path());
    let reading = LocalStorage::reading(root.path());
    assert!(
        strict.files("moved").is_err(),
        "a writer followed a linked directory"
    );
    assert!(strict.open(&k("moved", file)).is_err());
    assert_eq!(reading.complete_backups("moved").unwrap().len(), 1);
    assert_eq!(fetch(&reading, "moved", file), b"data");
    assert!(
        reading.delete(&k("moved", file)).is_err(),
        "deleted through a link"
    );
    assert!(
        reading.put(&k("moved", "x"), b"x").is_err(),
        "wrote through a link"
    );
    assert!(elsewhere.path().join(file).exists());

    let dir = root.path().join("odd");
    std::fs::create_dir(&dir).unwrap();
    let fifo = dir.join("odd_20260101_020000.sql.gz");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    symlink(
        elsewhere.path().join(file),
        dir.join("odd_20260102_020000.sql.gz"),
    )
    .unwrap();
    for s in [&strict, &reading] {
        assert!(
            s.open(&k("odd", "odd_20260101_020000.sql.gz")).is_err(),
            "opened a FIFO"
        );
        assert!(
            s.open(&k("odd", "odd_20260102_020000.sql.gz")).is_err(),
            "opened a link"
        );
        assert!(s.backups("odd").unwrap().is_empty());
    }
}
