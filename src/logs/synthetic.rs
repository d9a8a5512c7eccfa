//! Realistic CloudTrail log files with known content, for the tests and the benchmark.
//!
//! The files follow CloudTrail's layout and record shapes: gzip JSON `{"Records":[...]}` under
//! `AWSLogs/<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/`, mixed services (S3 data events,
//! EC2, STS, Lambda, DynamoDB) with KMS a minority, as in real trails. Some non-KMS records
//! mention `kms.amazonaws.com` (a service acting for KMS), so the parser's pre-filter is
//! exercised. With `anomalies`, one of each detection is injected at known times with known
//! event ids, plus one truncated and one malformed file, and [`Expected`] says exactly what an
//! analysis must find. Output is deterministic for a seed.

use super::analysis::DetectionKind;
use chrono::{DateTime, Duration, Utc};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub account: String,
    pub regions: Vec<String>,
    /// The first hour.
    pub start: DateTime<Utc>,
    pub hours: u32,
    /// Files per hour and region.
    pub files_per_hour: u32,
    pub records_per_file: usize,
    /// Share of KMS records, in percent.
    pub kms_percent: u32,
    pub seed: u64,
    pub anomalies: bool,
    /// Also write hourly digest files per region, signed with a key generated from the seed,
    /// each with its hex signature beside it as `<digest>.sig` (where S3 keeps it as object
    /// metadata; `tests/moto/s3.py upload` puts it there).
    pub digests: bool,
    /// The bucket the digests say they were delivered to.
    pub bucket: String,
}

impl Spec {
    /// A small estate: two regions, a day, about 30 000 records.
    pub fn small(start: DateTime<Utc>) -> Spec {
        Spec {
            account: ACCOUNT.into(),
            regions: vec!["eu-west-1".into(), "us-east-1".into()],
            start,
            hours: 24,
            files_per_hour: 3,
            records_per_file: 200,
            kms_percent: 15,
            seed: 7,
            anomalies: true,
            digests: true,
            bucket: "trail-bucket".into(),
        }
    }

    /// The end of the generated period.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::hours(i64::from(self.hours))
    }
}

/// The account of the generated estate.
pub const ACCOUNT: &str = "111122223333";
/// The account of the injected cross-account caller.
pub const FOREIGN_ACCOUNT: &str = "444455556666";
/// The address of the injected call from outside the allowed ranges (TEST-NET-2).
pub const OUTSIDE_IP: &str = "198.51.100.23";

/// What an analysis of the generated files must find.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// Log files written, broken ones included.
    pub files: u64,
    /// Records in the readable files.
    pub records: u64,
    /// KMS records in the readable files.
    pub kms_events: u64,
    /// JSON bytes of the readable files.
    pub json_bytes: u64,
    /// Bytes on disk of all files.
    pub stored_bytes: u64,
    /// The deliberately broken files (paths relative to the output directory).
    pub broken_files: Vec<String>,
    /// Each injected detection: kind, the id of its first event, its event count.
    pub detections: Vec<(DetectionKind, String, u64)>,
    /// The digest files written, oldest first per region (paths relative to the output).
    pub digest_files: Vec<String>,
    /// The digest signing key's public half as `aws cloudtrail list-public-keys` prints it.
    pub public_keys_json: String,
}

/// Deterministic pseudo-random numbers (SplitMix64).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn uuid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// One KMS call to render.
#[derive(Debug, Clone)]
struct KmsCall<'a> {
    id: String,
    time: DateTime<Utc>,
    name: &'a str,
    region: &'a str,
    identity: Identity<'a>,
    source_ip: &'a str,
    key: String,
    error: Option<&'a str>,
}

#[derive(Debug, Clone, Copy)]
enum Identity<'a> {
    /// An assumed role of `account` named `role`, optionally invoked by a service.
    Role {
        account: &'a str,
        role: &'a str,
        invoked_by: Option<&'a str>,
    },
    Root {
        account: &'a str,
    },
}

fn identity_json(out: &mut String, identity: Identity<'_>) {
    match identity {
        Identity::Role {
            account,
            role,
            invoked_by,
        } => {
            let _ = write!(
                out,
                r#""userIdentity":{{"type":"AssumedRole","principalId":"AROA5EXAMPLE{role}:session","arn":"arn:aws:sts::{account}:assumed-role/{role}/session-1","accountId":"{account}","accessKeyId":"ASIA5EXAMPLEKEY","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROA5EXAMPLE{role}","arn":"arn:aws:iam::{account}:role/{role}","accountId":"{account}","userName":"{role}"}},"attributes":{{"creationDate":"2026-11-01T00:00:00Z","mfaAuthenticated":"false"}}}}"#
            );
            if let Some(by) = invoked_by {
                let _ = write!(out, r#","invokedBy":"{by}""#);
            }
            out.push('}');
        }
        Identity::Root { account } => {
            let _ = write!(
                out,
                r#""userIdentity":{{"type":"Root","principalId":"{account}","arn":"arn:aws:iam::{account}:root","accountId":"{account}","accessKeyId":"ASIA5EXAMPLEROOT","sessionContext":{{"attributes":{{"creationDate":"2026-11-01T00:00:00Z","mfaAuthenticated":"true"}}}}}}"#
            );
        }
    }
}

fn kms_json(out: &mut String, c: &KmsCall<'_>, rng: &mut Rng) {
    out.push_str(r#"{"eventVersion":"1.09","#);
    identity_json(out, c.identity);
    let time = c.time.format("%Y-%m-%dT%H:%M:%SZ");
    let (name, region, ip, key) = (c.name, c.region, c.source_ip, &c.key);
    let agent = if ip.ends_with(".amazonaws.com") {
        ip.to_string()
    } else {
        "aws-sdk-java/2.25.11 Linux/5.10.210-201.852.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/standard".to_string()
    };
    let _ = write!(
        out,
        r#","eventTime":"{time}","eventSource":"kms.amazonaws.com","eventName":"{name}","awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":"{agent}""#
    );
    if let Some(code) = c.error {
        let _ = write!(
            out,
            r#","errorCode":"{code}","errorMessage":"The request was rejected: {code} (key {key})""#
        );
    }
    let obj = rng.below(1_000_000);
    let _ = write!(
        out,
        r#","requestParameters":{{"keyId":"{key}","encryptionContext":{{"aws:s3:arn":"arn:aws:s3:::cardholder-data-{region}/batch/2026/obj-{obj}.parquet"}},"encryptionAlgorithm":"SYMMETRIC_DEFAULT"}},"responseElements":null,"requestID":"{}","eventID":"{}","readOnly":true,"resources":[{{"accountId":"{}","type":"AWS::KMS::Key","ARN":"{key}"}}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{}","eventCategory":"Management","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"kms.{region}.amazonaws.com"}}}}"#,
        rng.uuid(),
        c.id,
        key_account(key),
        key_account(key),
    );
}

fn key_account(key: &str) -> &str {
    key.split(':').nth(4).unwrap_or(ACCOUNT)
}

/// A record of another service (the majority of a trail).
fn other_json(out: &mut String, rng: &mut Rng, time: DateTime<Utc>, region: &str, account: &str) {
    let time = time.format("%Y-%m-%dT%H:%M:%SZ");
    let id = rng.uuid();
    let req = rng.uuid();
    let ip = format!(
        "10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.below(256)
    );
    let identity = Identity::Role {
        account,
        role: "app-api",
        invoked_by: None,
    };
    out.push_str(r#"{"eventVersion":"1.09","#);
    identity_json(out, identity);
    match rng.below(6) {
        0 | 1 => {
            let obj = rng.below(10_000_000);
            let bytes = rng.below(5_000_000);
            let _ = write!(
                out,
                r#","eventTime":"{time}","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":"[aws-sdk-java/2.25.11 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS]","requestParameters":{{"bucketName":"cardholder-data-{region}","Host":"cardholder-data-{region}.s3.{region}.amazonaws.com","key":"batch/2026/obj-{obj}.parquet","x-id":"GetObject"}},"responseElements":null,"additionalEventData":{{"SignatureVersion":"SigV4","CipherSuite":"TLS_AES_128_GCM_SHA256","bytesTransferredIn":0,"SSEApplied":"SSE_KMS","AuthenticationMethod":"AuthHeader","x-amz-id-2":"Zm9vYmFyYmF6cXV4\/quux+corge==","bytesTransferredOut":{bytes}}},"requestID":"{req}","eventID":"{id}","readOnly":true,"resources":[{{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::cardholder-data-{region}/batch/2026/obj-{obj}.parquet"}},{{"accountId":"{account}","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::cardholder-data-{region}"}}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"{account}","eventCategory":"Data","tlsDetails":{{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"cardholder-data-{region}.s3.{region}.amazonaws.com"}}}}"#
            );
        }
        2 => {
            let _ = write!(
                out,
                r#","eventTime":"{time}","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":"aws-cli/2.15.30 Python/3.11.8 Linux/6.1 exe/x86_64.amzn.2023 prompt/off command/ec2.describe-instances","requestParameters":{{"instancesSet":{{}},"filterSet":{{"items":[{{"name":"tag:Environment","valueSet":{{"items":[{{"value":"prod"}}]}}}},{{"name":"instance-state-name","valueSet":{{"items":[{{"value":"running"}},{{"value":"stopped"}}]}}}}]}}}},"responseElements":null,"requestID":"{req}","eventID":"{id}","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{account}","eventCategory":"Management"}}"#
            );
        }
        3 => {
            // STS on behalf of KMS: mentions kms.amazonaws.com without being a KMS event.
            let _ = write!(
                out,
                r#","eventTime":"{time}","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","awsRegion":"{region}","sourceIPAddress":"kms.amazonaws.com","userAgent":"kms.amazonaws.com","requestParameters":{{"roleArn":"arn:aws:iam::{account}:role/app-api","roleSessionName":"session-{req}","durationSeconds":3600}},"responseElements":{{"credentials":{{"accessKeyId":"ASIA5EXAMPLEKEY","sessionToken":"IQoJb3JpZ2luX2VjEXAMPLETOKEN\u002b\u002fvalue","expiration":"Nov 28, 2026, 11:00:00 AM"}},"assumedRoleUser":{{"assumedRoleId":"AROA5EXAMPLE:session","arn":"arn:aws:sts::{account}:assumed-role/app-api/session-1"}}}},"requestID":"{req}","eventID":"{id}","readOnly":true,"resources":[{{"accountId":"{account}","type":"AWS::IAM::Role","ARN":"arn:aws:iam::{account}:role/app-api"}}],"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{account}","sharedEventID":"{req}","eventCategory":"Management"}}"#
            );
        }
        4 => {
            let _ = write!(
                out,
                r#","eventTime":"{time}","eventSource":"lambda.amazonaws.com","eventName":"Invoke","awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":"aws-sdk-go-v2/1.26.0 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/lambda#1.53.1","requestParameters":{{"functionName":"arn:aws:lambda:{region}:{account}:function:tokenize-pan","invocationType":"RequestResponse","payload":"{{\"order\":\"{req}\",\"note\":\"quotes \\\" and braces {{[ inside a string\"}}"}},"responseElements":null,"additionalEventData":{{"functionVersion":"arn:aws:lambda:{region}:{account}:function:tokenize-pan:$LATEST"}},"requestID":"{req}","eventID":"{id}","readOnly":false,"resources":[{{"accountId":"{account}","type":"AWS::Lambda::Function","ARN":"arn:aws:lambda:{region}:{account}:function:tokenize-pan"}}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"{account}","eventCategory":"Data"}}"#
            );
        }
        _ => {
            let item = rng.below(1_000_000);
            let _ = write!(
                out,
                r#","eventTime":"{time}","eventSource":"dynamodb.amazonaws.com","eventName":"GetItem","awsRegion":"{region}","sourceIPAddress":"{ip}","userAgent":"aws-sdk-java/2.25.11","requestParameters":{{"tableName":"payment-tokens","key":{{"token_id":"tok-{item}"}},"consistentRead":false,"projectionExpression":"token_id, last4, expiry"}},"responseElements":null,"requestID":"{req}","eventID":"{id}","readOnly":true,"resources":[{{"accountId":"{account}","type":"AWS::DynamoDB::Table","ARN":"arn:aws:dynamodb:{region}:{account}:table/payment-tokens"}}],"eventType":"AwsApiCall","apiVersion":"2012-08-10","managementEvent":false,"recipientAccountId":"{account}","eventCategory":"Data"}}"#
            );
        }
    }
}

fn key_arn(region: &str, n: u64) -> String {
    format!("arn:aws:kms:{region}:{ACCOUNT}:key/0000{n:04}-1111-2222-3333-444455556666")
}

/// A normal KMS call: steady in-account principals from inside the network or through S3.
fn normal_call<'a>(
    rng: &mut Rng,
    time: DateTime<Utc>,
    region: &'a str,
    ip: &'a str,
) -> KmsCall<'a> {
    let key = key_arn(region, rng.below(8));
    let roll = rng.below(1000);
    let (name, identity, source_ip, error) = match roll {
        0..=599 => (
            if roll.is_multiple_of(3) {
                "GenerateDataKey"
            } else {
                "Decrypt"
            },
            Identity::Role {
                account: ACCOUNT,
                role: "app-api",
                invoked_by: None,
            },
            ip,
            None,
        ),
        600..=949 => (
            "Decrypt",
            Identity::Role {
                account: ACCOUNT,
                role: "reporting",
                invoked_by: Some("s3.amazonaws.com"),
            },
            "s3.amazonaws.com",
            None,
        ),
        950..=994 => (
            "Encrypt",
            Identity::Role {
                account: ACCOUNT,
                role: "batch",
                invoked_by: None,
            },
            ip,
            None,
        ),
        995..=997 => (
            "CreateGrant",
            Identity::Role {
                account: ACCOUNT,
                role: "ebs-attach",
                invoked_by: Some("ec2.amazonaws.com"),
            },
            "ec2.amazonaws.com",
            None,
        ),
        _ => (
            "Decrypt",
            Identity::Role {
                account: ACCOUNT,
                role: "app-api",
                invoked_by: None,
            },
            ip,
            Some("InvalidCiphertextException"),
        ),
    };
    KmsCall {
        id: rng.uuid(),
        time,
        name,
        region,
        identity,
        source_ip,
        key,
        error,
    }
}

/// One file to write: its path, its records' JSON, and whether it is deliberately broken.
struct Planned {
    path: PathBuf,
    region: String,
    /// Hour index in the window.
    hour: u32,
    records: u64,
    kms: u64,
    breakage: Option<Breakage>,
}

#[derive(Clone, Copy)]
enum Breakage {
    TruncatedGzip,
    MalformedJson,
}

/// Injected anomalies, all in the first region, returned with the detections they must give.
fn anomalies<'a>(
    spec: &'a Spec,
    region: &'a str,
    rng: &mut Rng,
) -> (Vec<KmsCall<'a>>, Vec<(DetectionKind, String, u64)>) {
    let at = |h: i64, m: i64| spec.start + Duration::hours(h) + Duration::minutes(m);
    let role = |role: &'a str| Identity::Role {
        account: ACCOUNT,
        role,
        invoked_by: None,
    };
    let retired = key_arn(region, 9);
    let call = |id: &str, time, name: &'a str, identity, ip: &'a str, key: String, error| KmsCall {
        id: id.to_string(),
        time,
        name,
        region,
        identity,
        source_ip: ip,
        key,
        error,
    };
    let mut calls = vec![
        call(
            "anomaly-root-1",
            at(1, 10),
            "Decrypt",
            Identity::Root { account: ACCOUNT },
            "10.9.9.9",
            key_arn(region, 1),
            None,
        ),
        call(
            "anomaly-xacct-1",
            at(1, 20),
            "Decrypt",
            Identity::Role {
                account: FOREIGN_ACCOUNT,
                role: "partner-etl",
                invoked_by: None,
            },
            "10.44.0.1",
            key_arn(region, 2),
            None,
        ),
        call(
            "anomaly-ip-1",
            at(1, 30),
            "Decrypt",
            role("app-api"),
            OUTSIDE_IP,
            key_arn(region, 3),
            None,
        ),
        call(
            "anomaly-sched-1",
            at(2, 0),
            "ScheduleKeyDeletion",
            role("key-admin"),
            "10.1.1.1",
            retired.clone(),
            None,
        ),
        call(
            "anomaly-pending-1",
            at(2, 30),
            "Decrypt",
            role("legacy-app"),
            "10.2.2.2",
            retired.clone(),
            Some("KMSInvalidStateException"),
        ),
        call(
            "anomaly-pending-2",
            at(2, 31),
            "Decrypt",
            role("legacy-app"),
            "10.2.2.2",
            retired,
            Some("KMSInvalidStateException"),
        ),
        call(
            "anomaly-denied-1",
            at(3, 0),
            "Decrypt",
            role("intruder"),
            "10.3.3.3",
            key_arn(region, 4),
            Some("AccessDeniedException"),
        ),
    ];
    // The spike: the batch role's normal rate is a few calls an hour.
    let spike_hour = i64::from(spec.hours / 2);
    let per_hour =
        spec.files_per_hour as u64 * spec.records_per_file as u64 * u64::from(spec.kms_percent)
            / 100
            * spec.regions.len() as u64;
    let spike = 400 + 20 * per_hour * 45 / 1000;
    for i in 0..spike {
        calls.push(call(
            &format!("anomaly-spike-{i:05}"),
            at(spike_hour, (i % 60) as i64),
            "Encrypt",
            role("batch"),
            "10.5.5.5",
            key_arn(region, 5),
            None,
        ));
    }
    let _ = rng;
    let detections = vec![
        (DetectionKind::RootUse, "anomaly-root-1".to_string(), 1),
        (DetectionKind::UnusableKeyUse, "anomaly-pending-1".into(), 2),
        (DetectionKind::CrossAccountUse, "anomaly-xacct-1".into(), 1),
        (
            DetectionKind::SourceIpOutsideRanges,
            "anomaly-ip-1".into(),
            1,
        ),
        (DetectionKind::AccessDenied, "anomaly-denied-1".into(), 1),
        (
            DetectionKind::SensitiveAdminChange,
            "anomaly-sched-1".into(),
            1,
        ),
    ];
    (calls, detections)
}

/// One log file's JSON: `spec.records_per_file` records of the hour from `hour` (a share of them
/// KMS calls, as `spec` says), then the injected `calls`; and how many KMS records it holds.
fn render(
    spec: &Spec,
    mut rng: Rng,
    hour: DateTime<Utc>,
    region: &str,
    calls: &[&KmsCall<'_>],
) -> (String, u64) {
    let mut json = String::with_capacity(spec.records_per_file * 1400);
    json.push_str(r#"{"Records":["#);
    let mut kms = 0u64;
    for i in 0..spec.records_per_file {
        if i > 0 {
            json.push(',');
        }
        let time = hour + Duration::seconds(rng.below(3600) as i64);
        if rng.below(100) < u64::from(spec.kms_percent) {
            let ip = format!(
                "10.{}.{}.{}",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            );
            let c = normal_call(&mut rng, time, region, &ip);
            kms_json(&mut json, &c, &mut rng);
            kms += 1;
        } else {
            other_json(&mut json, &mut rng, time, region, &spec.account);
        }
    }
    for call in calls {
        json.push(',');
        kms_json(&mut json, call, &mut rng);
    }
    json.push_str("]}");
    (json, kms + calls.len() as u64)
}

/// Writes the files under `dir` and says what they hold.
pub fn write(dir: &Path, spec: &Spec) -> std::io::Result<Expected> {
    let mut rng = Rng(spec.seed);
    let mut expected = Expected::default();
    let (mut injected, detections) = if spec.anomalies {
        anomalies(spec, &spec.regions[0], &mut rng)
    } else {
        (Vec::new(), Vec::new())
    };
    if spec.anomalies {
        expected.detections = detections;
    }
    // The spike's count includes the batch role's normal calls in that hour, known only once
    // the files are planned; it is filled in below.
    let spike_hour = spec.start + Duration::hours(i64::from(spec.hours / 2));
    let mut batch_in_spike_hour = 0u64;
    injected.sort_by_key(|c| c.time);

    // Plan the files hour by hour (cheap), then render and compress them in parallel.
    type Job = (PathBuf, u32, u64, DateTime<Utc>, String, Option<Breakage>);
    let mut jobs: Vec<Job> = Vec::new();
    for h in 0..spec.hours {
        let hour = spec.start + Duration::hours(i64::from(h));
        for region in &spec.regions {
            for f in 0..spec.files_per_hour {
                let stamp =
                    hour + Duration::minutes(i64::from((f + 1) * 60 / (spec.files_per_hour + 1)));
                let day = hour.format("%Y/%m/%d");
                let name = format!(
                    "{}_CloudTrail_{region}_{}_{:016x}.json.gz",
                    spec.account,
                    stamp.format("%Y%m%dT%H%MZ"),
                    rng.next()
                );
                let path = PathBuf::from(format!(
                    "AWSLogs/{}/CloudTrail/{region}/{day}/{name}",
                    spec.account
                ));
                let breakage = match (spec.anomalies, h, f, region == &spec.regions[0]) {
                    (true, 4, 0, true) => Some(Breakage::TruncatedGzip),
                    (true, 5, 0, true) => Some(Breakage::MalformedJson),
                    _ => None,
                };
                jobs.push((path, h, rng.next(), hour, region.clone(), breakage));
            }
        }
    }
    // Injected calls go into the first intact file of their hour in the first region.
    let mut inject: Vec<Vec<&KmsCall<'_>>> = vec![Vec::new(); jobs.len()];
    for call in &injected {
        let hour_index = (call.time - spec.start).num_hours();
        let target = jobs.iter().position(|(_, h, _, _, region, breakage)| {
            breakage.is_none() && region == &spec.regions[0] && i64::from(*h) == hour_index
        });
        if let Some(target) = target {
            inject[target].push(call);
        }
    }

    // Each file is rendered, compressed, written and hashed in one step, so that only the files
    // being worked on are in memory, whatever the volume.
    type Written = (Planned, u64, u64, u64, String);
    let results: Vec<std::io::Result<Written>> = jobs
        .into_par_iter()
        .zip(inject.into_par_iter())
        .map(|((path, h, seed, hour, region, breakage), calls)| {
            let (json, kms) = render(spec, Rng(seed), hour, &region, &calls);
            let planned = Planned {
                region,
                path,
                hour: h,
                records: (spec.records_per_file + calls.len()) as u64,
                kms,
                breakage,
            };
            let full = dir.join(&planned.path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let delivered: std::borrow::Cow<'_, str> = match planned.breakage {
                Some(Breakage::MalformedJson) => {
                    // A doubled comma between two records, half way through the file.
                    let mut s = json.clone();
                    let boundary = r#"},{"eventVersion""#;
                    if let Some(at) = s[s.len() / 2..].find(boundary) {
                        s.insert(s.len() / 2 + at + 2, ',');
                    }
                    s.into()
                }
                _ => json.as_str().into(),
            };
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(delivered.as_bytes())?;
            let mut gz = enc.finish()?;
            if let Some(Breakage::TruncatedGzip) = planned.breakage {
                gz.truncate(gz.len() / 2);
            }
            std::fs::write(&full, &gz)?;
            let sha256 = {
                use sha2::Digest as _;
                hex::encode(sha2::Sha256::digest(json.as_bytes()))
            };
            let batch = if planned.breakage.is_none() {
                count_batch_in_hour(&json, spike_hour)
            } else {
                0
            };
            Ok((planned, gz.len() as u64, json.len() as u64, batch, sha256))
        })
        .collect();
    let mut delivered: Vec<(String, String)> = Vec::new();
    let mut planned = Vec::with_capacity(results.len());
    for r in results {
        let (p, stored, json_bytes, batch, sha) = r?;
        let path = p.path.to_string_lossy().into_owned();
        delivered.push((path.clone(), sha));
        expected.files += 1;
        expected.stored_bytes += stored;
        if p.breakage.is_some() {
            expected.broken_files.push(path);
        } else {
            expected.records += p.records;
            expected.kms_events += p.kms;
            expected.json_bytes += json_bytes;
            batch_in_spike_hour += batch;
        }
        planned.push(p);
    }
    expected.broken_files.sort();
    if spec.anomalies {
        expected.detections.push((
            DetectionKind::VolumeSpike,
            String::new(),
            batch_in_spike_hour,
        ));
    }
    if spec.digests {
        let hashes: std::collections::HashMap<String, String> = delivered.into_iter().collect();
        write_digests(dir, spec, &planned, &hashes, &mut expected)?;
    }
    Ok(expected)
}

/// A deterministic random source for the digest signing key (rand_core 0.6, as rsa uses).
struct KeyRng(Rng);

impl rsa::rand_core::RngCore for KeyRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.0.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Test data only: the key signs generated digests and is derived from the spec's seed.
impl rsa::rand_core::CryptoRng for KeyRng {}

/// The trail the generated digests belong to.
pub const TRAIL: &str = "pci-trail";

/// Hourly digests per region, chained and signed like CloudTrail's.
fn write_digests(
    dir: &Path,
    spec: &Spec,
    planned: &[Planned],
    hashes: &std::collections::HashMap<String, String>,
    expected: &mut Expected,
) -> std::io::Result<()> {
    use base64::Engine as _;
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let mut rng = KeyRng(Rng(spec.seed ^ 0xd16e57));
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(std::io::Error::other)?;
    let public_der = private
        .to_public_key()
        .to_pkcs1_der()
        .map_err(std::io::Error::other)?;
    let fingerprint = super::digest::fingerprint(public_der.as_bytes());
    expected.public_keys_json = serde_json::json!({
        "PublicKeyList": [{
            "Value": base64::engine::general_purpose::STANDARD.encode(public_der.as_bytes()),
            "ValidityStartTime": spec.start.to_rfc3339(),
            "ValidityEndTime": (spec.end() + Duration::days(30)).to_rfc3339(),
            "Fingerprint": fingerprint,
        }]
    })
    .to_string();
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(private);
    for region in &spec.regions {
        let mut previous: Option<(String, String, String)> = None; // key, sha256, signature
        for h in 0..spec.hours {
            let start = spec.start + Duration::hours(i64::from(h));
            let end = start + Duration::hours(1);
            let key = format!(
                "AWSLogs/{acct}/CloudTrail-Digest/{region}/{day}/{acct}_CloudTrail-Digest_{region}_{TRAIL}_{region}_{stamp}.json.gz",
                acct = spec.account,
                day = end.format("%Y/%m/%d"),
                stamp = end.format("%Y%m%dT%H%M%SZ"),
            );
            let logs: Vec<serde_json::Value> = planned
                .iter()
                .filter(|p| p.hour == h && &p.region == region)
                .map(|p| {
                    let path = p.path.to_string_lossy().into_owned();
                    serde_json::json!({
                        "s3Bucket": spec.bucket,
                        "s3Object": path,
                        "hashValue": hashes.get(&path).cloned().unwrap_or_default(),
                        "hashAlgorithm": "SHA-256",
                        "newestEventTime": (end - Duration::seconds(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        "oldestEventTime": start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    })
                })
                .collect();
            let end_text = end.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let content = serde_json::json!({
                "awsAccountId": spec.account,
                "digestStartTime": start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "digestEndTime": end_text,
                "digestS3Bucket": spec.bucket,
                "digestS3Object": key,
                "digestPublicKeyFingerprint": fingerprint,
                "digestSignatureAlgorithm": "SHA256withRSA",
                "newestEventTime": end_text,
                "oldestEventTime": start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "previousDigestS3Bucket": previous.as_ref().map(|_| spec.bucket.clone()),
                "previousDigestS3Object": previous.as_ref().map(|p| p.0.clone()),
                "previousDigestHashValue": previous.as_ref().map(|p| p.1.clone()),
                "previousDigestHashAlgorithm": previous.as_ref().map(|_| "SHA-256"),
                "previousDigestSignature": previous.as_ref().map(|p| p.2.clone()),
                "logFiles": logs,
            })
            .to_string();
            let sha = {
                use sha2::Digest as _;
                hex::encode(sha2::Sha256::digest(content.as_bytes()))
            };
            let message = format!(
                "{end_text}\n{}/{key}\n{sha}\n{}",
                spec.bucket,
                previous.as_ref().map(|p| p.2.as_str()).unwrap_or("null")
            );
            let signature = hex::encode(signer.sign(message.as_bytes()).to_vec());
            let full = dir.join(&key);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(content.as_bytes())?;
            std::fs::write(&full, enc.finish()?)?;
            std::fs::write(format!("{}.sig", full.display()), &signature)?;
            expected.digest_files.push(key.clone());
            previous = Some((key, sha, signature));
        }
    }
    Ok(())
}

/// KMS calls by the batch role in the hour starting at `hour` (the spike's full count).
fn count_batch_in_hour(json: &str, hour: DateTime<Utc>) -> u64 {
    let prefix = format!("\"eventTime\":\"{}", hour.format("%Y-%m-%dT%H:"));
    json.split(r#"{"eventVersion""#)
        .filter(|r| {
            r.contains(&prefix)
                && r.contains(r#""eventSource":"kms.amazonaws.com""#)
                && r.contains(":role/batch\"")
        })
        .count() as u64
}

/// The KMS activity of the embedded sample estate: [`Spec::small`] in its two trail regions over
/// the day before
/// `until`, analysed and digest-checked as `keyproof audit-logs --verify-digests` would, with
/// paths made relative so the result does not depend on where it was generated.
pub fn sample_audit(until: DateTime<Utc>) -> Result<super::AuditLogs, Box<dyn std::error::Error>> {
    // The sample estate's regions with a trail.
    let spec = Spec {
        regions: vec!["eu-west-1".into(), "eu-central-1".into()],
        ..Spec::small(until - Duration::hours(24))
    };
    let dir = tempfile::tempdir()?;
    let expected = write(dir.path(), &spec)?;
    let config = super::LogsConfig {
        allowed_source_cidrs: vec!["10.0.0.0/8".into()],
        ..super::LogsConfig::default()
    };
    let rules = super::Rules::new(spec.start, spec.end(), &[], &config)?;
    let store = super::LocalStore::new(dir.path().to_path_buf());
    let scan = super::scan(&store, &rules, true)?;
    let mut keys = super::digest::PublicKeys::default();
    keys.add_cli_json(expected.public_keys_json.as_bytes())?;
    let integrity = super::digest::verify(
        &store,
        &keys,
        spec.start,
        spec.end(),
        &scan.log_hashes,
        until,
    )?;
    let mut stats = scan.stats;
    stats.source = "sample CloudTrail log files (generated, fictitious)".into();
    for issue in &mut stats.issues {
        issue.file = super::source::logical_key(&issue.file).to_string();
    }
    Ok(super::AuditLogs {
        tool: "keyproof (sample)".into(),
        generated_at: until,
        scan: stats,
        activity: scan.activity.finish(&rules),
        integrity: Some(integrity),
    })
}
