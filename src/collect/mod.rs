//! Live collection: reads an AWS estate through the official SDK into a [`Snapshot`].
//!
//! One module per AWS service ([`kms`], [`cloudhsm`], [`cloudtrail`], [`configservice`]), each
//! a set of read-only calls for one account × region that returns its part of the
//! [`RegionEvidence`] and records every call that failed as a [`Gap`]. This module fans the
//! work out over accounts × regions with bounded concurrency and assembles the snapshot;
//! [`session`] turns command-line options into credentials, accounts and regions.
//!
//! Collection never decides what is compliant: it records what AWS said, or that AWS could not
//! be asked. Calls that AWS refuses for a key type (rotation of an asymmetric key) are not made
//! or are recorded as not applicable; every other failure becomes a gap, and the controls that
//! needed that evidence come out ERROR.

pub mod clients;
pub mod cloudhsm;
pub mod cloudtrail;
pub mod configservice;
pub mod failure;
pub mod guard;
pub mod kms;
pub mod progress;
pub mod session;

pub use clients::{ClientFactory, RegionClients, SdkClientFactory, guarded_clients};
pub use failure::ApiFailure;
pub use guard::{
    Guard, IAM_POLICY, LOGS_IAM_POLICY, Ledger, PUBLISH_IAM_POLICY, SELFTEST_IAM_POLICY,
    SIGNING_IAM_POLICY, policy_actions, selftest_policy_actions, signing_policy_actions,
};
pub use progress::Progress;
pub use session::{CollectArgs, Session, SessionError};

use crate::snapshot::{
    AccountEvidence, AccountRef, EvidenceKind, Gap, KmsEventSummary, RegionEvidence,
    SCHEMA_VERSION, Scope, Snapshot, SnapshotSource, ToolInfo,
};
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How collection behaves, independent of where the credentials come from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Start of the CloudTrail event window.
    pub since: DateTime<Utc>,
    /// End of the window (the start of the run).
    pub until: DateTime<Utc>,
    /// Account × region pairs collected at once.
    pub region_concurrency: usize,
    /// Requests in flight per service within one account × region (keys described at once,
    /// Config batches fetched at once, trails inspected at once).
    pub service_concurrency: usize,
    /// Pause between LookupEvents pages: AWS allows 2 requests a second per account and region.
    pub lookup_interval: Duration,
    /// Whether to read the KMS event history with LookupEvents.
    pub lookup_events: bool,
    /// Most KMS events read per account and region (newest first); `None` for no limit. A
    /// region that reaches it keeps the events read and gets a gap saying the history is partial.
    pub max_events: Option<u64>,
    /// KMS event summaries of the window already read per (account, region), by the
    /// LookupEvents event source of the same run: taken as they are instead of reading the
    /// history a second time.
    pub known_events: BTreeMap<(String, String), KmsEventSummary>,
}

impl Settings {
    /// The defaults for a run starting now with a window of `since_days` days.
    pub fn new(now: DateTime<Utc>, since: DateTime<Utc>) -> Settings {
        Settings {
            since,
            until: now,
            region_concurrency: 8,
            service_concurrency: 8,
            lookup_interval: crate::logs::lookup::PACE,
            lookup_events: true,
            max_events: Some(200_000),
            known_events: BTreeMap::new(),
        }
    }
}

/// What to collect: the accounts and regions in scope, and what already failed while setting up
/// (an account whose role could not be assumed).
#[derive(Debug, Clone)]
pub struct Plan {
    pub accounts: Vec<AccountRef>,
    pub regions: Vec<String>,
    /// Gaps found before collection started.
    pub gaps: Vec<Gap>,
    /// Accounts that cannot be collected at all (their gaps are in `gaps`).
    pub unreachable: Vec<String>,
}

/// Figures for the one-line summary at the end of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub accounts: usize,
    pub regions: usize,
    pub keys: usize,
    pub trails: usize,
    pub resources: usize,
    pub gaps: usize,
    pub api_calls: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "collected {} account(s) x {} region(s): {} keys, {} trails, {} resources, {} gaps, {} API calls, {:.1} s",
            self.accounts,
            self.regions,
            self.keys,
            self.trails,
            self.resources,
            self.gaps,
            self.api_calls,
            self.seconds
        )
    }
}

/// The collection context of one account × region: where gaps go.
#[derive(Debug)]
pub struct RegionCtx<'a> {
    pub account_id: String,
    pub region: String,
    pub settings: &'a Settings,
    gaps: Mutex<Vec<Gap>>,
}

impl<'a> RegionCtx<'a> {
    pub fn new(account_id: &str, region: &str, settings: &'a Settings) -> RegionCtx<'a> {
        RegionCtx {
            account_id: account_id.to_string(),
            region: region.to_string(),
            settings,
            gaps: Mutex::new(Vec::new()),
        }
    }

    /// Records evidence that could not be collected.
    pub fn gap(
        &self,
        service: &str,
        api: &str,
        evidence: EvidenceKind,
        resource_arn: Option<&str>,
        failure: ApiFailure,
    ) {
        let gap = Gap {
            account_id: self.account_id.clone(),
            region: self.region.clone(),
            service: service.to_string(),
            api: api.to_string(),
            evidence,
            resource_arn: resource_arn.map(str::to_string),
            error_code: failure.code,
            message: failure.message,
        };
        if let Ok(mut gaps) = self.gaps.lock() {
            gaps.push(gap);
        }
    }

    /// Every item of a paginated listing. A failed page is recorded as a gap and ends the
    /// listing; the items read before it are kept.
    pub async fn drain<T, E, R>(
        &self,
        pages: PaginationStream<Result<T, SdkError<E, R>>>,
        service: &str,
        api: &str,
        evidence: EvidenceKind,
        resource_arn: Option<&str>,
    ) -> Vec<T>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let (items, failure) = drain(pages).await;
        if let Some(failure) = failure {
            self.gap(service, api, evidence, resource_arn, failure);
        }
        items
    }

    /// The gaps recorded so far.
    pub fn into_gaps(self) -> Vec<Gap> {
        self.gaps.into_inner().unwrap_or_default()
    }
}

/// Every item of a paginated listing up to the first failed page, and that failure.
pub async fn drain<T, E, R>(
    mut pages: PaginationStream<Result<T, SdkError<E, R>>>,
) -> (Vec<T>, Option<ApiFailure>)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let mut items = Vec::new();
    while let Some(item) = pages.next().await {
        match item {
            Ok(i) => items.push(i),
            Err(e) => return (items, Some(ApiFailure::from_sdk(&e))),
        }
    }
    (items, None)
}

/// Collects every account × region of `plan` and assembles the snapshot.
pub async fn collect(
    plan: &Plan,
    factory: &dyn ClientFactory,
    settings: &Settings,
    progress: &Progress,
) -> Snapshot {
    let pairs: Vec<(String, String)> = plan
        .accounts
        .iter()
        .filter(|a| !plan.unreachable.contains(&a.account_id))
        .flat_map(|a| {
            plan.regions
                .iter()
                .map(move |r| (a.account_id.clone(), r.clone()))
        })
        .collect();
    progress.start(pairs.len());
    let results: Vec<(String, RegionEvidence, Vec<Gap>)> =
        futures_util::stream::iter(pairs.into_iter().map(|(account, region)| async move {
            let clients = factory.region_clients(&account, &region);
            let (evidence, gaps) =
                collect_region(&account, &region, &clients, settings, &plan.regions).await;
            progress.region_done(&evidence, gaps.len());
            (account, evidence, gaps)
        }))
        .buffered(settings.region_concurrency.max(1))
        .collect()
        .await;
    progress.finish();

    let mut gaps = plan.gaps.clone();
    let mut accounts: Vec<AccountEvidence> = Vec::new();
    for (account_id, evidence, region_gaps) in results {
        gaps.extend(region_gaps);
        match accounts.iter_mut().find(|a| a.account_id == account_id) {
            Some(a) => a.regions.push(evidence),
            None => accounts.push(AccountEvidence {
                account_id,
                regions: vec![evidence],
            }),
        }
    }
    for account in &mut accounts {
        cloudtrail::fill_shadow_trails(&mut account.regions);
    }
    gaps.sort_by(|a, b| {
        (
            &a.account_id,
            &a.region,
            &a.service,
            &a.api,
            &a.resource_arn,
        )
            .cmp(&(
                &b.account_id,
                &b.region,
                &b.service,
                &b.api,
                &b.resource_arn,
            ))
    });
    Snapshot {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: "keyproof".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        source: SnapshotSource::Aws,
        collected_at: settings.until,
        completed_at: Utc::now(),
        scope: Scope {
            accounts: plan.accounts.clone(),
            regions: plan.regions.clone(),
            events_since: settings.lookup_events.then_some(settings.since),
        },
        accounts,
        gaps,
        selftest: None,
        kms_activity: None,
    }
}

/// Collects one account × region: the services at once, then the CloudHSM clusters behind the
/// custom key stores found, then the resources' key classification.
pub async fn collect_region(
    account_id: &str,
    region: &str,
    clients: &RegionClients,
    settings: &Settings,
    scope_regions: &[String],
) -> (RegionEvidence, Vec<Gap>) {
    let ctx = RegionCtx::new(account_id, region, settings);
    let (kms, trail_evidence, config) = tokio::join!(
        kms::collect(&ctx, &clients.kms),
        cloudtrail::collect(&ctx, &clients.cloudtrail, scope_regions),
        configservice::collect(&ctx, &clients.config),
    );
    let clusters = cloudhsm::collect(&ctx, &clients.cloudhsm, &kms.custom_key_stores).await;
    let mut resources = config.resources;
    configservice::classify_keys(&mut resources, &kms.keys, account_id);
    let evidence = RegionEvidence {
        region: region.to_string(),
        kms_keys: kms.keys,
        custom_key_stores: kms.custom_key_stores,
        cloudhsm_clusters: clusters,
        trails: trail_evidence.trails,
        kms_events: trail_evidence.kms_events,
        config_recorders: config.recorders,
        resources,
    };
    (evidence, ctx.into_gaps())
}

/// Summarises a finished collection.
pub fn summarize(snapshot: &Snapshot, ledger: &Ledger, started: Instant) -> Summary {
    let regions = snapshot.accounts.iter().flat_map(|a| a.regions.iter());
    let (mut keys, mut trails, mut resources) = (0, 0, 0);
    for r in regions {
        keys += r.kms_keys.len();
        trails += r
            .trails
            .iter()
            .filter(|t| t.home_region == r.region)
            .count();
        resources += r.resources.len();
    }
    Summary {
        accounts: snapshot.scope.accounts.len(),
        regions: snapshot.scope.regions.len(),
        keys,
        trails,
        resources,
        gaps: snapshot.gaps.len(),
        api_calls: ledger.requests(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// An SDK timestamp as chrono UTC; `None` when out of chrono's range.
pub fn to_utc(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// A chrono timestamp as an SDK timestamp.
pub fn to_sdk_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}

/// The default AWS configuration (environment, profile, `AWS_ENDPOINT_URL`), in `region` when
/// one is given, from the named `profile` when one is given. For the commands that make a few
/// calls of their own outside `collect`: log reading, manifest signing, publishing.
pub async fn default_config(region: Option<&str>, profile: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    loader.load().await
}

/// The region an ARN names (`arn:<partition>:<service>:<region>:...`), when it names one.
pub fn arn_region(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?
        .split(':')
        .nth(2)
        .filter(|r| !r.is_empty())
}

/// A CloudTrail client from the default configuration (or the named `profile`), in `region`
/// when one is given, held by the log-reading guard (docs/iam-policy-logs.json).
pub async fn log_reading_cloudtrail(
    region: Option<&str>,
    profile: Option<&str>,
) -> aws_sdk_cloudtrail::Client {
    let sdk = default_config(region, profile).await;
    aws_sdk_cloudtrail::Client::from_conf(
        aws_sdk_cloudtrail::config::Builder::from(&sdk)
            .interceptor(Guard::log_reading(
                "cloudtrail",
                std::sync::Arc::new(Ledger::default()),
            ))
            .build(),
    )
}
