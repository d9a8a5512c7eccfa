//! The embedded sample estate behind `keyproof demo`: a fictitious payments company, built in code
//! so that the demo needs no AWS account and always produces the same snapshot.
//!
//! # Northwind Payments
//!
//! Northwind Payments is a (fictitious) card-payments processor. It runs its cardholder data
//! environment (CDE) in one production account and develops in another; the account ids are the
//! examples from the AWS documentation:
//!
//! - `111122223333` **northwind-prod**: production and the CDE. `eu-west-1` is the main region,
//!   `eu-central-1` is disaster recovery (the payments ledger's Aurora Global Database secondary,
//!   encrypted with the replica of the multi-Region key `alias/prod-payments-mrk`, and a second
//!   CloudHSM key store being set up for the CDE keys), and `ap-southeast-2` is an expansion
//!   region where a service control policy still denies KMS, so key evidence could not be
//!   collected.
//! - `444455556666` **northwind-dev**: development, in `eu-west-1` only (the other regions in
//!   scope are empty but recorded and logged).
//! - `777788889999` **northwind-backup** is not in scope; it appears only as the grantee of the
//!   cross-account grant on the cardholder database key that lets AWS Backup copy the cardholder
//!   database's snapshots there (the cardholder data's disaster recovery).
//!
//! Keys are service-specific customer managed keys (`alias/prod-ebs`, `alias/prod-s3-statements`,
//! `alias/prod-secrets`, `alias/prod-sns-alerts`, `alias/prod-sqs-payments`,
//! `alias/prod-payments-mrk` with its replica, `alias/cloudtrail-logs`, `alias/dev-rds`,
//! `alias/dev-app`), the two CDE keys in the CloudHSM-backed custom key store
//! (`alias/prod-rds-cardholder` for the cardholder database and `alias/cde-pan-tokenization`),
//! an asymmetric receipt-signing key (`alias/prod-receipt-signing`), and the AWS managed keys
//! `alias/aws/ebs` and `alias/aws/s3`. Everything tagged `PCIScope=cde` (the cardholder
//! database and its key, the tokenization key) is protected by a key in the connected CloudHSM
//! key store. Healthy customer managed keys rotate automatically every
//! 90 days; their policies separate key administrators (with MFA) from key users (service roles,
//! usually limited with `kms:ViaService`). `alias/prod-secrets` has a wildcard-principal
//! statement that is properly limited by `kms:CallerAccount` and `kms:ViaService`: it must pass.
//!
//! # Deliberate faults
//!
//! Everything else is meant to look healthy. Tests and the demo rely on exactly these:
//!
//! 1. `alias/prod-s3-statements` rotates only every 365 days (last rotation in March 2026).
//! 2. `alias/prod-sns-alerts` has a key policy statement (`AllowAlarmDelivery`) open to
//!    `{"AWS": "*"}` for `kms:Decrypt` and `kms:GenerateDataKey*` with no condition.
//! 3. `alias/legacy-ebs` is pending deletion (on 2026-11-20) while a production EBS volume
//!    (`batch-archive-legacy`) still uses it.
//! 4. The production RDS instance `reporting-db` is encrypted with the development account's
//!    `alias/dev-rds` key (whose policy therefore lets the production account in).
//! 5. The development trail `northwind-dev-trail` has log file validation off.
//! 6. The production SQS queue `payments-retry-queue` is not encrypted.
//! 7. The DR custom key store `northwind-cde-hsm-dr` (`eu-central-1`) is `DISCONNECTED`
//!    (`USER_LOGGED_IN`), although its CloudHSM cluster is active with two HSMs.
//! 8. In `ap-southeast-2` of the production account, `kms:ListKeys` and
//!    `kms:DescribeCustomKeyStores` were denied by a service control policy (two gaps); trails
//!    and AWS Config there were collected.
//! 9. `GetKeyRotationStatus` for `alias/prod-secrets` was throttled (a gap scoped to that key,
//!    whose `rotation` is therefore `None`).
//! 10. `alias/prod-rds-cardholder`, in the CloudHSM key store, has never been re-keyed since it
//!     was created in June 2024: AWS cannot rotate such keys, and nobody did it by hand (the
//!     PAN tokenization key shows how it should be done).
//! 11. The KMS activity read from the trail's log files (`kms_activity`, a generated day in
//!     `eu-west-1` and `eu-central-1`) has two damaged log files in `eu-west-1`, one of each
//!     detection (root use, cross-account use, a call from outside `10.0.0.0/8`, use of a key
//!     pending deletion, access denied, a scheduled deletion, a volume spike), and signed
//!     digests: the region's log integrity FAILs and its 10.2.2 field check is ERROR (unread
//!     events cannot be judged).
//!
//! Things that follow from how AWS works rather than being faults: keys in a CloudHSM custom key
//! store and asymmetric keys cannot rotate automatically, so their `rotation` is `None` (the PAN
//! tokenization key is re-keyed by hand, last on 2026-08-18: `CreateKey` and `UpdateAlias` are in
//! the event summary); multi-Region keys cannot live in a custom key store, which is why the
//! multi-Region key is not a CDE key; a key pending deletion reports rotation disabled; and AWS
//! managed keys rotate yearly. (AWS does not let you tag AWS managed keys; the sample tags them
//! anyway so that every key follows the tag conventions below.)
//!
//! Some faults show in more than one place, as they would in a real estate: fault 3 also makes
//! the volume's key inactive; fault 4 also shows on the `alias/dev-rds` key itself (used by a
//! production resource, and its policy names the production account); and the cross-account
//! grant to the backup account is expected to be allow-listed in the demo configuration.
//!
//! Tag conventions: every key and resource has `Environment` (`production` or `development`),
//! `PCIScope` (`cde`, `connected` or `none`), `Service` and `Owner`, and most have `CostCenter`.

use super::{
    AccountEvidence, AccountRef, CloudHsmCluster, ConfigRecorder, CustomKeyStore,
    EncryptedResource, EventSelectors, EvidenceKind, Gap, Grant, GrantConstraints, Hsm, KmsEvent,
    KmsEventSummary, KmsKey, MultiRegion, RegionEvidence, Rotation, SCHEMA_VERSION, Scope,
    Snapshot, SnapshotSource, Tags, ToolInfo, Trail,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::collections::BTreeMap;

const PROD: &str = "111122223333";
const DEV: &str = "444455556666";
const BACKUP: &str = "777788889999";

const EU_WEST_1: &str = "eu-west-1";
const EU_CENTRAL_1: &str = "eu-central-1";
const AP_SOUTHEAST_2: &str = "ap-southeast-2";

// Key ids. The payments key is multi-Region, so its primary and replica share one `mrk-` id.
const RDS_CARDHOLDER_ID: &str = "3a087713-3883-4fa6-8f1b-c23c19fc9bd9";
const PAYMENTS_MRK_ID: &str = "mrk-4663e39e04b050cf8b4ef1e21cbf007f";
const EBS_ID: &str = "d3335f51-e1f8-45b4-b1da-6e4e7ce91dff";
const S3_STATEMENTS_ID: &str = "53c18272-75bc-42c1-b946-79076231e889";
const SECRETS_ID: &str = "749db300-5e5c-445d-89a5-85efa0c84533";
const SNS_ALERTS_ID: &str = "cf09be01-6f45-46b9-abd3-b15222985778";
const SQS_PAYMENTS_ID: &str = "19d08716-203e-4f71-bf1e-a87346f57abd";
const PAN_TOKENIZATION_ID: &str = "b974d930-3673-4e0d-921a-590388c05e9c";
const CLOUDTRAIL_ID: &str = "653dd1bf-1a9a-4b3d-84bc-c2a1a7f82aa7";
const RECEIPT_SIGNING_ID: &str = "65d0d139-b1ac-4c84-9917-4a88fef1c0e8";
const LEGACY_EBS_ID: &str = "9005b8cb-bf04-4a7c-bea2-aaf423a5a837";
const AWS_EBS_ID: &str = "6c804824-eccc-49c4-934e-7d51149db947";
const AWS_S3_ID: &str = "e3800601-5d74-4c64-9b5c-7364ecca238b";
const DEV_RDS_ID: &str = "662e4bb0-6f0b-4814-ab4d-39be184e4097";
const DEV_APP_ID: &str = "513dd434-5c75-4d0b-b0a0-97c14bc60c32";

// Custom key stores and their CloudHSM clusters.
const CDE_STORE_ID: &str = "cks-6ec1142a7ae6c63a5";
const CDE_CLUSTER_ID: &str = "cluster-k7v3mpq2xna";
const DR_STORE_ID: &str = "cks-7ddd31c992da5be08";
const DR_CLUSTER_ID: &str = "cluster-f4rj6wz8ldc";

const ORG_TRAIL_ARN: &str = "arn:aws:cloudtrail:eu-west-1:111122223333:trail/northwind-org-trail";
const DEV_TRAIL_ARN: &str = "arn:aws:cloudtrail:eu-west-1:444455556666:trail/northwind-dev-trail";
const TRAIL_BUCKET: &str = "northwind-cloudtrail-logs";

/// The audit role keyproof ran as, and the session that collected this snapshot.
const AUDIT_SESSION: &str =
    "arn:aws:sts::111122223333:assumed-role/keyproof-audit/keyproof-20261101T060000Z";
const KEY_ADMIN_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/KeyAdministrators";

/// The Northwind Payments sample estate (see the module documentation for what is in it and
/// which faults it contains on purpose).
/// The sample company's `keyproof.toml` (its backup account is allow-listed).
pub const SAMPLE_CONFIG: &str = include_str!("sample-keyproof.toml");

pub fn sample_estate() -> Snapshot {
    Snapshot {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "keyproof".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        source: SnapshotSource::Sample,
        collected_at: collected_at(),
        completed_at: at(2026, 11, 1, 6, 4, 37),
        scope: Scope {
            accounts: vec![
                AccountRef {
                    account_id: PROD.into(),
                    name: Some("northwind-prod".into()),
                },
                AccountRef {
                    account_id: DEV.into(),
                    name: Some("northwind-dev".into()),
                },
            ],
            regions: vec![EU_WEST_1.into(), EU_CENTRAL_1.into(), AP_SOUTHEAST_2.into()],
            events_since: Some(events_since()),
        },
        accounts: vec![
            AccountEvidence {
                account_id: PROD.into(),
                regions: vec![prod_eu_west_1(), prod_eu_central_1(), prod_ap_southeast_2()],
            },
            AccountEvidence {
                account_id: DEV.into(),
                regions: vec![
                    dev_eu_west_1(),
                    dev_empty_region(EU_CENTRAL_1),
                    dev_empty_region(AP_SOUTHEAST_2),
                ],
            },
        ],
        gaps: gaps(),
        selftest: None,
        kms_activity: sample_kms_activity(),
    }
}

// ---------------------------------------------------------------------------------------------
// Regions
// ---------------------------------------------------------------------------------------------

/// Production, main region: the CDE and almost every fault.
fn prod_eu_west_1() -> RegionEvidence {
    RegionEvidence {
        region: EU_WEST_1.into(),
        kms_keys: vec![
            rds_cardholder_key(),
            payments_mrk_key(EU_WEST_1),
            prod_ebs_key(),
            s3_statements_key(),
            secrets_key(),
            sns_alerts_key(),
            sqs_payments_key(),
            pan_tokenization_key(),
            cloudtrail_key(),
            receipt_signing_key(),
            legacy_ebs_key(),
            aws_managed_key(
                AWS_EBS_ID,
                "alias/aws/ebs",
                "ec2",
                at(2021, 2, 3, 11, 40, 19),
            ),
            aws_managed_key(AWS_S3_ID, "alias/aws/s3", "s3", at(2021, 2, 3, 11, 52, 47)),
        ],
        custom_key_stores: vec![CustomKeyStore {
            id: CDE_STORE_ID.into(),
            name: "northwind-cde-hsm".into(),
            store_type: "AWS_CLOUDHSM".into(),
            connection_state: "CONNECTED".into(),
            connection_error_code: None,
            cloudhsm_cluster_id: Some(CDE_CLUSTER_ID.into()),
            created_at: Some(at(2024, 4, 22, 9, 3, 51)),
        }],
        cloudhsm_clusters: vec![hsm_cluster(
            CDE_CLUSTER_ID,
            EU_WEST_1,
            ["hsm-w2ftnqbxy4k", "hsm-p9dm3kzv7rc"],
        )],
        trails: vec![org_trail()],
        kms_events: Some(event_summary(
            &[
                ("Decrypt", 6_418_902),
                ("GenerateDataKey", 1_873_455),
                ("Encrypt", 214_377),
                ("Sign", 392_884),
                ("DescribeKey", 48_219),
                ("GenerateDataKeyWithoutPlaintext", 9_812),
                ("CreateGrant", 7_904),
                ("RetireGrant", 7_611),
                ("ListAliases", 3_877),
                ("GetPublicKey", 2_113),
                ("ListGrants", 1_290),
                ("ListKeys", 1_102),
                ("GetKeyPolicy", 1_096),
                ("ListResourceTags", 1_090),
                ("GetKeyRotationStatus", 1_084),
                ("ListKeyRotations", 1_081),
                ("ReEncrypt", 1_044),
                ("RotateKey", 8),
                ("PutKeyPolicy", 3),
                ("TagResource", 2),
                ("CreateKey", 1),
                ("UpdateAlias", 1),
                ("ScheduleKeyDeletion", 1),
            ],
            &[
                ("KMSInvalidStateException", 212),
                ("ThrottlingException", 61),
                ("AccessDenied", 37),
            ],
            vec![
                event(
                    "0f4c2b7e-93a1-4d6e-b5f8-2c7a9e1d3b60",
                    at(2026, 8, 18, 9, 12, 5),
                    "CreateKey",
                    &format!("{KEY_ADMIN_SESSION}/a.okafor"),
                    "203.0.113.24",
                    Some(key_arn(EU_WEST_1, PROD, PAN_TOKENIZATION_ID)),
                    None,
                ),
                event(
                    "5a9e1c3d-7b2f-4e8a-9c6d-1f0b3a5e7d92",
                    at(2026, 8, 18, 9, 31, 40),
                    "UpdateAlias",
                    &format!("{KEY_ADMIN_SESSION}/a.okafor"),
                    "203.0.113.24",
                    Some(key_arn(EU_WEST_1, PROD, PAN_TOKENIZATION_ID)),
                    None,
                ),
                event(
                    "c1d7e3f9-2a4b-4c6d-8e0f-a1b3c5d7e9f2",
                    at(2026, 9, 9, 14, 3, 11),
                    "CreateGrant",
                    &format!("{KEY_ADMIN_SESSION}/m.lindqvist"),
                    "203.0.113.61",
                    Some(key_arn(EU_WEST_1, PROD, RDS_CARDHOLDER_ID)),
                    None,
                ),
                event(
                    "7e2b9d4f-6c1a-4b3e-a5d7-9f1c3e5a7b04",
                    at(2026, 9, 30, 16, 47, 22),
                    "PutKeyPolicy",
                    "arn:aws:sts::111122223333:assumed-role/platform-deploy/terraform-ci",
                    "198.51.100.17",
                    Some(key_arn(EU_WEST_1, PROD, SNS_ALERTS_ID)),
                    None,
                ),
                event(
                    "3b8f0a2c-4d6e-4f1a-8b3c-5d7e9f1a2b46",
                    at(2026, 10, 21, 10, 15, 4),
                    "ScheduleKeyDeletion",
                    &format!("{KEY_ADMIN_SESSION}/a.okafor"),
                    "203.0.113.24",
                    Some(key_arn(EU_WEST_1, PROD, LEGACY_EBS_ID)),
                    None,
                ),
                event(
                    "e6a1c8b3-0d5f-4a2e-9c7b-4f6a8d0c2e18",
                    at(2026, 10, 22, 2, 41, 57),
                    "Decrypt",
                    "arn:aws:sts::111122223333:assumed-role/batch-archive-instance/i-0d3f5a7b9c1e2f4a6",
                    "ec2.amazonaws.com",
                    Some(key_arn(EU_WEST_1, PROD, LEGACY_EBS_ID)),
                    Some("KMSInvalidStateException"),
                ),
                event(
                    "9d3f5b7a-1c2e-4d4f-b6a8-0c2e4a6b8d31",
                    at(2026, 10, 27, 19, 58, 31),
                    "Decrypt",
                    "arn:aws:sts::111122223333:assumed-role/merchant-portal/i-07c1e5a9b3d2f6e80",
                    "10.20.14.37",
                    Some(key_arn(EU_WEST_1, PROD, PAN_TOKENIZATION_ID)),
                    Some("AccessDenied"),
                ),
            ],
        )),
        config_recorders: vec![recorder()],
        resources: prod_eu_west_1_resources(),
    }
}

fn prod_eu_west_1_resources() -> Vec<EncryptedResource> {
    let rds_key = key_arn(EU_WEST_1, PROD, RDS_CARDHOLDER_ID);
    let ledger_key = key_arn(EU_WEST_1, PROD, PAYMENTS_MRK_ID);
    let ebs_key = key_arn(EU_WEST_1, PROD, EBS_ID);
    let secrets_key = key_arn(EU_WEST_1, PROD, SECRETS_ID);
    let cardholder = || {
        tags(
            "production",
            "cde",
            "rds",
            "cardholder-data",
            &[("CostCenter", "CC-2100"), ("DataClassification", "PCI-CHD")],
        )
    };
    let ledger = || {
        tags(
            "production",
            "connected",
            "rds",
            "payments-platform",
            &[("CostCenter", "CC-2200")],
        )
    };
    let payments_api = |name: &str| {
        tags(
            "production",
            "connected",
            "ebs",
            "payments-platform",
            &[("CostCenter", "CC-2200"), ("Name", name)],
        )
    };
    vec![
        // The cardholder database: Aurora cluster with a writer and a reader.
        resource(
            "AWS::RDS::DBCluster",
            "cluster-4FJ7K2L9M3N8P5Q6R1S0T2U3V4",
            &rds_arn(EU_WEST_1, "cluster", "cardholder-cluster"),
            "cardholder-cluster",
            Some(&rds_key),
            cardholder(),
        ),
        resource(
            "AWS::RDS::DBInstance",
            "db-7QH2XK4M5N6P7R8S9T0V1W2Y3Z",
            &rds_arn(EU_WEST_1, "db", "cardholder-db-1"),
            "cardholder-db-1",
            Some(&rds_key),
            cardholder(),
        ),
        resource(
            "AWS::RDS::DBInstance",
            "db-J3K8L2M9N4P7Q1R6S5T0V3W8XY",
            &rds_arn(EU_WEST_1, "db", "cardholder-db-2"),
            "cardholder-db-2",
            Some(&rds_key),
            cardholder(),
        ),
        // The payments ledger: primary of an Aurora Global Database (secondary in eu-central-1).
        resource(
            "AWS::RDS::DBCluster",
            "cluster-6N1P4Q7R0S3T6U9V2W5X8Y1Z4A",
            &rds_arn(EU_WEST_1, "cluster", "payments-ledger"),
            "payments-ledger",
            Some(&ledger_key),
            ledger(),
        ),
        resource(
            "AWS::RDS::DBInstance",
            "db-L6M9N2P5Q8R1S4T7U0V3W6X9YZ",
            &rds_arn(EU_WEST_1, "db", "payments-ledger-1"),
            "payments-ledger-1",
            Some(&ledger_key),
            ledger(),
        ),
        // Fault 4: a production database on the development account's key.
        resource(
            "AWS::RDS::DBInstance",
            "db-C5D8F1G4H7J2K6L9M3N0P8Q5RS",
            &rds_arn(EU_WEST_1, "db", "reporting-db"),
            "reporting-db",
            Some(&key_arn(EU_WEST_1, DEV, DEV_RDS_ID)),
            tags(
                "production",
                "connected",
                "rds",
                "finance-reporting",
                &[("CostCenter", "CC-4120")],
            ),
        ),
        resource(
            "AWS::EC2::Volume",
            "vol-0a3a8d890cd29cff6",
            &volume_arn(EU_WEST_1, PROD, "vol-0a3a8d890cd29cff6"),
            "payments-api-1",
            Some(&ebs_key),
            payments_api("payments-api-1"),
        ),
        // Referenced by alias ARN rather than key ARN.
        resource(
            "AWS::EC2::Volume",
            "vol-0f6391721577320c4",
            &volume_arn(EU_WEST_1, PROD, "vol-0f6391721577320c4"),
            "payments-api-2",
            Some("arn:aws:kms:eu-west-1:111122223333:alias/prod-ebs"),
            payments_api("payments-api-2"),
        ),
        EncryptedResource {
            encryption_type: "AWS_MANAGED_KMS".into(),
            ..resource(
                "AWS::EC2::Volume",
                "vol-05dac44d2fada9001",
                &volume_arn(EU_WEST_1, PROD, "vol-05dac44d2fada9001"),
                "ci-runner-cache",
                Some(&key_arn(EU_WEST_1, PROD, AWS_EBS_ID)),
                tags(
                    "production",
                    "none",
                    "ebs",
                    "developer-experience",
                    &[("CostCenter", "CC-3300"), ("Name", "ci-runner-cache")],
                ),
            )
        },
        // Fault 3: still attached to a key that is pending deletion.
        resource(
            "AWS::EC2::Volume",
            "vol-019180b0cbb8b7b74",
            &volume_arn(EU_WEST_1, PROD, "vol-019180b0cbb8b7b74"),
            "batch-archive-legacy",
            Some(&key_arn(EU_WEST_1, PROD, LEGACY_EBS_ID)),
            tags(
                "production",
                "connected",
                "ebs",
                "settlement",
                &[("CostCenter", "CC-2300"), ("Name", "batch-archive-legacy")],
            ),
        ),
        resource(
            "AWS::S3::Bucket",
            "northwind-statements-prod",
            "arn:aws:s3:::northwind-statements-prod",
            "northwind-statements-prod",
            Some(&key_arn(EU_WEST_1, PROD, S3_STATEMENTS_ID)),
            tags(
                "production",
                "connected",
                "s3",
                "merchant-reporting",
                &[("CostCenter", "CC-2400")],
            ),
        ),
        EncryptedResource {
            encryption_type: "AWS_OWNED".into(),
            ..resource(
                "AWS::S3::Bucket",
                "northwind-static-assets",
                "arn:aws:s3:::northwind-static-assets",
                "northwind-static-assets",
                None,
                tags(
                    "production",
                    "none",
                    "s3",
                    "web-frontend",
                    &[("CostCenter", "CC-3100")],
                ),
            )
        },
        resource(
            "AWS::S3::Bucket",
            TRAIL_BUCKET,
            "arn:aws:s3:::northwind-cloudtrail-logs",
            TRAIL_BUCKET,
            Some(&key_arn(EU_WEST_1, PROD, CLOUDTRAIL_ID)),
            tags(
                "production",
                "connected",
                "cloudtrail",
                "security-engineering",
                &[("CostCenter", "CC-1500")],
            ),
        ),
        EncryptedResource {
            encryption_type: "AWS_MANAGED_KMS".into(),
            ..resource(
                "AWS::S3::Bucket",
                "northwind-ops-artifacts",
                "arn:aws:s3:::northwind-ops-artifacts",
                "northwind-ops-artifacts",
                Some(&key_arn(EU_WEST_1, PROD, AWS_S3_ID)),
                tags(
                    "production",
                    "none",
                    "s3",
                    "platform-infra",
                    &[("CostCenter", "CC-3200")],
                ),
            )
        },
        resource(
            "AWS::SecretsManager::Secret",
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db/cardholder-Xk3P9q",
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db/cardholder-Xk3P9q",
            "prod/db/cardholder",
            Some(&secrets_key),
            tags(
                "production",
                "connected",
                "secretsmanager",
                "cardholder-data",
                &[("CostCenter", "CC-2100")],
            ),
        ),
        resource(
            "AWS::SecretsManager::Secret",
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/psp/api-credentials-R7tL2m",
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/psp/api-credentials-R7tL2m",
            "prod/psp/api-credentials",
            Some(&secrets_key),
            tags(
                "production",
                "connected",
                "secretsmanager",
                "payments-platform",
                &[("CostCenter", "CC-2200")],
            ),
        ),
        // SNS reports the key as the alias name it was configured with.
        resource(
            "AWS::SNS::Topic",
            "arn:aws:sns:eu-west-1:111122223333:payments-alerts",
            "arn:aws:sns:eu-west-1:111122223333:payments-alerts",
            "payments-alerts",
            Some("alias/prod-sns-alerts"),
            tags(
                "production",
                "connected",
                "sns",
                "payments-platform",
                &[("CostCenter", "CC-2200")],
            ),
        ),
        resource(
            "AWS::SNS::Topic",
            "arn:aws:sns:eu-west-1:111122223333:ops-notifications",
            "arn:aws:sns:eu-west-1:111122223333:ops-notifications",
            "ops-notifications",
            Some(&key_arn(EU_WEST_1, PROD, SNS_ALERTS_ID)),
            tags(
                "production",
                "none",
                "sns",
                "platform-infra",
                &[("CostCenter", "CC-3200")],
            ),
        ),
        // SQS reports the key as the bare key id it was configured with.
        resource(
            "AWS::SQS::Queue",
            "https://sqs.eu-west-1.amazonaws.com/111122223333/payments-events",
            "arn:aws:sqs:eu-west-1:111122223333:payments-events",
            "payments-events",
            Some(SQS_PAYMENTS_ID),
            tags(
                "production",
                "connected",
                "sqs",
                "payments-platform",
                &[("CostCenter", "CC-2200")],
            ),
        ),
        resource(
            "AWS::SQS::Queue",
            "https://sqs.eu-west-1.amazonaws.com/111122223333/settlement-batches",
            "arn:aws:sqs:eu-west-1:111122223333:settlement-batches",
            "settlement-batches",
            Some(&key_arn(EU_WEST_1, PROD, SQS_PAYMENTS_ID)),
            tags(
                "production",
                "connected",
                "sqs",
                "settlement",
                &[("CostCenter", "CC-2300")],
            ),
        ),
        // Fault 6: an unencrypted production queue.
        EncryptedResource {
            encrypted: Some(false),
            encryption_type: "NONE".into(),
            ..resource(
                "AWS::SQS::Queue",
                "https://sqs.eu-west-1.amazonaws.com/111122223333/payments-retry-queue",
                "arn:aws:sqs:eu-west-1:111122223333:payments-retry-queue",
                "payments-retry-queue",
                None,
                tags(
                    "production",
                    "connected",
                    "sqs",
                    "payments-platform",
                    &[("CostCenter", "CC-2200")],
                ),
            )
        },
    ]
}

/// Production, disaster recovery: the payments key's replica and the ledger's Global Database
/// secondary, plus the disconnected DR custom key store (fault 7), which holds no keys yet.
fn prod_eu_central_1() -> RegionEvidence {
    let replica_key = key_arn(EU_CENTRAL_1, PROD, PAYMENTS_MRK_ID);
    let ledger = || {
        tags(
            "production",
            "connected",
            "rds",
            "payments-platform",
            &[("CostCenter", "CC-2200")],
        )
    };
    RegionEvidence {
        region: EU_CENTRAL_1.into(),
        kms_keys: vec![payments_mrk_key(EU_CENTRAL_1)],
        custom_key_stores: vec![CustomKeyStore {
            id: DR_STORE_ID.into(),
            name: "northwind-cde-hsm-dr".into(),
            store_type: "AWS_CLOUDHSM".into(),
            connection_state: "DISCONNECTED".into(),
            connection_error_code: Some("USER_LOGGED_IN".into()),
            cloudhsm_cluster_id: Some(DR_CLUSTER_ID.into()),
            created_at: Some(at(2025, 11, 4, 13, 26, 8)),
        }],
        cloudhsm_clusters: vec![hsm_cluster(
            DR_CLUSTER_ID,
            EU_CENTRAL_1,
            ["hsm-b6xq2hnt5ve", "hsm-m3zc8rw4kpj"],
        )],
        trails: vec![org_trail()],
        kms_events: Some(event_summary(
            &[
                ("Decrypt", 412_337),
                ("GenerateDataKey", 88_120),
                ("DescribeKey", 3_411),
                ("CreateGrant", 402),
                ("RetireGrant", 380),
                ("ListAliases", 1_101),
                ("ListKeys", 1_098),
                ("GetKeyPolicy", 1_098),
                ("DescribeCustomKeyStores", 1_099),
                ("ConnectCustomKeyStore", 3),
            ],
            &[("ThrottlingException", 4)],
            vec![event(
                "b2d4f6a8-0c1e-4a3b-9d5f-7e9a1c3b5d08",
                at(2026, 10, 29, 8, 2, 13),
                "ConnectCustomKeyStore",
                &format!("{KEY_ADMIN_SESSION}/m.lindqvist"),
                "203.0.113.61",
                None,
                None,
            )],
        )),
        config_recorders: vec![recorder()],
        resources: vec![
            resource(
                "AWS::RDS::DBCluster",
                "cluster-8W2X5Y7Z1A4B6C9D3E0F2G5H8J",
                &rds_arn(EU_CENTRAL_1, "cluster", "payments-ledger-dr"),
                "payments-ledger-dr",
                Some(&replica_key),
                ledger(),
            ),
            resource(
                "AWS::RDS::DBInstance",
                "db-R4S7T1U5V8W2X6Y9Z3A0B4C7DE",
                &rds_arn(EU_CENTRAL_1, "db", "payments-ledger-dr-1"),
                "payments-ledger-dr-1",
                Some(&replica_key),
                ledger(),
            ),
        ],
    }
}

/// Production, expansion region: a service control policy denies KMS to everyone, including
/// the audit role, so only CloudTrail and AWS Config evidence exists here (fault 8).
fn prod_ap_southeast_2() -> RegionEvidence {
    RegionEvidence {
        region: AP_SOUTHEAST_2.into(),
        trails: vec![org_trail()],
        kms_events: Some(event_summary(
            &[("ListKeys", 4), ("CreateKey", 2)],
            &[("AccessDenied", 6)],
            vec![
                event(
                    "4c6e8a0b-2d4f-4b6c-8e0a-2c4e6a8b0d53",
                    at(2026, 10, 14, 11, 20, 45),
                    "CreateKey",
                    "arn:aws:sts::111122223333:assumed-role/platform-deploy/terraform-ci",
                    "198.51.100.17",
                    None,
                    Some("AccessDenied"),
                ),
                event(
                    "8f1a3c5e-7b9d-4f2a-a4c6-e8f0b2d4a6c7",
                    at(2026, 10, 25, 6, 1, 12),
                    "ListKeys",
                    "arn:aws:sts::111122223333:assumed-role/keyproof-audit/keyproof-20261025T060000Z",
                    "198.51.100.40",
                    None,
                    Some("AccessDenied"),
                ),
            ],
        )),
        config_recorders: vec![recorder()],
        ..RegionEvidence::default()
    }
}

/// Development, its only populated region.
fn dev_eu_west_1() -> RegionEvidence {
    let dev_app_key = key_arn(EU_WEST_1, DEV, DEV_APP_ID);
    let dev = |service: &str| {
        tags(
            "development",
            "none",
            service,
            "payments-platform",
            &[("CostCenter", "CC-3400")],
        )
    };
    RegionEvidence {
        region: EU_WEST_1.into(),
        kms_keys: vec![dev_rds_key(), dev_application_key()],
        trails: vec![dev_trail()],
        kms_events: Some(event_summary(
            &[
                ("Decrypt", 503_118),
                ("GenerateDataKey", 120_442),
                ("Encrypt", 8_012),
                ("DescribeKey", 6_630),
                ("CreateGrant", 1_204),
                ("RetireGrant", 1_187),
                ("ListAliases", 512),
                ("RotateKey", 2),
                ("PutKeyPolicy", 1),
            ],
            &[("AccessDenied", 12)],
            vec![
                event(
                    "d5e7f9a1-3b5c-4d7e-8f9a-1b3c5d7e9f20",
                    at(2026, 9, 2, 10, 44, 9),
                    "PutKeyPolicy",
                    "arn:aws:sts::444455556666:assumed-role/KeyAdministrators/r.haddad",
                    "203.0.113.88",
                    Some(key_arn(EU_WEST_1, DEV, DEV_RDS_ID)),
                    None,
                ),
                event(
                    "a7c9e1b3-5d7f-4a9b-b1c3-d5e7f9a1b3c5",
                    at(2026, 9, 2, 11, 8, 36),
                    "CreateGrant",
                    "arn:aws:sts::111122223333:assumed-role/finance-reporting-admin/s.patel",
                    "rds.amazonaws.com",
                    Some(key_arn(EU_WEST_1, DEV, DEV_RDS_ID)),
                    None,
                ),
            ],
        )),
        config_recorders: vec![recorder()],
        resources: vec![
            resource(
                "AWS::RDS::DBInstance",
                "db-E2F5G8H1J4K7L0M3N6P9Q2R5ST",
                &rds_arn_in(EU_WEST_1, DEV, "db", "dev-payments-db"),
                "dev-payments-db",
                Some(&key_arn(EU_WEST_1, DEV, DEV_RDS_ID)),
                dev("rds"),
            ),
            resource(
                "AWS::EC2::Volume",
                "vol-0e4a806889a1b1f8e",
                &volume_arn(EU_WEST_1, DEV, "vol-0e4a806889a1b1f8e"),
                "dev-app-1",
                Some(&dev_app_key),
                dev("ebs"),
            ),
            resource(
                "AWS::S3::Bucket",
                "northwind-dev-artifacts",
                "arn:aws:s3:::northwind-dev-artifacts",
                "northwind-dev-artifacts",
                Some(&dev_app_key),
                dev("s3"),
            ),
            resource(
                "AWS::SecretsManager::Secret",
                "arn:aws:secretsmanager:eu-west-1:444455556666:secret:dev/db/payments-Hq8Zt2",
                "arn:aws:secretsmanager:eu-west-1:444455556666:secret:dev/db/payments-Hq8Zt2",
                "dev/db/payments",
                Some(&dev_app_key),
                dev("secretsmanager"),
            ),
            resource(
                "AWS::SQS::Queue",
                "https://sqs.eu-west-1.amazonaws.com/444455556666/dev-payments-events",
                "arn:aws:sqs:eu-west-1:444455556666:dev-payments-events",
                "dev-payments-events",
                Some("alias/dev-app"),
                dev("sqs"),
            ),
        ],
        ..RegionEvidence::default()
    }
}

/// A development region with nothing in it, but recorded by AWS Config and covered by the
/// development account's multi-Region trail.
fn dev_empty_region(region: &str) -> RegionEvidence {
    RegionEvidence {
        region: region.into(),
        trails: vec![dev_trail()],
        kms_events: Some(event_summary(&[], &[], Vec::new())),
        config_recorders: vec![recorder()],
        ..RegionEvidence::default()
    }
}

fn gaps() -> Vec<Gap> {
    let scp_denied = |api: &str| {
        format!(
            "User: {AUDIT_SESSION} is not authorized to perform: kms:{api} on resource: * \
             with an explicit deny in a service control policy"
        )
    };
    vec![
        Gap {
            account_id: PROD.into(),
            region: AP_SOUTHEAST_2.into(),
            service: "kms".into(),
            api: "ListKeys".into(),
            evidence: EvidenceKind::KmsKeys,
            resource_arn: None,
            error_code: "AccessDeniedException".into(),
            message: scp_denied("ListKeys"),
        },
        Gap {
            account_id: PROD.into(),
            region: AP_SOUTHEAST_2.into(),
            service: "kms".into(),
            api: "DescribeCustomKeyStores".into(),
            evidence: EvidenceKind::KmsCustomKeyStores,
            resource_arn: None,
            error_code: "AccessDeniedException".into(),
            message: scp_denied("DescribeCustomKeyStores"),
        },
        Gap {
            account_id: PROD.into(),
            region: EU_WEST_1.into(),
            service: "kms".into(),
            api: "GetKeyRotationStatus".into(),
            evidence: EvidenceKind::KmsRotation,
            resource_arn: Some(key_arn(EU_WEST_1, PROD, SECRETS_ID)),
            error_code: "ThrottlingException".into(),
            message: "Rate exceeded (gave up after 5 attempts with exponential backoff)".into(),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// The cardholder database key, held in the CloudHSM key store like every CDE key (so it cannot
/// rotate automatically). It carries the cross-account grant for the backup account.
fn rds_cardholder_key() -> KmsKey {
    KmsKey {
        description: "Cardholder database (Aurora) encryption, CloudHSM key store".into(),
        origin: "AWS_CLOUDHSM".into(),
        custom_key_store_id: Some(CDE_STORE_ID.into()),
        created_at: at(2024, 6, 11, 8, 42, 17),
        rotation: None,
        policy: Some(POLICY_RDS_CARDHOLDER.into()),
        grants: vec![
            rds_grant(
                "c708edd1d8bb18d670a79b002b0e1d874dc3e8e91ffee8979d6a269eca1bbea2",
                EU_WEST_1,
                "db-7QH2XK4M5N6P7R8S9T0V1W2Y3Z",
                at(2024, 6, 11, 9, 20, 48),
            ),
            rds_grant(
                "9e6da948a38b953bebd44b4d496f16005f267416f441e97808efdc29d83bb902",
                EU_WEST_1,
                "db-J3K8L2M9N4P7Q1R6S5T0V3W8XY",
                at(2024, 6, 11, 9, 34, 15),
            ),
            // The cross-account grant that lets AWS Backup in the backup account copy snapshots.
            Grant {
                grant_id: "c355d4c1174fd406a80570b8916bebbc3ae3f515e1dd7ecf878bfb2591a8fb3a".into(),
                name: Some("northwind-backup-copy".into()),
                grantee_principal: format!("arn:aws:iam::{BACKUP}:role/BackupVault"),
                retiring_principal: Some(format!("arn:aws:iam::{PROD}:role/KeyAdministrators")),
                issuing_account: Some(format!("arn:aws:iam::{PROD}:root")),
                operations: strings(&[
                    "Decrypt",
                    "DescribeKey",
                    "CreateGrant",
                    "ReEncryptFrom",
                    "GenerateDataKeyWithoutPlaintext",
                ]),
                constraints: None,
                created_at: Some(at(2026, 9, 9, 14, 3, 11)),
            },
        ],
        tags: tags(
            "production",
            "cde",
            "rds",
            "cardholder-data",
            &[("CostCenter", "CC-2100"), ("DataClassification", "PCI-CHD")],
        ),
        ..key(
            PROD,
            EU_WEST_1,
            RDS_CARDHOLDER_ID,
            "alias/prod-rds-cardholder",
        )
    }
}

/// The multi-Region payments ledger key: the primary in `eu-west-1`, the replica in
/// `eu-central-1`. Rotation is a property of the primary, so both report the same evidence.
fn payments_mrk_key(region: &str) -> KmsKey {
    let primary = key_arn(EU_WEST_1, PROD, PAYMENTS_MRK_ID);
    let replica = key_arn(EU_CENTRAL_1, PROD, PAYMENTS_MRK_ID);
    let is_primary = region == EU_WEST_1;
    let created = at(2024, 6, 11, 10, 5, 26);
    let (policy, grant) = if is_primary {
        (
            POLICY_PAYMENTS_MRK,
            rds_grant(
                "ae9baedd174e4013ab721a7e9683f2542206d133604e7af28d2a59a2c36e1164",
                EU_WEST_1,
                "db-L6M9N2P5Q8R1S4T7U0V3W6X9YZ",
                at(2024, 6, 11, 11, 2, 39),
            ),
        )
    } else {
        (
            POLICY_PAYMENTS_MRK_REPLICA,
            rds_grant(
                "29f7d93b8013f07df5d731fb71240cdbbefb77ea7b1c1c216605176e03891572",
                EU_CENTRAL_1,
                "db-R4S7T1U5V8W2X6Y9Z3A0B4C7DE",
                at(2025, 3, 18, 7, 55, 2),
            ),
        )
    };
    KmsKey {
        description: "Payments ledger (Aurora Global Database), multi-Region for DR".into(),
        multi_region: Some(MultiRegion {
            key_type: if is_primary { "PRIMARY" } else { "REPLICA" }.into(),
            primary_arn: primary,
            replica_arns: vec![replica],
        }),
        created_at: if is_primary {
            created
        } else {
            created + Duration::minutes(7)
        },
        rotation: Some(rotation_since(created, 90)),
        policy: Some(policy.into()),
        grants: vec![grant],
        tags: tags(
            "production",
            "connected",
            "rds",
            "payments-platform",
            &[("CostCenter", "CC-2200")],
        ),
        ..key(PROD, region, PAYMENTS_MRK_ID, "alias/prod-payments-mrk")
    }
}

fn prod_ebs_key() -> KmsKey {
    let created = at(2024, 6, 17, 13, 5, 44);
    KmsKey {
        description: "EBS volumes of production workloads".into(),
        created_at: created,
        rotation: Some(rotation_since(created, 90)),
        policy: Some(POLICY_PROD_EBS.into()),
        grants: vec![
            ebs_grant(
                "8e88f23a09dbced77e60920ad714425657317c785f4808cb36fc1ac5930eeb27",
                "vol-0a3a8d890cd29cff6",
                "i-0a1b2c3d4e5f60718",
                at(2026, 7, 14, 3, 12, 55),
            ),
            ebs_grant(
                "0bce8b4bd8d6f2a4110bbc763f8cd257187ad36864b8a5d16dbeada796ebb84f",
                "vol-0f6391721577320c4",
                "i-0f9e8d7c6b5a49382",
                at(2026, 7, 14, 3, 13, 21),
            ),
        ],
        tags: tags(
            "production",
            "connected",
            "ebs",
            "platform-infra",
            &[("CostCenter", "CC-3200")],
        ),
        ..key(PROD, EU_WEST_1, EBS_ID, "alias/prod-ebs")
    }
}

/// Fault 1: yearly rotation on a key that should rotate every 90 days.
fn s3_statements_key() -> KmsKey {
    let created = at(2023, 3, 14, 10, 22, 41);
    KmsKey {
        description: "Merchant statements bucket (SSE-KMS)".into(),
        created_at: created,
        rotation: Some(rotation_since(created, 365)),
        policy: Some(POLICY_S3_STATEMENTS.into()),
        tags: tags(
            "production",
            "connected",
            "s3",
            "merchant-reporting",
            &[("CostCenter", "CC-2400")],
        ),
        ..key(
            PROD,
            EU_WEST_1,
            S3_STATEMENTS_ID,
            "alias/prod-s3-statements",
        )
    }
}

/// The properly limited wildcard principal; its rotation status was throttled (fault 9).
fn secrets_key() -> KmsKey {
    KmsKey {
        description: "Secrets Manager secrets of production services".into(),
        created_at: at(2024, 7, 2, 10, 11, 9),
        rotation: None,
        policy: Some(POLICY_SECRETS.into()),
        tags: tags(
            "production",
            "connected",
            "secretsmanager",
            "security-engineering",
            &[("CostCenter", "CC-1500")],
        ),
        ..key(PROD, EU_WEST_1, SECRETS_ID, "alias/prod-secrets")
    }
}

/// Fault 2: a policy statement open to any principal.
fn sns_alerts_key() -> KmsKey {
    let created = at(2024, 9, 16, 15, 27, 38);
    KmsKey {
        description: "SNS alert and notification topics".into(),
        created_at: created,
        rotation: Some(rotation_since(created, 90)),
        policy: Some(POLICY_SNS_ALERTS.into()),
        tags: tags(
            "production",
            "connected",
            "sns",
            "payments-platform",
            &[("CostCenter", "CC-2200")],
        ),
        ..key(PROD, EU_WEST_1, SNS_ALERTS_ID, "alias/prod-sns-alerts")
    }
}

fn sqs_payments_key() -> KmsKey {
    let created = at(2024, 6, 25, 9, 48, 51);
    KmsKey {
        description: "SQS queues of the payments pipeline".into(),
        created_at: created,
        rotation: Some(rotation_since(created, 90)),
        policy: Some(POLICY_SQS_PAYMENTS.into()),
        tags: tags(
            "production",
            "connected",
            "sqs",
            "payments-platform",
            &[("CostCenter", "CC-2200")],
        ),
        ..key(PROD, EU_WEST_1, SQS_PAYMENTS_ID, "alias/prod-sqs-payments")
    }
}

/// The PAN tokenization key lives in the CloudHSM-backed custom key store. Keys there cannot
/// rotate automatically; Northwind re-keys by hand each quarter (new key, alias re-pointed).
fn pan_tokenization_key() -> KmsKey {
    KmsKey {
        description: "PAN tokenization (CloudHSM key store); re-keyed manually each quarter".into(),
        origin: "AWS_CLOUDHSM".into(),
        custom_key_store_id: Some(CDE_STORE_ID.into()),
        created_at: at(2026, 8, 18, 9, 12, 5),
        rotation: None,
        policy: Some(POLICY_PAN_TOKENIZATION.into()),
        tags: tags(
            "production",
            "cde",
            "tokenization",
            "cardholder-data",
            &[("CostCenter", "CC-2100"), ("DataClassification", "PCI-CHD")],
        ),
        ..key(
            PROD,
            EU_WEST_1,
            PAN_TOKENIZATION_ID,
            "alias/cde-pan-tokenization",
        )
    }
}

fn cloudtrail_key() -> KmsKey {
    let created = at(2024, 5, 6, 7, 30, 12);
    KmsKey {
        description: "CloudTrail log files (organization and development trails)".into(),
        created_at: created,
        rotation: Some(rotation_since(created, 90)),
        policy: Some(POLICY_CLOUDTRAIL.into()),
        tags: tags(
            "production",
            "connected",
            "cloudtrail",
            "security-engineering",
            &[("CostCenter", "CC-1500")],
        ),
        ..key(PROD, EU_WEST_1, CLOUDTRAIL_ID, "alias/cloudtrail-logs")
    }
}

/// Asymmetric keys are never rotated by AWS, so there is no rotation evidence.
fn receipt_signing_key() -> KmsKey {
    KmsKey {
        description: "Signs payment receipts (ECDSA P-256)".into(),
        spec: "ECC_NIST_P256".into(),
        usage: "SIGN_VERIFY".into(),
        created_at: at(2025, 1, 28, 14, 36, 50),
        rotation: None,
        policy: Some(POLICY_RECEIPT_SIGNING.into()),
        tags: tags(
            "production",
            "connected",
            "receipts",
            "payments-platform",
            &[("CostCenter", "CC-2200")],
        ),
        ..key(
            PROD,
            EU_WEST_1,
            RECEIPT_SIGNING_ID,
            "alias/prod-receipt-signing",
        )
    }
}

/// Fault 3: scheduled for deletion while a volume still uses it. A key pending deletion reports
/// rotation as disabled; its history shows the yearly rotations from before.
fn legacy_ebs_key() -> KmsKey {
    let created = at(2019, 4, 9, 16, 55, 2);
    let history = rotation_since(created, 365).history;
    KmsKey {
        description: "Legacy EBS key (pre-2024 estate), being retired".into(),
        state: "PendingDeletion".into(),
        created_at: created,
        deletion_date: Some(at(2026, 11, 20, 10, 15, 4)),
        rotation: Some(Rotation {
            enabled: false,
            period_days: Some(365),
            next_rotation_date: None,
            history,
        }),
        policy: Some(POLICY_LEGACY_EBS.into()),
        tags: tags(
            "production",
            "connected",
            "ebs",
            "platform-infra",
            &[("CostCenter", "CC-3200")],
        ),
        ..key(PROD, EU_WEST_1, LEGACY_EBS_ID, "alias/legacy-ebs")
    }
}

/// An AWS managed key (`alias/aws/<service>`) in production `eu-west-1`; AWS rotates these
/// every year and writes their policy.
fn aws_managed_key(key_id: &str, alias: &str, via_service: &str, created: DateTime<Utc>) -> KmsKey {
    let service = alias.trim_start_matches("alias/aws/");
    let description = match service {
        "ebs" => "Default key that protects my EBS volumes when no other key is defined",
        _ => "Default key that protects my S3 objects when no other key is defined",
    };
    let policy = POLICY_AWS_MANAGED
        .replace("{service}", service)
        .replace("{SERVICE}", &service.to_uppercase())
        .replace("{via}", via_service);
    KmsKey {
        description: description.into(),
        key_manager: "AWS".into(),
        created_at: created,
        rotation: Some(rotation_since(created, 365)),
        policy: Some(policy),
        tags: tags("production", "none", service, "platform-infra", &[]),
        ..key(PROD, EU_WEST_1, key_id, alias)
    }
}

fn dev_rds_key() -> KmsKey {
    let created = at(2024, 9, 10, 12, 14, 26);
    KmsKey {
        description: "Development RDS databases".into(),
        created_at: created,
        rotation: Some(rotation_since(created, 90)),
        policy: Some(POLICY_DEV_RDS.into()),
        tags: tags(
            "development",
            "none",
            "rds",
            "payments-platform",
            &[("CostCenter", "CC-3400")],
        ),
        ..key(DEV, EU_WEST_1, DEV_RDS_ID, "alias/dev-rds")
    }
}

fn dev_application_key() -> KmsKey {
    let created = at(2024, 9, 10, 12, 19, 3);
    KmsKey {
        description: "Development application data (EBS, S3, SQS, Secrets Manager)".into(),
        created_at: created,
        rotation: Some(rotation_since(created, 90)),
        policy: Some(POLICY_DEV_APP.into()),
        tags: tags(
            "development",
            "none",
            "app",
            "payments-platform",
            &[("CostCenter", "CC-3400")],
        ),
        ..key(DEV, EU_WEST_1, DEV_APP_ID, "alias/dev-app")
    }
}

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// A timestamp from constant parts.
fn at(year: i32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, min, sec)
        .single()
        .expect("sample estate timestamps are valid constants")
}

/// The sample's KMS activity, generated by [`crate::logs::synthetic::sample_audit`] and kept
/// as data so that the demo stays fast; a test keeps the file current.
pub const SAMPLE_KMS_ACTIVITY: &str = include_str!("sample-kms-activity.json");

fn sample_kms_activity() -> Option<crate::logs::AuditLogs> {
    // The file is checked by a unit test; a broken one leaves the sample without activity.
    serde_json::from_str(SAMPLE_KMS_ACTIVITY).ok()
}

fn collected_at() -> DateTime<Utc> {
    at(2026, 11, 1, 6, 0, 0)
}

fn events_since() -> DateTime<Utc> {
    collected_at() - Duration::days(90)
}

fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{key_id}")
}

fn rds_arn(region: &str, kind: &str, name: &str) -> String {
    rds_arn_in(region, PROD, kind, name)
}

fn rds_arn_in(region: &str, account: &str, kind: &str, name: &str) -> String {
    format!("arn:aws:rds:{region}:{account}:{kind}:{name}")
}

fn volume_arn(region: &str, account: &str, volume_id: &str) -> String {
    format!("arn:aws:ec2:{region}:{account}:volume/{volume_id}")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

/// The tag conventions: `Environment`, `PCIScope`, `Service`, `Owner`, plus any extras.
fn tags(
    environment: &str,
    pci_scope: &str,
    service: &str,
    owner: &str,
    extra: &[(&str, &str)],
) -> Tags {
    let mut out = Tags::new();
    out.insert("Environment".into(), environment.into());
    out.insert("PCIScope".into(), pci_scope.into());
    out.insert("Service".into(), service.into());
    out.insert("Owner".into(), owner.into());
    for (k, v) in extra {
        out.insert((*k).into(), (*v).into());
    }
    out
}

/// A customer managed, enabled, symmetric AWS KMS key with one alias; callers fill in the rest.
fn key(account: &str, region: &str, key_id: &str, alias: &str) -> KmsKey {
    KmsKey {
        key_id: key_id.into(),
        arn: key_arn(region, account, key_id),
        aliases: vec![alias.into()],
        description: String::new(),
        key_manager: "CUSTOMER".into(),
        state: "Enabled".into(),
        spec: "SYMMETRIC_DEFAULT".into(),
        usage: "ENCRYPT_DECRYPT".into(),
        origin: "AWS_KMS".into(),
        custom_key_store_id: None,
        multi_region: None,
        created_at: collected_at(),
        deletion_date: None,
        rotation: None,
        policy: None,
        grants: Vec::new(),
        tags: Tags::new(),
        last_usage: None,
    }
}

/// Automatic rotation every `period_days`, enabled since `created`: every rotation up to the
/// collection time, and the next one after it.
fn rotation_since(created: DateTime<Utc>, period_days: u32) -> Rotation {
    Rotation::automatic_since(created, period_days, collected_at())
}

/// The grant RDS creates on a database's key, limited to that database.
fn rds_grant(grant_id: &str, region: &str, db_resource_id: &str, created: DateTime<Utc>) -> Grant {
    Grant {
        grant_id: grant_id.into(),
        name: None,
        grantee_principal: format!("rds.{region}.amazonaws.com"),
        retiring_principal: Some(format!("rds.{region}.amazonaws.com")),
        issuing_account: Some(format!("arn:aws:iam::{PROD}:root")),
        operations: strings(&[
            "Decrypt",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "ReEncryptFrom",
            "ReEncryptTo",
            "CreateGrant",
            "RetireGrant",
            "DescribeKey",
        ]),
        constraints: Some(GrantConstraints {
            encryption_context_subset: Some(BTreeMap::from([(
                "aws:rds:db-id".to_string(),
                db_resource_id.to_string(),
            )])),
            encryption_context_equals: None,
        }),
        created_at: Some(created),
    }
}

/// The grant EC2 creates when a volume is attached, limited to that volume.
fn ebs_grant(grant_id: &str, volume_id: &str, instance_id: &str, created: DateTime<Utc>) -> Grant {
    Grant {
        grant_id: grant_id.into(),
        name: None,
        grantee_principal: format!(
            "arn:aws:sts::{PROD}:assumed-role/aws:ec2-infrastructure/{instance_id}"
        ),
        retiring_principal: None,
        issuing_account: Some(format!("arn:aws:iam::{PROD}:root")),
        operations: strings(&["Decrypt"]),
        constraints: Some(GrantConstraints {
            encryption_context_subset: Some(BTreeMap::from([(
                "aws:ebs:id".to_string(),
                volume_id.to_string(),
            )])),
            encryption_context_equals: None,
        }),
        created_at: Some(created),
    }
}

/// An encrypted resource; `encryption_type` is `CUSTOMER_KMS` when a key is named and
/// `AWS_OWNED` otherwise (override with struct update syntax for other cases).
fn resource(
    resource_type: &str,
    resource_id: &str,
    arn: &str,
    name: &str,
    kms_key_id: Option<&str>,
    tags: Tags,
) -> EncryptedResource {
    EncryptedResource {
        resource_type: resource_type.into(),
        resource_id: resource_id.into(),
        arn: arn.into(),
        name: Some(name.into()),
        encrypted: Some(true),
        kms_key_id: kms_key_id.map(str::to_string),
        encryption_type: if kms_key_id.is_some() {
            "CUSTOMER_KMS"
        } else {
            "AWS_OWNED"
        }
        .into(),
        tags,
    }
}

fn hsm_cluster(cluster_id: &str, region: &str, hsm_ids: [&str; 2]) -> CloudHsmCluster {
    CloudHsmCluster {
        cluster_id: cluster_id.into(),
        state: "ACTIVE".into(),
        hsm_type: Some("hsm2m.medium".into()),
        hsms: hsm_ids
            .iter()
            .zip(["a", "b"])
            .map(|(id, zone)| Hsm {
                hsm_id: (*id).into(),
                availability_zone: format!("{region}{zone}"),
                state: "ACTIVE".into(),
            })
            .collect(),
    }
}

fn recorder() -> ConfigRecorder {
    ConfigRecorder {
        name: "default".into(),
        recording: true,
        all_supported: true,
        resource_types: Vec::new(),
        last_status: Some("SUCCESS".into()),
    }
}

/// Basic event selectors logging all management events, KMS included.
fn management_selectors() -> EventSelectors {
    EventSelectors {
        management_events: true,
        management_read: true,
        management_write: true,
        kms_events_included: true,
        selector_kind: "basic".into(),
        raw: r#"[{"ReadWriteType":"All","IncludeManagementEvents":true,"DataResources":[],"ExcludeManagementEventSources":[]}]"#.into(),
    }
}

/// The production organization trail, as seen from any production region.
fn org_trail() -> Trail {
    Trail {
        name: "northwind-org-trail".into(),
        arn: ORG_TRAIL_ARN.into(),
        home_region: EU_WEST_1.into(),
        is_multi_region: true,
        is_organization_trail: true,
        log_file_validation: true,
        kms_key_id: Some(key_arn(EU_WEST_1, PROD, CLOUDTRAIL_ID)),
        s3_bucket: Some(TRAIL_BUCKET.into()),
        is_logging: Some(true),
        latest_delivery_error: None,
        latest_delivery_time: Some(at(2026, 11, 1, 5, 57, 12)),
        selectors: Some(management_selectors()),
    }
}

/// The development account's trail (fault 5: no log file validation), as seen from any
/// development region. It delivers to the central log bucket with the central log key.
fn dev_trail() -> Trail {
    Trail {
        name: "northwind-dev-trail".into(),
        arn: DEV_TRAIL_ARN.into(),
        home_region: EU_WEST_1.into(),
        is_multi_region: true,
        is_organization_trail: false,
        log_file_validation: false,
        kms_key_id: Some(key_arn(EU_WEST_1, PROD, CLOUDTRAIL_ID)),
        s3_bucket: Some(TRAIL_BUCKET.into()),
        is_logging: Some(true),
        latest_delivery_error: None,
        latest_delivery_time: Some(at(2026, 11, 1, 5, 58, 40)),
        selectors: Some(management_selectors()),
    }
}

/// A KMS event summary over the whole window; the total is the sum of the per-name counts.
fn event_summary(
    by_name: &[(&str, u64)],
    errors: &[(&str, u64)],
    notable: Vec<KmsEvent>,
) -> KmsEventSummary {
    let count = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
    };
    KmsEventSummary {
        window_start: events_since(),
        window_end: collected_at(),
        total_events: by_name.iter().map(|(_, n)| n).sum(),
        by_event_name: count(by_name),
        errors_by_code: count(errors),
        notable,
        notable_omitted: 0,
    }
}

fn event(
    event_id: &str,
    event_time: DateTime<Utc>,
    event_name: &str,
    principal_arn: &str,
    source_ip: &str,
    key_arn: Option<String>,
    error_code: Option<&str>,
) -> KmsEvent {
    KmsEvent {
        event_id: event_id.into(),
        event_time,
        event_name: event_name.into(),
        principal_arn: Some(principal_arn.into()),
        source_ip: Some(source_ip.into()),
        key_arn,
        error_code: error_code.map(str::to_string),
    }
}

// ---------------------------------------------------------------------------------------------
// Key policies, verbatim as GetKeyPolicy would return them
// ---------------------------------------------------------------------------------------------

const POLICY_RDS_CARDHOLDER: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-rds-cardholder",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughRds",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/cardholder-db-deploy",
                    "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole"
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": [
                        "rds.eu-west-1.amazonaws.com",
                        "backup.eu-west-1.amazonaws.com"
                    ]
                }
            }
        },
        {
            "Sid": "AllowAttachmentOfPersistentResources",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/cardholder-db-deploy",
                    "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole"
                ]
            },
            "Action": [
                "kms:CreateGrant",
                "kms:ListGrants",
                "kms:RevokeGrant"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "kms:GrantIsForAWSResource": "true"
                }
            }
        }
    ]
}"#;

const POLICY_PAYMENTS_MRK: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-payments-mrk",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion",
                "kms:ReplicateKey"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughRds",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/payments-ledger-deploy",
                    "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole"
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": [
                        "rds.eu-west-1.amazonaws.com",
                        "backup.eu-west-1.amazonaws.com"
                    ]
                }
            }
        },
        {
            "Sid": "AllowAttachmentOfPersistentResources",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/payments-ledger-deploy",
                    "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole"
                ]
            },
            "Action": [
                "kms:CreateGrant",
                "kms:ListGrants",
                "kms:RevokeGrant"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "kms:GrantIsForAWSResource": "true"
                }
            }
        }
    ]
}"#;

const POLICY_PAYMENTS_MRK_REPLICA: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-payments-mrk-replica",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughRds",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/payments-ledger-deploy",
                    "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole"
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": [
                        "rds.eu-central-1.amazonaws.com",
                        "backup.eu-central-1.amazonaws.com"
                    ]
                }
            }
        },
        {
            "Sid": "AllowAttachmentOfPersistentResources",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/payments-ledger-deploy",
                    "arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole"
                ]
            },
            "Action": [
                "kms:CreateGrant",
                "kms:ListGrants",
                "kms:RevokeGrant"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "kms:GrantIsForAWSResource": "true"
                }
            }
        }
    ]
}"#;

const POLICY_PROD_EBS: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-ebs",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughEc2",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/payments-api-deploy",
                    "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "ec2.eu-west-1.amazonaws.com"
                }
            }
        },
        {
            "Sid": "AllowAttachmentOfPersistentResources",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/payments-api-deploy",
                    "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
                ]
            },
            "Action": [
                "kms:CreateGrant",
                "kms:ListGrants",
                "kms:RevokeGrant"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "kms:GrantIsForAWSResource": "true"
                }
            }
        }
    ]
}"#;

const POLICY_S3_STATEMENTS: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-s3-statements",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughS3",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/statements-generator",
                    "arn:aws:iam::111122223333:role/merchant-portal"
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "s3.eu-west-1.amazonaws.com"
                }
            }
        }
    ]
}"#;

/// Includes the AWS-managed-key style wildcard statement, limited to callers in the account
/// going through Secrets Manager: a conditioned wildcard, not a public one.
const POLICY_SECRETS: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-secrets",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowAccessThroughSecretsManagerForPrincipalsInTheAccount",
            "Effect": "Allow",
            "Principal": {
                "AWS": "*"
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:CreateGrant",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:CallerAccount": "111122223333",
                    "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"
                }
            }
        }
    ]
}"#;

/// Fault 2: `AllowAlarmDelivery` was meant for the CloudWatch service principal but names every
/// AWS principal instead, with no condition.
const POLICY_SNS_ALERTS: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-sns-alerts",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowPublishersThroughSns",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/payments-api",
                    "arn:aws:iam::111122223333:role/settlement-worker"
                ]
            },
            "Action": [
                "kms:Decrypt",
                "kms:GenerateDataKey*"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "sns.eu-west-1.amazonaws.com"
                }
            }
        },
        {
            "Sid": "AllowAlarmDelivery",
            "Effect": "Allow",
            "Principal": {
                "AWS": "*"
            },
            "Action": [
                "kms:Decrypt",
                "kms:GenerateDataKey*"
            ],
            "Resource": "*"
        }
    ]
}"#;

const POLICY_SQS_PAYMENTS: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-sqs-payments",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughSqs",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::111122223333:role/payments-api",
                    "arn:aws:iam::111122223333:role/settlement-worker"
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "sqs.eu-west-1.amazonaws.com"
                }
            }
        },
        {
            "Sid": "AllowSnsToDeliverToEncryptedQueues",
            "Effect": "Allow",
            "Principal": {
                "Service": "sns.amazonaws.com"
            },
            "Action": [
                "kms:Decrypt",
                "kms:GenerateDataKey*"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "aws:SourceAccount": "111122223333"
                }
            }
        }
    ]
}"#;

const POLICY_PAN_TOKENIZATION: &str = r#"{
    "Version": "2012-10-17",
    "Id": "cde-pan-tokenization",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowTokenizationServiceFromCdeVpcEndpoint",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/tokenization-service"
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "aws:SourceVpce": "vpce-0c4f6a8b2d1e3f507"
                }
            }
        }
    ]
}"#;

const POLICY_CLOUDTRAIL: &str = r#"{
    "Version": "2012-10-17",
    "Id": "cloudtrail-logs",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowCloudTrailToEncryptLogs",
            "Effect": "Allow",
            "Principal": {
                "Service": "cloudtrail.amazonaws.com"
            },
            "Action": "kms:GenerateDataKey*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "aws:SourceArn": [
                        "arn:aws:cloudtrail:eu-west-1:111122223333:trail/northwind-org-trail",
                        "arn:aws:cloudtrail:eu-west-1:444455556666:trail/northwind-dev-trail"
                    ]
                },
                "StringLike": {
                    "kms:EncryptionContext:aws:cloudtrail:arn": [
                        "arn:aws:cloudtrail:*:111122223333:trail/*",
                        "arn:aws:cloudtrail:*:444455556666:trail/*"
                    ]
                }
            }
        },
        {
            "Sid": "AllowCloudTrailToDescribeKey",
            "Effect": "Allow",
            "Principal": {
                "Service": "cloudtrail.amazonaws.com"
            },
            "Action": "kms:DescribeKey",
            "Resource": "*"
        },
        {
            "Sid": "AllowSecurityTeamToDecryptLogFiles",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/SecurityAudit"
            },
            "Action": [
                "kms:Decrypt",
                "kms:ReEncryptFrom"
            ],
            "Resource": "*",
            "Condition": {
                "Null": {
                    "kms:EncryptionContext:aws:cloudtrail:arn": "false"
                }
            }
        }
    ]
}"#;

const POLICY_RECEIPT_SIGNING: &str = r#"{
    "Version": "2012-10-17",
    "Id": "prod-receipt-signing",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowReceiptSigning",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/receipts-service"
            },
            "Action": [
                "kms:Sign",
                "kms:Verify",
                "kms:GetPublicKey",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:SigningAlgorithm": "ECDSA_SHA_256"
                }
            }
        },
        {
            "Sid": "AllowPublicKeyRetrieval",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/merchant-portal"
            },
            "Action": [
                "kms:GetPublicKey",
                "kms:Verify",
                "kms:DescribeKey"
            ],
            "Resource": "*"
        }
    ]
}"#;

const POLICY_LEGACY_EBS: &str = r#"{
    "Version": "2012-10-17",
    "Id": "legacy-ebs",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughEc2",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:role/batch-archive-instance"
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
                "kms:CreateGrant"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "ec2.eu-west-1.amazonaws.com"
                }
            }
        }
    ]
}"#;

/// The policy AWS writes for its managed keys; `{service}`, `{SERVICE}` and `{via}` are filled
/// in per key.
/// The wildcard principal is limited to the account and the owning service.
const POLICY_AWS_MANAGED: &str = r#"{
    "Version": "2012-10-17",
    "Id": "auto-{service}-2",
    "Statement": [
        {
            "Sid": "Allow access through {SERVICE} for all principals in the account that are authorized to use {SERVICE}",
            "Effect": "Allow",
            "Principal": {
                "AWS": "*"
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:CreateGrant",
                "kms:DescribeKey"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "{via}.eu-west-1.amazonaws.com",
                    "kms:CallerAccount": "111122223333"
                }
            }
        },
        {
            "Sid": "Allow direct access to key metadata to the account",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": [
                "kms:Describe*",
                "kms:Get*",
                "kms:List*",
                "kms:RevokeGrant"
            ],
            "Resource": "*"
        }
    ]
}"#;

/// Development RDS key. `AllowProductionReportingRestore` was added on 2026-09-02 so that the
/// production `reporting-db` could be restored from a development snapshot (fault 4).
const POLICY_DEV_RDS: &str = r#"{
    "Version": "2012-10-17",
    "Id": "dev-rds",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::444455556666:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::444455556666:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughRds",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::444455556666:role/dev-deploy"
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
                "kms:CreateGrant"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "rds.eu-west-1.amazonaws.com"
                }
            }
        },
        {
            "Sid": "AllowProductionReportingRestore",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::111122223333:root"
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
                "kms:CreateGrant"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "rds.eu-west-1.amazonaws.com"
                }
            }
        }
    ]
}"#;

const POLICY_DEV_APP: &str = r#"{
    "Version": "2012-10-17",
    "Id": "dev-app",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::444455556666:root"
            },
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {
                "AWS": "arn:aws:iam::444455556666:role/KeyAdministrators"
            },
            "Action": [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:ScheduleKeyDeletion",
                "kms:CancelKeyDeletion"
            ],
            "Resource": "*",
            "Condition": {
                "Bool": {
                    "aws:MultiFactorAuthPresent": "true"
                }
            }
        },
        {
            "Sid": "AllowUseOfTheKeyThroughAppServices",
            "Effect": "Allow",
            "Principal": {
                "AWS": [
                    "arn:aws:iam::444455556666:role/dev-deploy",
                    "arn:aws:iam::444455556666:role/dev-payments-app"
                ]
            },
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
                "kms:CreateGrant"
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": [
                        "ec2.eu-west-1.amazonaws.com",
                        "s3.eu-west-1.amazonaws.com",
                        "sqs.eu-west-1.amazonaws.com",
                        "secretsmanager.eu-west-1.amazonaws.com"
                    ]
                }
            }
        }
    ]
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn all_keys(s: &Snapshot) -> impl Iterator<Item = (&str, &str, &KmsKey)> {
        s.accounts.iter().flat_map(|a| {
            a.regions.iter().flat_map(move |r| {
                r.kms_keys
                    .iter()
                    .map(move |k| (a.account_id.as_str(), r.region.as_str(), k))
            })
        })
    }

    fn all_resources(s: &Snapshot) -> impl Iterator<Item = (&str, &str, &EncryptedResource)> {
        s.accounts.iter().flat_map(|a| {
            a.regions.iter().flat_map(move |r| {
                r.resources
                    .iter()
                    .map(move |x| (a.account_id.as_str(), r.region.as_str(), x))
            })
        })
    }

    fn region<'a>(s: &'a Snapshot, account: &str, region: &str) -> &'a RegionEvidence {
        s.accounts
            .iter()
            .find(|a| a.account_id == account)
            .and_then(|a| a.regions.iter().find(|r| r.region == region))
            .unwrap_or_else(|| panic!("no evidence for {account} {region}"))
    }

    fn key_by_alias<'a>(s: &'a Snapshot, account: &str, region: &str, alias: &str) -> &'a KmsKey {
        all_keys(s)
            .find(|(a, r, k)| *a == account && *r == region && k.aliases.iter().any(|x| x == alias))
            .map(|(_, _, k)| k)
            .unwrap_or_else(|| panic!("no key {alias} in {account} {region}"))
    }

    fn resource_named<'a>(s: &'a Snapshot, name: &str) -> &'a EncryptedResource {
        all_resources(s)
            .find(|(_, _, r)| r.name.as_deref() == Some(name))
            .map(|(_, _, r)| r)
            .unwrap_or_else(|| panic!("no resource {name}"))
    }

    /// Resolves a key reference the way a resource makes it: key ARN or alias ARN (in any
    /// account), or key id or alias name in the resource's own account and region.
    fn resolve<'a>(
        s: &'a Snapshot,
        account: &str,
        region: &str,
        reference: &str,
    ) -> Option<&'a KmsKey> {
        let (account, region, name) = match reference.strip_prefix("arn:aws:kms:") {
            Some(rest) => {
                let parts: Vec<&str> = rest.splitn(3, ':').collect();
                (parts[1], parts[0], parts[2])
            }
            None => (account, region, reference),
        };
        all_keys(s)
            .filter(|(a, r, _)| *a == account && *r == region)
            .map(|(_, _, k)| k)
            .find(|k| match name.strip_prefix("key/") {
                Some(id) => k.key_id == id,
                None if name.starts_with("alias/") => k.aliases.iter().any(|x| x == name),
                None => k.key_id == name,
            })
    }

    #[test]
    fn round_trips_through_json_and_is_deterministic() {
        let s = sample_estate();
        let json = serde_json::to_string_pretty(&s).expect("serializes");
        let back: Snapshot = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, s);
        assert_eq!(sample_estate(), s);
        assert_eq!(s.source, SnapshotSource::Sample);
        assert_eq!(s.schema_version, SCHEMA_VERSION);
        assert_eq!(s.collected_at, at(2026, 11, 1, 6, 0, 0));
        assert!(s.completed_at > s.collected_at);
        assert_eq!(s.scope.events_since, Some(at(2026, 8, 3, 6, 0, 0)));
    }

    #[test]
    fn every_scope_pair_has_evidence() {
        let s = sample_estate();
        for account in &s.scope.accounts {
            for r in &s.scope.regions {
                let ev = region(&s, &account.account_id, r);
                assert!(
                    !ev.trails.is_empty(),
                    "{} {r} has no trail",
                    account.account_id
                );
                assert!(ev.trails.iter().all(|t| t.home_region == EU_WEST_1));
                assert!(
                    ev.config_recorders.iter().any(|c| c.recording),
                    "{} {r} has no recorder",
                    account.account_id
                );
                assert!(ev.kms_events.is_some());
            }
        }
        assert!(s.accounts.iter().all(|a| a.account_id != BACKUP));
    }

    #[test]
    fn resource_keys_resolve() {
        let s = sample_estate();
        let mut resolved = 0;
        for (account, region, r) in all_resources(&s) {
            match r.encryption_type.as_str() {
                "NONE" | "AWS_OWNED" => assert!(r.kms_key_id.is_none(), "{}", r.arn),
                kind => {
                    let reference = r.kms_key_id.as_deref().expect("KMS-encrypted names a key");
                    let key = resolve(&s, account, region, reference)
                        .unwrap_or_else(|| panic!("{} names unknown key {reference}", r.arn));
                    let manager = if kind == "AWS_MANAGED_KMS" {
                        "AWS"
                    } else {
                        "CUSTOMER"
                    };
                    assert_eq!(key.key_manager, manager, "{}", r.arn);
                    resolved += 1;
                }
            }
        }
        assert!(resolved >= 20);
    }

    #[test]
    fn stores_and_clusters_resolve() {
        let s = sample_estate();
        for account in &s.accounts {
            for r in &account.regions {
                for k in &r.kms_keys {
                    if let Some(store) = &k.custom_key_store_id {
                        assert!(
                            r.custom_key_stores.iter().any(|c| &c.id == store),
                            "{store}"
                        );
                        assert_eq!(k.origin, "AWS_CLOUDHSM");
                    }
                }
                for store in &r.custom_key_stores {
                    let cluster = store.cloudhsm_cluster_id.as_deref().expect("cluster id");
                    let cluster = r
                        .cloudhsm_clusters
                        .iter()
                        .find(|c| c.cluster_id == cluster)
                        .unwrap_or_else(|| panic!("no cluster {cluster}"));
                    assert_eq!(cluster.state, "ACTIVE");
                    assert_eq!(cluster.hsms.len(), 2);
                    assert!(
                        cluster
                            .hsms
                            .iter()
                            .all(|h| h.availability_zone.starts_with(&r.region))
                    );
                }
            }
        }
    }

    #[test]
    fn keys_are_well_formed() {
        let s = sample_estate();
        let mut aliases = std::collections::BTreeSet::new();
        for (account, region, k) in all_keys(&s) {
            assert_eq!(k.arn, key_arn(region, account, &k.key_id));
            assert_eq!(
                k.key_id.starts_with("mrk-"),
                k.multi_region.is_some(),
                "{}",
                k.arn
            );
            let policy = k.policy.as_deref().expect("every sample key has a policy");
            let doc: serde_json::Value = serde_json::from_str(policy).expect("policy is JSON");
            assert!(doc["Statement"].is_array(), "{}", k.arn);
            for tag in ["Environment", "PCIScope", "Service", "Owner"] {
                assert!(k.tags.contains_key(tag), "{} lacks {tag}", k.arn);
            }
            for alias in &k.aliases {
                assert!(
                    aliases.insert((account, region, alias.clone())),
                    "duplicate {alias}"
                );
            }
        }
        for (_, _, r) in all_resources(&s) {
            for tag in ["Environment", "PCIScope", "Service", "Owner"] {
                assert!(r.tags.contains_key(tag), "{} lacks {tag}", r.arn);
            }
        }
    }

    #[test]
    fn multi_region_key_is_filled_both_ways() {
        let s = sample_estate();
        let primary = key_by_alias(&s, PROD, EU_WEST_1, "alias/prod-payments-mrk");
        let replica = key_by_alias(&s, PROD, EU_CENTRAL_1, "alias/prod-payments-mrk");
        assert_eq!(primary.key_id, replica.key_id);
        let (p, r) = (primary.multi_region.as_ref(), replica.multi_region.as_ref());
        let (p, r) = (p.expect("primary config"), r.expect("replica config"));
        assert_eq!(p.key_type, "PRIMARY");
        assert_eq!(r.key_type, "REPLICA");
        assert_eq!(p.primary_arn, primary.arn);
        assert_eq!(r.primary_arn, primary.arn);
        assert_eq!(p.replica_arns, vec![replica.arn.clone()]);
        assert_eq!(r.replica_arns, p.replica_arns);
        assert_eq!(primary.rotation, replica.rotation);
        let dr = resource_named(&s, "payments-ledger-dr");
        let dr_key = resolve(
            &s,
            PROD,
            EU_CENTRAL_1,
            dr.kms_key_id.as_deref().expect("key"),
        );
        assert_eq!(dr_key.map(|k| &k.arn), Some(&replica.arn));
    }

    #[test]
    fn cross_account_backup_grant() {
        let s = sample_estate();
        let key = key_by_alias(&s, PROD, EU_WEST_1, "alias/prod-rds-cardholder");
        let backup = key
            .grants
            .iter()
            .find(|g| g.grantee_principal.contains(BACKUP))
            .expect("cross-account backup grant");
        assert!(backup.operations.iter().any(|o| o == "Decrypt"));
        assert!(backup.issuing_account.is_some());
    }

    #[test]
    fn healthy_keys_rotate_quarterly() {
        let s = sample_estate();
        let now = s.collected_at;
        let faulty = [
            "alias/prod-s3-statements",
            "alias/legacy-ebs",
            "alias/prod-secrets",
        ];
        for (_, _, k) in all_keys(&s) {
            let rotates = k.key_manager == "CUSTOMER"
                && k.spec == "SYMMETRIC_DEFAULT"
                && k.origin == "AWS_KMS"
                && !k.aliases.iter().any(|a| faulty.contains(&a.as_str()));
            if !rotates {
                continue;
            }
            let rot = k.rotation.as_ref().expect("rotation evidence");
            assert!(rot.enabled, "{}", k.arn);
            assert_eq!(rot.period_days, Some(90), "{}", k.arn);
            let next = rot.next_rotation_date.expect("next rotation");
            assert!(next > now && next <= now + Duration::days(90), "{}", k.arn);
            let last = rot.history.last().expect("history").rotated_at;
            assert!(last <= now && now - last < Duration::days(90), "{}", k.arn);
            assert!(rot.history.iter().all(|h| h.rotation_type == "AUTOMATIC"));
        }
        for alias in ["alias/aws/ebs", "alias/aws/s3"] {
            let k = key_by_alias(&s, PROD, EU_WEST_1, alias);
            assert_eq!(k.key_manager, "AWS");
            let rot = k.rotation.as_ref().expect("AWS managed keys rotate");
            assert!(rot.enabled);
            assert_eq!(rot.period_days, Some(365));
        }
        let signing = key_by_alias(&s, PROD, EU_WEST_1, "alias/prod-receipt-signing");
        assert_eq!(signing.usage, "SIGN_VERIFY");
        assert!(signing.rotation.is_none());
    }

    /// Mirrors the CDE controls: every CDE key is in the connected CloudHSM key store, and every
    /// CDE resource is encrypted with a customer managed CDE key.
    #[test]
    fn cde_is_held_in_the_connected_hsm_store() {
        let s = sample_estate();
        let mut cde_keys = 0;
        for a in &s.accounts {
            for r in &a.regions {
                for k in r.kms_keys.iter().filter(|k| k.tags["PCIScope"] == "cde") {
                    cde_keys += 1;
                    assert_eq!(k.origin, "AWS_CLOUDHSM", "{}", k.arn);
                    let store = r
                        .custom_key_stores
                        .iter()
                        .find(|c| Some(&c.id) == k.custom_key_store_id.as_ref())
                        .expect("store");
                    assert_eq!(store.connection_state, "CONNECTED");
                }
            }
        }
        assert_eq!(cde_keys, 2);
        let mut cde_resources = 0;
        for (account, region, r) in
            all_resources(&s).filter(|(_, _, r)| r.tags["PCIScope"] == "cde")
        {
            cde_resources += 1;
            assert_eq!(r.encryption_type, "CUSTOMER_KMS", "{}", r.arn);
            let key = resolve(&s, account, region, r.kms_key_id.as_deref().expect("key"));
            assert_eq!(key.expect("resolves").tags["PCIScope"], "cde", "{}", r.arn);
        }
        assert_eq!(cde_resources, 3);
    }

    /// Only fault 4 mixes environments: every other resource's key has its environment.
    #[test]
    fn environments_do_not_mix_except_fault_4() {
        let s = sample_estate();
        let mut mixed = Vec::new();
        for (account, region, r) in all_resources(&s) {
            let Some(reference) = r.kms_key_id.as_deref() else {
                continue;
            };
            let key = resolve(&s, account, region, reference).expect("resolves");
            if key.tags["Environment"] != r.tags["Environment"] {
                mixed.push(r.name.clone().unwrap_or_default());
            }
        }
        assert_eq!(mixed, vec!["reporting-db"]);
    }

    #[test]
    fn restricted_wildcard_is_present_and_conditioned() {
        let s = sample_estate();
        let k = key_by_alias(&s, PROD, EU_WEST_1, "alias/prod-secrets");
        let doc: serde_json::Value =
            serde_json::from_str(k.policy.as_deref().expect("policy")).expect("JSON");
        let stmt = doc["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["Principal"]["AWS"] == "*")
            .expect("wildcard statement");
        let cond = &stmt["Condition"]["StringEquals"];
        assert_eq!(cond["kms:CallerAccount"], PROD);
        assert_eq!(
            cond["kms:ViaService"],
            "secretsmanager.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn fault_1_statements_key_rotates_yearly() {
        let s = sample_estate();
        let k = key_by_alias(&s, PROD, EU_WEST_1, "alias/prod-s3-statements");
        let rot = k.rotation.as_ref().expect("rotation");
        assert!(rot.enabled);
        assert_eq!(rot.period_days, Some(365));
        let gaps: Vec<i64> = rot
            .history
            .windows(2)
            .map(|w| (w[1].rotated_at - w[0].rotated_at).num_days())
            .collect();
        assert!(!gaps.is_empty() && gaps.iter().all(|d| *d == 365));
        let last = rot.history.last().expect("history").rotated_at;
        assert!(s.collected_at - last > Duration::days(90));
    }

    #[test]
    fn fault_2_sns_key_policy_is_public() {
        let s = sample_estate();
        let k = key_by_alias(&s, PROD, EU_WEST_1, "alias/prod-sns-alerts");
        let doc: serde_json::Value =
            serde_json::from_str(k.policy.as_deref().expect("policy")).expect("JSON");
        let open: Vec<&serde_json::Value> = doc["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .filter(|s| s["Principal"]["AWS"] == "*" || s["Principal"] == "*")
            .collect();
        assert_eq!(open.len(), 1);
        assert!(open[0].get("Condition").is_none());
        let actions = open[0]["Action"].as_array().expect("actions");
        assert!(actions.iter().any(|a| a == "kms:Decrypt"));
        assert!(actions.iter().any(|a| a == "kms:GenerateDataKey*"));
    }

    #[test]
    fn fault_3_legacy_key_pending_deletion_still_in_use() {
        let s = sample_estate();
        let k = key_by_alias(&s, PROD, EU_WEST_1, "alias/legacy-ebs");
        assert_eq!(k.state, "PendingDeletion");
        let deletion = k.deletion_date.expect("deletion date");
        assert_eq!(deletion.date_naive().to_string(), "2026-11-20");
        let users: Vec<&EncryptedResource> = all_resources(&s)
            .filter(|(a, r, x)| {
                x.kms_key_id
                    .as_deref()
                    .and_then(|id| resolve(&s, a, r, id))
                    .is_some_and(|key| key.arn == k.arn)
            })
            .map(|(_, _, x)| x)
            .collect();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].resource_type, "AWS::EC2::Volume");
        assert_eq!(users[0].tags["Environment"], "production");
    }

    #[test]
    fn fault_4_production_database_on_development_key() {
        let s = sample_estate();
        let db = resource_named(&s, "reporting-db");
        assert_eq!(db.resource_type, "AWS::RDS::DBInstance");
        assert!(db.arn.contains(PROD));
        assert_eq!(db.tags["Environment"], "production");
        let reference = db.kms_key_id.as_deref().expect("key");
        assert!(reference.starts_with("arn:aws:kms:eu-west-1:444455556666:key/"));
        let key = resolve(&s, PROD, EU_WEST_1, reference).expect("resolves");
        assert_eq!(key.aliases, vec!["alias/dev-rds"]);
        assert_eq!(key.tags["Environment"], "development");
    }

    #[test]
    fn fault_5_dev_trail_without_log_validation() {
        let s = sample_estate();
        for r in &s.scope.regions {
            let t = &region(&s, DEV, r).trails[0];
            assert_eq!(t.name, "northwind-dev-trail");
            assert!(t.is_multi_region);
            assert!(!t.log_file_validation);
        }
        for r in &s.scope.regions {
            assert!(
                region(&s, PROD, r)
                    .trails
                    .iter()
                    .all(|t| t.log_file_validation)
            );
        }
    }

    #[test]
    fn fault_6_unencrypted_retry_queue() {
        let s = sample_estate();
        let q = resource_named(&s, "payments-retry-queue");
        assert_eq!(q.resource_type, "AWS::SQS::Queue");
        assert_eq!(q.encrypted, Some(false));
        assert_eq!(q.encryption_type, "NONE");
        assert!(q.kms_key_id.is_none());
        assert_eq!(q.tags["Environment"], "production");
        let unencrypted = all_resources(&s)
            .filter(|(_, _, r)| r.encrypted != Some(true))
            .count();
        assert_eq!(unencrypted, 1);
    }

    #[test]
    fn fault_7_dr_key_store_disconnected() {
        let s = sample_estate();
        let dr = region(&s, PROD, EU_CENTRAL_1);
        let store = &dr.custom_key_stores[0];
        assert_eq!(store.connection_state, "DISCONNECTED");
        assert_eq!(
            store.connection_error_code.as_deref(),
            Some("USER_LOGGED_IN")
        );
        assert!(
            dr.kms_keys
                .iter()
                .all(|k| k.custom_key_store_id.as_deref() != Some(DR_STORE_ID)),
            "no key depends on the disconnected store"
        );
        let main = region(&s, PROD, EU_WEST_1);
        assert_eq!(main.custom_key_stores[0].connection_state, "CONNECTED");
        let tokenization = key_by_alias(&s, PROD, EU_WEST_1, "alias/cde-pan-tokenization");
        assert_eq!(
            tokenization.custom_key_store_id.as_deref(),
            Some(CDE_STORE_ID)
        );
    }

    #[test]
    fn fault_8_expansion_region_denied_by_scp() {
        let s = sample_estate();
        let ap = region(&s, PROD, AP_SOUTHEAST_2);
        assert!(ap.kms_keys.is_empty() && ap.custom_key_stores.is_empty());
        assert!(!ap.trails.is_empty() && !ap.config_recorders.is_empty());
        let gaps: Vec<&Gap> = s
            .gaps
            .iter()
            .filter(|g| g.account_id == PROD && g.region == AP_SOUTHEAST_2)
            .collect();
        let kinds: Vec<EvidenceKind> = gaps.iter().map(|g| g.evidence).collect();
        assert_eq!(
            kinds,
            vec![EvidenceKind::KmsKeys, EvidenceKind::KmsCustomKeyStores]
        );
        for g in gaps {
            assert_eq!(g.error_code, "AccessDeniedException");
            assert!(
                g.message
                    .contains("explicit deny in a service control policy")
            );
            assert!(g.resource_arn.is_none());
        }
    }

    #[test]
    fn fault_9_rotation_status_throttled_for_one_key() {
        let s = sample_estate();
        let k = key_by_alias(&s, PROD, EU_WEST_1, "alias/prod-secrets");
        assert!(k.rotation.is_none());
        let gap = s
            .gaps
            .iter()
            .find(|g| g.evidence == EvidenceKind::KmsRotation)
            .expect("rotation gap");
        assert_eq!(gap.resource_arn.as_deref(), Some(k.arn.as_str()));
        assert_eq!(gap.error_code, "ThrottlingException");
        assert_eq!(s.gaps.len(), 3);
    }

    #[test]
    fn sample_kms_activity_is_current() {
        let fresh = crate::logs::synthetic::sample_audit(collected_at()).expect("generates");
        let mut json = serde_json::to_string_pretty(&fresh).expect("json");
        json.push('\n');
        if std::env::var_os("KEYPROOF_UPDATE_SAMPLE").is_some() {
            std::fs::write(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/src/snapshot/sample-kms-activity.json"
                ),
                &json,
            )
            .expect("write");
        }
        assert!(
            json == SAMPLE_KMS_ACTIVITY,
            "src/snapshot/sample-kms-activity.json is stale: run KEYPROOF_UPDATE_SAMPLE=1 cargo test --lib sample_kms_activity_is_current"
        );
        assert!(sample_estate().kms_activity.is_some());
    }
}
