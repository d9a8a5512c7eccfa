//! CloudTrail Lake as an event source: the analysis runs as SQL where the events are.
//!
//! For organisations whose logs outgrow one machine, keyproof does not download events. It runs
//! one query on the event data store (StartQuery), waits for it (DescribeQuery), and pages
//! through the result (GetQueryResults): one row per group of KMS events that are alike in
//! everything the analysis looks at — the recording account and region, the operation, the
//! caller's identity type, principal and account, the source IP, the key, the error code, the
//! hour, and whether the record carries the PCI DSS 10.2.2 identity and outcome fields. A row
//! carries the group's size and its first event (time and id), and goes into the same
//! [`Activity`] as records read from files (`Activity::add_n`), so counts, detections, volume
//! spikes and the report come out the same. The difference: a detection's evidence cites the
//! first event of each group, not every event (its count covers them all).
//!
//! Lake keeps no digest files, so log integrity stays unverified (the integrity control reports
//! ERROR, not PASS); verify the trail's S3 copy with `--verify-digests` for that. Lake also stores
//! a `null` `responseElements` as absent, so there an event's outcome (10.2.2) is read from
//! `errorCode` (a failure) or, without one, from its `eventType` (a completed call).
//!
//! Only the event data store id, checked to be an id, is put into the SQL; the window's bounds
//! are formatted by keyproof. Nothing read from events is ever put into a query.

use super::analysis::{Activity, Rules};
use super::record::{KmsRecord, RequiredFields};
use super::source::{Scan, ScanStats, SourceError};
use crate::collect::ApiFailure;
use aws_sdk_cloudtrail::types::QueryStatus;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Rows asked for per GetQueryResults page (the API's maximum).
const PAGE_ROWS: i32 = 1000;

/// What the Lake query covered, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LakeStats {
    /// The event data store's id.
    pub event_data_store: String,
    pub query_id: String,
    /// What CloudTrail Lake reports having scanned.
    pub events_scanned: Option<i64>,
    pub bytes_scanned: Option<i64>,
    /// Rows read (groups of alike events).
    pub groups: u64,
    /// KMS events per `account/region` of the recording trail.
    pub events_by_region: BTreeMap<String, u64>,
}

/// How long to wait for a query.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// The first pause between DescribeQuery calls; it doubles up to `max_poll`.
    pub poll: Duration,
    pub max_poll: Duration,
    /// Give up (the query keeps running in Lake) after this long.
    pub timeout: Duration,
}

impl Default for Wait {
    fn default() -> Self {
        Wait {
            poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(10),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// An event data store to query.
pub struct LakeSource {
    store_id: String,
    client: aws_sdk_cloudtrail::Client,
    runtime: tokio::runtime::Runtime,
    wait: Wait,
}

/// The event data store id from an id or ARN
/// (`arn:aws:cloudtrail:region:account:eventdatastore/ID`). Only letters, digits and hyphens
/// are accepted: the id is written into the query's FROM.
pub fn store_id(arn_or_id: &str) -> Result<String, SourceError> {
    let id = arn_or_id.rsplit('/').next().unwrap_or_default();
    let valid = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && (!arn_or_id.contains('/') || arn_or_id.starts_with("arn:"));
    if valid {
        Ok(id.to_string())
    } else {
        Err(SourceError::Lake {
            query_id: None,
            reason: format!(
                "{arn_or_id:?} is not an event data store id or ARN (letters, digits and hyphens)"
            ),
        })
    }
}

/// Lake's timestamp literal: `YYYY-MM-DD HH:MM:SS` in UTC.
fn literal(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The one query: KMS events of the window, grouped by what the analysis tells apart.
pub fn activity_query(store_id: &str, since: DateTime<Utc>, until: DateTime<Utc>) -> String {
    format!(
        "SELECT \
coalesce(recipientAccountId, '') AS account, \
coalesce(awsRegion, '') AS region, \
coalesce(eventName, '') AS event_name, \
coalesce(userIdentity.type, '') AS identity_type, \
coalesce(userIdentity.sessioncontext.sessionissuer.arn, userIdentity.arn, userIdentity.invokedby, '') AS principal, \
coalesce(userIdentity.accountid, '') AS principal_account, \
coalesce(sourceIPAddress, '') AS source_ip, \
coalesce(element_at(filter(resources, r -> r.type = 'AWS::KMS::Key'), 1).arn, element_at(requestParameters, 'keyId'), '') AS key_arn, \
coalesce(errorCode, '') AS error_code, \
date_trunc('hour', eventTime) AS hour, \
(userIdentity.arn IS NOT NULL OR userIdentity.principalid IS NOT NULL OR userIdentity.invokedby IS NOT NULL) AS has_identity, \
(errorCode IS NOT NULL OR eventType IS NOT NULL) AS has_outcome, \
count(*) AS calls, \
min(eventTime) AS first_time, \
min_by(eventID, eventTime) AS first_id \
FROM {store_id} \
WHERE eventSource = 'kms.amazonaws.com' AND eventTime >= '{}' AND eventTime < '{}' \
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
        literal(since),
        literal(until)
    )
}

/// A Lake timestamp (`2026-11-28 10:00:00.000`, UTC) or RFC 3339.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc()))
}

/// One result row (a list of one-entry maps, column name → value) as the group's first record
/// and its size.
pub fn row_record(row: &[HashMap<String, String>]) -> Result<(KmsRecord<'_>, u64), String> {
    let columns: HashMap<String, &str> = row
        .iter()
        .flat_map(|c| c.iter())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    let get = |name: &str| -> Result<&str, String> {
        columns
            .get(name)
            .copied()
            .ok_or_else(|| format!("no column {name}"))
    };
    let text = |name: &str| -> Result<Option<Cow<'_, str>>, String> {
        Ok(Some(get(name)?)
            .filter(|v| !v.is_empty())
            .map(Cow::Borrowed))
    };
    let flag = |name: &str| -> Result<bool, String> {
        match get(name)? {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("{name} is {other:?}, not true or false")),
        }
    };
    let calls: u64 = get("calls")?
        .parse()
        .map_err(|_| "calls is not a count".to_string())?;
    let first_time = get("first_time")?;
    let event_time =
        parse_time(first_time).ok_or_else(|| format!("first_time {first_time:?} is not a time"))?;
    let event_name = text("event_name")?;
    let source_ip = text("source_ip")?;
    let key = text("key_arn")?;
    let fields = RequiredFields {
        identity: flag("has_identity")?,
        event_type: event_name.is_some(),
        time: true,
        outcome: flag("has_outcome")?,
        origin: source_ip.is_some(),
        resource: key.is_some(),
    };
    let record = KmsRecord {
        event_id: Cow::Borrowed(get("first_id")?),
        event_time,
        event_name: event_name.unwrap_or(Cow::Borrowed("<unnamed>")),
        region: Cow::Borrowed(get("region")?),
        account: text("account")?,
        identity_type: text("identity_type")?,
        principal: text("principal")?,
        principal_account: text("principal_account")?,
        source_ip,
        key,
        error_code: text("error_code")?,
        fields,
    };
    Ok((record, calls))
}

fn api_error<E, R>(
    operation: &'static str,
    store: &str,
) -> impl Fn(aws_smithy_runtime_api::client::result::SdkError<E, R>) -> SourceError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let target = format!("event data store {store}");
    move |e| SourceError::Api {
        operation,
        target: target.clone(),
        failure: ApiFailure::from_sdk(&e),
    }
}

impl LakeSource {
    /// A source querying `arn_or_id` with the default AWS configuration (or the named
    /// `profile`), held by the log-reading guard (StartQuery, DescribeQuery, GetQueryResults;
    /// docs/iam-policy-logs.json).
    pub fn connect(
        arn_or_id: &str,
        wait: Wait,
        profile: Option<&str>,
    ) -> Result<LakeSource, SourceError> {
        let store_id = store_id(arn_or_id)?;
        let runtime = runtime()?;
        // The store's region, when an ARN names it, is where the query runs.
        let client = runtime.block_on(crate::collect::log_reading_cloudtrail(
            crate::collect::arn_region(arn_or_id),
            profile,
        ));
        Ok(LakeSource {
            store_id,
            client,
            runtime,
            wait,
        })
    }

    /// A source using `client` as given (tests pass one answering recorded responses).
    pub fn with_client(
        arn_or_id: &str,
        client: aws_sdk_cloudtrail::Client,
        wait: Wait,
    ) -> Result<LakeSource, SourceError> {
        Ok(LakeSource {
            store_id: store_id(arn_or_id)?,
            client,
            runtime: runtime()?,
            wait,
        })
    }

    pub fn describe(&self) -> String {
        format!("CloudTrail Lake event data store {}", self.store_id)
    }

    /// Runs the activity query for the window and analyses its rows.
    pub fn read(&self, rules: &Rules) -> Result<Scan, SourceError> {
        let sql = activity_query(&self.store_id, rules.since, rules.until);
        let mut activity = Activity::default();
        let mut lake = LakeStats {
            event_data_store: self.store_id.clone(),
            ..LakeStats::default()
        };
        let mut kms_records = 0u64;
        let mut by_region: BTreeMap<String, u64> = BTreeMap::new();
        self.runtime.block_on(self.query(&sql, &mut lake, |row| {
            let (record, calls) = row_record(row)?;
            kms_records += calls;
            *by_region.entry(record.account_region()).or_default() += calls;
            activity.add_n(&record, calls, rules);
            Ok(())
        }))?;
        lake.events_by_region = by_region;
        let stats = ScanStats {
            source: self.describe(),
            records: u64::try_from(lake.events_scanned.unwrap_or(0)).unwrap_or(0),
            kms_records,
            lake: Some(lake),
            ..ScanStats::default()
        };
        Ok(Scan {
            activity,
            stats,
            log_hashes: HashMap::new(),
            event_summaries: Default::default(),
        })
    }

    /// Starts `sql`, waits for it to finish, and hands every result row to `on_row`.
    async fn query(
        &self,
        sql: &str,
        lake: &mut LakeStats,
        mut on_row: impl FnMut(&[HashMap<String, String>]) -> Result<(), String>,
    ) -> Result<(), SourceError> {
        let store = self.store_id.as_str();
        let started = self
            .client
            .start_query()
            .query_statement(sql)
            .send()
            .await
            .map_err(api_error("StartQuery", store))?;
        let Some(id) = started.query_id().map(str::to_string) else {
            return Err(SourceError::Lake {
                query_id: None,
                reason: "StartQuery returned no query id".into(),
            });
        };
        lake.query_id = id.clone();
        let failed = |reason: String| SourceError::Lake {
            query_id: Some(id.clone()),
            reason,
        };
        let deadline = Instant::now() + self.wait.timeout;
        let mut pause = self.wait.poll;
        loop {
            let described = self
                .client
                .describe_query()
                .query_id(&id)
                .send()
                .await
                .map_err(api_error("DescribeQuery", store))?;
            match described.query_status() {
                Some(QueryStatus::Finished) => {
                    if let Some(s) = described.query_statistics() {
                        lake.events_scanned = s.events_scanned();
                        lake.bytes_scanned = s.bytes_scanned();
                    }
                    break;
                }
                Some(QueryStatus::Queued | QueryStatus::Running) => {}
                status => {
                    return Err(failed(format!(
                        "the query ended {}: {}",
                        status.map(|s| s.as_str()).unwrap_or("without a status"),
                        described.error_message().unwrap_or("no reason given")
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "the query did not finish within {} s (it may still be running in CloudTrail Lake)",
                    self.wait.timeout.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.wait.max_poll);
        }
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_query_results()
                .query_id(&id)
                .max_query_results(PAGE_ROWS)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(api_error("GetQueryResults", store))?;
            if let Some(message) = page.error_message() {
                return Err(failed(format!("the results carry an error: {message}")));
            }
            for row in page.query_result_rows() {
                lake.groups += 1;
                on_row(row).map_err(|e| failed(format!("result row {}: {e}", lake.groups)))?;
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(());
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, SourceError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SourceError::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Vec<HashMap<String, String>> {
        pairs
            .iter()
            .map(|(k, v)| HashMap::from([(k.to_string(), v.to_string())]))
            .collect()
    }

    #[test]
    fn store_ids_are_checked_before_they_reach_sql() {
        assert_eq!(
            store_id("arn:aws:cloudtrail:eu-west-1:111122223333:eventdatastore/EXAMPLE-f852-4e8f")
                .expect("arn"),
            "EXAMPLE-f852-4e8f"
        );
        assert_eq!(store_id("abc-123").expect("id"), "abc-123");
        for bad in [
            "",
            "x; DROP TABLE",
            "a' OR '1'='1",
            "evil/abc",
            "arn:aws:cloudtrail:eu-west-1:1:eventdatastore/",
        ] {
            assert!(store_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_query_names_the_store_and_the_window() {
        let since: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().expect("time");
        let until: DateTime<Utc> = "2026-11-29T06:30:00Z".parse().expect("time");
        let sql = activity_query("eds-1", since, until);
        assert!(sql.contains("FROM eds-1 WHERE eventSource = 'kms.amazonaws.com'"));
        assert!(
            sql.contains(
                "eventTime >= '2026-11-28 00:00:00' AND eventTime < '2026-11-29 06:30:00'"
            )
        );
        // Every selected column but the aggregates is grouped on.
        let selected = sql.matches(" AS ").count();
        assert_eq!(selected, 15);
        assert!(sql.ends_with("GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"));
    }

    #[test]
    fn rows_become_weighted_records() {
        let r = row(&[
            ("account", "111122223333"),
            ("region", "eu-west-1"),
            ("event_name", "Decrypt"),
            ("identity_type", "AssumedRole"),
            ("principal", "arn:aws:iam::111122223333:role/app"),
            ("principal_account", "111122223333"),
            ("source_ip", ""),
            ("key_arn", "arn:aws:kms:eu-west-1:111122223333:key/k1"),
            ("error_code", ""),
            ("hour", "2026-11-28 10:00:00.000"),
            ("has_identity", "true"),
            ("has_outcome", "true"),
            ("calls", "42"),
            ("first_time", "2026-11-28 10:03:07.000"),
            ("first_id", "e-1"),
        ]);
        let (rec, n) = row_record(&r).expect("row");
        assert_eq!(n, 42);
        assert_eq!(rec.event_time.to_rfc3339(), "2026-11-28T10:03:07+00:00");
        assert_eq!(rec.error_code, None);
        assert_eq!(rec.source_ip, None);
        assert!(!rec.fields.origin && rec.fields.identity && rec.fields.resource);
        assert_eq!(rec.account_region(), "111122223333/eu-west-1");

        let mut bad = r.clone();
        bad[12] = HashMap::from([("calls".into(), "many".into())]);
        assert!(row_record(&bad).expect_err("bad count").contains("calls"));
        assert!(
            row_record(&r[..5])
                .expect_err("short row")
                .contains("no column")
        );
    }
}
