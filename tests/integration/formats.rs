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
    let never = format!("{db}_never");
    env.run(&[
        "restore",
        "--backup",
        &name,
        "--target",
        &c.url(&never),
        "--create",
        "--yes",
    ])
    .expect_code(65)
    .expect_stderr("refusing to restore");
    assert_eq!(
        c.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{never}'")
        ),
        "0"
    );
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

/// zstd straight into S3 (keep-local = false): the object is `.sql.zst`, verify checks it
/// streamed from S3, and restore brings back identical tables.
#[test]
fn zstd_streams_into_s3_and_restores_from_it() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("zst");
    let b = bucket.clone();
    let (env, db) = Scenario::new("zsts3", "zs")
        .sql(RICH_SCHEMA)
        .config("[backup]\ncompression = \"zstd\"\n")
        .config_with(move |env| {
            crate::s3::s3_section(env, s3, &b, &s3.secret_key, "keep-local = false")
        })
        .backed_up();
    let listed = s3.aws(&["s3", "ls", &format!("s3://{bucket}/backups/zs/")]);
    listed.expect_code(0);
    assert!(
        listed.stdout.contains(".sql.zst.sha256"),
        "{}",
        listed.stdout
    );
    env.run(&["verify"])
        .expect_code(0)
        .expect_stderr("streamed from S3");
    let dst = format!("{db}_back");
    env.restore_latest("zs", &c.url(&dst)).expect_code(0);
    assert_eq!(c.fingerprint(&db), c.fingerprint(&dst));
}
