//! `[[database]]` entries, and the database the old setups' environment names describe
//! (`DATABASE_URL`, `DB_HOST`/`DB_NAME`/`DB_USER`, `DB_PASSWORD_FILE`, ...): each checked, its
//! password from a file or a systemd credential.

use std::path::Path;

use super::secrets::Files;
use super::{Database, DatabaseFile, EnvFn};
use crate::catalog::{escape_db_name, is_valid_dir_name};
use crate::conninfo::ConnInfo;
use crate::error::ConfigProblems;
use crate::postgres::Target;
use crate::secret::Secret;

/// The configured databases; problems are appended to `problems`.
pub(super) fn databases(
    file: &[DatabaseFile],
    env: EnvFn,
    env_get: &mut dyn FnMut(&str) -> Option<String>,
    files: &dyn Files,
    key: &dyn Fn(&str) -> String,
    problems: &mut ConfigProblems,
    warnings: &mut Vec<String>,
) -> Vec<Database> {
    let mut databases = Vec::new();
    let mut names = std::collections::HashSet::new();
    let cred_dir = env("CREDENTIALS_DIRECTORY");
    for (i, d) in file.iter().enumerate() {
        let k = |sub: &str| key(&format!("database[{i}].{sub}"));
        if !is_valid_dir_name(&d.name) {
            problems.push(k("name"), invalid_name(&d.name));
        } else if !names.insert(d.name.clone()) {
            problems.push(
                k("name"),
                format!("\"{}\" is configured twice; names must be unique", d.name),
            );
        }
        for arg in &d.pg_dump_args {
            if let Some(why) = pg_dump_arg_problem(arg) {
                problems.push(k("pg-dump-args"), format!("\"{arg}\" {why}; remove it"));
            }
        }
        let conn = match &d.url {
            Some(u) => match ConnInfo::parse(u) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(k("url"), e.to_string());
                    continue;
                }
            },
            None => ConnInfo::from_pairs(vec![("dbname".into(), d.name.clone())]),
        };
        // This database's own remarks: shown only when it is selected (`--db`), so a run of
        // one database does not warn about another's password file.
        let mut own = Vec::new();
        if conn.password().is_some() {
            own.push(
                "the url contains a password; move it to password-file so the config file can be world-readable".to_string(),
            );
        }
        let (mut password, mut password_source) = password_from(
            d.password_file.as_deref(),
            d.password_credential.as_deref(),
            cred_dir.as_deref(),
            "libpq's PGPASSFILE or ~/.pgpass apply",
            files,
            &k,
            problems,
            &mut own,
        );
        if password.is_none() && conn.password().is_some() {
            password = conn.password().map(Secret::new);
            password_source = Some("the url".into());
        }
        databases.push(Database {
            target: Target {
                name: d.name.clone(),
                conn,
                password,
                password_source,
            },
            extensions: d.extensions.clone(),
            pg_dump_args: d.pg_dump_args.clone(),
            warnings: own
                .into_iter()
                .map(|w| format!("database {}: {w}", d.name))
                .collect(),
        });
    }

    // Environment databases, for people coming from the shell-script setups.
    let env_password = match env_get("DB_PASSWORD_FILE") {
        Some(p) => match files.secret(Path::new(&p), warnings) {
            Ok(s) => Some((s, format!("DB_PASSWORD_FILE {p}"))),
            Err(e) => {
                problems.push("environment variable DB_PASSWORD_FILE", e);
                None
            }
        },
        None => None,
    };
    let env_url = match (env_get("DATABASE_URL"), env_get("DATABASE_URL_FILE")) {
        (Some(u), _) => Some((u, "DATABASE_URL")),
        (None, Some(p)) => match files.secret(Path::new(&p), warnings) {
            Ok(s) => Some((s.expose().trim().to_string(), "DATABASE_URL_FILE")),
            Err(e) => {
                problems.push("environment variable DATABASE_URL_FILE", e);
                None
            }
        },
        (None, None) => None,
    };
    let env_conn = match env_url {
        Some((u, var)) => match ConnInfo::parse(&u) {
            Ok(c) => Some((c, var)),
            Err(e) => {
                problems.push(format!("environment variable {var}"), e.to_string());
                None
            }
        },
        None => {
            let mut pairs = Vec::new();
            for (var, kw) in [
                ("DB_HOST", "host"),
                ("DB_PORT", "port"),
                ("DB_NAME", "dbname"),
                ("DB_USER", "user"),
            ] {
                if let Some(v) = env_get(var) {
                    pairs.push((kw.to_string(), v));
                }
            }
            if let Some(p) = env_get("DB_USER_FILE") {
                match files.text(Path::new(&p)) {
                    Ok(u) => pairs.push(("user".into(), u.trim().to_string())),
                    Err(e) => problems.push(
                        "environment variable DB_USER_FILE",
                        format!("cannot read {p}: {e}"),
                    ),
                }
            }
            (!pairs.is_empty()).then(|| (ConnInfo::from_pairs(pairs), "DB_HOST/DB_NAME/DB_USER"))
        }
    };
    if let Some((conn, var)) = env_conn {
        let pw = env_password.clone().or_else(|| {
            conn.password()
                .map(|p| (Secret::new(p), format!("{var} (embedded)")))
        });
        match databases.len() {
                0 => {
                    let dbname = conn.get("dbname").unwrap_or("postgres").to_string();
                    let name = if is_valid_dir_name(&dbname) {
                        dbname
                    } else {
                        escape_db_name(&dbname)
                    };
                    databases.push(Database {
                        target: Target {
                            name,
                            conn,
                            password: pw.as_ref().map(|p| p.0.clone()),
                            password_source: pw.map(|p| p.1),
                        },
                        extensions: Vec::new(),
                        pg_dump_args: Vec::new(),
                        warnings: Vec::new(),
                    });
                }
                1 => {
                    let db = &mut databases[0];
                    db.target.conn = conn;
                    if let Some((s, src)) = pw {
                        db.target.password = Some(s);
                        db.target.password_source = Some(src);
                    }
                }
                n => problems.push(
                    format!("environment variable {var}"),
                    format!("is set, but the config file has {n} [[database]] entries and it is unclear which to override; unset it or set url per database"),
                ),
            }
    } else if let Some((s, src)) = env_password {
        if databases.len() == 1 {
            databases[0].target.password = Some(s);
            databases[0].target.password_source = Some(src);
        } else {
            problems.push(
                    "environment variable DB_PASSWORD_FILE",
                    "is set, but there is not exactly one database to apply it to; use password-file per [[database]]",
                );
        }
    }
    databases
}

/// Why `name` cannot name a backup directory (see `is_valid_dir_name`).
fn invalid_name(name: &str) -> String {
    format!(
        "\"{name}\" is not a valid name; use letters, digits, '-', '_' and '.', not starting with '.' or '_' (at most 128 bytes)"
    )
}

/// A password from `password-file` or `password-credential` (not both): the secret and where it
/// came from, in the user's words. Outside systemd a credential is not there: a remark naming
/// what applies instead (`outside`), since only a connection would need it (an operator's
/// `pgbackup list` by hand does not).
#[allow(clippy::too_many_arguments)]
fn password_from(
    file: Option<&Path>,
    credential: Option<&str>,
    cred_dir: Option<&str>,
    outside: &str,
    files: &dyn Files,
    k: &dyn Fn(&str) -> String,
    problems: &mut ConfigProblems,
    own: &mut Vec<String>,
) -> (Option<Secret>, Option<String>) {
    if file.is_some() && credential.is_some() {
        problems.push(
            k("password-file"),
            "set either password-file or password-credential, not both",
        );
    }
    let mut found = (None, None);
    if let Some(pf) = file {
        match files.secret(pf, own) {
            Ok(s) => found = (Some(s), Some(format!("password-file {}", pf.display()))),
            Err(e) => problems.push(k("password-file"), e),
        }
    }
    if let Some(cred) = credential {
        match cred_dir {
            None => own.push(format!(
                "password-credential \"{cred}\" is only readable under systemd (LoadCredential=); outside it, {outside}"
            )),
            Some(dir) if cred.contains('/') || cred.is_empty() => problems.push(
                k("password-credential"),
                format!("\"{cred}\" is not a credential name (no '/' allowed); credentials are looked up in {dir}"),
            ),
            Some(dir) => {
                let p = Path::new(dir).join(cred);
                match files.text(&p) {
                    Ok(s) => found = (Some(Secret::new(s)), Some(format!("credential {cred}"))),
                    Err(e) => problems.push(
                        k("password-credential"),
                        format!("cannot read {}: {e}; check LoadCredential= in the unit", p.display()),
                    ),
                }
            }
        }
    }
    found
}

/// Why a `pg-dump-args` entry cannot work (checked at `config check`, not found at 02:00):
/// pgbackup chooses pg_dump's format itself (`[backup] format`), reads its standard output,
/// compresses it itself and connects with the database's `url`.
fn pg_dump_arg_problem(arg: &str) -> Option<&'static str> {
    let (name, value) = match arg.split_once('=') {
        Some((n, v)) if n.starts_with("--") => (n, Some(v)),
        _ => (arg, None),
    };
    let short = |flag: &str| {
        name == flag || (name.starts_with(flag) && name.len() > 2 && !name.starts_with("--"))
    };
    let long = |flag: &str| name == flag;
    if short("-F") || long("--format") {
        let v = value.unwrap_or(name.get(2..).unwrap_or_default());
        return (!matches!(v, "p" | "plain")).then_some(
            "sets pg_dump's output format; set [backup] format (\"plain\" or \"custom\") instead",
        );
    }
    if short("-f") || long("--file") {
        return Some("sends pg_dump's output to a file instead of to pgbackup");
    }
    if short("-Z") || long("--compress") {
        return Some("compresses inside pg_dump; pgbackup compresses the stream itself ([backup] compression)");
    }
    if short("-j") || long("--jobs") {
        return Some("needs the directory format, which pgbackup does not write yet");
    }
    if short("-d")
        || long("--dbname")
        || short("-h")
        || long("--host")
        || short("-p")
        || long("--port")
        || short("-U")
        || long("--username")
    {
        return Some("changes the connection; set it in the database's url");
    }
    None
}

/// The `[[redis]]` entries, each checked: a valid name no database takes, a URL, and a
/// password from a file or a systemd credential (never the URL).
pub(super) fn redis(
    file: &[super::RedisFile],
    databases: &[Database],
    env: EnvFn,
    files: &dyn Files,
    key: &dyn Fn(&str) -> String,
    problems: &mut ConfigProblems,
    warnings: &mut Vec<String>,
) -> (
    Vec<crate::redis::RedisTarget>,
    std::collections::HashMap<String, std::time::Duration>,
) {
    let mut out = Vec::new();
    let mut stall = std::collections::HashMap::new();
    let mut names: std::collections::HashSet<&str> = databases.iter().map(|d| d.name()).collect();
    let cred_dir = env("CREDENTIALS_DIRECTORY");
    for (i, r) in file.iter().enumerate() {
        let k = |sub: &str| key(&format!("redis[{i}].{sub}"));
        if !is_valid_dir_name(&r.name) {
            problems.push(k("name"), invalid_name(&r.name));
            continue;
        }
        if !names.insert(&r.name) {
            problems.push(
                k("name"),
                format!(
                    "\"{}\" is configured twice (a [[database]] or [[redis]] has it); names must be unique",
                    r.name
                ),
            );
            continue;
        }
        let (addr, user) = match (&r.url, &r.sentinel) {
            (Some(_), Some(_)) => {
                problems.push(
                    k("sentinel"),
                    "give url or sentinel, not both (with sentinel, the master's address comes from Sentinel)",
                );
                continue;
            }
            (None, None) => {
                problems.push(
                    k("url"),
                    "missing: redis://[user@]host[:port], unix:///path, or sentinel = [\"host:26379\"] with master-name",
                );
                continue;
            }
            (Some(url), None) => {
                if r.master_name.is_some() || r.sentinel_password_file.is_some() {
                    problems.push(k("master-name"), "only with sentinel");
                }
                if r.snapshot_from.is_some() {
                    problems.push(
                        k("snapshot-from"),
                        "only with sentinel (with url, point it at the replica itself)",
                    );
                }
                if r.user.is_some() {
                    problems.push(
                        k("user"),
                        "only with sentinel (with url, the user is in it: redis://user@host)",
                    );
                }
                match crate::redis::parse_url(url) {
                    Ok(x) => x,
                    Err(e) => {
                        problems.push(k("url"), e);
                        continue;
                    }
                }
            }
            (None, Some(list)) => {
                let Some(master) = r.master_name.clone().filter(|m| !m.is_empty()) else {
                    problems.push(k("master-name"), "required with sentinel: Sentinel's name of the master (sentinel monitor NAME ...)");
                    continue;
                };
                let mut sentinels = Vec::new();
                for s in list {
                    match crate::redis::parse_url(&format!("redis://{s}")) {
                        Ok((crate::redis::Addr::Tcp(h, p), None)) if s.contains(':') => {
                            sentinels.push((h, p))
                        }
                        _ => problems.push(
                            k("sentinel"),
                            format!("\"{s}\" is not host:port (e.g. \"10.0.0.5:26379\")"),
                        ),
                    }
                }
                if sentinels.is_empty() {
                    if list.is_empty() {
                        problems.push(k("sentinel"), "empty: list at least one host:port");
                    }
                    continue;
                }
                (
                    crate::redis::Addr::Sentinel {
                        master,
                        sentinels,
                        replica: match r.snapshot_from.as_deref() {
                            None | Some("master") => false,
                            Some("replica") => true,
                            Some(other) => {
                                problems.push(
                                    k("snapshot-from"),
                                    format!("\"{other}\" is neither \"master\" nor \"replica\""),
                                );
                                false
                            }
                        },
                    },
                    r.user.clone(),
                )
            }
        };
        let wants_tls = match (&r.url, r.tls) {
            (Some(url), Some(_)) => {
                problems.push(
                    k("tls"),
                    format!("only with sentinel (with url, rediss:// asks for TLS: {url})"),
                );
                false
            }
            (Some(url), None) => crate::redis::is_tls_url(url),
            (None, t) => t.unwrap_or(false),
        };
        let tls = if wants_tls {
            let client = match (&r.tls_cert_file, &r.tls_key_file) {
                (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                (None, None) => None,
                _ => {
                    problems.push(
                        k("tls-cert-file"),
                        "tls-cert-file and tls-key-file go together",
                    );
                    None
                }
            };
            match crate::redis::tls_config(r.ca_file.as_deref(), client) {
                Ok(c) => Some(c),
                Err(e) => {
                    problems.push(k("ca-file"), e);
                    None
                }
            }
        } else {
            if r.ca_file.is_some() || r.tls_cert_file.is_some() || r.tls_key_file.is_some() {
                problems.push(
                    k("ca-file"),
                    "ca-file, tls-cert-file and tls-key-file need TLS: a rediss:// url (or tls = true with sentinel)",
                );
            }
            None
        };
        let mode = match (r.mode.as_deref(), &r.rdb_path) {
            (None | Some("sync"), None) => crate::redis::SnapshotMode::Sync,
            (Some("bgsave"), p) => crate::redis::SnapshotMode::Bgsave {
                rdb_path: p.clone(),
            },
            (None | Some("sync"), Some(_)) => {
                problems.push(k("rdb-path"), "only with mode = \"bgsave\"");
                crate::redis::SnapshotMode::Sync
            }
            (Some(other), _) => {
                problems.push(
                    k("mode"),
                    format!("\"{other}\" is not a mode: \"sync\" (over the replication protocol, the default) or \"bgsave\" (BGSAVE, then the server's file, on its host)"),
                );
                crate::redis::SnapshotMode::Sync
            }
        };
        let mut own = Vec::new();
        let sentinel_password = match &r.sentinel_password_file {
            None => None,
            Some(p) => match files.secret(p, &mut own) {
                Ok(pw) => Some(pw),
                Err(e) => {
                    problems.push(k("sentinel-password-file"), e);
                    None
                }
            },
        };
        warnings.extend(own.into_iter().map(|w| format!("redis {}: {w}", r.name)));
        let mut own = Vec::new();
        let (password, password_source) = password_from(
            r.password_file.as_deref(),
            r.password_credential.as_deref(),
            cred_dir.as_deref(),
            "no password is sent",
            files,
            &k,
            problems,
            &mut own,
        );
        warnings.extend(own.into_iter().map(|w| format!("redis {}: {w}", r.name)));
        if let Some(secs) = r.stall_timeout_secs {
            if secs == 0 {
                problems.push(k("stall-timeout-secs"), "must be at least 1");
            }
        }
        stall.insert(
            r.name.clone(),
            std::time::Duration::from_secs(r.stall_timeout_secs.unwrap_or(60).max(1)),
        );
        out.push(crate::redis::RedisTarget {
            name: r.name.clone(),
            addr,
            user,
            password,
            password_source,
            sentinel_password,
            tls,
            mode,
        });
    }
    (out, stall)
}

#[cfg(test)]
mod tests {
    use super::pg_dump_arg_problem;

    #[test]
    fn pg_dump_args_that_change_the_output_or_the_connection_are_refused() {
        for bad in [
            "-Fc",
            "-F",
            "--format=custom",
            "--format",
            "-Fd",
            "-f",
            "--file=/tmp/x",
            "-Z9",
            "--compress=6",
            "-j4",
            "--jobs=2",
            "-dother",
            "--dbname=x",
            "-h",
            "--host=db",
            "-p5433",
            "--port=1",
            "-Upostgres",
            "--username=x",
        ] {
            assert!(pg_dump_arg_problem(bad).is_some(), "{bad} was accepted");
        }
        for good in [
            "-Fp",
            "--format=plain",
            "--no-owner",
            "--exclude-table=audit.*",
            "-n",
            "public",
            "--no-large-objects",
            "-T",
            "--schema=app",
            "--lock-wait-timeout=10s",
            "-x",
        ] {
            assert!(pg_dump_arg_problem(good).is_none(), "{good} was refused");
        }
    }
}
