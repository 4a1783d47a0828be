//! The privilege filter of restores: never a panic, the same output however the text is cut
//! into chunks, every line break kept (psql's line numbers are the dump's), and the output a
//! subsequence of the input (it only drops bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::plain::PrivilegeFilter;

fn run(text: &[u8], size: usize) -> Vec<u8> {
    let mut f = PrivilegeFilter::default();
    let mut out = Vec::new();
    for c in text.chunks(size.max(1)) {
        f.process(c, &mut out);
    }
    f.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, text)) = data.split_first() else { return };
    let out = run(text, usize::from(cut));
    assert_eq!(out, run(text, text.len()), "chunking changed the output");
    let newlines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    assert_eq!(newlines(&out), newlines(text), "a line break was lost or added");
    let mut it = text.iter();
    assert!(out.iter().all(|b| it.any(|c| c == b)), "the output is not a subsequence of the input");
});
