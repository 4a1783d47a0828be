//! The byte stages of a [`Chain`](crate::chain::Chain) made real: an encoder for the write side
//! of a backup, a decoder for every reader (verify, restore, the failed-line excerpt). The one
//! place that names a compression library.

use std::io::{self, Read, Write};

use crate::chain::Compression;

/// A compressor writing into `W`.
pub trait Encoder<W>: Write {
    /// What has been written into the inner writer so far.
    fn get_ref(&self) -> &W;
    /// Write the end of the stream and give the inner writer back.
    fn finish(self: Box<Self>) -> io::Result<W>;
}

impl<W: Write> Encoder<W> for flate2::write::GzEncoder<W> {
    fn get_ref(&self) -> &W {
        flate2::write::GzEncoder::get_ref(self)
    }
    fn finish(self: Box<Self>) -> io::Result<W> {
        flate2::write::GzEncoder::finish(*self)
    }
}

impl<W: Write> Encoder<W> for zstd::stream::write::Encoder<'static, W> {
    fn get_ref(&self) -> &W {
        zstd::stream::write::Encoder::get_ref(self)
    }
    fn finish(self: Box<Self>) -> io::Result<W> {
        zstd::stream::write::Encoder::finish(*self)
    }
}

/// The size of one zstd worker's job.
const ZSTD_JOB_SIZE: u32 = 1 << 20;

/// The encoder for `c` over `out`. zstd with more than one thread compresses in libzstd's
/// worker threads (the calling thread only feeds it); its output is one frame that any zstd
/// decoder reads.
pub fn encoder<'a, W: Write + 'a>(c: Compression, out: W) -> io::Result<Box<dyn Encoder<W> + 'a>> {
    Ok(match c {
        Compression::Gzip {
            level,
            threads: 0 | 1,
        } => Box::new(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::new(level),
        )),
        Compression::Gzip { level, threads } => Box::new(ParallelGzip::new(out, level, threads)),
        Compression::Zstd { level, threads } => {
            let mut z = zstd::stream::write::Encoder::new(out, level as i32)?;
            if threads > 1 {
                z.multithread(threads)?;
                // libzstd's default job for level 3 is several MiB per worker (53 MiB peak RSS
                // measured with two workers); 1 MiB jobs keep the peak near 20 MiB at the same
                // speed and a ratio within 0.5%.
                z.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
            }
            // The content checksum (XXH64) lets `zstd -t` and every reader catch damage even
            // without our sidecar.
            z.include_checksum(true)?;
            Box::new(z)
        }
    })
}

/// The decoder for `c` over `input`. gzip is read member after member (`zcat` does the same; a
/// file of concatenated members is one stream).
pub fn decoder<'a, R: Read + 'a>(c: Compression, input: R) -> Box<dyn Read + 'a> {
    match c {
        Compression::Gzip { .. } => Box::new(flate2::read::MultiGzDecoder::new(input)),
        // Frame after frame, as zstdcat reads it; a stream cut mid-frame is an error, never a
        // quiet end.
        Compression::Zstd { .. } => match zstd::stream::read::Decoder::new(input) {
            Ok(d) => Box::new(d),
            Err(e) => Box::new(Failing(Some(e))),
        },
    }
}

/// How a stored backup is read back: decrypted (when it was encrypted, with the keys that
/// opened it in the integrity pass), then decompressed.
#[derive(Debug, Clone)]
pub struct Unpack {
    /// The compression.
    pub compression: Compression,
    /// The identities, for an encrypted backup.
    pub keys: Option<std::sync::Arc<crate::crypt::Identities>>,
}

impl Unpack {
    /// Only decompression (a file that is not encrypted).
    pub fn clear(compression: Compression) -> Self {
        Unpack {
            compression,
            keys: None,
        }
    }
}

/// The plaintext of a stored backup: decrypted with `u`'s keys when it has them, then
/// decompressed. A file that does not decrypt fails the first read.
pub fn unpack<'a, R: Read + 'a>(u: &Unpack, input: R) -> Box<dyn Read + 'a> {
    match &u.keys {
        None => decoder(u.compression, input),
        Some(ids) => match ids.open(input) {
            Ok(opened) => decoder(u.compression, opened),
            Err(e) => Box::new(Failing(Some(io::Error::other(format!(
                "cannot decrypt: {e}"
            ))))),
        },
    }
}

/// A reader whose first read fails with the error a decoder could not be made for.
struct Failing(Option<io::Error>);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| io::Error::other("no decoder")))
    }
}

/// How much input one parallel gzip member holds.
const GZIP_BLOCK: usize = 1 << 20;

/// gzip in `threads` workers, as concatenated members: the input is cut into blocks of
/// [`GZIP_BLOCK`] bytes, each compressed as a gzip member of its own (RFC 1952 allows any
/// number; gunzip, zcat, `gzip -t` and every multi-member reader read them as one stream) and
/// written in order. Chosen over pigz's single member with dictionaries carried between blocks
/// because it needs no CRC combining and no hand-made deflate framing; the cost, measured on
/// the benchmark's text dump, is about 1% in size (each member restarts deflate's 32 KiB
/// window). The output depends on the input and the level only, never on timing or on the
/// number of threads above one. At most `2 * threads` blocks are in flight, so memory stays
/// flat (27 MiB peak with two threads, measured).
struct ParallelGzip<W: Write> {
    out: W,
    block: Vec<u8>,
    jobs: Option<std::sync::mpsc::SyncSender<(u64, Vec<u8>)>>,
    results: std::sync::mpsc::Receiver<(u64, io::Result<Vec<u8>>)>,
    workers: Vec<std::thread::JoinHandle<()>>,
    sent: u64,
    written: u64,
    in_flight: u64,
    ready: std::collections::BTreeMap<u64, Vec<u8>>,
}

impl<W: Write> ParallelGzip<W> {
    fn new(out: W, level: u32, threads: u32) -> Self {
        let threads = threads.max(1);
        let (jobs, job_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(threads as usize);
        let (result_tx, results) = std::sync::mpsc::channel();
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let (job_rx, result_tx) = (job_rx.clone(), result_tx.clone());
                std::thread::spawn(move || loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, data)) = job else { return };
                    let mut gz = flate2::write::GzEncoder::new(
                        Vec::with_capacity(data.len() / 2 + 64),
                        flate2::Compression::new(level),
                    );
                    let member = gz.write_all(&data).and_then(|()| gz.finish());
                    if result_tx.send((seq, member)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        ParallelGzip {
            out,
            block: Vec::with_capacity(GZIP_BLOCK),
            jobs: Some(jobs),
            results,
            workers,
            sent: 0,
            written: 0,
            in_flight: 2 * u64::from(threads),
            ready: std::collections::BTreeMap::new(),
        }
    }

    /// Hand the current block to the workers, then write what is ready, waiting while too many
    /// blocks are in flight.
    fn dispatch(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(GZIP_BLOCK));
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("finished"))?;
        jobs.send((self.sent, block))
            .map_err(|_| io::Error::other("a gzip worker stopped"))?;
        self.sent += 1;
        while let Ok(r) = self.results.try_recv() {
            self.take(r)?;
        }
        while self.sent - self.written > self.in_flight {
            self.receive_one()?;
        }
        Ok(())
    }

    fn receive_one(&mut self) -> io::Result<()> {
        let r = self
            .results
            .recv()
            .map_err(|_| io::Error::other("a gzip worker stopped"))?;
        self.take(r)
    }

    /// Keep a compressed block, and write every block that is next in order.
    fn take(&mut self, (seq, member): (u64, io::Result<Vec<u8>>)) -> io::Result<()> {
        self.ready.insert(seq, member?);
        while let Some(member) = self.ready.remove(&self.written) {
            self.out.write_all(&member)?;
            self.written += 1;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(GZIP_BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == GZIP_BLOCK {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Encoder<W> for ParallelGzip<W> {
    fn get_ref(&self) -> &W {
        &self.out
    }

    fn finish(mut self: Box<Self>) -> io::Result<W> {
        // An empty input is one empty member, as a single-threaded gzip writes it.
        if !self.block.is_empty() || self.sent == 0 {
            self.dispatch()?;
        }
        self.jobs = None;
        while self.written < self.sent {
            self.receive_one()?;
        }
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join();
        }
        self.out.flush()?;
        // Dropped unfinished instead (an error), the job channel closes with it and the workers
        // end after their current block.
        let ParallelGzip { out, .. } = *self;
        Ok(out)
    }
}

/// A reader that counts the bytes read through it into a shared counter (so that progress can
/// be read while a decoder owns the reader).
#[derive(Debug)]
pub struct Counted<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R> Counted<R> {
    /// Wrap `inner`; the returned counter follows the bytes read.
    pub fn new(inner: R) -> (Self, std::rc::Rc<std::cell::Cell<u64>>) {
        let count = std::rc::Rc::new(std::cell::Cell::new(0));
        (
            Counted {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_encoder_writes_the_decoder_reads_and_zcat_would() {
        let data = b"COPY t (a) FROM stdin;\n1\n\\.\n".repeat(1000);
        let mut e = encoder(
            Compression::Gzip {
                level: 6,
                threads: 1,
            },
            Vec::new(),
        )
        .unwrap();
        e.write_all(&data).unwrap();
        let out = e.finish().unwrap();
        assert_eq!(&out[..2], &[0x1f, 0x8b], "not gzip");
        // Two members concatenated read as one stream.
        let twice = [out.clone(), out].concat();
        let (counted, count) = Counted::new(&twice[..]);
        let mut back = Vec::new();
        decoder(
            Compression::Gzip {
                level: 6,
                threads: 1,
            },
            counted,
        )
        .read_to_end(&mut back)
        .unwrap();
        assert_eq!(back, [data.clone(), data].concat());
        assert_eq!(count.get(), twice.len() as u64);
    }

    /// What zstd writes (in one thread or in workers) `zstd -t` accepts and `zstdcat` reads
    /// back; two frames read as one stream; a frame cut short is an error, never a quiet end.
    #[test]
    fn zstd_round_trips_through_the_zstd_cli_and_a_cut_frame_is_an_error() {
        let data: Vec<u8> = (0..400_000u32)
            .flat_map(|i| format!("{i}\tcustomer {}\n", i % 977).into_bytes())
            .collect();
        let mut files = Vec::new();
        for threads in [1, 2] {
            let mut e = encoder(Compression::Zstd { level: 3, threads }, Vec::new()).unwrap();
            e.write_all(&data).unwrap();
            let out = e.finish().unwrap();
            assert_eq!(&out[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not a zstd frame");
            let mut back = Vec::new();
            decoder(Compression::Zstd { level: 3, threads }, &out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "round trip with {threads} thread(s) differs");
            files.push(out);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sql.zst");
        std::fs::write(&path, [files[0].clone(), files[1].clone()].concat()).unwrap();
        let t = std::process::Command::new("zstd")
            .arg("-tq")
            .arg(&path)
            .status()
            .expect("the zstd CLI is needed (scripts/test.sh installs it)");
        assert!(t.success(), "zstd -t refused our file");
        let cat = std::process::Command::new("zstdcat")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            cat.stdout == [data.clone(), data.clone()].concat(),
            "zstdcat read something else"
        );

        let cut = &files[0][..files[0].len() / 2];
        let mut back = Vec::new();
        let r = decoder(
            Compression::Zstd {
                level: 3,
                threads: 1,
            },
            cut,
        )
        .read_to_end(&mut back);
        assert!(r.is_err(), "a cut frame read as a complete stream");
    }

    /// Parallel gzip: members that `gzip -t` accepts and `zcat` reads back as the input; the
    /// same bytes whatever the number of threads above one; an empty input is a valid empty
    /// file; and the size is within 1% of one single-threaded member.
    #[test]
    fn parallel_gzip_is_deterministic_and_read_by_gzip_and_zcat() {
        let data: Vec<u8> = (0..150_000u32)
            .flat_map(|i| {
                format!("{i}\tcustomer {} ordered {} items\n", i % 9973, i % 17).into_bytes()
            })
            .collect();
        let gz = |threads, input: &[u8]| {
            let mut e = encoder(Compression::Gzip { level: 6, threads }, Vec::new()).unwrap();
            for chunk in input.chunks(100_000) {
                e.write_all(chunk).unwrap();
            }
            e.finish().unwrap()
        };
        let (one, two, three) = (gz(1, &data), gz(2, &data), gz(3, &data));
        assert!(two == three, "the output depends on the number of threads");
        assert!(
            data.len() > 4 * GZIP_BLOCK,
            "too little input for several members"
        );
        assert!(
            (two.len() as f64) < one.len() as f64 * 1.01,
            "parallel members cost more than 1%: {} vs {}",
            two.len(),
            one.len()
        );
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("par.gz", two.clone()), ("empty.gz", gz(2, b""))] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let ok = std::process::Command::new("gzip")
                .arg("-t")
                .arg(&path)
                .status()
                .unwrap();
            assert!(ok.success(), "gzip -t refused {name}");
        }
        let cat = std::process::Command::new("zcat")
            .arg(dir.path().join("par.gz"))
            .output()
            .unwrap();
        assert!(cat.stdout == data, "zcat read something else");
        let mut back = Vec::new();
        decoder(
            Compression::Gzip {
                level: 6,
                threads: 2,
            },
            &two[..],
        )
        .read_to_end(&mut back)
        .unwrap();
        assert!(back == data, "our decoder read something else");
    }
}
