use std::path::{Path, PathBuf};

use crate::harness::*;

/// A backed-up database with some data; returns (env, database on the server, config name).
fn backed_up(prefix: &str, name: &str) -> (TestEnv, String) {
    Scenario::new(prefix, name)
        .sql(
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 50) g; \
             CREATE TABLE u AS SELECT g AS n FROM generate_series(1, 7) g;",
        )
        .backed_up()
}

/// Scratch databases of test restores of the configured database `name` (other tests run
/// their own test restores at the same time).
fn scratch_databases(name: &str) -> String {
    let prefix = format!("pgbackup_verify_{name}_");
    cluster().sql(
        "postgres",
        &format!(
            "SELECT coalesce(string_agg(datname, ','), '') FROM pg_database WHERE left(datname, {}) = '{prefix}'",
            prefix.len()
        ),
    )
}

fn manifest_of(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(format!("{}.json", path.display())).unwrap()).unwrap()
}

#[test]
fn good_backup_verifies_and_the_result_is_recorded() {
    let (env, _) = backed_up("vgood", "g");
    let r = env.run(&["verify"]);
    r.expect_code(0);
    assert!(r.stdout.starts_with("ok"), "{}", r.stdout);
    let m = manifest_of(&env.latest("g"));
    let v = &m["verifications"][0];
    assert_eq!(v["ok"], true);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sidecar", "sha256", "gzip", "complete", "manifest"]);
    // JSON output for scripts.
    let j = env.run(&["verify", "--json", "--db", "g"]);
    j.expect_code(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(rows[0]["ok"], true);
    assert_eq!(rows[0]["database"], "g");
}

#[test]
fn test_restore_passes_and_leaves_no_scratch_database() {
    let (env, _) = backed_up("vrestore", "tr");
    let r = env.run(&["verify", "--test-restore"]);
    r.expect_code(0);
    assert!(r.stdout.contains("test-restore"), "{}", r.stdout);
    let m = manifest_of(&env.latest("tr"));
    let check = m["verifications"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "test-restore")
        .unwrap()
        .clone();
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("2 tables with 57 rows"),
        "{check}"
    );
    assert_eq!(scratch_databases("tr"), "");
}

#[test]
fn pgbackup_verify_is_verify_under_a_second_name() {
    let (env, _) = backed_up("vname", "n");
    let link = env.tmp.path().join("pgbackup-verify");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pgbackup"), &link).unwrap();
    let out = std::process::Command::new(&link)
        .env_clear()
        .arg("--config")
        .arg(&env.config)
        .arg("--test-restore")
        .output()
        .unwrap();
    let r = Run::from(out);
    r.expect_code(0);
    assert!(r.stdout.contains("test-restore"), "{}", r.stdout);
}

type Corruption = (&'static str, Box<dyn Fn()>);

/// Ways to break a backup; each must be refused by verify with 65.
fn corruptions(path: &Path) -> Vec<Corruption> {
    let p: PathBuf = path.to_path_buf();
    let side = PathBuf::from(format!("{}.sha256", p.display()));
    vec![
        ("flipped byte", {
            let p = p.clone();
            Box::new(move || {
                let mut b = std::fs::read(&p).unwrap();
                let i = b.len() / 2;
                b[i] ^= 0x01;
                std::fs::write(&p, b).unwrap();
            })
        }),
        ("truncated file", {
            let p = p.clone();
            Box::new(move || {
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() * 2 / 3]).unwrap();
                refresh_sidecar(&p);
            })
        }),
        ("missing sidecar", {
            let side = side.clone();
            Box::new(move || std::fs::remove_file(&side).unwrap())
        }),
        ("wrong sidecar", {
            let side = side.clone();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            Box::new(move || {
                std::fs::write(&side, format!("{}  {name}\n", "0".repeat(64))).unwrap()
            })
        }),
        ("not gzip", {
            let p = p.clone();
            Box::new(move || {
                std::fs::write(&p, "CREATE TABLE x (a int);\n").unwrap();
                refresh_sidecar(&p);
            })
        }),
        ("gzip of something that is not a dump", {
            let p = p.clone();
            Box::new(move || write_gz_with_sidecar(&p, b"just some text\nnot a dump\n"))
        }),
        ("incomplete dump without trailer", {
            let p = p.clone();
            Box::new(move || {
                let text = zcat(&p);
                let cut = text.find("-- PostgreSQL database dump complete").unwrap();
                write_gz_with_sidecar(&p, &text.as_bytes()[..cut]);
            })
        }),
    ]
}

#[test]
fn every_kind_of_corruption_is_refused_by_verify() {
    let (env, _) = backed_up("vcorrupt", "c");
    let path = env.latest("c");
    let pristine: Vec<(PathBuf, Vec<u8>)> = env
        .files("c")
        .iter()
        .map(|f| {
            (
                env.db_dir("c").join(f),
                std::fs::read(env.db_dir("c").join(f)).unwrap(),
            )
        })
        .collect();
    for (what, corrupt) in corruptions(&path) {
        for (p, b) in &pristine {
            std::fs::write(p, b).unwrap();
        }
        env.run(&["verify"]).expect_code(0);
        corrupt();
        let r = env.run(&["verify", path.to_str().unwrap()]);
        assert_eq!(
            r.code, 65,
            "{what}: expected 65\n{}\n{}",
            r.stdout, r.stderr
        );
        assert!(r.stdout.starts_with("FAIL"), "{what}: {}", r.stdout);
    }
}

#[test]
fn tampered_rows_fail_the_test_restore_row_count_check() {
    let (env, _) = backed_up("vtamper", "tam");
    let path = env.latest("tam");
    // Remove one data row of table t, keep gzip valid, refresh sidecar and manifest checksums.
    let text = zcat(&path);
    let tampered = text.replacen("17\trow 17\n", "", 1);
    assert_ne!(text, tampered, "the row to remove was not found");
    write_gz_with_sidecar(&path, tampered.as_bytes());
    env.run(&["verify"]).expect_code(0); // integrity alone cannot see it
    let r = env.run(&["verify", "--test-restore"]);
    r.expect_code(65);
    assert!(
        r.stdout
            .contains("row count mismatch in public.t: restored 49, manifest says 50"),
        "{}",
        r.stdout
    );
    assert_eq!(scratch_databases("tam"), "");
}

#[test]
fn least_privilege_role_can_back_up_and_test_restore() {
    let c = cluster();
    let n = std::process::id();
    let (owner, reader, backup) = (
        format!("app_owner_{n}"),
        format!("app_reader_{n}"),
        format!("backup_ro_{n}"),
    );
    let db = c.create_db("lpriv");
    c.sql(
        "postgres",
        &format!(
            "CREATE ROLE {owner}; CREATE ROLE {reader}; \
             CREATE ROLE {backup} LOGIN CREATEDB PASSWORD '{PASSWORD}' IN ROLE pg_read_all_data;"
        ),
    );
    c.sql(
        &db,
        &format!(
            "CREATE SCHEMA app AUTHORIZATION {owner}; \
             CREATE TABLE app.orders (id int PRIMARY KEY, note text); \
             ALTER TABLE app.orders OWNER TO {owner}; \
             INSERT INTO app.orders SELECT g, 'n' || g FROM generate_series(1, 20) g; \
             GRANT USAGE ON SCHEMA app TO {reader}; GRANT SELECT ON app.orders TO {reader}; \
             ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA app GRANT SELECT ON TABLES TO {reader};"
        ),
    );
    let env = TestEnv::new();
    env.write_config(&format!(
        "[[database]]\nname = \"lp\"\nurl = \"postgresql://{backup}@127.0.0.1:{}/{db}\"\npassword-file = \"{}\"\n",
        c.port,
        env.password_file.display()
    ));
    env.run(&["backup"]).expect_code(0);
    let dump = zcat(&env.latest("lp"));
    assert!(
        dump.contains(&format!("OWNER TO {owner}")),
        "the dump carries ownership"
    );
    let r = env.run(&["verify", "--test-restore"]);
    r.expect_code(0);
    assert!(r.stdout.contains("test-restore"), "{}", r.stdout);
    assert_eq!(scratch_databases("lp"), "");
}

#[test]
fn test_restore_against_an_unreachable_server_is_69() {
    let (env, db) = backed_up("vunreach", "un");
    let port = free_port();
    env.write_config(&format!(
        "[verify]\nrestore-url = \"postgresql://postgres@127.0.0.1:{port}/postgres\"\n\n{}",
        env.db_entry("un", &db)
    ));
    env.run(&["verify", "--test-restore"])
        .expect_code(69)
        .expect_stderr("Connection refused");
}

#[test]
fn no_backup_at_all_fails_verify() {
    let env = TestEnv::new();
    env.write_config("");
    env.run(&["verify"])
        .expect_code(65)
        .expect_stderr("no backup found");
}

#[test]
fn scratch_database_is_dropped_on_timeout_and_on_sigterm() {
    // Enough rows that restoring them takes seconds, well past the 1 s limit (600,000 once
    // restored in under a second on a quiet CI machine, and the limit never fired).
    let (env, db) = Scenario::new("vslow", "slowtr")
        .sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS v FROM generate_series(1, 2000000) g")
        .config("[verify]\nrestore-timeout-secs = 1\n")
        .backed_up();

    let r = env.run(&["verify", "--test-restore"]);
    r.expect_code(1);
    assert!(
        r.stdout.contains("did not finish within 1 s"),
        "{}",
        r.stdout
    );
    assert_eq!(scratch_databases("slowtr"), "");

    env.write_config(&env.db_entry("slowtr", &db));
    let child = env.spawn(&["verify", "--test-restore"]);
    wait_for(
        std::time::Duration::from_secs(30),
        "the scratch database",
        || !scratch_databases("slowtr").is_empty(),
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    sh(&format!("kill -TERM {}", child.id()));
    let r = Run::from(child.wait_with_output().unwrap());
    r.expect_code(143);
    assert_eq!(scratch_databases("slowtr"), "");
}

/// The manifest describes the chain (format version 2, every stage with its parameters), and
/// the read side is built from it: a version 1 manifest (no stages) still verifies and
/// test-restores; a chain this version does not know fails verify with the reason and is
/// never restored with a guessed decoder.
#[test]
fn the_manifest_describes_the_chain_and_the_read_side_follows_it() {
    let (env, db) = backed_up("vchain", "ch");
    let path = env.latest("ch");
    let m = manifest_of(&path);
    assert_eq!(m["format_version"], 2);
    // compression-threads defaults to the CPUs, which the manifest records.
    let threads = m["stages"][1]["threads"].as_u64().unwrap_or(0);
    assert!(threads >= 1, "{}", m["stages"]);
    assert_eq!(
        m["stages"],
        serde_json::json!([
            {"stage": "source", "program": "pg_dump", "format": "plain"},
            {"stage": "compression", "algorithm": "gzip", "level": 6, "threads": threads}
        ])
    );
    let manifest_path = PathBuf::from(format!("{}.json", path.display()));
    let write = |v: &serde_json::Value| {
        std::fs::write(&manifest_path, serde_json::to_vec_pretty(v).unwrap()).unwrap()
    };

    // Version 1: no stages; dump_format and compression say the same.
    let mut v1 = m.clone();
    v1.as_object_mut().unwrap().remove("stages");
    v1["format_version"] = 1.into();
    write(&v1);
    env.run(&["verify", "--test-restore"]).expect_code(0);

    // A stage from a newer pgbackup: refused by name, exit 65, nothing restored.
    let mut newer = m.clone();
    newer["stages"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"stage": "signature", "algorithm": "minisign"}));
    write(&newer);
    env.run(&["verify"])
        .expect_code(65)
        .expect_stderr_or_stdout("format: a stage this pgbackup does not know")
        .expect_stderr_or_stdout("a newer pgbackup wrote this backup");
    let target = format!("{db}_never");
    env.run(&[
        "restore",
        "--file",
        path.to_str().unwrap(),
        "--target",
        &cluster().url(&target),
        "--create",
        "--yes",
    ])
    .expect_code(65);
    assert!(!db_exists(&target), "{target} was created");

    // An unknown compression in the stages is the same.
    let mut lz4 = m;
    lz4["stages"][1]["algorithm"] = "lz4".into();
    write(&lz4);
    env.run(&["verify"])
        .expect_code(65)
        .expect_stderr_or_stdout("the compression \"lz4\" is not known to this pgbackup");
}

/// A manifest keeps the last 10 verification results and counts them all: a weekly verify must
/// not grow it forever.
#[test]
fn the_manifest_keeps_the_last_ten_verifications_and_counts_every_one() {
    let (env, _) = backed_up("vkeep", "keep");
    for _ in 0..12 {
        env.run(&["verify"]).expect_code(0);
    }
    let m = manifest_of(&env.latest("keep"));
    assert_eq!(m["verifications"].as_array().unwrap().len(), 10, "{m}");
    assert_eq!(m["verifications_total"], 12, "{m}");
    // The kept ones are the newest.
    let times: Vec<&str> = m["verifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
}

/// `verify --db` with a name that is neither configured nor backed up anywhere is a usage error
/// (2) naming the known ones, as `backup --db` says; a configured database without a backup is
/// still 65.
#[test]
fn verify_of_an_unknown_database_is_2_and_of_one_without_backups_65() {
    let (env, _) = backed_up("vunknown", "known");
    env.run(&["verify", "--db", "nosuch"])
        .expect_code(2)
        .expect_stderr("unknown database \"nosuch\"")
        .expect_stderr("known");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{text}\n[[database]]\nname = \"empty\"\n"),
    )
    .unwrap();
    env.run(&["verify", "--db", "empty"])
        .expect_code(65)
        .expect_stderr("no complete backup of empty");
}

/// `list` tells a sidecar's presence from a verified backup: SIDECAR says the sidecar is there,
/// VERIFIED the last verify's result and age ("never" before the first), so a corrupted file is
/// never shown as "ok" merely because its sidecar exists.
#[test]
fn list_shows_the_sidecar_and_the_last_verification_apart() {
    let (env, _) = backed_up("vlist", "lst");
    let row = |stdout: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with("lst "))
            .unwrap_or_else(|| panic!("no row: {stdout}"))
            .to_string()
    };
    let r = env.run(&["list"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("SIDECAR") && r.stdout.contains("VERIFIED"),
        "{}",
        r.stdout
    );
    let first = row(&r.stdout);
    assert!(
        first.contains("present") && first.contains("never"),
        "{first}"
    );

    env.run(&["verify"]).expect_code(0);
    let verified = row(&env.run(&["list"]).stdout);
    assert!(
        verified.contains("ok ") && verified.contains(" ago"),
        "{verified}"
    );

    // Corrupt the data: the sidecar is still present, the verification says FAILED.
    let file = env.latest("lst");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    env.run(&["verify"]).expect_code(65);
    let failed = row(&env.run(&["list"]).stdout);
    assert!(
        failed.contains("present") && failed.contains("FAILED"),
        "{failed}"
    );
    let json = env.run(&["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows[0]["last_verify_ok"], false, "{}", json.stdout);
}

/// On a terminal verify's "ok" is coloured (and so are the log lines' error and warning tags);
/// NO_COLOR, `--color never` and a pipe turn it off, `--color always` on through a pipe.
#[test]
fn colour_on_a_terminal_only_and_never_with_no_color() {
    let (env, _) = Scenario::new("colour", "col")
        .sql("CREATE TABLE t AS SELECT 1 AS a")
        .backed_up();
    let bin = env!("CARGO_BIN_EXE_pgbackup");
    let pty = |vars: &str, flags: &str| {
        sh(&format!(
            "script -qec \"env -u NO_COLOR TERM=xterm {vars} '{bin}' --config '{}' {flags} verify 2>&1\" /dev/null",
            env.config.display()
        ))
    };
    let esc = "\x1b[";
    let on = pty("", "");
    assert!(on.contains(esc), "no colour on a terminal: {on:?}");
    assert!(on.contains("ok"), "{on:?}");
    for (vars, flags) in [("NO_COLOR=1", ""), ("", "--color never"), ("TERM=dumb", "")] {
        let off = pty(vars, flags);
        assert!(!off.contains(esc), "{vars} {flags}: {off:?}");
        assert!(off.contains("ok  "), "{off:?}");
    }
    let piped = env.run(&["verify"]);
    piped.expect_code(0);
    assert!(!piped.stdout.contains(esc) && !piped.stderr.contains(esc));
    let forced = env.run(&["--color", "always", "verify"]);
    assert!(forced.stdout.contains(esc), "{:?}", forced.stdout);
    // An error's tag is coloured too.
    let failed = env.run(&["--color", "always", "verify", "--db", "nosuch"]);
    assert!(
        failed
            .stderr
            .contains("pgbackup: \x1b[1m\x1b[31merror:\x1b[0m unknown database"),
        "{:?}",
        failed.stderr
    );
}
