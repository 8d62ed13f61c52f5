//! Validating a package in a child process: a malformed model can crash ONNX Runtime, and a
//! crash there must cost a rejected version, never the service.
//!
//! The child is this very binary, `fleetscore model validate <dir> --json`, run with a memory
//! limit (it lowers its own address-space limit first) and killed after a timeout. Its last
//! line of standard output is a JSON [`ValidationReport`]; a child that dies of a signal or
//! prints no report is a rejection with the reason `validator_failed`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wait_timeout::ChildExt;

use super::ModelError;
use super::package;

/// What `fleetscore model validate` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub ok: bool,
    pub dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Rejection class ([`ModelError::class`]) when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The whole error, paths and the backend's words included (for the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The short reason for clients ([`ModelError::reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Validates in this process (what the child runs).
pub fn validate_here(dir: &Path) -> ValidationReport {
    let mut report = ValidationReport {
        ok: false,
        dir: dir.display().to_string(),
        name: None,
        version: None,
        backend: None,
        sha256: None,
        class: None,
        message: None,
        reason: None,
    };
    match package::load(dir) {
        Ok(model) => {
            report.ok = true;
            report.name = Some(model.name().to_owned());
            report.version = Some(model.version().to_owned());
            report.backend = Some(model.backend.kind().as_str().to_owned());
            report.sha256 = Some(model.sha256);
        }
        Err(e) => {
            report.class = Some(e.class().to_owned());
            report.message = Some(e.to_string());
            report.reason = Some(e.reason(dir));
        }
    }
    report
}

/// Lowers this process's address-space limit (for the validator child).
pub fn limit_memory(megabytes: u64) -> std::io::Result<()> {
    let bytes = megabytes.saturating_mul(1 << 20);
    rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes)
}

/// Runs `fleetscore model validate` in a child process.
#[derive(Debug, Clone)]
pub struct ChildValidator {
    pub exe: PathBuf,
    pub timeout: Duration,
    pub memory_limit_mb: u64,
}

impl ChildValidator {
    /// This executable, 60 s, 4 GiB. On Linux through `/proc/self/exe`, which still runs this
    /// very binary after it was replaced on disk (an upgrade, a rebuild).
    pub fn current_exe() -> std::io::Result<Self> {
        let proc_exe = Path::new("/proc/self/exe");
        let exe = if proc_exe.exists() {
            proc_exe.to_path_buf()
        } else {
            std::env::current_exe()?
        };
        Ok(Self {
            exe,
            timeout: Duration::from_secs(60),
            memory_limit_mb: 4096,
        })
    }

    pub fn validate(&self, dir: &Path) -> Result<ValidationReport, ModelError> {
        let mut child = Command::new(&self.exe)
            .args(["model", "validate", "--json", "--memory-limit-mb"])
            .arg(self.memory_limit_mb.to_string())
            .arg(dir)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ModelError::io(&self.exe, e))?;
        // Reports are a few hundred bytes; read after exit, pipes will not fill.
        let status = match child.wait_timeout(self.timeout) {
            Ok(Some(status)) => status,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ModelError::Validator {
                    what: format!("no verdict within {} s; killed", self.timeout.as_secs()),
                    stderr: None,
                });
            }
            Err(e) => {
                return Err(ModelError::Validator {
                    what: format!("waiting for it failed: {e}"),
                    stderr: None,
                });
            }
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let report = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<ValidationReport>(line).ok());
        match report {
            Some(report) => Ok(report),
            None => {
                let how = match std::os::unix::process::ExitStatusExt::signal(&status) {
                    Some(signal) => format!("killed by signal {signal}"),
                    None => format!("exited with {status}"),
                };
                let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                Err(ModelError::Validator {
                    what: format!("{how} without a verdict"),
                    stderr: Some(tail),
                })
            }
        }
    }
}
