//! The config file parser and validation: any text either parses into a checked config or
//! gives problems in words, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pgbackup::config::{Config, FileConfig};
use pgbackup::error::ConfigProblems;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = toml::from_str::<FileConfig>(text) else { return };
    let mut problems = ConfigProblems::default();
    let no_env = |_: &str| None;
    let cfg = Config::from_file(file, Some("/fuzz.toml".into()), &no_env, &mut problems);
    if problems.is_empty() {
        let _ = cfg.to_display_toml();
    } else {
        let _ = problems.to_string();
    }
});
