//! The Redis snapshot reader (an RDB as it streams in from SYNC or a file): never a panic, and
//! the same answer however the bytes are cut into reads. The corpus starts from a snapshot
//! Redis 7.0 wrote (tests/fixtures/redis7.rdb: every value type, a stream with a consumer
//! group, a TTL, two databases, a Functions library).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::rdb::RdbObserver;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let mut whole = RdbObserver::default();
    whole.feed(bytes);
    let mut chunked = RdbObserver::default();
    for c in bytes.chunks(usize::from(cut).max(1)) {
        chunked.feed(c);
    }
    assert_eq!(whole.incomplete_reason(), chunked.incomplete_reason());
    assert_eq!(whole.keys(), chunked.keys());
    assert_eq!(whole.aux(), chunked.aux());
    assert_eq!(whole.version(), chunked.version());
});
