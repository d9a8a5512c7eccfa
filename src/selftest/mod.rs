//! The envelope-encryption self-test: proof that the keys really protect data.
//!
//! First the AES-256-GCM known-answer tests ([`kat`]); if one fails, nothing is encrypted and
//! every key comes out ERROR. Then, per in-scope key (customer managed, symmetric,
//! ENCRYPT_DECRYPT, or the keys named with `--key`), the round trip of [`envelope`] through a
//! [`provider::KeyProvider`]: AWS KMS ([`kms_provider`]) or, for the demo, the in-process
//! [`simulated`] provider. Results go into the snapshot's `selftest` section; keys that could
//! not be tested also become gaps, so their controls come out ERROR, never PASS.
//!
//! Plaintext data keys and canaries live only in memory, in zeroizing buffers; nothing secret is
//! written to the snapshot, the reports or the logs.

pub mod envelope;
pub mod kat;
pub mod kms_provider;
pub mod provider;
pub mod simulated;

use crate::snapshot::{EvidenceKind, Gap, KatResult, KeySelfTest, SelfTest, Snapshot};
use chrono::Utc;
use futures_util::StreamExt;
use provider::ProviderFactory;

/// Which keys and how.
#[derive(Debug, Clone)]
pub struct SelfTestOptions {
    /// Bound into every encryption context and AAD.
    pub run_id: String,
    /// Only these key ARNs (or key ids); empty means every in-scope key.
    pub keys: Vec<String>,
    /// Most keys tested; the rest are NOT_TESTED.
    pub max_keys: usize,
    /// Round trips at once.
    pub concurrency: usize,
    /// The known-answer vectors run first ([`kat::embedded`] unless a test substitutes them).
    pub kat_vectors: Vec<kat::Vector>,
}

impl SelfTestOptions {
    /// Every in-scope key, the embedded vectors.
    pub fn new(run_id: impl Into<String>) -> SelfTestOptions {
        SelfTestOptions {
            run_id: run_id.into(),
            keys: Vec::new(),
            max_keys: usize::MAX,
            concurrency: 8,
            kat_vectors: kat::embedded(),
        }
    }
}

/// Whether a key is tested by default: customer managed symmetric encryption keys.
fn in_scope(key: &crate::snapshot::KmsKey) -> bool {
    key.key_manager == "CUSTOMER"
        && key.spec == "SYMMETRIC_DEFAULT"
        && key.usage == "ENCRYPT_DECRYPT"
}

/// Runs the self-test over `snapshot`'s keys and returns the evidence, plus the gaps for keys
/// that could not be tested.
pub async fn run(
    snapshot: &Snapshot,
    providers: &dyn ProviderFactory,
    options: &SelfTestOptions,
) -> (SelfTest, Vec<Gap>) {
    let started_at = Utc::now();
    let kat_outcome = kat::run(&options.kat_vectors);
    let kat = KatResult {
        passed: kat_outcome.passed(),
        vectors: kat_outcome.vectors,
        failures: kat_outcome.failures,
    };

    let mut targets = Vec::new();
    for acct in &snapshot.accounts {
        for reg in &acct.regions {
            let region_keys: Vec<&crate::snapshot::KmsKey> = reg.kms_keys.iter().collect();
            for key in &region_keys {
                let chosen = if options.keys.is_empty() {
                    in_scope(key)
                } else {
                    options
                        .keys
                        .iter()
                        .any(|k| *k == key.arn || *k == key.key_id)
                };
                if !chosen {
                    continue;
                }
                // Another key of the same region for the wrong-key check, else a key id that
                // cannot exist (KMS refuses either way).
                let other = region_keys
                    .iter()
                    .find(|k| k.arn != key.arn && in_scope(k))
                    .map(|k| k.arn.clone())
                    .unwrap_or_else(|| {
                        format!(
                            "arn:aws:kms:{}:{}:key/00000000-0000-4000-8000-000000000000",
                            reg.region, acct.account_id
                        )
                    });
                targets.push(envelope::Target {
                    account_id: acct.account_id.clone(),
                    region: reg.region.clone(),
                    key_arn: key.arn.clone(),
                    key_spec: key.spec.clone(),
                    other_key_arn: other,
                });
            }
        }
    }

    let results: Vec<KeySelfTest> = if !kat.passed {
        targets
            .iter()
            .map(|t| envelope::not_run(t, "ERROR", "KnownAnswerTest", &format!(
                "the AES-256-GCM known-answer tests failed ({}); nothing was encrypted with a primitive that does not give the known answers",
                kat.failures.join("; ")
            )))
            .collect()
    } else {
        let limit = options.max_keys;
        let tested: Vec<KeySelfTest> =
            futures_util::stream::iter(targets.iter().take(limit).map(|t| async move {
                let provider = providers.provider(&t.account_id, &t.region);
                envelope::round_trip(provider.as_ref(), &options.run_id, t).await
            }))
            .buffered(options.concurrency.max(1))
            .collect()
            .await;
        let skipped = targets.iter().skip(limit).map(|t| {
            envelope::not_run(
                t,
                "NOT_TESTED",
                "MaxKeys",
                &format!("not tested: over --max-keys {limit}"),
            )
        });
        tested.into_iter().chain(skipped).collect()
    };

    let gaps = results
        .iter()
        .filter(|r| r.result == "ERROR" || r.result == "NOT_TESTED")
        .map(|r| Gap {
            account_id: r.account_id.clone(),
            region: r.region.clone(),
            service: "kms".into(),
            api: r.failed_step.clone().unwrap_or_else(|| "SelfTest".into()),
            evidence: EvidenceKind::SelfTest,
            resource_arn: Some(r.key_arn.clone()),
            error_code: r.error_code.clone().unwrap_or_else(|| r.result.clone()),
            message: r.message.clone(),
        })
        .collect();
    let selftest = SelfTest {
        provider: providers.name().to_string(),
        run_id: options.run_id.clone(),
        started_at,
        completed_at: Utc::now(),
        kat,
        keys: results,
    };
    (selftest, gaps)
}

/// Adds the self-test to a snapshot: its section, and its gaps.
pub fn attach(snapshot: &mut Snapshot, selftest: SelfTest, gaps: Vec<Gap>) {
    snapshot.gaps.extend(gaps);
    snapshot.selftest = Some(selftest);
}
