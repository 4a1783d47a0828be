//! Where S3 credentials come from, in the order the AWS tools use:
//!
//! 1. keys given to pgbackup: `[storage.s3]` keys, key files, systemd credentials, the old
//!    setups' `S3_ACCESS_KEY`/`S3_SECRET_KEY` (resolved by the config layer);
//! 2. `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` (also there);
//! 3. the shared files `~/.aws/credentials` and `~/.aws/config` (`AWS_PROFILE`,
//!    `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`);
//! 4. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` through STS
//!    AssumeRoleWithWebIdentity (Kubernetes IRSA; `AWS_ENDPOINT_URL_STS` overrides the endpoint);
//! 5. EC2 instance metadata, IMDSv2 (`AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides the endpoint,
//!    `AWS_EC2_METADATA_DISABLED=true` skips it).
//!
//! Temporary credentials (4, 5) are refreshed before they expire, so a long upload keeps going;
//! every request asks [`Provider::current`]. Which source was used is said in words
//! ([`Provider::source`]), never a secret.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::http::{self, Body, ClientOptions, Endpoint, ProxyEnv};
use super::sigv4::Credentials;
use crate::secret::Secret;

/// The default IMDS endpoint.
pub const IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// Refresh temporary credentials this long before they expire (at most half their lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// What the configuration says about credentials.
#[derive(Debug, Clone)]
pub enum CredentialSpec {
    /// Keys given to pgbackup (config, files, systemd credentials, environment).
    Static {
        /// The keys.
        creds: Credentials,
        /// Where they came from, in words.
        source: String,
    },
    /// Found at run time: shared files, web identity, instance metadata.
    Chain(ChainEnv),
}

/// The environment of the run-time sources, read once by the config layer.
#[derive(Debug, Clone, Default)]
pub struct ChainEnv {
    /// `$HOME`, for `~/.aws/`.
    pub home: Option<PathBuf>,
    /// `AWS_PROFILE` (default `default`).
    pub profile: Option<String>,
    /// `AWS_SHARED_CREDENTIALS_FILE`.
    pub credentials_file: Option<PathBuf>,
    /// `AWS_CONFIG_FILE`.
    pub config_file: Option<PathBuf>,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`.
    pub web_identity_token_file: Option<PathBuf>,
    /// `AWS_ROLE_ARN`.
    pub role_arn: Option<String>,
    /// `AWS_ROLE_SESSION_NAME`.
    pub role_session_name: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`.
    pub sts_endpoint: Option<String>,
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub imds_endpoint: Option<String>,
    /// `AWS_EC2_METADATA_DISABLED=true`.
    pub imds_disabled: bool,
}

impl ChainEnv {
    /// Read the variables through `env`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> ChainEnv {
        ChainEnv {
            home: env("HOME").map(PathBuf::from),
            profile: env("AWS_PROFILE"),
            credentials_file: env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from),
            config_file: env("AWS_CONFIG_FILE").map(PathBuf::from),
            web_identity_token_file: env("AWS_WEB_IDENTITY_TOKEN_FILE").map(PathBuf::from),
            role_arn: env("AWS_ROLE_ARN"),
            role_session_name: env("AWS_ROLE_SESSION_NAME"),
            sts_endpoint: env("AWS_ENDPOINT_URL_STS"),
            imds_endpoint: env("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
            imds_disabled: env("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }

    fn credentials_path(&self) -> Option<PathBuf> {
        self.credentials_file
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".aws/credentials")))
    }

    fn config_path(&self) -> Option<PathBuf> {
        self.config_file
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".aws/config")))
    }

    fn profile(&self) -> &str {
        self.profile.as_deref().unwrap_or("default")
    }

    /// The region of the profile in `~/.aws/config`, when it names one.
    pub fn profile_region(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.config_path()?).ok()?;
        let section = config_section(self.profile());
        ini_section(&text, &section)?
            .into_iter()
            .find(|(k, _)| k == "region")
            .map(|(_, v)| v)
    }
}

/// Credentials that can fail to be found, in words; the exit code is the caller's.
#[derive(Debug)]
pub enum CredentialError {
    /// No source had any (a configuration problem: exit 78).
    None(String),
    /// A source was there but failed (STS refused the token, metadata unreachable): exit 69.
    Failed(String),
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialError::None(s) | CredentialError::Failed(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    creds: Credentials,
    source: String,
    /// When the credentials stop working (temporary ones).
    expires: Option<DateTime<Utc>>,
    /// When to fetch new ones.
    refresh_at: Option<DateTime<Utc>>,
    /// Where to fetch them again.
    origin: Origin,
}

#[derive(Debug, Clone)]
enum Origin {
    Fixed,
    WebIdentity,
    Imds,
}

/// Hands out current credentials, refreshing temporary ones before they expire.
#[derive(Debug)]
pub struct Provider {
    spec: CredentialSpec,
    region: String,
    client: ClientOptions,
    proxy: ProxyEnv,
    cached: Mutex<Option<Cached>>,
}

impl Provider {
    /// A provider for `spec`; `client` (trust roots, timeouts) is used for STS.
    pub fn new(
        spec: CredentialSpec,
        region: &str,
        client: ClientOptions,
        proxy: ProxyEnv,
    ) -> Provider {
        let cached = match &spec {
            CredentialSpec::Static { creds, source } => Some(Cached {
                creds: creds.clone(),
                source: source.clone(),
                expires: None,
                refresh_at: None,
                origin: Origin::Fixed,
            }),
            CredentialSpec::Chain(_) => None,
        };
        Provider {
            spec,
            region: region.to_string(),
            client,
            proxy,
            cached: Mutex::new(cached),
        }
    }

    /// Credentials for the next request.
    pub fn current(&self) -> Result<Credentials, CredentialError> {
        let mut guard = match self.cached.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Utc::now();
        if let Some(c) = guard.as_ref() {
            if c.refresh_at.is_none_or(|r| now < r) {
                return Ok(c.creds.clone());
            }
        }
        match self.fetch(guard.as_ref().map(|c| &c.origin)) {
            Ok(c) => {
                let creds = c.creds.clone();
                if guard.is_some() {
                    crate::log::debug(&format!(
                        "S3 credentials refreshed from {} (valid until {})",
                        c.source,
                        c.expires
                            .map(|e| e.to_rfc3339())
                            .unwrap_or_else(|| "no expiry".into())
                    ));
                }
                *guard = Some(c);
                Ok(creds)
            }
            // A failed refresh of credentials that still work is not yet a failure.
            Err(e) => match guard.as_ref() {
                Some(c) if c.expires.is_some_and(|x| now < x) => {
                    crate::log::warn(&format!(
                        "could not refresh the S3 credentials from {} ({e}); the current ones are valid until {}",
                        c.source,
                        c.expires.map(|x| x.to_rfc3339()).unwrap_or_default()
                    ));
                    Ok(c.creds.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Forget temporary credentials (the server said they expired): the next request fetches
    /// new ones. Returns whether there is anything to fetch again.
    pub fn invalidate(&self) -> bool {
        let mut guard = match self.cached.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match guard.as_mut() {
            Some(c) if !matches!(c.origin, Origin::Fixed) => {
                c.refresh_at = Some(Utc::now());
                true
            }
            _ => false,
        }
    }

    /// Where the credentials come (or will come) from, in words.
    pub fn source(&self) -> String {
        if let Ok(g) = self.cached.lock() {
            if let Some(c) = g.as_ref() {
                return c.source.clone();
            }
        }
        describe(&self.spec)
    }

    fn fetch(&self, origin: Option<&Origin>) -> Result<Cached, CredentialError> {
        let CredentialSpec::Chain(env) = &self.spec else {
            return Err(CredentialError::Failed(
                "the configured keys are fixed; there is nothing to fetch again".into(),
            ));
        };
        match origin {
            Some(Origin::WebIdentity) => return self.web_identity(env),
            Some(Origin::Imds) => return self.imds(env),
            _ => {}
        }
        if let Some(c) = shared_files(env)? {
            return Ok(c);
        }
        if env.web_identity_token_file.is_some() || env.role_arn.is_some() {
            return self.web_identity(env);
        }
        if env.imds_disabled {
            return Err(CredentialError::None(no_credentials_message(env)));
        }
        self.imds(env).map_err(|e| match e {
            CredentialError::Failed(why) if env.imds_endpoint.is_none() => CredentialError::None(
                format!("{} (instance metadata: {why})", no_credentials_message(env)),
            ),
            other => other,
        })
    }

    fn web_identity(&self, env: &ChainEnv) -> Result<Cached, CredentialError> {
        let (Some(token_file), Some(role)) = (&env.web_identity_token_file, &env.role_arn) else {
            return Err(CredentialError::None(
                "web identity needs both AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN; set the missing one".into(),
            ));
        };
        // Re-read every time: Kubernetes rotates the projected token.
        let token = std::fs::read_to_string(token_file).map_err(|e| {
            CredentialError::Failed(format!(
                "cannot read the web identity token {}: {e}; check AWS_WEB_IDENTITY_TOKEN_FILE and the volume mount",
                token_file.display()
            ))
        })?;
        let url = match &env.sts_endpoint {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("https://sts.{}.amazonaws.com", self.region),
        };
        let ep = Endpoint::parse(&url)
            .map_err(|e| CredentialError::None(format!("AWS_ENDPOINT_URL_STS: {e}")))?;
        let mut opts = self.client.clone();
        opts.proxy = self.proxy.proxy_for(&ep).map(str::to_string);
        let agent = http::agent(&opts).map_err(CredentialError::None)?;
        let session = env
            .role_session_name
            .clone()
            .unwrap_or_else(|| format!("pgbackup-{}", std::process::id()));
        let form = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role.as_str()),
            ("RoleSessionName", session.as_str()),
            ("WebIdentityToken", token.trim()),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", super::sigv4::uri_encode(v, false)))
        .collect::<Vec<_>>()
        .join("&");
        let failed = |why: String| {
            CredentialError::Failed(format!(
                "STS AssumeRoleWithWebIdentity for {role} at {} failed: {why}",
                ep.url()
            ))
        };
        let resp = http::send(
            &agent,
            "POST",
            &format!("{}/", ep.url()),
            &[(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            Body::Bytes(form.as_bytes()),
        )
        .map_err(|e| failed(e.short()))?;
        if resp.status >= 300 {
            let e = http::status_error(resp);
            return Err(failed(match e {
                http::ReqError::Status {
                    status,
                    code,
                    message,
                    ..
                } => {
                    format!("HTTP {status} {code}: {message}; check AWS_ROLE_ARN, the role's trust policy and the token")
                }
                other => other.short(),
            }));
        }
        let body = resp.text().map_err(|e| failed(e.short()))?;
        let doc: super::xml::AssumeRoleWithWebIdentityResponse =
            super::xml::parse("STS", &body).map_err(failed)?;
        let c = doc.assume_role_with_web_identity_result.credentials;
        temporary(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            &c.expiration,
            format!("web identity (role {role}, token {})", token_file.display()),
            Origin::WebIdentity,
        )
        .map_err(failed)
    }

    fn imds(&self, env: &ChainEnv) -> Result<Cached, CredentialError> {
        let base = env
            .imds_endpoint
            .as_deref()
            .unwrap_or(IMDS_ENDPOINT)
            .trim_end_matches('/')
            .to_string();
        let failed = |why: String| {
            CredentialError::Failed(format!("EC2 instance metadata at {base}: {why}"))
        };
        // Link-local and never through a proxy; a host without it must not wait long.
        let agent = http::agent(&ClientOptions {
            roots: None,
            proxy: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
        })
        .map_err(failed)?;
        let call = |method: &str, path: &str, headers: &[(String, String)]| {
            let resp = http::send(
                &agent,
                method,
                &format!("{base}{path}"),
                headers,
                Body::Empty,
            )
            .map_err(|e| failed(e.short()))?;
            if resp.status != 200 {
                return Err(failed(format!("HTTP {} for {path}", resp.status)));
            }
            resp.text().map_err(|e| failed(e.short()))
        };
        let token = call(
            "PUT",
            "/latest/api/token",
            &[(
                "x-aws-ec2-metadata-token-ttl-seconds".into(),
                "21600".into(),
            )],
        )?;
        let auth = [(
            "x-aws-ec2-metadata-token".to_string(),
            token.trim().to_string(),
        )];
        let roles = call("GET", "/latest/meta-data/iam/security-credentials/", &auth)?;
        let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
            return Err(failed(
                "the instance has no IAM role; attach an instance profile".into(),
            ));
        };
        let doc = call(
            "GET",
            &format!("/latest/meta-data/iam/security-credentials/{role}"),
            &auth,
        )?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct ImdsCreds {
            access_key_id: String,
            secret_access_key: String,
            token: Option<String>,
            expiration: String,
        }
        let c: ImdsCreds = serde_json::from_str(&doc)
            .map_err(|e| failed(format!("unreadable credentials document ({e})")))?;
        temporary(
            c.access_key_id,
            c.secret_access_key,
            c.token,
            &c.expiration,
            format!("EC2 instance metadata (IMDSv2 at {base}, role {role})"),
            Origin::Imds,
        )
        .map_err(failed)
    }
}

fn temporary(
    access_key: String,
    secret_key: String,
    token: Option<String>,
    expiration: &str,
    source: String,
    origin: Origin,
) -> Result<Cached, String> {
    if access_key.is_empty() || secret_key.is_empty() {
        return Err("the answer holds no keys".into());
    }
    let expires = DateTime::parse_from_rfc3339(expiration)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("unreadable expiration \"{expiration}\" ({e})"))?;
    let now = Utc::now();
    let lifetime = (expires - now).to_std().unwrap_or_default();
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    Ok(Cached {
        creds: Credentials {
            access_key: Secret::new(access_key),
            secret_key: Secret::new(secret_key),
            session_token: token.filter(|t| !t.is_empty()).map(Secret::new),
        },
        source,
        expires: Some(expires),
        refresh_at: Some(
            expires - chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::zero()),
        ),
        origin,
    })
}

fn no_credentials_message(env: &ChainEnv) -> String {
    let files = [env.credentials_path(), env.config_path()]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "no S3 credentials found: set [storage.s3] access-key-file and secret-key-file (or the systemd credentials s3-access-key/s3-secret-key, S3_ACCESS_KEY/S3_SECRET_KEY, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), a profile in {} (AWS_PROFILE), web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), or run on an instance with an IAM role",
        if files.is_empty() { "~/.aws/credentials" } else { &files }
    )
}

/// Describe the source the chain will use, without contacting anything.
pub fn describe(spec: &CredentialSpec) -> String {
    match spec {
        CredentialSpec::Static { source, .. } => source.clone(),
        CredentialSpec::Chain(env) => {
            if let Ok(Some(c)) = shared_files(env) {
                return c.source;
            }
            if let (Some(t), Some(r)) = (&env.web_identity_token_file, &env.role_arn) {
                return format!("web identity (role {r}, token {})", t.display());
            }
            if env.imds_disabled {
                return "none found (AWS_EC2_METADATA_DISABLED is set)".into();
            }
            format!(
                "EC2 instance metadata (IMDSv2 at {}), if this host has it",
                env.imds_endpoint.as_deref().unwrap_or(IMDS_ENDPOINT)
            )
        }
    }
}

/// The profile's keys from the shared credentials file, else from the shared config file.
fn shared_files(env: &ChainEnv) -> Result<Option<Cached>, CredentialError> {
    let profile = env.profile();
    let mut looked = Vec::new();
    for (path, section) in [
        (env.credentials_path(), profile.to_string()),
        (env.config_path(), config_section(profile)),
    ] {
        let Some(path) = path else { continue };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(CredentialError::Failed(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        looked.push(path.display().to_string());
        let Some(pairs) = ini_section(&text, &section) else {
            continue;
        };
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(ak), Some(sk)) => {
                return Ok(Some(Cached {
                    creds: Credentials {
                        access_key: Secret::new(ak),
                        secret_key: Secret::new(sk),
                        session_token: get("aws_session_token").map(Secret::new),
                    },
                    source: format!("shared file {}, profile {profile}", path.display()),
                    expires: None,
                    refresh_at: None,
                    origin: Origin::Fixed,
                }))
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(CredentialError::None(format!(
                    "profile {profile} in {} has only one of aws_access_key_id and aws_secret_access_key; add the other",
                    path.display()
                )))
            }
            (None, None) => {}
        }
    }
    if env.profile.is_some() && env.web_identity_token_file.is_none() {
        return Err(CredentialError::None(format!(
            "AWS_PROFILE is {profile}, but {} has no keys for it; add [{profile}] with aws_access_key_id and aws_secret_access_key, or unset AWS_PROFILE",
            if looked.is_empty() {
                "no shared file exists (~/.aws/credentials)".to_string()
            } else {
                looked.join(" nor ")
            }
        )));
    }
    Ok(None)
}

/// `[profile NAME]` in the shared config file (`[default]` for the default profile).
fn config_section(profile: &str) -> String {
    if profile == "default" {
        "default".into()
    } else {
        format!("profile {profile}")
    }
}

/// The `key = value` pairs of `[section]` in an AWS-style INI text (comments `#`/`;`, nested
/// indented sub-settings skipped); None when the section is missing.
fn ini_section(text: &str, section: &str) -> Option<Vec<(String, String)>> {
    let mut inside = false;
    let mut found = false;
    let mut pairs = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = name == section;
            found |= inside;
            continue;
        }
        // Indented lines belong to a sub-setting (`s3 =` followed by nested keys).
        if !inside || raw.starts_with(' ') || raw.starts_with('\t') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            pairs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    found.then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(dir: &std::path::Path, profile: Option<&str>) -> ChainEnv {
        ChainEnv {
            home: Some(dir.to_path_buf()),
            profile: profile.map(str::to_string),
            imds_disabled: true,
            ..Default::default()
        }
    }

    #[test]
    fn shared_files_by_profile_credentials_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(
            dir.path().join(".aws/credentials"),
            "# keys\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n[ci]\naws_access_key_id=AKCI\naws_secret_access_key=s2\naws_session_token = tok\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".aws/config"),
            "[default]\nregion = eu-west-1\n[profile other]\nregion = us-west-2\naws_access_key_id = AKOTHER\naws_secret_access_key = s3\ns3 =\n  addressing_style = path\n",
        )
        .unwrap();
        let c = shared_files(&chain(dir.path(), None)).unwrap().unwrap();
        assert_eq!(c.creds.access_key.expose(), "AKDEFAULT");
        assert!(
            c.source.contains(".aws/credentials, profile default"),
            "{}",
            c.source
        );
        let c = shared_files(&chain(dir.path(), Some("ci")))
            .unwrap()
            .unwrap();
        assert_eq!(c.creds.session_token.unwrap().expose(), "tok");
        let c = shared_files(&chain(dir.path(), Some("other")))
            .unwrap()
            .unwrap();
        assert_eq!(c.creds.access_key.expose(), "AKOTHER");
        assert!(c.source.contains(".aws/config"), "{}", c.source);
        assert_eq!(
            chain(dir.path(), Some("other")).profile_region().as_deref(),
            Some("us-west-2")
        );
        let e = shared_files(&chain(dir.path(), Some("nope"))).unwrap_err();
        assert!(e.to_string().contains("AWS_PROFILE is nope"), "{e}");
    }

    #[test]
    fn nothing_anywhere_names_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let p = Provider::new(
            CredentialSpec::Chain(chain(dir.path(), None)),
            "us-east-1",
            ClientOptions {
                roots: None,
                proxy: None,
                connect_timeout: Duration::from_secs(1),
                read_timeout: Duration::from_secs(1),
                write_timeout: Duration::from_secs(1),
            },
            ProxyEnv::default(),
        );
        let e = p.current().unwrap_err();
        assert!(matches!(e, CredentialError::None(_)));
        for needle in ["access-key-file", "AWS_PROFILE", "AWS_ROLE_ARN", "IAM role"] {
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn temporary_credentials_refresh_before_they_expire() {
        let in_an_hour = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let c = temporary(
            "A".into(),
            "S".into(),
            Some("T".into()),
            &in_an_hour,
            "x".into(),
            Origin::Imds,
        )
        .unwrap();
        let margin = c.expires.unwrap() - c.refresh_at.unwrap();
        assert_eq!(margin.num_seconds(), 300);
        // Short-lived ones are refreshed at half their lifetime.
        let soon = (Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
        let c = temporary(
            "A".into(),
            "S".into(),
            None,
            &soon,
            "x".into(),
            Origin::Imds,
        )
        .unwrap();
        let margin = (c.expires.unwrap() - c.refresh_at.unwrap()).num_seconds();
        assert!((29..=30).contains(&margin), "{margin}");
        assert!(temporary("".into(), "S".into(), None, &soon, "x".into(), Origin::Imds).is_err());
    }
}
