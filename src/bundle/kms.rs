//! Signing manifests with an AWS KMS asymmetric key (ECC_NIST_P256, ECDSA_SHA_256), so that no
//! private key exists outside KMS. The client is held by its own guard to `kms:Sign` and
//! `kms:GetPublicKey` (docs/iam-policy-signing.json).

use super::manifest::{ManifestSigner, SignerInfo};
use crate::collect::{Guard, Ledger};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use std::sync::Arc;

/// Why a KMS key cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum KmsSignError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("KMS {operation} on {key} failed: {message}")]
    Call {
        operation: &'static str,
        key: String,
        message: String,
    },
    #[error("{key} is not an ECC_NIST_P256 signing key (its public key is not P-256): {message}")]
    NotP256 { key: String, message: String },
}

/// A KMS key that signs manifests.
pub struct KmsSigner {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_kms::Client,
    key: String,
    key_arn: String,
    public_key: p256::ecdsa::VerifyingKey,
}

impl KmsSigner {
    /// Connects with the default AWS configuration (environment, profile, `AWS_ENDPOINT_URL`),
    /// in the key ARN's region, and reads the key's public key.
    pub fn connect(key: &str) -> Result<KmsSigner, KmsSignError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(KmsSignError::Runtime)?;
        let client = runtime.block_on(async {
            let sdk = crate::collect::default_config(crate::collect::arn_region(key), None).await;
            aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&sdk)
                    .interceptor(Guard::signing(Arc::new(Ledger::default())))
                    .build(),
            )
        });
        let call_err = |operation, e: String| KmsSignError::Call {
            operation,
            key: key.to_string(),
            message: e,
        };
        let out = runtime
            .block_on(client.get_public_key().key_id(key).send())
            .map_err(|e| {
                call_err(
                    "GetPublicKey",
                    crate::collect::ApiFailure::from_sdk(&e).to_string(),
                )
            })?;
        let der = out
            .public_key()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        let public_key = p256::ecdsa::VerifyingKey::from_public_key_der(&der).map_err(|e| {
            KmsSignError::NotP256 {
                key: key.to_string(),
                message: e.to_string(),
            }
        })?;
        // AWS answers with the key ARN; prefer an ARN from either side.
        let key_arn = match out.key_id() {
            Some(id) if id.starts_with("arn:") => id.to_string(),
            _ if key.starts_with("arn:") => key.to_string(),
            Some(id) => id.to_string(),
            None => key.to_string(),
        };
        Ok(KmsSigner {
            key_arn,
            runtime,
            client,
            key: key.to_string(),
            public_key,
        })
    }

    /// The public key as PEM, for the auditor to verify offline.
    pub fn public_key_pem(&self) -> String {
        self.public_key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }

    /// SHA-256 of the public key's DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> String {
        super::PublicKey::P256(self.public_key).fingerprint()
    }
}

impl ManifestSigner for KmsSigner {
    fn info(&self) -> SignerInfo {
        SignerInfo {
            algorithm: "ecdsa-p256-sha256".into(),
            public_key_sha256: self.fingerprint(),
            kms_key_arn: Some(self.key_arn.clone()),
        }
    }

    fn sign(&self, manifest: &[u8]) -> Result<Vec<u8>, String> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .sign()
                    .key_id(&self.key)
                    .message(Blob::new(manifest.to_vec()))
                    .message_type(MessageType::Raw)
                    .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
                    .send(),
            )
            .map_err(|e| {
                format!(
                    "KMS Sign with {} failed: {}",
                    self.key,
                    crate::collect::ApiFailure::from_sdk(&e)
                )
            })?;
        let signature = out
            .signature()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        // Never write a signature that does not verify (a wrong key, a truncated answer).
        let parsed = p256::ecdsa::Signature::from_der(&signature)
            .map_err(|e| format!("KMS returned a signature that is not DER ECDSA: {e}"))?;
        use p256::ecdsa::signature::Verifier;
        self.public_key.verify(manifest, &parsed).map_err(|_| {
            "KMS returned a signature that does not verify under the key's public key".to_string()
        })?;
        Ok(signature)
    }
}
