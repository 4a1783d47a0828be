//! The sidecar parser: never a panic, and what it accepts writes back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::catalog::{parse_sidecar, sidecar_line};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some((hex, name)) = parse_sidecar(text) {
        assert_eq!(hex.len(), 64);
        assert_eq!(parse_sidecar(&sidecar_line(&hex, &name)), Some((hex, name)));
    }
});
