//! Live collection against moto, the AWS API emulator, through the real AWS SDK for Rust.
//!
//! Each test starts its own moto on 127.0.0.1 (a free port), seeds the estate of
//! `tests/moto/seed.py` with boto3, runs collection, and checks the snapshot field by field.
//! Where moto does not emulate an API (LookupEvents, custom key stores, GetKeyLastUsage,
//! rotation period, S3 encryption in Config items) the tests here assert the gap keyproof records
//! instead; `tests/collect_recorded.rs` covers those APIs with recorded AWS responses.

mod util;

use keyproof::collect::{self, Ledger, Progress, Session, Settings, policy_actions};
use serde_json::Value;
use std::sync::Arc;
use util::moto::Moto;
use util::{TestDir, keyproof_env};

fn collect_cli(moto: &Moto, out: &std::path::Path, extra: &[&str]) -> util::Output {
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec![
        "collect",
        "--regions",
        "eu-west-1,us-east-1",
        "--max-attempts",
        "1",
        "--no-events",
        "--quiet",
        "--out",
        out.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    keyproof_env(&args, &env)
}

fn region<'a>(snap: &'a Value, account: &str, region: &str) -> &'a Value {
    snap["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["account_id"] == account))
        .and_then(|a| a["regions"].as_array())
        .and_then(|r| r.iter().find(|x| x["region"] == region))
        .unwrap_or_else(|| panic!("no evidence for {account} {region}"))
}

fn by<'a>(list: &'a Value, field: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|x| x[field] == value))
        .unwrap_or_else(|| panic!("no item with {field} = {value} in {list}"))
}

/// Gaps as "account region api code" lines, sorted, without the per-key GetKeyLastUsage and
/// DescribeCustomKeyStores gaps that moto causes (asserted separately).
fn gap_lines(snap: &Value) -> Vec<String> {
    let mut lines: Vec<String> = snap["gaps"]
        .as_array()
        .expect("gaps")
        .iter()
        .filter(|g| g["api"] != "GetKeyLastUsage" && g["api"] != "DescribeCustomKeyStores")
        .map(|g| {
            format!(
                "{} {} {} {}",
                g["account_id"].as_str().unwrap_or_default(),
                g["region"].as_str().unwrap_or_default(),
                g["api"].as_str().unwrap_or_default(),
                g["error_code"].as_str().unwrap_or_default()
            )
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn collects_the_seeded_estate_field_by_field() {
    let moto = Moto::start();
    let seeded = moto.seed();
    let dir = TestDir::new();
    let out = dir.path("snapshot.json");
    let run = collect_cli(
        &moto,
        &out,
        &[
            "--accounts",
            "123456789012,111111111111",
            "--role-name",
            "keyproof-audit",
        ],
    );
    run.assert_code(0)
        .assert_stderr_has("collected 2 account(s) x 2 region(s): 5 keys, 2 trails, 5 resources");
    let snap: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("snapshot written")).expect("JSON");

    assert_eq!(snap["source"], "aws");
    assert_eq!(
        snap["scope"]["regions"],
        serde_json::json!(["eu-west-1", "us-east-1"])
    );
    assert_eq!(snap["scope"]["events_since"], Value::Null, "--no-events");

    // --- KMS, eu-west-1 ---
    let eu = region(&snap, "123456789012", "eu-west-1");
    let keys = &eu["kms_keys"];
    assert_eq!(keys.as_array().map(Vec::len), Some(3));
    let payments = by(
        keys,
        "key_id",
        seeded["payments"]["key_id"].as_str().expect("id"),
    );
    assert_eq!(payments["arn"], seeded["payments"]["arn"]);
    assert_eq!(
        payments["description"],
        r#"Payments <script>alert("x")</script> =HYPERLINK("http://evil")"#,
        "hostile strings are kept verbatim in the snapshot"
    );
    assert_eq!(
        payments["aliases"],
        serde_json::json!(["alias/prod-payments"])
    );
    assert_eq!(payments["key_manager"], "CUSTOMER");
    assert_eq!(payments["state"], "Enabled");
    assert_eq!(payments["spec"], "SYMMETRIC_DEFAULT");
    assert_eq!(payments["usage"], "ENCRYPT_DECRYPT");
    assert_eq!(payments["origin"], "AWS_KMS");
    assert_eq!(
        payments["tags"],
        serde_json::json!({"environment": "production", "pci-scope": "cde"})
    );
    assert_eq!(payments["policy"], seeded["payments"]["policy"]);
    let grant = &payments["grants"][0];
    assert_eq!(grant["grant_id"], seeded["payments"]["grant_id"]);
    assert_eq!(grant["name"], "payments-app");
    assert_eq!(
        grant["grantee_principal"],
        "arn:aws:iam::123456789012:role/payments-app"
    );
    assert_eq!(
        grant["operations"],
        serde_json::json!(["Decrypt", "GenerateDataKey"])
    );
    assert_eq!(
        grant["constraints"]["encryption_context_subset"],
        serde_json::json!({"app": "payments"})
    );
    let rotation = &payments["rotation"];
    assert_eq!(rotation["enabled"], true);
    // moto drops RotationPeriodInDays / NextRotationDate: null, never a guessed 365.
    assert_eq!(rotation["period_days"], Value::Null);
    assert_eq!(rotation["history"][0]["rotation_type"], "ON_DEMAND");

    let rsa = by(
        keys,
        "key_id",
        seeded["rsa"]["key_id"].as_str().expect("id"),
    );
    assert_eq!(rsa["spec"], "RSA_2048");
    assert_eq!(rsa["usage"], "SIGN_VERIFY");
    assert_eq!(
        rsa["rotation"],
        Value::Null,
        "rotation does not apply to RSA keys"
    );

    let doomed = by(
        keys,
        "key_id",
        seeded["doomed"]["key_id"].as_str().expect("id"),
    );
    assert_eq!(doomed["state"], "PendingDeletion");
    assert!(doomed["deletion_date"].is_string());

    // --- CloudTrail ---
    let trails = &eu["trails"];
    let multi = by(trails, "name", "estate-trail");
    assert_eq!(multi["arn"], seeded["trails"]["multi"]);
    assert_eq!(multi["home_region"], "eu-west-1");
    assert_eq!(multi["is_multi_region"], true);
    assert_eq!(multi["log_file_validation"], true);
    assert_eq!(multi["kms_key_id"], seeded["payments"]["arn"]);
    assert_eq!(multi["s3_bucket"], "keyproof-audit-logs");
    assert_eq!(multi["is_logging"], true);
    assert_eq!(multi["selectors"]["selector_kind"], "basic");
    assert_eq!(multi["selectors"]["management_write"], true);
    assert_eq!(multi["selectors"]["kms_events_included"], true);
    let local = by(trails, "name", "app-trail");
    assert_eq!(local["is_logging"], false);
    assert_eq!(local["log_file_validation"], false);
    assert_eq!(local["selectors"]["selector_kind"], "advanced");
    assert_eq!(local["selectors"]["management_events"], true);
    assert_eq!(
        local["selectors"]["kms_events_included"], false,
        "eventSource NotEquals kms.amazonaws.com excludes KMS events"
    );
    // The multi-Region trail's shadow in us-east-1 carries the home region's status.
    let us = region(&snap, "123456789012", "us-east-1");
    let shadow = by(&us["trails"], "name", "estate-trail");
    assert_eq!(shadow["home_region"], "eu-west-1");
    assert_eq!(shadow["is_logging"], true);
    assert_eq!(shadow["selectors"]["kms_events_included"], true);
    assert_eq!(us["trails"].as_array().map(Vec::len), Some(1));

    // --- AWS Config ---
    assert_eq!(eu["config_recorders"][0]["name"], "default");
    assert_eq!(eu["config_recorders"][0]["recording"], true);
    assert_eq!(eu["config_recorders"][0]["all_supported"], true);
    let resources = &eu["resources"];
    assert_eq!(resources.as_array().map(Vec::len), Some(5));
    let alerts = by(
        resources,
        "arn",
        seeded["topics"]["encrypted"].as_str().expect("arn"),
    );
    assert_eq!(alerts["resource_type"], "AWS::SNS::Topic");
    assert_eq!(alerts["encrypted"], true);
    assert_eq!(alerts["kms_key_id"], seeded["payments"]["key_id"]);
    assert_eq!(alerts["encryption_type"], "CUSTOMER_KMS");
    let plain = by(
        resources,
        "arn",
        seeded["topics"]["plain"].as_str().expect("arn"),
    );
    assert_eq!(plain["encrypted"], false);
    assert_eq!(plain["encryption_type"], "NONE");
    assert_eq!(
        plain["tags"],
        serde_json::json!({"environment": "production"}),
        "SNS tags come from the item's supplementary configuration"
    );
    let bucket = by(resources, "resource_id", "cardholder-statements");
    assert_eq!(
        bucket["tags"],
        serde_json::json!({"environment": "production"})
    );
    // moto's Config items carry no ServerSideEncryptionConfiguration: the setting is unknown
    // (null), which evaluation turns into ERROR, never into a pass or a fail on a guess.
    assert_eq!(bucket["encrypted"], Value::Null);
    assert_eq!(bucket["encryption_type"], "UNKNOWN");

    // --- the second account, through the role ---
    let other = region(&snap, "111111111111", "eu-west-1");
    assert_eq!(other["kms_keys"][0]["arn"], seeded["other"]["arn"]);
    let east = region(&snap, "123456789012", "us-east-1");
    assert_eq!(east["kms_keys"][0]["arn"], seeded["east"]["arn"]);

    // --- gaps: regions without a recording Config recorder, nothing else ---
    assert_eq!(
        gap_lines(&snap),
        vec![
            "111111111111 eu-west-1 DescribeConfigurationRecorderStatus NoRecordingConfigRecorder",
            "111111111111 us-east-1 DescribeConfigurationRecorderStatus NoRecordingConfigRecorder",
            "123456789012 us-east-1 DescribeConfigurationRecorderStatus NoRecordingConfigRecorder",
        ]
    );
    // moto answers DescribeCustomKeyStores and GetKeyLastUsage with HTTP 500: recorded as gaps
    // naming the API, one per region and one per key respectively.
    let count = |api: &str| {
        snap["gaps"]
            .as_array()
            .map(|g| g.iter().filter(|x| x["api"] == api).count())
            .unwrap_or_default()
    };
    assert_eq!(count("DescribeCustomKeyStores"), 4);
    assert_eq!(count("GetKeyLastUsage"), 5);
}

#[test]
fn run_reports_errors_where_config_evidence_is_missing() {
    let moto = Moto::start();
    moto.seed();
    let dir = TestDir::new();
    let run_dir = dir.path("run");
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = keyproof_env(
        &[
            "run",
            "--regions",
            "eu-west-1,us-east-1",
            "--max-attempts",
            "1",
            "--no-events",
            "--quiet",
            "--format",
            "json,csv",
            "--out",
            run_dir.to_str().expect("utf-8"),
        ],
        &env,
    );
    run.assert_code(0);
    for f in ["snapshot.json", "findings.json", "findings.csv"] {
        assert!(run_dir.join(f).exists(), "{f} missing: {}", run.stderr);
    }
    let report: Value = serde_json::from_slice(
        &std::fs::read(run_dir.join("findings.json")).expect("findings.json"),
    )
    .expect("JSON");
    let findings = report["findings"].as_array().expect("findings");
    // us-east-1 has no recording Config recorder: the encryption-at-rest control is ERROR there,
    // and says what is missing.
    let east_resources: Vec<&Value> = findings
        .iter()
        .filter(|f| f["control_id"] == "KP-RES-ENCRYPTED" && f["region"] == "us-east-1")
        .collect();
    assert!(!east_resources.is_empty(), "no finding for us-east-1");
    assert!(
        east_resources.iter().all(|f| f["status"] == "ERROR"),
        "{east_resources:?}"
    );
    assert!(
        east_resources
            .iter()
            .any(|f| f.to_string().contains("NoRecordingConfigRecorder")),
        "the ERROR names the gap: {east_resources:?}"
    );
    // The SNS topic without encryption is a FAIL in eu-west-1.
    assert!(findings.iter().any(|f| {
        f["status"] == "FAIL"
            && f["region"] == "eu-west-1"
            && f["resource_id"]
                .as_str()
                .is_some_and(|r| r.contains("marketing-news"))
    }));
}

#[test]
fn run_self_tests_the_keys_through_kms() {
    let moto = Moto::start();
    let seeded = moto.seed();
    let dir = TestDir::new();
    let run_dir = dir.path("run");
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = keyproof_env(
        &[
            "run",
            "--regions",
            "eu-west-1",
            "--max-attempts",
            "1",
            "--no-events",
            "--quiet",
            "--format",
            "json",
            "--out",
            run_dir.to_str().expect("utf-8"),
        ],
        &env,
    );
    run.assert_code(0)
        .assert_stderr_has("self-test (aws-kms): known-answer tests passed, 1 keys PASS, 0 FAIL");
    let snap: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("snapshot.json")).expect("snapshot"))
            .expect("JSON");
    let st = &snap["selftest"];
    assert_eq!(st["provider"], "aws-kms");
    assert_eq!(st["kat"]["passed"], true);
    // Only the customer managed symmetric encryption key is tested (not the RSA signing key);
    // moto reports the pending-deletion key without a key usage, so it is not in scope either.
    let keys = st["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{keys:#?}");
    let k = &keys[0];
    assert_eq!(k["key_arn"], seeded["payments"]["arn"]);
    assert_eq!(k["result"], "PASS", "{k:#?}");
    // Real KMS behaviour from moto: the tampered tag, the forged context and the other key are
    // all refused.
    assert_eq!(k["tampered_tag_rejected"], true);
    assert_eq!(k["wrong_context_rejected"], true);
    assert_eq!(k["wrong_key_rejected"], true);
    let findings: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("findings.json")).expect("findings"))
            .expect("JSON");
    let verdict = findings["findings"]
        .as_array()
        .and_then(|f| {
            f.iter().find(|x| {
                x["control_id"] == "KP-KEY-SELFTEST"
                    && x["resource_arn"] == seeded["payments"]["arn"]
            })
        })
        .map(|x| x["status"].clone());
    assert_eq!(verdict, Some(Value::from("PASS")));
}

fn moto_config(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("testing", "testing", None, None, "test"),
            ),
        )
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_calls_only_policy_actions_and_the_guard_blocks_writes() {
    let moto = Moto::start();
    moto.seed();
    let ledger = Arc::new(Ledger::default());
    let session = Session::with_config(moto_config(&moto), ledger.clone())
        .await
        .expect("session");
    let args = collect::CollectArgs {
        regions: vec!["eu-west-1".into()],
        accounts: vec!["123456789012".into(), "111111111111".into()],
        role_name: Some("keyproof-audit".into()),
        ..Default::default()
    };
    let (plan, factory) = session.plan(&args).await.expect("plan");
    let now = chrono::Utc::now();
    let settings = Settings::new(now, now - chrono::Duration::days(90));
    let snapshot = collect::collect(&plan, &factory, &settings, &Progress::hidden()).await;
    assert!(snapshot.accounts.len() == 2, "both accounts collected");

    let called = ledger.operations();
    let allowed = policy_actions();
    let outside: Vec<&String> = called.iter().filter(|a| !allowed.contains(*a)).collect();
    assert!(
        outside.is_empty(),
        "collection called actions missing from docs/iam-policy.json: {outside:?}"
    );
    for expected in [
        "kms:ListKeys",
        "kms:GetKeyPolicy",
        "cloudtrail:DescribeTrails",
        "config:BatchGetResourceConfig",
        "sts:GetCallerIdentity",
    ] {
        assert!(
            called.contains(expected),
            "{expected} was not called: {called:?}"
        );
    }
    assert!(ledger.requests() as usize >= called.len());

    // A mutating call through a guarded client never leaves the process.
    let clients = collect::guarded_clients(&moto_config(&moto), "eu-west-1", &ledger);
    let before = clients
        .kms
        .list_keys()
        .send()
        .await
        .expect("list")
        .keys()
        .len();
    let refused = clients
        .kms
        .create_key()
        .send()
        .await
        .expect_err("the guard refuses CreateKey");
    let failure = collect::ApiFailure::from_sdk(&refused);
    assert_eq!(failure.code, "KeyproofReadOnlyGuard");
    assert!(
        failure.message.contains("kms:CreateKey"),
        "{}",
        failure.message
    );
    let after = clients
        .kms
        .list_keys()
        .send()
        .await
        .expect("list")
        .keys()
        .len();
    assert_eq!(before, after, "no key was created");
}

/// `--sign-with-kms`: the manifest is signed by a KMS key (moto's ECC_NIST_P256) whose private
/// key never leaves KMS; the exported public key verifies it offline, and a changed file or
/// another key does not.
#[test]
fn a_run_signed_with_a_kms_key_verifies_offline_with_the_exported_public_key() {
    let moto = Moto::start();
    let key = moto.seed_signing_key()["key_arn"]
        .as_str()
        .expect("key arn")
        .to_string();
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = TestDir::new();
    let run = dir.path("runs/2026-11");
    let r = run.to_str().unwrap_or_default();
    let out = keyproof_env(
        &[
            "demo",
            "--out",
            r,
            "--format",
            "json",
            "--sign-with-kms",
            &key,
        ],
        &env,
    );
    out.assert_code(0);
    out.assert_stderr_has("signed by ecdsa-p256-sha256 key");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["signer"]["kms_key_arn"], key.as_str());

    let pem = dir.path("kms.pub.pem");
    let p = pem.to_str().unwrap_or_default();
    keyproof_env(&["keys", "export-kms", &key, "--out", p], &env).assert_code(0);
    // Offline: no AWS environment at all.
    let ok = util::keyproof(&["verify", r, "--public-key", p]);
    ok.assert_code(0);
    assert!(ok.stdout.contains("signature: valid"), "{}", ok.stdout);

    std::fs::write(run.join("findings.json"), "{}").expect("tamper");
    let bad = util::keyproof(&["verify", r, "--public-key", p]);
    bad.assert_code(1);
    assert!(
        bad.stdout.contains("altered: findings.json"),
        "{}",
        bad.stdout
    );

    let keys = dir.path("keys");
    util::keyproof(&["keys", "init", "--dir", keys.to_str().unwrap_or_default()]).assert_code(0);
    let other = util::keyproof(&[
        "verify",
        r,
        "--public-key",
        keys.join("signing.pub.pem").to_str().unwrap_or_default(),
    ]);
    other.assert_code(1);
    assert!(
        other.stdout.contains("not by the given key"),
        "{}",
        other.stdout
    );
}
