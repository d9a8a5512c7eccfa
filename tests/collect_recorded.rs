//! Live collection against recorded AWS responses, for what moto does not emulate.
//!
//! moto has no LookupEvents, no custom key stores, no CloudHSM HSMs, no GetKeyLastUsage, drops
//! the rotation period and next rotation date, keeps no Config items for RDS, EBS, Secrets
//! Manager or SQS, and cannot be made to throttle or deny. These tests serve the real AWS SDK
//! clients wire-format responses from `tests/recorded/` (shapes from the AWS API reference,
//! values fictitious) through `aws-smithy-mocks`, so the SDK's own deserializers, retry and error
//! classification run exactly as against AWS.

mod util;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use keyproof::collect::guard::Guard;
use keyproof::collect::{
    self, ClientFactory, Ledger, Plan, Progress, RegionClients, Settings, policy_actions,
};
use keyproof::snapshot::{AccountRef, RegionEvidence, Snapshot};
use std::sync::Arc;
use std::time::Duration;

const ACCOUNT: &str = "111122223333";
const CMK: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
const HSM: &str = "0987dcba-09fe-87dc-65ba-ab0987654321";
const AWS_KEY: &str = "a5f1e6e4-8d0d-4c0e-9a7b-1b2c3d4e5f60";
const EXTERNAL: &str = "5d3c2b1a-0f9e-4d8c-b7a6-958473625140";

fn recorded(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/recorded")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn status(code: u16) -> StatusCode {
    StatusCode::try_from(code).expect("valid status")
}

/// A recorded 200 response.
fn ok(name: &str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    let body = recorded(name);
    move || HttpResponse::new(status(200), SdkBody::from(body.clone()))
}

/// An AWS JSON-protocol error response.
fn aws_error(code: u16, error: &str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    let body = format!(r#"{{"__type":"{error}","message":"{error} (recorded)"}}"#);
    move || HttpResponse::new(status(code), SdkBody::from(body.clone()))
}

fn throttled() -> String {
    r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_string()
}

/// Builds one service client answering from `rules`, with the read-only guard and a fast retry.
macro_rules! client {
    ($krate:ident, $prefix:literal, $rules:expr, $ledger:expr) => {{
        let mut mocks = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in $rules.iter() {
            mocks = mocks.with_rule(rule);
        }
        $krate::Client::from_conf(
            $krate::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("eu-west-1"))
                .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
                .http_client(create_mock_http_client())
                .retry_config(
                    RetryConfig::standard()
                        .with_max_attempts(4)
                        .with_initial_backoff(Duration::from_millis(1)),
                )
                .interceptor(mocks)
                .interceptor(Guard::new($prefix, $ledger.clone()))
                .build(),
        )
    }};
}

/// The rules of each service for one account × region.
#[derive(Default, Clone)]
struct Rules {
    kms: Vec<Rule>,
    cloudtrail: Vec<Rule>,
    config: Vec<Rule>,
    cloudhsm: Vec<Rule>,
}

impl Rules {
    fn clients(&self, ledger: &Arc<Ledger>) -> RegionClients {
        RegionClients {
            kms: client!(aws_sdk_kms, "kms", self.kms, ledger),
            cloudtrail: client!(aws_sdk_cloudtrail, "cloudtrail", self.cloudtrail, ledger),
            config: client!(aws_sdk_config, "config", self.config, ledger),
            cloudhsm: client!(aws_sdk_cloudhsmv2, "cloudhsm", self.cloudhsm, ledger),
        }
    }
}

fn kms_rules() -> Vec<Rule> {
    use aws_sdk_kms::Client;
    let key_is = |id: &'static str| move |k: Option<&str>| k == Some(id);
    vec![
        mock!(Client::list_keys).then_http_response(ok("kms-ListKeys.json")),
        mock!(Client::list_aliases).then_http_response(ok("kms-ListAliases.json")),
        mock!(Client::describe_custom_key_stores)
            .then_http_response(ok("kms-DescribeCustomKeyStores.json")),
        mock!(Client::describe_key)
            .match_requests(move |r| key_is(CMK)(r.key_id()))
            .then_http_response(ok("kms-DescribeKey-cmk.json")),
        mock!(Client::describe_key)
            .match_requests(move |r| key_is(HSM)(r.key_id()))
            .then_http_response(ok("kms-DescribeKey-hsm.json")),
        mock!(Client::describe_key)
            .match_requests(move |r| key_is(AWS_KEY)(r.key_id()))
            .then_http_response(ok("kms-DescribeKey-aws.json")),
        mock!(Client::describe_key)
            .match_requests(move |r| key_is(EXTERNAL)(r.key_id()))
            .then_http_response(ok("kms-DescribeKey-external.json")),
        mock!(Client::get_key_policy)
            .match_requests(|r| r.policy_name() == Some("default"))
            .then_http_response(ok("kms-GetKeyPolicy.json")),
        // Rotation calls are answered only for the keys AWS can rotate: a call for the HSM or
        // imported key would find no rule and show up as a gap.
        mock!(Client::get_key_rotation_status)
            .match_requests(move |r| key_is(CMK)(r.key_id()))
            .then_http_response(ok("kms-GetKeyRotationStatus-cmk.json")),
        mock!(Client::get_key_rotation_status)
            .match_requests(move |r| key_is(AWS_KEY)(r.key_id()))
            .then_http_response(ok("kms-GetKeyRotationStatus-aws.json")),
        mock!(Client::list_key_rotations)
            .match_requests(move |r| key_is(CMK)(r.key_id()))
            .then_http_response(ok("kms-ListKeyRotations-cmk.json")),
        mock!(Client::list_key_rotations)
            .match_requests(move |r| key_is(AWS_KEY)(r.key_id()))
            .then_http_response(ok("kms-ListKeyRotations-empty.json")),
        mock!(Client::list_resource_tags)
            .match_requests(move |r| key_is(CMK)(r.key_id()) || key_is(HSM)(r.key_id()))
            .then_http_response(ok("kms-ListResourceTags.json")),
        mock!(Client::list_resource_tags).then_http_response(ok("kms-ListResourceTags-empty.json")),
        mock!(Client::list_grants)
            .match_requests(move |r| key_is(CMK)(r.key_id()))
            .then_http_response(ok("kms-ListGrants.json")),
        mock!(Client::list_grants).then_http_response(ok("kms-ListGrants-empty.json")),
        mock!(Client::get_key_last_usage)
            .match_requests(move |r| key_is(CMK)(r.key_id()))
            .then_http_response(ok("kms-GetKeyLastUsage-cmk.json")),
        mock!(Client::get_key_last_usage).then_http_response(ok("kms-GetKeyLastUsage-unused.json")),
    ]
}

fn cloudtrail_rules() -> Vec<Rule> {
    use aws_sdk_cloudtrail::Client;
    vec![
        mock!(Client::describe_trails)
            .match_requests(|r| r.include_shadow_trails() == Some(true))
            .then_http_response(ok("cloudtrail-DescribeTrails.json")),
        mock!(Client::get_trail_status).then_http_response(ok("cloudtrail-GetTrailStatus.json")),
        mock!(Client::get_event_selectors)
            .then_http_response(ok("cloudtrail-GetEventSelectors.json")),
        mock!(Client::lookup_events)
            .match_requests(|r| {
                r.next_token().is_none()
                    && r.lookup_attributes()[0].attribute_value() == "kms.amazonaws.com"
            })
            .then_http_response(ok("cloudtrail-LookupEvents-page1.json")),
        mock!(Client::lookup_events)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_http_response(ok("cloudtrail-LookupEvents-page2.json")),
    ]
}

const TYPES: [(&str, &str); 7] = [
    ("AWS::RDS::DBInstance", "RDS-DBInstance"),
    ("AWS::RDS::DBCluster", "RDS-DBCluster"),
    ("AWS::EC2::Volume", "EC2-Volume"),
    ("AWS::S3::Bucket", "S3-Bucket"),
    ("AWS::SecretsManager::Secret", "SecretsManager-Secret"),
    ("AWS::SNS::Topic", "SNS-Topic"),
    ("AWS::SQS::Queue", "SQS-Queue"),
];

fn config_rules() -> Vec<Rule> {
    use aws_sdk_config::Client;
    let mut rules = vec![
        mock!(Client::describe_configuration_recorders)
            .then_http_response(ok("config-DescribeConfigurationRecorders.json")),
        mock!(Client::describe_configuration_recorder_status)
            .then_http_response(ok("config-DescribeConfigurationRecorderStatus.json")),
    ];
    for (t, slug) in TYPES {
        rules.push(
            mock!(Client::list_discovered_resources)
                .match_requests(move |r| r.resource_type().map(|x| x.as_str()) == Some(t))
                .then_http_response(ok(&format!("config-ListDiscoveredResources-{slug}.json"))),
        );
        rules.push(
            mock!(Client::batch_get_resource_config)
                .match_requests(move |r| {
                    r.resource_keys()
                        .iter()
                        .all(|k| k.resource_type().as_str() == t)
                })
                .then_http_response(ok(&format!("config-BatchGetResourceConfig-{slug}.json"))),
        );
    }
    rules
}

fn cloudhsm_rules() -> Vec<Rule> {
    use aws_sdk_cloudhsmv2::Client;
    vec![
        mock!(Client::describe_clusters)
            .match_requests(|r| {
                r.filters()
                    .and_then(|f| f.get("clusterIds"))
                    .is_some_and(|ids| ids == &vec!["cluster-1a23b4cdefg".to_string()])
            })
            .then_http_response(ok("cloudhsm-DescribeClusters.json")),
    ]
}

fn full_estate() -> Rules {
    Rules {
        kms: kms_rules(),
        cloudtrail: cloudtrail_rules(),
        config: config_rules(),
        cloudhsm: cloudhsm_rules(),
    }
}

fn settings() -> Settings {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T06:00:00Z")
        .expect("time")
        .to_utc();
    let mut s = Settings::new(now, now - chrono::Duration::days(90));
    s.lookup_interval = Duration::from_millis(1);
    s
}

async fn collect_one(
    rules: &Rules,
    ledger: &Arc<Ledger>,
) -> (RegionEvidence, Vec<keyproof::snapshot::Gap>) {
    collect_in(ACCOUNT, &rules.clients(ledger), &settings()).await
}

/// Collects `account`'s eu-west-1 (the only region in scope) with `settings`.
async fn collect_in(
    account: &str,
    clients: &RegionClients,
    settings: &Settings,
) -> (RegionEvidence, Vec<keyproof::snapshot::Gap>) {
    collect::collect_region(
        account,
        "eu-west-1",
        clients,
        settings,
        &["eu-west-1".to_string()],
    )
    .await
}

fn key<'a>(r: &'a RegionEvidence, id: &str) -> &'a keyproof::snapshot::KmsKey {
    r.kms_keys
        .iter()
        .find(|k| k.key_id == id)
        .unwrap_or_else(|| panic!("key {id} not collected"))
}

fn resource<'a>(r: &'a RegionEvidence, id: &str) -> &'a keyproof::snapshot::EncryptedResource {
    r.resources
        .iter()
        .find(|x| x.resource_id == id)
        .unwrap_or_else(|| panic!("resource {id} not collected"))
}

fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("time")
        .to_utc()
}

#[tokio::test]
async fn recorded_estate_fills_what_moto_cannot() {
    let ledger = Arc::new(Ledger::default());
    let (r, gaps) = collect_one(&full_estate(), &ledger).await;
    assert!(gaps.is_empty(), "unexpected gaps: {gaps:#?}");

    // Rotation period, next date and history (oldest first).
    let cmk = key(&r, CMK);
    let rotation = cmk.rotation.as_ref().expect("rotation collected");
    assert!(rotation.enabled);
    assert_eq!(rotation.period_days, Some(90));
    assert_eq!(
        rotation.next_rotation_date,
        Some(utc("2026-01-04T00:00:00Z"))
    );
    let history: Vec<_> = rotation.history.iter().map(|h| h.rotated_at).collect();
    assert_eq!(
        history,
        vec![utc("2025-07-07T16:00:00Z"), utc("2025-10-05T16:00:00Z")]
    );
    assert_eq!(cmk.aliases, vec!["alias/cardholder-db"]);
    let mr = cmk.multi_region.as_ref().expect("multi-Region");
    assert_eq!(mr.key_type, "PRIMARY");
    assert_eq!(
        mr.replica_arns,
        vec![format!("arn:aws:kms:eu-central-1:{ACCOUNT}:key/{CMK}")]
    );
    assert_eq!(
        cmk.grants[0].grantee_principal,
        "rds.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        cmk.grants[0]
            .constraints
            .as_ref()
            .and_then(|c| c.encryption_context_subset.as_ref())
            .and_then(|m| m.get("aws:rds:db-id"))
            .map(String::as_str),
        Some("db-ABCDEFGHIJKLMNOP")
    );
    let usage = cmk.last_usage.as_ref().expect("last usage");
    assert_eq!(usage.operation.as_deref(), Some("Decrypt"));
    assert_eq!(usage.last_used_at, Some(utc("2025-11-29T00:00:00Z")));
    assert_eq!(
        key(&r, HSM)
            .last_usage
            .as_ref()
            .and_then(|u| u.last_used_at),
        None
    );

    // Keys AWS cannot rotate: no rotation evidence, and no gap (asserted above).
    let hsm = key(&r, HSM);
    assert_eq!(hsm.origin, "AWS_CLOUDHSM");
    assert_eq!(
        hsm.custom_key_store_id.as_deref(),
        Some("cks-1234567890abcdef0")
    );
    assert_eq!(hsm.rotation, None);
    assert_eq!(key(&r, EXTERNAL).origin, "EXTERNAL");
    assert_eq!(key(&r, EXTERNAL).rotation, None);
    let aws = key(&r, AWS_KEY);
    assert_eq!(aws.key_manager, "AWS");
    assert_eq!(aws.aliases, vec!["alias/aws/rds"]);
    assert_eq!(aws.rotation.as_ref().and_then(|x| x.period_days), Some(365));

    // Custom key store and its CloudHSM cluster.
    let store = &r.custom_key_stores[0];
    assert_eq!(store.connection_state, "CONNECTED");
    assert_eq!(store.store_type, "AWS_CLOUDHSM");
    assert_eq!(
        store.cloudhsm_cluster_id.as_deref(),
        Some("cluster-1a23b4cdefg")
    );
    let cluster = &r.cloudhsm_clusters[0];
    assert_eq!(cluster.state, "ACTIVE");
    let zones: Vec<&str> = cluster
        .hsms
        .iter()
        .map(|h| h.availability_zone.as_str())
        .collect();
    assert_eq!(zones, vec!["eu-west-1a", "eu-west-1b"]);

    // KMS event history over two LookupEvents pages.
    let events = r.kms_events.as_ref().expect("event summary");
    assert_eq!(events.total_events, 5);
    assert_eq!(events.by_event_name.get("Decrypt"), Some(&3));
    assert_eq!(events.by_event_name.get("PutKeyPolicy"), Some(&1));
    assert_eq!(events.errors_by_code.get("AccessDenied"), Some(&1));
    let notable: Vec<(&str, Option<&str>)> = events
        .notable
        .iter()
        .map(|e| (e.event_name.as_str(), e.error_code.as_deref()))
        .collect();
    assert_eq!(
        notable,
        vec![
            ("ScheduleKeyDeletion", None),
            ("Decrypt", Some("AccessDenied")),
            ("PutKeyPolicy", None)
        ],
        "admin and failed calls, newest first; successful Decrypts are only counted"
    );
    let denied = &events.notable[1];
    assert_eq!(denied.source_ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(
        denied.principal_arn.as_deref(),
        Some("arn:aws:sts::111122223333:assumed-role/intruder/session")
    );
    assert_eq!(denied.key_arn.as_deref(), Some(cmk.arn.as_str()));
    assert_eq!(events.notable_omitted, 0);

    // The trail.
    let trail = &r.trails[0];
    assert!(trail.is_organization_trail && trail.log_file_validation);
    assert_eq!(trail.is_logging, Some(true));

    // Config items of every type, with the key classified against the region's keys.
    let expect = |id: &str, encrypted: Option<bool>, kind: &str| {
        let x = resource(&r, id);
        assert_eq!(
            (x.encrypted, x.encryption_type.as_str()),
            (encrypted, kind),
            "{id}: {x:?}"
        );
    };
    expect("db-ABCDEFGHIJKLMNOP", Some(true), "CUSTOMER_KMS");
    expect("cluster-QRSTUVWXYZ", Some(false), "NONE");
    expect("vol-0123456789abcdef0", Some(true), "AWS_MANAGED_KMS");
    expect("cardholder-exports", Some(true), "CUSTOMER_KMS");
    expect("static-site", Some(true), "AWS_OWNED");
    let secret = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-password-AbCdEf";
    expect(secret, Some(true), "AWS_MANAGED_KMS");
    expect(
        "arn:aws:sns:eu-west-1:111122223333:card-events",
        Some(true),
        "CUSTOMER_KMS",
    );
    expect(
        "https://sqs.eu-west-1.amazonaws.com/111122223333/settlement",
        Some(true),
        "AWS_OWNED",
    );
    expect(
        "https://sqs.eu-west-1.amazonaws.com/111122223333/cross-account",
        Some(true),
        "CUSTOMER_KMS",
    );
    assert_eq!(
        resource(&r, "db-ABCDEFGHIJKLMNOP")
            .tags
            .get("pci-scope")
            .map(String::as_str),
        Some("cde")
    );
    assert_eq!(
        resource(&r, "cardholder-exports")
            .tags
            .get("pci-scope")
            .map(String::as_str),
        Some("cde"),
        "S3 tags come from the supplementary BucketTaggingConfiguration"
    );
    assert_eq!(
        resource(&r, secret)
            .tags
            .get("pci-scope")
            .map(String::as_str),
        Some("cde")
    );
    assert_eq!(
        resource(&r, secret).kms_key_id.as_deref(),
        Some("alias/aws/secretsmanager")
    );

    // Every action called is in the shipped policy, and the policy lists nothing this
    // collection does not call except the account-level actions of setting up a session.
    let called = ledger.operations();
    let allowed = policy_actions();
    assert!(called.iter().all(|a| allowed.contains(a)), "{called:?}");
    let session_level = [
        "sts:GetCallerIdentity",
        "sts:AssumeRole",
        "account:ListRegions",
        "organizations:ListAccounts",
    ];
    let unused: Vec<&String> = allowed
        .iter()
        .filter(|a| !called.contains(*a) && !session_level.contains(&a.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "the policy grants actions keyproof never calls: {unused:?}"
    );
}

#[tokio::test]
async fn throttling_then_success_gives_a_complete_snapshot() {
    use aws_sdk_kms::Client;
    let baseline_ledger = Arc::new(Ledger::default());
    let (baseline, _) = collect_one(&full_estate(), &baseline_ledger).await;

    let mut rules = full_estate();
    // Two throttled ListKeys and one throttled DescribeKey before success; these rules come
    // first, and once used up the recorded answers take over.
    rules.kms.insert(
        0,
        mock!(Client::list_keys)
            .sequence()
            .http_status(400, Some(throttled()))
            .times(2)
            .http_response(ok("kms-ListKeys.json"))
            .build(),
    );
    rules.kms.insert(
        0,
        mock!(Client::describe_key)
            .match_requests(|r| r.key_id() == Some(CMK))
            .sequence()
            .http_status(400, Some(throttled()))
            .http_response(ok("kms-DescribeKey-cmk.json"))
            .build(),
    );
    let ledger = Arc::new(Ledger::default());
    let (r, gaps) = collect_one(&rules, &ledger).await;
    assert!(gaps.is_empty(), "retries hide throttling: {gaps:#?}");
    assert_eq!(
        r, baseline,
        "the snapshot is the same as without throttling"
    );
    assert_eq!(
        ledger.requests(),
        baseline_ledger.requests() + 3,
        "three retries were sent"
    );
}

#[tokio::test]
async fn throttling_that_never_ends_is_a_gap_for_that_evidence_only() {
    use aws_sdk_kms::Client;
    let mut rules = full_estate();
    rules.kms.insert(
        0,
        mock!(Client::list_grants)
            .match_requests(|r| r.key_id() == Some(CMK))
            .then_http_response(aws_error(400, "ThrottlingException")),
    );
    let ledger = Arc::new(Ledger::default());
    let (r, gaps) = collect_one(&rules, &ledger).await;
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    let gap = &gaps[0];
    assert_eq!(
        (
            gap.api.as_str(),
            gap.error_code.as_str(),
            gap.evidence.as_str()
        ),
        ("ListGrants", "ThrottlingException", "kms.grants")
    );
    assert_eq!(gap.resource_arn.as_deref(), Some(key(&r, CMK).arn.as_str()));
    assert_eq!(r.kms_keys.len(), 4, "every key is still collected");
}

#[tokio::test]
async fn a_history_the_lookup_events_source_read_is_not_read_again() {
    let mut rules = full_estate();
    // cloudtrail_rules(): the trail's three answers, then the two LookupEvents pages, replaced
    // by a refusal: a call would leave a gap instead of a summary.
    rules.cloudtrail.truncate(3);
    rules.cloudtrail.push(
        mock!(aws_sdk_cloudtrail::Client::lookup_events)
            .then_http_response(aws_error(400, "AccessDeniedException")),
    );
    let ledger = Arc::new(Ledger::default());
    let clients = rules.clients(&ledger);
    let mut settings = settings();
    let known = keyproof::snapshot::KmsEventSummary {
        window_start: settings.since,
        window_end: settings.until,
        total_events: 42,
        by_event_name: [("Decrypt".to_string(), 42)].into(),
        errors_by_code: Default::default(),
        notable: Vec::new(),
        notable_omitted: 0,
    };
    settings.known_events.insert(
        (ACCOUNT.to_string(), "eu-west-1".to_string()),
        known.clone(),
    );
    let (r, gaps) = collect_in(ACCOUNT, &clients, &settings).await;
    assert_eq!(r.kms_events.as_ref(), Some(&known));
    assert!(!gaps.iter().any(|g| g.api == "LookupEvents"), "{gaps:#?}");
    // Another account's history is still read by the collector (here: refused, so a gap).
    let (r, gaps) = collect_in("444455556666", &clients, &settings).await;
    assert!(r.kms_events.is_none());
    assert!(gaps.iter().any(|g| g.api == "LookupEvents"), "{gaps:#?}");
}

#[tokio::test]
async fn an_event_limit_keeps_the_newest_events_and_says_the_history_is_partial() {
    let ledger = Arc::new(Ledger::default());
    let clients = full_estate().clients(&ledger);
    let mut settings = settings();
    settings.max_events = Some(3);
    let (r, gaps) = collect_in(ACCOUNT, &clients, &settings).await;
    let events = r.kms_events.as_ref().expect("partial summary kept");
    assert_eq!(events.total_events, 3, "one page of three events");
    let limit: Vec<_> = gaps
        .iter()
        .filter(|g| g.error_code == "EventLimitReached")
        .collect();
    assert_eq!(limit.len(), 1, "{gaps:#?}");
    assert_eq!(limit[0].evidence.as_str(), "cloudtrail.events");
}

#[tokio::test]
async fn a_recorder_that_skips_types_leaves_gaps_for_them() {
    use aws_sdk_config::Client;
    let mut rules = full_estate();
    let only_s3 = r#"{"ConfigurationRecorders":[{"name":"default","recordingGroup":{"allSupported":false,"includeGlobalResourceTypes":false,"resourceTypes":["AWS::S3::Bucket"],"recordingStrategy":{"useOnly":"INCLUSION_BY_RESOURCE_TYPES"}}}]}"#;
    rules.config.insert(
        0,
        mock!(Client::describe_configuration_recorders)
            .then_http_response(move || HttpResponse::new(status(200), SdkBody::from(only_s3))),
    );
    let ledger = Arc::new(Ledger::default());
    let (r, gaps) = collect_one(&rules, &ledger).await;
    let types: Vec<&str> = r
        .resources
        .iter()
        .map(|x| x.resource_type.as_str())
        .collect();
    assert_eq!(types, vec!["AWS::S3::Bucket", "AWS::S3::Bucket"]);
    let skipped = gaps
        .iter()
        .filter(|g| g.error_code == "ResourceTypeNotRecorded")
        .count();
    assert_eq!(skipped, 6, "{gaps:#?}");
}

/// One account, two regions: eu-west-1 answers from the recordings; in eu-central-1 the audit
/// role is denied every KMS call.
struct TwoRegions {
    ledger: Arc<Ledger>,
}

impl ClientFactory for TwoRegions {
    fn region_clients(&self, _account: &str, region: &str) -> RegionClients {
        let mut rules = full_estate();
        if region == "eu-central-1" {
            use aws_sdk_kms::Client;
            rules.kms = vec![
                mock!(Client::list_keys)
                    .then_http_response(aws_error(400, "AccessDeniedException")),
                mock!(Client::list_aliases)
                    .then_http_response(aws_error(400, "AccessDeniedException")),
                mock!(Client::describe_custom_key_stores)
                    .then_http_response(aws_error(400, "AccessDeniedException")),
            ];
            rules.cloudhsm = Vec::new();
        }
        rules.clients(&self.ledger)
    }
}

#[tokio::test]
async fn access_denied_in_one_region_makes_its_controls_error_and_leaves_the_rest() {
    let ledger = Arc::new(Ledger::default());
    let plan = Plan {
        accounts: vec![AccountRef {
            account_id: ACCOUNT.into(),
            name: None,
        }],
        regions: vec!["eu-central-1".into(), "eu-west-1".into()],
        gaps: Vec::new(),
        unreachable: Vec::new(),
    };
    let factory = TwoRegions {
        ledger: ledger.clone(),
    };
    let snapshot: Snapshot =
        collect::collect(&plan, &factory, &settings(), &Progress::hidden()).await;
    let denied: Vec<(&str, &str, &str)> = snapshot
        .gaps
        .iter()
        .map(|g| (g.region.as_str(), g.api.as_str(), g.error_code.as_str()))
        .collect();
    assert_eq!(
        denied,
        vec![
            (
                "eu-central-1",
                "DescribeCustomKeyStores",
                "AccessDeniedException"
            ),
            ("eu-central-1", "ListAliases", "AccessDeniedException"),
            ("eu-central-1", "ListKeys", "AccessDeniedException"),
        ]
    );
    let west = &snapshot.accounts[0].regions[1];
    assert_eq!(west.region, "eu-west-1");
    assert_eq!(west.kms_keys.len(), 4, "the other region is intact");

    // Evaluation: every KMS key control is ERROR in eu-central-1, none is in eu-west-1.
    let controls = keyproof::rules::ControlSet::embedded().expect("controls");
    let config = keyproof::config::Config::default();
    let findings = keyproof::rules::evaluate(&snapshot, &controls, &config);
    let key_controls: Vec<&keyproof::rules::Finding> = findings
        .iter()
        .filter(|f| {
            // The self-test did not run in this collection: its controls are ERROR
            // everywhere, which is right and not what this test is about.
            controls.get(&f.control_id).is_some_and(|c| {
                let needs = &c.def.needs;
                needs.contains(&keyproof::snapshot::EvidenceKind::KmsKeys)
                    && !needs.contains(&keyproof::snapshot::EvidenceKind::SelfTest)
            })
        })
        .collect();
    let central: Vec<_> = key_controls
        .iter()
        .filter(|f| f.region == "eu-central-1")
        .collect();
    assert!(!central.is_empty());
    assert!(
        central
            .iter()
            .all(|f| f.status == keyproof::rules::Status::Error),
        "{central:#?}"
    );
    // In eu-west-1 the only key ERRORs are the two resources whose key is not in the snapshot
    // (an AWS managed key never listed, another account's key), and they say so.
    let west_errors: Vec<_> = key_controls
        .iter()
        .filter(|f| f.region == "eu-west-1" && f.status == keyproof::rules::Status::Error)
        .collect();
    let ids: Vec<&str> = west_errors.iter().map(|f| f.resource_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-password-AbCdEf",
            "https://sqs.eu-west-1.amazonaws.com/111122223333/cross-account"
        ],
        "{west_errors:#?}"
    );
    assert!(
        west_errors.iter().all(|f| f
            .detail
            .starts_with("evidence not in the snapshot: resource.key.state")),
        "{west_errors:#?}"
    );
}

#[test]
fn an_interrupted_collection_leaves_no_snapshot() {
    // An endpoint that accepts connections and never answers keeps the collection busy.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let _hold = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            open.push(stream);
        }
    });
    let dir = util::TestDir::new();
    let out = dir.path("snapshot.json");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyproof"));
    for var in util::AMBIENT_AWS {
        cmd.env_remove(var);
    }
    let child = cmd
        .args(["collect", "--regions", "eu-west-1", "--quiet", "--out"])
        .arg(&out)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_CONFIG_FILE", "/nonexistent/keyproof-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/keyproof-test-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start keyproof");
    std::thread::sleep(Duration::from_millis(1500));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: no snapshot was written"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path(""))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "files left behind: {left:?}");
}
