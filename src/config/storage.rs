//! `[storage.s3]`: the bucket, endpoint, TLS, Object Lock and transfer settings with their
//! environment overrides (the names of the common container setups), and where the keys come
//! from.

use std::path::{Path, PathBuf};

use super::env;
use super::secrets::Files;
use super::{EnvFn, S3File};
use crate::error::ConfigProblems;
use crate::secret::Secret;

/// `[storage.s3]` with its environment overrides (the names of the common container setups).
pub(super) fn s3_config(
    file: Option<S3File>,
    env: EnvFn,
    files: &dyn Files,
    env_get: &mut dyn FnMut(&str) -> Option<String>,
    problems: &mut ConfigProblems,
    key: &dyn Fn(&str) -> String,
    warnings: &mut Vec<String>,
) -> Option<crate::s3::S3Config> {
    let f = file.unwrap_or_default();
    fn first(
        env_get: &mut dyn FnMut(&str) -> Option<String>,
        setting: &str,
    ) -> Option<(String, String)> {
        env::get(env_get, setting).map(|(v, n)| (v, format!("environment variable {n}")))
    }
    let storage = first(env_get, "storage.kind").map(|v| v.0);
    if storage.as_deref() == Some("local") {
        return None;
    }
    let (bucket, bucket_place) = match first(env_get, "storage.s3.bucket") {
        Some(b) => b,
        None => match f.bucket {
            Some(b) => (b, key("storage.s3.bucket")),
            None => {
                if storage.as_deref() == Some("s3") {
                    problems.push(
                        "environment variable BACKUP_STORAGE",
                        "is s3, but no bucket is set; set S3_BUCKET or [storage.s3] bucket",
                    );
                }
                return None;
            }
        },
    };
    let (endpoint, endpoint_place) = match first(env_get, "storage.s3.endpoint") {
        Some((e, place)) => (Some(e), place),
        None => (f.endpoint, key("storage.s3.endpoint")),
    };
    let endpoint = endpoint.filter(|e| !e.is_empty());
    if let Some(e) = &endpoint {
        if let Err(msg) = crate::s3::http::Endpoint::parse(e) {
            problems.push(endpoint_place, msg);
        }
    }
    let chain = crate::s3::creds::ChainEnv::from_env(env);
    let region = first(env_get, "storage.s3.region")
        .map(|v| v.0)
        .or(f.region)
        .or_else(|| first(env_get, "storage.s3.default-region").map(|v| v.0))
        .or_else(|| chain.profile_region())
        .unwrap_or_else(|| "us-east-1".into());
    let keep_local_env = first(env_get, "storage.s3.keep-local").map(|v| v.0);
    let mut prefix = f.prefix.unwrap_or_else(|| "backups/".into());
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let credentials = s3_credentials(
        (f.access_key, f.access_key_file),
        (f.secret_key, f.secret_key_file),
        env,
        files,
        env_get,
        problems,
        key,
        warnings,
        chain,
    );
    let part_mib = f.part_size_mib.unwrap_or(16);
    if !(5..=5120).contains(&part_mib) {
        problems.push(
            key("storage.s3.part-size-mib"),
            format!("{part_mib} is out of range; S3 parts are 5 MiB to 5 GiB"),
        );
    }
    let keep_local = match keep_local_env {
        Some(v) => match parse_bool(&v) {
            Some(b) => b,
            None => {
                problems.push(
                    "environment variable BACKUP_KEEP_LOCAL",
                    format!("\"{v}\" is not a boolean; use true or false"),
                );
                true
            }
        },
        None => f.keep_local.unwrap_or(true),
    };
    let list_prefixes: Vec<String> = f
        .list_prefixes
        .unwrap_or_default()
        .into_iter()
        .map(|mut p| {
            if !p.is_empty() && !p.ends_with('/') {
                p.push('/');
            }
            p
        })
        .collect();
    if list_prefixes.contains(&prefix) {
        problems.push(
            key("storage.s3.list-prefixes"),
            format!(
                "contains the write prefix \"{prefix}\"; list only other (legacy) prefixes there"
            ),
        );
    }
    let stall = f.stall_timeout_secs.unwrap_or(120);
    if !(1..=86_400).contains(&stall) {
        problems.push(
            key("storage.s3.stall-timeout-secs"),
            format!("{stall} is out of range; use 1 to 86400 seconds"),
        );
    }
    let abort_after = f.abort_incomplete_after_hours.unwrap_or(24);
    if !(0..=8760).contains(&abort_after) {
        problems.push(
            key("storage.s3.abort-incomplete-after-hours"),
            format!("{abort_after} is out of range; use 0 to 8760 hours"),
        );
    }
    if let Some(ca) = &f.ca_file {
        if !files.is_file(ca) {
            problems.push(
                key("storage.s3.ca-file"),
                format!(
                    "{} does not exist; give the PEM file of the CA that signed the endpoint's certificate",
                    ca.display()
                ),
            );
        }
    }
    let object_lock = match (f.object_lock.as_deref(), f.object_lock_days) {
        (None, None) => None,
        (None, Some(_)) => {
            problems.push(
                key("storage.s3.object-lock-days"),
                "is set without object-lock; set object-lock = \"governance\" or \"compliance\" too",
            );
            None
        }
        (Some(mode), days) => {
            let mode = match mode.to_ascii_lowercase().as_str() {
                "governance" => Some(crate::s3::LockMode::Governance),
                "compliance" => Some(crate::s3::LockMode::Compliance),
                _ => {
                    problems.push(
                        key("storage.s3.object-lock"),
                        format!("\"{mode}\" is not a mode; use \"governance\" (deletable by users allowed s3:BypassGovernanceRetention) or \"compliance\" (nobody can delete before the date)"),
                    );
                    None
                }
            };
            let days = match days {
                Some(d) if (1..=36_500).contains(&d) => Some(d as u32),
                Some(d) => {
                    problems.push(
                        key("storage.s3.object-lock-days"),
                        format!("{d} is out of range; use 1 to 36500 days"),
                    );
                    None
                }
                None => {
                    problems.push(
                        key("storage.s3.object-lock-days"),
                        "is missing; object-lock needs the number of days each backup stays locked",
                    );
                    None
                }
            };
            mode.zip(days)
                .map(|(mode, days)| crate::s3::ObjectLock { mode, days })
        }
    };
    Some(crate::s3::S3Config {
        keep_local,
        list_prefixes,
        stall_timeout: std::time::Duration::from_secs(stall.clamp(1, 86_400) as u64),
        abort_incomplete_after: std::time::Duration::from_secs(
            abort_after.clamp(0, 8760) as u64 * 3600,
        ),
        path_style: f.path_style.unwrap_or(endpoint.is_some()),
        endpoint,
        region,
        prefix,
        credentials: credentials?,
        storage_class: f.storage_class,
        server_side_encryption: f.server_side_encryption,
        part_size: (part_mib.clamp(5, 5120) as usize) << 20,
        ca_file: f.ca_file,
        proxy: crate::s3::http::ProxyEnv::from_env(env),
        object_lock,
        bucket,
        bucket_place,
    })
}

/// The S3 keys, from the first source that has any, in the order the AWS tools use:
/// `S3_ACCESS_KEY`/`S3_SECRET_KEY` (and `_FILE`), the config file's keys or key files, the
/// systemd credentials `s3-access-key`/`s3-secret-key`, `AWS_ACCESS_KEY_ID`/
/// `AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN` (and `_FILE`); else the run-time chain (shared
/// files, web identity, instance metadata). A source with only one of the two keys is a problem.
#[allow(clippy::too_many_arguments)]
fn s3_credentials(
    access: (Option<String>, Option<PathBuf>),
    secret: (Option<String>, Option<PathBuf>),
    env: EnvFn,
    files: &dyn Files,
    env_get: &mut dyn FnMut(&str) -> Option<String>,
    problems: &mut ConfigProblems,
    key: &dyn Fn(&str) -> String,
    warnings: &mut Vec<String>,
    chain: crate::s3::creds::ChainEnv,
) -> Option<crate::s3::creds::CredentialSpec> {
    use crate::s3::creds::CredentialSpec;
    use crate::s3::sigv4::Credentials;
    fn missing_other(problems: &mut ConfigProblems, have: &str, want: &str) {
        problems.push(
            have.to_string(),
            format!("is set but {want} is not; S3 needs both keys from one place"),
        );
    }
    let spec = |ak: Secret, sk: Secret, token: Option<Secret>, source: String| {
        Some(CredentialSpec::Static {
            creds: Credentials {
                access_key: ak,
                secret_key: sk,
                session_token: token,
            },
            source,
        })
    };
    // An environment pair: each the variable itself, else its `_FILE` variant. Both, or none;
    // one without the other is a problem (`Err`).
    let env_pair = |env_get: &mut dyn FnMut(&str) -> Option<String>,
                    ak_var: &str,
                    sk_var: &str,
                    problems: &mut ConfigProblems,
                    warnings: &mut Vec<String>| {
        let mut one = |var: &str| -> Option<(Secret, String)> {
            if let Some(v) = env_get(var) {
                return Some((Secret::new(v), var.to_string()));
            }
            let file_var = format!("{var}_FILE");
            let p = env_get(&file_var)?;
            match files.secret(Path::new(&p), warnings) {
                Ok(s) => Some((s, format!("{file_var} {p}"))),
                Err(e) => {
                    problems.push(format!("environment variable {file_var}"), e);
                    None
                }
            }
        };
        let lone = |problems: &mut ConfigProblems, have: &str, want: &str| {
            missing_other(problems, &format!("environment variable {have}"), want);
            Err(())
        };
        match (one(ak_var), one(sk_var)) {
            (Some(ak), Some(sk)) => Ok(Some((ak, sk))),
            (Some((_, a)), None) => lone(problems, &a, sk_var),
            (None, Some((_, b))) => lone(problems, &b, ak_var),
            (None, None) => Ok(None),
        }
    };
    match env_pair(
        env_get,
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        problems,
        warnings,
    ) {
        Ok(Some(((ak, a), (sk, b)))) => {
            return spec(ak, sk, None, format!("environment ({a}, {b})"))
        }
        Err(()) => return None,
        Ok(None) => {}
    }
    // The config file: key files (preferred) or the keys themselves.
    let mut from_file = |what: &str, (value, file): (Option<String>, Option<PathBuf>)| {
        if let Some(p) = file {
            return match files.secret(&p, warnings) {
                Ok(s) => Some(Ok((s, format!("{what}-file {}", p.display())))),
                Err(e) => Some(Err((key(&format!("storage.s3.{what}-file")), e))),
            };
        }
        value.map(|v| {
            warnings.push(format!(
                "[storage.s3] {what} is written in the config file; prefer {what}-file or a systemd credential"
            ));
            Ok((Secret::new(v), format!("[storage.s3] {what}")))
        })
    };
    match (
        from_file("access-key", access),
        from_file("secret-key", secret),
    ) {
        (Some(Ok((ak, a))), Some(Ok((sk, b)))) => return spec(ak, sk, None, format!("{a}, {b}")),
        (Some(Err((place, e))), _) | (_, Some(Err((place, e)))) => {
            problems.push(place, e);
            return None;
        }
        (Some(Ok(_)), None) => {
            missing_other(
                problems,
                &key("storage.s3.access-key"),
                "secret-key (or secret-key-file)",
            );
            return None;
        }
        (None, Some(Ok(_))) => {
            missing_other(
                problems,
                &key("storage.s3.secret-key"),
                "access-key (or access-key-file)",
            );
            return None;
        }
        (None, None) => {}
    }
    if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
        let read = |n: &str| files.text(&Path::new(&dir).join(n)).ok().map(Secret::new);
        match (read("s3-access-key"), read("s3-secret-key")) {
            (Some(ak), Some(sk)) => {
                return spec(
                    ak,
                    sk,
                    None,
                    "systemd credentials s3-access-key, s3-secret-key".into(),
                )
            }
            (Some(_), None) | (None, Some(_)) => {
                problems.push(
                    "systemd credentials",
                    "only one of s3-access-key and s3-secret-key is loaded; add the other LoadCredential=",
                );
                return None;
            }
            (None, None) => {}
        }
    }
    match env_pair(
        env_get,
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        problems,
        warnings,
    ) {
        Ok(Some(((ak, a), (sk, b)))) => {
            let token = env_get("AWS_SESSION_TOKEN").map(Secret::new);
            let t = if token.is_some() {
                ", AWS_SESSION_TOKEN"
            } else {
                ""
            };
            return spec(ak, sk, token, format!("environment ({a}, {b}{t})"));
        }
        Err(()) => return None,
        Ok(None) => {}
    }
    Some(CredentialSpec::Chain(chain))
}

/// A boolean from the environment: 1/true/yes/on or 0/false/no/off.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}
