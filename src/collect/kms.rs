//! KMS collector: keys with metadata, policy, grants, tags, aliases, rotation status, period and
//! history, last use, and the region's custom key stores.
//!
//! Calls: ListKeys, ListAliases, DescribeCustomKeyStores once per region; per key DescribeKey,
//! GetKeyPolicy (`default`), ListGrants, ListResourceTags, GetKeyLastUsage, and for symmetric
//! keys with AWS-generated material GetKeyRotationStatus and ListKeyRotations. Rotation calls are
//! not made for keys AWS cannot rotate automatically (asymmetric, HMAC, imported material, custom
//! key stores): those keys carry `rotation: null` without a gap.

use crate::collect::{ApiFailure, RegionCtx, drain, to_utc};
use crate::snapshot::{
    CustomKeyStore, EvidenceKind, Grant, GrantConstraints, KeyLastUsage, KmsKey, MultiRegion,
    Rotation, RotationEvent, Tags,
};
use aws_sdk_kms::Client;
use futures_util::StreamExt;
use std::collections::HashMap;

/// What the KMS collector found in one region.
#[derive(Debug, Default)]
pub struct KmsEvidence {
    pub keys: Vec<KmsKey>,
    pub custom_key_stores: Vec<CustomKeyStore>,
}

const SERVICE: &str = "kms";

/// Collects the region's keys and custom key stores.
pub async fn collect(ctx: &RegionCtx<'_>, client: &Client) -> KmsEvidence {
    let (key_ids, aliases, custom_key_stores) = tokio::join!(
        list_keys(ctx, client),
        list_aliases(ctx, client),
        custom_key_stores(ctx, client)
    );
    let aliases = &aliases;
    let keys: Vec<KmsKey> = futures_util::stream::iter(
        key_ids
            .into_iter()
            .map(|id| async move { describe(ctx, client, &id, aliases).await }),
    )
    .buffered(ctx.settings.service_concurrency.max(1))
    .filter_map(|k| async move { k })
    .collect()
    .await;
    KmsEvidence {
        keys,
        custom_key_stores,
    }
}

async fn list_keys(ctx: &RegionCtx<'_>, client: &Client) -> Vec<String> {
    let pages = client.list_keys().into_paginator().items().send();
    ctx.drain(pages, SERVICE, "ListKeys", EvidenceKind::KmsKeys, None)
        .await
        .into_iter()
        .filter_map(|entry| entry.key_id)
        .collect()
}

/// Alias names by target key id.
async fn list_aliases(ctx: &RegionCtx<'_>, client: &Client) -> HashMap<String, Vec<String>> {
    let pages = client.list_aliases().into_paginator().items().send();
    let aliases = ctx
        .drain(
            pages,
            SERVICE,
            "ListAliases",
            EvidenceKind::KmsAliases,
            None,
        )
        .await;
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for alias in aliases {
        if let (Some(target), Some(name)) = (alias.target_key_id, alias.alias_name) {
            by_key.entry(target).or_default().push(name);
        }
    }
    for names in by_key.values_mut() {
        names.sort();
    }
    by_key
}

async fn custom_key_stores(ctx: &RegionCtx<'_>, client: &Client) -> Vec<CustomKeyStore> {
    let pages = client
        .describe_custom_key_stores()
        .into_paginator()
        .items()
        .send();
    let stores = ctx
        .drain(
            pages,
            SERVICE,
            "DescribeCustomKeyStores",
            EvidenceKind::KmsCustomKeyStores,
            None,
        )
        .await;
    stores
        .iter()
        .map(|s| CustomKeyStore {
            id: s.custom_key_store_id().unwrap_or_default().to_string(),
            name: s.custom_key_store_name().unwrap_or_default().to_string(),
            store_type: s
                .custom_key_store_type()
                .map(|t| t.as_str().to_string())
                // Stores created before external key stores existed omit the type.
                .unwrap_or_else(|| "AWS_CLOUDHSM".into()),
            connection_state: s
                .connection_state()
                .map(|c| c.as_str().to_string())
                .unwrap_or_else(|| "UNKNOWN".into()),
            connection_error_code: s.connection_error_code().map(|c| c.as_str().to_string()),
            cloudhsm_cluster_id: s.cloud_hsm_cluster_id().map(str::to_string),
            created_at: s.creation_date().and_then(to_utc),
        })
        .collect()
}

/// Everything about one key. `None` when DescribeKey itself failed (a gap says so).
async fn describe(
    ctx: &RegionCtx<'_>,
    client: &Client,
    key_id: &str,
    aliases: &HashMap<String, Vec<String>>,
) -> Option<KmsKey> {
    let described = match client.describe_key().key_id(key_id).send().await {
        Ok(out) => out,
        Err(e) => {
            let arn = key_arn(ctx, key_id);
            ctx.gap(
                SERVICE,
                "DescribeKey",
                EvidenceKind::KmsKeys,
                Some(&arn),
                ApiFailure::from_sdk(&e),
            );
            return None;
        }
    };
    let meta = described.key_metadata()?;
    let arn = meta
        .arn()
        .map(str::to_string)
        .unwrap_or_else(|| key_arn(ctx, key_id));
    let Some(created_at) = meta.creation_date().and_then(to_utc) else {
        ctx.gap(
            SERVICE,
            "DescribeKey",
            EvidenceKind::KmsKeys,
            Some(&arn),
            ApiFailure::new(
                "MissingCreationDate",
                "DescribeKey returned no creation date",
            ),
        );
        return None;
    };
    let spec = meta
        .key_spec()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let origin = meta
        .origin()
        .map(|o| o.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let state = meta
        .key_state()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let rotatable = spec == "SYMMETRIC_DEFAULT" && origin == "AWS_KMS";

    let (policy, grants, tags, rotation, last_usage) = tokio::join!(
        key_policy(ctx, client, key_id, &arn),
        grants(ctx, client, key_id, &arn),
        tags(ctx, client, key_id, &arn),
        async {
            if rotatable {
                rotation(ctx, client, key_id, &arn, &state).await
            } else {
                None
            }
        },
        last_usage(ctx, client, key_id, &arn),
    );

    Some(KmsKey {
        key_id: meta.key_id().to_string(),
        arn,
        aliases: aliases.get(meta.key_id()).cloned().unwrap_or_default(),
        description: meta.description().unwrap_or_default().to_string(),
        key_manager: meta
            .key_manager()
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| "UNKNOWN".into()),
        state,
        spec,
        usage: meta
            .key_usage()
            .map(|u| u.as_str().to_string())
            .unwrap_or_else(|| "UNKNOWN".into()),
        origin,
        custom_key_store_id: meta.custom_key_store_id().map(str::to_string),
        multi_region: meta.multi_region_configuration().map(|m| MultiRegion {
            key_type: m
                .multi_region_key_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            primary_arn: m
                .primary_key()
                .and_then(|p| p.arn())
                .unwrap_or_default()
                .to_string(),
            replica_arns: m
                .replica_keys()
                .iter()
                .filter_map(|r| r.arn().map(str::to_string))
                .collect(),
        }),
        created_at,
        deletion_date: meta.deletion_date().and_then(to_utc),
        rotation,
        policy,
        grants,
        tags,
        last_usage,
    })
}

fn key_arn(ctx: &RegionCtx<'_>, key_id: &str) -> String {
    format!("arn:aws:kms:{}:{}:key/{key_id}", ctx.region, ctx.account_id)
}

async fn key_policy(
    ctx: &RegionCtx<'_>,
    client: &Client,
    key_id: &str,
    arn: &str,
) -> Option<String> {
    match client
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
    {
        Ok(out) => out.policy().map(str::to_string),
        Err(e) => {
            ctx.gap(
                SERVICE,
                "GetKeyPolicy",
                EvidenceKind::KmsKeyPolicy,
                Some(arn),
                ApiFailure::from_sdk(&e),
            );
            None
        }
    }
}

async fn grants(ctx: &RegionCtx<'_>, client: &Client, key_id: &str, arn: &str) -> Vec<Grant> {
    let pages = client
        .list_grants()
        .key_id(key_id)
        .into_paginator()
        .items()
        .send();
    let grants = ctx
        .drain(
            pages,
            SERVICE,
            "ListGrants",
            EvidenceKind::KmsGrants,
            Some(arn),
        )
        .await;
    grants
        .iter()
        .map(|g| Grant {
            grant_id: g.grant_id().unwrap_or_default().to_string(),
            name: g.name().filter(|n| !n.is_empty()).map(str::to_string),
            grantee_principal: g.grantee_principal().unwrap_or_default().to_string(),
            retiring_principal: g.retiring_principal().map(str::to_string),
            issuing_account: g.issuing_account().map(str::to_string),
            operations: g
                .operations()
                .iter()
                .map(|o| o.as_str().to_string())
                .collect(),
            constraints: g.constraints().map(|c| GrantConstraints {
                encryption_context_subset: c
                    .encryption_context_subset()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                encryption_context_equals: c
                    .encryption_context_equals()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            }),
            created_at: g.creation_date().and_then(to_utc),
        })
        .collect()
}

async fn tags(ctx: &RegionCtx<'_>, client: &Client, key_id: &str, arn: &str) -> Tags {
    let pages = client
        .list_resource_tags()
        .key_id(key_id)
        .into_paginator()
        .items()
        .send();
    ctx.drain(
        pages,
        SERVICE,
        "ListResourceTags",
        EvidenceKind::KmsTags,
        Some(arn),
    )
    .await
    .into_iter()
    .map(|t| (t.tag_key, t.tag_value))
    .collect()
}

/// Rotation status, period, next date and history. A key that is not enabled may be refused
/// (`KMSInvalidStateException`); that is recorded as no rotation evidence, not a gap, since no
/// rotation control applies to a key that cannot be used.
async fn rotation(
    ctx: &RegionCtx<'_>,
    client: &Client,
    key_id: &str,
    arn: &str,
    state: &str,
) -> Option<Rotation> {
    let status = match client.get_key_rotation_status().key_id(key_id).send().await {
        Ok(s) => s,
        Err(e) => {
            let failure = ApiFailure::from_sdk(&e);
            let expected = failure.is_unsupported_for_resource()
                || (state != "Enabled" && failure.code == "KMSInvalidStateException");
            if !expected {
                ctx.gap(
                    SERVICE,
                    "GetKeyRotationStatus",
                    EvidenceKind::KmsRotation,
                    Some(arn),
                    failure,
                );
            }
            return None;
        }
    };
    let pages = client
        .list_key_rotations()
        .key_id(key_id)
        .into_paginator()
        .items()
        .send();
    let (rotations, failure) = drain(pages).await;
    if let Some(failure) = failure.filter(|f| !f.is_unsupported_for_resource()) {
        ctx.gap(
            SERVICE,
            "ListKeyRotations",
            EvidenceKind::KmsRotation,
            Some(arn),
            failure,
        );
    }
    let mut history: Vec<RotationEvent> = rotations
        .iter()
        .filter_map(|r| {
            Some(RotationEvent {
                rotated_at: r.rotation_date().and_then(to_utc)?,
                rotation_type: r
                    .rotation_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_else(|| "UNKNOWN".into()),
            })
        })
        .collect();
    history.sort_by_key(|r| r.rotated_at);
    Some(Rotation {
        enabled: status.key_rotation_enabled(),
        period_days: status
            .rotation_period_in_days()
            .and_then(|d| u32::try_from(d).ok()),
        next_rotation_date: status.next_rotation_date().and_then(to_utc),
        history,
    })
}

/// GetKeyLastUsage: when KMS last saw the key used for a successful cryptographic operation.
async fn last_usage(
    ctx: &RegionCtx<'_>,
    client: &Client,
    key_id: &str,
    arn: &str,
) -> Option<KeyLastUsage> {
    match client.get_key_last_usage().key_id(key_id).send().await {
        Ok(out) => {
            let usage = out.key_last_usage();
            Some(KeyLastUsage {
                tracking_since: out.tracking_start_date().and_then(to_utc),
                last_used_at: usage.and_then(|u| u.timestamp()).and_then(to_utc),
                operation: usage
                    .and_then(|u| u.operation())
                    .map(|o| o.as_str().to_string()),
                cloudtrail_event_id: usage
                    .and_then(|u| u.cloud_trail_event_id())
                    .map(str::to_string),
            })
        }
        Err(e) => {
            ctx.gap(
                SERVICE,
                "GetKeyLastUsage",
                EvidenceKind::KmsLastUsage,
                Some(arn),
                ApiFailure::from_sdk(&e),
            );
            None
        }
    }
}
