//! A synthetic estate of any size, for benchmarks and scale tests.
//!
//! The estate spreads `keys` KMS keys over 10 accounts × 4 regions with the variety a large
//! organization has: mostly customer managed symmetric keys (some multi-Region, some in a
//! CloudHSM custom key store), a few AWS managed keys, asymmetric signing and HMAC keys, key
//! policies from a handful of templates (including a few public and cross-account ones), grants,
//! tags, rotation that is mostly quarterly with a few yearly or disabled keys, and about 1.5
//! encrypted resources per key across seven resource types (a few unencrypted, or tagged for a
//! different environment than their key). Every account has one multi-Region trail and a custom
//! key store backed by a CloudHSM cluster; every region has a Config recorder.
//!
//! Generation is deterministic (a fixed-seed SplitMix64, no clock) so benchmark runs compare like
//! with like, and cheap: 100,000 keys take a fraction of a second in a release build.

use super::{
    AccountEvidence, AccountRef, CloudHsmCluster, ConfigRecorder, CustomKeyStore,
    EncryptedResource, EventSelectors, EvidenceKind, Gap, Grant, Hsm, KmsEventSummary, KmsKey,
    MultiRegion, RegionEvidence, Rotation, SCHEMA_VERSION, Scope, Snapshot, SnapshotSource, Tags,
    ToolInfo, Trail,
};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

const ACCOUNTS: usize = 10;
/// Accounts `0..PROD_ACCOUNTS` are production, the rest development.
const PROD_ACCOUNTS: usize = 7;
const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"];
const SEED: u64 = 0x6b65_7970_726f_6f66; // "keyproof"
/// 2026-11-01T06:00:00Z, the same collection time as the sample estate.
const COLLECTED_AT_SECS: i64 = 1_793_512_800;
/// An account outside the estate that some policies and grants let in.
const EXTERNAL_ACCOUNT: &str = "999988887777";

/// Key services: the tag value, the `kms:ViaService` prefix, and the resource types it encrypts.
const SERVICES: [(&str, &str, &[&str]); 7] = [
    (
        "rds",
        "rds",
        &["AWS::RDS::DBCluster", "AWS::RDS::DBInstance"],
    ),
    ("ebs", "ec2", &["AWS::EC2::Volume"]),
    ("s3", "s3", &["AWS::S3::Bucket"]),
    (
        "secretsmanager",
        "secretsmanager",
        &["AWS::SecretsManager::Secret"],
    ),
    ("sns", "sns", &["AWS::SNS::Topic"]),
    ("sqs", "sqs", &["AWS::SQS::Queue"]),
    (
        "app",
        "ec2",
        &[
            "AWS::EC2::Volume",
            "AWS::S3::Bucket",
            "AWS::SecretsManager::Secret",
            "AWS::SNS::Topic",
            "AWS::SQS::Queue",
        ],
    ),
];

/// AWS managed key aliases, at most one of each per account and region.
const AWS_MANAGED: [(&str, &str, &str); 8] = [
    ("ebs", "ec2", "AWS::EC2::Volume"),
    ("s3", "s3", "AWS::S3::Bucket"),
    ("rds", "rds", "AWS::RDS::DBInstance"),
    (
        "secretsmanager",
        "secretsmanager",
        "AWS::SecretsManager::Secret",
    ),
    ("sns", "sns", "AWS::SNS::Topic"),
    ("sqs", "sqs", "AWS::SQS::Queue"),
    ("lambda", "lambda", "AWS::SQS::Queue"),
    ("backup", "backup", "AWS::RDS::DBCluster"),
];

const OWNERS: [&str; 8] = [
    "payments-platform",
    "cardholder-data",
    "platform-infra",
    "security-engineering",
    "settlement",
    "merchant-reporting",
    "data-platform",
    "developer-experience",
];

/// Builds a synthetic estate with exactly `keys` KMS keys.
pub fn synthetic_estate(keys: usize) -> Snapshot {
    let collected_at = collected_at();
    let mut generator = Generator {
        rng: Rng(SEED),
        collected_at,
        accounts: (0..ACCOUNTS).map(account_id).collect(),
        policies: HashMap::new(),
        slots: Vec::new(),
        aws_managed: vec![0; ACCOUNTS * REGIONS.len()],
        gaps: Vec::new(),
        next_resource: 0,
    };
    let slots: Vec<RegionEvidence> = (0..ACCOUNTS * REGIONS.len())
        .map(|slot| generator.empty_region(slot / REGIONS.len(), slot % REGIONS.len()))
        .collect();
    generator.slots = slots;

    let mut made = 0;
    while made < keys {
        let slot = generator.rng.below(generator.slots.len() as u64) as usize;
        made += generator.add_key(made, slot, keys - made);
    }
    for region in &mut generator.slots {
        region.kms_events = Some(event_summary(region, collected_at));
    }

    let mut regions = generator.slots.into_iter();
    let accounts = generator
        .accounts
        .iter()
        .map(|id| AccountEvidence {
            account_id: id.clone(),
            regions: regions.by_ref().take(REGIONS.len()).collect(),
        })
        .collect();
    Snapshot {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "keyproof".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        source: SnapshotSource::Synthetic,
        collected_at,
        completed_at: collected_at + Duration::seconds(60 + (keys / 50) as i64),
        scope: Scope {
            accounts: generator
                .accounts
                .iter()
                .enumerate()
                .map(|(i, id)| AccountRef {
                    account_id: id.clone(),
                    name: Some(format!("synthetic-{}-{i:02}", environment(i))),
                })
                .collect(),
            regions: REGIONS.iter().map(|r| (*r).to_string()).collect(),
            events_since: Some(collected_at - Duration::days(90)),
        },
        accounts,
        gaps: generator.gaps,
        selftest: None,
        kms_activity: None,
    }
}

fn collected_at() -> DateTime<Utc> {
    DateTime::from_timestamp(COLLECTED_AT_SECS, 0).expect("constant timestamp is in range")
}

fn account_id(index: usize) -> String {
    (200_000_000_000u64 + index as u64 * 11_111_111_111).to_string()
}

fn environment(account: usize) -> &'static str {
    if account < PROD_ACCOUNTS {
        "production"
    } else {
        "development"
    }
}

/// SplitMix64: small, fast and good enough for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn hex(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len + 16);
        while out.len() < len {
            // Writing to a String cannot fail.
            let _ = write!(out, "{:016x}", self.next_u64());
        }
        out.truncate(len);
        out
    }
}

struct Generator {
    rng: Rng,
    collected_at: DateTime<Utc>,
    accounts: Vec<String>,
    /// Policy documents by (template, account, region, service), filled in once each.
    policies: HashMap<(usize, usize, usize, usize), String>,
    /// Region evidence by `account * REGIONS.len() + region`.
    slots: Vec<RegionEvidence>,
    /// AWS managed keys made so far, per slot.
    aws_managed: Vec<usize>,
    gaps: Vec<Gap>,
    next_resource: usize,
}

/// Which key policy template a key gets.
#[derive(Clone, Copy)]
enum PolicyKind {
    Standard = 0,
    ConditionedWildcard = 1,
    CrossAccount = 2,
    Public = 3,
    AdminIsUser = 4,
    AwsManaged = 5,
}

const POLICY_TEMPLATES: [&str; 6] = [
    POLICY_STANDARD,
    POLICY_CONDITIONED_WILDCARD,
    POLICY_CROSS_ACCOUNT,
    POLICY_PUBLIC,
    POLICY_ADMIN_IS_USER,
    POLICY_AWS_MANAGED,
];

impl Generator {
    fn empty_region(&mut self, account: usize, region: usize) -> RegionEvidence {
        let id = &self.accounts[account];
        let home = REGIONS[0];
        let trail_name = format!("synthetic-{account:02}-trail");
        let mut out = RegionEvidence {
            region: REGIONS[region].into(),
            trails: vec![Trail {
                name: trail_name.clone(),
                arn: format!("arn:aws:cloudtrail:{home}:{id}:trail/{trail_name}"),
                home_region: home.into(),
                is_multi_region: true,
                is_organization_trail: false,
                // One development account in three skips validation.
                log_file_validation: account < PROD_ACCOUNTS || !account.is_multiple_of(3),
                kms_key_id: None,
                s3_bucket: Some(format!("synthetic-{id}-cloudtrail")),
                is_logging: Some(true),
                latest_delivery_error: None,
                latest_delivery_time: Some(self.collected_at - Duration::minutes(3)),
                selectors: Some(EventSelectors {
                    management_events: true,
                    management_read: true,
                    management_write: true,
                    kms_events_included: true,
                    selector_kind: "basic".into(),
                    raw: r#"[{"ReadWriteType":"All","IncludeManagementEvents":true,"DataResources":[],"ExcludeManagementEventSources":[]}]"#.into(),
                }),
            }],
            config_recorders: vec![ConfigRecorder {
                name: "default".into(),
                recording: true,
                all_supported: true,
                resource_types: Vec::new(),
                last_status: Some("SUCCESS".into()),
            }],
            ..RegionEvidence::default()
        };
        if region == 0 {
            let cluster_id = format!("cluster-{}", self.rng.hex(11));
            out.custom_key_stores.push(CustomKeyStore {
                id: format!("cks-{}", self.rng.hex(17)),
                name: format!("synthetic-{account:02}-hsm"),
                store_type: "AWS_CLOUDHSM".into(),
                connection_state: "CONNECTED".into(),
                connection_error_code: None,
                cloudhsm_cluster_id: Some(cluster_id.clone()),
                created_at: Some(self.collected_at - Duration::days(400)),
            });
            out.cloudhsm_clusters.push(CloudHsmCluster {
                cluster_id,
                state: "ACTIVE".into(),
                hsm_type: Some("hsm2m.medium".into()),
                hsms: ["a", "b"]
                    .iter()
                    .map(|zone| Hsm {
                        hsm_id: format!("hsm-{}", self.rng.hex(11)),
                        availability_zone: format!("{}{zone}", REGIONS[region]),
                        state: "ACTIVE".into(),
                    })
                    .collect(),
            });
        }
        out
    }

    /// Adds one key (two for a multi-Region key with room for its replica) to `slot`, with its
    /// resources, and returns how many keys were added.
    fn add_key(&mut self, index: usize, slot: usize, room: usize) -> usize {
        let (account, region) = (slot / REGIONS.len(), slot % REGIONS.len());
        let roll = self.rng.below(1000);
        let aws_managed_count = self.aws_managed[slot];
        if (900..950).contains(&roll) && aws_managed_count < AWS_MANAGED.len() {
            self.aws_managed[slot] += 1;
            let key = self.aws_managed_key(account, region, aws_managed_count);
            self.add_resources(slot, &key, AWS_MANAGED[aws_managed_count].2, 1, true);
            self.slots[slot].kms_keys.push(key);
            return 1;
        }
        if roll >= 950 {
            let key = self.asymmetric_key(index, account, region);
            self.slots[slot].kms_keys.push(key);
            return 1;
        }

        let service = self.rng.below(SERVICES.len() as u64) as usize;
        let multi_region = room >= 2 && self.rng.chance(20);
        let mut key = self.customer_key(index, account, region, service, multi_region);
        let count = match self.rng.below(100) {
            0..10 => 0,
            10..45 => 1,
            45..80 => 2,
            _ => 3,
        };
        let types = SERVICES[service].2;
        let resource_type = *self.rng.pick(types);
        self.add_resources(slot, &key, resource_type, count, false);
        if !multi_region {
            self.slots[slot].kms_keys.push(key);
            return 1;
        }

        // The replica lives in the next region of the same account.
        let replica_slot = account * REGIONS.len() + (region + 1) % REGIONS.len();
        let replica_region = REGIONS[(region + 1) % REGIONS.len()];
        let replica_arn = key_arn(replica_region, &self.accounts[account], &key.key_id);
        let config = MultiRegion {
            key_type: "PRIMARY".into(),
            primary_arn: key.arn.clone(),
            replica_arns: vec![replica_arn.clone()],
        };
        let mut replica = key.clone();
        replica.arn = replica_arn;
        replica.grants.clear();
        replica.created_at = key.created_at + Duration::minutes(7);
        replica.multi_region = Some(MultiRegion {
            key_type: "REPLICA".into(),
            ..config.clone()
        });
        key.multi_region = Some(config);
        self.add_resources(replica_slot, &replica, resource_type, 1, false);
        self.slots[slot].kms_keys.push(key);
        self.slots[replica_slot].kms_keys.push(replica);
        2
    }

    fn customer_key(
        &mut self,
        index: usize,
        account: usize,
        region: usize,
        service: usize,
        multi_region: bool,
    ) -> KmsKey {
        let account_id = self.accounts[account].clone();
        let env = environment(account);
        let (svc, via, _) = SERVICES[service];
        let pci = if env == "development" {
            "none"
        } else {
            *self
                .rng
                .pick(&["cde", "cde", "connected", "connected", "none"])
        };
        let key_id = if multi_region {
            format!("mrk-{}", self.rng.hex(32))
        } else {
            self.rng.uuid()
        };
        let created = self.collected_at - Duration::days(30 + self.rng.below(900) as i64);
        // Every account has its custom key store in its first region.
        let in_hsm = !multi_region && region == 0 && pci == "cde" && self.rng.chance(100);

        let roll = self.rng.below(1000);
        let policy = match roll {
            0..20 => PolicyKind::Public,
            20..50 => PolicyKind::CrossAccount,
            50..70 => PolicyKind::AdminIsUser,
            70..150 => PolicyKind::ConditionedWildcard,
            _ => PolicyKind::Standard,
        };
        let policy = self.policy(policy, account, region, via);

        let key_arn = key_arn(REGIONS[region], &account_id, &key_id);
        let roll = self.rng.below(1000);
        let rotation = if in_hsm {
            None
        } else if roll < 2 {
            self.gaps.push(Gap {
                account_id: account_id.clone(),
                region: REGIONS[region].into(),
                service: "kms".into(),
                api: "GetKeyRotationStatus".into(),
                evidence: EvidenceKind::KmsRotation,
                resource_arn: Some(key_arn.clone()),
                error_code: "ThrottlingException".into(),
                message: "Rate exceeded".into(),
            });
            None
        } else if roll < 32 {
            Some(Rotation {
                enabled: false,
                period_days: None,
                next_rotation_date: None,
                history: Vec::new(),
            })
        } else if roll < 62 {
            Some(rotation_since(created, 365, self.collected_at))
        } else {
            Some(rotation_since(created, 90, self.collected_at))
        };

        let roll = self.rng.below(1000);
        let (state, deletion_date) = match roll {
            0..5 => (
                "PendingDeletion",
                Some(self.collected_at + Duration::days(1 + self.rng.below(29) as i64)),
            ),
            5..15 => ("Disabled", None),
            _ => ("Enabled", None),
        };

        let grants = (0..self.rng.below(4))
            .map(|_| self.grant(&account_id, REGIONS[region], via, created))
            .collect();

        let short = if env == "production" { "prod" } else { "dev" };
        KmsKey {
            key_id,
            arn: key_arn,
            aliases: vec![format!("alias/{short}-{svc}-{index:06}")],
            description: format!("{svc} data keys for {}", self.rng.pick(&OWNERS)),
            key_manager: "CUSTOMER".into(),
            state: state.into(),
            spec: "SYMMETRIC_DEFAULT".into(),
            usage: "ENCRYPT_DECRYPT".into(),
            origin: if in_hsm { "AWS_CLOUDHSM" } else { "AWS_KMS" }.into(),
            custom_key_store_id: in_hsm.then(|| {
                self.slots[account * REGIONS.len()].custom_key_stores[0]
                    .id
                    .clone()
            }),
            multi_region: None,
            created_at: created,
            deletion_date,
            rotation,
            policy: Some(policy),
            grants,
            tags: self.tags(env, pci, svc),
            last_usage: None,
        }
    }

    fn aws_managed_key(&mut self, account: usize, region: usize, which: usize) -> KmsKey {
        let (svc, via, _) = AWS_MANAGED[which];
        let key_id = self.rng.uuid();
        let created = self.collected_at - Duration::days(200 + self.rng.below(1500) as i64);
        let policy = self.policy(PolicyKind::AwsManaged, account, region, via);
        KmsKey {
            arn: key_arn(REGIONS[region], &self.accounts[account], &key_id),
            key_id,
            aliases: vec![format!("alias/aws/{svc}")],
            description: format!(
                "Default key that protects my {svc} data when no other key is defined"
            ),
            key_manager: "AWS".into(),
            state: "Enabled".into(),
            spec: "SYMMETRIC_DEFAULT".into(),
            usage: "ENCRYPT_DECRYPT".into(),
            origin: "AWS_KMS".into(),
            custom_key_store_id: None,
            multi_region: None,
            created_at: created,
            deletion_date: None,
            rotation: Some(rotation_since(created, 365, self.collected_at)),
            policy: Some(policy),
            grants: Vec::new(),
            tags: self.tags(environment(account), "none", svc),
            last_usage: None,
        }
    }

    fn asymmetric_key(&mut self, index: usize, account: usize, region: usize) -> KmsKey {
        let env = environment(account);
        let (spec, usage, purpose) = *self.rng.pick(&[
            ("ECC_NIST_P256", "SIGN_VERIFY", "signing"),
            ("RSA_3072", "SIGN_VERIFY", "signing"),
            ("RSA_2048", "ENCRYPT_DECRYPT", "envelope"),
            ("HMAC_256", "GENERATE_VERIFY_MAC", "mac"),
        ]);
        let key_id = self.rng.uuid();
        let created = self.collected_at - Duration::days(30 + self.rng.below(900) as i64);
        let policy = self.policy(PolicyKind::Standard, account, region, "lambda");
        let short = if env == "production" { "prod" } else { "dev" };
        KmsKey {
            arn: key_arn(REGIONS[region], &self.accounts[account], &key_id),
            key_id,
            aliases: vec![format!("alias/{short}-{purpose}-{index:06}")],
            description: format!("{spec} {purpose} key"),
            key_manager: "CUSTOMER".into(),
            state: "Enabled".into(),
            spec: spec.into(),
            usage: usage.into(),
            origin: "AWS_KMS".into(),
            custom_key_store_id: None,
            multi_region: None,
            created_at: created,
            deletion_date: None,
            rotation: None,
            policy: Some(policy),
            grants: Vec::new(),
            tags: self.tags(env, "connected", purpose),
            last_usage: None,
        }
    }

    /// A policy document from a template, filled in once per (template, account, region,
    /// service) and cloned after that.
    fn policy(&mut self, kind: PolicyKind, account: usize, region: usize, via: &str) -> String {
        let service = SERVICES
            .iter()
            .map(|s| s.1)
            .chain(AWS_MANAGED.iter().map(|s| s.1))
            .position(|v| v == via)
            .unwrap_or(0);
        let accounts = &self.accounts;
        self.policies
            .entry((kind as usize, account, region, service))
            .or_insert_with(|| {
                POLICY_TEMPLATES[kind as usize]
                    .replace("{account}", &accounts[account])
                    .replace("{region}", REGIONS[region])
                    .replace("{via}", via)
                    .replace("{external}", EXTERNAL_ACCOUNT)
            })
            .clone()
    }

    fn grant(&mut self, account: &str, region: &str, via: &str, after: DateTime<Utc>) -> Grant {
        let cross_account = self.rng.chance(20);
        let grantee = if cross_account {
            format!("arn:aws:iam::{EXTERNAL_ACCOUNT}:role/BackupVault")
        } else if self.rng.chance(500) {
            format!("{via}.{region}.amazonaws.com")
        } else {
            format!("arn:aws:iam::{account}:role/{}", self.rng.pick(&OWNERS))
        };
        let age = (self.collected_at - after).num_days().max(1) as u64;
        Grant {
            grant_id: self.rng.hex(64),
            name: cross_account.then(|| "cross-account-backup".to_string()),
            grantee_principal: grantee,
            retiring_principal: None,
            issuing_account: Some(format!("arn:aws:iam::{account}:root")),
            operations: ["Decrypt", "GenerateDataKeyWithoutPlaintext", "DescribeKey"]
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
            constraints: None,
            created_at: Some(after + Duration::days(self.rng.below(age) as i64)),
        }
    }

    fn tags(&mut self, env: &str, pci: &str, service: &str) -> Tags {
        let owner = self.rng.below(OWNERS.len() as u64) as usize;
        let mut tags = Tags::new();
        tags.insert("Environment".into(), env.into());
        tags.insert("PCIScope".into(), pci.into());
        tags.insert("Service".into(), service.into());
        tags.insert("Owner".into(), OWNERS[owner].into());
        tags.insert("CostCenter".into(), format!("CC-{}", 1000 + owner * 100));
        tags
    }

    /// Adds `count` resources of `resource_type` encrypted with `key` to `slot`.
    fn add_resources(
        &mut self,
        slot: usize,
        key: &KmsKey,
        resource_type: &str,
        count: usize,
        aws_managed: bool,
    ) {
        let account = self.accounts[slot / REGIONS.len()].clone();
        let region = REGIONS[slot % REGIONS.len()];
        for _ in 0..count {
            let n = self.next_resource;
            self.next_resource += 1;
            let name = format!("synthetic-{n:07}");
            let (resource_id, arn) = match resource_type {
                "AWS::RDS::DBCluster" => (
                    format!("cluster-{}", self.rng.hex(26).to_uppercase()),
                    format!("arn:aws:rds:{region}:{account}:cluster:{name}"),
                ),
                "AWS::RDS::DBInstance" => (
                    format!("db-{}", self.rng.hex(26).to_uppercase()),
                    format!("arn:aws:rds:{region}:{account}:db:{name}"),
                ),
                "AWS::EC2::Volume" => {
                    let id = format!("vol-0{}", self.rng.hex(16));
                    let arn = format!("arn:aws:ec2:{region}:{account}:volume/{id}");
                    (id, arn)
                }
                "AWS::S3::Bucket" => {
                    let bucket = format!("{name}-{account}");
                    let arn = format!("arn:aws:s3:::{bucket}");
                    (bucket, arn)
                }
                "AWS::SecretsManager::Secret" => {
                    let arn = format!(
                        "arn:aws:secretsmanager:{region}:{account}:secret:{name}-{}",
                        self.rng.hex(6)
                    );
                    (arn.clone(), arn)
                }
                "AWS::SNS::Topic" => {
                    let arn = format!("arn:aws:sns:{region}:{account}:{name}");
                    (arn.clone(), arn)
                }
                _ => (
                    format!("https://sqs.{region}.amazonaws.com/{account}/{name}"),
                    format!("arn:aws:sqs:{region}:{account}:{name}"),
                ),
            };

            let mut tags = if aws_managed {
                self.tags(environment(slot / REGIONS.len()), "none", "app")
            } else {
                key.tags.clone()
            };
            let roll = self.rng.below(1000);
            if roll < 30 {
                // A resource tagged for the other environment than its key.
                let other = if tags.get("Environment").map(String::as_str) == Some("production") {
                    "development"
                } else {
                    "production"
                };
                tags.insert("Environment".into(), other.into());
            }
            let roll = self.rng.below(1000);
            let (encrypted, kms_key_id, encryption_type) = if roll < 30 {
                (Some(false), None, "NONE")
            } else if roll < 50 && matches!(resource_type, "AWS::S3::Bucket" | "AWS::SQS::Queue") {
                (Some(true), None, "AWS_OWNED")
            } else {
                let reference = match roll {
                    50..150 => key.key_id.clone(),
                    150..250 => key.aliases[0].clone(),
                    _ => key.arn.clone(),
                };
                let kind = if aws_managed {
                    "AWS_MANAGED_KMS"
                } else {
                    "CUSTOMER_KMS"
                };
                (Some(true), Some(reference), kind)
            };
            self.slots[slot].resources.push(EncryptedResource {
                resource_type: resource_type.into(),
                resource_id,
                arn,
                name: Some(name),
                encrypted,
                kms_key_id,
                encryption_type: encryption_type.into(),
                tags,
            });
        }
    }
}

fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{key_id}")
}

/// Automatic rotation every `period_days` since `created`, up to `now`.
fn rotation_since(created: DateTime<Utc>, period_days: u32, now: DateTime<Utc>) -> Rotation {
    Rotation::automatic_since(created, period_days, now)
}

/// Event counts that scale with the number of keys and resources in the region.
fn event_summary(region: &RegionEvidence, now: DateTime<Utc>) -> KmsEventSummary {
    let keys = region.kms_keys.len() as u64;
    let resources = region.resources.len() as u64;
    let by_event_name = BTreeMap::from([
        ("Decrypt".to_string(), resources * 9_000 + keys * 40),
        ("GenerateDataKey".to_string(), resources * 2_500),
        ("Encrypt".to_string(), resources * 300),
        ("DescribeKey".to_string(), keys * 90),
        ("CreateGrant".to_string(), resources * 12),
        ("RetireGrant".to_string(), resources * 11),
        ("ListAliases".to_string(), 90 * 24),
    ]);
    let errors = keys / 20 + 1;
    KmsEventSummary {
        window_start: now - Duration::days(90),
        window_end: now,
        total_events: by_event_name.values().sum(),
        by_event_name,
        errors_by_code: BTreeMap::from([("AccessDenied".to_string(), errors)]),
        notable: Vec::new(),
        notable_omitted: 0,
    }
}

// Key policy templates. `{account}`, `{region}`, `{via}` (the `kms:ViaService` prefix) and
// `{external}` are substituted.

const POLICY_STANDARD: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowKeyAdministration",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:role/KeyAdministrators"},
            "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
            "Resource": "*",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
        },
        {
            "Sid": "AllowUseOfTheKey",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:role/app-{via}"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "{via}.{region}.amazonaws.com"}}
        }
    ]
}"#;

const POLICY_CONDITIONED_WILDCARD: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowAccessThroughServiceForAccount",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:CallerAccount": "{account}", "kms:ViaService": "{via}.{region}.amazonaws.com"}}
        }
    ]
}"#;

const POLICY_CROSS_ACCOUNT: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowExternalAccountUse",
            "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::{account}:role/app-{via}", "arn:aws:iam::{external}:root"]},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            "Resource": "*"
        }
    ]
}"#;

const POLICY_PUBLIC: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowEveryone",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*"
        }
    ]
}"#;

const POLICY_ADMIN_IS_USER: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "EnableRootAccountPermissions",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "AllowDevOpsEverything",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:role/devops"},
            "Action": "kms:*",
            "Resource": "*"
        }
    ]
}"#;

const POLICY_AWS_MANAGED: &str = r#"{
    "Version": "2012-10-17",
    "Id": "auto-{via}-2",
    "Statement": [
        {
            "Sid": "Allow access through {via} for all principals in the account that are authorized to use {via}",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "{via}.{region}.amazonaws.com", "kms:CallerAccount": "{account}"}}
        },
        {
            "Sid": "Allow direct access to key metadata to the account",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:root"},
            "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
            "Resource": "*"
        }
    ]
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &Snapshot) -> impl Iterator<Item = &KmsKey> {
        s.accounts
            .iter()
            .flat_map(|a| &a.regions)
            .flat_map(|r| &r.kms_keys)
    }

    #[test]
    fn builds_the_requested_number_of_keys_and_round_trips() {
        let s = synthetic_estate(1000);
        assert_eq!(keys(&s).count(), 1000);
        assert_eq!(s.source, SnapshotSource::Synthetic);
        let json = serde_json::to_string(&s).expect("serializes");
        let back: Snapshot = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, s);
        assert_eq!(synthetic_estate(1000), s, "deterministic");
    }

    #[test]
    fn has_the_expected_variety() {
        let s = synthetic_estate(5000);
        assert_eq!(s.accounts.len(), ACCOUNTS);
        assert!(s.accounts.iter().all(|a| a.regions.len() == REGIONS.len()));
        let all: Vec<&KmsKey> = keys(&s).collect();
        let customer_symmetric = all
            .iter()
            .filter(|k| k.key_manager == "CUSTOMER" && k.spec == "SYMMETRIC_DEFAULT")
            .count();
        assert!(
            customer_symmetric * 100 / all.len() >= 85,
            "{customer_symmetric}"
        );
        assert!(all.iter().any(|k| k.key_manager == "AWS"));
        assert!(all.iter().any(|k| k.usage == "SIGN_VERIFY"));
        assert!(all.iter().any(|k| k.origin == "AWS_CLOUDHSM"));
        assert!(all.iter().any(|k| k.multi_region.is_some()));
        assert!(all.iter().any(|k| k.state == "PendingDeletion"));
        let resources: Vec<&EncryptedResource> = s
            .accounts
            .iter()
            .flat_map(|a| &a.regions)
            .flat_map(|r| &r.resources)
            .collect();
        let per_key = resources.len() as f64 / all.len() as f64;
        assert!((1.3..1.8).contains(&per_key), "{per_key}");
        assert!(resources.iter().any(|r| r.encrypted == Some(false)));
        let types: std::collections::BTreeSet<&str> =
            resources.iter().map(|r| r.resource_type.as_str()).collect();
        assert_eq!(types.len(), 7, "{types:?}");
        for k in &all {
            let policy = k.policy.as_deref().expect("policy");
            serde_json::from_str::<serde_json::Value>(policy).expect("policy is JSON");
        }
        // Aliases are unique within each account and region.
        let mut aliases = std::collections::BTreeSet::new();
        for a in &s.accounts {
            for r in &a.regions {
                for k in &r.kms_keys {
                    for alias in &k.aliases {
                        assert!(aliases.insert((&a.account_id, &r.region, alias)), "{alias}");
                    }
                }
            }
        }
    }

    #[test]
    fn zero_keys_is_an_empty_but_valid_estate() {
        let s = synthetic_estate(0);
        assert_eq!(keys(&s).count(), 0);
        assert!(
            s.accounts
                .iter()
                .all(|a| a.regions.iter().all(|r| !r.trails.is_empty()))
        );
    }
}
