//! Multipart uploads: parts of one size chosen before the upload starts, up to
//! [`PARTS_IN_FLIGHT`] uploading at once, each retried on its own, the whole aborted on any
//! failure so that no partial object remains.
//!
//! Part size: Cloudflare R2 rejects an upload whose non-final parts differ in size, and S3 allows
//! at most 10,000 parts, so the size is fixed before the first part and never changes. It is the
//! larger of `part-size-mib` and the expected size / 10,000 (rounded up to a MiB), where the
//! expected size is the file's size for an upload of a finished file, and for a streamed dump
//! four times the previous backup's compressed size (or the database's size on disk when there
//! is no previous backup). See [`part_size`].

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{S3Failure, S3Store};

/// Parts uploading at once: enough to keep a link busy while the next part is compressed, few
/// enough that disk spool (one part-size file each, plus the one being filled) stays small.
pub const PARTS_IN_FLIGHT: usize = 4;

/// S3's limit on parts per multipart upload.
pub const MAX_PARTS: u32 = 10_000;

/// The smallest part S3 accepts (but for the last).
pub const MIN_PART: u64 = 5 << 20;

/// The largest part S3 accepts.
pub const MAX_PART: u64 = 5 << 30;

/// The one part size of an upload: at least `base`, large enough for `expected` bytes in
/// [`MAX_PARTS`] parts, a whole number of MiB, within S3's limits.
pub fn part_size(base: u64, expected: Option<u64>) -> u64 {
    const MIB: u64 = 1 << 20;
    let need = expected.map_or(0, |e| e.div_ceil(u64::from(MAX_PARTS)));
    base.max(need.div_ceil(MIB) * MIB).clamp(MIN_PART, MAX_PART)
}

/// One part to upload: `len` bytes of `file` from `offset`.
#[derive(Debug)]
pub(super) struct PartJob {
    pub number: u32,
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

/// What the upload threads of one multipart upload share.
#[derive(Debug)]
struct Shared {
    store: S3Store,
    key: String,
    upload_id: String,
    parts: Mutex<Vec<(u32, String)>>,
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
pub(super) struct Multipart {
    shared: Arc<Shared>,
    tx: Option<SyncSender<PartJob>>,
    workers: Vec<JoinHandle<()>>,
    pub next_part: u32,
    /// The fixed size of every part but the last.
    pub part_size: u64,
    done: bool,
}

impl Multipart {
    /// Start the upload and its upload threads.
    pub fn start(store: &S3Store, key: &str, upload_id: String, part_size: u64) -> Multipart {
        let shared = Arc::new(Shared {
            store: store.clone(),
            key: key.to_string(),
            upload_id,
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
                    let Ok(job) = job else { return };
                    if shared.cancelled.load(Ordering::Relaxed) || shared.failed() {
                        continue;
                    }
                    match shared
                        .store
                        .upload_part(&shared.key, &shared.upload_id, &job)
                    {
                        Ok(etag) => {
                            if let Ok(mut p) = shared.parts.lock() {
                                p.push((job.number, etag));
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = shared.failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                })
            })
            .collect();
        Multipart {
            shared,
            tx: Some(tx),
            workers,
            next_part: 1,
            part_size,
            done: false,
        }
    }

    /// Hand a part to the upload threads; blocks while [`PARTS_IN_FLIGHT`] are uploading.
    pub fn send(&mut self, file: File, offset: u64, len: u64) -> Result<(), S3Failure> {
        if let Some(e) = self.shared.take_failure() {
            return Err(e);
        }
        if self.next_part > MAX_PARTS {
            return Err(S3Failure::TooLarge {
                key: self.shared.key.clone(),
                part_mib: self.part_size >> 20,
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
                return Err(self.shared.take_failure().unwrap_or_else(|| {
                    self.shared.store.other(
                        "s3:PutObject (UploadPart)",
                        &self.shared.key,
                        "the upload threads stopped".into(),
                    )
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
    pub fn complete(mut self) -> Result<(), S3Failure> {
        self.join();
        if let Some(e) = self.shared.take_failure() {
            return Err(e);
        }
        let mut parts = match self.shared.parts.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => Vec::new(),
        };
        parts.sort_by_key(|p| p.0);
        if parts.len() as u32 + 1 != self.next_part {
            return Err(self.shared.store.other(
                "s3:PutObject (CompleteMultipartUpload)",
                &self.shared.key,
                format!(
                    "{} of {} parts were uploaded",
                    parts.len(),
                    self.next_part - 1
                ),
            ));
        }
        self.shared
            .store
            .complete_multipart(&self.shared.key, &self.shared.upload_id, &parts)?;
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
        self.shared
            .store
            .abort_multipart(&self.shared.key, &self.shared.upload_id);
    }
}

/// A data object streamed into S3: bytes are spooled into a part-size temp file (unlinked, in
/// the backup root), and each full part goes to the upload threads. Memory holds no part;
/// disk holds at most `PARTS_IN_FLIGHT + 1` parts.
#[derive(Debug)]
pub(crate) struct S3Writer {
    pub(super) mp: Multipart,
    pub(super) spool_dir: std::path::PathBuf,
    pub(super) spool: Option<File>,
    pub(super) spool_len: u64,
    pub(super) total: u64,
}

impl S3Writer {
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
        let spool = match &mut self.spool {
            Some(f) => f,
            None => self.spool.insert(tempfile::tempfile_in(&self.spool_dir)?),
        };
        let room = (self.mp.part_size - self.spool_len) as usize;
        let n = spool.write(&buf[..buf.len().min(room)])?;
        self.spool_len += n as u64;
        self.total += n as u64;
        if self.spool_len >= self.mp.part_size {
            self.ship()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl S3Writer {
    /// Complete the upload (the object becomes visible); returns its size.
    pub(crate) fn finish(mut self: Box<Self>) -> Result<u64, S3Failure> {
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
        if let Some(f) = self.spool.take() {
            let len = self.spool_len;
            self.mp.send(f, 0, len)?;
        }
        let total = self.total;
        let S3Writer { mp, .. } = *self;
        mp.complete()?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_part_size_holds_the_expected_size_in_ten_thousand_parts() {
        const MIB: u64 = 1 << 20;
        // Small or unknown: the configured size.
        assert_eq!(part_size(16 * MIB, None), 16 * MIB);
        assert_eq!(part_size(16 * MIB, Some(10 << 30)), 16 * MIB);
        // Never below S3's minimum.
        assert_eq!(part_size(1, None), MIN_PART);
        // Large: expected / 10,000 rounded up to a MiB, and it always suffices.
        for expected in [200u64 << 30, 1 << 40, 3_333_333_333_333, 40 << 40] {
            let p = part_size(16 * MIB, Some(expected));
            assert_eq!(p % MIB, 0);
            assert!(p * u64::from(MAX_PARTS) >= expected, "{expected}: {p}");
            assert!((16 * MIB..=MAX_PART).contains(&p));
        }
        assert_eq!(part_size(16 * MIB, Some(1 << 40)), 105 * MIB);
        // Beyond S3's largest object the size stops at 5 GiB.
        assert_eq!(part_size(16 * MIB, Some(u64::MAX / 2)), MAX_PART);
    }
}
