//! The dump observer (COPY row counts, the completion trailer): never a panic, and the same
//! answer however the text is cut into chunks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::plain::DumpObserver;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, text)) = data.split_first() else { return };
    let mut whole = DumpObserver::default();
    whole.feed(text);
    let mut chunked = DumpObserver::default();
    for c in text.chunks(usize::from(cut).max(1)) {
        chunked.feed(c);
    }
    assert_eq!(whole.is_complete(), chunked.is_complete());
    assert_eq!(whole.created(), chunked.created());
    assert_eq!(whole.into_tables(), chunked.into_tables());
});
