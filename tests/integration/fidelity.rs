//! Faithful restores of a database nobody here wrote (tests/fixtures/hostile.sql): privilege
//! lines inside function bodies and literals, names with newlines, extensions in their own
//! schema, database settings and comment, forced row-level security. The proof is pg_upgrade's:
//! `pg_dump` of the original and of the restored copy are identical.

use crate::harness::*;

/// A fresh copy of the hostile dataset, with database-level settings, a role-in-database
/// setting and a comment that a plain dump does not carry.
pub fn hostile_db(prefix: &str) -> String {
    let c = cluster();
    let db = c.create_db(prefix);
    let out = c
        .psql_cmd(&db)
        .arg("-f")
        .arg(repo().join("tests/fixtures/hostile.sql"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hostile.sql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.sql(
        &db,
        &format!(
            "ALTER DATABASE \"{db}\" SET search_path = \"$user\", public, extensions; \
             ALTER DATABASE \"{db}\" SET work_mem = '12MB'; \
             ALTER ROLE rw_reader IN DATABASE \"{db}\" SET work_mem = '8MB'; \
             COMMENT ON DATABASE \"{db}\" IS 'the app''s database; GRANT nothing'"
        ),
    );
    db
}

/// The test-restore role of the README's least-privilege recipe: CREATEDB, no superuser, no
/// BYPASSRLS (made once per cluster).
fn restorer_role() {
    // Once per test binary: two tests creating it at the same moment both pass IF NOT EXISTS.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        cluster().sql(
            "postgres",
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgb_restorer') THEN \
                 CREATE ROLE pgb_restorer LOGIN CREATEDB PASSWORD '{PASSWORD}'; END IF; END $$"
            ),
        );
    });
}

/// `pg_dump` of `db` as plain text (as the superuser), without the per-run `\restrict` lines.
pub fn dump_text(db: &str, extra: &[&str]) -> String {
    let c = cluster();
    let out = std::process::Command::new(c.bindir.join("pg_dump"))
        .env_clear()
        .env("PGHOST", &c.dir)
        .env("PGPORT", c.port.to_string())
        .env("PGUSER", "postgres")
        .args(extra)
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump {db}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The database's settings (`setrole` 0, and per role), sorted, and its comment.
fn db_settings(db: &str) -> (String, String) {
    let c = cluster();
    let settings = c.sql(
        "postgres",
        &format!(
            "SELECT coalesce(r.rolname, '-') || ':' || array_to_string(s.setconfig, '|') \
             FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase \
             LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = '{db}' ORDER BY 1"
        ),
    );
    let comment = c.sql(
        "postgres",
        &format!(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{db}'"
        ),
    );
    (settings, comment)
}

fn assert_same(a: &str, b: &str, what: &str) {
    if a != b {
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .take(5)
            .map(|(i, (x, y))| format!("line {}:\n  original: {x}\n  restored: {y}", i + 1))
            .collect();
        panic!(
            "{what}: the dumps differ ({} vs {} lines)\n{}",
            a.lines().count(),
            b.lines().count(),
            diff.join("\n")
        );
    }
}

/// `restore --no-owner` of the latest backup of "h" into a new database `<prefix>_<pid>` gives
/// what `pg_dump -O -x` of the original would have; returns the copy's name.
fn restores_without_owners(env: &TestEnv, db: &str, prefix: &str) -> String {
    let no_owner = format!("{prefix}_{}", std::process::id());
    env.run(&[
        "restore",
        "--db",
        "h",
        "--latest",
        "--target",
        &cluster().url(&no_owner),
        "--create",
        "--yes",
        "--no-owner",
    ])
    .expect_code(0);
    assert_same(
        &dump_text(db, &["-O", "-x"]),
        &dump_text(&no_owner, &["-O", "-x"]),
        "restore --no-owner",
    );
    no_owner
}

#[test]
fn a_hostile_database_restores_identically_with_its_settings_and_without_owners() {
    let c = cluster();
    let db = hostile_db("fid_src");
    let env = TestEnv::new();
    env.write_config(
        &env.db_entry("h", &db)
            .replace("\n\n", "\nextensions = [\"citext\", \"hstore\"]\n\n"),
    );
    env.run(&["backup"]).expect_code(0);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{}.json", env.latest("h").display())).unwrap(),
    )
    .unwrap();
    // The proof covers the table whose name holds a newline, and the forced-RLS one.
    let tables = manifest["tables"].as_array().unwrap();
    assert!(
        tables
            .iter()
            .any(|t| t["table"] == "multi\nline data" && t["rows"] == 7),
        "{tables:?}"
    );
    assert!(tables
        .iter()
        .any(|t| t["table"] == "secrets" && t["rows"] == 100));
    let exts = manifest["extensions"].as_array().unwrap();
    assert!(
        exts.iter()
            .any(|e| e["name"] == "citext" && e["schema"] == "extensions"),
        "{exts:?}"
    );
    let props = &manifest["database_properties"];
    assert!(
        props["settings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().starts_with("search_path=")),
        "{props}"
    );

    // A restore into a new database: pg_dump of both identical, settings and comment back.
    let copy = format!("fid_copy_{}", std::process::id());
    let r = env.run(&[
        "restore",
        "--db",
        "h",
        "--latest",
        "--target",
        &c.url(&copy),
        "--create",
        "--yes",
    ]);
    r.expect_code(0)
        .expect_stderr("then applied: database settings");
    assert_same(&dump_text(&db, &[]), &dump_text(&copy, &[]), "restore");
    let (s1, c1) = db_settings(&db);
    let (s2, c2) = db_settings(&copy);
    assert_eq!(s1, s2, "database and role-in-database settings");
    assert_eq!(c1, c2, "database comment");
    // The function body kept its privilege lines word for word.
    let body = c.sql(
        &copy,
        "SELECT prosrc FROM pg_proc WHERE proname = 'grant_reader'",
    );
    assert!(
        body.contains("\nGRANT USAGE ON SCHEMA public TO rw_reader;\n"),
        "{body}"
    );

    // --no-owner: what pg_dump -O -x of the original would have given.
    let no_owner = restores_without_owners(&env, &db, "fid_noowner");
    // Nothing of the original owners or grants came along.
    let owners = c.sql(
        &no_owner,
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'app_owner'",
    );
    assert_eq!(owners, "0");
}

#[test]
fn a_least_privilege_test_restore_proves_every_table_without_false_alarms() {
    let c = cluster();
    let db = hostile_db("fid_lp");
    // The restore role: CREATEDB, no superuser, no BYPASSRLS.
    restorer_role();
    let env = TestEnv::new();
    env.write_config(&format!(
        "[verify]\nrestore-url = \"postgresql://pgb_restorer@127.0.0.1:{}/postgres\"\nrestore-password-file = \"{}\"\n\n{}",
        c.port,
        env.password_file.display(),
        env.db_entry("lp", &db).replace("\n\n", "\nextensions = [\"citext\"]\n\n")
    ));
    env.run(&["backup"]).expect_code(0);
    let r = env.run(&["verify", "--test-restore", "--keep-scratch"]);
    r.expect_code(0);
    // The human output states the proof.
    assert!(r.stdout.contains("tables with"), "{}", r.stdout);
    let tables = r
        .stdout
        .split("restored into a scratch database, ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(tables >= 8, "{}", r.stdout);
    let scratch = r
        .stdout
        .split("the scratch database ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .unwrap()
        .to_string();
    // The scratch database holds what pg_dump -O -x of the original holds, RLS flags included.
    assert_same(
        &dump_text(&db, &["-O", "-x"]),
        &dump_text(&scratch, &["-O", "-x"]),
        "test restore",
    );
    c.sql("postgres", &format!("DROP DATABASE \"{scratch}\""));
    // Without --keep-scratch nothing is left.
    env.run(&["verify", "--test-restore"]).expect_code(0);
    let left = c.sql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'pgbackup_verify_lp_%'",
    );
    assert_eq!(left, "0");
}

#[test]
fn extensions_the_dump_does_not_create_are_made_first_in_their_schema() {
    let c = cluster();
    let db = hostile_db("fid_ext");
    let env = TestEnv::new();
    // A dump of one schema: no CREATE EXTENSION, no schema "extensions" in it, but its domain
    // is over extensions.citext and a column is public.hstore.
    env.write_config(&env.db_entry("ex", &db).replace(
        "\n\n",
        "\nextensions = [\"citext\", \"hstore\"]\npg-dump-args = [\"--schema=app\"]\n\n",
    ));
    env.run(&["backup"]).expect_code(0);
    let r = env.run(&["verify", "--test-restore"]);
    r.expect_code(0);
    let copy = format!("fid_ext_copy_{}", std::process::id());
    let r = env.run(&[
        "restore",
        "--db",
        "ex",
        "--latest",
        "--target",
        &c.url(&copy),
        "--create",
        "--yes",
    ]);
    r.expect_code(0)
        .expect_stderr("extension citext is created first in schema extensions");
    assert_eq!(
        c.sql(
            &copy,
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'citext'"
        ),
        "extensions"
    );
    assert_eq!(c.sql(&copy, "SELECT count(*) FROM app.users"), "50");
}

#[test]
fn a_failing_restore_names_the_dump_line_and_shows_it() {
    let c = cluster();
    let db = hostile_db("fid_line");
    let env = TestEnv::new();
    env.write_config(&env.db_entry("ln", &db));
    env.run(&["backup"]).expect_code(0);
    // Into a database that already holds the schema, without --clean: CREATE SCHEMA fails.
    let busy = c.create_db("fid_line_busy");
    c.sql(
        &busy,
        "CREATE SCHEMA extensions; CREATE TABLE extensions.x (a int)",
    );
    let r = env.run(&[
        "restore",
        "--db",
        "ln",
        "--latest",
        "--target",
        &c.url(&busy),
        "--yes",
        "--no-safety-backup",
    ]);
    r.expect_code(1).expect_stderr("at line ");
    let line: u64 = r
        .stderr
        .split("at line ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a line number");
    // That line of the dump is the failing statement, shown with a marker.
    let text = crate::harness::zcat(&env.latest("ln"));
    let actual = text.lines().nth(line as usize - 1).unwrap();
    assert!(
        actual.starts_with("CREATE SCHEMA extensions"),
        "line {line}: {actual}"
    );
    assert!(
        r.stderr
            .contains(&format!("> {line:>6}| CREATE SCHEMA extensions")),
        "{}",
        r.stderr
    );
}

#[test]
fn a_least_privilege_backup_role_is_told_which_grant_it_lacks() {
    let c = cluster();
    let db = hostile_db("fid_role");
    c.sql(
        "postgres",
        &format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgb_reader') THEN \
             CREATE ROLE pgb_reader LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_read_all_data; END IF; END $$"
        ),
    );
    let env = TestEnv::new();
    let entry = env
        .db_entry("rl", &db)
        .replace("postgresql://postgres@", "postgresql://pgb_reader@");
    env.write_config(&entry);
    env.run(&["backup"])
        .expect_code(1)
        .expect_stderr("BYPASSRLS");
    // Without the forced-RLS table, the large object is next.
    c.sql(&db, "DROP TABLE app.secrets");
    env.run(&["backup"])
        .expect_code(1)
        .expect_stderr("GRANT SELECT ON LARGE OBJECT");
    assert!(env.data_files("rl").is_empty());
}

#[test]
fn a_scratch_database_held_by_another_session_is_retried_then_reported() {
    let c = cluster();
    let db = c.create_db("fid_scratch");
    c.sql(
        &db,
        "CREATE TABLE t AS SELECT g, md5(g::text) AS v FROM generate_series(1, 300000) g",
    );
    restorer_role();
    let env = TestEnv::new();
    let textfile = env.textfile_dir();
    env.write_config(&format!(
        "[verify]\nrestore-url = \"postgresql://pgb_restorer@127.0.0.1:{}/postgres\"\nrestore-password-file = \"{}\"\n[metrics]\ntextfile-dir = \"{}\"\n\n{}",
        c.port,
        env.password_file.display(),
        textfile.display(),
        env.db_entry("sc", &db)
    ));
    env.run(&["backup"]).expect_code(0);
    // A superuser session on the scratch database (as an autovacuum worker would be): the
    // restore role may not terminate it, so DROP ... WITH (FORCE) is refused.
    let hold = |secs: u32| {
        let verify = env.spawn(&["verify", "--test-restore"]);
        let mut scratch = String::new();
        wait_for(
            std::time::Duration::from_secs(60),
            "the scratch database",
            || {
                scratch = c.sql(
                "postgres",
                "SELECT datname FROM pg_database WHERE datname LIKE 'pgbackup_verify_sc_%' LIMIT 1",
            );
                !scratch.is_empty()
            },
        );
        let session = c
            .psql_cmd(&scratch)
            .arg("-c")
            .arg(format!("SELECT pg_sleep({secs})"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (
            Run::from(verify.wait_with_output().unwrap()),
            scratch,
            session,
        )
    };
    // Held for 3 s: the plain DROP is retried and gets through.
    let (r, scratch, mut session) = hold(3);
    let _ = session.wait();
    r.expect_code(0);
    assert_eq!(
        c.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'")
        ),
        "0"
    );
    // Held for longer than the retries: a failure, in the exit code, metrics, status and check.
    let (r, scratch, mut session) = hold(120);
    r.expect_code(1).expect_stderr("could not be dropped");
    let prom = std::fs::read_to_string(textfile.join("pgbackup.prom")).unwrap();
    assert!(prom.contains("pgbackup_scratch_databases_left 1"), "{prom}");
    env.run(&["check", "--no-connect"]).expect_code(1);
    let status = env.run(&["status"]);
    assert!(status.stdout.contains(&scratch), "{}", status.stdout);
    c.sql(
        "postgres",
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{scratch}'"
        ),
    );
    let _ = session.kill();
    let _ = session.wait();
    // The next test restore drops what the last one left.
    env.run(&["verify", "--test-restore"])
        .expect_code(0)
        .expect_stderr("left behind");
    assert_eq!(
        c.sql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'")
        ),
        "0"
    );
    let prom = std::fs::read_to_string(textfile.join("pgbackup.prom")).unwrap();
    assert!(prom.contains("pgbackup_scratch_databases_left 0"), "{prom}");
}

/// The hostile database as a custom archive (zstd), restored by pg_restore -j 2: pg_dump of the
/// copy is pg_dump of the original, settings and comment included, and with --no-owner what
/// `pg_dump -O -x` gives; the archive's row counts (the table whose name holds a newline too)
/// are those of a plain backup; the least-privilege role's test restore proves every table.
#[test]
fn a_hostile_database_restores_identically_from_a_custom_archive_in_parallel() {
    let c = cluster();
    restorer_role();
    let db = hostile_db("fidc_src");
    let env = TestEnv::new();
    let entry = env
        .db_entry("h", &db)
        .replace("\n\n", "\nextensions = [\"citext\", \"hstore\"]\n\n");
    let restore_url = format!(
        "postgresql://pgb_restorer:{PASSWORD}@127.0.0.1:{}/postgres",
        c.port
    );
    let custom = format!(
        "[backup]\nformat = \"custom\"\ncompression = \"zstd\"\n[verify]\nrestore-url = \"{restore_url}\"\n\n{entry}"
    );
    env.write_config(&custom);
    env.run(&["backup"]).expect_code(0);
    let archive = env.latest("h");
    assert!(archive.to_string_lossy().ends_with(".dump.zst"));
    let rows = |f: &std::path::Path| -> Vec<(String, String, u64)> {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{}.json", f.display())).unwrap())
                .unwrap();
        let mut v: Vec<_> = m["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["schema"].as_str().unwrap().to_string(),
                    t["table"].as_str().unwrap().to_string(),
                    t["rows"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let custom_rows = rows(&archive);
    assert!(
        custom_rows
            .iter()
            .any(|t| t.1 == "multi\nline data" && t.2 == 7),
        "{custom_rows:?}"
    );
    env.run(&["verify", "--test-restore"])
        .expect_code(0)
        .expect_stderr_or_stdout("match the manifest");

    let copy = format!("fidc_copy_{}", std::process::id());
    env.restore_latest_with("h", &c.url(&copy), &["--jobs", "2"])
        .expect_code(0)
        .expect_stderr("then applied: database settings");
    assert_same(&dump_text(&db, &[]), &dump_text(&copy, &[]), "restore -j 2");
    assert_eq!(db_settings(&db), db_settings(&copy));
    restores_without_owners(&env, &db, "fidc_noowner");

    env.write_config(&custom.replace("format = \"custom\"", "format = \"plain\""));
    env.run(&["backup", "--force"]).expect_code(0);
    let plain = env.latest("h");
    assert!(plain.to_string_lossy().ends_with(".sql.zst"));
    assert_eq!(rows(&plain), custom_rows);
}

/// The hostile database (names with quotes and newlines, extensions in their own schema,
/// function bodies with GRANT lines, settings) in the directory format with a parallel dump,
/// encrypted with age: pg_dump of the parallel restore is pg_dump of the original, its settings
/// come back, the least-privilege role's test restore proves every table, and the row counts
/// read from the tar are those of a plain backup.
#[test]
fn a_hostile_database_restores_identically_from_an_encrypted_directory_dump() {
    let c = cluster();
    restorer_role();
    let db = hostile_db("fidd_src");
    let env = TestEnv::new();
    let key = env.tmp.path().join("age.key");
    sh(&format!("age-keygen -o '{}' 2>/dev/null", key.display()));
    set_mode(&key, 0o600);
    let public = sh(&format!("age-keygen -y '{}'", key.display()))
        .trim()
        .to_string();
    let entry = env
        .db_entry("h", &db)
        .replace("\n\n", "\nextensions = [\"citext\", \"hstore\"]\n\n");
    let restore_url = format!(
        "postgresql://pgb_restorer:{PASSWORD}@127.0.0.1:{}/postgres",
        c.port
    );
    let config = format!(
        "[backup]\nformat = \"directory\"\ndump-jobs = 2\ncompression = \"zstd\"\n[encryption]\nrecipients = [\"{public}\"]\nidentity-file = \"{}\"\n[verify]\nrestore-url = \"{restore_url}\"\n\n{entry}",
        key.display()
    );
    env.write_config(&config);
    env.run(&["backup"]).expect_code(0);
    let archive = env.latest("h");
    assert!(archive.to_string_lossy().ends_with(".tar.zst.age"));
    let dir_rows = manifest_json(&archive)["tables"].clone();
    env.run(&["verify", "--test-restore"])
        .expect_code(0)
        .expect_stderr_or_stdout("match the manifest");
    let copy = format!("fidd_copy_{}", std::process::id());
    env.restore_latest_with("h", &c.url(&copy), &["--jobs", "2"])
        .expect_code(0)
        .expect_stderr("then applied: database settings");
    assert_same(
        &dump_text(&db, &[]),
        &dump_text(&copy, &[]),
        "directory restore -j 2",
    );
    assert_eq!(db_settings(&db), db_settings(&copy));

    env.write_config(&config.replace("format = \"directory\"", "format = \"plain\""));
    env.run(&["backup", "--force"]).expect_code(0);
    let sorted = |v: serde_json::Value| {
        let mut v: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(manifest_json(&env.latest("h"))["tables"].clone()),
        sorted(dir_rows)
    );
}
