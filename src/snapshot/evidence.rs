//! Evidence categories: the link between a collection gap and the controls that needed it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A category of evidence. A [`crate::snapshot::Gap`] names the category it failed to provide;
/// a control names the categories it needs, and comes out ERROR where one of them is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EvidenceKind {
    /// Everything in the account and region (e.g. the region could not be reached at all).
    #[serde(rename = "region")]
    Region,
    /// KMS ListKeys / DescribeKey.
    #[serde(rename = "kms.keys")]
    KmsKeys,
    /// KMS ListAliases.
    #[serde(rename = "kms.aliases")]
    KmsAliases,
    /// KMS GetKeyPolicy.
    #[serde(rename = "kms.key_policy")]
    KmsKeyPolicy,
    /// KMS ListGrants.
    #[serde(rename = "kms.grants")]
    KmsGrants,
    /// KMS ListResourceTags.
    #[serde(rename = "kms.tags")]
    KmsTags,
    /// KMS GetKeyRotationStatus / ListKeyRotations.
    #[serde(rename = "kms.rotation")]
    KmsRotation,
    /// KMS GetKeyLastUsage.
    #[serde(rename = "kms.last_usage")]
    KmsLastUsage,
    /// KMS DescribeCustomKeyStores.
    #[serde(rename = "kms.custom_key_stores")]
    KmsCustomKeyStores,
    /// CloudHSM DescribeClusters.
    #[serde(rename = "cloudhsm.clusters")]
    CloudHsmClusters,
    /// CloudTrail DescribeTrails.
    #[serde(rename = "cloudtrail.trails")]
    CloudTrailTrails,
    /// CloudTrail GetTrailStatus.
    #[serde(rename = "cloudtrail.status")]
    CloudTrailStatus,
    /// CloudTrail GetEventSelectors.
    #[serde(rename = "cloudtrail.selectors")]
    CloudTrailSelectors,
    /// CloudTrail LookupEvents (KMS event history).
    #[serde(rename = "cloudtrail.events")]
    CloudTrailEvents,
    /// AWS Config DescribeConfigurationRecorders / status.
    #[serde(rename = "config.recorders")]
    ConfigRecorders,
    /// AWS Config resource inventory.
    #[serde(rename = "config.resources")]
    ConfigResources,
    /// The envelope-encryption self-test (GenerateDataKey / Decrypt round trip).
    #[serde(rename = "selftest")]
    SelfTest,
}

impl EvidenceKind {
    /// Every category, in declaration order.
    pub const ALL: [EvidenceKind; 17] = [
        EvidenceKind::Region,
        EvidenceKind::KmsKeys,
        EvidenceKind::KmsAliases,
        EvidenceKind::KmsKeyPolicy,
        EvidenceKind::KmsGrants,
        EvidenceKind::KmsTags,
        EvidenceKind::KmsRotation,
        EvidenceKind::KmsLastUsage,
        EvidenceKind::KmsCustomKeyStores,
        EvidenceKind::CloudHsmClusters,
        EvidenceKind::CloudTrailTrails,
        EvidenceKind::CloudTrailStatus,
        EvidenceKind::CloudTrailSelectors,
        EvidenceKind::CloudTrailEvents,
        EvidenceKind::ConfigRecorders,
        EvidenceKind::ConfigResources,
        EvidenceKind::SelfTest,
    ];

    /// The name used in snapshots and control files, e.g. `kms.rotation`.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::Region => "region",
            EvidenceKind::KmsKeys => "kms.keys",
            EvidenceKind::KmsAliases => "kms.aliases",
            EvidenceKind::KmsKeyPolicy => "kms.key_policy",
            EvidenceKind::KmsGrants => "kms.grants",
            EvidenceKind::KmsTags => "kms.tags",
            EvidenceKind::KmsRotation => "kms.rotation",
            EvidenceKind::KmsLastUsage => "kms.last_usage",
            EvidenceKind::KmsCustomKeyStores => "kms.custom_key_stores",
            EvidenceKind::CloudHsmClusters => "cloudhsm.clusters",
            EvidenceKind::CloudTrailTrails => "cloudtrail.trails",
            EvidenceKind::CloudTrailStatus => "cloudtrail.status",
            EvidenceKind::CloudTrailSelectors => "cloudtrail.selectors",
            EvidenceKind::CloudTrailEvents => "cloudtrail.events",
            EvidenceKind::ConfigRecorders => "config.recorders",
            EvidenceKind::ConfigResources => "config.resources",
            EvidenceKind::SelfTest => "selftest",
        }
    }
}

impl fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_matches_as_str() {
        for kind in EvidenceKind::ALL {
            let json = serde_json::to_string(&kind).expect("serializes");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
