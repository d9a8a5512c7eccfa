//! Verifies a sealed run directory: every file against the manifest, the signature against a
//! public key, and the hash chain back through the earlier runs beside it.

use super::keys::PublicKey;
use super::manifest::{FileEntry, MANIFEST, Manifest, SIGNATURE, hash_files, read_manifest};
use ed25519_dalek::{Signature, Verifier};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The outcome of checking the signature.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum SignatureStatus {
    Valid,
    /// The signature does not match the manifest and key.
    Invalid(String),
    /// The manifest names no signer, or `manifest.sig` is missing.
    Unsigned(String),
    /// No public key was given, so the signature was not checked.
    NotChecked,
}

/// One link of the chain: `run_id` says its predecessor's manifest has `expected` SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainLink {
    pub run_id: String,
    pub previous_run_id: String,
    pub status: LinkStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum LinkStatus {
    /// The predecessor's manifest hash matches, and its own files match its manifest.
    Intact,
    /// The predecessor's manifest was changed or replaced.
    Broken(String),
    /// The predecessor's manifest matches but its files do not.
    PredecessorAltered(String),
    /// The predecessor is not beside this run: the chain cannot be followed further.
    NotPresent,
}

/// Everything `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub run_id: String,
    pub manifest_sha256: String,
    /// Files whose hash or size differs from the manifest.
    pub altered: Vec<String>,
    /// Files the manifest lists that are gone.
    pub missing: Vec<String>,
    /// Files present but not in the manifest.
    pub extra: Vec<String>,
    pub signature: SignatureStatus,
    pub signer_public_key_sha256: Option<String>,
    pub chain: Vec<ChainLink>,
    /// Set when the directory has no readable manifest at all.
    pub error: Option<String>,
}

impl Verification {
    /// Whether everything checked is intact (an unchecked signature is not a failure here; the
    /// caller decides whether it must be checked).
    pub fn intact(&self) -> bool {
        self.error.is_none()
            && self.altered.is_empty()
            && self.missing.is_empty()
            && self.extra.is_empty()
            && matches!(
                self.signature,
                SignatureStatus::Valid | SignatureStatus::NotChecked
            )
            && self
                .chain
                .iter()
                .all(|l| matches!(l.status, LinkStatus::Intact | LinkStatus::NotPresent))
    }
}

/// Verifies `dir`; with `public_key` the signature is checked too.
pub fn verify(dir: &Path, public_key: Option<&PublicKey>) -> Verification {
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Verification {
        run_id,
        manifest_sha256: String::new(),
        altered: Vec::new(),
        missing: Vec::new(),
        extra: Vec::new(),
        signature: SignatureStatus::NotChecked,
        signer_public_key_sha256: None,
        chain: Vec::new(),
        error: None,
    };
    let Some((manifest, sha, bytes)) = read_manifest(dir) else {
        out.error = Some(format!(
            "{} has no readable {MANIFEST}: not a sealed keyproof run",
            dir.display()
        ));
        return out;
    };
    out.manifest_sha256 = sha;
    out.signer_public_key_sha256 = manifest
        .signer
        .as_ref()
        .map(|s| s.public_key_sha256.clone());
    match compare_files(dir, &manifest.files) {
        Ok(diff) => {
            out.altered = diff.altered;
            out.missing = diff.missing;
            out.extra = diff.extra;
        }
        Err(e) => out.error = Some(e),
    }
    if let Some(key) = public_key {
        out.signature = check_signature(dir, &manifest, &bytes, key);
    }
    out.chain = follow_chain(dir, &manifest);
    out
}

/// How a directory's files differ from a manifest's list.
struct FileDiff {
    altered: Vec<String>,
    missing: Vec<String>,
    extra: Vec<String>,
}

impl FileDiff {
    fn is_empty(&self) -> bool {
        self.altered.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

fn compare_files(dir: &Path, listed: &[FileEntry]) -> Result<FileDiff, String> {
    let present = hash_files(dir).map_err(|e| e.to_string())?;
    let present: BTreeMap<&str, &FileEntry> = present
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect::<BTreeMap<_, _>>();
    let listed_map: BTreeMap<&str, &FileEntry> =
        listed.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut altered = Vec::new();
    let mut missing = Vec::new();
    for (path, want) in &listed_map {
        match present.get(path) {
            None => missing.push(path.to_string()),
            Some(have) if have.sha256 != want.sha256 || have.size != want.size => {
                altered.push(path.to_string())
            }
            Some(_) => {}
        }
    }
    let extra = present
        .keys()
        .filter(|p| !listed_map.contains_key(*p))
        .map(|p| p.to_string())
        .collect();
    Ok(FileDiff {
        altered,
        missing,
        extra,
    })
}

fn check_signature(
    dir: &Path,
    manifest: &Manifest,
    bytes: &[u8],
    key: &PublicKey,
) -> SignatureStatus {
    let Some(signer) = &manifest.signer else {
        return SignatureStatus::Unsigned("the manifest names no signer".into());
    };
    let Ok(raw) = std::fs::read(dir.join(SIGNATURE)) else {
        return SignatureStatus::Unsigned(format!("{SIGNATURE} is missing"));
    };
    let mismatch = || {
        SignatureStatus::Invalid(
            "the signature does not match this manifest under the given public key".into(),
        )
    };
    if signer.public_key_sha256 != key.fingerprint() {
        return SignatureStatus::Invalid(format!(
            "the manifest was signed by key {}, not by the given key {}",
            signer.public_key_sha256,
            key.fingerprint()
        ));
    }
    match key {
        PublicKey::Ed25519(k) => {
            let Ok(raw) = <[u8; 64]>::try_from(raw.as_slice()) else {
                return SignatureStatus::Invalid(format!(
                    "{SIGNATURE} is not a 64-byte Ed25519 signature"
                ));
            };
            match k.verify(bytes, &Signature::from_bytes(&raw)) {
                Ok(()) => SignatureStatus::Valid,
                Err(_) => mismatch(),
            }
        }
        PublicKey::P256(k) => {
            let Ok(sig) = p256::ecdsa::Signature::from_der(&raw) else {
                return SignatureStatus::Invalid(format!(
                    "{SIGNATURE} is not a DER ECDSA signature"
                ));
            };
            match k.verify(bytes, &sig) {
                Ok(()) => SignatureStatus::Valid,
                Err(_) => mismatch(),
            }
        }
    }
}

/// Follows `previous` links through sibling directories until a run has none or is absent.
fn follow_chain(dir: &Path, manifest: &Manifest) -> Vec<ChainLink> {
    let mut links = Vec::new();
    let Some(parent) = dir.parent() else {
        return links;
    };
    let mut current = manifest.clone();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(prev) = current.previous.clone() {
        if !seen.insert(prev.run_id.clone()) {
            break;
        }
        let prev_dir = parent.join(&prev.run_id);
        let mut link = ChainLink {
            run_id: current.run_id.clone(),
            previous_run_id: prev.run_id.clone(),
            status: LinkStatus::NotPresent,
        };
        let Some((prev_manifest, sha, _)) = read_manifest(&prev_dir) else {
            if prev_dir.exists() {
                link.status = LinkStatus::Broken(format!(
                    "{}/{MANIFEST} is missing or unreadable",
                    prev.run_id
                ));
            }
            links.push(link);
            break;
        };
        if sha != prev.manifest_sha256 {
            link.status = LinkStatus::Broken(format!(
                "{}/{MANIFEST} has SHA-256 {sha}, but {} recorded {}",
                prev.run_id, current.run_id, prev.manifest_sha256
            ));
            links.push(link);
            break;
        }
        link.status = match compare_files(&prev_dir, &prev_manifest.files) {
            Ok(diff) if diff.is_empty() => LinkStatus::Intact,
            Ok(diff) => LinkStatus::PredecessorAltered(
                [
                    ("altered", diff.altered),
                    ("missing", diff.missing),
                    ("extra", diff.extra),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k}: {}", v.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
            ),
            Err(e) => LinkStatus::PredecessorAltered(e),
        };
        links.push(link);
        current = prev_manifest;
    }
    links
}
