//! Session setup: region discovery (`--regions all`), organization accounts, role assumption.
//!
//! moto has no `account:ListRegions` and cannot refuse an AssumeRole, so these run against a
//! stub endpoint answering with recorded STS (XML) and Account (JSON) responses; the moto test
//! of `--organization` uses moto's Organizations.

mod util;

use keyproof::collect::{CollectArgs, Ledger, Session, SessionError};
use keyproof::snapshot::EvidenceKind;
use std::sync::Arc;
use util::stub::{self, Request};

const CALLER: &str = "123456789012";
const MEMBER: &str = "222233334444";

fn caller_identity() -> String {
    format!(
        r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::{CALLER}:user/audit</Arn>
    <UserId>AIDAEXAMPLE</UserId>
    <Account>{CALLER}</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#
    )
}

fn assume_role_denied() -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::{CALLER}:user/audit is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{MEMBER}:role/keyproof-audit</Message>
  </Error>
  <RequestId>89abcdef-0123-4567-89ab-cdef01234567</RequestId>
</ErrorResponse>"#
    )
}

/// STS and Account answers; every AssumeRole is refused.
fn answer(req: &Request) -> stub::Reply {
    if req.body.contains("Action=GetCallerIdentity") {
        (200, "text/xml", caller_identity())
    } else if req.body.contains("Action=AssumeRole") {
        (403, "text/xml", assume_role_denied())
    } else if req.path == "/listRegions" {
        // The request must ask for enabled regions only.
        let filtered = req.body.contains("ENABLED_BY_DEFAULT") && req.body.contains("\"ENABLED\"");
        let body = if filtered {
            r#"{"Regions":[{"RegionName":"eu-west-1","RegionOptStatus":"ENABLED_BY_DEFAULT"},{"RegionName":"af-south-1","RegionOptStatus":"ENABLED"},{"RegionName":"us-east-1","RegionOptStatus":"ENABLED_BY_DEFAULT"}]}"#
        } else {
            r#"{"Regions":[{"RegionName":"me-south-1","RegionOptStatus":"DISABLED"}]}"#
        };
        (200, "application/json", body.to_string())
    } else {
        (
            400,
            "application/json",
            r#"{"__type":"UnknownOperationException"}"#.to_string(),
        )
    }
}

fn config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKID", "SECRET", None, None, "test"),
            ),
        )
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

#[tokio::test]
async fn all_regions_are_discovered_and_a_refused_role_is_a_gap_per_region() {
    let endpoint = stub::serve(answer);
    let ledger = Arc::new(Ledger::default());
    let session = Session::with_config(config(&endpoint), ledger.clone())
        .await
        .expect("session");
    assert_eq!(session.caller_account, CALLER);
    let args = CollectArgs {
        regions: vec!["all".into()],
        accounts: vec![CALLER.into(), MEMBER.into()],
        role_name: Some("keyproof-audit".into()),
        ..CollectArgs::default()
    };
    let (plan, _factory) = session.plan(&args).await.expect("plan");
    assert_eq!(plan.regions, vec!["af-south-1", "eu-west-1", "us-east-1"]);
    assert_eq!(plan.unreachable, vec![MEMBER]);
    assert_eq!(plan.gaps.len(), 3, "one gap per region: {:#?}", plan.gaps);
    for gap in &plan.gaps {
        assert_eq!(gap.account_id, MEMBER);
        assert_eq!(gap.api, "AssumeRole");
        assert_eq!(gap.error_code, "AccessDenied");
        assert_eq!(gap.evidence, EvidenceKind::Region);
        assert!(
            gap.message
                .contains("not authorized to perform: sts:AssumeRole"),
            "{}",
            gap.message
        );
    }
    assert!(ledger.operations().contains("account:ListRegions"));
}

#[tokio::test]
async fn other_accounts_without_a_role_name_are_refused_with_advice() {
    let endpoint = stub::serve(answer);
    let session = Session::with_config(config(&endpoint), Arc::new(Ledger::default()))
        .await
        .expect("session");
    let args = CollectArgs {
        regions: vec!["eu-west-1".into()],
        accounts: vec![MEMBER.into()],
        ..CollectArgs::default()
    };
    let err = session.plan(&args).await.expect_err("needs --role-name");
    assert!(matches!(err, SessionError::RoleNameRequired(_)));
    assert!(err.to_string().contains("--role-name"), "{err}");
    let bad = CollectArgs {
        accounts: vec!["12345".into()],
        role_name: Some("r".into()),
        ..args
    };
    let err = session.plan(&bad).await.expect_err("malformed account id");
    assert!(err.to_string().contains("12 digits"), "{err}");
}

#[tokio::test]
async fn failed_identity_is_a_clear_error() {
    let endpoint = stub::serve(|_| {
        (
            403,
            "text/xml",
            r#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>x</RequestId></ErrorResponse>"#.to_string(),
        )
    });
    let err = Session::with_config(config(&endpoint), Arc::new(Ledger::default()))
        .await
        .expect_err("identity fails");
    let text = err.to_string();
    assert!(text.contains("InvalidClientTokenId"), "{text}");
    assert!(text.contains("check the credentials"), "{text}");
}

#[test]
fn organization_accounts_come_from_organizations_list_accounts() {
    let moto = util::moto::Moto::start();
    let seeded = moto.seed_organization();
    let member = seeded["member"].as_str().expect("member id").to_string();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let base = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("testing", "testing", None, None, "t"),
                ),
            )
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let ledger = Arc::new(Ledger::default());
        let session = Session::with_config(base, ledger.clone())
            .await
            .expect("session");
        let args = CollectArgs {
            regions: vec!["eu-west-1".into()],
            organization: true,
            role_name: Some("keyproof-audit".into()),
            ..CollectArgs::default()
        };
        let (plan, _factory) = session.plan(&args).await.expect("plan");
        let ids: Vec<(&str, Option<&str>)> = plan
            .accounts
            .iter()
            .map(|a| (a.account_id.as_str(), a.name.as_deref()))
            .collect();
        let mut expected = vec![
            ("123456789012", Some("master")),
            (member.as_str(), Some("dr-backup")),
        ];
        expected.sort();
        assert_eq!(ids, expected);
        assert!(plan.unreachable.is_empty() && plan.gaps.is_empty());
        assert!(ledger.operations().contains("organizations:ListAccounts"));
    });
}
