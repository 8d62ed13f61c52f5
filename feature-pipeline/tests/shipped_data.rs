//! The C-MAPSS file the repository ships (`data/cmapss/train_FD001.txt.gz`) is NASA's
//! `train_FD001.txt`, byte for byte once decompressed, and imports to 20,631 rows of 100 engines.
//! Read through [`fleet_features::data`] and the importer's own decompression, as every other
//! user of the file does.

#![cfg(feature = "import")]

use std::io::Read;

use fleet_features::data;
use fleet_features::import::{self, cmapss};
use sha2::{Digest, Sha256};

/// SHA-256 of NASA's `train_FD001.txt` (3,474,094 bytes), as in `data/README.md`.
const FD001_SHA256: &str = "6d4b04c7a84f7f6d6c9c0153340f634f2ee4e4466fff337603ea7d74bcfcdbe1";

#[test]
fn shipped_cmapss_fd001_is_nasas_training_file() {
    let path = data::cmapss_fd001_in(&data::repo_data_dir());
    assert!(
        path.ends_with("data/cmapss/train_FD001.txt.gz"),
        "{}",
        path.display()
    );
    let mut text = Vec::new();
    import::open(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(text.len(), 3_474_094);
    let digest: String = Sha256::digest(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, FD001_SHA256);

    let mut first = None;
    let report = cmapss::import(&path, &cmapss::CmapssOptions::default(), |e| {
        first.get_or_insert_with(|| e.event_id().to_owned());
        Ok(())
    })
    .unwrap();
    assert_eq!(
        (report.rows, report.events, report.tails),
        (20_631, 20_631, 100)
    );
    // The event ids name the file without `.txt.gz`, as they did for the plain file.
    assert_eq!(first.as_deref(), Some("cmapss:train_FD001:u1:c1"));
}

#[test]
fn data_dir_override_takes_the_plain_or_the_compressed_file() {
    let dir = tempfile::tempdir().unwrap();
    let cmapss = dir.path().join("cmapss");
    std::fs::create_dir(&cmapss).unwrap();
    assert_eq!(
        data::cmapss_fd001_in(dir.path()),
        cmapss.join("train_FD001.txt.gz")
    );
    std::fs::write(cmapss.join("train_FD001.txt"), "").unwrap();
    assert_eq!(
        data::cmapss_fd001_in(dir.path()),
        cmapss.join("train_FD001.txt")
    );
}
