//! The directory-format reader (a tar of pg_dump -Fd's files, as it streams by): never a panic,
//! and the same answer however the bytes are cut into reads. The corpus starts from a tar of a
//! directory pg_dump 15 wrote (tests/fixtures/directory-pg15.tar).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::dirdump::DirectoryObserver;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let mut whole = DirectoryObserver::default();
    whole.feed(bytes);
    let mut chunked = DirectoryObserver::default();
    for c in bytes.chunks(usize::from(cut).max(1)) {
        chunked.feed(c);
    }
    assert_eq!(whole.incomplete_reason(), chunked.incomplete_reason());
    assert_eq!(whole.created(), chunked.created());
    assert_eq!(whole.into_tables(), chunked.into_tables());
});
