//! The snapshot stage: the versioned evidence model, reading and writing it with its SHA-256,
//! and the embedded estates (the fictitious sample and a synthetic generator for benchmarks).
//!
//! Not for: talking to AWS (that is `collect`) or judging evidence (that is `rules`).

mod evidence;
mod io;
mod model;
pub mod sample;
pub mod synthetic;

pub use evidence::EvidenceKind;
pub use io::{
    LoadedSnapshot, SnapshotError, parse_snapshot, read_snapshot, sha256_hex, snapshot_bytes,
    write_snapshot,
};
pub use model::*;
