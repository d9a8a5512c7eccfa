//! Evidence bundles: a run directory sealed with a signed manifest, chained to the run before
//! it, and verified offline.
//!
//! `manifest.json` lists every file of the run directory with its SHA-256 and size, the tool
//! version, the digests of the controls and config used, the snapshot's hash and scope, and the
//! SHA-256 of the previous run's manifest (the newest sealed sibling directory), so the monthly
//! runs form a hash chain. `manifest.sig` is the raw 64-byte Ed25519 signature over the exact
//! bytes of `manifest.json`, so an auditor can also check it without keyproof:
//! `openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin -in manifest.json -sigfile manifest.sig`.
//!
//! Not for: deciding what a run contains (the CLI writes the files first, then seals).

mod keys;
mod manifest;
mod verify;

pub use keys::{KeyError, SigningKeyFile, init_keys, load_public_key, load_signing_key};
pub use manifest::{
    FileEntry, MANIFEST, Manifest, ManifestScope, PreviousRun, SIGNATURE, SealError, SealInput,
    SignerInfo, seal,
};
pub use verify::{ChainLink, LinkStatus, SignatureStatus, Verification, verify};
