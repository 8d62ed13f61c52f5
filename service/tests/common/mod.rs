//! Helpers for model tests: copies of the committed fixture packages, edited as a test needs.
#![allow(dead_code, unreachable_pub)]

pub mod real_rows;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

/// Copies fixture `name/version` into `root/as_name/as_version`, manifest last, and backdates
/// the files so the registry does not wait for them to settle.
pub fn publish(root: &Path, name: &str, version: &str, as_name: &str, as_version: &str) -> PathBuf {
    let src = fixtures().join(name).join(version);
    let dst = root.join(as_name).join(as_version);
    std::fs::create_dir_all(&dst).unwrap();
    for file in ["model.onnx", "golden.json"] {
        std::fs::copy(src.join(file), dst.join(file)).unwrap();
    }
    let mut manifest = read_json(&src.join("manifest.json"));
    manifest["name"] = Value::from(as_name);
    manifest["version"] = Value::from(as_version);
    write_json(&dst.join("manifest.json"), &manifest);
    backdate(&dst);
    dst
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn write_json(path: &Path, value: &Value) {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// Edits a package's manifest in place.
pub fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("manifest.json");
    let mut manifest = read_json(&path);
    edit(&mut manifest);
    write_json(&path, &manifest);
    backdate(dir);
}

/// Replaces the model file and records its checksum in the manifest.
pub fn replace_model(dir: &Path, bytes: &[u8]) {
    std::fs::write(dir.join("model.onnx"), bytes).unwrap();
    let sha = sha256_hex(bytes);
    edit_manifest(dir, |m| m["sha256"] = Value::from(sha));
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sets every file's modification time a minute into the past.
pub fn backdate(dir: &Path) {
    let past = SystemTime::now() - Duration::from_secs(60);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let file = std::fs::File::options()
            .write(true)
            .open(entry.path())
            .unwrap();
        file.set_modified(past).unwrap();
    }
}

/// The golden rows of a fixture, flattened, and their expected outputs.
pub fn golden(name: &str, version: &str) -> (Vec<f32>, Vec<f32>) {
    let g = read_json(&fixtures().join(name).join(version).join("golden.json"));
    let rows = g["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let outputs = g["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    (rows, outputs)
}
