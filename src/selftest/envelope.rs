//! The envelope round trip through one key, and the forgeries that must fail.
//!
//! GenerateDataKey (AES_256) with an encryption context naming the run and the key → encrypt a
//! random canary locally with AES-256-GCM under the data key, the AAD binding the run id and key
//! ARN → Decrypt the wrapped data key under the same context → compare with the original →
//! decrypt the canary and compare. Then three checks that must fail: a flipped bit in the
//! canary's tag, Decrypt under another encryption context, Decrypt naming another key.

use crate::collect::ApiFailure;
use crate::selftest::provider::{Context, KeyProvider};
use crate::snapshot::KeySelfTest;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::time::Instant;
use zeroize::Zeroizing;

/// Size of the random canary message.
const CANARY_BYTES: usize = 64;

/// The key to test and where it lives.
#[derive(Debug, Clone)]
pub struct Target {
    pub account_id: String,
    pub region: String,
    pub key_arn: String,
    pub key_spec: String,
    /// A key ARN that did not wrap the data key, for the wrong-key check.
    pub other_key_arn: String,
}

/// The encryption context of a run and key.
pub fn context(run_id: &str, key_arn: &str) -> Context {
    Context::from([
        ("keyproof:run".to_string(), run_id.to_string()),
        ("keyproof:key".to_string(), key_arn.to_string()),
    ])
}

/// The AAD of the canary: binds it to the run and the key.
fn canary_aad(run_id: &str, key_arn: &str) -> Vec<u8> {
    format!("keyproof-selftest\0{run_id}\0{key_arn}").into_bytes()
}

/// Classifies a provider failure: errors that mean "not tested" (access, throttling, time) are
/// ERROR, the rest mean the key does not work and are FAIL.
fn verdict_for(failure: &ApiFailure) -> &'static str {
    const NOT_TESTED: &[&str] = &[
        "AccessDeniedException",
        "AccessDenied",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "Timeout",
        "TimeoutError",
        "DispatchFailure",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyproofReadOnlyGuard",
        "UnrecognizedClientException",
        "ExpiredTokenException",
    ];
    if NOT_TESTED.contains(&failure.code.as_str()) {
        "ERROR"
    } else {
        "FAIL"
    }
}

/// What to tell the reader about a failed call.
fn advice(step: &str, failure: &ApiFailure) -> String {
    let action = if step == "GenerateDataKey" {
        "kms:GenerateDataKey"
    } else {
        "kms:Decrypt"
    };
    match failure.code.as_str() {
        "AccessDeniedException" | "AccessDenied" => format!(
            "{step} was refused: the audit role may not use this key. Grant {action} on it (docs/iam-policy-selftest.json, bound to keyproof's encryption context) to prove it works. AWS said: {}",
            failure.message
        ),
        "DisabledException" => format!(
            "{step} failed: the key is disabled, so data under it cannot be read ({})",
            failure.message
        ),
        "KMSInvalidStateException" => format!(
            "{step} failed: the key's state does not allow use, e.g. pending deletion ({})",
            failure.message
        ),
        "CustomKeyStoreInvalidStateException" | "KeyUnavailableException" => format!(
            "{step} failed: the key's custom key store is not connected or its HSMs are unavailable ({})",
            failure.message
        ),
        _ => format!("{step} failed with {}: {}", failure.code, failure.message),
    }
}

/// The result for a key that was not put through the round trip (failed known-answer tests,
/// over `--max-keys`).
pub fn not_run(t: &Target, result: &str, step: &str, message: &str) -> KeySelfTest {
    Outcome::new(t).failed(step, result, None, message.to_string())
}

/// A result under construction.
struct Outcome(KeySelfTest);

impl Outcome {
    fn new(t: &Target) -> Outcome {
        Outcome(KeySelfTest {
            account_id: t.account_id.clone(),
            region: t.region.clone(),
            key_arn: t.key_arn.clone(),
            key_spec: t.key_spec.clone(),
            result: "PASS".into(),
            failed_step: None,
            error_code: None,
            message: String::new(),
            generate_ms: None,
            decrypt_ms: None,
            data_key_spec: "AES_256".into(),
            local_cipher: "AES-256-GCM".into(),
            tampered_tag_rejected: None,
            wrong_context_rejected: None,
            wrong_key_rejected: None,
        })
    }

    fn failed(
        mut self,
        step: &str,
        result: &str,
        code: Option<&str>,
        message: String,
    ) -> KeySelfTest {
        self.0.result = result.into();
        self.0.failed_step = Some(step.into());
        self.0.error_code = code.map(str::to_string);
        self.0.message = message;
        self.0
    }

    fn call_failed(self, step: &str, failure: &ApiFailure) -> KeySelfTest {
        let result = verdict_for(failure);
        let message = advice(step, failure);
        self.failed(step, result, Some(&failure.code), message)
    }
}

fn ms(since: Instant) -> Option<u64> {
    u64::try_from(since.elapsed().as_millis()).ok()
}

/// Runs the round trip and the negative checks through `provider`.
pub async fn round_trip(provider: &dyn KeyProvider, run_id: &str, t: &Target) -> KeySelfTest {
    let mut out = Outcome::new(t);
    let ctx = context(run_id, &t.key_arn);

    let started = Instant::now();
    let data_key = match provider.generate_data_key(&t.key_arn, &ctx).await {
        Ok(k) => k,
        Err(e) => return out.call_failed("GenerateDataKey", &e),
    };
    out.0.generate_ms = ms(started);
    if data_key.plaintext.len() != 32 {
        let n = data_key.plaintext.len();
        return out.failed(
            "GenerateDataKey",
            "FAIL",
            None,
            format!("GenerateDataKey returned a {n}-byte data key, not 32 (AES_256)"),
        );
    }

    // Encrypt a random canary locally under the data key.
    let mut canary = Zeroizing::new(vec![0u8; CANARY_BYTES]);
    OsRng.fill_bytes(canary.as_mut_slice());
    let mut nonce = [0u8; 12];
    OsRng.fill_bytes(&mut nonce);
    let aad = canary_aad(run_id, &t.key_arn);
    let sealed = Aes256Gcm::new_from_slice(&data_key.plaintext)
        .ok()
        .and_then(|c| {
            c.encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: canary.as_slice(),
                    aad: &aad,
                },
            )
            .ok()
        });
    let Some(sealed) = sealed else {
        return out.failed(
            "EncryptCanary",
            "FAIL",
            None,
            "AES-256-GCM encryption under the data key failed".into(),
        );
    };

    // Unwrap the data key through KMS and compare.
    let started = Instant::now();
    let unwrapped = match provider
        .decrypt(&data_key.ciphertext_blob, &ctx, &t.key_arn)
        .await
    {
        Ok(k) => k,
        Err(e) => return out.call_failed("Decrypt", &e),
    };
    out.0.decrypt_ms = ms(started);
    if unwrapped.as_slice() != data_key.plaintext.as_slice() {
        return out.failed(
            "CompareDataKey",
            "FAIL",
            None,
            "Decrypt returned a data key different from the one GenerateDataKey gave".into(),
        );
    }
    let opened = Aes256Gcm::new_from_slice(&unwrapped).ok().and_then(|c| {
        c.decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &sealed,
                aad: &aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
    });
    if opened.as_deref().map(Vec::as_slice) != Some(canary.as_slice()) {
        return out.failed(
            "DecryptCanary",
            "FAIL",
            None,
            "the canary did not decrypt to what was encrypted".into(),
        );
    }

    // Negative 1: a flipped bit in the tag must be rejected.
    let mut tampered = sealed.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 0x01;
    }
    let accepted = Aes256Gcm::new_from_slice(&unwrapped)
        .ok()
        .and_then(|c| {
            c.decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &tampered,
                    aad: &aad,
                },
            )
            .ok()
        })
        .is_some();
    out.0.tampered_tag_rejected = Some(!accepted);
    if accepted {
        return out.failed(
            "TamperedTag",
            "FAIL",
            None,
            "a canary with a flipped tag bit was accepted".into(),
        );
    }

    // Negative 2: Decrypt under another encryption context must fail.
    let wrong_ctx = context(&format!("{run_id}-forged"), &t.key_arn);
    match provider
        .decrypt(&data_key.ciphertext_blob, &wrong_ctx, &t.key_arn)
        .await
    {
        Ok(_) => {
            out.0.wrong_context_rejected = Some(false);
            return out.failed(
                "WrongContext",
                "FAIL",
                None,
                "Decrypt under a different encryption context succeeded: the context is not bound"
                    .into(),
            );
        }
        Err(e) if verdict_for(&e) == "ERROR" => return out.call_failed("WrongContext", &e),
        Err(_) => out.0.wrong_context_rejected = Some(true),
    }

    // Negative 3: Decrypt naming another key must fail.
    match provider
        .decrypt(&data_key.ciphertext_blob, &ctx, &t.other_key_arn)
        .await
    {
        Ok(_) => {
            out.0.wrong_key_rejected = Some(false);
            return out.failed(
                "WrongKey",
                "FAIL",
                None,
                format!(
                    "Decrypt naming {} succeeded for data wrapped by this key",
                    t.other_key_arn
                ),
            );
        }
        Err(e) if verdict_for(&e) == "ERROR" && e.code != "AccessDeniedException" => {
            return out.call_failed("WrongKey", &e);
        }
        // AccessDenied on a key the role may not use is also a refusal: the data stays closed.
        Err(_) => out.0.wrong_key_rejected = Some(true),
    }

    out.0.message = format!(
        "data key generated, unwrapped and verified; canary encrypted and decrypted; tampered tag, wrong encryption context and wrong key all rejected (provider: {})",
        provider.name()
    );
    out.0
}
