//! `[encryption]`: the public keys new backups are encrypted to, and the private key that
//! verify and restore decrypt with (a file or a systemd credential, never argv or the
//! environment).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::crypt::{Identities, Keys, Recipients};
use crate::error::ConfigProblems;

use super::{secrets::Files, EnvFn};

/// `[encryption]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EncryptionFile {
    /// Public keys (`age1...`, `ssh-ed25519 ...`, `ssh-rsa ...`).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A file of public keys, one per line (`#` comments), as `age -R` reads it.
    pub recipients_file: Option<PathBuf>,
    /// The private key file (age-keygen's, or an unencrypted OpenSSH key) for verify/restore.
    pub identity_file: Option<PathBuf>,
    /// The name of a systemd credential holding the private key (`LoadCredential=`).
    pub identity_credential: Option<String>,
}

/// The checked result: whom to encrypt to (none: backups are not encrypted), and the keys to
/// decrypt with (or why there are none).
pub(super) fn encryption(
    file: &EncryptionFile,
    env: EnvFn,
    files: &dyn Files,
    key: &dyn Fn(&str) -> String,
    problems: &mut ConfigProblems,
    warnings: &mut Vec<String>,
) -> (Option<Recipients>, Keys) {
    let mut recipients: Option<Recipients> = None;
    let mut add =
        |r: Result<Recipients, Vec<(String, String)>>, problems: &mut ConfigProblems| match r {
            Ok(r) => match &mut recipients {
                Some(all) => all.extend(r),
                None => recipients = Some(r),
            },
            Err(list) => {
                for (place, why) in list {
                    problems.push(place, why);
                }
            }
        };
    if !file.recipients.is_empty() {
        add(
            Recipients::parse(
                file.recipients
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (key(&format!("encryption.recipients[{i}]")), r.as_str())),
            ),
            problems,
        );
    }
    if let Some(p) = &file.recipients_file {
        match files.text(p) {
            Ok(text) => {
                let r = Recipients::parse_file(&text, &p.display().to_string());
                if matches!(&r, Ok(r) if r.is_empty()) {
                    problems.push(
                        key("encryption.recipients-file"),
                        format!(
                            "{} holds no public key; put one per line (age1... or ssh-ed25519 ...)",
                            p.display()
                        ),
                    );
                }
                add(r, problems);
            }
            Err(e) => problems.push(
                key("encryption.recipients-file"),
                format!(
                    "cannot read {}: {e}; fix the path or list the keys in recipients = [...]",
                    p.display()
                ),
            ),
        }
    }

    let keys = identities(file, env, files, key, problems, warnings);
    if let (Some(r), Ok(ids)) = (&recipients, &keys) {
        // An identity that opens none of the new backups is a mistake found now, not at the
        // restore.
        let matches = ids
            .publics()
            .iter()
            .any(|p| r.names().iter().any(|n| n.starts_with(p.as_str())));
        if !matches {
            warnings.push(format!(
                "the {} is not the private key of any of [encryption] recipients: new backups will not be readable with it (age-keygen -y shows a key file's public key)",
                ids.source()
            ));
        }
    }
    (recipients, keys)
}

fn identities(
    file: &EncryptionFile,
    env: EnvFn,
    files: &dyn Files,
    key: &dyn Fn(&str) -> String,
    problems: &mut ConfigProblems,
    warnings: &mut Vec<String>,
) -> Keys {
    let mut load = |path: &Path, source: String, place: String, problems: &mut ConfigProblems| {
        let keys = files
            .secret(path, warnings)
            .and_then(|text| Identities::parse(text.expose(), &source).map(Arc::new));
        if let Err(e) = &keys {
            problems.push(place, e.clone());
        }
        keys
    };
    match (&file.identity_file, &file.identity_credential) {
        (Some(_), Some(_)) => {
            problems.push(
                key("encryption.identity-credential"),
                "is set together with identity-file; set one of them",
            );
            Err("two identity sources are configured".into())
        }
        (Some(p), None) => load(
            p,
            format!("identity-file {}", p.display()),
            key("encryption.identity-file"),
            problems,
        ),
        (None, Some(cred)) => match env("CREDENTIALS_DIRECTORY") {
            Some(dir) if !cred.contains('/') && !cred.is_empty() => load(
                &Path::new(&dir).join(cred),
                format!("systemd credential {cred}"),
                key("encryption.identity-credential"),
                problems,
            ),
            Some(dir) => {
                problems.push(
                    key("encryption.identity-credential"),
                    format!("\"{cred}\" is not a credential name (no '/' allowed); credentials are looked up in {dir}"),
                );
                Err(format!("\"{cred}\" is not a credential name"))
            }
            // Outside the unit the credential is not there; only a reader of an encrypted
            // backup needs it, and says so.
            None => Err(format!(
                "the identity is the systemd credential {cred}, which is only readable under systemd (LoadCredential=); run verify or restore through the unit (systemd-run -P --property=LoadCredential=...) or set identity-file"
            )),
        },
        (None, None) => Err(crate::crypt::NO_IDENTITY.into()),
    }
}
