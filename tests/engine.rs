//! Verdicts of the rule engine on the sample estate and on snapshots changed to provoke each
//! verdict: PASS, FAIL, ERROR (gap, null evidence, missing region), NOT_APPLICABLE, MANUAL.

use keyproof::config::Config;
use keyproof::rules::{ControlSet, Finding, Status, evaluate};
use keyproof::snapshot::sample::{SAMPLE_CONFIG, sample_estate};
use keyproof::snapshot::{EvidenceKind, Gap, Snapshot};

const SNS_ALERTS: &str = "cf09be01-6f45-46b9-abd3-b15222985778";
const S3_STATEMENTS: &str = "53c18272-75bc-42c1-b946-79076231e889";
const PROD_SECRETS: &str = "749db300-5e5c-445d-89a5-85efa0c84533";
const PROD_EBS: &str = "d3335f51-e1f8-45b4-b1da-6e4e7ce91dff";

fn run(snapshot: &Snapshot) -> Vec<Finding> {
    let controls = ControlSet::embedded().expect("embedded controls load");
    let config = Config::parse(SAMPLE_CONFIG, "sample").expect("sample config parses");
    evaluate(snapshot, &controls, &config)
}

fn status(findings: &[Finding], control: &str, resource: &str) -> Status {
    let matching: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.control_id == control && f.resource_id == resource)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one finding for {control} on {resource}"
    );
    matching[0].status
}

fn key_mut<'a>(s: &'a mut Snapshot, key_id: &str) -> &'a mut keyproof::snapshot::KmsKey {
    s.accounts
        .iter_mut()
        .flat_map(|a| a.regions.iter_mut())
        .flat_map(|r| r.kms_keys.iter_mut())
        .find(|k| k.key_id == key_id)
        .expect("key in sample")
}

#[test]
fn sample_estate_faults_fail_and_healthy_keys_pass() {
    let f = run(&sample_estate());
    assert_eq!(
        status(&f, "KP-KEY-ROTATION-ENABLED", PROD_EBS),
        Status::Pass
    );
    assert_eq!(status(&f, "KP-KEY-ROTATION-PERIOD", PROD_EBS), Status::Pass);
    assert_eq!(
        status(&f, "KP-KEY-ROTATION-PERIOD", S3_STATEMENTS),
        Status::Fail
    );
    assert_eq!(
        status(&f, "KP-KEY-NO-PUBLIC-ACCESS", SNS_ALERTS),
        Status::Fail
    );
    // The wildcard limited by kms:CallerAccount + kms:ViaService is not public.
    assert_eq!(
        status(&f, "KP-KEY-NO-PUBLIC-ACCESS", PROD_SECRETS),
        Status::Pass
    );
    assert_eq!(
        status(&f, "KP-TRAIL-LOG-VALIDATION", "northwind-dev-trail"),
        Status::Fail
    );
    let fails: Vec<&str> = f
        .iter()
        .filter(|x| x.status == Status::Fail)
        .map(|x| x.control_id.as_str())
        .collect();
    for expected in [
        "KP-RES-ENCRYPTED",
        "KP-RES-KEY-ENVIRONMENT",
        "KP-KEY-PENDING-DELETION-UNUSED",
        "KP-CKS-CONNECTED",
    ] {
        assert!(
            fails.contains(&expected),
            "{expected} should fail: {fails:?}"
        );
    }
}

/// Each deliberate fault of the sample estate (see `keyproof::snapshot::sample`) is caught by
/// the controls meant to catch it, and nothing else fails.
#[test]
fn sample_estate_fails_exactly_its_deliberate_faults() {
    let f = run(&sample_estate());
    let mut fails: Vec<(String, String)> = f
        .iter()
        .filter(|x| x.status == Status::Fail)
        .map(|x| {
            (
                x.control_id.clone(),
                format!("{}/{}", x.region, x.resource_id),
            )
        })
        .collect();
    fails.sort();
    let legacy_ebs = "eu-west-1/9005b8cb-bf04-4a7c-bea2-aaf423a5a837";
    let legacy_volume = "eu-west-1/vol-019180b0cbb8b7b74";
    let dev_rds = "eu-west-1/662e4bb0-6f0b-4814-ab4d-39be184e4097";
    let mut expected: Vec<(String, String)> = [
        // 1: the statements key rotates yearly.
        (
            "KP-KEY-ROTATION-PERIOD",
            "eu-west-1/53c18272-75bc-42c1-b946-79076231e889",
        ),
        (
            "KP-KEY-MATERIAL-AGE",
            "eu-west-1/53c18272-75bc-42c1-b946-79076231e889",
        ),
        // 2: the SNS key policy is public.
        (
            "KP-KEY-NO-PUBLIC-ACCESS",
            "eu-west-1/cf09be01-6f45-46b9-abd3-b15222985778",
        ),
        // 3: a key pending deletion still protects a volume. (With the self-test, as in the
        // demo, KP-KEY-SELFTEST and KP-RES-DATA-RECOVERABLE fail on them too; the sample
        // snapshot itself carries no self-test.)
        ("KP-KEY-PENDING-DELETION-UNUSED", legacy_ebs),
        ("KP-RES-KEY-ACTIVE", legacy_volume),
        // 4: a production database on the development key.
        (
            "KP-RES-KEY-ENVIRONMENT",
            "eu-west-1/db-C5D8F1G4H7J2K6L9M3N0P8Q5RS",
        ),
        ("KP-KEY-NO-SHARED-ENVIRONMENTS", dev_rds),
        ("KP-KEY-CROSS-ACCOUNT-ALLOWED", dev_rds),
        // 5: the development trail does not validate its log files.
        ("KP-TRAIL-LOG-VALIDATION", "eu-west-1/northwind-dev-trail"),
        // 6: an unencrypted queue.
        (
            "KP-RES-ENCRYPTED",
            "eu-west-1/https://sqs.eu-west-1.amazonaws.com/111122223333/payments-retry-queue",
        ),
        // 7: the DR key store is disconnected.
        ("KP-CKS-CONNECTED", "eu-central-1/cks-7ddd31c992da5be08"),
        // 10: the cardholder key in CloudHSM was never re-keyed.
        (
            "KP-KEY-MANUAL-ROTATION",
            "eu-west-1/3a087713-3883-4fa6-8f1b-c23c19fc9bd9",
        ),
        // 11: two of the main region's CloudTrail log files were damaged after delivery (their
        // digests record other hashes).
        (
            "KP-REGION-LOG-INTEGRITY",
            "eu-west-1/111122223333/eu-west-1",
        ),
    ]
    .iter()
    .map(|(c, r)| (c.to_string(), r.to_string()))
    .collect();
    expected.sort();
    assert_eq!(fails, expected);
    // 8 and 9 are gaps: ERROR, never FAIL or PASS.
    assert_eq!(
        status(&f, "KP-KEY-ROTATION-ENABLED", PROD_SECRETS),
        Status::Error
    );
    assert!(f.iter().any(|x| x.region == "ap-southeast-2"
        && x.control_id == "KP-KEY-NO-PUBLIC-ACCESS"
        && x.status == Status::Error));
}

#[test]
fn aws_managed_keys_are_not_applicable_to_customer_key_controls() {
    let f = run(&sample_estate());
    let na = f
        .iter()
        .filter(|x| x.control_id == "KP-KEY-ROTATION-ENABLED" && x.status == Status::NotApplicable)
        .count();
    assert!(na >= 2, "AWS managed and asymmetric keys are out of scope");
}

#[test]
fn attestation_controls_are_manual() {
    let f = run(&sample_estate());
    let manual: Vec<&Finding> = f
        .iter()
        .filter(|x| x.status == Status::Manual && x.control_id.starts_with("KP-ATTEST-"))
        .collect();
    assert_eq!(manual.len(), 5);
    assert!(manual.iter().all(|m| m.resource_id == "attestation"));
    // Review controls are MANUAL only where there is something to review.
    let reviews: Vec<&str> = f
        .iter()
        .filter(|x| x.status == Status::Manual && x.control_id == "KP-KEY-SUBSTITUTION-REVIEW")
        .map(|x| x.resource_id.as_str())
        .collect();
    assert_eq!(reviews.len(), 3, "{reviews:?}");
    assert!(
        reviews.contains(&SNS_ALERTS),
        "its policy was changed: {reviews:?}"
    );
}

#[test]
fn resource_scoped_gap_makes_that_key_error_never_pass() {
    let f = run(&sample_estate());
    let finding = f
        .iter()
        .find(|x| x.control_id == "KP-KEY-ROTATION-ENABLED" && x.resource_id == PROD_SECRETS)
        .expect("finding");
    assert_eq!(finding.status, Status::Error);
    assert!(
        finding.detail.contains("ThrottlingException"),
        "{}",
        finding.detail
    );
    // Controls that do not need rotation evidence are unaffected by that gap.
    assert_eq!(status(&f, "KP-KEY-STRONG-SPEC", PROD_SECRETS), Status::Pass);
}

#[test]
fn region_gap_gives_error_for_the_region_and_names_the_api() {
    let f = run(&sample_estate());
    let errs: Vec<&Finding> = f
        .iter()
        .filter(|x| {
            x.control_id == "KP-KEY-ROTATION-ENABLED"
                && x.region == "ap-southeast-2"
                && x.account_id == "111122223333"
        })
        .collect();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].status, Status::Error);
    assert!(
        errs[0].detail.contains("kms:ListKeys"),
        "{}",
        errs[0].detail
    );
    assert!(errs[0].detail.contains("AccessDeniedException"));
    // Trails there were collected: the region's logging control is judged normally.
    let logged = f
        .iter()
        .find(|x| {
            x.control_id == "KP-REGION-KMS-EVENTS-LOGGED"
                && x.region == "ap-southeast-2"
                && x.account_id == "111122223333"
        })
        .expect("region finding");
    assert_eq!(logged.status, Status::Pass);
}

#[test]
fn null_evidence_is_error_not_pass() {
    let mut s = sample_estate();
    let key = key_mut(&mut s, PROD_EBS);
    key.rotation.as_mut().expect("rotation").period_days = None;
    let f = run(&s);
    let finding = f
        .iter()
        .find(|x| x.control_id == "KP-KEY-ROTATION-PERIOD" && x.resource_id == PROD_EBS)
        .expect("finding");
    assert_eq!(finding.status, Status::Error, "{}", finding.detail);
}

#[test]
fn unparseable_policy_is_error_not_pass() {
    let mut s = sample_estate();
    key_mut(&mut s, SNS_ALERTS).policy = Some("{ not json".into());
    let f = run(&s);
    assert_eq!(
        status(&f, "KP-KEY-NO-PUBLIC-ACCESS", SNS_ALERTS),
        Status::Error
    );
}

#[test]
fn a_new_gap_turns_passing_controls_into_errors() {
    let mut s = sample_estate();
    s.gaps.push(Gap {
        account_id: "111122223333".into(),
        region: "eu-west-1".into(),
        service: "kms".into(),
        api: "GetKeyPolicy".into(),
        evidence: EvidenceKind::KmsKeyPolicy,
        resource_arn: None,
        error_code: "AccessDeniedException".into(),
        message: "denied".into(),
    });
    let f = run(&s);
    assert_eq!(
        status(&f, "KP-KEY-NO-PUBLIC-ACCESS", PROD_SECRETS),
        Status::Error
    );
    // Controls that do not need the policy still pass.
    assert_eq!(
        status(&f, "KP-KEY-ROTATION-ENABLED", PROD_EBS),
        Status::Pass
    );
}

#[test]
fn region_in_scope_without_evidence_or_gap_is_error() {
    let mut s = sample_estate();
    s.scope.regions.push("us-east-1".into());
    let f = run(&s);
    let missing: Vec<&Finding> = f.iter().filter(|x| x.region == "us-east-1").collect();
    assert!(!missing.is_empty());
    assert!(missing.iter().all(|x| x.status == Status::Error));
    assert!(missing[0].detail.contains("no evidence was collected"));
}

#[test]
fn evaluation_is_deterministic() {
    assert_eq!(run(&sample_estate()), run(&sample_estate()));
}

#[test]
fn synthetic_estate_evaluates_with_every_verdict_but_manual_on_resources() {
    let s = keyproof::snapshot::synthetic::synthetic_estate(500);
    let f = run(&s);
    for st in [
        Status::Pass,
        Status::Fail,
        Status::NotApplicable,
        Status::Manual,
    ] {
        assert!(f.iter().any(|x| x.status == st), "no {st} in synthetic run");
    }
}
