//! The two KMS calls the self-test needs, behind one interface: AWS KMS for real runs, an
//! in-process software provider for the demo and tests.

use crate::collect::ApiFailure;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// An encryption context: the key-value pairs bound to a data key.
pub type Context = BTreeMap<String, String>;

/// A generated data key. The plaintext is wiped from memory when dropped.
pub struct DataKey {
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The data key wrapped under the KMS key, as GenerateDataKey returns it.
    pub ciphertext_blob: Vec<u8>,
    /// The KMS key (ARN) that wrapped it.
    pub key_id: String,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in a debug dump.
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("ciphertext_blob_len", &self.ciphertext_blob.len())
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// GenerateDataKey and Decrypt, as the self-test uses them.
pub trait KeyProvider: Send + Sync {
    /// `aws-kms` or `simulated`.
    fn name(&self) -> &'static str;

    /// GenerateDataKey with `KeySpec=AES_256` under `key_arn`, bound to `context`.
    fn generate_data_key<'a>(
        &'a self,
        key_arn: &'a str,
        context: &'a Context,
    ) -> BoxFuture<'a, Result<DataKey, ApiFailure>>;

    /// Decrypt of `blob` under `context`, naming `key_arn` as the key that must have wrapped it.
    fn decrypt<'a>(
        &'a self,
        blob: &'a [u8],
        context: &'a Context,
        key_arn: &'a str,
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, ApiFailure>>;
}

/// A provider per account and region.
pub trait ProviderFactory: Send + Sync {
    /// The providers' name (`aws-kms`, `simulated`), as recorded in the snapshot.
    fn name(&self) -> &'static str;
    fn provider(&self, account_id: &str, region: &str) -> Arc<dyn KeyProvider>;
}
