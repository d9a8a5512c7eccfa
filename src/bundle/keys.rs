//! Ed25519 signing keys on disk: PKCS#8 PEM (private, mode 0600) and SPKI PEM (public), the
//! formats openssl reads.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a key could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0} already exists; keyproof never overwrites a signing key (move it away first)")]
    Exists(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not an {what} key in PEM form: {message}")]
    Format {
        path: String,
        what: &'static str,
        message: String,
    },
    #[error("the system random number generator failed: {0}")]
    Random(String),
}

/// A signing key loaded from disk, with what the manifest says about its signer.
pub struct SigningKeyFile {
    pub key: SigningKey,
    pub path: PathBuf,
}

impl SigningKeyFile {
    /// SHA-256 of the public key's DER (SubjectPublicKeyInfo), hex: the signer's fingerprint.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key.verifying_key())
    }
}

/// The fingerprint of a public key: SHA-256 of its DER SubjectPublicKeyInfo, hex.
pub fn fingerprint(key: &VerifyingKey) -> String {
    match key.to_public_key_der() {
        Ok(der) => hex::encode(Sha256::digest(der.as_bytes())),
        Err(_) => hex::encode(Sha256::digest(key.as_bytes())),
    }
}

/// Generates a key pair into `dir`: `signing.pem` (0600) and `signing.pub.pem`. Returns both
/// paths.
pub fn init_keys(dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let private = dir.join("signing.pem");
    let public = dir.join("signing.pub.pem");
    for p in [&private, &public] {
        if p.exists() {
            return Err(KeyError::Exists(p.display().to_string()));
        }
    }
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let format_err = |path: &Path, what: &'static str, e: String| KeyError::Format {
        path: path.display().to_string(),
        what,
        message: e,
    };
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format_err(&private, "Ed25519 private", e.to_string()))?;
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format_err(&public, "Ed25519 public", e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    write_new(&private, pem.as_bytes(), 0o600)?;
    write_new(&public, pub_pem.as_bytes(), 0o644)?;
    Ok((private, public))
}

/// Creates `path` (failing if it exists) with `mode` on Unix.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    let err = |source| KeyError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Reads a PKCS#8 PEM private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKeyFile, KeyError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        KeyError::Read {
            path: path.display().to_string(),
            source,
        }
    })?);
    let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Format {
        path: path.display().to_string(),
        what: "Ed25519 private",
        message: e.to_string(),
    })?;
    Ok(SigningKeyFile {
        key,
        path: path.to_path_buf(),
    })
}

/// A verifying key: Ed25519 (a key on disk) or ECDSA P-256 (exported from KMS).
#[derive(Debug, Clone, PartialEq)]
pub enum PublicKey {
    Ed25519(VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// SHA-256 of the DER SubjectPublicKeyInfo, hex (what the manifest names).
    pub fn fingerprint(&self) -> String {
        match self {
            PublicKey::Ed25519(k) => fingerprint(k),
            PublicKey::P256(k) => {
                use p256::pkcs8::EncodePublicKey as _;
                k.to_public_key_der()
                    .map(|der| hex::encode(Sha256::digest(der.as_bytes())))
                    .unwrap_or_default()
            }
        }
    }

    /// Parses an SPKI PEM of either kind.
    pub fn from_pem(text: &str) -> Option<PublicKey> {
        use p256::pkcs8::DecodePublicKey as _;
        <VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(text)
            .map(PublicKey::Ed25519)
            .ok()
            .or_else(|| {
                p256::ecdsa::VerifyingKey::from_public_key_pem(text)
                    .map(PublicKey::P256)
                    .ok()
            })
    }
}

/// Reads an SPKI PEM public key (Ed25519, or ECDSA P-256 as exported from KMS).
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    PublicKey::from_pem(&text).ok_or_else(|| KeyError::Format {
        path: path.display().to_string(),
        what: "public (Ed25519 or ECDSA P-256)",
        message: "not a PEM SubjectPublicKeyInfo of either kind".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_private_key_only_the_owner_can_read_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (private, public) = init_keys(dir.path()).expect("keys");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&private)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let key = load_signing_key(&private).expect("private loads");
        let public = load_public_key(&public).expect("public loads");
        assert_eq!(PublicKey::Ed25519(key.key.verifying_key()), public);
        assert!(matches!(init_keys(dir.path()), Err(KeyError::Exists(_))));
    }
}
