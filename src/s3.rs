//! S3-compatible storage (AWS, Wasabi, MinIO, Garage, ...) behind the [`Storage`] trait.
//!
//! Two kinds of request:
//! - control requests (list, create/complete/abort multipart upload, small objects, delete) go
//!   through rust-s3 with a time limit per request;
//! - data transfers (multipart parts, downloads) go over ureq, signed in headers by
//!   [`crate::sigv4`], streamed from and to files, with per-read/per-write socket timeouts: a transfer may take as long as it
//!   needs while it moves, and fails as a stall when nothing moves for `stall-timeout-secs`.
//!   Memory holds copy buffers only, whatever the part size.
//!
//! The data object goes first, as a multipart upload with up to [`PARTS_IN_FLIGHT`] parts
//! uploading at once, aborted on any failure so that no partial object remains; then the
//! `.sha256` sidecar, then the manifest. A reader that applies the reader rule (data AND
//! sidecar) therefore never sees an incomplete backup.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sigv4::{Signer, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use crate::storage::{ObjectWriter, Storage, StoredFile};

use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, Region};

use crate::error::{EXIT_FAILED, EXIT_UNAVAILABLE};
use crate::secret::Secret;

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
    /// Access key id.
    pub access_key: Secret,
    /// Secret access key.
    pub secret_key: Secret,
    /// Path-style addressing (bucket in the path, not the host name).
    pub path_style: bool,
    /// `x-amz-storage-class` for uploads.
    pub storage_class: Option<String>,
    /// `x-amz-server-side-encryption` for uploads.
    pub server_side_encryption: Option<String>,
    /// Base multipart part size in bytes (parts grow past part 1000, see `part_len`).
    pub part_size: usize,
    /// Keep the local copy after the upload; false streams the dump straight to S3.
    pub keep_local: bool,
    /// Read-only extra prefixes (legacy layouts) that listing, verify and restore also read.
    pub list_prefixes: Vec<String>,
    /// No progress on a transfer for this long is a stall, and fails the transfer.
    pub stall_timeout: Duration,
    /// Our incomplete multipart uploads older than this are aborted by retention.
    pub abort_incomplete_after: Duration,
}

/// An S3 failure, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum S3Failure {
    /// The credentials were refused.
    #[error("S3 refused the credentials for bucket {bucket} ({code}); check access-key/secret-key (S3_ACCESS_KEY, S3_SECRET_KEY)")]
    BadCredentials {
        /// The bucket.
        bucket: String,
        /// S3's error code.
        code: String,
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
    #[error(
        "S3 bucket {bucket} does not exist at {endpoint}; create it or fix [storage.s3] bucket"
    )]
    NoBucket {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
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
    /// The object would need more than 10,000 parts.
    #[error("{key} needs more than 10,000 multipart parts; raise [storage.s3] part-size-mib")]
    TooLarge {
        /// The object key.
        key: String,
    },
    /// Writing a download to local disk failed.
    #[error("cannot write the download of {key}: {source}; check free space and permissions under [storage] local-dir")]
    LocalWrite {
        /// The object key.
        key: String,
        /// Why.
        #[source]
        source: std::io::Error,
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

impl S3Failure {
    /// Exit code per DESIGN.md: storage unreachable or refusing is 69.
    pub fn exit_code(&self) -> u8 {
        match self {
            S3Failure::Other { .. } | S3Failure::Read { .. } | S3Failure::TooLarge { .. } => {
                EXIT_FAILED
            }
            S3Failure::ReadOnly { .. } => crate::error::EXIT_USAGE,
            S3Failure::LocalWrite { .. } => crate::error::EXIT_CANTCREAT,
            _ => EXIT_UNAVAILABLE,
        }
    }
}

/// Parts uploading at once: enough to keep a link busy while the next part is compressed, few
/// enough that disk spool (one part-size file each, plus the one being filled) stays small.
pub const PARTS_IN_FLIGHT: usize = 4;

/// S3's limit on parts per multipart upload.
pub const MAX_PARTS: u32 = 10_000;

/// The largest part S3 accepts.
const MAX_PART: u64 = 5 << 30;

/// Size of part `n` (1-based) for base size `base`: `base` for parts 1-1000, then doubling
/// every 1000 parts, at most 5 GiB. The stream's size is unknown when the upload starts; this
/// keeps small backups in small parts and still fits 1 TB into 10,000 parts from a 5 MiB base
/// (about 5 TiB; 16 TiB from the default 16 MiB). Parts are spooled to disk, not held in memory,
/// so their size does not cost memory.
pub fn part_len(base: u64, n: u32) -> u64 {
    let doublings = (n.saturating_sub(1) / 1000).min(20);
    (base << doublings).min(MAX_PART)
}

/// Attempts per request before a transient failure is given up (and the upload aborted).
const ATTEMPTS: u32 = 5;

/// Run an S3 request, retrying transient failures (5xx, 429, timeouts, resets) with backoff
/// (0.5, 1, 2, 4 s). rust-s3's own retry is switched off (it would also retry a 403).
fn with_retries<T>(what: &str, mut f: impl FnMut() -> Result<T, S3Error>) -> Result<T, S3Error> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                crate::log::warn(&format!(
                    "S3 request for {what} failed ({}); retrying in {:.1} s",
                    short(&e),
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

/// A one-line description of a failed request (never a URL: presigned URLs carry signatures).
fn short(e: &S3Error) -> String {
    match e {
        S3Error::HttpFailWithBody(status, body) => format!("HTTP {status} {}", error_code(body))
            .trim()
            .to_string(),
        S3Error::Io(e) if is_stall(e) => "no progress within the stall timeout".into(),
        S3Error::Io(e) => e.to_string(),
        other => other.to_string(),
    }
}

fn is_stall(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Worth another try: server errors, throttling, and transport failures.
fn is_transient(e: &S3Error) -> bool {
    match e {
        S3Error::HttpFailWithBody(status, _) => *status >= 500 || *status == 429,
        S3Error::Atto(_) | S3Error::Io(_) => true,
        _ => false,
    }
}

fn error_code(body: &str) -> String {
    xml_field(body, "Code")
}

fn xml_field(body: &str, field: &str) -> String {
    body.split(&format!("<{field}>"))
        .nth(1)
        .and_then(|r| r.split(&format!("</{field}>")).next())
        .unwrap_or("")
        .to_string()
}

/// A ureq failure as an S3Error, without the URL (it carries a signature).
fn from_ureq(e: ureq::Error) -> S3Error {
    match e {
        ureq::Error::Status(code, resp) => {
            let mut body = String::new();
            let _ = resp.into_reader().take(64 * 1024).read_to_string(&mut body);
            S3Error::HttpFailWithBody(code, body)
        }
        ureq::Error::Transport(t) => {
            let io_kind = std::error::Error::source(&t)
                .and_then(|s| s.downcast_ref::<io::Error>())
                .map(io::Error::kind);
            match io_kind {
                Some(k) => S3Error::Io(io::Error::new(k, t.kind().to_string())),
                None => S3Error::Io(io::Error::other(format!(
                    "{}: {}",
                    t.kind(),
                    t.message().unwrap_or_default()
                ))),
            }
        }
    }
}

/// A configured bucket and prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    /// Control requests.
    bucket: Box<Bucket>,
    /// Control requests that create objects (with storage class and encryption headers).
    upload: Box<Bucket>,
    /// Data transfers (streamed, signed by `signer`).
    agent: ureq::Agent,
    signer: Signer,
    cfg: S3Config,
    /// The key prefix this store reads (and, unless `read_only`, writes).
    prefix: String,
    /// A `list-prefixes` location: backups lie directly under the prefix; never written.
    read_only: bool,
    /// Where streamed uploads spool their parts (the backup root when run by a command).
    spool_dir: std::path::PathBuf,
}

impl S3Store {
    /// Build the client (nothing is contacted yet).
    pub fn new(cfg: &S3Config) -> Result<S3Store, S3Failure> {
        let config_err = |detail: String| S3Failure::Other {
            action: "configuration",
            bucket: cfg.bucket.clone(),
            key: String::new(),
            detail,
        };
        let region = match &cfg.endpoint {
            Some(e) => Region::Custom {
                region: cfg.region.clone(),
                endpoint: e.trim_end_matches('/').to_string(),
            },
            None => cfg.region.parse().map_err(|e: std::str::Utf8Error| {
                config_err(format!("region {}: {e}", cfg.region))
            })?,
        };
        let creds = Credentials::new(
            Some(cfg.access_key.expose()),
            Some(cfg.secret_key.expose()),
            None,
            None,
            None,
        )
        .map_err(|e| config_err(e.to_string()))?;
        // Retries are ours, for transient failures only (see `with_retries`).
        s3::set_retries(0);
        let mut bucket =
            Bucket::new(&cfg.bucket, region, creds).map_err(|e| config_err(e.to_string()))?;
        if cfg.path_style {
            bucket = bucket.with_path_style();
        }
        // Control requests are small; a whole-request limit is right for them. Completing a
        // large multipart upload can take a while on AWS, hence the margin.
        bucket.set_request_timeout(Some(cfg.stall_timeout.max(Duration::from_secs(60)) * 2));
        let mut upload = bucket.clone();
        if let Some(sc) = &cfg.storage_class {
            upload.add_header("x-amz-storage-class", sc);
        }
        if let Some(sse) = &cfg.server_side_encryption {
            upload.add_header("x-amz-server-side-encryption", sse);
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(cfg.stall_timeout.min(Duration::from_secs(30)))
            .timeout_read(cfg.stall_timeout)
            .timeout_write(cfg.stall_timeout)
            .build();
        Ok(S3Store {
            bucket,
            upload,
            agent,
            signer: Signer::new(&cfg.access_key, &cfg.secret_key, &cfg.region),
            prefix: cfg.prefix.clone(),
            cfg: cfg.clone(),
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
        self.cfg
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
        self.cfg.keep_local
    }

    /// The key of `file` of database `db`.
    pub fn key(&self, db: &str, file: &str) -> String {
        if self.read_only {
            format!("{}{file}", self.prefix)
        } else {
            format!("{}{db}/{file}", self.prefix)
        }
    }

    fn endpoint(&self) -> String {
        self.cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS {}", self.cfg.region))
    }

    fn writable(&self) -> Result<(), S3Failure> {
        if self.read_only {
            return Err(S3Failure::ReadOnly {
                location: self.location(),
            });
        }
        Ok(())
    }

    fn classify(&self, action: &'static str, key: &str, e: S3Error) -> S3Failure {
        match e {
            S3Error::HttpFailWithBody(status, body) => {
                let mut body = body;
                // Some answers (to PUT and HEAD) carry no body; a listing says why.
                if error_code(&body).is_empty() && (status == 403 || status == 404 || status == 400)
                {
                    if let Err(S3Error::HttpFailWithBody(_, b)) =
                        self.bucket.list(self.prefix.clone(), Some("/".into()))
                    {
                        body = b;
                    }
                }
                let code = error_code(&body);
                // Garage answers a bad signature or unknown key with AccessDenied and says so.
                let message = xml_field(&body, "Message").to_ascii_lowercase();
                let bad_key = code == "AccessDenied"
                    && (message.contains("signature") || message.contains("no such key"));
                if bad_key {
                    return S3Failure::BadCredentials {
                        bucket: self.cfg.bucket.clone(),
                        code: format!("{code}: {}", xml_field(&body, "Message")),
                    };
                }
                match (status, code.as_str()) {
                    (_, "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "InvalidToken") => {
                        S3Failure::BadCredentials {
                            bucket: self.cfg.bucket.clone(),
                            code,
                        }
                    }
                    (_, "NoSuchBucket") => S3Failure::NoBucket {
                        bucket: self.cfg.bucket.clone(),
                        endpoint: self.endpoint(),
                    },
                    (
                        _,
                        "AuthorizationHeaderMalformed"
                        | "PermanentRedirect"
                        | "IllegalLocationConstraintException"
                        | "InvalidRegion",
                    )
                    | (301, _) => S3Failure::WrongRegion {
                        bucket: self.cfg.bucket.clone(),
                        region: self.cfg.region.clone(),
                        expected: [xml_field(&body, "Region"), xml_field(&body, "Message")]
                            .into_iter()
                            .find(|s| !s.is_empty())
                            .unwrap_or_else(|| code.clone()),
                    },
                    (403, _) => S3Failure::Denied {
                        action,
                        bucket: self.cfg.bucket.clone(),
                        key: key.to_string(),
                        code: if code.is_empty() { "403".into() } else { code },
                    },
                    _ => S3Failure::Other {
                        action,
                        bucket: self.cfg.bucket.clone(),
                        key: key.to_string(),
                        detail: format!("HTTP {status} {code}").trim().to_string(),
                    },
                }
            }
            S3Error::Io(e) if is_stall(&e) => S3Failure::Stalled {
                bucket: self.cfg.bucket.clone(),
                key: key.to_string(),
                secs: self.cfg.stall_timeout.as_secs(),
            },
            S3Error::Atto(e) => S3Failure::Unreachable {
                endpoint: self.endpoint(),
                detail: e.to_string(),
            },
            S3Error::Io(e) => S3Failure::Unreachable {
                endpoint: self.endpoint(),
                detail: e.to_string(),
            },
            other => S3Failure::Other {
                action,
                bucket: self.cfg.bucket.clone(),
                key: key.to_string(),
                detail: other.to_string(),
            },
        }
    }

    /// Upload a small object in one request.
    fn put_bytes(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<(), S3Failure> {
        self.writable()?;
        let r = with_retries(key, || {
            self.upload
                .put_object_with_content_type(key, bytes, content_type)
        })
        .map_err(|e| self.classify("s3:PutObject", key, e))?;
        if r.status_code() >= 300 {
            return Err(self.classify(
                "s3:PutObject",
                key,
                S3Error::HttpFailWithBody(
                    r.status_code(),
                    r.as_str().unwrap_or_default().to_string(),
                ),
            ));
        }
        Ok(())
    }

    /// Start a multipart upload whose parts go through a pool of upload threads.
    fn start_multipart(&self, key: &str, content_type: &str) -> Result<Multipart, S3Failure> {
        self.writable()?;
        let init = with_retries(key, || {
            self.upload.initiate_multipart_upload(key, content_type)
        })
        .map_err(|e| self.classify("s3:PutObject (CreateMultipartUpload)", key, e))?;
        let shared = Arc::new(Shared {
            store: self.clone(),
            key: key.to_string(),
            upload_id: init.upload_id,
            parts: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            cancelled: AtomicBool::new(false),
        });
        let (tx, rx) = sync_channel::<PartJob>(0);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..PARTS_IN_FLIGHT)
            .map(|_| {
                let rx = Arc::clone(&rx);
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(mut job) = job else { return };
                    if shared.cancelled.load(Ordering::Relaxed) || shared.failed() {
                        continue;
                    }
                    match shared
                        .store
                        .put_part(&shared.key, &shared.upload_id, &mut job)
                    {
                        Ok(p) => shared.parts.lock().expect("not poisoned").push(p),
                        Err(e) => {
                            let mut f = shared.failure.lock().expect("not poisoned");
                            f.get_or_insert(e);
                        }
                    }
                })
            })
            .collect();
        Ok(Multipart {
            shared,
            tx: Some(tx),
            workers,
            next_part: 1,
            done: false,
        })
    }

    /// Whether `key` exists as a multipart object of `parts` parts (the `-N` ETag suffix).
    fn completed_with(&self, key: &str, parts: usize) -> bool {
        matches!(
            self.bucket.head_object(key),
            Ok((head, 200)) if head
                .e_tag
                .as_deref()
                .is_some_and(|t| t.trim_matches('"').ends_with(&format!("-{parts}")))
        )
    }

    /// Upload one part from `job.file`, retrying transient failures; each attempt re-reads
    /// the part from the file.
    fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        job: &mut PartJob,
    ) -> Result<s3::serde_types::Part, S3Failure> {
        let number = job.number;
        with_retries(&format!("part {number} of {key}"), || {
            job.file.seek(SeekFrom::Start(job.offset))?;
            let body = (&job.file).take(job.len);
            let part = number.to_string();
            let resp = self
                .data_request(
                    "PUT",
                    key,
                    &[("partNumber", &part), ("uploadId", upload_id)],
                    UNSIGNED_PAYLOAD,
                )
                .set("Content-Length", &job.len.to_string())
                .set("Content-Type", "application/octet-stream")
                .send(body)
                .map_err(from_ureq)?;
            let etag = resp.header("ETag").unwrap_or_default().to_string();
            if etag.is_empty() {
                return Err(S3Error::HttpFailWithBody(500, "<Code>NoETag</Code>".into()));
            }
            Ok(s3::serde_types::Part {
                etag,
                part_number: number,
            })
        })
        .map_err(|e| self.classify("s3:PutObject (UploadPart)", key, e))
    }

    /// Upload a committed local file as `file` of `db`, in parts read straight from the file
    /// (no copy, no spool), up to [`PARTS_IN_FLIGHT`] at once.
    pub fn upload_file(&self, path: &Path, db: &str, file: &str) -> Result<u64, S3Failure> {
        let read_err = |source| S3Failure::Read {
            path: path.display().to_string(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        let key = self.key(db, file);
        let mut mp = self.start_multipart(&key, "application/gzip")?;
        let mut offset = 0;
        loop {
            let len = part_len(self.cfg.part_size as u64, mp.next_part).min(size - offset);
            mp.send(File::open(path).map_err(read_err)?, offset, len)?;
            offset += len;
            if offset >= size {
                break;
            }
        }
        mp.complete()?;
        Ok(size)
    }

    /// A data-transfer request for `key`, signed in headers (see [`crate::sigv4`]).
    fn data_request(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        payload_hash: &str,
    ) -> ureq::Request {
        let signed = self.signer.sign(
            method,
            &self.bucket.url(),
            key,
            query,
            payload_hash,
            chrono::Utc::now(),
        );
        let mut req = self.agent.request(method, &signed.url);
        for (k, v) in &signed.headers {
            req = req.set(k, v);
        }
        req
    }

    /// Stream an object into `out`, showing progress on a terminal. A transfer that breaks
    /// off is retried like any request, and resumes where it stopped (HTTP Range).
    fn download(&self, key: &str, out: &mut dyn Write) -> Result<u64, S3Failure> {
        let progress = Progress::new(key.rsplit('/').next().unwrap_or(key));
        let mut done: u64 = 0;
        let mut total: Option<u64> = None;
        let result = with_retries(&format!("download of {key}"), || {
            self.download_from(key, &mut done, &mut total, out, &progress)
        });
        progress.finish(matches!(result, Ok(Ok(()))), done);
        match result {
            Ok(Ok(())) => Ok(done),
            Ok(Err(source)) => Err(S3Failure::LocalWrite {
                key: key.to_string(),
                source,
            }),
            Err(e) => Err(self.classify("s3:GetObject", key, e)),
        }
    }

    /// One attempt of a download, from byte `done` on. The outer error is the transfer's
    /// (retried when transient); the inner one is writing `out` (never retried).
    fn download_from(
        &self,
        key: &str,
        done: &mut u64,
        total: &mut Option<u64>,
        out: &mut dyn Write,
        progress: &Progress,
    ) -> Result<io::Result<()>, S3Error> {
        let from = *done;
        let mut req = self.data_request("GET", key, &[], EMPTY_SHA256);
        if from > 0 {
            req = req.set("Range", &format!("bytes={from}-"));
        }
        let resp = req.call().map_err(from_ureq)?;
        if from > 0 && resp.status() != 206 {
            return Err(S3Error::HttpFailWithBody(
                500,
                "<Code>RangeIgnored</Code>".into(),
            ));
        }
        if total.is_none() {
            *total = resp
                .header("Content-Length")
                .and_then(|v| v.parse::<u64>().ok());
        }
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(S3Error::Io(e)),
            };
            if let Err(e) = out.write_all(&buf[..n]) {
                return Ok(Err(e));
            }
            *done += n as u64;
            progress.update(*done, *total);
        }
        match *total {
            Some(t) if *done < t => Err(S3Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed after {} of {t} bytes", *done),
            ))),
            _ => Ok(Ok(())),
        }
    }

    /// Objects directly under `prefix` (no delimiter: everything below it).
    fn list_prefix(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Vec<s3::serde_types::ListBucketResult>, S3Failure> {
        self.bucket
            .list(prefix.to_string(), delimiter.map(str::to_string))
            .map_err(|e| self.classify("s3:ListBucket", prefix, e))
    }

    /// Our incomplete multipart uploads under `<prefix><db>/`: keys of our naming scheme only.
    fn our_uploads(&self, db: &str) -> Result<Vec<s3::serde_types::MultipartUpload>, S3Failure> {
        let prefix = format!("{}{db}/", self.prefix);
        let pages = self
            .bucket
            .list_multiparts_uploads(Some(&prefix), None)
            .map_err(|e| self.classify("s3:ListBucketMultipartUploads", &prefix, e))?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.uploads)
            .filter(|u| {
                u.key
                    .strip_prefix(&prefix)
                    .filter(|f| !f.contains('/'))
                    .and_then(crate::catalog::BackupName::parse)
                    .is_some_and(|n| n.database == db)
            })
            .collect())
    }
}

/// A progress line on stderr when it is a terminal, redrawn a few times a second.
#[derive(Debug)]
struct Progress {
    name: String,
    tty: bool,
    started: Instant,
    last: Mutex<Instant>,
}

impl Progress {
    fn new(name: &str) -> Self {
        let now = Instant::now();
        Progress {
            name: name.to_string(),
            tty: io::stderr().is_terminal(),
            started: now,
            // `last == started` until a progress line has been drawn.
            last: Mutex::new(now),
        }
    }

    fn update(&self, done: u64, total: Option<u64>) {
        if !self.tty {
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.elapsed() < Duration::from_millis(250) {
            return;
        }
        *last = Instant::now();
        self.draw(done, total);
    }

    fn draw(&self, done: u64, total: Option<u64>) {
        use crate::commands::human_bytes;
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let of = match total {
            Some(t) if t > 0 => format!(
                " of {} ({:.0}%)",
                human_bytes(t),
                done as f64 * 100.0 / t as f64
            ),
            _ => String::new(),
        };
        let _ = write!(
            io::stderr(),
            "\r\x1b[Kdownloading {}: {}{of}, {}/s",
            self.name,
            human_bytes(done),
            human_bytes(rate as u64)
        );
    }

    /// The final line; small objects (sidecar, manifest) that went by without a progress line
    /// get none.
    fn finish(&self, ok: bool, done: u64) {
        let drawn = self.last.lock().map(|l| *l > self.started).unwrap_or(true);
        if self.tty && (drawn || done >= 1 << 20) {
            if ok {
                self.draw(done, Some(done));
                let _ = writeln!(io::stderr());
            } else {
                let _ = write!(io::stderr(), "\r\x1b[K");
            }
        }
    }
}

/// One part to upload: `len` bytes of `file` from `offset`.
#[derive(Debug)]
struct PartJob {
    number: u32,
    file: File,
    offset: u64,
    len: u64,
}

/// What the upload threads of one multipart upload share.
#[derive(Debug)]
struct Shared {
    store: S3Store,
    key: String,
    upload_id: String,
    parts: Mutex<Vec<s3::serde_types::Part>>,
    failure: Mutex<Option<S3Failure>>,
    cancelled: AtomicBool,
}

impl Shared {
    fn failed(&self) -> bool {
        self.failure.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    fn take_failure(&self) -> Option<S3Failure> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }
}

/// A multipart upload in progress. Dropped before `complete`, it is aborted.
#[derive(Debug)]
struct Multipart {
    shared: Arc<Shared>,
    tx: Option<SyncSender<PartJob>>,
    workers: Vec<JoinHandle<()>>,
    next_part: u32,
    done: bool,
}

impl Multipart {
    /// Hand a part to the upload threads; blocks while [`PARTS_IN_FLIGHT`] are uploading.
    fn send(&mut self, file: File, offset: u64, len: u64) -> Result<(), S3Failure> {
        if let Some(e) = self.shared.take_failure() {
            return Err(e);
        }
        if self.next_part > MAX_PARTS {
            return Err(S3Failure::TooLarge {
                key: self.shared.key.clone(),
            });
        }
        let job = PartJob {
            number: self.next_part,
            file,
            offset,
            len,
        };
        self.next_part += 1;
        if let Some(tx) = &self.tx {
            if tx.send(job).is_err() {
                return Err(self.shared.take_failure().unwrap_or(S3Failure::Other {
                    action: "s3:PutObject (UploadPart)",
                    bucket: self.shared.store.cfg.bucket.clone(),
                    key: self.shared.key.clone(),
                    detail: "the upload threads stopped".into(),
                }));
            }
        }
        Ok(())
    }

    fn join(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    /// Wait for every part, then complete the upload (or abort it on any failure).
    fn complete(mut self) -> Result<(), S3Failure> {
        self.join();
        if let Some(e) = self.shared.take_failure() {
            return Err(e);
        }
        let store = &self.shared.store;
        let key = &self.shared.key;
        let mut parts = std::mem::take(&mut *self.shared.parts.lock().expect("not poisoned"));
        parts.sort_by_key(|p| p.part_number);
        if parts.len() as u32 + 1 != self.next_part {
            return Err(S3Failure::Other {
                action: "s3:PutObject (CompleteMultipartUpload)",
                bucket: store.cfg.bucket.clone(),
                key: key.clone(),
                detail: format!(
                    "{} of {} parts were uploaded",
                    parts.len(),
                    self.next_part - 1
                ),
            });
        }
        let action = "s3:PutObject (CompleteMultipartUpload)";
        let count = parts.len();
        let result = with_retries(key, || {
            store
                .bucket
                .complete_multipart_upload(key, &self.shared.upload_id, parts.clone())
        })
        .and_then(|r| {
            // S3 may answer 200 with an error document.
            let body = r.as_str().unwrap_or_default().to_string();
            if r.status_code() >= 300 || body.contains("<Error>") {
                Err(S3Error::HttpFailWithBody(r.status_code().max(500), body))
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {}
            // A completion whose answer was lost, and whose retry then found no such upload
            // (AWS, Garage), has still made the object: its ETag says how many parts.
            Err(_) if store.completed_with(key, count) => {
                crate::log::debug(&format!("{key}: completed by an earlier attempt"));
            }
            Err(e) => return Err(store.classify(action, key, e)),
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Multipart {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.shared.cancelled.store(true, Ordering::Relaxed);
        self.join();
        let _ = self
            .shared
            .store
            .bucket
            .abort_upload(&self.shared.key, &self.shared.upload_id);
    }
}

/// A data object streamed into S3: bytes are spooled into a part-size temp file (unlinked, in
/// the backup root), and each full part goes to the upload threads. Memory holds no part;
/// disk holds at most `PARTS_IN_FLIGHT + 1` parts.
#[derive(Debug)]
struct S3Writer {
    mp: Multipart,
    spool_dir: std::path::PathBuf,
    spool: Option<File>,
    spool_len: u64,
    base: u64,
    total: u64,
}

impl S3Writer {
    fn part_limit(&self) -> u64 {
        part_len(self.base, self.mp.next_part)
    }

    fn ship(&mut self) -> io::Result<()> {
        if let Some(f) = self.spool.take() {
            let len = self.spool_len;
            self.spool_len = 0;
            // The failure travels inside the io::Error and is unpacked by the caller.
            self.mp.send(f, 0, len).map_err(io::Error::other)?;
        }
        Ok(())
    }
}

impl Write for S3Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.spool.is_none() {
            self.spool = Some(tempfile::tempfile_in(&self.spool_dir)?);
        }
        let room = (self.part_limit() - self.spool_len) as usize;
        let n = buf.len().min(room);
        let spool = self.spool.as_mut().expect("created above");
        let n = spool.write(&buf[..n])?;
        self.spool_len += n as u64;
        self.total += n as u64;
        if self.spool_len >= self.part_limit() {
            self.ship()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn commit(mut self: Box<Self>) -> crate::error::Result<u64> {
        if self.total == 0 {
            // Some servers (Garage) refuse an empty part: an empty object is one plain PUT, and
            // the multipart upload is aborted when `mp` is dropped.
            let store = self.mp.shared.store.clone();
            let key = self.mp.shared.key.clone();
            drop(self);
            store.put_bytes(&key, b"", "application/gzip")?;
            return Ok(0);
        }
        // The last part.
        if self.spool.is_some() {
            let f = self.spool.take().expect("checked above");
            let len = self.spool_len;
            self.mp.send(f, 0, len)?;
        }
        let total = self.total;
        let S3Writer { mp, .. } = *self;
        mp.complete()?;
        Ok(total)
    }
}

impl Storage for S3Store {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.cfg.bucket, self.prefix)
    }

    fn describe(&self, db: &str, file: &str) -> String {
        format!("s3://{}/{}", self.cfg.bucket, self.key(db, file))
    }

    fn databases(&self) -> crate::error::Result<Vec<String>> {
        if self.read_only {
            let mut dbs: Vec<String> = self
                .files("")?
                .iter()
                .filter_map(|f| crate::catalog::BackupName::parse(&f.name))
                .map(|n| n.database)
                .filter(|d| crate::catalog::is_valid_dir_name(d))
                .collect();
            dbs.sort();
            dbs.dedup();
            return Ok(dbs);
        }
        let pages = self.list_prefix(&self.prefix, Some("/"))?;
        let mut out: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.common_prefixes.unwrap_or_default())
            .filter_map(|c| {
                c.prefix
                    .strip_prefix(&self.prefix)
                    .map(|s| s.trim_end_matches('/').to_string())
            })
            .filter(|d| crate::catalog::is_valid_dir_name(d))
            .collect();
        out.sort();
        Ok(out)
    }

    fn files(&self, db: &str) -> crate::error::Result<Vec<StoredFile>> {
        let dir = self.key(db, "");
        let pages = self.list_prefix(&dir, Some("/"))?;
        let mut out: Vec<StoredFile> = pages
            .into_iter()
            .flat_map(|p| p.contents)
            .filter_map(|o| {
                let name = o.key.strip_prefix(&dir)?;
                (!name.is_empty() && !name.contains('/')).then(|| StoredFile {
                    name: name.to_string(),
                    size: o.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Streamed into a multipart upload; parts are spooled in the spool directory.
    fn create(&self, db: &str, file: &str) -> crate::error::Result<Box<dyn ObjectWriter>> {
        let mp = self.start_multipart(&self.key(db, file), "application/gzip")?;
        Ok(Box::new(S3Writer {
            mp,
            spool_dir: self.spool_dir.clone(),
            spool: None,
            spool_len: 0,
            base: self.cfg.part_size as u64,
            total: 0,
        }))
    }

    fn put(&self, db: &str, file: &str, bytes: &[u8]) -> crate::error::Result<()> {
        let ct = if file.ends_with(".json") {
            "application/json"
        } else if file.ends_with(".gz") {
            "application/gzip"
        } else {
            "text/plain"
        };
        Ok(self.put_bytes(&self.key(db, file), bytes, ct)?)
    }

    fn fetch(&self, db: &str, file: &str, out: &mut dyn Write) -> crate::error::Result<u64> {
        Ok(self.download(&self.key(db, file), out)?)
    }

    fn delete(&self, db: &str, file: &str) -> crate::error::Result<()> {
        self.writable()?;
        let key = self.key(db, file);
        with_retries(&key, || self.bucket.delete_object(&key))
            .map(|_| ())
            .map_err(|e| self.classify("s3:DeleteObject", &key, e).into())
    }

    /// Abort our multipart uploads in `db` that were started more than
    /// `abort-incomplete-after-hours` ago (a killed run leaves them; they cost storage).
    fn clean_incomplete(&self, db: &str) -> crate::error::Result<Vec<String>> {
        self.writable()?;
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(self.cfg.abort_incomplete_after)
                .unwrap_or(chrono::Duration::zero());
        let mut removed = Vec::new();
        for u in self.our_uploads(db)? {
            let started = chrono::DateTime::parse_from_rfc3339(&u.initiated)
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok();
            if started.is_some_and(|t| t <= cutoff) {
                with_retries(&u.key, || self.bucket.abort_upload(&u.key, &u.id))
                    .map_err(|e| self.classify("s3:AbortMultipartUpload", &u.key, e))?;
                removed.push(format!("incomplete upload of {} ({})", u.key, u.initiated));
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_fit_a_terabyte_into_ten_thousand() {
        for base_mib in [5u64, 8, 16, 64] {
            let base = base_mib << 20;
            let total: u64 = (1..=MAX_PARTS).map(|n| part_len(base, n)).sum();
            assert!(total >= 1_000_000_000_000, "base {base_mib} MiB: {total}");
            assert_eq!(part_len(base, 1), base);
            assert_eq!(part_len(base, 1000), base);
            assert_eq!(part_len(base, 1001), base * 2);
            assert!((1..=MAX_PARTS).all(|n| part_len(base, n) <= MAX_PART));
        }
        // Small dumps stay in small parts: 10 GB at 16 MiB is 597 parts of the base size.
        assert_eq!(part_len(16 << 20, 597), 16 << 20);
    }

    fn offline_store(region: &str) -> S3Store {
        S3Store::new(&S3Config {
            bucket: "b".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: region.into(),
            prefix: "backups/".into(),
            access_key: Secret::new("AK"),
            secret_key: Secret::new("SK"),
            path_style: true,
            storage_class: None,
            server_side_encryption: None,
            part_size: 5 << 20,
            keep_local: true,
            list_prefixes: Vec::new(),
            stall_timeout: Duration::from_secs(5),
            abort_incomplete_after: Duration::from_secs(3600),
        })
        .unwrap()
    }

    /// Error documents as AWS and Garage send them, mapped to what the operator must fix.
    #[test]
    fn errors_are_classified_in_words() {
        let s = offline_store("us-east-1");
        let http = |status, body: &str| S3Error::HttpFailWithBody(status, body.to_string());
        let wrong_region = s.classify("s3:PutObject", "k", http(400, "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>"));
        assert!(
            matches!(&wrong_region, S3Failure::WrongRegion { expected, .. } if expected == "eu-west-1"),
            "{wrong_region:?}"
        );
        assert!(wrong_region.to_string().contains("fix [storage.s3] region"));
        assert_eq!(wrong_region.exit_code(), EXIT_UNAVAILABLE);
        let garage_sig = s.classify("s3:PutObject", "k", http(403, "<Error><Code>AccessDenied</Code><Message>Forbidden: Invalid signature</Message></Error>"));
        assert!(
            matches!(garage_sig, S3Failure::BadCredentials { .. }),
            "{garage_sig:?}"
        );
        let denied = s.classify(
            "s3:DeleteObject",
            "k",
            http(
                403,
                "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
            ),
        );
        assert!(
            denied.to_string().contains("denied s3:DeleteObject"),
            "{denied}"
        );
        let stalled = s.classify(
            "s3:GetObject",
            "k",
            S3Error::Io(io::Error::new(io::ErrorKind::WouldBlock, "x")),
        );
        assert!(
            stalled.to_string().contains("no progress for 5 s"),
            "{stalled}"
        );
    }

    #[test]
    fn error_text_never_carries_a_url() {
        let e = S3Error::HttpFailWithBody(403, "<Error><Code>AccessDenied</Code></Error>".into());
        assert_eq!(short(&e), "HTTP 403 AccessDenied");
        let e = S3Error::Io(io::Error::new(io::ErrorKind::WouldBlock, "x"));
        assert_eq!(short(&e), "no progress within the stall timeout");
    }
}
