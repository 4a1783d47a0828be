//! What there is to report on: free space, and the databases worth a line (configured, on disk,
//! or in the state).

use crate::config::Config;
use crate::state;
use crate::storage::Storage;

/// Free and total bytes of the file system holding `path`.
pub fn free_space(path: &std::path::Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    Some((
        st.blocks_available() as u64 * frag,
        st.blocks() as u64 * frag,
    ))
}

/// The databases worth reporting: configured, on disk, or in the state.
pub fn known_databases(cfg: &Config, st: &state::State) -> Vec<String> {
    let mut dbs: Vec<String> = cfg
        .databases
        .iter()
        .map(|d| d.name().to_string())
        .chain(cfg.redis.iter().map(|r| r.name.clone()))
        .collect();
    for d in crate::storage::LocalStorage::reading(&cfg.local_dir)
        .databases()
        .unwrap_or_default()
        .into_iter()
        .chain(st.databases.keys().cloned())
    {
        if !dbs.contains(&d) {
            dbs.push(d);
        }
    }
    dbs.sort();
    dbs
}
