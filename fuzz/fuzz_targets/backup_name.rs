//! The backup-name parser: never a panic, a parsed name formats back to the same file name,
//! and it never names a path outside its directory.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::catalog::BackupName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(n) = BackupName::parse(text) {
        assert_eq!(n.file_name(), text);
        assert!(!n.database.contains('/') && !n.database.starts_with('.'));
        assert_eq!(BackupName::parse(&n.file_name()), Some(n));
    }
});
