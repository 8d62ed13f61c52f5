//! 1,000 mutated model files through the child-process validator: whatever a mutation does to
//! ONNX Runtime or tract (reject, misbehave, crash), this process, standing in for the service,
//! gets a verdict for each and carries on; a registry fed a sample keeps serving its good model.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use common::{publish, replace_model};
use fleet_features::FeatureSetId;
use fleetscore::model::validate::ChildValidator;
use fleetscore::model::{Registry, RegistryConfig};

const MUTANTS: usize = 1000;

/// xorshift64*: deterministic, so a failing mutant can be reproduced by its index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One of six mutation kinds, chosen by the index.
fn mutate(base: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut m = base.to_vec();
    match seed % 6 {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
        }
        1 => m.truncate(rng.below(m.len())),
        2 => {
            let at = rng.below(m.len());
            let chunk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
            m.splice(at..at, chunk);
        }
        3 => {
            let at = rng.below(m.len());
            let len = (1 + rng.below(256)).min(m.len() - at);
            for b in &mut m[at..at + len] {
                *b = rng.next() as u8;
            }
        }
        4 => {
            let at = rng.below(m.len());
            let len = (1 + rng.below(512)).min(m.len() - at);
            let chunk = m[at..at + len].to_vec();
            let to = rng.below(m.len());
            m.splice(to..to, chunk);
        }
        _ => {
            let at = rng.below(m.len());
            let len = (1 + rng.below(128)).min(m.len() - at);
            m[at..at + len].fill(0);
        }
    }
    m
}

fn validator() -> ChildValidator {
    ChildValidator {
        exe: env!("CARGO_BIN_EXE_fleetscore").into(),
        timeout: Duration::from_secs(60),
        memory_limit_mb: 2048,
    }
}

#[test]
fn a_thousand_mutated_models_each_get_a_verdict() {
    let root = tempfile::tempdir().unwrap();
    let bases = [("engine-rul", "1"), ("engine-rul-mlp", "1")];
    let originals: Vec<Vec<u8>> = bases
        .iter()
        .map(|(n, v)| std::fs::read(common::fixtures().join(n).join(v).join("model.onnx")).unwrap())
        .collect();

    // Write every mutant as a complete package whose checksum matches, so validation reaches
    // the runtimes instead of stopping at the checksum.
    let dirs: Vec<std::path::PathBuf> = (0..MUTANTS)
        .map(|i| {
            let b = i % bases.len();
            let dir = publish(
                root.path(),
                bases[b].0,
                bases[b].1,
                bases[b].0,
                &format!("m{i:04}"),
            );
            replace_model(&dir, &mutate(&originals[b], i as u64));
            dir
        })
        .collect();

    let outcomes: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let validator = validator();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(dir) = dirs.get(i) else { break };
                    let verdict = match validator.validate(dir) {
                        Ok(report) if report.ok => "accepted".to_owned(),
                        Ok(report) => report.class.unwrap_or_default(),
                        Err(e) => format!("{} ({})", e.class(), first_words(&e.to_string())),
                    };
                    *outcomes.lock().unwrap().entry(verdict).or_default() += 1;
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    eprintln!("verdicts for {MUTANTS} mutants: {outcomes:#?}");
    assert_eq!(outcomes.values().sum::<usize>(), MUTANTS);
    assert!(outcomes.get("load_failed").copied().unwrap_or(0) > MUTANTS / 10);

    // A registry fed a sample of the mutants beside the good model keeps a good model serving.
    let models = tempfile::tempdir().unwrap();
    publish(models.path(), "engine-rul", "1", "engine-rul", "1");
    for dir in dirs
        .iter()
        .filter(|d| d.to_string_lossy().contains("engine-rul/"))
        .take(40)
    {
        let version = dir.file_name().unwrap().to_str().unwrap();
        let copy = publish(models.path(), "engine-rul", "1", "engine-rul", version);
        copy_model(dir, &copy);
    }
    let mut config = RegistryConfig::new(models.path());
    config.validator = Some(validator());
    let registry = Registry::new(config);
    registry.rescan();
    let serving = registry
        .serving(FeatureSetId::EngineHealth)
        .expect("a good model serves");
    let (rows, _) = common::golden("engine-rul", "1");
    let mut out = Vec::new();
    serving.score(&rows, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
    assert_eq!(registry.statuses().len(), 41);
}

fn copy_model(from: &Path, to: &Path) {
    let bytes = std::fs::read(from.join("model.onnx")).unwrap();
    replace_model(to, &bytes);
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
}
