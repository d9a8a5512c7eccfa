//! The typed KMS event record every source produces, and the borrowed CloudTrail record shape it
//! is read from (only the fields keyproof uses; everything else in a record is skipped).

use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// The event source of KMS records.
pub const KMS_SOURCE: &str = "kms.amazonaws.com";

/// One KMS event, as the analysis needs it. Read from a log file it borrows the file's buffer
/// (no copy of any field: this runs once per KMS event); [`KmsRecord::into_owned`] detaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsRecord<'a> {
    pub event_id: Cow<'a, str>,
    pub event_time: DateTime<Utc>,
    pub event_name: Cow<'a, str>,
    pub region: Cow<'a, str>,
    /// The account whose trail recorded the event (`recipientAccountId`).
    pub account: Option<Cow<'a, str>>,
    /// `userIdentity.type`: Root, IAMUser, AssumedRole, AWSService, AWSAccount, ...
    pub identity_type: Option<Cow<'a, str>>,
    /// The caller: the role session's issuer for an assumed role (so that sessions of one role
    /// count as one principal), else `userIdentity.arn`, else the invoking service.
    pub principal: Option<Cow<'a, str>>,
    /// The caller's account (`userIdentity.accountId`).
    pub principal_account: Option<Cow<'a, str>>,
    pub source_ip: Option<Cow<'a, str>>,
    /// The key: `resources[].ARN` of type `AWS::KMS::Key`, else `requestParameters.keyId`.
    pub key: Option<Cow<'a, str>>,
    pub error_code: Option<Cow<'a, str>>,
    /// Which of the fields PCI DSS 10.2.2 asks for the record carries.
    pub fields: RequiredFields,
}

fn detach(v: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    v.map(|s| Cow::Owned(s.into_owned()))
}

fn text(v: &Option<Cow<'_, str>>) -> Option<String> {
    v.as_deref().map(str::to_string)
}

impl KmsRecord<'_> {
    /// The record with every field copied, free of the buffer it was read from.
    pub fn into_owned(self) -> KmsRecord<'static> {
        KmsRecord {
            event_id: Cow::Owned(self.event_id.into_owned()),
            event_time: self.event_time,
            event_name: Cow::Owned(self.event_name.into_owned()),
            region: Cow::Owned(self.region.into_owned()),
            account: detach(self.account),
            identity_type: detach(self.identity_type),
            principal: detach(self.principal),
            principal_account: detach(self.principal_account),
            source_ip: detach(self.source_ip),
            key: detach(self.key),
            error_code: detach(self.error_code),
            fields: self.fields,
        }
    }

    /// `account/region` of the trail that recorded the event: the recipient account, else the
    /// key's, else the caller's.
    pub fn account_region(&self) -> String {
        let mut out = String::new();
        self.write_account_region(&mut out);
        out
    }

    /// [`KmsRecord::account_region`] appended to `out` (no allocation when it has room).
    pub fn write_account_region(&self, out: &mut String) {
        let account = self
            .account
            .as_deref()
            .or_else(|| self.key_account())
            .or(self.principal_account.as_deref())
            .unwrap_or("unknown");
        out.push_str(account);
        out.push('/');
        out.push_str(&self.region);
    }

    /// The key's account, from its ARN.
    pub fn key_account(&self) -> Option<&str> {
        arn_account(self.key.as_deref()?)
    }

    pub fn failed(&self) -> bool {
        self.error_code.is_some()
    }

    /// A compact reference for a finding's evidence.
    pub fn evidence(&self) -> EventRef {
        EventRef {
            event_id: self.event_id.to_string(),
            event_time: self.event_time,
            event_name: self.event_name.to_string(),
            principal: text(&self.principal),
            source_ip: text(&self.source_ip),
            key: text(&self.key),
            error_code: text(&self.error_code),
        }
    }
}

/// An RFC 3339 event time. CloudTrail writes `2026-11-01T09:10:42Z`, which is read directly;
/// any other form (fractions, offsets, lowercase) goes to chrono's parser.
fn event_time(text: &str) -> Option<DateTime<Utc>> {
    cloudtrail_time(text).or_else(|| {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` exactly, or `None` (then chrono decides, and refuses what is not a
/// date: a day 30 in February, a leap second it does not accept).
fn cloudtrail_time(text: &str) -> Option<DateTime<Utc>> {
    let b: &[u8; 20] = text.as_bytes().try_into().ok()?;
    let shape = b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    if !shape {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0, 4)?).ok()?,
        number(5, 7)?,
        number(8, 10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?)?;
    Some(date.and_time(time).and_utc())
}

/// The account id of an ARN (`arn:partition:service:region:account:...`).
pub fn arn_account(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    // Partition, service and region come before the account; the analysis asks this of every
    // record, so the colons are found in one pass rather than by a search each.
    let mut colons = rest
        .bytes()
        .enumerate()
        .filter_map(|(i, b)| (b == b':').then_some(i));
    let start = colons.nth(2)? + 1;
    let end = colons.next().unwrap_or(rest.len());
    let account = &rest[start..end];
    (!account.is_empty()).then_some(account)
}

/// An event cited as evidence of a detection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventRef {
    pub event_time: DateTime<Utc>,
    pub event_id: String,
    pub event_name: String,
    pub principal: Option<String>,
    pub source_ip: Option<String>,
    pub key: Option<String>,
    pub error_code: Option<String>,
}

/// The PCI DSS 10.2.2 fields (v3.2.1 10.3.1–10.3.6) a record carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredFields {
    /// User identification: `userIdentity` with an ARN, a principal id or the invoking service
    /// (AWS's own events, such as a scheduled `RotateKey`, carry no identity type).
    pub identity: bool,
    /// Type of event: `eventName` and `eventSource`.
    pub event_type: bool,
    /// Date and time: a parseable `eventTime`.
    pub time: bool,
    /// Success or failure: `errorCode` or `responseElements` present.
    pub outcome: bool,
    /// Origination: `sourceIPAddress`.
    pub origin: bool,
    /// Identity of the affected resource: a key ARN in `resources`, or `requestParameters.keyId`.
    pub resource: bool,
}

impl RequiredFields {
    /// The names of the fields the record lacks, in the order of PCI DSS 10.2.2.
    pub fn missing(&self) -> Vec<&'static str> {
        [
            (self.identity, "identity"),
            (self.event_type, "event_type"),
            (self.time, "time"),
            (self.outcome, "outcome"),
            (self.origin, "origin"),
            (self.resource, "resource"),
        ]
        .into_iter()
        .filter_map(|(present, name)| (!present).then_some(name))
        .collect()
    }

    pub fn all(&self) -> bool {
        self.identity
            && self.event_type
            && self.time
            && self.outcome
            && self.origin
            && self.resource
    }
}

/// A CloudTrail record as written in log files and in LookupEvents' `CloudTrailEvent`, borrowing
/// from the input where no escapes need decoding.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRecord<'a> {
    #[serde(borrow, rename = "eventID")]
    pub event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub event_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub event_source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub event_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub aws_region: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub recipient_account_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "sourceIPAddress")]
    pub source_ip_address: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub error_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub user_identity: Option<RawIdentity<'a>>,
    #[serde(borrow)]
    pub request_parameters: Option<RawRequest<'a>>,
    #[serde(default, deserialize_with = "present")]
    pub response_elements: bool,
    #[serde(borrow, default)]
    pub resources: Option<Vec<RawResource<'a>>>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawIdentity<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub principal_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub account_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub invoked_by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub session_context: Option<RawSession<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSession<'a> {
    #[serde(borrow)]
    pub session_issuer: Option<RawIssuer<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawIssuer<'a> {
    #[serde(borrow)]
    pub arn: Option<Cow<'a, str>>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRequest<'a> {
    #[serde(borrow)]
    pub key_id: Option<Cow<'a, str>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub struct RawResource<'a> {
    #[serde(borrow, rename = "ARN")]
    pub arn: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
}

/// True when the field is present, whatever its value (`null` included).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d)?;
    Ok(true)
}

/// The field when present and not empty, still borrowing the buffer.
fn given<'a>(v: &Option<Cow<'a, str>>) -> Option<Cow<'a, str>> {
    v.as_ref().filter(|s| !s.is_empty()).cloned()
}

impl<'a> RawRecord<'a> {
    pub fn is_kms(&self) -> bool {
        self.event_source.as_deref() == Some(KMS_SOURCE)
    }

    /// The typed record. Without a parseable event time the record gets the earliest
    /// representable time and `fields.time == false`; the analysis counts it but does not place
    /// it on the timeline.
    pub fn to_record(&self) -> KmsRecord<'a> {
        let time = self.event_time.as_deref().and_then(event_time);
        let identity = self.user_identity.as_ref();
        let issuer = identity
            .and_then(|i| i.session_context.as_ref())
            .and_then(|s| s.session_issuer.as_ref())
            .and_then(|s| given(&s.arn));
        let principal = issuer
            .or_else(|| identity.and_then(|i| given(&i.arn)))
            .or_else(|| identity.and_then(|i| given(&i.invoked_by)));
        let key = self
            .resources
            .iter()
            .flatten()
            .find(|r| r.kind.as_deref() == Some("AWS::KMS::Key"))
            .and_then(|r| given(&r.arn))
            .or_else(|| {
                self.request_parameters
                    .as_ref()
                    .and_then(|p| given(&p.key_id))
            });
        let fields = RequiredFields {
            // AWS's own events (a scheduled RotateKey) name only the account and the invoking
            // service, with no type: the service is their user identification.
            identity: identity.is_some_and(|i| {
                i.arn.is_some() || i.principal_id.is_some() || i.invoked_by.is_some()
            }),
            event_type: self.event_name.is_some() && self.event_source.is_some(),
            time: time.is_some(),
            outcome: self.error_code.is_some() || self.response_elements,
            origin: self
                .source_ip_address
                .as_deref()
                .is_some_and(|s| !s.is_empty()),
            resource: key.is_some(),
        };
        KmsRecord {
            event_id: given(&self.event_id).unwrap_or_default(),
            event_time: time.unwrap_or(DateTime::<Utc>::MIN_UTC),
            event_name: given(&self.event_name).unwrap_or(Cow::Borrowed("<unnamed>")),
            region: given(&self.aws_region).unwrap_or_default(),
            account: given(&self.recipient_account_id),
            identity_type: identity.and_then(|i| given(&i.kind)),
            principal,
            principal_account: identity.and_then(|i| given(&i.account_id)),
            source_ip: given(&self.source_ip_address),
            key,
            error_code: given(&self.error_code),
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_read_directly_agree_with_chrono() {
        let chrono = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        let cases = [
            "2026-11-01T09:10:42Z",
            "2024-02-29T23:59:59Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T23:60:00Z",
            "2026-12-31T23:59:60Z",
            "2026-11-01t09:10:42z",
            "2026-11-01T09:10:42.5Z",
            "2026-11-01T09:10:42+01:00",
            "2026-11-01 09:10:42Z",
            "2026-11-0a-09:10:42Z",
            "+026-11-01T09:10:42Z",
            "",
        ];
        for t in cases {
            assert_eq!(event_time(t), chrono(t), "{t}");
            if cloudtrail_time(t).is_some() {
                assert_eq!(cloudtrail_time(t), chrono(t), "{t}");
            }
        }
        assert!(cloudtrail_time("2026-11-01T09:10:42Z").is_some());
    }

    #[test]
    fn the_account_of_an_arn_is_its_fifth_field() {
        let cases = [
            (
                "arn:aws:kms:eu-west-1:111122223333:key/k",
                Some("111122223333"),
            ),
            ("arn:aws:iam::111122223333:role/app", Some("111122223333")),
            (
                "arn:aws-cn:kms:cn-north-1:444455556666",
                Some("444455556666"),
            ),
            ("arn:aws:s3:::bucket/key:with:colons", None),
            ("arn:aws:kms:eu-west-1:", None),
            ("arn:aws:kms", None),
            ("alias/app", None),
            ("1234abcd-12ab-34cd-56ef-1234567890ab", None),
        ];
        for (arn, account) in cases {
            assert_eq!(arn_account(arn), account, "{arn}");
        }
    }

    #[test]
    fn aws_service_events_without_an_identity_type_are_identified() {
        // A scheduled rotation, as AWS documents its CloudTrail entry.
        let rotate = r#"{"eventVersion":"1.11","userIdentity":{"accountId":"111122223333","invokedBy":"AWS Internal"},"eventTime":"2025-05-20T20:44:37Z","eventSource":"kms.amazonaws.com","eventName":"RotateKey","awsRegion":"us-west-2","sourceIPAddress":"AWS Internal","userAgent":"AWS Internal","requestParameters":null,"responseElements":null,"eventID":"a24b3967-ddad-417f-9b22-2332b918db06","readOnly":false,"resources":[{"accountId":"111122223333","type":"AWS::KMS::Key","ARN":"arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}],"eventType":"AwsServiceEvent","managementEvent":true,"recipientAccountId":"111122223333"}"#;
        let raw: RawRecord<'_> = serde_json::from_str(rotate).expect("record");
        let record = raw.to_record();
        assert!(record.fields.all(), "{:?}", record.fields.missing());
        assert_eq!(record.principal.as_deref(), Some("AWS Internal"));

        // Without anything naming the caller, identity is missing.
        let anonymous = rotate.replace(r#""invokedBy":"AWS Internal""#, r#""x":1"#);
        let raw: RawRecord<'_> = serde_json::from_str(&anonymous).expect("record");
        assert_eq!(raw.to_record().fields.missing(), vec!["identity"]);
    }
}
