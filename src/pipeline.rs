//! The one streaming pass of a backup: dump text -> (observer) -> compression (the chain's, see
//! `crate::codec`) -> [SHA-256 of the plaintext -> age encryption (`crate::crypt`)] -> SHA-256
//! -> file.
//!
//! Memory is bounded by the copy buffer and the compressor's window, whatever the dump's size.
//! The observer reads the plain-format text as it passes to count the rows of every `COPY` block
//! (so the manifest's row counts come from the very snapshot that was dumped, at no extra query)
//! and to see pg_dump's completion trailer.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::catalog::TableRows;
use crate::chain::Chain;
pub use crate::observer::Observer;
pub use crate::plain::DumpObserver;

const BUF_SIZE: usize = 256 * 1024;

/// A writer that hashes and counts what passes through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the hex digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lower-case hex of a byte slice.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A SHA-256 (hex) and the byte count it covers.
type Summed = (String, u64);

/// The stage after compression, over the stored file's hashing writer: nothing, or age
/// encryption with a hash of its plaintext (the compressed stream, what `age -d` gives back).
enum Seal<W: Write> {
    Clear(HashingWriter<W>),
    Age(HashingWriter<crate::crypt::Sealed<HashingWriter<W>>>),
}

impl<W: Write> Seal<W> {
    /// The compressed bytes written so far.
    fn bytes(&self) -> u64 {
        match self {
            Seal::Clear(h) => h.bytes,
            Seal::Age(h) => h.bytes,
        }
    }

    /// End the stream: the stored file's writer, and the plaintext's digest and size when
    /// encrypted.
    fn finish(self) -> io::Result<(HashingWriter<W>, Option<Summed>)> {
        match self {
            Seal::Clear(h) => Ok((h, None)),
            Seal::Age(h) => {
                let (sealed, sha, bytes) = h.finish();
                Ok((sealed.finish()?, Some((sha, bytes))))
            }
        }
    }
}

impl<W: Write> Write for Seal<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Seal::Clear(w) => w.write(buf),
            Seal::Age(h) => h.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Seal::Clear(w) => w.flush(),
            Seal::Age(h) => h.flush(),
        }
    }
}

/// What one pass produced.
#[derive(Debug)]
pub struct PipelineOutput {
    /// SHA-256 of the file as stored (encrypted, when it is).
    pub sha256: String,
    /// Bytes written to the file.
    pub compressed_bytes: u64,
    /// When encrypted: SHA-256 and size of the plaintext (the compressed stream, as
    /// `age -d FILE` prints it).
    pub plaintext: Option<(String, u64)>,
    /// Bytes read from the dump.
    pub raw_bytes: u64,
    /// Row counts per table.
    pub tables: Vec<TableRows>,
    /// Why the stream is not whole (no completion trailer, a truncated archive); `None`
    /// when it is.
    pub incomplete: Option<String>,
    /// A Redis snapshot's facts from its stream.
    pub rdb: Option<crate::catalog::RedisFacts>,
}

/// Where the pass failed: reading the dump, or writing the file.
#[derive(Debug)]
pub enum PipelineError {
    /// Reading from pg_dump failed.
    Read(io::Error),
    /// Writing the output failed (disk full, I/O error).
    Write(io::Error),
}

/// Stream `reader`, in `chain`'s format, through its compression (and encryption to
/// `recipients`, which an encrypted chain needs) and SHA-256 into `out`. `progress` is called
/// about every `every` with the raw and compressed byte counts.
pub fn run<R: Read, W: Write>(
    mut reader: R,
    out: W,
    chain: Chain,
    recipients: Option<&crate::crypt::Recipients>,
    every: Duration,
    mut progress: impl FnMut(u64, u64),
) -> Result<(W, PipelineOutput), PipelineError> {
    let hashing = HashingWriter::new(io::BufWriter::with_capacity(BUF_SIZE, out));
    let seal = match (chain.encrypted, recipients) {
        (false, _) => Seal::Clear(hashing),
        (true, Some(r)) => Seal::Age(HashingWriter::new(
            r.seal(hashing).map_err(PipelineError::Write)?,
        )),
        (true, None) => {
            return Err(PipelineError::Write(io::Error::other(
                "an encrypted chain without recipients",
            )))
        }
    };
    let mut gz = crate::codec::encoder(chain.compression, seal).map_err(PipelineError::Write)?;
    let mut observer = Observer::of(chain.format);
    let mut buf = vec![0u8; BUF_SIZE];
    let mut raw: u64 = 0;
    let mut last = Instant::now();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PipelineError::Read(e)),
        };
        observer.feed(&buf[..n]);
        gz.write_all(&buf[..n]).map_err(PipelineError::Write)?;
        raw += n as u64;
        if last.elapsed() >= every {
            last = Instant::now();
            progress(raw, gz.get_ref().bytes());
        }
    }
    let seal = gz.finish().map_err(PipelineError::Write)?;
    let (hashing, plaintext) = seal.finish().map_err(PipelineError::Write)?;
    let (buffered, sha256, compressed_bytes) = hashing.finish();
    let out = buffered
        .into_inner()
        .map_err(|e| PipelineError::Write(e.into_error()))?;
    let incomplete = observer.incomplete_reason();
    let rdb = observer.rdb_facts();
    Ok((
        out,
        PipelineOutput {
            sha256,
            compressed_bytes,
            plaintext,
            raw_bytes: raw,
            tables: observer.into_tables(),
            incomplete,
            rdb,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\\restrict abc\nSET x = 1;\n\
COPY public.t (a, b) FROM stdin;\n1\tx\n2\ty\n\\.\n\n\
COPY \"My Schema\".\"we\"\"ird.tab\" FROM stdin;\n\\.\n\
COPY s.big (a) FROM stdin;\n\\\\.\n\\.x\n3\n\\.\n\
--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n";

    #[test]
    fn counts_rows_and_sees_trailer_in_any_chunking() {
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let mut o = DumpObserver::default();
            for c in DUMP.as_bytes().chunks(chunk) {
                o.feed(c);
            }
            assert!(o.is_complete(), "chunk {chunk}");
            let t = o.into_tables();
            assert_eq!(
                t,
                vec![
                    TableRows {
                        schema: "public".into(),
                        table: "t".into(),
                        rows: 2
                    },
                    TableRows {
                        schema: "My Schema".into(),
                        table: "we\"ird.tab".into(),
                        rows: 0
                    },
                    TableRows {
                        schema: "s".into(),
                        table: "big".into(),
                        rows: 3
                    },
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn truncated_dump_is_incomplete() {
        let cut = DUMP.find("-- PostgreSQL database dump complete").unwrap();
        let mut o = DumpObserver::default();
        o.feed(&DUMP.as_bytes()[..cut]);
        assert!(!o.is_complete());
        let mut o = DumpObserver::default();
        o.feed(b"COPY public.t (a) FROM stdin;\n1\n-- PostgreSQL database dump complete\n");
        assert!(!o.is_complete(), "inside an unterminated COPY block");
    }

    #[test]
    fn output_is_valid_gzip_with_matching_digest() {
        let data = DUMP.repeat(1000);
        let (out, res) = run(
            data.as_bytes(),
            Vec::new(),
            Chain::plain_gzip(6),
            None,
            Duration::from_secs(3600),
            |_, _| {},
        )
        .unwrap();
        assert_eq!(res.raw_bytes, data.len() as u64);
        assert_eq!(res.compressed_bytes, out.len() as u64);
        assert_eq!(res.sha256, hex(&Sha256::digest(&out)));
        let mut back = String::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert_eq!(res.tables.len(), 3000);
        assert_eq!(res.tables[3].rows, 2);
        assert!(res.incomplete.is_none());
    }

    /// Encrypted: the sidecar digest is of the stored (age) bytes, the plaintext digest is
    /// of exactly what the same chain writes unencrypted (gzip is deterministic), and the
    /// identity opens the file into it.
    #[test]
    fn an_encrypted_stream_records_both_digests() {
        use age::secrecy::ExposeSecret;
        let data = DUMP.repeat(200);
        let id = age::x25519::Identity::generate();
        let recipients = crate::crypt::Recipients::parse([(
            "r".to_string(),
            id.to_public().to_string().as_str(),
        )])
        .unwrap();
        let sealed = Chain {
            encrypted: true,
            ..Chain::plain_gzip(6)
        };
        let every = Duration::from_secs(3600);
        let (clear, plain_res) = run(
            data.as_bytes(),
            Vec::new(),
            Chain::plain_gzip(6),
            None,
            every,
            |_, _| {},
        )
        .unwrap();
        assert!(plain_res.plaintext.is_none());
        let (out, res) = run(
            data.as_bytes(),
            Vec::new(),
            sealed,
            Some(&recipients),
            every,
            |_, _| {},
        )
        .unwrap();
        assert_eq!(res.sha256, hex(&Sha256::digest(&out)));
        assert_eq!(res.compressed_bytes, out.len() as u64);
        assert_eq!(
            res.plaintext,
            Some((hex(&Sha256::digest(&clear)), clear.len() as u64))
        );
        let ids = crate::crypt::Identities::parse(id.to_string().expose_secret(), "t").unwrap();
        let mut back = Vec::new();
        ids.open(&out[..]).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == clear);
        // An encrypted chain without recipients is refused, never written in the clear.
        assert!(run(data.as_bytes(), Vec::new(), sealed, None, every, |_, _| {}).is_err());
    }
}
