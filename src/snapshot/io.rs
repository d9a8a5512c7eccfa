//! Reading and writing snapshot files, identified by the SHA-256 of their bytes.
//!
//! A snapshot file is JSON, optionally gzip-compressed (detected by its magic bytes, not its
//! name). Writes go to a temporary file in the same directory that is renamed into place when
//! complete, so an interrupted run never leaves a half-written snapshot that looks whole.

use super::model::{SCHEMA_VERSION, Snapshot};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read snapshot {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write snapshot {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid keyproof snapshot: {detail}. Re-create it with `keyproof collect` or `keyproof demo`"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} has snapshot schema_version {found}, but this keyproof ({tool}) reads only version {supported}. Use a keyproof release that matches the snapshot, or collect a new one"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
        tool: &'static str,
    },
    #[error("cannot serialize snapshot: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// A snapshot as read from disk, with the hash that identifies it.
#[derive(Debug, Clone)]
pub struct LoadedSnapshot {
    pub snapshot: Snapshot,
    /// Lower-case hex SHA-256 of the file's bytes as stored (compressed, if it was).
    pub sha256: String,
}

/// The canonical bytes of a snapshot: pretty JSON with a trailing newline, gzip-compressed
/// (deterministically: no name, no timestamp) when `gzip` is set.
pub fn snapshot_bytes(snapshot: &Snapshot, gzip: bool) -> Result<Vec<u8>, SnapshotError> {
    let mut json = serde_json::to_vec_pretty(snapshot)?;
    json.push(b'\n');
    if !gzip {
        return Ok(json);
    }
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&json)
        .and_then(|()| enc.finish())
        .map_err(|e| SnapshotError::Serialize(serde_json::Error::io(e)))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `snapshot` to `path` atomically and returns its SHA-256. Compressed when the name ends
/// in `.gz`.
pub fn write_snapshot(snapshot: &Snapshot, path: &Path) -> Result<String, SnapshotError> {
    let gzip = path.extension().is_some_and(|e| e == "gz");
    let bytes = snapshot_bytes(snapshot, gzip)?;
    crate::fsutil::write_atomic(path, &bytes).map_err(|source| SnapshotError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(sha256_hex(&bytes))
}

/// Reads and validates a snapshot file.
pub fn read_snapshot(path: &Path) -> Result<LoadedSnapshot, SnapshotError> {
    let raw = std::fs::read(path).map_err(|source| SnapshotError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_snapshot(&raw, path)
}

/// Parses snapshot bytes (as read from `path`, used in messages).
pub fn parse_snapshot(raw: &[u8], path: &Path) -> Result<LoadedSnapshot, SnapshotError> {
    let corrupt = |detail: String| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let json = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw)
            .read_to_end(&mut out)
            .map_err(|e| corrupt(format!("gzip data is damaged ({e})")))?;
        out
    } else {
        raw.to_vec()
    };

    // Check the version before the full parse, so that a newer snapshot gets a version error
    // rather than a confusing message about some field.
    #[derive(serde::Deserialize)]
    struct Header {
        schema_version: Option<serde_json::Value>,
    }
    let header: Header = serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
    match header.schema_version {
        None => return Err(corrupt("it has no schema_version field".into())),
        Some(v) => match v.as_u64() {
            Some(n) if n == u64::from(SCHEMA_VERSION) => {}
            Some(n) => {
                return Err(SnapshotError::UnsupportedVersion {
                    path: path.to_path_buf(),
                    found: n,
                    supported: SCHEMA_VERSION,
                    tool: env!("CARGO_PKG_VERSION"),
                });
            }
            None => return Err(corrupt(format!("schema_version is {v}, not a number"))),
        },
    }
    let snapshot: Snapshot = serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
    Ok(LoadedSnapshot {
        snapshot,
        sha256: sha256_hex(raw),
    })
}
