//! Compact, versioned binary snapshots of a [`TailState`], for the changelog topic and restarts.
//!
//! Layout: the 3-byte magic `FTS`, one format-version byte, then the
//! state in postcard encoding (varint integers, raw little-endian floats). A snapshot written by
//! another format version is refused rather than misread.

use crate::error::{Error, Result};
use crate::state::TailState;

const MAGIC: &[u8; 3] = b"FTS";
/// Bump whenever `TailState`'s serialized shape changes.
pub const SNAPSHOT_FORMAT: u8 = 1;

impl TailState {
    /// Serializes the state to its snapshot bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2048);
        out.extend_from_slice(MAGIC);
        out.push(SNAPSHOT_FORMAT);
        postcard::to_io(self, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Restores a state from snapshot bytes written by [`TailState::to_snapshot`].
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self> {
        let body = match bytes {
            [m0, m1, m2, version, body @ ..] if [*m0, *m1, *m2] == *MAGIC => {
                if *version != SNAPSHOT_FORMAT {
                    return Err(Error::Snapshot(format!(
                        "format version {version}, this build reads {SNAPSHOT_FORMAT}"
                    )));
                }
                body
            }
            _ => return Err(Error::Snapshot("not a tail-state snapshot".to_owned())),
        };
        let (state, rest) =
            postcard::take_from_bytes(body).map_err(|e| Error::Snapshot(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Error::Snapshot(format!(
                "{} trailing bytes after the state",
                rest.len()
            )));
        }
        Ok(state)
    }
}
