//! An in-process software key provider: the demo's stand-in for AWS KMS, labelled `simulated`
//! wherever its results appear.
//!
//! Each key of the snapshot gets a random 256-bit wrapping key that lives only in memory. A
//! data key is wrapped with AES-256-GCM under it, with the key ARN and the canonical encryption
//! context as authenticated data, so Decrypt under another context or naming another key fails
//! the way KMS does (`InvalidCiphertextException`, `IncorrectKeyException`). Key state from the
//! snapshot is honoured: a disabled key answers `DisabledException`, a key pending deletion or
//! behind a disconnected custom key store `KMSInvalidStateException` /
//! `CustomKeyStoreInvalidStateException`, as AWS does.

use crate::collect::ApiFailure;
use crate::selftest::provider::{Context, DataKey, KeyProvider, ProviderFactory};
use crate::snapshot::Snapshot;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// What the simulated provider knows of one key.
struct SimKey {
    wrapping_key: Zeroizing<[u8; 32]>,
    /// The error code every call answers with, when the key cannot be used.
    refusal: Option<&'static str>,
}

/// The simulated provider for a whole snapshot.
pub struct Simulated {
    keys: HashMap<String, SimKey>,
    /// For tests: every plaintext data key handed out, to prove none reaches an output file.
    issued: Option<Mutex<Vec<Zeroizing<Vec<u8>>>>>,
}

impl Simulated {
    /// A provider knowing every key of `snapshot`.
    pub fn for_snapshot(snapshot: &Snapshot) -> Simulated {
        let mut keys = HashMap::new();
        for acct in &snapshot.accounts {
            for reg in &acct.regions {
                for k in &reg.kms_keys {
                    let store_down = k.custom_key_store_id.as_ref().is_some_and(|id| {
                        reg.custom_key_stores
                            .iter()
                            .any(|s| &s.id == id && s.connection_state != "CONNECTED")
                    });
                    let refusal = match k.state.as_str() {
                        "Disabled" => Some("DisabledException"),
                        "Enabled" if store_down => Some("CustomKeyStoreInvalidStateException"),
                        "Enabled" => None,
                        _ => Some("KMSInvalidStateException"),
                    };
                    let mut wrapping_key = Zeroizing::new([0u8; 32]);
                    OsRng.fill_bytes(wrapping_key.as_mut());
                    keys.insert(
                        k.arn.clone(),
                        SimKey {
                            wrapping_key,
                            refusal,
                        },
                    );
                }
            }
        }
        Simulated { keys, issued: None }
    }

    /// Also remembers every data key it hands out (tests only).
    pub fn recording(mut self) -> Simulated {
        self.issued = Some(Mutex::new(Vec::new()));
        self
    }

    /// The data keys handed out so far, when recording.
    pub fn issued(&self) -> Vec<Vec<u8>> {
        self.issued
            .as_ref()
            .and_then(|m| {
                m.lock()
                    .ok()
                    .map(|v| v.iter().map(|k| k.to_vec()).collect())
            })
            .unwrap_or_default()
    }

    fn key(&self, arn: &str) -> Result<&SimKey, ApiFailure> {
        let key = self.keys.get(arn).ok_or_else(|| {
            ApiFailure::new("NotFoundException", format!("Key '{arn}' does not exist"))
        })?;
        match key.refusal {
            Some(code) => Err(ApiFailure::new(
                code,
                format!("{arn} cannot be used: {code}"),
            )),
            None => Ok(key),
        }
    }
}

/// The authenticated data binding a wrapped data key to its key and context.
fn aad(key_arn: &str, context: &Context) -> Vec<u8> {
    let mut out = key_arn.as_bytes().to_vec();
    for (k, v) in context {
        out.push(0);
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Blob layout: key ARN length (2 bytes), key ARN, nonce (12), sealed data key.
fn blob(key_arn: &str, nonce: &[u8; 12], sealed: &[u8]) -> Vec<u8> {
    let arn = key_arn.as_bytes();
    let mut out = Vec::with_capacity(2 + arn.len() + 12 + sealed.len());
    out.extend_from_slice(&(arn.len() as u16).to_be_bytes());
    out.extend_from_slice(arn);
    out.extend_from_slice(nonce);
    out.extend_from_slice(sealed);
    out
}

fn parse_blob(blob: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let len = usize::from(u16::from_be_bytes([*blob.first()?, *blob.get(1)?]));
    let arn = std::str::from_utf8(blob.get(2..2 + len)?).ok()?;
    let nonce = blob.get(2 + len..14 + len)?;
    let sealed = blob.get(14 + len..)?;
    Some((arn, nonce, sealed))
}

fn invalid_ciphertext() -> ApiFailure {
    ApiFailure::new(
        "InvalidCiphertextException",
        "the ciphertext or its encryption context is invalid",
    )
}

impl KeyProvider for Simulated {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn generate_data_key<'a>(
        &'a self,
        key_arn: &'a str,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<DataKey, ApiFailure>> {
        Box::pin(async move {
            let key = self.key(key_arn)?;
            let mut plaintext = Zeroizing::new(vec![0u8; 32]);
            OsRng.fill_bytes(plaintext.as_mut_slice());
            let mut nonce = [0u8; 12];
            OsRng.fill_bytes(&mut nonce);
            let cipher = Aes256Gcm::new_from_slice(key.wrapping_key.as_ref())
                .map_err(|_| ApiFailure::new("KMSInternalException", "bad wrapping key"))?;
            let sealed = cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: plaintext.as_slice(),
                        aad: &aad(key_arn, context),
                    },
                )
                .map_err(|_| ApiFailure::new("KMSInternalException", "wrapping failed"))?;
            if let Some(issued) = &self.issued
                && let Ok(mut list) = issued.lock()
            {
                list.push(plaintext.clone());
            }
            Ok(DataKey {
                plaintext,
                ciphertext_blob: blob(key_arn, &nonce, &sealed),
                key_id: key_arn.to_string(),
            })
        })
    }

    fn decrypt<'a>(
        &'a self,
        blob: &'a [u8],
        context: &'a Context,
        key_arn: &'a str,
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, ApiFailure>> {
        Box::pin(async move {
            let (wrapped_by, nonce, sealed) = parse_blob(blob).ok_or_else(invalid_ciphertext)?;
            if wrapped_by != key_arn {
                // What KMS answers when Decrypt names a key other than the one that encrypted.
                self.key(key_arn)?;
                return Err(ApiFailure::new(
                    "IncorrectKeyException",
                    "the key ID in the request does not identify the key that encrypted the ciphertext",
                ));
            }
            let key = self.key(key_arn)?;
            let cipher = Aes256Gcm::new_from_slice(key.wrapping_key.as_ref())
                .map_err(|_| ApiFailure::new("KMSInternalException", "bad wrapping key"))?;
            cipher
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad(key_arn, context),
                    },
                )
                .map(Zeroizing::new)
                .map_err(|_| invalid_ciphertext())
        })
    }
}

/// One simulated provider serving every account and region.
pub struct SimulatedFactory(pub Arc<Simulated>);

impl ProviderFactory for SimulatedFactory {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn provider(&self, _account_id: &str, _region: &str) -> Arc<dyn KeyProvider> {
        self.0.clone()
    }
}
