//! S3-compatible storage (AWS, Wasabi, MinIO, Garage, ...): uploads after a local backup is
//! committed, and listing.
//!
//! The data object goes first, as a multipart upload in parts of `part-size-mib` read one at a
//! time from the local file (memory is bounded by one part), aborted on any failure so that no
//! partial object remains; then the `.sha256` sidecar, then the manifest. A reader that applies
//! the reader rule (data AND sidecar) therefore never sees an incomplete backup.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

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
    /// Multipart part size in bytes.
    pub part_size: usize,
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
            S3Failure::Other { .. } | S3Failure::Read { .. } => EXIT_FAILED,
            _ => EXIT_UNAVAILABLE,
        }
    }
}

/// One object found under our prefix.
#[derive(Debug, Clone)]
pub struct S3Object {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A configured bucket.
#[derive(Debug)]
pub struct S3Store {
    bucket: Box<Bucket>,
    upload: Box<Bucket>,
    cfg: S3Config,
}

/// Attempts per multipart part before the upload is given up (and aborted).
const PART_ATTEMPTS: u32 = 5;

/// Run an S3 request, retrying transient failures (5xx, 429, timeouts, resets) with backoff
/// (0.5, 1, 2, 4 s). rust-s3's own retry is switched off (it would also retry a 403).
fn with_retries<T>(what: &str, mut f: impl FnMut() -> Result<T, S3Error>) -> Result<T, S3Error> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match f() {
            Err(e) if attempt < PART_ATTEMPTS && is_transient(&e) => {
                crate::log::warn(&format!(
                    "S3 request for {what} failed ({e}); retrying in {:.1} s",
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

/// Worth another try: server errors, throttling, and transport failures.
fn is_transient(e: &S3Error) -> bool {
    match e {
        S3Error::HttpFailWithBody(status, _) => *status >= 500 || *status == 429,
        S3Error::Atto(_) | S3Error::Io(_) => true,
        _ => false,
    }
}

fn error_code(body: &str) -> String {
    body.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_string()
}

impl S3Store {
    /// Connect nothing yet; just build the client.
    pub fn new(cfg: &S3Config) -> Result<S3Store, S3Failure> {
        let region = match &cfg.endpoint {
            Some(e) => Region::Custom {
                region: cfg.region.clone(),
                endpoint: e.trim_end_matches('/').to_string(),
            },
            None => cfg
                .region
                .parse()
                .map_err(|e: std::str::Utf8Error| S3Failure::Other {
                    action: "configuration",
                    bucket: cfg.bucket.clone(),
                    key: String::new(),
                    detail: format!("region {}: {e}", cfg.region),
                })?,
        };
        let creds = Credentials::new(
            Some(cfg.access_key.expose()),
            Some(cfg.secret_key.expose()),
            None,
            None,
            None,
        )
        .map_err(|e| S3Failure::Other {
            action: "configuration",
            bucket: cfg.bucket.clone(),
            key: String::new(),
            detail: e.to_string(),
        })?;
        let other = |e: S3Error| S3Failure::Other {
            action: "configuration",
            bucket: cfg.bucket.clone(),
            key: String::new(),
            detail: e.to_string(),
        };
        // Retries are ours, for transient failures only (see `with_retries`).
        s3::set_retries(0);
        let mut bucket = Bucket::new(&cfg.bucket, region, creds).map_err(other)?;
        if cfg.path_style {
            bucket = bucket.with_path_style();
        }
        // The blocking client's timeout covers a whole request, body included: long enough for
        // one part on a slow link, short enough that a dead endpoint fails the run.
        bucket.set_request_timeout(Some(Duration::from_secs(600)));
        let mut upload = bucket.clone();
        if let Some(sc) = &cfg.storage_class {
            upload.add_header("x-amz-storage-class", sc);
        }
        if let Some(sse) = &cfg.server_side_encryption {
            upload.add_header("x-amz-server-side-encryption", sse);
        }
        Ok(S3Store {
            bucket,
            upload,
            cfg: cfg.clone(),
        })
    }

    /// `s3://bucket/prefix` for messages.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.cfg.bucket, self.cfg.prefix)
    }

    /// The key of `file` of database `db`.
    pub fn key(&self, db: &str, file: &str) -> String {
        format!("{}{db}/{file}", self.cfg.prefix)
    }

    fn endpoint(&self) -> String {
        self.cfg
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS {}", self.cfg.region))
    }

    fn classify(&self, action: &'static str, key: &str, e: S3Error) -> S3Failure {
        match e {
            S3Error::HttpFailWithBody(status, body) => {
                let mut code = error_code(&body);
                // Some answers (to PUT and HEAD) carry no body; a listing says why.
                if code.is_empty() && (status == 403 || status == 404) {
                    if let Err(S3Error::HttpFailWithBody(_, b)) =
                        self.bucket.list(self.cfg.prefix.clone(), Some("/".into()))
                    {
                        code = error_code(&b);
                    }
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
                        detail: format!("HTTP {status} {code}"),
                    },
                }
            }
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
    pub fn put_bytes(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<(), S3Failure> {
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

    /// Upload a file: one request up to one part's size, multipart beyond it. Memory holds one
    /// part; a failed multipart upload is aborted so that no partial object remains.
    pub fn upload_file(
        &self,
        path: &Path,
        key: &str,
        content_type: &str,
    ) -> Result<u64, S3Failure> {
        let read_err = |source| S3Failure::Read {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        let part = self.cfg.part_size;
        if size <= part as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).map_err(read_err)?;
            self.put_bytes(key, &buf, content_type)?;
            return Ok(size);
        }
        let init = self
            .upload
            .initiate_multipart_upload(key, content_type)
            .map_err(|e| self.classify("s3:PutObject (CreateMultipartUpload)", key, e))?;
        let upload_id = init.upload_id;
        let abort = |store: &S3Store| {
            let _ = store.bucket.abort_upload(key, &upload_id);
        };
        let mut parts = Vec::new();
        let mut buf = vec![0u8; part];
        let mut number = 1u32;
        loop {
            let mut filled = 0;
            while filled < part {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        abort(self);
                        return Err(read_err(e));
                    }
                }
            }
            if filled == 0 {
                break;
            }
            match self.put_part(&buf[..filled], key, number, &upload_id, content_type) {
                Ok(p) => parts.push(p),
                Err(e) => {
                    abort(self);
                    return Err(self.classify("s3:PutObject (UploadPart)", key, e));
                }
            }
            number += 1;
            if filled < part {
                break;
            }
        }
        match self
            .bucket
            .complete_multipart_upload(key, &upload_id, parts)
        {
            Ok(r) if r.status_code() < 300 => Ok(size),
            Ok(r) => {
                abort(self);
                Err(self.classify(
                    "s3:PutObject (CompleteMultipartUpload)",
                    key,
                    S3Error::HttpFailWithBody(
                        r.status_code(),
                        r.as_str().unwrap_or_default().to_string(),
                    ),
                ))
            }
            Err(e) => {
                abort(self);
                Err(self.classify("s3:PutObject (CompleteMultipartUpload)", key, e))
            }
        }
    }

    /// Delete one object (a missing one is not an error: S3 deletes are idempotent).
    pub fn delete(&self, key: &str) -> Result<(), S3Failure> {
        self.bucket
            .delete_object(key)
            .map(|_| ())
            .map_err(|e| self.classify("s3:DeleteObject", key, e))
    }

    /// Download an object into `dest` (streamed; memory stays bounded).
    pub fn download(&self, key: &str, dest: &Path) -> Result<u64, S3Failure> {
        let write_err = |source| S3Failure::Read {
            path: dest.display().to_string(),
            source,
        };
        let mut file = std::fs::File::create(dest).map_err(write_err)?;
        // A download may take long: no whole-request time limit here.
        let mut bucket = self.bucket.clone();
        bucket.set_request_timeout(None);
        let status = bucket
            .get_object_to_writer(key, &mut file)
            .map_err(|e| self.classify("s3:GetObject", key, e))?;
        if status >= 300 {
            let body = std::fs::read_to_string(dest).unwrap_or_default();
            let _ = std::fs::remove_file(dest);
            return Err(self.classify(
                "s3:GetObject",
                key,
                S3Error::HttpFailWithBody(status, body),
            ));
        }
        file.sync_all().map_err(write_err)?;
        file.metadata().map(|m| m.len()).map_err(write_err)
    }

    /// The newest complete backup (data and sidecar) of `db` in the bucket.
    pub fn latest(&self, db: &str) -> Result<Option<crate::catalog::BackupName>, S3Failure> {
        let objects = self.list(db)?;
        let files: std::collections::HashSet<&str> = objects
            .iter()
            .filter_map(|o| o.key.rsplit('/').next())
            .collect();
        Ok(files
            .iter()
            .filter_map(|f| crate::catalog::BackupName::parse(f))
            .filter(|n| n.database == db && files.contains(n.sidecar_name().as_str()))
            .max_by_key(|n| n.timestamp))
    }

    /// Upload one part, retrying transient failures.
    fn put_part(
        &self,
        data: &[u8],
        key: &str,
        number: u32,
        upload_id: &str,
        content_type: &str,
    ) -> Result<s3::serde_types::Part, S3Error> {
        with_retries(&format!("part {number} of {key}"), || {
            self.upload
                .put_multipart_chunk(data, key, number, upload_id, content_type)
        })
    }

    /// Objects under `<prefix><db>/`.
    pub fn list(&self, db: &str) -> Result<Vec<S3Object>, S3Failure> {
        let prefix = format!("{}{db}/", self.cfg.prefix);
        let pages = self
            .bucket
            .list(prefix.clone(), None)
            .map_err(|e| self.classify("s3:ListBucket", &prefix, e))?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.contents)
            .map(|o| S3Object {
                key: o.key,
                size: o.size,
            })
            .collect())
    }

    /// The database directories under the prefix.
    pub fn list_databases(&self) -> Result<Vec<String>, S3Failure> {
        let pages = self
            .bucket
            .list(self.cfg.prefix.clone(), Some("/".into()))
            .map_err(|e| self.classify("s3:ListBucket", &self.cfg.prefix, e))?;
        let mut out: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.common_prefixes.unwrap_or_default())
            .filter_map(|c| {
                c.prefix
                    .strip_prefix(&self.cfg.prefix)
                    .map(|s| s.trim_end_matches('/').to_string())
            })
            .filter(|d| crate::catalog::is_valid_dir_name(d))
            .collect();
        out.sort();
        Ok(out)
    }
}
