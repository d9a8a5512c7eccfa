//! The evidence snapshot, schema version 1: everything keyproof collected about one AWS estate.
//!
//! The snapshot is the contract between collection and everything after it. Evaluation and
//! reporting read only this structure, which is what lets an auditor re-create a report offline
//! from the snapshot file alone. Field names are stable within a schema version; a change that
//! renames or re-types a field needs a new [`SCHEMA_VERSION`].
//!
//! Conventions:
//! - Times are RFC 3339 in UTC.
//! - Optional evidence that the API did not return is `null` (never a made-up default), so a rule
//!   that needs it comes out ERROR instead of passing on a guess.
//! - Strings from AWS (descriptions, tags, aliases, policy documents) are kept verbatim: they are
//!   attacker-controlled data, and every reporter escapes them for its own format.
//! - Evidence that could not be collected is listed in [`Snapshot::gaps`]; the absence of a gap is
//!   what makes an empty list mean "there are none".
//!
//! See `docs/snapshot.md` for the schema as a document.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Tags as AWS returns them: key → value. Ordered, so serialization is deterministic.
pub type Tags = BTreeMap<String, String>;

/// One evidence snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Always [`SCHEMA_VERSION`] for snapshots this build writes.
    pub schema_version: u32,
    /// The tool (and version) that collected the evidence.
    pub tool: ToolInfo,
    /// Where the evidence came from.
    pub source: SnapshotSource,
    /// When collection started.
    pub collected_at: DateTime<Utc>,
    /// When collection finished.
    pub completed_at: DateTime<Utc>,
    /// What was meant to be collected. Evaluation checks every account × region here, and a
    /// pair with no data and no gap is itself reported as missing evidence.
    pub scope: Scope,
    /// Evidence per account.
    pub accounts: Vec<AccountEvidence>,
    /// Evidence that could not be collected.
    pub gaps: Vec<Gap>,
    /// The envelope-encryption self-test; `None` when it was not run. Optional: snapshots
    /// written before it existed omit it.
    #[serde(default)]
    pub selftest: Option<SelfTest>,
    /// KMS activity read from the trail's CloudTrail log files (with the digest check when it
    /// ran); `None` when no log source was given. Optional: older snapshots omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_activity: Option<crate::logs::AuditLogs>,
}

/// The envelope-encryption self-test: known-answer tests, then a round trip per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTest {
    /// `aws-kms`, or `simulated` for the in-process software provider of the demo (reports
    /// label it).
    pub provider: String,
    /// Bound into every encryption context and AAD of the run.
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    /// AES-256-GCM known-answer tests, run first.
    pub kat: KatResult,
    /// One entry per key tested (or not tested), in snapshot order.
    pub keys: Vec<KeySelfTest>,
}

/// The known-answer tests' outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KatResult {
    pub passed: bool,
    pub vectors: u32,
    pub failures: Vec<String>,
}

/// The round trip through one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySelfTest {
    pub account_id: String,
    pub region: String,
    pub key_arn: String,
    pub key_spec: String,
    /// `PASS` (every step and every negative check behaved), `FAIL` (the key does not protect
    /// data as it must), `ERROR` (could not be tested: access, throttling, timeout, a failed
    /// known-answer test) or `NOT_TESTED` (over `--max-keys`).
    pub result: String,
    /// The step that failed: `GenerateDataKey`, `EncryptCanary`, `Decrypt`, `CompareDataKey`,
    /// `DecryptCanary`, `TamperedTag`, `WrongContext`, `WrongKey`.
    pub failed_step: Option<String>,
    /// The KMS error code of the failed step, if any.
    pub error_code: Option<String>,
    pub message: String,
    pub generate_ms: Option<u64>,
    pub decrypt_ms: Option<u64>,
    /// The data key spec requested (`AES_256`) and the local cipher (`AES-256-GCM`).
    pub data_key_spec: String,
    pub local_cipher: String,
    /// Negative checks: `true` when the forgery was rejected as it must be; `None` when not
    /// reached.
    pub tampered_tag_rejected: Option<bool>,
    pub wrong_context_rejected: Option<bool>,
    pub wrong_key_rejected: Option<bool>,
}

/// The collecting tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

/// Where a snapshot's evidence came from; reports label anything that is not live AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotSource {
    /// Collected from AWS APIs.
    Aws,
    /// The embedded fictitious sample estate (`keyproof demo`).
    Sample,
    /// Generated for benchmarks and tests.
    Synthetic,
}

/// What the collection covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub accounts: Vec<AccountRef>,
    pub regions: Vec<String>,
    /// Start of the CloudTrail event window.
    pub events_since: Option<DateTime<Utc>>,
}

/// An AWS account in scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRef {
    pub account_id: String,
    /// A human name (from AWS Organizations or the config), if known.
    pub name: Option<String>,
}

/// Evidence collected in one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEvidence {
    pub account_id: String,
    pub regions: Vec<RegionEvidence>,
}

/// Evidence collected in one account and region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegionEvidence {
    pub region: String,
    pub kms_keys: Vec<KmsKey>,
    pub custom_key_stores: Vec<CustomKeyStore>,
    pub cloudhsm_clusters: Vec<CloudHsmCluster>,
    /// Trails returned by DescribeTrails in this region, including shadow trails of multi-Region
    /// trails whose home is elsewhere (see [`Trail::home_region`]).
    pub trails: Vec<Trail>,
    /// Summary of KMS activity over the event window; `None` when not collected.
    pub kms_events: Option<KmsEventSummary>,
    pub config_recorders: Vec<ConfigRecorder>,
    /// Resources that can be encrypted with KMS, as AWS Config records them.
    pub resources: Vec<EncryptedResource>,
}

/// A KMS key with its metadata, policy, grants, tags and rotation evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsKey {
    pub key_id: String,
    pub arn: String,
    /// Alias names (`alias/...`) that point at this key.
    pub aliases: Vec<String>,
    pub description: String,
    /// `CUSTOMER` or `AWS`.
    pub key_manager: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`, `PendingImport`, `PendingReplicaDeletion`,
    /// `Unavailable`, `Creating`, `Updating`.
    pub state: String,
    /// `SYMMETRIC_DEFAULT`, `RSA_2048`, `ECC_NIST_P256`, `HMAC_256`, ...
    pub spec: String,
    /// `ENCRYPT_DECRYPT`, `SIGN_VERIFY`, `GENERATE_VERIFY_MAC`, `KEY_AGREEMENT`.
    pub usage: String,
    /// `AWS_KMS`, `EXTERNAL`, `AWS_CLOUDHSM`, `EXTERNAL_KEY_STORE`.
    pub origin: String,
    pub custom_key_store_id: Option<String>,
    pub multi_region: Option<MultiRegion>,
    pub created_at: DateTime<Utc>,
    /// Set when the key is pending deletion.
    pub deletion_date: Option<DateTime<Utc>>,
    /// `None` when rotation status was not collected (see gaps) or does not apply.
    pub rotation: Option<Rotation>,
    /// The key policy named `default`, verbatim as GetKeyPolicy returned it. `None` when it
    /// could not be read (see gaps).
    pub policy: Option<String>,
    pub grants: Vec<Grant>,
    pub tags: Tags,
    /// From GetKeyLastUsage; `None` when not collected (absent in snapshots written before
    /// keyproof read it, or see gaps).
    #[serde(default)]
    pub last_usage: Option<KeyLastUsage>,
}

/// When KMS last saw a key used for a successful cryptographic operation (GetKeyLastUsage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLastUsage {
    /// Since when KMS tracks the key's use (tracking start or key creation, the later).
    pub tracking_since: Option<DateTime<Utc>>,
    /// `None` when the key has not been used since tracking began.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The operation, e.g. `Decrypt`.
    pub operation: Option<String>,
    /// The CloudTrail event of that use.
    pub cloudtrail_event_id: Option<String>,
}

/// Multi-Region key configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiRegion {
    /// `PRIMARY` or `REPLICA`.
    pub key_type: String,
    pub primary_arn: String,
    pub replica_arns: Vec<String>,
}

/// Rotation evidence from GetKeyRotationStatus and ListKeyRotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub enabled: bool,
    /// `RotationPeriodInDays`; `None` when AWS did not return it.
    pub period_days: Option<u32>,
    pub next_rotation_date: Option<DateTime<Utc>>,
    /// Completed rotations, oldest first.
    pub history: Vec<RotationEvent>,
}

impl Rotation {
    /// The record of a key rotated automatically every `period_days` since `created`, as it
    /// stands at `until` (used by the embedded estates).
    pub fn automatic_since(
        created: DateTime<Utc>,
        period_days: u32,
        until: DateTime<Utc>,
    ) -> Rotation {
        let step = chrono::Duration::days(i64::from(period_days));
        let mut history = Vec::new();
        let mut next = created + step;
        while next <= until {
            history.push(RotationEvent {
                rotated_at: next,
                rotation_type: "AUTOMATIC".into(),
            });
            next += step;
        }
        Rotation {
            enabled: true,
            period_days: Some(period_days),
            next_rotation_date: Some(next),
            history,
        }
    }
}

/// One completed rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationEvent {
    pub rotated_at: DateTime<Utc>,
    /// `AUTOMATIC` or `ON_DEMAND`.
    pub rotation_type: String,
}

/// A KMS grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub grant_id: String,
    pub name: Option<String>,
    pub grantee_principal: String,
    pub retiring_principal: Option<String>,
    pub issuing_account: Option<String>,
    pub operations: Vec<String>,
    /// Encryption-context constraints, as the API returns them.
    pub constraints: Option<GrantConstraints>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Encryption-context constraints on a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConstraints {
    pub encryption_context_subset: Option<BTreeMap<String, String>>,
    pub encryption_context_equals: Option<BTreeMap<String, String>>,
}

/// A KMS custom key store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomKeyStore {
    pub id: String,
    pub name: String,
    /// `AWS_CLOUDHSM` or `EXTERNAL_KEY_STORE`.
    pub store_type: String,
    /// `CONNECTED`, `CONNECTING`, `FAILED`, `DISCONNECTED`, `DISCONNECTING`.
    pub connection_state: String,
    pub connection_error_code: Option<String>,
    pub cloudhsm_cluster_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// An AWS CloudHSM cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudHsmCluster {
    pub cluster_id: String,
    /// `ACTIVE`, `UNINITIALIZED`, `DEGRADED`, ...
    pub state: String,
    pub hsm_type: Option<String>,
    pub hsms: Vec<Hsm>,
}

/// One HSM in a CloudHSM cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hsm {
    pub hsm_id: String,
    pub availability_zone: String,
    pub state: String,
}

/// A CloudTrail trail as seen from one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trail {
    pub name: String,
    pub arn: String,
    pub home_region: String,
    pub is_multi_region: bool,
    pub is_organization_trail: bool,
    pub log_file_validation: bool,
    /// KMS key that encrypts the log files, if any.
    pub kms_key_id: Option<String>,
    pub s3_bucket: Option<String>,
    /// From GetTrailStatus; `None` when the status could not be read.
    pub is_logging: Option<bool>,
    pub latest_delivery_error: Option<String>,
    pub latest_delivery_time: Option<DateTime<Utc>>,
    /// Basic and advanced event selectors, normalized; `None` when they could not be read.
    pub selectors: Option<EventSelectors>,
}

/// Event selectors reduced to the questions an auditor asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSelectors {
    /// Management events are logged (read and write, or write-only: see `management_read`).
    pub management_events: bool,
    pub management_read: bool,
    pub management_write: bool,
    /// KMS management/data events are not excluded (`ExcludeManagementEventSources` does not
    /// name `kms.amazonaws.com`).
    pub kms_events_included: bool,
    /// `basic` or `advanced`.
    pub selector_kind: String,
    /// The selectors verbatim as JSON, for the auditor.
    pub raw: String,
}

/// A summary of KMS activity from CloudTrail over the event window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsEventSummary {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub total_events: u64,
    /// Count per event name.
    pub by_event_name: BTreeMap<String, u64>,
    /// Failed calls per error code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Administrative and failed events worth an auditor's eye, newest first, at most
    /// [`KmsEventSummary::NOTABLE_LIMIT`].
    pub notable: Vec<KmsEvent>,
    /// Notable events beyond the limit, counted but not listed.
    #[serde(default)]
    pub notable_omitted: u64,
}

impl KmsEventSummary {
    /// The most notable events a snapshot lists; the counts above always cover all events.
    pub const NOTABLE_LIMIT: usize = 5_000;
}

/// One CloudTrail KMS event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsEvent {
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub event_name: String,
    pub principal_arn: Option<String>,
    pub source_ip: Option<String>,
    pub key_arn: Option<String>,
    pub error_code: Option<String>,
}

/// An AWS Config configuration recorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigRecorder {
    pub name: String,
    pub recording: bool,
    pub all_supported: bool,
    /// Resource types recorded when not `all_supported`.
    pub resource_types: Vec<String>,
    pub last_status: Option<String>,
}

/// A resource that can be encrypted with a KMS key (RDS, EBS, S3, Secrets Manager, SNS, SQS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedResource {
    /// AWS Config resource type, e.g. `AWS::SQS::Queue`.
    pub resource_type: String,
    pub resource_id: String,
    pub arn: String,
    pub name: Option<String>,
    /// `None` when the encryption setting could not be determined.
    pub encrypted: Option<bool>,
    /// The KMS key as the resource names it (key id, key ARN, alias name or alias ARN); `None`
    /// when unencrypted or encrypted with an AWS-owned key (see `encryption_type`).
    pub kms_key_id: Option<String>,
    /// `NONE`, `AWS_OWNED` (e.g. SSE-S3, SSE-SQS), `AWS_MANAGED_KMS`, `CUSTOMER_KMS`, or `UNKNOWN`.
    pub encryption_type: String,
    pub tags: Tags,
}

/// A piece of evidence that could not be collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gap {
    pub account_id: String,
    pub region: String,
    /// AWS service, e.g. `kms`.
    pub service: String,
    /// The API operation that failed, e.g. `ListKeys`.
    pub api: String,
    /// The evidence category this would have provided; controls declare which categories they
    /// need (see [`crate::snapshot::EvidenceKind`]).
    pub evidence: crate::snapshot::EvidenceKind,
    /// Set when only one resource's evidence is missing (e.g. one key's policy).
    pub resource_arn: Option<String>,
    /// AWS error code, e.g. `AccessDeniedException`, `ThrottlingException`.
    pub error_code: String,
    pub message: String,
}
