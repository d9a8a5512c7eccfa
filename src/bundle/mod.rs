//! Evidence bundles: a run directory sealed with a signed manifest, chained to the run before
//! it, and verified offline.
//!
//! `manifest.json` lists every file of the run directory with its SHA-256 and size, the tool
//! version, the digests of the controls and config used, the snapshot's hash and scope, and the
//! SHA-256 of the previous run's manifest (the newest sealed sibling directory), so the monthly
//! runs form a hash chain. `manifest.sig` is the signature over the exact bytes of
//! `manifest.json`: raw 64-byte Ed25519 with a key on disk, or DER ECDSA P-256/SHA-256 made by an
//! AWS KMS key (the private key never leaves KMS). An auditor can also check it without
//! keyproof: `openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin -in manifest.json
//! -sigfile manifest.sig` (Ed25519) or `openssl dgst -sha256 -verify kms.pub.pem -signature
//! manifest.sig manifest.json` (KMS).
//!
//! Not for: deciding what a run contains (the CLI writes the files first, then seals).

mod keys;
mod kms;
mod manifest;
mod publish;
pub(crate) use publish::s3_client;
mod verify;

pub use keys::{KeyError, PublicKey, SigningKeyFile, init_keys, load_public_key, load_signing_key};
pub use kms::{KmsSignError, KmsSigner};
pub use manifest::{
    FileEntry, MANIFEST, Manifest, ManifestScope, ManifestSigner, PreviousRun, SIGNATURE,
    SealError, SealInput, SignerInfo, read_manifest, seal,
};
pub use publish::{PublishConfig, PublishError, PublishOptions, Published, S3Url, publish};
pub use verify::{ChainLink, LinkStatus, SignatureStatus, Verification, verify};
