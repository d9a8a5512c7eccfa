//! AWS Config collector: the configuration recorders and their status, and Config's inventory of
//! the resource types that keyproof checks for encryption at rest.
//!
//! Calls: DescribeConfigurationRecorders, DescribeConfigurationRecorderStatus, and per resource
//! type ListDiscoveredResources then BatchGetResourceConfig (100 at a time). A region without a
//! recording recorder, or whose recorder skips a type, is a gap: Config saying nothing there
//! proves nothing.
//!
//! Each item's encryption setting is read from the configuration document Config stores for
//! its type (see [`parse_item`]); which kind of key it names (AWS managed or customer managed)
//! is decided afterwards against the region's keys ([`classify_keys`]).

use crate::collect::{ApiFailure, RegionCtx};
use crate::snapshot::{ConfigRecorder, EncryptedResource, EvidenceKind, KmsKey, Tags};
use aws_sdk_config::Client;
use aws_sdk_config::types::{RecordingStrategyType, ResourceKey, ResourceType};
use futures_util::StreamExt;
use serde_json::Value;
use std::collections::HashMap;

const SERVICE: &str = "config";

/// The AWS Config resource types inventoried for encryption at rest.
pub const RESOURCE_TYPES: &[&str] = &[
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::EC2::Volume",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
];

/// What the Config collector found in one region.
#[derive(Debug, Default)]
pub struct ConfigEvidence {
    pub recorders: Vec<ConfigRecorder>,
    pub resources: Vec<EncryptedResource>,
}

/// What the recorders record, for deciding which types' inventory can be trusted.
#[derive(Debug, Default)]
struct Recording {
    /// Some recorder is recording.
    active: bool,
    /// Every supported type except `excluded`.
    all_supported: bool,
    included: Vec<String>,
    excluded: Vec<String>,
}

impl Recording {
    fn records(&self, resource_type: &str) -> bool {
        self.active
            && if self.all_supported {
                !self.excluded.iter().any(|t| t == resource_type)
            } else {
                self.included.iter().any(|t| t == resource_type)
            }
    }
}

/// Collects the region's recorders and encrypted-resource inventory.
pub async fn collect(ctx: &RegionCtx<'_>, client: &Client) -> ConfigEvidence {
    let Some((recorders, recording)) = recorders(ctx, client).await else {
        ctx.gap(
            SERVICE,
            "DescribeConfigurationRecorders",
            EvidenceKind::ConfigResources,
            None,
            ApiFailure::new(
                "RecorderStatusUnknown",
                "the AWS Config recorders could not be read, so Config's inventory cannot be trusted to be complete",
            ),
        );
        return ConfigEvidence::default();
    };
    if !recording.active {
        ctx.gap(
            SERVICE,
            "DescribeConfigurationRecorderStatus",
            EvidenceKind::ConfigResources,
            None,
            ApiFailure::new(
                "NoRecordingConfigRecorder",
                "no AWS Config recorder is recording in this region, so there is no resource inventory; enable AWS Config recording for the encrypted resource types",
            ),
        );
        return ConfigEvidence {
            recorders,
            resources: Vec::new(),
        };
    }
    let recording = &recording;
    let per_type: Vec<Vec<EncryptedResource>> =
        futures_util::stream::iter(RESOURCE_TYPES.iter().map(|t| async move {
            if recording.records(t) {
                inventory(ctx, client, t).await
            } else {
                ctx.gap(
                    SERVICE,
                    "DescribeConfigurationRecorders",
                    EvidenceKind::ConfigResources,
                    None,
                    ApiFailure::new(
                        "ResourceTypeNotRecorded",
                        format!("the AWS Config recorder does not record {t} in this region; add it to the recording group"),
                    ),
                );
                Vec::new()
            }
        }))
        .buffered(ctx.settings.service_concurrency.max(1))
        .collect()
        .await;
    ConfigEvidence {
        recorders,
        resources: per_type.into_iter().flatten().collect(),
    }
}

/// The recorders with their status; `None` (and a gap) when they could not be read.
async fn recorders(
    ctx: &RegionCtx<'_>,
    client: &Client,
) -> Option<(Vec<ConfigRecorder>, Recording)> {
    let (described, status) = tokio::join!(
        client.describe_configuration_recorders().send(),
        client.describe_configuration_recorder_status().send()
    );
    let described = match described {
        Ok(d) => d,
        Err(e) => {
            ctx.gap(
                SERVICE,
                "DescribeConfigurationRecorders",
                EvidenceKind::ConfigRecorders,
                None,
                ApiFailure::from_sdk(&e),
            );
            return None;
        }
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            ctx.gap(
                SERVICE,
                "DescribeConfigurationRecorderStatus",
                EvidenceKind::ConfigRecorders,
                None,
                ApiFailure::from_sdk(&e),
            );
            return None;
        }
    };
    let mut recording = Recording::default();
    let mut out = Vec::new();
    for r in described.configuration_recorders() {
        let name = r.name().unwrap_or_default().to_string();
        let st = status
            .configuration_recorders_status()
            .iter()
            .find(|s| s.name() == Some(name.as_str()));
        let is_recording = st.is_some_and(|s| s.recording());
        let group = r.recording_group();
        let exclusion = group
            .and_then(|g| g.recording_strategy())
            .and_then(|s| s.use_only())
            .is_some_and(|u| *u == RecordingStrategyType::ExclusionByResourceTypes);
        let all_supported = group.is_some_and(|g| g.all_supported()) || exclusion;
        let included: Vec<String> = group
            .map(|g| {
                g.resource_types()
                    .iter()
                    .map(|t| t.as_str().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let excluded: Vec<String> = group
            .and_then(|g| g.exclusion_by_resource_types())
            .map(|x| {
                x.resource_types()
                    .iter()
                    .map(|t| t.as_str().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if is_recording {
            recording.active = true;
            recording.all_supported |= all_supported;
            recording.included.extend(included.iter().cloned());
            recording.excluded.extend(excluded);
        }
        out.push(ConfigRecorder {
            name,
            recording: is_recording,
            all_supported,
            resource_types: included,
            last_status: st
                .and_then(|s| s.last_status())
                .map(|s| s.as_str().to_string()),
        });
    }
    Some((out, recording))
}

/// Config's items of one type in this region.
async fn inventory(
    ctx: &RegionCtx<'_>,
    client: &Client,
    resource_type: &str,
) -> Vec<EncryptedResource> {
    let pages = client
        .list_discovered_resources()
        .resource_type(ResourceType::from(resource_type))
        .into_paginator()
        .items()
        .send();
    let (found, failure) = crate::collect::drain(pages).await;
    if let Some(failure) = failure {
        // A partial inventory would look like fewer resources: nothing of this type is kept.
        ctx.gap(
            SERVICE,
            "ListDiscoveredResources",
            EvidenceKind::ConfigResources,
            None,
            failure,
        );
        return Vec::new();
    }
    let ids: Vec<String> = found.into_iter().filter_map(|r| r.resource_id).collect();
    let batches: Vec<Vec<EncryptedResource>> = futures_util::stream::iter(
        ids.chunks(100)
            .map(|chunk| async move { batch(ctx, client, resource_type, chunk).await }),
    )
    .buffered(ctx.settings.service_concurrency.max(1))
    .collect()
    .await;
    batches.into_iter().flatten().collect()
}

/// BatchGetResourceConfig for up to 100 ids; unprocessed keys are retried once, then a gap.
async fn batch(
    ctx: &RegionCtx<'_>,
    client: &Client,
    resource_type: &str,
    ids: &[String],
) -> Vec<EncryptedResource> {
    let mut keys: Vec<ResourceKey> = ids
        .iter()
        .filter_map(|id| {
            ResourceKey::builder()
                .resource_type(ResourceType::from(resource_type))
                .resource_id(id)
                .build()
                .ok()
        })
        .collect();
    let mut out = Vec::new();
    for attempt in 0..2 {
        if keys.is_empty() {
            break;
        }
        match client
            .batch_get_resource_config()
            .set_resource_keys(Some(keys.clone()))
            .send()
            .await
        {
            Ok(resp) => {
                for item in resp.base_configuration_items() {
                    let supplementary = item.supplementary_configuration().cloned();
                    out.push(parse_item(
                        resource_type,
                        item.resource_id().unwrap_or_default(),
                        item.arn().unwrap_or_default(),
                        item.resource_name(),
                        item.configuration(),
                        supplementary.as_ref(),
                    ));
                }
                keys = resp.unprocessed_resource_keys().to_vec();
                if !keys.is_empty() && attempt == 1 {
                    for k in &keys {
                        ctx.gap(
                            SERVICE,
                            "BatchGetResourceConfig",
                            EvidenceKind::ConfigResources,
                            Some(k.resource_id()),
                            ApiFailure::new(
                                "UnprocessedResourceKey",
                                format!(
                                    "AWS Config did not return {resource_type} {} after a retry",
                                    k.resource_id()
                                ),
                            ),
                        );
                    }
                }
            }
            Err(e) => {
                ctx.gap(
                    SERVICE,
                    "BatchGetResourceConfig",
                    EvidenceKind::ConfigResources,
                    None,
                    ApiFailure::from_sdk(&e),
                );
                break;
            }
        }
    }
    out
}

/// Case-insensitive field lookup: Config documents mix `kmsKeyId` and `KmsKeyId` by type.
fn field<'v>(v: &'v Value, name: &str) -> Option<&'v Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn string_field(v: &Value, name: &str) -> Option<String> {
    match field(v, name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A boolean that Config may store as `true` or `"true"`.
fn bool_field(v: &Value, name: &str) -> Option<bool> {
    match field(v, name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Tags in any of Config's shapes: `[{"key":..,"value":..}]` (either case) or `{"k": "v"}`.
fn tags_from(v: Option<&Value>) -> Tags {
    let mut tags = Tags::new();
    match v {
        Some(Value::Array(items)) => {
            for item in items {
                if let (Some(k), Some(val)) = (string_field(item, "key"), field(item, "value")) {
                    tags.insert(k, val.as_str().unwrap_or_default().to_string());
                }
            }
        }
        Some(Value::Object(map)) => {
            for (k, val) in map {
                tags.insert(k.clone(), val.as_str().unwrap_or_default().to_string());
            }
        }
        _ => {}
    }
    tags
}

/// A supplementary configuration value: Config stores them as JSON text.
fn supplementary_json(supp: Option<&HashMap<String, String>>, name: &str) -> Option<Value> {
    let raw = supp?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?.1;
    serde_json::from_str(raw).ok()
}

/// Reads one configuration item's encryption setting and tags.
///
/// `encryption_type` is `NONE`, `AWS_OWNED`, `UNKNOWN` (setting not readable), or provisionally
/// `UNKNOWN` with a `kms_key_id` that [`classify_keys`] later resolves to `AWS_MANAGED_KMS` or
/// `CUSTOMER_KMS`.
pub fn parse_item(
    resource_type: &str,
    resource_id: &str,
    arn: &str,
    name: Option<&str>,
    configuration: Option<&str>,
    supplementary: Option<&HashMap<String, String>>,
) -> EncryptedResource {
    let cfg: Value = configuration
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null);
    let none = || (Some(false), None, "NONE");
    let kms = |key: String| (Some(true), Some(key), "UNKNOWN");
    let unknown = || (None, None, "UNKNOWN");
    let ((encrypted, kms_key_id, encryption_type), mut tags) = match resource_type {
        "AWS::EC2::Volume" => (
            match bool_field(&cfg, "encrypted") {
                Some(true) => string_field(&cfg, "kmsKeyId")
                    .map(kms)
                    .unwrap_or_else(|| kms("alias/aws/ebs".into())),
                Some(false) => none(),
                None => unknown(),
            },
            tags_from(field(&cfg, "tags")),
        ),
        "AWS::RDS::DBInstance" | "AWS::RDS::DBCluster" => (
            match bool_field(&cfg, "storageEncrypted") {
                Some(true) => string_field(&cfg, "kmsKeyId")
                    .map(kms)
                    .unwrap_or_else(unknown),
                Some(false) => none(),
                None => unknown(),
            },
            tags_from(field(&cfg, "tagList").or_else(|| field(&cfg, "tags"))),
        ),
        "AWS::S3::Bucket" => {
            let sse = supplementary_json(supplementary, "ServerSideEncryptionConfiguration");
            let rule = sse
                .as_ref()
                .and_then(|s| field(s, "rules"))
                .and_then(Value::as_array)
                .and_then(|r| r.first())
                .and_then(|r| field(r, "applyServerSideEncryptionByDefault"));
            let setting = match rule
                .and_then(|r| string_field(r, "sseAlgorithm"))
                .as_deref()
            {
                Some("AES256") => (Some(true), None, "AWS_OWNED"),
                Some(a) if a.starts_with("aws:kms") => rule
                    .and_then(|r| string_field(r, "kmsMasterKeyID"))
                    .map(kms)
                    .unwrap_or_else(|| kms("alias/aws/s3".into())),
                _ => unknown(),
            };
            let tagging = supplementary_json(supplementary, "BucketTaggingConfiguration");
            let tag_set = tagging
                .as_ref()
                .and_then(|t| field(t, "tagSets"))
                .and_then(Value::as_array)
                .and_then(|s| s.first())
                .and_then(|s| field(s, "tags"));
            (setting, tags_from(tag_set))
        }
        "AWS::SecretsManager::Secret" => (
            // Secrets Manager always encrypts; without a key id it uses aws/secretsmanager.
            string_field(&cfg, "kmsKeyId")
                .map(kms)
                .unwrap_or_else(|| kms("alias/aws/secretsmanager".into())),
            tags_from(field(&cfg, "tags")),
        ),
        "AWS::SNS::Topic" => (
            string_field(&cfg, "KmsMasterKeyId")
                .map(kms)
                .unwrap_or_else(none),
            tags_from(field(&cfg, "tags")),
        ),
        "AWS::SQS::Queue" => (
            match string_field(&cfg, "KmsMasterKeyId") {
                Some(k) => kms(k),
                None if bool_field(&cfg, "SqsManagedSseEnabled") == Some(true) => {
                    (Some(true), None, "AWS_OWNED")
                }
                None if cfg.is_object() => none(),
                None => unknown(),
            },
            tags_from(field(&cfg, "tags")),
        ),
        _ => (unknown(), Tags::new()),
    };
    if tags.is_empty() {
        // Some types keep their tags beside the configuration.
        tags = tags_from(supplementary_json(supplementary, "Tags").as_ref());
    }
    EncryptedResource {
        resource_type: resource_type.to_string(),
        resource_id: resource_id.to_string(),
        arn: arn.to_string(),
        name: name.map(str::to_string),
        encrypted,
        kms_key_id,
        encryption_type: encryption_type.to_string(),
        tags,
    }
}

/// Decides, for each resource that names a KMS key, whether that key is AWS managed or customer
/// managed, from the region's keys. A key in another account is customer managed (AWS managed
/// keys cannot be shared across accounts); a key that cannot be found stays `UNKNOWN`.
pub fn classify_keys(resources: &mut [EncryptedResource], keys: &[KmsKey], account_id: &str) {
    for r in resources.iter_mut() {
        let Some(key_ref) = r.kms_key_id.as_deref() else {
            continue;
        };
        let alias = key_ref
            .split_once(":alias/")
            .map(|(_, a)| format!("alias/{a}"))
            .unwrap_or_else(|| key_ref.to_string());
        if alias.starts_with("alias/aws/") {
            r.encryption_type = "AWS_MANAGED_KMS".into();
            continue;
        }
        let found = keys
            .iter()
            .find(|k| k.key_id == key_ref || k.arn == key_ref || k.aliases.contains(&alias));
        r.encryption_type = match found {
            Some(k) if k.key_manager == "AWS" => "AWS_MANAGED_KMS".into(),
            Some(k) if k.key_manager == "CUSTOMER" => "CUSTOMER_KMS".into(),
            Some(_) => "UNKNOWN".into(),
            None => match key_ref.split(':').nth(4) {
                Some(owner) if key_ref.starts_with("arn:") && owner != account_id => {
                    "CUSTOMER_KMS".into()
                }
                _ => "UNKNOWN".into(),
            },
        };
    }
}
