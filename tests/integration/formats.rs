//! Compressions and formats beside the default `.sql.gz`: each is backed up, read by the tool a
//! user would reach for (`zstd -t`, `zstdcat`, `sha256sum -c`), verified, test-restored,
//! restored with identical tables, listed, pruned and refused when damaged.

use crate::harness::*;

/// zstd (level 3, two threads): `.sql.zst` that `zstd -t` and `zstdcat` read, a manifest that
/// records the chain, verify --test-restore, a restore with identical tables; a truncated file
/// fails verify (65) and is refused by restore before the target exists; a gzip backup beside it
/// is still read (the reader follows each manifest); retention counts both.
#[test]
fn zstd_backups_round_trip_and_a_cut_one_is_refused() {
    let c = cluster();
    let (env, db) = Scenario::new("zst", "zst")
        .sql(RICH_SCHEMA)
        .config("[backup]\ncompression = \"zstd\"\ncompression-threads = 2\n[retention]\nkeep-days = 0\nkeep-min = 2\n")
        .backed_up();
    let file = env.latest("zst");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with(".sql.zst"), "{name}");
    let dir = env.db_dir("zst");
    assert_eq!(
        sh(&format!(
            "cd '{}' && zstd -tq '{name}' && sha256sum -c '{name}.sha256' 2>&1",
            dir.display()
        ))
        .trim(),
        format!("{name}: OK")
    );
    let text = sh(&format!("zstdcat '{}'", file.display()));
    assert!(
        text.contains("PostgreSQL database dump complete"),
        "zstdcat: {}",
        &text[..200.min(text.len())]
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}.json", file.display())).unwrap())
            .unwrap();
    assert_eq!(manifest["compression"], "zstd");
    assert_eq!(manifest["compression_level"], 3);
    assert_eq!(manifest["stages"][1]["threads"], 2, "{manifest}");

    env.run(&["verify", "--test-restore"]).expect_code(0);
    let dst = format!("{db}_copy");
    env.restore_latest("zst", &c.url(&dst)).expect_code(0);
    assert_eq!(c.fingerprint(&db), c.fingerprint(&dst));
    let list = env.run(&["list", "--json"]);
    list.expect_code(0);
    assert!(list.stdout.contains(&name), "{}", list.stdout);

    // A gzip backup beside it: both are listed and each is read with its own decoder.
    let gz_config = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("compression = \"zstd\"", "compression = \"gzip\"");
    std::fs::write(&env.config, gz_config).unwrap();
    env.run(&["backup", "--force"]).expect_code(0);
    let files = env.data_files("zst");
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(".sql.gz")), "{files:?}");
    let r = env.run(&["verify", "--all", "--json"]);
    r.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", r.stdout);
    assert!(rows.iter().all(|row| row["ok"] == true), "{}", r.stdout);

    // Cut the zstd file in half (and its sidecar to match, as a copy cut in transit would be
    // re-summed by a careless hand): the decoder still finds the frame incomplete.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let sum = sh(&format!("cd '{}' && sha256sum '{name}'", dir.display()));
    std::fs::write(format!("{}.sha256", file.display()), sum).unwrap();
    let r = env.run(&["verify", &name]);
    r.expect_code(65);
    assert!(r.stdout.contains("zstd:"), "{}", r.stdout);
    expect_restore_refused(&env, &name, &format!("{db}_never"));
    // Retention counts backups whatever their compression: with keep-min = 1 the older one,
    // the zstd backup, is the one to go.
    let one = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace("keep-min = 2", "keep-min = 1");
    std::fs::write(&env.config, one).unwrap();
    let r = env.run(&["prune", "--dry-run", "--json"]);
    r.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let action = |f: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|row| row["file"] == f)
            .map(|row| row["action"].as_str().unwrap().to_string())
    };
    assert_eq!(action(&name).as_deref(), Some("delete"), "{}", r.stdout);
    let gz = files.iter().find(|f| f.ends_with(".sql.gz")).unwrap();
    assert_ne!(action(gz).as_deref(), Some("delete"), "{}", r.stdout);
}

/// A compression pgbackup does not write, or a level outside the algorithm's range, is a
/// configuration error naming the key and the fix.
#[test]
fn an_unknown_compression_or_level_is_78_naming_the_fix() {
    let env = TestEnv::new();
    env.write_config("[backup]\ncompression = \"lz4\"\n");
    env.run(&["config", "check"])
        .expect_code(78)
        .expect_stderr("use \"gzip\" or \"zstd\"");
    env.write_config("[backup]\ncompression = \"zstd\"\ncompression-level = 22\n");
    env.run(&["config", "check"])
        .expect_code(78)
        .expect_stderr("zstd level from 1 (fastest) to 19");
    env.write_config("[backup]\ncompression-level = 12\n");
    env.run(&["config", "check"])
        .expect_code(78)
        .expect_stderr("gzip level from 1 (fastest) to 9");
}

/// A backup in `config`'s format straight into S3 (keep-local = false): objects named
/// `*<suffix>`, verify checks them streamed from S3, verify --test-restore passes, and restore
/// (with `restore_args`) brings back identical tables.
pub(crate) fn streams_into_s3_and_restores_from_it(
    prefix: &str,
    config: &str,
    suffix: &str,
    restore_args: &[&str],
) {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket(prefix);
    let b = bucket.clone();
    let (env, db) = Scenario::new(prefix, "s")
        .sql(RICH_SCHEMA)
        .config(config)
        .config_with(move |env| {
            crate::s3::s3_section(env, s3, &b, &s3.secret_key, "keep-local = false")
        })
        .backed_up();
    let listed = s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/s/")]);
    listed.expect_code(0);
    assert!(
        listed.stdout.contains(&format!("{suffix}.sha256")),
        "{}",
        listed.stdout
    );
    env.run(&["verify"])
        .expect_code(0)
        .expect_stderr("streamed from S3");
    env.run(&["verify", "--test-restore"]).expect_code(0);
    let dst = format!("{db}_back");
    let target = c.url(&dst);
    let mut args = vec![
        "restore", "--db", "s", "--latest", "--target", &target, "--create", "--yes",
    ];
    args.extend_from_slice(restore_args);
    env.run(&args).expect_code(0);
    assert_eq!(c.fingerprint(&db), c.fingerprint(&dst));
}

/// zstd straight into S3 (keep-local = false): the object is `.sql.zst`, verify checks it
/// streamed from S3, and restore brings back identical tables.
#[test]
fn zstd_streams_into_s3_and_restores_from_it() {
    streams_into_s3_and_restores_from_it(
        "zsts3",
        "[backup]\ncompression = \"zstd\"\n",
        ".sql.zst",
        &[],
    );
}

/// A custom archive straight into S3: `.dump.zst` objects, verify checks the archive's
/// structure streamed from S3, verify --test-restore and restore (downloaded, then
/// pg_restore -j 2) give identical tables.
#[test]
fn a_custom_archive_streams_into_s3_and_restores_from_it_in_parallel() {
    streams_into_s3_and_restores_from_it(
        "custs3",
        "[backup]\nformat = \"custom\"\ncompression = \"zstd\"\n",
        ".dump.zst",
        &["--jobs", "2"],
    );
}

/// Rows per `schema.table` in a manifest.
fn manifest_rows(file: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", file.display())).unwrap())
            .unwrap();
    m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                format!(
                    "{}.{}",
                    t["schema"].as_str().unwrap(),
                    t["table"].as_str().unwrap()
                ),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The custom format (`pg_dump -Fc -Z0` through our gzip, then zstd): `.dump.gz`/`.dump.zst`
/// that `zcat | pg_restore -l` reads; the manifest's row counts, read from the archive as it
/// streamed, are those a plain backup of the same database records; verify --test-restore
/// restores it with pg_restore; a parallel restore (-j 2) gives identical tables, large objects
/// and sequences; --schema/--table restore one table alone; --table on a plain backup is a
/// usage error that says why.
#[test]
fn custom_archives_round_trip_in_parallel_and_restore_one_table() {
    let c = cluster();
    let (env, db) = Scenario::new("cust", "cu")
        .sql(RICH_SCHEMA)
        .config("[backup]\nformat = \"custom\"\n")
        .backed_up();
    let gz = env.latest("cu");
    let gz_name = gz.file_name().unwrap().to_string_lossy().to_string();
    assert!(gz_name.ends_with(".dump.gz"), "{gz_name}");
    let dir = env.db_dir("cu");
    assert_eq!(
        sh(&format!(
            "cd '{}' && gzip -t '{gz_name}' && sha256sum -c '{gz_name}.sha256' 2>&1",
            dir.display()
        ))
        .trim(),
        format!("{gz_name}: OK")
    );
    // pg_restore -l reads the table of contents and stops: through a file, not a pipe.
    let raw = env.tmp.path().join("archive.raw");
    let toc = sh(&format!(
        "zcat '{0}' > '{1}' && '{2}' -l '{1}'",
        gz.display(),
        raw.display(),
        c.bindir.join("pg_restore").display()
    ));
    assert!(toc.contains("TABLE DATA app items"), "{toc}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", gz.display())).unwrap()).unwrap();
    assert_eq!(manifest["dump_format"], "custom");
    assert_eq!(manifest["stages"][0]["format"], "custom", "{manifest}");
    let custom_rows = manifest_rows(&gz);
    assert_eq!(custom_rows.get("app.items"), Some(&2001), "{custom_rows:?}");
    assert_eq!(custom_rows.get("Sales Dept.Order Lines"), Some(&300));

    env.run(&["verify", "--test-restore"])
        .expect_code(0)
        .expect_stderr_or_stdout("test-restore: restored into a scratch database");
    let copy = format!("{db}_par");
    env.restore_latest_with("cu", &c.url(&copy), &["--jobs", "2"])
        .expect_code(0)
        .expect_stderr("pg_restore with 2 jobs");
    assert_eq!(c.fingerprint(&db), c.fingerprint(&copy));
    // The decompressed copy is gone.
    let leftovers: Vec<_> = std::fs::read_dir(&env.backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".pgbackup-tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The same database as plain SQL: the same rows per table.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("format = \"custom\"", "format = \"plain\""),
    )
    .unwrap();
    env.run(&["backup", "--force"]).expect_code(0);
    let plain = env.latest("cu");
    let plain_name = plain.file_name().unwrap().to_string_lossy().to_string();
    assert!(plain_name.ends_with(".sql.gz"), "{plain_name}");
    assert_eq!(manifest_rows(&plain), custom_rows);
    env.run(&[
        "restore",
        "--backup",
        &plain_name,
        "--target",
        &c.url(&format!("{db}_no")),
        "--create",
        "--yes",
        "--table",
        "items",
    ])
    .expect_code(2)
    .expect_stderr("need a custom- or directory-format backup");

    // zstd: `.dump.zst`, and one table of it alone.
    std::fs::write(
        &env.config,
        config.replace(
            "format = \"custom\"",
            "format = \"custom\"\ncompression = \"zstd\"",
        ),
    )
    .unwrap();
    env.run(&["backup", "--force"]).expect_code(0);
    let zst = env.latest("cu");
    let zst_name = zst.file_name().unwrap().to_string_lossy().to_string();
    assert!(zst_name.ends_with(".dump.zst"), "{zst_name}");
    let toc = sh(&format!(
        "zstdcat -q -f '{0}' -o '{1}' && '{2}' -l '{1}'",
        zst.display(),
        raw.display(),
        c.bindir.join("pg_restore").display()
    ));
    assert!(toc.contains("TABLE DATA app items"), "{toc}");
    assert_eq!(manifest_rows(&zst), custom_rows);
    env.run(&["verify", "--all"]).expect_code(0);
    let one = format!("{db}_one");
    env.run(&[
        "restore",
        "--backup",
        &zst_name,
        "--target",
        &c.url(&one),
        "--create",
        "--yes",
        "--schema",
        "Sales Dept",
        "--table",
        "Order Lines",
    ])
    .expect_code(0)
    .expect_stderr("only table(s): Order Lines");
    // A name the archive does not hold: said before anything (pg_restore alone restores nothing
    // and exits 0).
    env.run(&[
        "restore",
        "--backup",
        &zst_name,
        "--target",
        &c.url(&format!("{db}_none")),
        "--create",
        "--yes",
        "--table",
        "Order Line",
    ])
    .expect_code(2)
    .expect_stderr("holds no table \"Order Line\"");
    let fp = c.fingerprint(&one);
    let tables: Vec<_> = fp
        .keys()
        .filter(|k| !k.starts_with("sequence ") && *k != "large objects")
        .cloned()
        .collect();
    assert_eq!(
        tables,
        vec!["\"Sales Dept\".\"Order Lines\"".to_string()],
        "{fp:?}"
    );
    assert_eq!(
        fp["\"Sales Dept\".\"Order Lines\""],
        c.fingerprint(&db)["\"Sales Dept\".\"Order Lines\""]
    );
}

/// A custom archive that was cut (and recompressed, and re-summed: the checksum and the
/// decompression pass) is caught by its structure: verify says which block it ends in (65),
/// restore refuses it before the target exists. A pg_dump whose archive is cut while it
/// exits 0 leaves no backup behind.
#[test]
fn a_cut_custom_archive_is_refused_and_never_becomes_a_backup() {
    let c = cluster();
    let (env, db) = Scenario::new("custcut", "cc")
        .sql(RICH_SCHEMA)
        .config("[backup]\nformat = \"custom\"\n")
        .backed_up();
    let file = env.latest("cc");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let raw = sh(&format!("zcat '{}' | wc -c", file.display()));
    let raw: usize = raw.trim().parse().unwrap();
    sh(&format!(
        "{{ zcat '{0}' || true; }} | head -c {1} | gzip > '{0}.cut' && mv '{0}.cut' '{0}'",
        file.display(),
        raw * 3 / 4
    ));
    refresh_sidecar(&file);
    let r = env.run(&["verify", &name]);
    r.expect_code(65);
    assert!(
        r.stdout
            .contains("complete: the archive ends inside data block"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(" gzip, complete: "),
        "decompression passed: {}",
        r.stdout
    );
    expect_restore_refused(&env, &name, &format!("{db}_never"));

    // A pg_dump whose output is cut on the way while it "succeeds".
    let wrapper = env.tmp.path().join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n'{}' \"$@\" | head -c 20000\nexit 0\n",
            c.bindir.join("pg_dump").display()
        ),
    )
    .unwrap();
    set_mode(&wrapper, 0o755);
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace(
            "format = \"custom\"",
            &format!(
                "format = \"custom\"\npg-dump-path = \"{}\"",
                wrapper.display()
            ),
        ),
    )
    .unwrap();
    let before = env.data_files("cc");
    env.run(&["backup", "--force"])
        .expect_code(1)
        .expect_stderr(
            "is not whole although pg_dump exited 0: the archive ends inside data block",
        );
    assert_eq!(env.data_files("cc"), before);
    assert!(
        env.files("cc")
            .iter()
            .all(|f| !f.starts_with(".pgbackup-tmp.")),
        "{:?}",
        env.files("cc")
    );
}

/// Not enough room for the decompressed archive pg_restore reads: refused before anything
/// (73, the figures and the fix) when the manifest says the size; when it cannot (no
/// manifest), the full disk on the way is 73 too; the target is never created and nothing is
/// left in the temp directory.
#[test]
fn no_room_for_the_decompressed_archive_is_73_before_the_target_is_touched() {
    let c = cluster();
    let (env, db) = Scenario::new("custroom", "cr")
        .sql("CREATE TABLE t (a int, b text); INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 40000) g")
        .config("[backup]\nformat = \"custom\"\n")
        .backed_up();
    let mnt = env.tmp.path().join("small");
    let _guard = small_disk(&mnt, "1m");
    let target = format!("{db}_never");
    let restore = |env: &TestEnv| {
        env.run(&[
            "restore",
            "--db",
            "cr",
            "--latest",
            "--target",
            &c.url(&target),
            "--create",
            "--yes",
            "--temp-dir",
            mnt.to_str().unwrap(),
        ])
    };
    restore(&env)
        .expect_code(73)
        .expect_stderr("pg_restore needs the archive decompressed")
        .expect_stderr("--temp-dir");
    std::fs::remove_file(format!("{}.json", env.latest("cr").display())).unwrap();
    restore(&env)
        .expect_code(73)
        .expect_stderr("cannot write the decompressed archive for pg_restore");
    assert!(!db_exists(&target), "{target} was created");
    assert_eq!(
        std::fs::read_dir(&mnt).unwrap().count(),
        0,
        "nothing left in the temp dir"
    );
}

/// The directory format (`pg_dump -Fd -j 2` into a private temp directory, streamed as one tar
/// through zstd while it runs): a `.tar.zst` that `tar --zstd` lists and that `tar -x` plus
/// `pg_restore -l` read by hand; the same rows per table as a custom backup records; verify
/// --test-restore; a restore with two jobs gives identical tables (large objects and sequences
/// included) and one table alone with --table; no temp directory stays behind. A tar that
/// lacks one data file (recompressed and re-summed) is 65 naming the file and refused before
/// the target exists; a pg_dump that fails leaves no backup and no temp directory.
#[test]
fn directory_format_dumps_in_parallel_and_a_missing_file_is_caught() {
    let c = cluster();
    let (env, db) = Scenario::new("dirf", "dir")
        .sql(RICH_SCHEMA)
        .config("[backup]\nformat = \"directory\"\ndump-jobs = 2\ncompression = \"zstd\"\n")
        .backed_up();
    let file = env.latest("dir");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with(".tar.zst"), "{name}");
    expect_sha256sum_ok(&file);
    let listing = sh(&format!("tar --zstd -tf '{}'", file.display()));
    assert!(listing.lines().any(|l| l == "toc.dat"), "{listing}");
    assert!(listing.lines().count() >= 5, "{listing}");
    let by_hand = env.tmp.path().join("by-hand");
    std::fs::create_dir(&by_hand).unwrap();
    let toc = sh(&format!(
        "tar --zstd -xf '{}' -C '{1}' && '{2}' -l '{1}'",
        file.display(),
        by_hand.display(),
        c.bindir.join("pg_restore").display()
    ));
    assert!(toc.contains("TABLE DATA app items"), "{toc}");
    let manifest = manifest_json(&file);
    assert_eq!(manifest["dump_format"], "directory", "{manifest}");
    let dir_rows = manifest_rows(&file);
    assert_eq!(dir_rows.get("app.items"), Some(&2001), "{dir_rows:?}");
    assert_eq!(dir_rows.get("Sales Dept.Order Lines"), Some(&300));

    env.run(&["verify", "--test-restore"])
        .expect_code(0)
        .expect_stderr_or_stdout("test-restore: restored into a scratch database");
    let copy = format!("{db}_par");
    env.run(&[
        "restore",
        "--db",
        "dir",
        "--latest",
        "--target",
        &c.url(&copy),
        "--create",
        "--yes",
        "--jobs",
        "2",
    ])
    .expect_code(0)
    .expect_stderr("pg_restore with 2 jobs");
    assert_eq!(c.fingerprint(&db), c.fingerprint(&copy));
    let one = format!("{db}_one");
    env.run(&[
        "restore",
        "--backup",
        &name,
        "--target",
        &c.url(&one),
        "--create",
        "--yes",
        "--schema",
        "app",
        "--table",
        "items",
    ])
    .expect_code(0);
    assert_eq!(
        c.sql(&one, "SELECT count(*) FROM app.items"),
        c.sql(&db, "SELECT count(*) FROM app.items")
    );
    let temp_left = |root: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(".pgbackup-tmp."))
            .collect()
    };
    assert!(
        temp_left(&env.backups).is_empty(),
        "{:?}",
        temp_left(&env.backups)
    );

    // The same database as a custom archive: the same rows per table.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("format = \"directory\"", "format = \"custom\""),
    )
    .unwrap();
    env.run(&["backup", "--force"]).expect_code(0);
    assert_eq!(manifest_rows(&env.latest("dir")), dir_rows);
    std::fs::write(&env.config, &config).unwrap();

    // A tar without one table's data file, recompressed and re-summed: caught by its table
    // of contents.
    let unpacked = env.tmp.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    sh(&format!(
        "tar --zstd -xf '{}' -C '{}'",
        file.display(),
        unpacked.display()
    ));
    let victim = sh(&format!(
        "cd '{}' && ls | grep -E '^[0-9]+\\.dat$' | sort | head -1",
        unpacked.display()
    ))
    .trim()
    .to_string();
    assert!(!victim.is_empty());
    std::fs::remove_file(unpacked.join(&victim)).unwrap();
    sh(&format!(
        "cd '{0}' && tar -cf - toc.dat $(ls | grep -v '^toc.dat$') | zstd -q -c > '{1}'",
        unpacked.display(),
        file.display()
    ));
    refresh_sidecar(&file);
    let r = env.run(&["verify", &name]);
    r.expect_code(65);
    r.expect_stderr_or_stdout(&format!(
        "lacks 1 data file its table of contents names: {victim}"
    ));
    expect_restore_refused(&env, &name, &format!("{db}_never"));
    // A hostile tar that holds one name twice: refused as a bad backup (65), not as a failed
    // unpack.
    sh(&format!(
        "cd '{0}' && tar --hard-dereference -cf - toc.dat toc.dat $(ls | grep -v '^toc.dat$') | zstd -q -c > '{1}'",
        unpacked.display(),
        file.display()
    ));
    refresh_sidecar(&file);
    env.run(&["verify", &name])
        .expect_code(65)
        .expect_stderr_or_stdout("toc.dat is in the tar twice");
    expect_restore_refused(&env, &name, &format!("{db}_never2"));

    // pg_dump fails (a table pattern that matches nothing, with --strict-names): no backup,
    // no temp directory.
    let before = env.data_files("dir");
    let broken = std::fs::read_to_string(&env.config).unwrap().replace(
        "[[database]]",
        "[[database]]\npg-dump-args = [\"--strict-names\", \"--table=nosuch_table\"]",
    );
    std::fs::write(&env.config, broken).unwrap();
    env.run(&["backup", "--force"])
        .expect_code(1)
        .expect_stderr("nosuch_table");
    assert_eq!(env.data_files("dir"), before);
    assert!(
        temp_left(&env.backups).is_empty(),
        "{:?}",
        temp_left(&env.backups)
    );
}

/// A directory-format dump straight into S3 (keep-local = false): `.tar.gz` objects, verified
/// streamed from S3, test-restored and restored in parallel with identical tables.
#[test]
fn a_directory_dump_streams_into_s3_and_restores_from_it() {
    streams_into_s3_and_restores_from_it(
        "dirs3",
        "[backup]\nformat = \"directory\"\ndump-jobs = 2\n",
        ".tar.gz",
        &["--jobs", "2"],
    );
}

/// Every format x compression x encryption a user can configure, on one database: each backup
/// gets the name its chain implies, verify --test-restore passes, and a restore (two jobs where
/// pg_restore runs) brings back tables identical to the original's.
#[test]
fn every_format_compression_and_encryption_round_trips() {
    let c = cluster();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("age.key");
    sh(&format!("age-keygen -o '{}' 2>/dev/null", key.display()));
    set_mode(&key, 0o600);
    let public = sh(&format!("age-keygen -y '{}'", key.display()))
        .trim()
        .to_string();
    let (env, db) = Scenario::new("matrix", "mx").sql(RICH_SCHEMA).build();
    let entry = std::fs::read_to_string(&env.config).unwrap();
    let original = c.fingerprint(&db);
    let mut n = 0;
    for format in ["plain", "custom", "directory"] {
        for compression in ["gzip", "zstd"] {
            for encrypted in [false, true] {
                let encryption = if encrypted {
                    format!(
                        "[encryption]\nrecipients = [\"{public}\"]\nidentity-file = \"{}\"\n",
                        key.display()
                    )
                } else {
                    String::new()
                };
                std::fs::write(
                    &env.config,
                    entry.replace(
                        "[[database]]",
                        &format!(
                            "[backup]\nformat = \"{format}\"\ncompression = \"{compression}\"\ndump-jobs = 2\n{encryption}\n[[database]]"
                        ),
                    ),
                )
                .unwrap();
                let what = format!("{format} {compression} encrypted={encrypted}");
                env.run(&["backup", "--force"]).expect_code(0);
                let file = env.latest("mx");
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                let suffix = format!(
                    ".{}.{}{}",
                    match format {
                        "plain" => "sql",
                        "custom" => "dump",
                        _ => "tar",
                    },
                    if compression == "gzip" { "gz" } else { "zst" },
                    if encrypted { ".age" } else { "" }
                );
                assert!(name.ends_with(&suffix), "{what}: {name}");
                env.run(&["verify", "--test-restore", &name])
                    .expect_code(0)
                    .expect_stderr_or_stdout("rows match");
                n += 1;
                let copy = format!("{db}_{n}");
                let target = c.url(&copy);
                let mut args = vec![
                    "restore", "--backup", &name, "--target", &target, "--create", "--yes",
                ];
                if format != "plain" {
                    args.extend(["--jobs", "2"]);
                }
                env.run(&args).expect_code(0);
                assert_eq!(c.fingerprint(&copy), original, "{what}");
            }
        }
    }
    assert_eq!(env.data_files("mx").len(), 12);
}
