//! Where the reference data lives: the one place the demo's default, the tests and the
//! benchmarks learn the path of NASA C-MAPSS FD001.
//!
//! The repository ships it gzip-compressed as `data/cmapss/train_FD001.txt.gz` (attribution in
//! `data/README.md`); `FLEETSCORE_DATA_DIR` names another directory with the same layout, where
//! the plain `train_FD001.txt` is taken as well. The repository's directory is the path of this
//! crate's checkout at compile time: right for the tests, benchmarks and a binary built from the
//! checkout, not for a binary copied elsewhere (pass the file explicitly there).

use std::path::{Path, PathBuf};

/// The environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "FLEETSCORE_DATA_DIR";

/// The C-MAPSS FD001 training file's name inside `cmapss/`, without `.gz`.
pub const CMAPSS_FD001: &str = "train_FD001.txt";

/// The repository's own `data/` directory (the shipped copy).
pub fn repo_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in a directory of the workspace")
        .join("data")
}

/// `$FLEETSCORE_DATA_DIR` when set (and not empty), else [`repo_data_dir`].
pub fn data_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(repo_data_dir, PathBuf::from)
}

/// C-MAPSS FD001 (training part) in [`data_dir`]; see [`cmapss_fd001_in`].
pub fn cmapss_fd001() -> PathBuf {
    cmapss_fd001_in(&data_dir())
}

/// `DIR/cmapss/train_FD001.txt` if that file exists, else `DIR/cmapss/train_FD001.txt.gz` (also
/// when neither exists, so that an error names the file the repository ships).
pub fn cmapss_fd001_in(dir: &Path) -> PathBuf {
    let plain = dir.join("cmapss").join(CMAPSS_FD001);
    if plain.is_file() {
        plain
    } else {
        dir.join("cmapss").join(format!("{CMAPSS_FD001}.gz"))
    }
}
