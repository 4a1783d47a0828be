use crate::harness::*;

#[track_caller]
fn broken(toml: &str, needles: &[&str]) {
    let env = TestEnv::new();
    std::fs::write(&env.config, toml).unwrap();
    for args in [&["config", "check"][..], &["backup"][..]] {
        let r = env.run(args);
        r.expect_code(78);
        r.expect_stderr(&env.config.display().to_string());
        for n in needles {
            r.expect_stderr(n);
        }
    }
    assert!(!env.backups.exists());
}

#[test]
fn unknown_key_names_the_key_and_the_valid_ones() {
    broken(
        "[backup]\ncompresion-level = 5\n",
        &[
            "compresion-level",
            "line 2",
            "compression-level",
            "fix its spelling",
        ],
    );
}

#[test]
fn unknown_section_is_rejected() {
    broken("[storag]\nlocal-dir = \"/tmp/x\"\n", &["storag"]);
}

#[test]
fn out_of_range_and_invalid_values_are_all_listed() {
    broken(
        "[backup]\ncompression-level = 0\n\n[[database]]\nname = \"../../etc\"\n\n[[database]]\nname = \"ok\"\nurl = \"postgresql://h:notaport/x\"\n",
        &[
            "configuration errors:",
            "backup.compression-level",
            "from 1 (fastest) to 9",
            "database[0].name",
            "database[1].url",
            "invalid port",
        ],
    );
}

#[test]
fn toml_syntax_error_names_the_line() {
    broken("[backup\ncompression-level = 5\n", &["line 1"]);
}

#[test]
fn wrong_type_names_the_key() {
    broken(
        "[backup]\ncompression-level = \"high\"\n",
        &["compression-level", "integer"],
    );
}

#[test]
fn missing_password_file_is_a_config_error() {
    broken(
        "[[database]]\nname = \"x\"\npassword-file = \"/nonexistent/pgbackup-pw\"\n",
        &[
            "database[0].password-file",
            "/nonexistent/pgbackup-pw",
            "mode 0600",
        ],
    );
}

#[test]
fn missing_explicit_config_file_is_78() {
    let env = TestEnv::new();
    env.run(&["config", "check"])
        .expect_code(78)
        .expect_stderr("cannot read the config file");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgbackup"))
        .env_clear()
        .env("PGBACKUP_CONFIG", "/nonexistent/pgbackup.toml")
        .args(["config", "check"])
        .output()
        .unwrap();
    Run::from(out)
        .expect_code(78)
        .expect_stderr("/nonexistent/pgbackup.toml");
}

#[test]
fn bad_environment_override_names_the_variable() {
    let env = TestEnv::new();
    env.write_config("");
    let out = env
        .cmd(&["config", "check"])
        .env("BACKUP_COMPRESSION_LEVEL", "fast")
        .output()
        .unwrap();
    Run::from(out)
        .expect_code(78)
        .expect_stderr("environment variable BACKUP_COMPRESSION_LEVEL");
}

#[test]
fn valid_config_checks_ok_and_show_masks_secrets() {
    let c = cluster();
    let env = TestEnv::new();
    env.write_config(&format!(
        "[[database]]\nname = \"a\"\nurl = \"postgresql://postgres:{PASSWORD}@127.0.0.1:{}/a\"\n",
        c.port
    ));
    env.run(&["config", "check"])
        .expect_code(0)
        .expect_no_secret();
    let shown = env.run(&["config", "show"]);
    shown.expect_code(0).expect_no_secret();
    assert!(
        shown.stdout.contains("postgres:***@127.0.0.1"),
        "{}",
        shown.stdout
    );
}

#[test]
fn every_shipped_config_parses() {
    for entry in std::fs::read_dir(repo().join("packaging")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgbackup"))
                .env_clear()
                .arg("--config")
                .arg(&p)
                .args(["config", "show"])
                .output()
                .unwrap();
            Run::from(out).expect_code(0);
        }
    }
}

#[test]
fn s3_settings_out_of_range_are_all_listed() {
    broken(
        "[storage.s3]\nbucket = \"b\"\naccess-key = \"a\"\nsecret-key = \"s\"\npart-size-mib = 4\nstall-timeout-secs = 0\nabort-incomplete-after-hours = -1\nprefix = \"new/\"\nlist-prefixes = [\"old/\", \"new\"]\n",
        &[
            "storage.s3.part-size-mib",
            "5 MiB to 5 GiB",
            "storage.s3.stall-timeout-secs",
            "storage.s3.abort-incomplete-after-hours",
            "storage.s3.list-prefixes",
            "the write prefix",
        ],
    );
}

/// pg-dump-args that would break every nightly run (another output format, an output file,
/// pg_dump's own compression, another connection) are refused at `config check`, naming the
/// argument; ordinary ones pass.
#[test]
fn pg_dump_args_that_break_the_backup_are_refused_at_config_check() {
    broken(
        "[[database]]\nname = \"a\"\npg-dump-args = [\"-Fc\", \"--file=/tmp/x.dump\", \"-Z9\", \"--host=elsewhere\"]\n",
        &[
            "database[0].pg-dump-args",
            "\"-Fc\" sets pg_dump's output format; set [backup] format",
            "\"--file=/tmp/x.dump\" sends pg_dump's output to a file",
            "\"-Z9\" compresses inside pg_dump",
            "\"--host=elsewhere\" changes the connection",
        ],
    );
    let env = TestEnv::new();
    env.write_config(
        "[[database]]\nname = \"a\"\npg-dump-args = [\"--exclude-table-data=audit_log\", \"-n\", \"public\"]\n",
    );
    env.run(&["config", "check"]).expect_code(0);
}

/// The old setups' variables that pgbackup does not read are never silently ignored: each set
/// one is a warning naming what to use instead, and `config check` lists what it took from the
/// environment and what it ignored.
#[test]
fn set_variables_pgbackup_does_not_read_are_named_with_their_replacement() {
    let env = TestEnv::new();
    env.write_config("");
    let out = env
        .cmd(&["config", "check"])
        .env("BACKUP_SCHEDULE", "0 2 * * *")
        .env("ROOK_DATABASE_URL", "postgresql://u:p@h/db")
        .env("DB_PASSWORD", "hunter2")
        .env("RESPAWN_PROTECTION_HOURS", "2")
        .output()
        .unwrap();
    let r = Run::from(out);
    r.expect_code(0)
        .expect_stderr("BACKUP_SCHEDULE is set, but pgbackup does not read it")
        .expect_stderr("systemctl edit pgbackup.timer")
        .expect_stderr("ROOK_DATABASE_URL is set")
        .expect_stderr("DB_PASSWORD_FILE");
    assert!(
        r.stdout
            .contains("environment taken: RESPAWN_PROTECTION_HOURS"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("environment ignored (see the warnings): DB_PASSWORD, ROOK_DATABASE_URL, BACKUP_SCHEDULE"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("hunter2") && !r.stdout.contains("hunter2"));
}

/// `pgbackup serve`, which the container setups run, is answered with what to do today (the
/// timers), exit 2, never with clap's nearest command (`restore`).
#[test]
fn serve_says_what_to_use_instead_and_never_suggests_restore() {
    let env = TestEnv::new();
    env.write_config("");
    let r = env.run(&["serve", "--port", "8080"]);
    r.expect_code(2).expect_stderr("pgbackup.timer");
    assert!(!r.stderr.contains("restore"), "{}", r.stderr);
}
