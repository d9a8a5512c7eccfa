//! CloudTrail Lake and LookupEvents as event sources, against recorded responses.
//!
//! moto implements neither (StartQuery, DescribeQuery, GetQueryResults and LookupEvents raise
//! NotImplementedError in moto 5.2.5), so the real AWS SDK client is served the wire-format
//! responses in `tests/recorded/` through `aws-smithy-mocks`: the SDK's own deserializers and
//! error classification run as they do against AWS. The Lake rows are the groups the query asks
//! for; their content is chosen so that each detection appears once. The LookupEvents pages are
//! the ones the collection tests use.

mod util;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_cloudtrail::Client;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use chrono::{DateTime, Utc};
use keyproof::collect::Ledger;
use keyproof::collect::guard::Guard;
use keyproof::logs::lake::{LakeSource, Wait};
use keyproof::logs::lookup::LookupSource;
use keyproof::logs::{Activity, DetectionKind, LogParser, LogsConfig, Rules, SourceError};
use std::sync::Arc;
use std::time::Duration;

const STORE: &str =
    "arn:aws:cloudtrail:eu-west-1:111122223333:eventdatastore/EXAMPLE-f852-4e8f-8bd1";
const STORE_ID: &str = "EXAMPLE-f852-4e8f-8bd1";
const QUERY: &str = "8d2f0b6e-3c4a-4f1e-9b7d-5a6c7e8f9a01";

fn recorded(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/recorded")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ok(name: &str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    let body = recorded(name);
    move || {
        HttpResponse::new(
            StatusCode::try_from(200).expect("status"),
            SdkBody::from(body.clone()),
        )
    }
}

fn client(rules: &[Rule]) -> Client {
    let mut mocks = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        mocks = mocks.with_rule(rule);
    }
    Client::from_conf(
        aws_sdk_cloudtrail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .http_client(create_mock_http_client())
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .interceptor(mocks)
            .interceptor(Guard::log_reading(
                "cloudtrail",
                Arc::new(Ledger::default()),
            ))
            .build(),
    )
}

fn fast() -> Wait {
    Wait {
        poll: Duration::from_millis(1),
        max_poll: Duration::from_millis(2),
        timeout: Duration::from_secs(10),
    }
}

fn rules() -> Rules {
    let since: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().expect("time");
    let until: DateTime<Utc> = "2026-11-29T00:00:00Z".parse().expect("time");
    let config = LogsConfig {
        allowed_source_cidrs: vec!["10.0.0.0/8".into()],
        ..LogsConfig::default()
    };
    Rules::new(since, until, &[], &config).expect("rules")
}

/// StartQuery (checking the SQL), DescribeQuery RUNNING then `describe`, two result pages.
fn lake_rules(describe: &'static str) -> Vec<Rule> {
    vec![
        mock!(Client::start_query)
            .match_requests(|r| {
                let sql = r.query_statement().unwrap_or_default();
                sql.contains(&format!(
                    "FROM {STORE_ID} WHERE eventSource = 'kms.amazonaws.com'"
                )) && sql.contains(
                    "eventTime >= '2026-11-28 00:00:00' AND eventTime < '2026-11-29 00:00:00'",
                )
            })
            .then_http_response(ok("cloudtrail-lake-start-query.json")),
        mock!(Client::describe_query)
            .match_requests(|r| r.query_id() == Some(QUERY))
            .sequence()
            .http_response(ok("cloudtrail-lake-describe-running.json"))
            .http_response(ok(describe))
            .repeatedly()
            .build(),
        mock!(Client::get_query_results)
            .match_requests(|r| r.query_id() == Some(QUERY) && r.next_token().is_none())
            .then_http_response(ok("cloudtrail-lake-results-1.json")),
        mock!(Client::get_query_results)
            .match_requests(|r| {
                r.query_id() == Some(QUERY) && r.next_token() == Some("lake-page-2")
            })
            .then_http_response(ok("cloudtrail-lake-results-2.json")),
    ]
}

#[test]
fn lake_rows_give_the_same_analysis_as_events() {
    let rules = rules();
    let lake = LakeSource::with_client(
        STORE,
        client(&lake_rules("cloudtrail-lake-describe-finished.json")),
        fast(),
    )
    .expect("store id");
    let scan = lake.read(&rules).expect("query runs");

    let stats = scan.stats.lake.as_ref().expect("lake stats");
    assert_eq!(stats.event_data_store, STORE_ID);
    assert_eq!(stats.query_id, QUERY);
    assert_eq!(stats.groups, 8, "both pages read");
    assert_eq!(stats.events_scanned, Some(4_194_304));
    assert_eq!(
        stats
            .events_by_region
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        vec![
            ("111122223333/eu-central-1", 15),
            ("111122223333/eu-west-1", 107)
        ]
    );
    assert_eq!(scan.stats.kms_records, 122);
    assert_eq!(scan.stats.files, 0);

    let report = scan.activity.finish(&rules);
    assert_eq!((report.events, report.failed), (122, 4));
    // Every group but the AWS service's carries every 10.2.2 field.
    assert_eq!((report.fields.records, report.fields.complete), (122, 112));
    assert_eq!(report.fields.identity, 112);

    let mut found: Vec<(DetectionKind, String, String, u64, String)> = report
        .detections
        .iter()
        .map(|d| {
            (
                d.kind,
                d.principal.clone().unwrap_or_default(),
                d.detail.clone(),
                d.count,
                d.events
                    .first()
                    .map(|e| e.event_id.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    found.sort();
    let a = "arn:aws:iam::111122223333:";
    let mut expected = vec![
        (
            DetectionKind::RootUse,
            format!("{a}root"),
            String::new(),
            2,
            "lake-e-3".to_string(),
        ),
        (
            DetectionKind::SourceIpOutsideRanges,
            format!("{a}root"),
            "203.0.113.7".to_string(),
            2,
            "lake-e-3".to_string(),
        ),
        (
            DetectionKind::CrossAccountUse,
            "arn:aws:iam::444455556666:role/partner".to_string(),
            "account 444455556666 on a key of account 111122223333".to_string(),
            5,
            "lake-e-4".to_string(),
        ),
        (
            DetectionKind::AccessDenied,
            format!("{a}role/batch"),
            "Decrypt".to_string(),
            3,
            "lake-e-5".to_string(),
        ),
        (
            DetectionKind::UnusableKeyUse,
            format!("{a}role/batch"),
            "KMSInvalidStateException".to_string(),
            1,
            "lake-e-6".to_string(),
        ),
        (
            DetectionKind::SensitiveAdminChange,
            format!("{a}user/admin"),
            "ScheduleKeyDeletion".to_string(),
            1,
            "lake-e-7".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(found, expected);
    // The evidence keeps the group's first event time.
    let root = report
        .detections
        .iter()
        .find(|d| d.kind == DetectionKind::RootUse)
        .expect("root use");
    assert_eq!(
        root.events[0].event_time.to_rfc3339(),
        "2026-11-28T12:05:07+00:00"
    );
    assert_eq!(root.events[0].source_ip.as_deref(), Some("203.0.113.7"));
}

#[test]
fn a_failed_query_is_an_error_not_an_empty_window() {
    let lake = LakeSource::with_client(
        STORE,
        client(&lake_rules("cloudtrail-lake-describe-failed.json")),
        fast(),
    )
    .expect("store id");
    let err = lake.read(&rules()).expect_err("failed query");
    let text = err.to_string();
    assert!(matches!(err, SourceError::Lake { .. }), "{text}");
    assert!(text.contains(QUERY) && text.contains("FAILED"), "{text}");
    assert!(text.contains("maximum allowed runtime"), "{text}");
}

#[test]
fn a_query_that_does_not_finish_in_time_is_an_error() {
    let running = vec![
        mock!(Client::start_query).then_http_response(ok("cloudtrail-lake-start-query.json")),
        mock!(Client::describe_query)
            .sequence()
            .http_response(ok("cloudtrail-lake-describe-running.json"))
            .repeatedly()
            .build(),
    ];
    let wait = Wait {
        timeout: Duration::from_millis(20),
        ..fast()
    };
    let lake = LakeSource::with_client(STORE, client(&running), wait).expect("store id");
    let err = lake.read(&rules()).expect_err("times out").to_string();
    assert!(err.contains("did not finish"), "{err}");
}

#[test]
fn a_malformed_row_fails_the_read() {
    let mut rows: serde_json::Value =
        serde_json::from_str(&recorded("cloudtrail-lake-results-2.json")).expect("json");
    rows["QueryResultRows"][1][12] = serde_json::json!({"calls": "lots"});
    let body = rows.to_string();
    let mut rules_ = lake_rules("cloudtrail-lake-describe-finished.json");
    rules_.pop();
    rules_.push(
        mock!(Client::get_query_results)
            .match_requests(|r| r.next_token() == Some("lake-page-2"))
            .then_http_response(move || {
                HttpResponse::new(
                    StatusCode::try_from(200).expect("status"),
                    SdkBody::from(body.clone()),
                )
            }),
    );
    let lake = LakeSource::with_client(STORE, client(&rules_), fast()).expect("store id");
    let err = lake.read(&rules()).expect_err("bad row").to_string();
    assert!(
        err.contains("result row 6") && err.contains("calls"),
        "{err}"
    );
}

/// A loopback CloudTrail endpoint answering each call with the recorded file `answer(operation,
/// body)` names (an UnsupportedOperationException when it names none), and the log of the
/// operations called.
fn cloudtrail_stub(
    answer: impl Fn(&str, &str) -> Option<&'static str> + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let endpoint = util::stub::serve(move |req| {
        let op = req
            .target
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string();
        log.lock().expect("log").push(op.clone());
        match answer(&op, &req.body) {
            Some(file) => (200, "application/x-amz-json-1.1", recorded(file)),
            None => (
                400,
                "application/x-amz-json-1.1",
                format!(r#"{{"__type":"UnsupportedOperationException","message":"{op}"}}"#),
            ),
        }
    });
    (endpoint, seen)
}

#[test]
fn audit_logs_reads_cloudtrail_lake_through_the_cli() {
    let (endpoint, seen) = cloudtrail_stub(|op, body| match op {
        "StartQuery" if body.contains(&format!("FROM {STORE_ID} ")) => {
            Some("cloudtrail-lake-start-query.json")
        }
        "DescribeQuery" => Some("cloudtrail-lake-describe-finished.json"),
        "GetQueryResults" if body.contains("lake-page-2") => Some("cloudtrail-lake-results-2.json"),
        "GetQueryResults" => Some("cloudtrail-lake-results-1.json"),
        _ => None,
    });
    let tmp = util::TestDir::new();
    let config = tmp.path("keyproof.toml");
    std::fs::write(&config, "[logs]\nallowed_source_cidrs = [\"10.0.0.0/8\"]\n").expect("config");
    let out = util::keyproof_env(
        &[
            "audit-logs",
            "--cloudtrail-lake",
            STORE,
            "--since",
            "2026-11-28T00:00:00Z",
            "--until",
            "2026-11-29T00:00:00Z",
            "--config",
            config.to_str().expect("utf-8"),
            "--json",
        ],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(json["activity"]["events"], 122);
    assert_eq!(json["scan"]["lake"]["query_id"], QUERY);
    assert_eq!(json["scan"]["lake"]["groups"], 8);
    assert_eq!(
        json["activity"]["detections"].as_array().map(Vec::len),
        Some(6)
    );
    assert_eq!(
        *seen.lock().expect("log"),
        vec![
            "StartQuery",
            "DescribeQuery",
            "GetQueryResults",
            "GetQueryResults"
        ]
    );

    // Lake has no digest files: asking to verify them is refused before anything runs.
    let out = util::keyproof(&["audit-logs", "--cloudtrail-lake", STORE, "--verify-digests"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

/// The two recorded LookupEvents pages, the second asked for with the first's token.
fn lookup_rules() -> Vec<Rule> {
    vec![
        mock!(Client::lookup_events)
            .match_requests(|r| {
                r.next_token().is_none()
                    && r.lookup_attributes()[0].attribute_value() == "kms.amazonaws.com"
                    && r.start_time().map(|t| t.secs()) == Some(LOOKUP_SINCE)
            })
            .then_http_response(ok("cloudtrail-LookupEvents-page1.json")),
        mock!(Client::lookup_events)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_http_response(ok("cloudtrail-LookupEvents-page2.json")),
    ]
}

/// 2025-11-24T00:00:00Z, five days before the recorded events end.
const LOOKUP_SINCE: i64 = 1_763_942_400;

fn lookup_window() -> Rules {
    let since = DateTime::from_timestamp(LOOKUP_SINCE, 0).expect("time");
    let config = LogsConfig {
        allowed_source_cidrs: vec!["10.0.0.0/8".into()],
        ..LogsConfig::default()
    };
    Rules::new(since, since + chrono::Duration::days(5), &[], &config).expect("rules")
}

#[test]
fn lookup_events_give_the_same_analysis_as_the_log_file_of_the_same_events() {
    let rules = lookup_window();
    let source = LookupSource::with_clients(
        vec![("eu-west-1".into(), client(&lookup_rules()))],
        Duration::from_millis(1),
    )
    .expect("runtime");
    assert_eq!(source.describe(), "CloudTrail LookupEvents in eu-west-1");
    let scan = source.read(&rules).expect("history read");
    let stats = scan.stats.lookup.as_ref().expect("lookup stats");
    assert_eq!(stats.regions, vec!["eu-west-1"]);
    assert_eq!(stats.pages, 2, "both pages read");
    assert_eq!(
        stats.events_by_region.get("111122223333/eu-west-1"),
        Some(&5)
    );
    assert_eq!(scan.stats.kms_records, 5);
    // The collector's summary of the same history comes with it (the figures
    // tests/collect_recorded.rs finds when the collector reads these pages itself), so that a
    // run does not page through it twice.
    let summaries: Vec<_> = scan.event_summaries.keys().collect();
    assert_eq!(
        summaries,
        [&("111122223333".to_string(), "eu-west-1".to_string())]
    );
    let summary = &scan.event_summaries[&("111122223333".into(), "eu-west-1".into())];
    assert_eq!(
        (summary.window_start, summary.window_end),
        (rules.since, rules.until)
    );
    assert_eq!(summary.total_events, 5);
    assert_eq!(summary.by_event_name.get("Decrypt"), Some(&3));
    assert_eq!(summary.errors_by_code.get("AccessDenied"), Some(&1));
    let notable: Vec<&str> = summary
        .notable
        .iter()
        .map(|e| e.event_name.as_str())
        .collect();
    assert_eq!(notable, ["ScheduleKeyDeletion", "Decrypt", "PutKeyPolicy"]);
    let report = scan.activity.finish(&rules);
    assert_eq!((report.events, report.failed), (5, 1));
    assert_eq!((report.fields.records, report.fields.complete), (5, 5));
    let denied = report
        .detections
        .iter()
        .find(|d| d.kind == DetectionKind::AccessDenied)
        .expect("the intruder's denied Decrypt");
    assert_eq!(
        denied.principal.as_deref(),
        Some("arn:aws:sts::111122223333:assumed-role/intruder/session")
    );
    assert_eq!(
        denied.events[0].event_id,
        "11111111-aaaa-4bbb-8ccc-000000000004"
    );

    // The same records written as a log file give the same report.
    let mut records = Vec::new();
    for page in [
        "cloudtrail-LookupEvents-page1.json",
        "cloudtrail-LookupEvents-page2.json",
    ] {
        let page: serde_json::Value = serde_json::from_str(&recorded(page)).expect("json");
        for event in page["Events"].as_array().expect("events") {
            records.push(
                event["CloudTrailEvent"]
                    .as_str()
                    .expect("record")
                    .to_string(),
            );
        }
    }
    let file = format!(r#"{{"Records":[{}]}}"#, records.join(","));
    let mut from_file = Activity::default();
    LogParser::new()
        .scan("file.json", file.as_bytes(), |r| {
            from_file.add_n(r, 1, &rules)
        })
        .expect("readable");
    assert_eq!(report, from_file.finish(&rules));
}

#[test]
fn a_failed_lookup_page_fails_the_read() {
    let throttled = vec![
        mock!(Client::lookup_events)
            .match_requests(|r| r.next_token().is_none())
            .then_http_response(ok("cloudtrail-LookupEvents-page1.json")),
        mock!(Client::lookup_events)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_http_response(|| {
                HttpResponse::new(
                    StatusCode::try_from(400).expect("status"),
                    SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
                )
            }),
    ];
    let source = LookupSource::with_clients(
        vec![("eu-west-1".into(), client(&throttled))],
        Duration::from_millis(1),
    )
    .expect("runtime");
    let err = source.read(&lookup_window()).expect_err("a page failed");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            SourceError::Api {
                operation: "LookupEvents",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("ThrottlingException") && text.contains("eu-west-1"),
        "{text}"
    );
}

#[test]
fn digests_cannot_be_verified_from_lookup_events() {
    let out = util::keyproof(&[
        "audit-logs",
        "--cloudtrail-lookup",
        "eu-west-1",
        "--verify-digests",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

/// `audit-logs` reading the recorded LookupEvents pages' window in eu-west-1.
const LOOKUP_CLI: &[&str] = &[
    "audit-logs",
    "--cloudtrail-lookup",
    "eu-west-1",
    "--since",
    "2025-11-24T00:00:00Z",
    "--until",
    "2025-11-29T00:00:00Z",
];

#[test]
fn audit_logs_reads_lookup_events_through_the_cli() {
    let (endpoint, seen) = cloudtrail_stub(|op, body| match op {
        "LookupEvents" if body.contains("page-2") => Some("cloudtrail-LookupEvents-page2.json"),
        "LookupEvents" if body.contains("kms.amazonaws.com") => {
            Some("cloudtrail-LookupEvents-page1.json")
        }
        _ => None,
    });
    let tmp = util::TestDir::new();
    let config = tmp.path("keyproof.toml");
    std::fs::write(&config, "[logs]\nallowed_source_cidrs = [\"10.0.0.0/8\"]\n").expect("config");
    let run = |extra: &[&str]| {
        let mut args = LOOKUP_CLI.to_vec();
        args.extend_from_slice(&["--config", config.to_str().expect("utf-8")]);
        args.extend_from_slice(extra);
        util::keyproof_env(
            &args,
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", "AKID"),
                ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ],
        )
    };
    let out = run(&["--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(json["activity"]["events"], 5);
    assert_eq!(json["activity"]["failed"], 1);
    assert_eq!(json["scan"]["lookup"]["pages"], 2);
    assert_eq!(json["scan"]["lookup"]["regions"][0], "eu-west-1");
    assert_eq!(
        json["scan"]["source"],
        "CloudTrail LookupEvents in eu-west-1"
    );
    assert_eq!(
        *seen.lock().expect("log"),
        vec!["LookupEvents", "LookupEvents"]
    );

    let out = run(&["--detect-anomalies"]);
    assert!(
        out.stdout
            .contains("CloudTrail LookupEvents in eu-west-1: 5 KMS events over 2 pages"),
        "{}",
        out.stdout
    );
    // Calls from outside the allowed ranges are MEDIUM: the run exits 1.
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("198.51.100.9"), "{}", out.stdout);
}

#[test]
fn the_log_sources_sign_with_the_logs_profile() {
    // The keys each request was signed with.
    let keys: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = keys.clone();
    let endpoint = util::stub::serve(move |req| {
        log.lock().expect("log").push(req.access_key.clone());
        let page = if req.body.contains("page-2") {
            "cloudtrail-LookupEvents-page2.json"
        } else {
            "cloudtrail-LookupEvents-page1.json"
        };
        (200, "application/x-amz-json-1.1", recorded(page))
    });
    let tmp = util::TestDir::new();
    let credentials = tmp.path("credentials");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = s\n\n\
         [log-archive]\naws_access_key_id = LOGARCHIVEKEY\naws_secret_access_key = s\n",
    )
    .expect("credentials");
    let config = tmp.path("config");
    std::fs::write(
        &config,
        "[default]\nregion = eu-west-1\n\n[profile log-archive]\nregion = eu-west-1\n",
    )
    .expect("config");
    let run = |extra: &[&str]| {
        keys.lock().expect("log").clear();
        let mut args = LOOKUP_CLI.to_vec();
        args.push("--json");
        args.extend_from_slice(extra);
        let out = util::keyproof_env(
            &args,
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    credentials.to_str().expect("utf-8"),
                ),
                ("AWS_CONFIG_FILE", config.to_str().expect("utf-8")),
            ],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        keys.lock().expect("log").clone()
    };
    let both = |key: &str| vec![key.to_string(), key.to_string()];
    assert_eq!(
        run(&["--logs-profile", "log-archive"]),
        both("LOGARCHIVEKEY")
    );
    assert_eq!(run(&[]), both("DEFAULTKEY"));

    // A local copy needs no credentials: the flag is refused there.
    let out = util::keyproof(&["audit-logs", "--local", ".", "--logs-profile", "x"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}
