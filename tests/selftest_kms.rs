//! The self-test's AWS KMS provider against recorded KMS answers, for what moto cannot do:
//! refuse a disabled key (moto does not enforce key state), deny access, and multi-Region keys
//! (moto cannot decrypt under `mrk-` keys). The SDK's own deserializers and error
//! classification run on the recorded responses, via aws-smithy-mocks.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use keyproof::collect::Ledger;
use keyproof::collect::guard::Guard;
use keyproof::selftest::envelope::{Target, round_trip};
use keyproof::selftest::kms_provider::KmsProvider;
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
const OTHER: &str = "arn:aws:kms:eu-west-1:111122223333:key/0987dcba-09fe-87dc-65ba-ab0987654321";

fn error(
    code: u16,
    kind: &str,
    message: &str,
) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    let body = format!(r#"{{"__type":"{kind}","message":"{message}"}}"#);
    move || {
        HttpResponse::new(
            StatusCode::try_from(code).expect("status"),
            SdkBody::from(body.clone()),
        )
    }
}

fn provider(rules: &[Rule], ledger: &Arc<Ledger>) -> KmsProvider {
    let mut mocks = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for r in rules {
        mocks = mocks.with_rule(r);
    }
    let client = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .http_client(create_mock_http_client())
            .retry_config(RetryConfig::disabled())
            .interceptor(mocks)
            .interceptor(Guard::selftest(ledger.clone()))
            .build(),
    );
    KmsProvider::new(client, Duration::from_secs(5))
}

fn target() -> Target {
    Target {
        account_id: "111122223333".into(),
        region: "eu-west-1".into(),
        key_arn: KEY.into(),
        key_spec: "SYMMETRIC_DEFAULT".into(),
        other_key_arn: OTHER.into(),
    }
}

#[tokio::test]
async fn a_disabled_key_fails_at_generate_data_key() {
    use aws_sdk_kms::Client;
    let rule = mock!(Client::generate_data_key).then_http_response(error(
        400,
        "DisabledException",
        "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab is disabled.",
    ));
    let ledger = Arc::new(Ledger::default());
    let r = round_trip(&provider(&[rule], &ledger), "run-1", &target()).await;
    assert_eq!(r.result, "FAIL");
    assert_eq!(r.failed_step.as_deref(), Some("GenerateDataKey"));
    assert_eq!(r.error_code.as_deref(), Some("DisabledException"));
    assert!(r.message.contains("disabled"), "{}", r.message);
    assert_eq!(
        ledger.operations().into_iter().collect::<Vec<_>>(),
        vec!["kms:GenerateDataKey"]
    );
}

#[tokio::test]
async fn access_denied_is_not_tested_and_names_the_permission() {
    use aws_sdk_kms::Client;
    let rule = mock!(Client::generate_data_key).then_http_response(error(
        400,
        "AccessDeniedException",
        "User: arn:aws:sts::111122223333:assumed-role/keyproof-audit/s is not authorized to perform: kms:GenerateDataKey",
    ));
    let ledger = Arc::new(Ledger::default());
    let r = round_trip(&provider(&[rule], &ledger), "run-2", &target()).await;
    assert_eq!(r.result, "ERROR", "access denied proves nothing either way");
    assert_eq!(r.error_code.as_deref(), Some("AccessDeniedException"));
    assert!(
        r.message.contains("Grant kms:GenerateDataKey"),
        "{}",
        r.message
    );
    assert!(
        r.message.contains("iam-policy-selftest.json"),
        "{}",
        r.message
    );
}

#[tokio::test]
async fn a_multi_region_key_round_trip_through_recorded_kms_answers() {
    use aws_sdk_kms::Client;
    // GenerateDataKey answers a fixed data key; Decrypt returns it for the right context and
    // key, refuses a forged context (InvalidCiphertextException) and another key
    // (IncorrectKeyException), as KMS does.
    let data_key = [7u8; 32];
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let generated = format!(
        r#"{{"CiphertextBlob":"{}","Plaintext":"{}","KeyId":"{KEY}"}}"#,
        b64(b"wrapped-by-mrk"),
        b64(&data_key)
    );
    let decrypted = format!(
        r#"{{"Plaintext":"{}","KeyId":"{KEY}","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}"#,
        b64(&data_key)
    );
    let ok = |body: String| {
        move || {
            HttpResponse::new(
                StatusCode::try_from(200).expect("200"),
                SdkBody::from(body.clone()),
            )
        }
    };
    let rules = vec![
        mock!(Client::generate_data_key)
            .match_requests(|r| {
                r.key_spec() == Some(&aws_sdk_kms::types::DataKeySpec::Aes256)
                    && r.encryption_context().and_then(|c| c.get("keyproof:run")).map(String::as_str)
                        == Some("run-3")
            })
            .then_http_response(ok(generated)),
        mock!(Client::decrypt)
            .match_requests(|r| r.key_id() == Some(OTHER))
            .then_http_response(error(400, "IncorrectKeyException", "The key ID in the request does not identify a KMS key that can perform this operation.")),
        mock!(Client::decrypt)
            .match_requests(|r| {
                r.encryption_context().and_then(|c| c.get("keyproof:run")).map(String::as_str)
                    == Some("run-3")
            })
            .then_http_response(ok(decrypted)),
        mock!(Client::decrypt)
            .then_http_response(error(400, "InvalidCiphertextException", "")),
    ];
    let ledger = Arc::new(Ledger::default());
    let r = round_trip(&provider(&rules, &ledger), "run-3", &target()).await;
    assert_eq!(r.result, "PASS", "{r:#?}");
    assert_eq!(
        (
            r.tampered_tag_rejected,
            r.wrong_context_rejected,
            r.wrong_key_rejected
        ),
        (Some(true), Some(true), Some(true))
    );
    let ops: Vec<String> = ledger.operations().into_iter().collect();
    assert_eq!(ops, vec!["kms:Decrypt", "kms:GenerateDataKey"]);
}

#[tokio::test]
async fn a_kms_that_returns_another_data_key_fails_the_comparison() {
    use aws_sdk_kms::Client;
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let generated = format!(
        r#"{{"CiphertextBlob":"{}","Plaintext":"{}","KeyId":"{KEY}"}}"#,
        b64(b"blob"),
        b64(&[1u8; 32])
    );
    let decrypted = format!(r#"{{"Plaintext":"{}","KeyId":"{KEY}"}}"#, b64(&[2u8; 32]));
    let ok = |body: String| {
        move || {
            HttpResponse::new(
                StatusCode::try_from(200).expect("200"),
                SdkBody::from(body.clone()),
            )
        }
    };
    let rules = vec![
        mock!(Client::generate_data_key).then_http_response(ok(generated)),
        mock!(Client::decrypt).then_http_response(ok(decrypted)),
    ];
    let r = round_trip(
        &provider(&rules, &Arc::new(Ledger::default())),
        "run-4",
        &target(),
    )
    .await;
    assert_eq!(r.result, "FAIL");
    assert_eq!(r.failed_step.as_deref(), Some("CompareDataKey"));
}

#[tokio::test]
async fn the_self_test_client_cannot_call_anything_else() {
    let ledger = Arc::new(Ledger::default());
    // A client with the self-test guard, as the provider builds it.
    let client = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .http_client(create_mock_http_client())
            .interceptor(Guard::selftest(ledger.clone()))
            .build(),
    );
    let err = client
        .schedule_key_deletion()
        .key_id(KEY)
        .send()
        .await
        .expect_err("refused");
    let failure = keyproof::collect::ApiFailure::from_sdk(&err);
    assert_eq!(failure.code, "KeyproofReadOnlyGuard");
    assert!(failure.message.contains("kms:ScheduleKeyDeletion"));
}
