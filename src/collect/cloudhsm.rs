//! CloudHSM collector: the clusters behind the region's CloudHSM custom key stores, with their
//! HSMs and Availability Zones (DescribeClusters, filtered to those cluster ids).
//!
//! Nothing is called when the region has no CloudHSM key store, so accounts without CloudHSM
//! need no CloudHSM permission.

use crate::collect::{ApiFailure, RegionCtx, drain};
use crate::snapshot::{CloudHsmCluster, CustomKeyStore, EvidenceKind, Hsm};
use aws_sdk_cloudhsmv2::Client;

const SERVICE: &str = "cloudhsm";

/// Collects the clusters that back `stores`.
pub async fn collect(
    ctx: &RegionCtx<'_>,
    client: &Client,
    stores: &[CustomKeyStore],
) -> Vec<CloudHsmCluster> {
    let mut ids: Vec<String> = stores
        .iter()
        .filter(|s| s.store_type == "AWS_CLOUDHSM")
        .filter_map(|s| s.cloudhsm_cluster_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Vec::new();
    }
    let pages = client
        .describe_clusters()
        .filters("clusterIds", ids.clone())
        .into_paginator()
        .send();
    let (pages, failure) = drain(pages).await;
    let clusters: Vec<CloudHsmCluster> = pages
        .iter()
        .flat_map(|page| page.clusters())
        .map(|c| CloudHsmCluster {
            cluster_id: c.cluster_id().unwrap_or_default().to_string(),
            state: c
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "UNKNOWN".into()),
            hsm_type: c.hsm_type().map(str::to_string),
            hsms: c
                .hsms()
                .iter()
                .map(|h| Hsm {
                    hsm_id: h.hsm_id().to_string(),
                    availability_zone: h.availability_zone().unwrap_or_default().to_string(),
                    state: h
                        .state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "UNKNOWN".into()),
                })
                .collect(),
        })
        .collect();
    if let Some(failure) = failure {
        ctx.gap(
            SERVICE,
            "DescribeClusters",
            EvidenceKind::CloudHsmClusters,
            None,
            failure,
        );
        return clusters;
    }
    // A store whose cluster DescribeClusters did not return is evidence missing, not a pass.
    for id in ids {
        if !clusters.iter().any(|c| c.cluster_id == id) {
            ctx.gap(
                SERVICE,
                "DescribeClusters",
                EvidenceKind::CloudHsmClusters,
                Some(&id),
                ApiFailure::new(
                    "ClusterNotFound",
                    format!("DescribeClusters did not return cluster {id}, which backs a custom key store"),
                ),
            );
        }
    }
    clusters
}
