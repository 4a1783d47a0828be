//! The cluster globals (`[backup] globals = true`): roles, memberships, role settings and
//! password hashes backed up once per run as `_globals/_globals_<time>.sql.*`, listed, verified,
//! and restored with `restore --globals` (a plan of what is created and altered, `--dry-run`).

use crate::harness::*;

fn authid(role: &str) -> String {
    cluster().sql(
        "postgres",
        &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"),
    )
}

/// Two roles of this test (one with a password and a setting, one a member of the other)
/// are in the globals backup (0600, sidecar, pg_dumpall's trailer, the manifest naming
/// pg_dumpall); list shows it as globals; verify --test-restore passes and says why it does not
/// restore it; restore --globals --dry-run shows them as existing and changes nothing; after
/// they are dropped, restore --globals creates them again with the same password hash, the
/// membership and the setting.
#[test]
fn roles_are_backed_up_once_per_run_and_restored_with_globals() {
    let c = cluster();
    let pid = std::process::id();
    let (alice, bob) = (
        format!("pgb_glob_alice_{pid}"),
        format!("pgb glob bob {pid}"),
    );
    c.sql(
        "postgres",
        &format!(
            "CREATE ROLE {alice} LOGIN PASSWORD 'glob-secret'; CREATE ROLE \"{bob}\" NOLOGIN; \
             GRANT {alice} TO \"{bob}\"; ALTER ROLE {alice} SET work_mem = '9MB'"
        ),
    );
    let hash = authid(&alice);
    assert!(hash.starts_with("SCRAM-SHA-256$"), "{hash}");
    let (env, _db) = Scenario::new("glob", "g")
        .sql("CREATE TABLE t AS SELECT 1 AS a")
        .config("[backup]\nglobals = true\n")
        .backed_up();
    let dir = env.backups.join("_globals");
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect::<Vec<_>>();
    assert_eq!(files.len(), 3, "data, sidecar, manifest");
    for f in &files {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
    let data = files
        .iter()
        .map(|f| f.path())
        .find(|p| p.to_string_lossy().ends_with(".sql.gz"))
        .unwrap();
    let name = data.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("_globals_"), "{name}");
    sh(&format!(
        "cd '{}' && sha256sum -c '{name}.sha256'",
        dir.display()
    ));
    let text = zcat(&data);
    assert!(text.contains(&format!("CREATE ROLE {alice};")), "{text}");
    assert!(text.contains("PostgreSQL database cluster dump complete"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", data.display())).unwrap())
            .unwrap();
    assert_eq!(manifest["stages"][0]["program"], "pg_dumpall", "{manifest}");
    assert!(
        !serde_json::to_string(&manifest).unwrap().contains("SCRAM"),
        "no hash in the manifest"
    );
    let list = env.run(&["list"]);
    list.expect_code(0);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("_globals ") && l.contains("globals gzip")),
        "{}",
        list.stdout
    );
    env.run(&["verify", "--test-restore"])
        .expect_code(0)
        .expect_stderr_or_stdout("not for the cluster globals");

    let dry = env.run(&["restore", "--globals", "--dry-run"]);
    dry.expect_code(0)
        .expect_stderr("roles that exist, set to the backup's attributes")
        .expect_stderr("nothing was changed");
    assert!(dry.stderr.contains(&alice), "{}", dry.stderr);
    assert!(!dry.stderr.contains("SCRAM"), "{}", dry.stderr);

    c.sql(
        "postgres",
        &format!("DROP ROLE \"{bob}\"; DROP ROLE {alice}"),
    );
    let r = env.run(&["restore", "--globals", "--yes"]);
    r.expect_code(0).expect_stderr("roles created (");
    assert!(!r.stderr.contains("SCRAM"), "{}", r.stderr);
    assert_eq!(authid(&alice), hash, "the same password hash");
    assert_eq!(
        c.sql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid \
                 JOIN pg_roles m ON m.oid = a.member WHERE r.rolname = '{alice}' AND m.rolname = '{bob}'"
            )
        ),
        "1"
    );
    assert_eq!(
        c.sql(
            "postgres",
            &format!(
                "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_roles r \
                 ON r.oid = s.setrole WHERE r.rolname = '{alice}'"
            )
        ),
        "work_mem=9MB"
    );
    // A database's backup is not restored as globals.
    let db_backup = env.latest("g");
    env.run(&[
        "restore",
        "--globals",
        "--file",
        db_backup.to_str().unwrap(),
        "--yes",
    ])
    .expect_code(2)
    .expect_stderr("not the cluster globals");
    c.sql(
        "postgres",
        &format!("DROP ROLE \"{bob}\"; DROP ROLE {alice}"),
    );
}

/// A backup role that is not a superuser cannot read pg_authid: the globals are dumped with
/// --no-role-passwords, the run says so and succeeds, and restore --globals --dry-run says the
/// backup holds no passwords.
#[test]
fn a_role_without_superuser_backs_up_the_globals_without_passwords_and_says_so() {
    let c = cluster();
    c.sql(
        "postgres",
        &format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgb_glob_reader') THEN \
             CREATE ROLE pgb_glob_reader LOGIN BYPASSRLS PASSWORD '{PASSWORD}' IN ROLE pg_read_all_data; END IF; END $$"
        ),
    );
    let db = c.create_db("globnr");
    c.sql(&db, "CREATE TABLE t AS SELECT 1 AS a");
    let env = TestEnv::new();
    env.write_config(&format!(
        "[backup]\nglobals = true\n{}",
        env.db_entry("n", &db)
            .replace("postgresql://postgres@", "postgresql://pgb_glob_reader@")
    ));
    env.run(&["backup"])
        .expect_code(0)
        .expect_stderr("--no-role-passwords");
    let data = std::fs::read_dir(env.backups.join("_globals"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".sql.gz"))
        .unwrap();
    let text = zcat(&data);
    assert!(text.contains("CREATE ROLE pgb_glob_reader;"), "{text}");
    assert!(!text.contains("PASSWORD '"), "{text}");
    env.run(&["restore", "--globals", "--dry-run"])
        .expect_code(0)
        .expect_stderr("none in this backup (taken with --no-role-passwords)");
}
