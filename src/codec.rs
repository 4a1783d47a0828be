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

/// The encoder for `c` over `out`.
pub fn encoder<'a, W: Write + 'a>(c: Compression, out: W) -> Box<dyn Encoder<W> + 'a> {
    match c {
        Compression::Gzip { level } => Box::new(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::new(level),
        )),
    }
}

/// The decoder for `c` over `input`. gzip is read member after member (`zcat` does the same; a
/// file of concatenated members is one stream).
pub fn decoder<'a, R: Read + 'a>(c: Compression, input: R) -> Box<dyn Read + 'a> {
    match c {
        Compression::Gzip { .. } => Box::new(flate2::read::MultiGzDecoder::new(input)),
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
        let mut e = encoder(Compression::Gzip { level: 6 }, Vec::new());
        e.write_all(&data).unwrap();
        let out = e.finish().unwrap();
        assert_eq!(&out[..2], &[0x1f, 0x8b], "not gzip");
        // Two members concatenated read as one stream.
        let twice = [out.clone(), out].concat();
        let (counted, count) = Counted::new(&twice[..]);
        let mut back = Vec::new();
        decoder(Compression::Gzip { level: 6 }, counted)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, [data.clone(), data].concat());
        assert_eq!(count.get(), twice.len() as u64);
    }
}
