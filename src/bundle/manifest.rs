//! The manifest of a run directory and how a directory is sealed with it.

use super::keys::SigningKeyFile;
use chrono::{DateTime, Utc};
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The manifest's file name in a run directory.
pub const MANIFEST: &str = "manifest.json";
/// The detached signature's file name: raw 64-byte Ed25519 over the manifest's bytes.
pub const SIGNATURE: &str = "manifest.sig";

/// Everything the manifest says about a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// `keyproof <version>`.
    pub tool: String,
    /// The run directory's name.
    pub run_id: String,
    pub sealed_at: DateTime<Utc>,
    pub snapshot_sha256: String,
    /// SHA-256 over the control files used (see `ControlSet::digest`).
    pub controls_digest: String,
    /// SHA-256 of the effective config (canonical JSON).
    pub config_sha256: String,
    pub framework: String,
    pub scope: ManifestScope,
    /// Every file of the directory except the manifest and its signature, by path.
    pub files: Vec<FileEntry>,
    /// The run this one follows: the hash chain across months.
    pub previous: Option<PreviousRun>,
    /// Who signed; `None` when the bundle is unsigned.
    pub signer: Option<SignerInfo>,
}

/// The scope of the run, as the snapshot states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestScope {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the run directory, `/`-separated.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// The link to the run before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousRun {
    pub run_id: String,
    /// SHA-256 of that run's `manifest.json` bytes.
    pub manifest_sha256: String,
}

/// The signing key, identified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerInfo {
    /// `ed25519` (a key on disk) or `ecdsa-p256-sha256` (an AWS KMS key).
    pub algorithm: String,
    /// SHA-256 of the public key's DER SubjectPublicKeyInfo, hex.
    pub public_key_sha256: String,
    /// The KMS key that signed, for `ecdsa-p256-sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
}

/// Something that signs manifest bytes: an Ed25519 key on disk, or a KMS key.
pub trait ManifestSigner {
    fn info(&self) -> SignerInfo;
    /// The detached signature of `manifest` (raw Ed25519, or DER ECDSA).
    fn sign(&self, manifest: &[u8]) -> Result<Vec<u8>, String>;
}

impl ManifestSigner for SigningKeyFile {
    fn info(&self) -> SignerInfo {
        SignerInfo {
            algorithm: "ed25519".into(),
            public_key_sha256: self.fingerprint(),
            kms_key_arn: None,
        }
    }

    fn sign(&self, manifest: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.key.sign(manifest).to_bytes().to_vec())
    }
}

/// Why a directory could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode the manifest: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot sign the manifest: {0}")]
    Sign(String),
    #[error(
        "run {run_id} beside this one was sealed at {sealed_at}, not before this run's {this}: \
         sealing would fork the chain of runs; check the machine's clock, or seal into a \
         directory of its own"
    )]
    OutOfOrder {
        run_id: String,
        sealed_at: DateTime<Utc>,
        this: DateTime<Utc>,
    },
}

/// What the caller knows about the run.
pub struct SealInput<'a> {
    pub snapshot_sha256: &'a str,
    pub controls_digest: &'a str,
    pub config_sha256: &'a str,
    pub framework: &'a str,
    pub scope: ManifestScope,
    pub sealed_at: DateTime<Utc>,
    pub signer: Option<&'a dyn ManifestSigner>,
}

/// Writes `manifest.json` (and `manifest.sig` when a signer is given) into `dir`, hashing every
/// other file there and linking to the newest sealed sibling run. A sibling sealed at or after
/// `sealed_at` is refused (`OutOfOrder`): linking past it would give two runs the same
/// predecessor. (The CLI seals under the runs directory's seal lock, with the time taken inside
/// it, so its runs are sealed in time order.) Returns the manifest and the SHA-256 of its bytes.
pub fn seal(dir: &Path, input: SealInput<'_>) -> Result<(Manifest, String), SealError> {
    // A stale signature from an earlier seal of the same directory must not survive.
    let sig_path = dir.join(SIGNATURE);
    if sig_path.exists() {
        std::fs::remove_file(&sig_path).map_err(|source| SealError::Write {
            path: sig_path.display().to_string(),
            source,
        })?;
    }
    let files = hash_files(dir)?;
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let previous = match newest_sibling(dir) {
        Some((m, _)) if m.sealed_at >= input.sealed_at => {
            return Err(SealError::OutOfOrder {
                run_id: m.run_id,
                sealed_at: m.sealed_at,
                this: input.sealed_at,
            });
        }
        newest => newest.map(|(m, sha)| PreviousRun {
            run_id: m.run_id,
            manifest_sha256: sha,
        }),
    };
    let manifest = Manifest {
        format: 1,
        tool: format!("keyproof {}", env!("CARGO_PKG_VERSION")),
        run_id,
        sealed_at: input.sealed_at,
        snapshot_sha256: input.snapshot_sha256.to_string(),
        controls_digest: input.controls_digest.to_string(),
        config_sha256: input.config_sha256.to_string(),
        framework: input.framework.to_string(),
        scope: input.scope,
        files,
        previous,
        signer: input.signer.map(|s| s.info()),
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest)?;
    bytes.push(b'\n');
    let write = |path: PathBuf, data: &[u8]| {
        crate::fsutil::write_atomic(&path, data).map_err(|source| SealError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    write(dir.join(MANIFEST), &bytes)?;
    if let Some(signer) = input.signer {
        let signature = signer.sign(&bytes).map_err(SealError::Sign)?;
        write(sig_path, &signature)?;
    }
    Ok((manifest, hex::encode(Sha256::digest(&bytes))))
}

/// Every regular file under `dir` except the manifest and signature, sorted by path.
pub(super) fn hash_files(dir: &Path) -> Result<Vec<FileEntry>, SealError> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> Result<(), SealError> {
    let read_err = |path: &Path, source| SealError::Read {
        path: path.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| read_err(&path, e))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if rel == MANIFEST || rel == SIGNATURE {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| read_err(&path, e))?;
        out.push(FileEntry {
            path: rel,
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
        });
    }
    Ok(())
}

/// Reads `dir/manifest.json`: the manifest and the SHA-256 of its bytes.
pub fn read_manifest(dir: &Path) -> Option<(Manifest, String, Vec<u8>)> {
    let bytes = std::fs::read(dir.join(MANIFEST)).ok()?;
    let manifest = serde_json::from_slice(&bytes).ok()?;
    let sha = hex::encode(Sha256::digest(&bytes));
    Some((manifest, sha, bytes))
}

/// The newest sealed sibling run (same parent directory): its manifest and the manifest's
/// SHA-256.
fn newest_sibling(dir: &Path) -> Option<(Manifest, String)> {
    let parent = dir.parent()?;
    let own = dir.file_name()?;
    std::fs::read_dir(parent)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != own && e.path().is_dir())
        .filter_map(|e| read_manifest(&e.path()))
        .max_by(|a, b| a.0.sealed_at.cmp(&b.0.sealed_at))
        .map(|(m, sha, _)| (m, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_at(dir: &Path, at: &str) -> Result<(Manifest, String), SealError> {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("findings.json"), "{}").expect("file");
        seal(
            dir,
            SealInput {
                snapshot_sha256: "s",
                controls_digest: "c",
                config_sha256: "k",
                framework: "pci-dss-4.0.1",
                scope: ManifestScope {
                    accounts: vec![],
                    regions: vec![],
                },
                sealed_at: at.parse().expect("time"),
                signer: None,
            },
        )
    }

    #[test]
    fn runs_link_in_seal_order_and_a_seal_that_would_fork_the_chain_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let (first, first_sha) =
            seal_at(&root.path().join("a"), "2026-11-01T06:00:00Z").expect("first");
        assert!(first.previous.is_none());
        let (second, _) = seal_at(&root.path().join("b"), "2026-11-01T06:00:05Z").expect("second");
        let link = second.previous.expect("linked");
        assert_eq!(
            (link.run_id.as_str(), link.manifest_sha256),
            ("a", first_sha)
        );
        // A run whose seal time is not after the newest sealed one would link to an older run,
        // which then has two successors: refused, and nothing is written.
        let late = root.path().join("c");
        for at in ["2026-11-01T06:00:03Z", "2026-11-01T06:00:05Z"] {
            let err = seal_at(&late, at).expect_err("out of order");
            assert!(matches!(&err, SealError::OutOfOrder { run_id, .. } if run_id == "b"));
            assert!(err.to_string().contains("fork the chain"), "{err}");
            assert!(!late.join(MANIFEST).exists());
        }
        // Sealing a run again keeps its own place: its own manifest is not a sibling.
        let (again, _) = seal_at(&root.path().join("b"), "2026-11-01T06:00:06Z").expect("again");
        assert_eq!(again.previous.map(|p| p.run_id).as_deref(), Some("a"));
    }
}
