//! The AWS KMS key provider: GenerateDataKey and Decrypt through the official SDK, each bounded
//! by a per-call timeout, each client held by the guard to the self-test policy
//! (`docs/iam-policy-selftest.json`).
//!
//! Plaintext data keys are taken out of the SDK's output into zeroizing buffers at once. The
//! HTTP layer's own buffers are outside keyproof's reach; they are freed, not wiped.

use crate::collect::guard::{Guard, Ledger};
use crate::collect::{ApiFailure, SdkClientFactory};
use crate::selftest::provider::{Context, DataKey, KeyProvider, ProviderFactory};
use aws_config::Region;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// GenerateDataKey / Decrypt against one account and region.
pub struct KmsProvider {
    client: aws_sdk_kms::Client,
    timeout: Duration,
}

impl KmsProvider {
    pub fn new(client: aws_sdk_kms::Client, timeout: Duration) -> KmsProvider {
        KmsProvider { client, timeout }
    }
}

fn context_map(context: &Context) -> HashMap<String, String> {
    context
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn timed_out(op: &str, t: Duration) -> ApiFailure {
    ApiFailure::new(
        "Timeout",
        format!("{op} did not answer within {} ms", t.as_millis()),
    )
}

impl KeyProvider for KmsProvider {
    fn name(&self) -> &'static str {
        "aws-kms"
    }

    fn generate_data_key<'a>(
        &'a self,
        key_arn: &'a str,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<DataKey, ApiFailure>> {
        Box::pin(async move {
            let call = self
                .client
                .generate_data_key()
                .key_id(key_arn)
                .key_spec(DataKeySpec::Aes256)
                .set_encryption_context(Some(context_map(context)))
                .send();
            let mut out = tokio::time::timeout(self.timeout, call)
                .await
                .map_err(|_| timed_out("GenerateDataKey", self.timeout))?
                .map_err(|e| ApiFailure::from_sdk(&e))?;
            let plaintext = Zeroizing::new(
                out.plaintext
                    .take()
                    .map(Blob::into_inner)
                    .unwrap_or_default(),
            );
            Ok(DataKey {
                plaintext,
                ciphertext_blob: out
                    .ciphertext_blob()
                    .map(|b| b.as_ref().to_vec())
                    .unwrap_or_default(),
                key_id: out.key_id().unwrap_or(key_arn).to_string(),
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
            let call = self
                .client
                .decrypt()
                .ciphertext_blob(Blob::new(blob.to_vec()))
                .set_encryption_context(Some(context_map(context)))
                .key_id(key_arn)
                .send();
            let mut out = tokio::time::timeout(self.timeout, call)
                .await
                .map_err(|_| timed_out("Decrypt", self.timeout))?
                .map_err(|e| ApiFailure::from_sdk(&e))?;
            Ok(Zeroizing::new(
                out.plaintext
                    .take()
                    .map(Blob::into_inner)
                    .unwrap_or_default(),
            ))
        })
    }
}

/// KMS providers from the collection session's per-account configuration.
pub struct KmsProviderFactory {
    pub sessions: Arc<SdkClientFactory>,
    pub ledger: Arc<Ledger>,
    pub timeout: Duration,
}

impl ProviderFactory for KmsProviderFactory {
    fn name(&self) -> &'static str {
        "aws-kms"
    }

    fn provider(&self, account_id: &str, region: &str) -> Arc<dyn KeyProvider> {
        let sdk = self.sessions.config_for(account_id);
        let client = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&sdk)
                .region(Region::new(region.to_string()))
                .interceptor(Guard::selftest(self.ledger.clone()))
                .build(),
        );
        Arc::new(KmsProvider::new(client, self.timeout))
    }
}
