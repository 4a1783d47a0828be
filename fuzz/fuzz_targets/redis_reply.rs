//! The RESP reply reader and the feed's command reader: what a Redis server (or a stranger on
//! the restore feed's port) sends is untrusted. Any bytes give a reply or an error, never a
//! panic, and memory stays bounded by the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = std::io::Cursor::new(data);
    for _ in 0..64 {
        if pgbackup::redis::read_reply(&mut r).is_err() {
            break;
        }
    }
    let mut r = std::io::Cursor::new(data);
    for _ in 0..64 {
        if pgbackup::redis_feed::read_command(&mut r).is_err() {
            break;
        }
    }
});
