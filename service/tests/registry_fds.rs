//! Out of file descriptors (the reproduction: idle connections exhausting
//! `RLIMIT_NOFILE`), a rescan cannot read the models directory: the registry keeps every loaded
//! model serving instead of taking the unreadable directory for an empty one, and picks up where
//! it was once descriptors are free again. Its own test binary: it lowers this process's limit.

mod common;

use std::fs::File;
use std::time::Duration;

use fleetscore::model::{Registry, RegistryConfig};

#[test]
fn a_rescan_without_file_descriptors_keeps_the_models_serving() {
    let root = tempfile::tempdir().unwrap();
    common::publish(root.path(), "engine-rul-mlp", "1", "engine-rul-mlp", "1");
    let mut config = RegistryConfig::new(root.path());
    config.settle = Duration::ZERO;
    let registry = Registry::new(config);
    registry.rescan();
    let serving = || {
        registry
            .serving_by_name("engine-rul-mlp")
            .map(|s| s.serving.version().to_owned())
    };
    assert_eq!(serving().as_deref(), Some("1"));
    let statuses = registry.statuses();

    // Use up every descriptor under a lowered soft limit.
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE.set(128.min(soft), hard).unwrap();
    let mut held = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "EMFILE expected: {e}");
                break;
            }
        }
    }
    assert!(
        std::fs::read_dir(root.path()).is_err(),
        "the scan must fail"
    );
    registry.rescan();
    assert_eq!(serving().as_deref(), Some("1"), "still serving without fds");
    assert_eq!(
        registry.statuses(),
        statuses,
        "nothing forgotten or rejected"
    );

    drop(held);
    rlimit::Resource::NOFILE.set(soft, hard).unwrap();
    common::publish(root.path(), "engine-rul-mlp", "1", "engine-rul-mlp", "2");
    registry.rescan();
    assert_eq!(serving().as_deref(), Some("2"), "scans work again");
}
