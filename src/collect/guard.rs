//! The read-only guard: an SDK interceptor on every client keyproof builds for collection.
//!
//! It does two jobs. It refuses, before anything is sent, any operation that the shipped
//! least-privilege policy (`docs/iam-policy.json`) does not list, so collection cannot call a
//! mutating API even by mistake; and it counts the requests actually sent (retries included)
//! and records which operations ran, for the run summary and for the test that holds the code
//! to the policy.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The least-privilege IAM policy for collection, as shipped to users.
pub const IAM_POLICY: &str = include_str!("../../docs/iam-policy.json");

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyDoc {
    statement: Vec<PolicyStatement>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyStatement {
    action: Vec<String>,
}

/// The extra policy of the envelope-encryption self-test (GenerateDataKey and Decrypt, bound
/// to keyproof's encryption context), kept apart from the read-only collection policy.
pub const SELFTEST_IAM_POLICY: &str = include_str!("../../docs/iam-policy-selftest.json");

/// The policy of manifest signing with a KMS key (`--sign-with-kms`): Sign and GetPublicKey.
pub const SIGNING_IAM_POLICY: &str = include_str!("../../docs/iam-policy-signing.json");

fn actions_of(policy: &str) -> BTreeSet<String> {
    // The policies are embedded at build time and parsed by unit tests, so a malformed file
    // fails the test suite; at run time an unparseable policy allows nothing.
    serde_json::from_str::<PolicyDoc>(policy)
        .map(|doc| doc.statement.into_iter().flat_map(|s| s.action).collect())
        .unwrap_or_default()
}

/// Every action (`service:Operation`) the shipped collection policy allows.
pub fn policy_actions() -> &'static BTreeSet<String> {
    static ACTIONS: OnceLock<BTreeSet<String>> = OnceLock::new();
    ACTIONS.get_or_init(|| actions_of(IAM_POLICY))
}

/// Every action the self-test policy allows.
pub fn selftest_policy_actions() -> &'static BTreeSet<String> {
    static ACTIONS: OnceLock<BTreeSet<String>> = OnceLock::new();
    ACTIONS.get_or_init(|| actions_of(SELFTEST_IAM_POLICY))
}

/// Every action the signing policy allows.
pub fn signing_policy_actions() -> &'static BTreeSet<String> {
    static ACTIONS: OnceLock<BTreeSet<String>> = OnceLock::new();
    ACTIONS.get_or_init(|| actions_of(SIGNING_IAM_POLICY))
}

/// The policy of publishing sealed runs to S3 (`--publish`): write objects with a retention
/// period and read the bucket's Object Lock configuration back; no delete, no overwrite of
/// retention.
pub const PUBLISH_IAM_POLICY: &str = include_str!("../../docs/iam-policy-publish.json");

/// The S3 operations publishing calls, each with the IAM action that authorises it (S3's
/// operation names and action names differ).
pub const PUBLISH_OPERATIONS: &[(&str, &str)] = &[
    ("s3:PutObject", "s3:PutObject"),
    (
        "s3:GetObjectLockConfiguration",
        "s3:GetBucketObjectLockConfiguration",
    ),
    ("s3:HeadObject", "s3:GetObject"),
];

/// Every operation the publishing client may call.
pub fn publish_operations() -> &'static BTreeSet<String> {
    static OPS: OnceLock<BTreeSet<String>> = OnceLock::new();
    OPS.get_or_init(|| {
        PUBLISH_OPERATIONS
            .iter()
            .map(|(op, _)| op.to_string())
            .collect()
    })
}

/// Every action the publishing policy allows.
pub fn publish_policy_actions() -> BTreeSet<String> {
    actions_of(PUBLISH_IAM_POLICY)
}

/// The policy of reading CloudTrail log files from S3 (`audit-logs --cloudtrail-s3`).
pub const LOGS_IAM_POLICY: &str = include_str!("../../docs/iam-policy-logs.json");

/// The S3 operations log reading calls, each with the IAM action that authorises it.
pub const LOG_READ_OPERATIONS: &[(&str, &str)] = &[
    ("s3:ListObjectsV2", "s3:ListBucket"),
    ("s3:GetObject", "s3:GetObject"),
    ("s3:HeadObject", "s3:GetObject"),
    ("cloudtrail:ListPublicKeys", "cloudtrail:ListPublicKeys"),
    // CloudTrail Lake (`--cloudtrail-lake`): a SELECT on the event data store, which reads
    // events and changes nothing.
    ("cloudtrail:StartQuery", "cloudtrail:StartQuery"),
    ("cloudtrail:DescribeQuery", "cloudtrail:DescribeQuery"),
    ("cloudtrail:GetQueryResults", "cloudtrail:GetQueryResults"),
    // The account's event history (`--cloudtrail-lookup`).
    ("cloudtrail:LookupEvents", "cloudtrail:LookupEvents"),
];

/// Every operation the log-reading client may call.
pub fn log_read_operations() -> &'static BTreeSet<String> {
    static OPS: OnceLock<BTreeSet<String>> = OnceLock::new();
    OPS.get_or_init(|| {
        LOG_READ_OPERATIONS
            .iter()
            .map(|(op, _)| op.to_string())
            .collect()
    })
}

/// The error an SDK call fails with when the guard refuses it.
#[derive(Debug, thiserror::Error)]
#[error(
    "keyproof refused to call {action}: it is not in the policy this client is held to (docs/iam-policy.json; docs/iam-policy-selftest.json for the self-test; docs/iam-policy-signing.json for manifest signing; docs/iam-policy-publish.json for publishing)"
)]
pub struct Refused {
    pub action: String,
}

/// Counters and the record of operations, shared by every client of one run.
#[derive(Debug, Default)]
pub struct Ledger {
    requests: AtomicU64,
    operations: Mutex<BTreeSet<String>>,
}

impl Ledger {
    /// HTTP requests sent, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The actions (`service:Operation`) that were invoked, refused ones included.
    pub fn operations(&self) -> BTreeSet<String> {
        self.operations
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

/// The interceptor; one per client, naming the IAM service prefix of that client and the
/// policy it holds calls to.
#[derive(Debug, Clone)]
pub struct Guard {
    iam_prefix: &'static str,
    ledger: Arc<Ledger>,
    allowed: &'static BTreeSet<String>,
}

impl Guard {
    /// A guard holding calls to the read-only collection policy.
    pub fn new(iam_prefix: &'static str, ledger: Arc<Ledger>) -> Guard {
        Guard {
            iam_prefix,
            ledger,
            allowed: policy_actions(),
        }
    }

    /// A guard holding calls to the self-test policy (GenerateDataKey and Decrypt only).
    pub fn selftest(ledger: Arc<Ledger>) -> Guard {
        Guard {
            iam_prefix: "kms",
            ledger,
            allowed: selftest_policy_actions(),
        }
    }

    /// A guard holding calls to the manifest-signing policy (Sign and GetPublicKey only).
    pub fn signing(ledger: Arc<Ledger>) -> Guard {
        Guard {
            iam_prefix: "kms",
            ledger,
            allowed: signing_policy_actions(),
        }
    }
}

impl Guard {
    /// A guard holding an S3 client to publishing: PutObject, GetObjectLockConfiguration and
    /// HeadObject only (docs/iam-policy-publish.json).
    pub fn publishing(ledger: Arc<Ledger>) -> Guard {
        Guard {
            iam_prefix: "s3",
            ledger,
            allowed: publish_operations(),
        }
    }

    /// A guard holding an S3 or CloudTrail client to reading log files, digest keys and
    /// CloudTrail Lake: ListObjectsV2, GetObject, HeadObject, ListPublicKeys, StartQuery,
    /// DescribeQuery, GetQueryResults (docs/iam-policy-logs.json).
    pub fn log_reading(iam_prefix: &'static str, ledger: Arc<Ledger>) -> Guard {
        Guard {
            iam_prefix,
            ledger,
            allowed: log_read_operations(),
        }
    }
}

impl Intercept for Guard {
    fn name(&self) -> &'static str {
        "keyproof-read-only-guard"
    }

    // Not `read_before_execution`: client-level interceptors run that hook before the
    // operation's configuration (which carries its name) is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "<unknown operation>".into());
        let action = format!("{}:{operation}", self.iam_prefix);
        if let Ok(mut ops) = self.ledger.operations.lock() {
            ops.insert(action.clone());
        }
        if self.allowed.contains(&action) {
            Ok(())
        } else {
            Err(Box::new(Refused { action }))
        }
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.ledger.requests.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_policy_parses_and_is_read_only() {
        let actions = policy_actions();
        assert!(actions.len() > 15, "policy lists {} actions", actions.len());
        let selftest = selftest_policy_actions();
        assert_eq!(
            selftest.iter().map(String::as_str).collect::<Vec<_>>(),
            vec!["kms:Decrypt", "kms:GenerateDataKey"]
        );
        assert!(
            actions.is_disjoint(selftest),
            "the collection policy stays read-only"
        );
        for action in actions {
            let (_, op) = action.split_once(':').expect("service:Operation");
            let read_only = ["List", "Describe", "Get", "Lookup", "BatchGet"]
                .iter()
                .any(|p| op.starts_with(p))
                || action == "sts:AssumeRole";
            assert!(read_only, "{action} is not a read-only action");
        }
    }

    #[test]
    fn publishing_operations_are_authorised_by_the_shipped_policy() {
        let policy = publish_policy_actions();
        for (op, action) in PUBLISH_OPERATIONS {
            assert!(
                policy.contains(*action),
                "{op} needs {action} in the policy"
            );
        }
        // PutObject with a retention date also needs PutObjectRetention, and HeadObject shows
        // the retention only with GetObjectRetention; nothing deletes.
        assert!(policy.contains("s3:PutObjectRetention"));
        assert!(policy.contains("s3:GetObjectRetention"));
        assert!(
            policy
                .iter()
                .all(|a| !a.contains("Delete") && !a.contains("Bypass"))
        );
        assert!(policy.is_disjoint(policy_actions()));
    }

    #[test]
    fn log_reading_is_read_only_and_authorised() {
        let policy = actions_of(LOGS_IAM_POLICY);
        for (op, action) in LOG_READ_OPERATIONS {
            assert!(
                policy.contains(*action),
                "{op} needs {action} in the policy"
            );
        }
        assert_eq!(
            policy.into_iter().collect::<Vec<_>>(),
            vec![
                "cloudtrail:DescribeQuery",
                "cloudtrail:GetQueryResults",
                "cloudtrail:ListPublicKeys",
                "cloudtrail:LookupEvents",
                "cloudtrail:StartQuery",
                "s3:GetObject",
                "s3:ListBucket"
            ]
        );
    }
}
