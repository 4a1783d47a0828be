//! The secret audit: a unique password in each source pgbackup takes one from (password-file,
//! a URL, a keyword string, DATABASE_URL, PGPASSWORD, the S3 keys) never appears in a child's
//! argv, in a child's environment (but for libpq's own PGPASSWORD when that is the user's
//! choice), in any output (failures too), manifest, metrics, state, `status`, `config show`,
//! nor in any file left after a kill -9.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::harness::*;
use crate::s3::s3_section;

/// A login role with its own unique password; returns (role, password).
fn role_with_unique_password(tag: &str) -> (String, String) {
    let c = cluster();
    let role = format!("sec_{tag}_{}", std::process::id());
    let pw = format!(
        "Uniq-{tag}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    c.sql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{pw}'"),
    );
    (role, pw)
}

/// Wrappers for pg_dump and psql that log their argv and environment (one file per run) and
/// then exec the real program, so a test can read what every child got.
fn logging_wrappers(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let bindir = &cluster().bindir;
    let log = dir.join("children");
    std::fs::create_dir_all(&log).unwrap();
    let mk = |prog: &str| {
        let p = dir.join(format!("logged_{prog}"));
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nf='{}'/{prog}.$$\nprintf '%s\\n' \"$0\" \"$@\" > \"$f.argv\"\ntr '\\0' '\\n' < /proc/$$/environ > \"$f.env\"\nexec '{}/{prog}' \"$@\"\n",
                log.display(),
                bindir.display()
            ),
        )
        .unwrap();
        set_mode(&p, 0o755);
        p
    };
    (mk("pg_dump"), mk("psql"), log)
}

/// Every file under `dir` (recursively) whose content holds `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if m.is_file() && m.len() < 64 << 20 {
            if let Ok(bytes) = std::fs::read(&p) {
                if memchr::memmem::find(&bytes, needle.as_bytes()).is_some() {
                    out.push(p);
                }
            }
        }
    }
    out
}

#[test]
fn no_secret_reaches_argv_environments_outputs_files_or_debris() {
    let c = cluster();
    let s3 = s3_server();
    let bucket = s3.bucket("secrets");
    let db = c.create_db("sec");
    c.sql(
        &db,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    let env = TestEnv::new();
    let (pg_dump, psql, log) = logging_wrappers(env.tmp.path());
    let textfile = env.textfile_dir();
    let tools = format!(
        "[backup]\npg-dump-path = \"{}\"\npsql-path = \"{}\"\n[metrics]\ntextfile-dir = \"{}\"\n",
        pg_dump.display(),
        psql.display(),
        textfile.display()
    );
    let host = format!("127.0.0.1:{}", c.port);
    // Each source with its own role and password.
    let (r_file, pw_file) = role_with_unique_password("file");
    let (r_url, pw_url) = role_with_unique_password("url");
    let (r_kw, pw_kw) = role_with_unique_password("kw");
    let (r_env, pw_env) = role_with_unique_password("dburl");
    let (r_pg, pw_pg) = role_with_unique_password("pgpw");
    let pw_path = env.tmp.path().join("file.pw");
    std::fs::write(&pw_path, format!("{pw_file}\n")).unwrap();
    set_mode(&pw_path, 0o600);
    let databases = format!(
        "[[database]]\nname = \"file\"\nurl = \"postgresql://{r_file}@{host}/{db}\"\npassword-file = \"{}\"\n\n\
         [[database]]\nname = \"url\"\nurl = \"postgresql://{r_url}:{pw_url}@{host}/{db}\"\n\n\
         [[database]]\nname = \"kw\"\nurl = \"host=127.0.0.1 port={} user={r_kw} password={pw_kw} dbname={db}\"\n\n",
        pw_path.display(),
        c.port
    );
    env.write_config(&format!(
        "{}{tools}\n{databases}",
        s3_section(&env, s3, &bucket, &s3.secret_key, "")
    ));
    let secrets = [
        pw_file.as_str(),
        pw_url.as_str(),
        pw_kw.as_str(),
        s3.secret_key.as_str(),
    ];
    let check_output = |r: &Run, what: &str| {
        for s in secrets {
            assert!(
                !r.stdout.contains(s) && !r.stderr.contains(s),
                "{what} printed a secret:\n{}\n{}",
                r.stdout,
                r.stderr
            );
        }
    };
    let r = env.run(&["backup"]);
    r.expect_code(0);
    check_output(&r, "backup");
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["config", "show"],
        vec!["config", "check"],
        vec!["check"],
        vec!["verify", "--test-restore"],
        vec!["prune", "--dry-run"],
    ] {
        let r = env.run(&args);
        check_output(&r, &args.join(" "));
    }
    // DATABASE_URL and PGPASSWORD (the user's libpq choice), one database each.
    let env2 = TestEnv::new();
    std::fs::write(
        &env2.config,
        format!(
            "[storage]\nlocal-dir = \"{}\"\n{tools}",
            env2.backups.display()
        ),
    )
    .unwrap();
    let r = Run::from(
        env2.cmd(&["backup"])
            .env(
                "DATABASE_URL",
                format!("postgresql://{r_env}:{pw_env}@{host}/{db}"),
            )
            .env("S3_SECRET_KEY", &s3.secret_key)
            .output()
            .unwrap(),
    );
    r.expect_code(0);
    assert!(
        !r.stderr.contains(&pw_env) && !r.stdout.contains(&pw_env),
        "{}",
        r.stderr
    );
    let r = Run::from(
        env2.cmd(&["backup", "--force"])
            .env("DATABASE_URL", format!("postgresql://{r_pg}@{host}/{db}"))
            .env("PGPASSWORD", &pw_pg)
            .output()
            .unwrap(),
    );
    r.expect_code(0);
    assert!(!r.stderr.contains(&pw_pg), "{}", r.stderr);
    // Failures print no secret either: a server that is down.
    let down = databases.replace(&host, "127.0.0.1:1");
    env.write_config(&format!("{tools}\n{down}"));
    let r = env.run(&["backup"]);
    r.expect_code(69);
    check_output(&r, "a failing backup");

    // What every child got: no password in any argv, and in an environment only the user's own
    // PGPASSWORD (and no S3 key, no DATABASE_URL).
    let mut children = 0;
    for e in std::fs::read_dir(&log).unwrap().flatten() {
        children += 1;
        let text = std::fs::read_to_string(e.path()).unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        for s in secrets.iter().chain([&pw_env.as_str()]) {
            assert!(!text.contains(s), "{name} holds a secret:\n{text}");
        }
        if name.ends_with(".argv") {
            assert!(!text.contains(&pw_pg), "{name}: {text}");
        } else {
            assert!(
                !text.contains("DATABASE_URL") && !text.contains("S3_SECRET_KEY"),
                "{name}: {text}"
            );
            for line in text.lines().filter(|l| l.contains(&pw_pg)) {
                assert!(line.starts_with("PGPASSWORD="), "{name}: {line}");
            }
        }
    }
    assert!(children >= 20, "only {children} child logs");

    // Nothing at rest: manifests, state, metrics, the backup tree, the temp directories (the
    // S3 secret only in this test's own directories: other tests keep it in their key files).
    let unique = [
        pw_file.as_str(),
        pw_url.as_str(),
        pw_kw.as_str(),
        pw_env.as_str(),
        pw_pg.as_str(),
    ];
    let all: Vec<&str> = unique
        .iter()
        .copied()
        .chain([s3.secret_key.as_str()])
        .collect();
    for (dir, which) in [
        (env.tmp.path(), &all[..]),
        (env2.tmp.path(), &all[..]),
        (&std::env::temp_dir(), &unique[..]),
        (Path::new("/dev/shm"), &all[..]),
    ] {
        for s in which {
            let found: Vec<PathBuf> = files_containing(dir, s)
                .into_iter()
                // The test's own password file and config hold them on purpose.
                .filter(|p| {
                    !p.starts_with(env.tmp.path().join("file.pw"))
                        && *p != env.config
                        && !p.ends_with("s3-secret-key")
                        && !p.starts_with(&log)
                })
                .collect();
            assert!(found.is_empty(), "a secret at rest in {found:?}");
        }
    }

    // kill -9 in the middle of a dump leaves no password behind (the passfile is a memfd).
    env.write_config(&format!("{tools}\n{databases}"));
    let slow = env.tmp.path().join("slow_pg_dump");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) exec '{0}/pg_dump' --version;; esac\n'{0}/pg_dump' \"$@\"; sleep 30\n",
            c.bindir.display()
        ),
    )
    .unwrap();
    set_mode(&slow, 0o755);
    let tools_slow = tools.replace(&pg_dump.display().to_string(), &slow.display().to_string());
    env.write_config(&format!("{tools_slow}\n{databases}"));
    let mut child = env.spawn(&["backup"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    for dir in [env.tmp.path(), &std::env::temp_dir(), Path::new("/dev/shm")] {
        let found: Vec<PathBuf> = files_containing(dir, &pw_file)
            .into_iter()
            .filter(|p| *p != pw_path && *p != env.config)
            .collect();
        assert!(found.is_empty(), "kill -9 left the password in {found:?}");
    }
    let _ = std::process::Command::new("pkill")
        .args(["-f", &slow.display().to_string()])
        .stdout(Stdio::null())
        .status();
}
