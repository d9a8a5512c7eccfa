//! The AWS service clients for one account and region, each wearing the read-only guard.

use crate::collect::guard::{Guard, Ledger};
use aws_config::{Region, SdkConfig};
use std::sync::Arc;

/// The clients the collectors of one account × region use.
#[derive(Debug, Clone)]
pub struct RegionClients {
    pub kms: aws_sdk_kms::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub config: aws_sdk_config::Client,
    pub cloudhsm: aws_sdk_cloudhsmv2::Client,
}

/// Builds the clients for one account × region.
///
/// The real implementation derives them from the account's `SdkConfig`; tests supply clients
/// wired to mocks or to a local emulator.
pub trait ClientFactory: Send + Sync {
    fn region_clients(&self, account_id: &str, region: &str) -> RegionClients;
}

/// Clients from an `SdkConfig` per account (credentials, retry, timeouts and endpoint come from
/// there; the region is set per call).
#[derive(Debug)]
pub struct SdkClientFactory {
    pub accounts: Vec<(String, SdkConfig)>,
    pub ledger: Arc<Ledger>,
}

impl SdkClientFactory {
    /// The configuration (credentials) of `account_id`.
    pub fn config_for(&self, account_id: &str) -> SdkConfig {
        self.accounts
            .iter()
            .find(|(id, _)| id == account_id)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| {
                // Accounts come from the same plan that built this factory. An unknown one gets
                // no credentials at all, so its calls fail visibly as gaps instead of running in
                // another account.
                SdkConfig::builder()
                    .behavior_version(aws_config::BehaviorVersion::latest())
                    .build()
            })
    }
}

impl ClientFactory for SdkClientFactory {
    fn region_clients(&self, account_id: &str, region: &str) -> RegionClients {
        guarded_clients(&self.config_for(account_id), region, &self.ledger)
    }
}

/// Clients for `region` from `sdk`, each with the read-only guard.
pub fn guarded_clients(sdk: &SdkConfig, region: &str, ledger: &Arc<Ledger>) -> RegionClients {
    let region = Region::new(region.to_string());
    RegionClients {
        kms: aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(sdk)
                .region(region.clone())
                .interceptor(Guard::new("kms", ledger.clone()))
                .build(),
        ),
        cloudtrail: aws_sdk_cloudtrail::Client::from_conf(
            aws_sdk_cloudtrail::config::Builder::from(sdk)
                .region(region.clone())
                .interceptor(Guard::new("cloudtrail", ledger.clone()))
                .build(),
        ),
        config: aws_sdk_config::Client::from_conf(
            aws_sdk_config::config::Builder::from(sdk)
                .region(region.clone())
                .interceptor(Guard::new("config", ledger.clone()))
                .build(),
        ),
        cloudhsm: aws_sdk_cloudhsmv2::Client::from_conf(
            aws_sdk_cloudhsmv2::config::Builder::from(sdk)
                .region(region)
                .interceptor(Guard::new("cloudhsm", ledger.clone()))
                .build(),
        ),
    }
}
