//! The manifest parser: whatever a manifest file holds, parsing never panics, and a manifest
//! that parses writes back to one that parses to the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::catalog::{manifest_bytes, Manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let again: Manifest = serde_json::from_slice(&manifest_bytes(&m)).expect("our own output parses");
        assert_eq!(
            serde_json::to_value(&again).ok(),
            serde_json::to_value(&m).ok()
        );
    }
});
