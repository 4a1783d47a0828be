//! Encryption at rest with age (`[encryption]`): files the age CLI decrypts with the same keys
//! (X25519 from age-keygen, and an SSH key), a sidecar that `sha256sum -c` checks without any
//! key, verify and restore that decrypt in the stream, and the failures a user meets: a
//! damaged file (65), the wrong key or none (78, nothing recorded, nothing touched).

use crate::harness::*;
use std::path::{Path, PathBuf};

/// An age key pair made by the age CLI: the private key file (0600) and its public key.
fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    sh(&format!("age-keygen -o '{}' 2>/dev/null", key.display()));
    set_mode(&key, 0o600);
    let public = sh(&format!("age-keygen -y '{}'", key.display()))
        .trim()
        .to_string();
    assert!(public.starts_with("age1"), "{public}");
    (key, public)
}

fn with_identity(env: &TestEnv, identity: Option<&Path>) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("identity-file"))
        .collect();
    let mut text = kept.join("\n") + "\n";
    if let Some(p) = identity {
        text = text.replace(
            "[encryption]\n",
            &format!("[encryption]\nidentity-file = \"{}\"\n", p.display()),
        );
    }
    std::fs::write(&env.config, text).unwrap();
}

fn verifications(file: &Path) -> usize {
    manifest_json(file)["verifications"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Plain gzip and custom zstd backups encrypted to an age key and an SSH key:
/// `.sql.gz.age`/`.dump.zst.age` that are not readable as gzip/zstd, that `sha256sum -c`
/// checks without a key, that `age -d` decrypts with either key into what the manifest's
/// plaintext digest says and into a dump whose trailer is there; verify --test-restore and a
/// (parallel) restore give identical tables; list, status and the metrics say "age".
#[test]
fn encrypted_backups_round_trip_and_the_age_cli_decrypts_them() {
    let c = cluster();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = age_key(keys.path(), "age.key");
    let ssh_key = keys.path().join("id_ed25519");
    sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -C backup@test -f '{}'",
        ssh_key.display()
    ));
    let ssh_public = std::fs::read_to_string(keys.path().join("id_ed25519.pub")).unwrap();
    let (key_c, ssh_c) = (key.clone(), ssh_public.trim().to_string());
    let (env, db) = Scenario::new("enc", "enc")
        .sql(RICH_SCHEMA)
        .config_with(move |env| {
            format!(
                "[metrics]\ntextfile-dir = \"{}\"\n[encryption]\nidentity-file = \"{}\"\nrecipients = [\"{public}\", \"{ssh_c}\"]\n",
                env.textfile_dir().display(),
                key_c.display()
            )
        })
        .backed_up();
    let file = env.latest("enc");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with(".sql.gz.age"), "{name}");
    let head = std::fs::read(&file).unwrap();
    assert!(
        head.starts_with(b"age-encryption.org/v1\n"),
        "not an age file"
    );
    assert!(
        !sh(&format!("zcat '{}' 2>&1 || true", file.display())).contains("PostgreSQL"),
        "zcat read an encrypted file"
    );
    // Without any key: the sidecar checks the stored bytes.
    expect_sha256sum_ok(&file);
    // With either key, the age CLI decrypts it into what the manifest says.
    let manifest = manifest_json(&file);
    let stage = &manifest["stages"][2];
    assert_eq!(stage["stage"], "encryption", "{manifest}");
    assert_eq!(stage["algorithm"], "age");
    assert_eq!(stage["recipients"].as_array().unwrap().len(), 2);
    for id in [&key, &ssh_key] {
        let sum = sh(&format!(
            "age -d -i '{}' '{}' | sha256sum",
            id.display(),
            file.display()
        ));
        assert_eq!(
            &sum[..64],
            manifest["plaintext_sha256"].as_str().unwrap(),
            "age -d with {}",
            id.display()
        );
    }
    let text = sh(&format!(
        "age -d -i '{}' '{}' | zcat",
        key.display(),
        file.display()
    ));
    assert!(text.contains("PostgreSQL database dump complete"));
    assert!(
        text.contains("COPY app.items"),
        "no table data in the decrypted dump"
    );

    let r = env.run(&["verify", "--test-restore"]);
    r.expect_code(0);
    r.expect_stderr_or_stdout("rows match");
    let dst = format!("{db}_copy");
    env.restore_latest("enc", &c.url(&dst)).expect_code(0);
    assert_eq!(c.fingerprint(&db), c.fingerprint(&dst));

    // A custom archive through zstd, decrypted with the SSH key, restored with two jobs.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "[encryption]\n",
            "[backup]\nformat = \"custom\"\ncompression = \"zstd\"\n[encryption]\n",
        ),
    )
    .unwrap();
    with_identity(&env, Some(&ssh_key));
    env.run(&["backup", "--force"]).expect_code(0);
    let custom = env.latest("enc");
    assert!(
        custom.to_string_lossy().ends_with(".dump.zst.age"),
        "{custom:?}"
    );
    let toc = sh(&format!(
        "age -d -i '{}' '{}' | zstdcat > '{1}.raw' && '{}' -l '{1}.raw'; rm -f '{1}.raw'",
        key.display(),
        custom.display(),
        c.bindir.join("pg_restore").display()
    ));
    assert!(toc.contains("TABLE DATA app items"), "{toc}");
    let dst2 = format!("{db}_par");
    env.run(&[
        "restore",
        "--backup",
        &custom.file_name().unwrap().to_string_lossy(),
        "--target",
        &c.url(&dst2),
        "--create",
        "--yes",
        "--jobs",
        "2",
    ])
    .expect_code(0);
    assert_eq!(c.fingerprint(&db), c.fingerprint(&dst2));

    let list = env.run(&["list", "--json"]);
    list.expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["encryption"] == "age" && r["compression_threads"].as_u64() > Some(0)),
        "{}",
        list.stdout
    );
    let human = env.run(&["list"]);
    assert!(
        human.stdout.contains("custom zstd-3 age"),
        "{}",
        human.stdout
    );
    let status = env.run(&["status"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("encryption: age, to 2 keys"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains(&format!("identity-file {}", ssh_key.display())),
        "{}",
        status.stdout
    );
    let prom = std::fs::read_to_string(env.textfile_dir().join("pgbackup.prom")).unwrap();
    assert!(
        prom.contains("format=\"custom\",compression=\"zstd\",encryption=\"age\"} 1"),
        "{prom}"
    );
    // The private key is never printed.
    let secret = std::fs::read_to_string(&key).unwrap();
    let secret = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET"))
        .unwrap();
    for args in [&["status", "--json"][..], &["config", "show"], &["list"]] {
        let r = env.run(args);
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{args:?} printed the key"
        );
    }
}

/// The failures: a damaged `.age` file whose sidecar was re-summed is 65 in verify and refused
/// by restore before the target exists; the wrong identity is 78 naming the keys the backup
/// was encrypted to, and no identity is 78 saying what was and was not checked; neither
/// records a verification in the manifest or creates the target.
#[test]
fn damage_is_65_and_a_wrong_or_missing_key_is_78_with_nothing_touched() {
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = age_key(keys.path(), "right.key");
    let (other, _) = age_key(keys.path(), "other.key");
    let key_c = key.clone();
    let (env, db) = Scenario::new("encf", "encf")
        .sql(RICH_SCHEMA)
        .config_with(move |_| {
            format!(
                "[encryption]\nidentity-file = \"{}\"\nrecipients = [\"{public}\"]\n",
                key_c.display()
            )
        })
        .backed_up();
    let file = env.latest("encf");
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    env.run(&["verify", &name]).expect_code(0);
    let recorded = verifications(&file);
    assert_eq!(recorded, 1);

    // The wrong key: 78, the recipients named, nothing recorded, no target.
    with_identity(&env, Some(&other));
    let r = env.run(&["verify", &name]);
    r.expect_code(78);
    r.expect_stderr_or_stdout("opens none of this backup's recipient stanzas");
    r.expect_stderr_or_stdout("age1");
    assert_eq!(verifications(&file), recorded, "a key problem was recorded");
    let never = format!("{db}_never");
    env.run(&[
        "restore",
        "--backup",
        &name,
        "--target",
        &cluster().url(&never),
        "--create",
        "--yes",
    ])
    .expect_code(78)
    .expect_stderr("nothing was changed");
    assert!(!db_exists(&never));

    // No key at all: 78, the checksum checked, the rest said to be unchecked.
    with_identity(&env, None);
    let r = env.run(&["verify", "--json", &name]);
    r.expect_code(78);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let checks = rows[0]["checks"].as_array().unwrap();
    let find = |n: &str| checks.iter().find(|c| c["name"] == n).cloned();
    assert_eq!(find("sha256").unwrap()["ok"], true, "{}", r.stdout);
    assert_eq!(find("manifest").unwrap()["ok"], true, "{}", r.stdout);
    let age = find("age").unwrap();
    assert!(
        age["detail"]
            .as_str()
            .unwrap()
            .contains("decryption, decompression, completeness and row counts were not"),
        "{age}"
    );
    assert!(find("gzip").is_none(), "{}", r.stdout);
    assert_eq!(verifications(&file), recorded);

    // Damage in the payload, sidecar and manifest re-summed: 65 naming decryption, and the
    // restore refuses before the target exists.
    with_identity(&env, Some(&key));
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() * 2 / 3;
    bytes[mid] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let sum = sh(&format!(
        "cd '{}' && sha256sum '{name}'",
        file.parent().unwrap().display()
    ));
    std::fs::write(format!("{}.sha256", file.display()), &sum).unwrap();
    let mpath = format!("{}.json", file.display());
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["sha256"] = sum[..64].into();
    std::fs::write(&mpath, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let r = env.run(&["verify", &name]);
    r.expect_code(65);
    r.expect_stderr_or_stdout("age: decryption failed");
    expect_restore_refused(&env, &name, &never);
    // Cut short: 65 too.
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    env.run(&["verify", &name]).expect_code(65);
}

/// `config check` names a bad recipient and the fix, refuses a private key given as a
/// recipient without echoing it, an unreadable identity file, and warns when the identity is
/// not the private key of any recipient or when others can read it.
#[test]
fn config_check_names_bad_keys_and_never_echoes_a_private_one() {
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = age_key(keys.path(), "k");
    let (other, _) = age_key(keys.path(), "o");
    let secret = std::fs::read_to_string(&key).unwrap();
    let secret = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET"))
        .unwrap()
        .to_string();
    let env = TestEnv::new();
    env.write_config(&format!(
        "[encryption]\nrecipients = [\"{public}\", \"{secret}\", \"age1notakey\"]\nidentity-file = \"/nonexistent/key\"\n"
    ));
    let r = env.run(&["config", "check"]);
    r.expect_code(78);
    r.expect_stderr_or_stdout("encryption.recipients[1]");
    r.expect_stderr_or_stdout("is a private key");
    r.expect_stderr_or_stdout("encryption.recipients[2]");
    r.expect_stderr_or_stdout("encryption.identity-file");
    assert!(
        !r.stdout.contains(&secret) && !r.stderr.contains(&secret),
        "the private key was echoed"
    );

    set_mode(&other, 0o644);
    env.write_config(&format!(
        "[encryption]\nrecipients = [\"{public}\"]\nidentity-file = \"{}\"\n",
        other.display()
    ));
    let r = env.run(&["config", "check"]);
    r.expect_code(0);
    r.expect_stderr_or_stdout("is not the private key of any of [encryption] recipients");
    r.expect_stderr_or_stdout("readable by other users");
}

/// An encrypted custom archive straight into S3 (keep-local = false): `.dump.zst.age` objects,
/// verify decrypts and checks them streamed from S3, test-restores and restores them (in
/// parallel) with identical tables.
#[test]
fn an_encrypted_archive_streams_into_s3_and_restores_from_it() {
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = age_key(keys.path(), "s3.key");
    crate::formats::streams_into_s3_and_restores_from_it(
        "encs3",
        &format!(
            "[backup]\nformat = \"custom\"\ncompression = \"zstd\"\n[encryption]\nrecipients = [\"{public}\"]\nidentity-file = \"{}\"\n",
            key.display()
        ),
        ".dump.zst.age",
        &["--jobs", "2"],
    );
}
