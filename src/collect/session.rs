//! Credentials, accounts and regions: from command-line options to a collection [`Plan`].
//!
//! Credentials come from the AWS default chain (environment, profiles, SSO, web identity,
//! IMDS), optionally a named profile; `AWS_ENDPOINT_URL` (or `endpoint_url`) points every client
//! at an emulator. Member accounts are reached by assuming a role in each; an account whose role
//! cannot be assumed is not an error for the run but a gap for each of its regions.

use crate::collect::clients::SdkClientFactory;
use crate::collect::guard::{Guard, Ledger};
use crate::collect::{ApiFailure, Plan};
use crate::snapshot::{AccountRef, EvidenceKind, Gap};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use std::sync::Arc;
use std::time::Duration;

/// Where and how to collect.
#[derive(Debug, Clone)]
pub struct CollectArgs {
    /// Named profile from the shared AWS config files.
    pub profile: Option<String>,
    /// Regions to collect; empty means the configured default region, `["all"]` means every
    /// region enabled for the account.
    pub regions: Vec<String>,
    /// Accounts to collect (besides none: empty means the caller's account only).
    pub accounts: Vec<String>,
    /// Collect every active account of the AWS Organization.
    pub organization: bool,
    /// Role assumed in each account other than the caller's.
    pub role_name: Option<String>,
    pub external_id: Option<String>,
    /// Endpoint for every service (an emulator); `AWS_ENDPOINT_URL` works too.
    pub endpoint_url: Option<String>,
    /// Attempts per call, first included, with adaptive retry (client-side rate limiting).
    pub max_attempts: u32,
    /// Base of the exponential backoff between attempts.
    pub initial_backoff: Duration,
    /// Timeout of one attempt.
    pub attempt_timeout: Duration,
}

impl Default for CollectArgs {
    fn default() -> CollectArgs {
        CollectArgs {
            profile: None,
            regions: Vec::new(),
            accounts: Vec::new(),
            organization: false,
            role_name: None,
            external_id: None,
            endpoint_url: None,
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// Why collection could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "no AWS region configured: pass --regions (a list, or `all`), or set AWS_REGION / a profile region"
    )]
    NoRegion,
    #[error(
        "could not establish who is calling (sts:GetCallerIdentity failed: {}: {}); check the credentials (AWS_PROFILE, `aws sso login`, environment variables)",
        .0.code,
        .0.message
    )]
    Identity(ApiFailure),
    #[error(
        "could not list the enabled regions (account:ListRegions failed: {}: {}); pass --regions explicitly or grant account:ListRegions",
        .0.code,
        .0.message
    )]
    RegionDiscovery(ApiFailure),
    #[error(
        "could not list the organization's accounts (organizations:ListAccounts failed: {}: {}); run from the management or a delegated administrator account, or pass --accounts",
        .0.code,
        .0.message
    )]
    Organization(ApiFailure),
    #[error(
        "collecting other accounts ({0}) needs --role-name: the role keyproof assumes in each of them"
    )]
    RoleNameRequired(String),
    #[error("`{0}` is not an AWS account id (12 digits)")]
    BadAccountId(String),
}

/// A connected session: base configuration, the caller's account, and the call ledger.
#[derive(Debug)]
pub struct Session {
    pub base: SdkConfig,
    pub caller_account: String,
    pub ledger: Arc<Ledger>,
}

impl Session {
    /// Loads the configuration and establishes the caller's identity.
    pub async fn connect(args: &CollectArgs, ledger: Arc<Ledger>) -> Result<Session, SessionError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::adaptive()
                    .with_max_attempts(args.max_attempts.max(1))
                    .with_initial_backoff(args.initial_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(args.attempt_timeout)
                    .connect_timeout(Duration::from_secs(10))
                    .build(),
            );
        if let Some(profile) = &args.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &args.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let mut base = loader.load().await;
        if base.region().is_none() {
            // Region-less profiles still work when regions are given; STS needs one to start.
            let fallback = args
                .regions
                .iter()
                .find(|r| *r != "all")
                .cloned()
                .unwrap_or_else(|| "us-east-1".into());
            if args.regions.is_empty() {
                return Err(SessionError::NoRegion);
            }
            base = base.to_builder().region(Region::new(fallback)).build();
        }
        Session::with_config(base, ledger).await
    }

    /// A session from a ready `SdkConfig` (credentials, region, endpoint, retry already set),
    /// for embedding and tests.
    pub async fn with_config(
        mut base: SdkConfig,
        ledger: Arc<Ledger>,
    ) -> Result<Session, SessionError> {
        // A hand-built config may lack the clock and sleep that role assumption and retries
        // need; the loader's defaults fill them.
        if base.time_source().is_none() {
            base = base
                .to_builder()
                .time_source(aws_smithy_async::time::SharedTimeSource::default())
                .build();
        }
        if let (None, Some(sleep)) = (
            base.sleep_impl(),
            aws_smithy_async::rt::sleep::default_async_sleep(),
        ) {
            base = base.to_builder().sleep_impl(sleep).build();
        }
        let caller_account = caller_account(&base, &ledger)
            .await
            .map_err(SessionError::Identity)?;
        Ok(Session {
            base,
            caller_account,
            ledger,
        })
    }

    /// Resolves accounts and regions and assumes the roles.
    pub async fn plan(&self, args: &CollectArgs) -> Result<(Plan, SdkClientFactory), SessionError> {
        let regions = self.regions(args).await?;
        let mut accounts: Vec<AccountRef> = if args.organization {
            self.organization_accounts().await?
        } else if args.accounts.is_empty() {
            vec![AccountRef {
                account_id: self.caller_account.clone(),
                name: None,
            }]
        } else {
            args.accounts
                .iter()
                .map(|a| AccountRef {
                    account_id: a.clone(),
                    name: None,
                })
                .collect()
        };
        let mut seen = std::collections::HashSet::new();
        accounts.retain(|a| seen.insert(a.account_id.clone()));
        if let Some(bad) = accounts
            .iter()
            .find(|a| a.account_id.len() != 12 || !a.account_id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(SessionError::BadAccountId(bad.account_id.clone()));
        }

        let others: Vec<&str> = accounts
            .iter()
            .map(|a| a.account_id.as_str())
            .filter(|a| *a != self.caller_account)
            .collect();
        let role_name = match (&args.role_name, others.is_empty()) {
            (Some(r), _) => Some(r.clone()),
            (None, true) => None,
            (None, false) => return Err(SessionError::RoleNameRequired(others.join(", "))),
        };

        let mut configs = Vec::new();
        let mut gaps = Vec::new();
        let mut unreachable = Vec::new();
        for account in &accounts {
            let id = &account.account_id;
            if *id == self.caller_account {
                configs.push((id.clone(), self.base.clone()));
                continue;
            }
            let Some(role_name) = &role_name else {
                continue;
            };
            let role_arn = format!("arn:aws:iam::{id}:role/{role_name}");
            match self.assume(&role_arn, args.external_id.as_deref()).await {
                Ok(config) => configs.push((id.clone(), config)),
                Err(failure) => {
                    unreachable.push(id.clone());
                    for region in &regions {
                        gaps.push(Gap {
                            account_id: id.clone(),
                            region: region.clone(),
                            service: "sts".into(),
                            api: "AssumeRole".into(),
                            evidence: EvidenceKind::Region,
                            resource_arn: Some(role_arn.clone()),
                            error_code: failure.code.clone(),
                            message: format!(
                                "could not assume {role_arn}: {}; nothing in this account was collected",
                                failure.message
                            ),
                        });
                    }
                }
            }
        }
        let plan = Plan {
            accounts,
            regions,
            gaps,
            unreachable,
        };
        let factory = SdkClientFactory {
            accounts: configs,
            ledger: self.ledger.clone(),
        };
        Ok((plan, factory))
    }

    async fn regions(&self, args: &CollectArgs) -> Result<Vec<String>, SessionError> {
        let mut regions = if args.regions.iter().any(|r| r == "all") {
            self.enabled_regions().await?
        } else if args.regions.is_empty() {
            vec![
                self.base
                    .region()
                    .map(|r| r.to_string())
                    .ok_or(SessionError::NoRegion)?,
            ]
        } else {
            args.regions.clone()
        };
        regions.sort();
        regions.dedup();
        Ok(regions)
    }

    /// account:ListRegions, keeping the regions enabled (by default or by opt-in).
    async fn enabled_regions(&self) -> Result<Vec<String>, SessionError> {
        use aws_sdk_account::types::RegionOptStatus;
        let client = aws_sdk_account::Client::from_conf(
            aws_sdk_account::config::Builder::from(&self.base)
                .interceptor(Guard::new("account", self.ledger.clone()))
                .build(),
        );
        let mut regions = Vec::new();
        let mut pages = client
            .list_regions()
            .region_opt_status_contains(RegionOptStatus::Enabled)
            .region_opt_status_contains(RegionOptStatus::EnabledByDefault)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let region =
                item.map_err(|e| SessionError::RegionDiscovery(ApiFailure::from_sdk(&e)))?;
            regions.extend(region.region_name().map(str::to_string));
        }
        Ok(regions)
    }

    /// organizations:ListAccounts, keeping active accounts.
    async fn organization_accounts(&self) -> Result<Vec<AccountRef>, SessionError> {
        use aws_sdk_organizations::types::AccountStatus;
        let client = aws_sdk_organizations::Client::from_conf(
            aws_sdk_organizations::config::Builder::from(&self.base)
                .interceptor(Guard::new("organizations", self.ledger.clone()))
                .build(),
        );
        let mut accounts = Vec::new();
        let mut pages = client.list_accounts().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| SessionError::Organization(ApiFailure::from_sdk(&e)))?;
            for account in page.accounts() {
                #[allow(deprecated)]
                let active = account.status().is_none_or(|s| *s == AccountStatus::Active);
                if let (Some(id), true) = (account.id(), active) {
                    accounts.push(AccountRef {
                        account_id: id.to_string(),
                        name: account.name().map(str::to_string),
                    });
                }
            }
        }
        accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        Ok(accounts)
    }

    /// Credentials for `role_arn`, proven by a GetCallerIdentity call with them.
    async fn assume(
        &self,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<SdkConfig, ApiFailure> {
        let mut builder = aws_config::sts::AssumeRoleProvider::builder(role_arn)
            .session_name("keyproof-collect")
            .configure(&self.base);
        if let Some(x) = external_id {
            builder = builder.external_id(x);
        }
        let provider = builder.build().await;
        // Assume once up front: a refusal is reported with STS's own error code.
        if let Err(e) = provider.provide_credentials().await {
            return Err(assume_failure(&e));
        }
        let config = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build();
        caller_account(&config, &self.ledger).await?;
        Ok(config)
    }
}

/// The STS error inside a failed role assumption, or the credentials error itself.
fn assume_failure(err: &aws_credential_types::provider::error::CredentialsError) -> ApiFailure {
    type AssumeRoleSdkError = aws_sdk_sts::error::SdkError<
        aws_sdk_sts::operation::assume_role::AssumeRoleError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >;
    if let Some(sts) = crate::collect::failure::find_source::<AssumeRoleSdkError>(err) {
        return ApiFailure::from_sdk(sts);
    }
    ApiFailure::new(
        "AssumeRoleFailed",
        aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
    )
}

/// sts:GetCallerIdentity: the account the credentials belong to.
async fn caller_account(config: &SdkConfig, ledger: &Arc<Ledger>) -> Result<String, ApiFailure> {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(config)
            .interceptor(Guard::new("sts", ledger.clone()))
            .build(),
    );
    let identity = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| ApiFailure::from_sdk(&e))?;
    identity
        .account()
        .map(str::to_string)
        .ok_or_else(|| ApiFailure::new("NoAccount", "GetCallerIdentity returned no account"))
}
