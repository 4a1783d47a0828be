//! The custom-archive reader (pg_dump -Fc as it streams by): never a panic, and the same
//! answer however the bytes are cut into reads. The corpus starts from an archive pg_dump 15
//! wrote (tests/fixtures/custom-pg15.dump).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::archive::ArchiveObserver;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let mut whole = ArchiveObserver::default();
    whole.feed(bytes);
    let mut chunked = ArchiveObserver::default();
    for c in bytes.chunks(usize::from(cut).max(1)) {
        chunked.feed(c);
    }
    assert_eq!(whole.is_complete(), chunked.is_complete());
    assert_eq!(whole.created(), chunked.created());
    let _ = whole.incomplete_reason();
    assert_eq!(whole.into_tables(), chunked.into_tables());
});
