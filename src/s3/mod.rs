//! S3-compatible storage (AWS, Wasabi, Cloudflare R2, Backblaze B2, MinIO, Garage, Ceph) behind
//! the [`Storage`] trait.
//!
//! One HTTP client ([`http`]: ureq over rustls/ring, the system trust store plus `ca-file`, the
//! proxy from `HTTPS_PROXY`/`NO_PROXY`), one signer ([`sigv4`]), one retry policy
//! ([`S3Store::retry`]: 408, 429, 5xx, resets and stalls, never a refusal), one credential
//! chain ([`creds`]) for every request: control requests, parts, downloads, STS and metadata.
//!
//! The data object goes first, as a multipart upload with parts of one fixed size
//! ([`multipart`]), up to [`PARTS_IN_FLIGHT`] uploading at once, aborted on any failure so that
//! no partial object remains; then the `.sha256` sidecar, then the manifest. A reader that
//! applies the reader rule (data AND sidecar) therefore never sees an incomplete backup.
//!
//! With `object-lock`, every object is written with its retain-until date (and the Content-MD5
//! S3 requires there); retention deletes the specific versions of our keys (a DELETE without a
//! version id would only hide a locked object behind a delete marker), and a version still
//! locked is kept and reported, never an error.

pub mod creds;
pub mod http;
mod multipart;
pub mod sigv4;
pub mod xml;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::catalog::BackupName;
use crate::catalog::StoredFile;
use creds::{CredentialError, CredentialSpec, Provider};
use http::{Endpoint, ProxyEnv, ReqError, Response};
pub(crate) use multipart::S3Writer;
pub use multipart::{part_size, MAX_PARTS, PARTS_IN_FLIGHT};
use multipart::{Multipart, PartJob};
use sigv4::{Canonical, EMPTY_SHA256, UNSIGNED_PAYLOAD};

/// `object-lock` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` may still delete.
    Governance,
    /// Nobody may delete before the date, not even the account's root user.
    Compliance,
}

impl LockMode {
    /// The header value.
    pub fn header(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// `[storage.s3] object-lock` and `object-lock-days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    /// Governance or compliance.
    pub mode: LockMode,
    /// Every object is locked for this many days after it is written.
    pub days: u32,
}

/// The effective `[storage.s3]` settings.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL; None for AWS.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Key prefix, empty or ending in '/'.
    pub prefix: String,
    /// Where the credentials come from.
    pub credentials: CredentialSpec,
    /// Path-style addressing (bucket in the path, not the host name).
    pub path_style: bool,
    /// `x-amz-storage-class` for uploads.
    pub storage_class: Option<String>,
    /// `x-amz-server-side-encryption` for uploads.
    pub server_side_encryption: Option<String>,
    /// Smallest multipart part size in bytes (see [`part_size`]).
    pub part_size: usize,
    /// Keep the local copy after the upload; false streams the dump straight to S3.
    pub keep_local: bool,
    /// Read-only extra prefixes (legacy layouts) that listing, verify and restore also read.
    pub list_prefixes: Vec<String>,
    /// No progress on a transfer for this long is a stall, and fails the transfer.
    pub stall_timeout: Duration,
    /// Our incomplete uploads and orphaned objects older than this are removed by retention.
    pub abort_incomplete_after: Duration,
    /// A PEM file of extra trusted CAs (a private CA of MinIO, Garage, Ceph).
    pub ca_file: Option<PathBuf>,
    /// The proxy variables.
    pub proxy: ProxyEnv,
    /// Write every object locked (WORM) for some days.
    pub object_lock: Option<ObjectLock>,
    /// Where the bucket name was set (`[storage.s3] bucket`, `environment variable S3_BUCKET`).
    pub bucket_place: String,
}

/// An S3 failure, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum S3Failure {
    /// The credentials were refused.
    #[error("S3 refused the credentials for bucket {bucket} ({code}); check the keys ({source_})")]
    BadCredentials {
        /// The bucket.
        bucket: String,
        /// S3's error code.
        code: String,
        /// Where the credentials came from.
        source_: String,
    },
    /// No credential source had any.
    #[error("{detail}")]
    NoCredentials {
        /// What was tried and how to fix it.
        detail: String,
    },
    /// A credential source was there but failed.
    #[error("cannot get S3 credentials: {detail}")]
    CredentialsFailed {
        /// What failed.
        detail: String,
    },
    /// The credentials are fine but the action is not allowed.
    #[error("S3 denied {action} on {bucket}/{key}: {code}; grant the pgbackup user {action} on this bucket")]
    Denied {
        /// The S3 action that was refused.
        action: &'static str,
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// S3's error code.
        code: String,
    },
    /// The bucket does not exist.
    #[error("S3 bucket {bucket} does not exist at {endpoint}; create it or fix the bucket name ({place})")]
    NoBucket {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
        /// Where the bucket name was set.
        place: String,
    },
    /// The region does not match the bucket's.
    #[error("S3 bucket {bucket} is not in region {region} ({expected}); fix [storage.s3] region (S3_REGION)")]
    WrongRegion {
        /// The bucket.
        bucket: String,
        /// The configured region.
        region: String,
        /// What the server said about the right one.
        expected: String,
    },
    /// The endpoint could not be reached.
    #[error("cannot reach S3 endpoint {endpoint}: {detail}; check [storage.s3] endpoint and the network")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// What failed.
        detail: String,
    },
    /// The TLS handshake failed (certificate not trusted, wrong name, expired, ...).
    #[error("S3 endpoint {endpoint}: {problem}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// What was wrong and what to do.
        problem: String,
    },
    /// The server refused a checksum header.
    #[error("S3 {action} of {bucket}/{key} was refused over a checksum ({detail}); pgbackup sends no checksum trailers and Content-MD5 only with object-lock: check that this endpoint supports the configured object-lock, or remove it")]
    Checksum {
        /// The S3 action.
        action: &'static str,
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// What S3 said.
        detail: String,
    },
    /// A version that Object Lock still protects (a refused delete).
    #[error("{key} is locked until {until}")]
    Locked {
        /// The object key.
        key: String,
        /// The retain-until date, or "a date the server did not tell".
        until: String,
    },
    /// `object-lock` on a bucket without Object Lock.
    #[error("S3 bucket {bucket} does not have Object Lock enabled, but [storage.s3] object-lock is set; create a bucket with Object Lock enabled (it implies versioning) or remove object-lock")]
    LockNotEnabled {
        /// The bucket.
        bucket: String,
    },
    /// The configuration cannot work (endpoint, ca-file).
    #[error("[storage.s3] {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// Anything else S3 said.
    #[error("S3 {action} of {bucket}/{key} failed: {detail}")]
    Other {
        /// The S3 action.
        action: &'static str,
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// What S3 said.
        detail: String,
    },
    /// A transfer made no progress for the stall timeout (after retries).
    #[error("S3 transfer of {bucket}/{key} stalled: no progress for {secs} s (after retries); check the network and the endpoint, or raise [storage.s3] stall-timeout-secs")]
    Stalled {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// The stall timeout.
        secs: u64,
    },
    /// A write to a read-only (legacy) prefix.
    #[error(
        "{location} is a read-only list-prefixes location; pgbackup never writes or deletes there"
    )]
    ReadOnly {
        /// The location.
        location: String,
    },
    /// The object needs more than 10,000 parts of the chosen size.
    #[error("{key} needs more than 10,000 parts of {part_mib} MiB (the size chosen from the previous backup or the database size); raise [storage.s3] part-size-mib")]
    TooLarge {
        /// The object key.
        key: String,
        /// The part size.
        part_mib: u64,
    },
    /// Reading the local file failed.
    #[error("reading {path} for upload failed: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Attempts per request before a transient failure is given up (and the upload aborted).
const ATTEMPTS: u32 = 5;

/// A request body as the store knows it.
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset` (parts: streamed, never held in memory).
    File {
        file: &'a File,
        offset: u64,
        len: u64,
    },
}

/// What HEAD says of an object.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// Its size.
    pub size: u64,
    /// Its ETag, quotes removed.
    pub etag: String,
    /// Object Lock's retain-until date.
    pub retain_until: Option<DateTime<Utc>>,
}

/// What a store shares between its clones and its upload threads.
#[derive(Debug)]
struct Client {
    cfg: S3Config,
    agent: ureq::Agent,
    /// The service endpoint (without the bucket).
    endpoint: Endpoint,
    /// The bucket in the host name (virtual-hosted style) rather than the path.
    virtual_host: bool,
    /// The proxy every request goes through, if any (masked, for messages).
    proxy: Option<String>,
    creds: Provider,
    /// Object Lock found enabled on the bucket (checked before the first write).
    lock_checked: OnceLock<()>,
}

/// A configured bucket and prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Arc<Client>,
    /// The key prefix this store reads (and, unless `read_only`, writes).
    prefix: String,
    /// A `list-prefixes` location: backups lie directly under the prefix; never written.
    read_only: bool,
    /// Where streamed uploads spool their parts (the backup root when run by a command).
    spool_dir: PathBuf,
}

impl S3Store {
    /// Build the client: endpoint, trust store, proxy, credential chain (nothing is contacted).
    pub fn new(cfg: &S3Config) -> Result<S3Store, S3Failure> {
        let config = |detail: String| S3Failure::Config { detail };
        let endpoint = match &cfg.endpoint {
            Some(e) => Endpoint::parse(e).map_err(|e| config(format!("endpoint: {e}")))?,
            None => Endpoint::parse(&format!("https://s3.{}.amazonaws.com", cfg.region))
                .map_err(|e| config(format!("region: {e}")))?,
        };
        let roots = if endpoint.scheme == "https" || cfg.ca_file.is_some() {
            Some(http::trust_roots(cfg.ca_file.as_deref()).map_err(config)?)
        } else {
            None
        };
        let client = http::ClientOptions {
            roots,
            proxy: cfg.proxy.proxy_for(&endpoint).map(str::to_string),
            connect_timeout: cfg.stall_timeout.min(Duration::from_secs(30)),
            read_timeout: cfg.stall_timeout,
            write_timeout: cfg.stall_timeout,
        };
        let agent = http::agent(&client).map_err(config)?;
        let proxy = client.proxy.as_deref().map(http::mask_userinfo);
        // STS goes through the same trust and proxy rules, with its own proxy choice.
        let creds = Provider::new(
            cfg.credentials.clone(),
            &cfg.region,
            http::ClientOptions {
                proxy: None,
                ..client
            },
            cfg.proxy.clone(),
        );
        Ok(S3Store {
            client: Arc::new(Client {
                virtual_host: !cfg.path_style,
                proxy,
                agent,
                endpoint,
                creds,
                lock_checked: OnceLock::new(),
                cfg: cfg.clone(),
            }),
            prefix: cfg.prefix.clone(),
            read_only: false,
            spool_dir: std::env::temp_dir(),
        })
    }

    /// Spool streamed uploads' parts in `dir` instead of the system temp directory.
    pub fn with_spool_dir(mut self, dir: &Path) -> Self {
        self.spool_dir = dir.to_path_buf();
        self
    }

    /// The read-only stores of the configured `list-prefixes`.
    pub fn legacy_stores(&self) -> Vec<S3Store> {
        self.client
            .cfg
            .list_prefixes
            .iter()
            .map(|p| S3Store {
                prefix: p.clone(),
                read_only: true,
                ..self.clone()
            })
            .collect()
    }

    /// Whether the configuration asks to keep the local copy after the upload.
    pub fn keep_local(&self) -> bool {
        self.client.cfg.keep_local
    }

    /// Where the credentials come from, in words (never a secret).
    pub fn credential_source(&self) -> String {
        self.client.creds.source()
    }

    /// The configured Object Lock, if any.
    pub fn object_lock(&self) -> Option<ObjectLock> {
        self.client.cfg.object_lock
    }

    fn bucket(&self) -> &str {
        &self.client.cfg.bucket
    }

    fn endpoint_label(&self) -> String {
        let ep = match &self.client.cfg.endpoint {
            Some(_) => self.client.endpoint.url(),
            None => format!(
                "AWS {} ({})",
                self.client.cfg.region,
                self.client.endpoint.url()
            ),
        };
        match &self.client.proxy {
            Some(p) => {
                format!("{ep} (via proxy {p}, from HTTPS_PROXY/HTTP_PROXY; NO_PROXY bypasses it)")
            }
            None => ep,
        }
    }

    fn writable(&self) -> Result<(), S3Failure> {
        if self.read_only {
            return Err(S3Failure::ReadOnly {
                location: self.location_url(),
            });
        }
        Ok(())
    }

    /// A failure that S3 did not explain.
    fn other(&self, action: &'static str, key: &str, detail: String) -> S3Failure {
        S3Failure::Other {
            action,
            bucket: self.bucket().to_string(),
            key: key.to_string(),
            detail,
        }
    }

    // --------------------------------------------------------------------------------------------
    // Requests

    /// Send one signed request; an answer of status >= 300 is an error (with S3's document).
    fn request(
        &self,
        method: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
        mut headers: Vec<(String, String)>,
        payload: Payload,
    ) -> Result<Response, ReqError> {
        let creds = self.client.creds.current().map_err(ReqError::Credentials)?;
        let ep = &self.client.endpoint;
        let (host, path) = self.host_and_path(key);
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let payload_hash = match &payload {
            Payload::Empty => EMPTY_SHA256.to_string(),
            Payload::Bytes(b) => crate::pipeline::hex(&Sha256::digest(b)),
            Payload::File { .. } => UNSIGNED_PAYLOAD.to_string(),
        };
        let signed = sigv4::sign(
            &creds,
            &self.client.cfg.region,
            "s3",
            &Canonical {
                method,
                host: &host,
                path: &path,
                query: &query,
                headers: &headers,
                payload_hash: &payload_hash,
            },
            Utc::now(),
        );
        headers.extend(signed);
        // Empty values go bare (`?uploads`), as S3's own clients send them.
        let url_query = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    sigv4::uri_encode(k, false)
                } else {
                    format!(
                        "{}={}",
                        sigv4::uri_encode(k, false),
                        sigv4::uri_encode(v, false)
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        let url = if url_query.is_empty() {
            format!("{}://{host}{path}", ep.scheme)
        } else {
            format!("{}://{host}{path}?{url_query}", ep.scheme)
        };
        let resp = match payload {
            Payload::Empty => http::send(
                &self.client.agent,
                method,
                &url,
                &headers,
                http::Body::Empty,
            ),
            Payload::Bytes(b) => http::send(
                &self.client.agent,
                method,
                &url,
                &headers,
                http::Body::Bytes(b),
            ),
            Payload::File { file, offset, len } => {
                let mut f = file;
                f.seek(SeekFrom::Start(offset)).map_err(ReqError::Local)?;
                let mut body = f.take(len);
                http::send(
                    &self.client.agent,
                    method,
                    &url,
                    &headers,
                    http::Body::Reader(&mut body, len),
                )
            }
        }?;
        if resp.status >= 300 {
            return Err(http::status_error(resp));
        }
        Ok(resp)
    }

    /// The Host header and the encoded path of a request for `key` (None: the bucket itself):
    /// virtual-hosted (`bucket.endpoint/key`) or path style (`endpoint/bucket/key`).
    fn host_and_path(&self, key: Option<&str>) -> (String, String) {
        let ep = &self.client.endpoint;
        let bucket = self.bucket();
        let (host, mut path) = if self.client.virtual_host {
            (format!("{bucket}.{}", ep.authority), String::new())
        } else {
            (
                ep.authority.clone(),
                format!("/{}", sigv4::uri_encode(bucket, false)),
            )
        };
        match key {
            Some(k) => {
                path.push('/');
                path.push_str(&sigv4::uri_encode(k, true));
            }
            None if path.is_empty() => path.push('/'),
            None => {}
        }
        (host, path)
    }

    /// Run a request, retrying transient failures (408, 429, 5xx, resets, stalls) with backoff
    /// (0.5, 1, 2, 4 s), and once at once with fresh credentials when temporary ones expired.
    /// Refusals (4xx) are never retried.
    fn retry<T>(
        &self,
        what: &str,
        mut f: impl FnMut() -> Result<T, ReqError>,
    ) -> Result<T, ReqError> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        let mut refreshed = false;
        loop {
            match f() {
                Err(ReqError::Status { ref code, .. })
                    if !refreshed
                        && matches!(code.as_str(), "ExpiredToken" | "TokenRefreshRequired")
                        && self.client.creds.invalidate() =>
                {
                    refreshed = true;
                }
                Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                    crate::log::warn(&format!(
                        "S3 request for {what} failed ({}); retrying in {:.1} s",
                        e.short(),
                        delay.as_secs_f64()
                    ));
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// An error of `action` on `key` in words that say what to fix.
    fn classify(&self, action: &'static str, key: &str, e: ReqError) -> S3Failure {
        match e {
            ReqError::Credentials(CredentialError::None(detail)) => {
                S3Failure::NoCredentials { detail }
            }
            ReqError::Credentials(CredentialError::Failed(detail)) => {
                S3Failure::CredentialsFailed { detail }
            }
            ReqError::Tls(problem) => S3Failure::Tls {
                endpoint: self.endpoint_label(),
                problem,
            },
            ReqError::Transport { stalled: true, .. } => S3Failure::Stalled {
                bucket: self.bucket().to_string(),
                key: key.to_string(),
                secs: self.client.cfg.stall_timeout.as_secs(),
            },
            ReqError::Transport { detail, .. } => S3Failure::Unreachable {
                endpoint: self.endpoint_label(),
                detail,
            },
            ReqError::Local(source) => S3Failure::Read {
                path: key.to_string(),
                source,
            },
            ReqError::Status {
                status,
                code,
                message,
                region,
            } => {
                // Some answers (to PUT and HEAD) carry no document; a listing says why.
                if code.is_empty() && matches!(status, 400 | 403 | 404) {
                    if let Err(e @ ReqError::Status { .. }) = self.request(
                        "GET",
                        None,
                        &[("list-type", "2"), ("max-keys", "1")],
                        Vec::new(),
                        Payload::Empty,
                    ) {
                        if let ReqError::Status { code, .. } = &e {
                            if !code.is_empty() {
                                return self.classify(action, key, e);
                            }
                        }
                    }
                }
                self.classify_status(action, key, status, code, message, region)
            }
        }
    }

    fn classify_status(
        &self,
        action: &'static str,
        key: &str,
        status: u16,
        code: String,
        message: String,
        region: String,
    ) -> S3Failure {
        let bucket = self.bucket().to_string();
        // Garage answers a bad signature or unknown key with AccessDenied and says so.
        let lower = message.to_ascii_lowercase();
        let bad_key = code == "AccessDenied"
            && (lower.contains("signature") || lower.contains("no such key"));
        if bad_key {
            return S3Failure::BadCredentials {
                bucket,
                code: format!("{code}: {message}"),
                source_: self.credential_source(),
            };
        }
        let checksum = matches!(
            code.as_str(),
            "BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch" | "InvalidChecksum"
        ) || (code == "InvalidRequest"
            && (lower.contains("checksum") || lower.contains("content-md5")))
            || (status == 400 && lower.contains("x-amz-checksum"));
        if checksum {
            return S3Failure::Checksum {
                action,
                bucket,
                key: key.to_string(),
                detail: format!("{code}: {message}"),
            };
        }
        match (status, code.as_str()) {
            (
                _,
                "SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
                | "InvalidToken"
                | "ExpiredToken"
                | "InvalidClientTokenId",
            ) => S3Failure::BadCredentials {
                bucket,
                code,
                source_: self.credential_source(),
            },
            (_, "NoSuchBucket") => S3Failure::NoBucket {
                bucket,
                endpoint: self.endpoint_label(),
                place: self.client.cfg.bucket_place.clone(),
            },
            (
                _,
                "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "IllegalLocationConstraintException"
                | "InvalidRegion",
            )
            | (301, _) => S3Failure::WrongRegion {
                bucket,
                region: self.client.cfg.region.clone(),
                expected: [region, message]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .unwrap_or_else(|| code.clone()),
            },
            (403, _) => S3Failure::Denied {
                action,
                bucket,
                key: key.to_string(),
                code: if code.is_empty() { "403".into() } else { code },
            },
            _ => S3Failure::Other {
                action,
                bucket,
                key: key.to_string(),
                detail: if message.is_empty() {
                    format!("HTTP {status} {code}").trim().to_string()
                } else {
                    format!("HTTP {status} {code}: {message}")
                },
            },
        }
    }

    /// Headers of every object written: storage class, encryption, Object Lock.
    fn write_headers(&self, content_type: &str) -> Vec<(String, String)> {
        let cfg = &self.client.cfg;
        let mut h = vec![("content-type".to_string(), content_type.to_string())];
        if let Some(sc) = &cfg.storage_class {
            h.push(("x-amz-storage-class".into(), sc.clone()));
        }
        if let Some(sse) = &cfg.server_side_encryption {
            h.push(("x-amz-server-side-encryption".into(), sse.clone()));
        }
        if let Some(lock) = cfg.object_lock {
            let until = Utc::now() + chrono::Duration::days(i64::from(lock.days));
            h.push(("x-amz-object-lock-mode".into(), lock.mode.header().into()));
            h.push((
                "x-amz-object-lock-retain-until-date".into(),
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ));
        }
        h
    }

    /// Before the first write with `object-lock`: the bucket must have Object Lock enabled
    /// (78 when it has not). Checked once per process when it succeeds.
    pub fn check_object_lock(&self) -> Result<(), S3Failure> {
        if self.client.cfg.object_lock.is_none() || self.client.lock_checked.get().is_some() {
            return Ok(());
        }
        let action = "s3:GetBucketObjectLockConfiguration";
        let r = self.retry("the bucket's Object Lock configuration", || {
            self.request(
                "GET",
                None,
                &[("object-lock", "")],
                Vec::new(),
                Payload::Empty,
            )?
            .text()
        });
        let enabled = match r {
            Ok(body) => {
                xml::parse::<xml::ObjectLockConfiguration>("GetObjectLockConfiguration", &body)
                    .is_ok_and(|d| d.object_lock_enabled == "Enabled")
            }
            Err(ReqError::Status {
                status: 404,
                ref code,
                ..
            }) if code.is_empty() || code.starts_with("ObjectLockConfigurationNotFound") => false,
            Err(e) => return Err(self.classify(action, "", e)),
        };
        if !enabled {
            return Err(S3Failure::LockNotEnabled {
                bucket: self.bucket().to_string(),
            });
        }
        let _ = self.client.lock_checked.set(());
        Ok(())
    }

    /// Upload a small object in one request.
    fn put_bytes(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<(), S3Failure> {
        self.writable()?;
        self.check_object_lock()?;
        let mut headers = self.write_headers(content_type);
        if self.client.cfg.object_lock.is_some() {
            headers.push(("content-md5".into(), content_md5(bytes)));
        }
        self.retry(key, || {
            self.request(
                "PUT",
                Some(key),
                &[],
                headers.clone(),
                Payload::Bytes(bytes),
            )
            .map(drop)
        })
        .map_err(|e| self.classify("s3:PutObject", key, e))
    }

    /// Start a multipart upload of `key` with parts of `part_size` bytes.
    fn start_multipart(&self, key: &str, part_size: u64) -> Result<Multipart, S3Failure> {
        self.writable()?;
        self.check_object_lock()?;
        let action = "s3:PutObject (CreateMultipartUpload)";
        let headers = self.write_headers("application/gzip");
        let body = self
            .retry(key, || {
                self.request(
                    "POST",
                    Some(key),
                    &[("uploads", "")],
                    headers.clone(),
                    Payload::Empty,
                )?
                .text()
            })
            .map_err(|e| self.classify(action, key, e))?;
        let init: xml::InitiateMultipartUploadResult =
            xml::parse("CreateMultipartUpload", &body).map_err(|e| self.other(action, key, e))?;
        if init.upload_id.is_empty() {
            return Err(self.other(action, key, "the answer holds no upload id".into()));
        }
        Ok(Multipart::start(self, key, init.upload_id, part_size))
    }

    /// Upload one part from its file, retrying transient failures; each attempt re-reads the
    /// part from the file. Returns the part's ETag.
    fn upload_part(&self, key: &str, upload_id: &str, job: &PartJob) -> Result<String, S3Failure> {
        let number = job.number.to_string();
        let mut headers = vec![(
            "content-type".to_string(),
            "application/octet-stream".to_string(),
        )];
        if self.client.cfg.object_lock.is_some() {
            let md5 =
                file_md5(&job.file, job.offset, job.len).map_err(|source| S3Failure::Read {
                    path: format!("spool of part {number} of {key}"),
                    source,
                })?;
            headers.push(("content-md5".into(), md5));
        }
        self.retry(&format!("part {number} of {key}"), || {
            let resp = self.request(
                "PUT",
                Some(key),
                &[("partNumber", &number), ("uploadId", upload_id)],
                headers.clone(),
                Payload::File {
                    file: &job.file,
                    offset: job.offset,
                    len: job.len,
                },
            )?;
            match resp.header("etag") {
                Some(e) if !e.is_empty() => Ok(e.to_string()),
                _ => Err(ReqError::Status {
                    status: 500,
                    code: "NoETag".into(),
                    message: "the answer to UploadPart had no ETag".into(),
                    region: String::new(),
                }),
            }
        })
        .map_err(|e| self.classify("s3:PutObject (UploadPart)", key, e))
    }

    /// Complete a multipart upload. A completion whose answer was lost, and whose retry then
    /// found no such upload (AWS, Garage), has still made the object: its ETag says how many
    /// parts it has.
    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), S3Failure> {
        let action = "s3:PutObject (CompleteMultipartUpload)";
        let body = xml::complete_multipart_body(parts);
        let result = self.retry(key, || {
            let text = self
                .request(
                    "POST",
                    Some(key),
                    &[("uploadId", upload_id)],
                    vec![("content-type".into(), "application/xml".into())],
                    Payload::Bytes(body.as_bytes()),
                )?
                .text()?;
            // S3 may answer 200 with an error document (and it may be worth a retry).
            let doc = xml::error_document(&text);
            if !doc.code.is_empty() {
                return Err(ReqError::Status {
                    status: if doc.code == "InternalError" {
                        500
                    } else {
                        400
                    },
                    code: doc.code,
                    message: doc.message,
                    region: String::new(),
                });
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(_) if self.completed_with(key, parts.len()) => {
                crate::log::debug(&format!("{key}: completed by an earlier attempt"));
            }
            Err(e) => return Err(self.classify(action, key, e)),
        }
        self.ensure_locked(key)
    }

    /// With `object-lock`: make sure the completed object carries its retention. Some servers
    /// (moto, for one) ignore the lock headers of CreateMultipartUpload; then the retention is
    /// set with PutObjectRetention, and a server that refuses it fails the upload.
    fn ensure_locked(&self, key: &str) -> Result<(), S3Failure> {
        let Some(lock) = self.client.cfg.object_lock else {
            return Ok(());
        };
        let want = Utc::now() + chrono::Duration::days(i64::from(lock.days));
        let have = self.head(key)?.and_then(|h| h.retain_until);
        if have.is_some_and(|h| h + chrono::Duration::hours(1) >= want) {
            return Ok(());
        }
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            lock.mode.header(),
            want.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let headers = vec![
            ("content-type".to_string(), "application/xml".to_string()),
            ("content-md5".to_string(), content_md5(body.as_bytes())),
        ];
        self.retry(key, || {
            self.request(
                "PUT",
                Some(key),
                &[("retention", "")],
                headers.clone(),
                Payload::Bytes(body.as_bytes()),
            )
            .map(drop)
        })
        .map_err(|e| self.classify("s3:PutObjectRetention", key, e))
    }

    /// Abort a multipart upload (best effort: retention removes what stays).
    fn abort_multipart(&self, key: &str, upload_id: &str) {
        let _ = self.retry(key, || {
            self.request(
                "DELETE",
                Some(key),
                &[("uploadId", upload_id)],
                Vec::new(),
                Payload::Empty,
            )
            .map(drop)
        });
    }

    /// Whether `key` exists as a multipart object of `parts` parts (the `-N` ETag suffix).
    fn completed_with(&self, key: &str, parts: usize) -> bool {
        matches!(self.head(key), Ok(Some(h)) if h.etag.ends_with(&format!("-{parts}")))
    }

    /// HEAD of `key`; None when it does not exist.
    pub fn head(&self, key: &str) -> Result<Option<Head>, S3Failure> {
        self.head_version(key, None)
    }

    fn head_version(&self, key: &str, version: Option<&str>) -> Result<Option<Head>, S3Failure> {
        let query: Vec<(&str, &str)> = version.map(|v| ("versionId", v)).into_iter().collect();
        match self.retry(key, || {
            self.request("HEAD", Some(key), &query, Vec::new(), Payload::Empty)
        }) {
            Ok(r) => Ok(Some(Head {
                size: r
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                etag: r.header("etag").unwrap_or("").trim_matches('"').to_string(),
                retain_until: r
                    .header("x-amz-object-lock-retain-until-date")
                    .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                    .map(|d| d.with_timezone(&Utc)),
            })),
            Err(ReqError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(self.classify("s3:GetObject (HeadObject)", key, e)),
        }
    }

    /// Upload a committed local file as the storage key `key`, in parts read straight from the
    /// file (no copy, no spool), up to [`PARTS_IN_FLIGHT`] at once.
    pub fn upload_file(&self, path: &Path, key: &str) -> Result<u64, S3Failure> {
        let read_err = |source| S3Failure::Read {
            path: path.display().to_string(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        let key = self.full_key(key);
        if size == 0 {
            self.put_bytes(&key, b"", "application/gzip")?;
            return Ok(0);
        }
        let part = part_size(self.client.cfg.part_size as u64, Some(size));
        let mut mp = self.start_multipart(&key, part)?;
        let mut offset = 0;
        while offset < size {
            let len = part.min(size - offset);
            mp.send(File::open(path).map_err(read_err)?, offset, len)?;
            offset += len;
        }
        mp.complete()?;
        Ok(size)
    }

    /// A GET of `key` from byte `from` on (a Range when not 0; a server that ignores it fails
    /// the attempt rather than sending the start again).
    fn get_from(&self, key: &str, from: u64) -> Result<http::Response, ReqError> {
        let headers = if from > 0 {
            vec![("range".to_string(), format!("bytes={from}-"))]
        } else {
            Vec::new()
        };
        let resp = self.request("GET", Some(key), &[], headers, Payload::Empty)?;
        if from > 0 && resp.status != 206 {
            return Err(ReqError::Status {
                status: 500,
                code: "RangeIgnored".into(),
                message: "the server ignored the Range of a resumed download".into(),
                region: String::new(),
            });
        }
        Ok(resp)
    }

    /// Every object under `prefix` (with `delimiter`: only those directly under it, plus the
    /// common prefixes), all pages.
    fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<(Vec<xml::Object>, Vec<String>), S3Failure> {
        let mut objects = Vec::new();
        let mut prefixes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(d) = delimiter {
                q.push(("delimiter", d));
            }
            if let Some(t) = &token {
                q.push(("continuation-token", t));
            }
            let body = self
                .retry(&format!("listing {prefix}"), || {
                    self.request("GET", None, &q, Vec::new(), Payload::Empty)?
                        .text()
                })
                .map_err(|e| self.classify("s3:ListBucket", prefix, e))?;
            let page: xml::ListBucketResult = xml::parse("ListObjectsV2", &body)
                .map_err(|e| self.other("s3:ListBucket", prefix, e))?;
            objects.extend(page.contents);
            prefixes.extend(page.common_prefixes.into_iter().map(|p| p.prefix));
            match page.next_continuation_token {
                Some(t) if page.is_truncated && !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok((objects, prefixes))
    }

    /// Every version and delete marker under `prefix`, all pages.
    fn list_versions(&self, prefix: &str) -> Result<Vec<(xml::Version, bool)>, S3Failure> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut q: Vec<(&str, &str)> = vec![("versions", ""), ("prefix", prefix)];
            if let Some((k, v)) = &markers {
                q.push(("key-marker", k));
                if !v.is_empty() {
                    q.push(("version-id-marker", v));
                }
            }
            let body = self
                .retry(&format!("versions of {prefix}"), || {
                    self.request("GET", None, &q, Vec::new(), Payload::Empty)?
                        .text()
                })
                .map_err(|e| self.classify("s3:ListBucketVersions", prefix, e))?;
            let page: xml::ListVersionsResult = xml::parse("ListObjectVersions", &body)
                .map_err(|e| self.other("s3:ListBucketVersions", prefix, e))?;
            out.extend(page.version.into_iter().map(|v| (v, false)));
            out.extend(page.delete_marker.into_iter().map(|v| (v, true)));
            match page.next_key_marker {
                Some(k) if page.is_truncated && !k.is_empty() => {
                    markers = Some((k, page.next_version_id_marker.unwrap_or_default()))
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Delete one version of `key` (or the key itself, on an unversioned bucket).
    fn delete_object(&self, key: &str, version: Option<&str>) -> Result<(), S3Failure> {
        let query: Vec<(&str, &str)> = version.map(|v| ("versionId", v)).into_iter().collect();
        match self.retry(key, || {
            self.request("DELETE", Some(key), &query, Vec::new(), Payload::Empty)
                .map(drop)
        }) {
            Ok(()) | Err(ReqError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(self.classify("s3:DeleteObject", key, e)),
        }
    }

    /// Delete every version and delete marker of `key` (Object Lock buckets). A version that
    /// is still locked stops the deletion: [`S3Failure::Locked`] with its date.
    fn delete_all_versions(&self, key: &str) -> Result<(), S3Failure> {
        let versions: Vec<_> = self
            .list_versions(key)?
            .into_iter()
            .filter(|(v, _)| v.key == key)
            .collect();
        let now = Utc::now();
        // Locked versions first: nothing is deleted while any version is still protected.
        for (v, marker) in &versions {
            if *marker {
                continue;
            }
            if let Some(h) = self.head_version(key, Some(&v.version_id))? {
                if let Some(until) = h.retain_until.filter(|u| *u > now) {
                    return Err(S3Failure::Locked {
                        key: key.to_string(),
                        until: until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    });
                }
            }
        }
        for (v, _) in &versions {
            match self.delete_object(key, Some(&v.version_id)) {
                Ok(()) => {}
                Err(S3Failure::Denied { .. }) => {
                    return Err(S3Failure::Locked {
                        key: key.to_string(),
                        until: "a date the server did not tell".into(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Our incomplete multipart uploads in the directory `dir` (`db`'s): keys of our naming
    /// scheme for `db` only.
    fn our_uploads(&self, db: &str, dir: &str) -> Result<Vec<xml::Upload>, S3Failure> {
        let prefix = self.full_dir(dir);
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut q: Vec<(&str, &str)> = vec![("uploads", ""), ("prefix", &prefix)];
            if let Some((k, u)) = &markers {
                q.push(("key-marker", k));
                q.push(("upload-id-marker", u));
            }
            let body = self
                .retry(&format!("uploads under {prefix}"), || {
                    self.request("GET", None, &q, Vec::new(), Payload::Empty)?
                        .text()
                })
                .map_err(|e| self.classify("s3:ListBucketMultipartUploads", &prefix, e))?;
            let page: xml::ListMultipartUploadsResult =
                xml::parse("ListMultipartUploads", &body)
                    .map_err(|e| self.other("s3:ListBucketMultipartUploads", &prefix, e))?;
            out.extend(page.upload);
            match (page.next_key_marker, page.next_upload_id_marker) {
                (Some(k), Some(u)) if page.is_truncated && !k.is_empty() => markers = Some((k, u)),
                _ => break,
            }
        }
        Ok(out
            .into_iter()
            .filter(|u| {
                u.key
                    .strip_prefix(&prefix)
                    .filter(|f| !f.contains('/'))
                    .and_then(BackupName::parse)
                    .is_some_and(|n| n.database == db)
            })
            .collect())
    }
}

/// Content-MD5 of a small body.
fn content_md5(bytes: &[u8]) -> String {
    use md5::Digest as _;
    base64(&md5::Md5::digest(bytes))
}

/// Content-MD5 of `len` bytes of `file` from `offset` (a part on disk; read once more).
fn file_md5(file: &File, offset: u64, len: u64) -> io::Result<String> {
    use md5::Digest as _;
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    let mut h = md5::Md5::new();
    let mut r = f.take(len);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(base64(&h.finalize()))
}

/// Standard base64 with padding (for Content-MD5).
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A timestamp of a listing, when it parses.
fn rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An object being read ([`Storage::open`]): a dropped connection or a short body is resumed
/// from the byte reached, with a Range GET, up to the store's number of attempts.
pub(crate) struct ObjectReader<'a> {
    store: &'a S3Store,
    key: String,
    body: Option<Box<dyn Read + 'a>>,
    done: u64,
    total: Option<u64>,
    failures: u32,
    delay: Duration,
}

impl ObjectReader<'_> {
    /// Count a failed read and wait before the next attempt, or give up.
    fn failed(&mut self, e: ReqError) -> io::Result<()> {
        self.body = None;
        self.failures += 1;
        if self.failures >= ATTEMPTS || !e.is_transient() {
            // The failure itself travels in the io::Error, so that the reader's caller
            // reports it as the S3 failure it is (exit 69 for an unreachable server).
            return Err(io::Error::other(self.store.classify(
                "s3:GetObject",
                &self.key,
                e,
            )));
        }
        crate::log::warn(&format!(
            "reading s3://{}/{} failed after {} bytes ({}); resuming in {:.1} s",
            self.store.bucket(),
            self.key,
            self.done,
            e.short(),
            self.delay.as_secs_f64()
        ));
        std::thread::sleep(self.delay);
        self.delay *= 2;
        Ok(())
    }
}

impl Read for ObjectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(body) = self.body.as_mut() else {
                match self.store.get_from(&self.key, self.done) {
                    Ok(resp) => self.body = Some(Box::new(resp.into_reader())),
                    Err(e) => self.failed(e)?,
                }
                continue;
            };
            match body.read(buf) {
                Ok(0) if buf.is_empty() => return Ok(0),
                Ok(0) => match self.total {
                    Some(t) if self.done < t => {
                        let detail = format!("connection closed after {} of {t} bytes", self.done);
                        self.failed(ReqError::Transport {
                            detail,
                            stalled: false,
                        })?
                    }
                    _ => return Ok(0),
                },
                Ok(n) => {
                    self.done += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.failed(ReqError::Transport {
                    stalled: matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ),
                    detail: e.to_string(),
                })?,
            }
        }
    }
}

/// The storage operations, in S3's terms and errors; `crate::storage::s3` implements the
/// `Storage` trait with them.
impl S3Store {
    pub(crate) fn location_url(&self) -> String {
        format!("s3://{}/{}", self.bucket(), self.prefix)
    }

    /// Whether this is a read-only legacy prefix, whose files lie flat in the prefix.
    pub fn is_flat(&self) -> bool {
        self.read_only
    }

    /// The bucket key of a storage key.
    pub(crate) fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The bucket prefix of a storage directory (`""` is the configured prefix itself).
    fn full_dir(&self, dir: &str) -> String {
        if dir.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{dir}/", self.prefix)
        }
    }

    pub(crate) fn describe_key(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket(), self.full_key(key))
    }

    pub(crate) fn object_dirs(&self, dir: &str) -> Result<Vec<String>, S3Failure> {
        let full = self.full_dir(dir);
        let (_, prefixes) = self.list(&full, Some("/"))?;
        let mut out: Vec<String> = prefixes
            .into_iter()
            .filter_map(|p| {
                p.strip_prefix(&full)
                    .map(|s| s.trim_end_matches('/').to_string())
            })
            .filter(|d| !d.is_empty())
            .collect();
        out.sort();
        Ok(out)
    }

    pub(crate) fn object_files(&self, dir: &str) -> Result<Vec<StoredFile>, S3Failure> {
        let dir = self.full_dir(dir);
        let (objects, _) = self.list(&dir, Some("/"))?;
        let mut out: Vec<StoredFile> = objects
            .into_iter()
            .filter_map(|o| {
                let name = o.key.strip_prefix(&dir)?;
                (!name.is_empty() && !name.contains('/')).then(|| StoredFile {
                    name: name.to_string(),
                    size: o.size,
                    modified: rfc3339(&o.last_modified),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Streamed into a multipart upload with parts of one size (see [`part_size`]); parts are
    /// spooled in the spool directory.
    pub(crate) fn create_object(
        &self,
        key: &str,
        size_hint: Option<u64>,
    ) -> Result<S3Writer, S3Failure> {
        self.writable()?;
        let part = part_size(self.client.cfg.part_size as u64, size_hint);
        let mp = self.start_multipart(&self.full_key(key), part)?;
        Ok(S3Writer {
            mp,
            spool_dir: self.spool_dir.clone(),
            spool: None,
            spool_len: 0,
            total: 0,
        })
    }

    pub(crate) fn put_file(&self, key: &str, bytes: &[u8]) -> Result<(), S3Failure> {
        let file = key;
        let ct = if file.ends_with(".json") {
            "application/json"
        } else if file.ends_with(".gz") {
            "application/gzip"
        } else if file.ends_with(".zst") {
            "application/zstd"
        } else {
            "text/plain"
        };
        self.put_bytes(&self.full_key(key), bytes, ct)
    }

    /// The first GET is made here (so that a missing object or a refusal is an error of
    /// `open`, with its exit code); a connection lost while reading is resumed with a Range.
    pub(crate) fn open_object<'a>(&'a self, key: &str) -> Result<ObjectReader<'a>, S3Failure> {
        let key = self.full_key(key);
        let resp = self
            .retry(&format!("download of {key}"), || self.get_from(&key, 0))
            .map_err(|e| self.classify("s3:GetObject", &key, e))?;
        let total = resp
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        Ok(ObjectReader {
            store: self,
            body: Some(Box::new(resp.into_reader())),
            key,
            done: 0,
            total,
            failures: 0,
            delay: Duration::from_millis(500),
        })
    }

    /// Under Object Lock every version of the key is deleted (a plain DELETE would only hide
    /// a locked object behind a delete marker); a version still locked gives
    /// [`S3Failure::Locked`].
    pub(crate) fn delete_file(&self, key: &str) -> Result<(), S3Failure> {
        self.writable()?;
        let key = self.full_key(key);
        if self.client.cfg.object_lock.is_some() {
            return self.delete_all_versions(&key);
        }
        self.delete_object(&key, None)
    }

    /// A future retain-until date of the object's current version (HEAD), with Object Lock.
    pub(crate) fn lock_until(&self, key: &str) -> Result<Option<DateTime<Utc>>, S3Failure> {
        if self.client.cfg.object_lock.is_none() {
            return Ok(None);
        }
        Ok(self
            .head(&self.full_key(key))?
            .and_then(|h| h.retain_until)
            .filter(|u| *u > Utc::now()))
    }

    /// Remove what interrupted runs of ours left in `db`, once it is older than
    /// `abort-incomplete-after-hours`: incomplete multipart uploads, a data object whose sidecar
    /// never arrived, a sidecar or manifest without its data object, and (Object Lock) the
    /// delete markers and old versions of our keys. Foreign keys are never touched.
    /// `dir` is `db`'s directory as the storage layout places it.
    pub(crate) fn clean_debris(&self, db: &str, dir: &str) -> Result<Vec<String>, S3Failure> {
        self.writable()?;
        let cutoff = Utc::now()
            - chrono::Duration::from_std(self.client.cfg.abort_incomplete_after)
                .unwrap_or(chrono::Duration::zero());
        let mut removed = Vec::new();
        for u in self.our_uploads(db, dir)? {
            if rfc3339(&u.initiated).is_some_and(|t| t <= cutoff) {
                self.retry(&u.key, || {
                    self.request(
                        "DELETE",
                        Some(&u.key),
                        &[("uploadId", &u.upload_id)],
                        Vec::new(),
                        Payload::Empty,
                    )
                    .map(drop)
                })
                .map_err(|e| self.classify("s3:AbortMultipartUpload", &u.key, e))?;
                removed.push(format!(
                    "aborted incomplete upload of {} ({})",
                    u.key, u.initiated
                ));
            }
        }
        let files = self.object_files(dir)?;
        let key_of = |name: &str| match dir {
            "" => name.to_string(),
            d => format!("{d}/{name}"),
        };
        for f in crate::catalog::debris_in(db, &files) {
            if f.modified.is_none_or(|t| t > cutoff) {
                continue;
            }
            match self.delete_file(&key_of(&f.name)) {
                Ok(()) => removed.push(format!(
                    "deleted orphaned {} (its commit never finished)",
                    self.describe_key(&key_of(&f.name))
                )),
                Err(S3Failure::Locked { until, .. }) => crate::log::debug(&format!(
                    "orphaned {} stays until {until} (Object Lock)",
                    self.describe_key(&key_of(&f.name))
                )),
                Err(e) => return Err(e),
            }
        }
        if self.client.cfg.object_lock.is_some() {
            // Keys of ours whose current version is a delete marker (a plain DELETE by another
            // tool, or an older pgbackup): their hidden versions are still billed. Once their
            // locks have expired, every version and marker goes.
            let prefix = self.full_dir(dir);
            let mut by_key: std::collections::BTreeMap<String, Vec<(xml::Version, bool)>> =
                Default::default();
            for (v, marker) in self.list_versions(&prefix)? {
                let name = v.key.strip_prefix(&prefix).unwrap_or_default();
                if !name.contains('/') && crate::catalog::is_ours(db, name) {
                    by_key.entry(v.key.clone()).or_default().push((v, marker));
                }
            }
            for (key, versions) in by_key {
                let hidden = versions.iter().any(|(v, m)| *m && v.is_latest);
                let stale = versions
                    .iter()
                    .filter(|(_, m)| *m)
                    .all(|(v, _)| rfc3339(&v.last_modified).is_some_and(|t| t <= cutoff));
                if !hidden || !stale {
                    continue;
                }
                match self.delete_all_versions(&key) {
                    Ok(()) => removed.push(format!(
                        "deleted {} of {key} (hidden versions and delete markers)",
                        crate::text::count(
                            versions.len() as u64,
                            "object version",
                            "object versions"
                        )
                    )),
                    Err(S3Failure::Locked { until, .. }) => crate::log::debug(&format!(
                        "hidden versions of {key} stay until {until} (Object Lock)"
                    )),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EXIT_UNAVAILABLE;
    use crate::secret::Secret;

    fn offline_store(region: &str) -> S3Store {
        offline_store_at(region, Some("http://127.0.0.1:9"), true)
    }

    fn offline_store_at(region: &str, endpoint: Option<&str>, path_style: bool) -> S3Store {
        S3Store::new(&S3Config {
            bucket: "b".into(),
            endpoint: endpoint.map(str::to_string),
            region: region.into(),
            prefix: "backups/".into(),
            credentials: CredentialSpec::Static {
                creds: sigv4::Credentials {
                    access_key: Secret::new("AK"),
                    secret_key: Secret::new("SK"),
                    session_token: None,
                },
                source: "test keys".into(),
            },
            path_style,
            storage_class: None,
            server_side_encryption: None,
            part_size: 5 << 20,
            keep_local: true,
            list_prefixes: Vec::new(),
            stall_timeout: Duration::from_secs(5),
            abort_incomplete_after: Duration::from_secs(3600),
            ca_file: None,
            proxy: ProxyEnv::default(),
            object_lock: None,
            bucket_place: "[storage.s3] bucket".into(),
        })
        .unwrap()
    }

    fn status(status: u16, code: &str, message: &str) -> ReqError {
        ReqError::Status {
            status,
            code: code.into(),
            message: message.into(),
            region: String::new(),
        }
    }

    /// Error documents as AWS, Garage and R2 send them, mapped to what the operator must fix.
    #[test]
    fn errors_are_classified_in_words() {
        let s = offline_store("us-east-1");
        let wrong_region = s.classify(
            "s3:PutObject",
            "k",
            ReqError::Status {
                status: 400,
                code: "AuthorizationHeaderMalformed".into(),
                message: "the region 'us-east-1' is wrong; expecting 'eu-west-1'".into(),
                region: "eu-west-1".into(),
            },
        );
        assert!(
            matches!(&wrong_region, S3Failure::WrongRegion { expected, .. } if expected == "eu-west-1"),
            "{wrong_region:?}"
        );
        assert!(wrong_region.to_string().contains("fix [storage.s3] region"));
        assert_eq!(wrong_region.exit_code(), EXIT_UNAVAILABLE);
        let garage_sig = s.classify(
            "s3:PutObject",
            "k",
            status(403, "AccessDenied", "Forbidden: Invalid signature"),
        );
        assert!(
            matches!(garage_sig, S3Failure::BadCredentials { .. }),
            "{garage_sig:?}"
        );
        assert!(garage_sig.to_string().contains("test keys"), "{garage_sig}");
        let denied = s.classify(
            "s3:DeleteObject",
            "k",
            status(403, "AccessDenied", "Access Denied"),
        );
        assert!(
            denied.to_string().contains("denied s3:DeleteObject"),
            "{denied}"
        );
        let stalled = s.classify(
            "s3:GetObject",
            "k",
            ReqError::Transport {
                detail: "x".into(),
                stalled: true,
            },
        );
        assert!(
            stalled.to_string().contains("no progress for 5 s"),
            "{stalled}"
        );
        // R2 and Ceph refuse checksum trailers; the hint names checksums, and it is 69.
        let sum = s.classify(
            "s3:PutObject (UploadPart)",
            "k",
            status(
                400,
                "InvalidRequest",
                "x-amz-checksum-crc32 is not supported",
            ),
        );
        assert!(matches!(sum, S3Failure::Checksum { .. }), "{sum:?}");
        assert!(sum.to_string().contains("checksum"), "{sum}");
        assert_eq!(sum.exit_code(), EXIT_UNAVAILABLE);
        let tls = s.classify(
            "s3:ListBucket",
            "",
            ReqError::Tls("its TLS certificate is not trusted".into()),
        );
        assert!(tls.to_string().contains("http://127.0.0.1:9"), "{tls}");
        assert_eq!(tls.exit_code(), EXIT_UNAVAILABLE);
    }

    /// AWS without an endpoint: virtual-hosted at the regional endpoint; an endpoint: path
    /// style by default; keys are percent-encoded, `/` kept.
    #[test]
    fn addressing_styles() {
        let aws = offline_store_at("eu-west-1", None, false);
        assert_eq!(
            aws.host_and_path(Some("backups/db/a+b.sql.gz")),
            (
                "b.s3.eu-west-1.amazonaws.com".to_string(),
                "/backups/db/a%2Bb.sql.gz".to_string()
            )
        );
        assert_eq!(aws.host_and_path(None).1, "/");
        assert!(aws
            .endpoint_label()
            .contains("AWS eu-west-1 (https://s3.eu-west-1.amazonaws.com)"));
        let minio = offline_store_at("us-east-1", Some("https://minio.internal:9000/"), true);
        assert_eq!(
            minio.host_and_path(Some("k")),
            ("minio.internal:9000".to_string(), "/b/k".to_string())
        );
        assert_eq!(minio.host_and_path(None).1, "/b");
        let vhost = offline_store_at("us-east-1", Some("https://s3.wasabisys.com"), false);
        assert_eq!(vhost.host_and_path(Some("k")).0, "b.s3.wasabisys.com");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        for (st, code, transient) in [
            (500, "InternalError", true),
            (503, "SlowDown", true),
            (429, "", true),
            (408, "", true),
            (400, "RequestTimeout", true),
            (400, "InvalidArgument", false),
            (403, "AccessDenied", false),
            (403, "SignatureDoesNotMatch", false),
            (404, "NoSuchKey", false),
        ] {
            assert_eq!(
                status(st, code, "").is_transient(),
                transient,
                "{st} {code}"
            );
        }
        assert!(ReqError::Transport {
            detail: "reset".into(),
            stalled: false
        }
        .is_transient());
        assert!(!ReqError::Tls("x".into()).is_transient());
    }

    #[test]
    fn error_text_never_carries_a_url() {
        assert_eq!(
            status(403, "AccessDenied", "").short(),
            "HTTP 403 AccessDenied"
        );
        let e = ReqError::Transport {
            detail: "x".into(),
            stalled: true,
        };
        assert_eq!(e.short(), "no progress within the stall timeout");
    }

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        // RFC 1321 test vector, as `openssl md5 -binary | base64` prints it.
        assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
