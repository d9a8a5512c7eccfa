//! CloudTrail LookupEvents as an event source: the KMS events of one account's regions, read
//! from CloudTrail's own event history instead of the trail's log files.
//!
//! For an account whose trail bucket is not at hand. Each event's `CloudTrailEvent` is the same
//! JSON record a log file holds; it is read as a [`RawRecord`] and goes into the same
//! [`Activity`], so counts, detections, the PCI DSS 10.2.2 field check and the report come out
//! as from files. What LookupEvents cannot give, and the report says: it holds management events
//! only (no data events), for the last 90 days, answers two requests a second per account and
//! region (its pages are paced), and keeps no digest files, so log integrity stays unverified
//! (ERROR, not PASS).
//!
//! A failed page or an event whose record cannot be read fails the whole read: a partial
//! history would under-count failures and administrative events without saying so.

use super::analysis::{Activity, Rules};
use super::record::RawRecord;
use super::source::{Scan, ScanStats, SourceError};
use crate::collect::cloudtrail::{PagesStop, SummaryBuilder, kms_event_pages};
use crate::collect::{ApiFailure, log_reading_cloudtrail, to_utc};
use aws_sdk_cloudtrail::types::Event;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The pause between two pages of one region: LookupEvents allows two requests a second per
/// account and region.
pub const PACE: Duration = Duration::from_millis(550);

/// What the LookupEvents read covered, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LookupStats {
    /// The regions whose event history was read (each in full for the window).
    pub regions: Vec<String>,
    /// Pages read, over all regions.
    pub pages: u64,
    /// KMS events per `account/region`.
    pub events_by_region: BTreeMap<String, u64>,
}

/// The event history of some regions of the caller's account.
pub struct LookupSource {
    /// One client per region, in the order given.
    clients: Vec<(String, aws_sdk_cloudtrail::Client)>,
    runtime: tokio::runtime::Runtime,
    pace: Duration,
}

impl LookupSource {
    /// A source reading `regions` with the default AWS configuration (or the named `profile`),
    /// held by the log-reading guard (cloudtrail:LookupEvents; docs/iam-policy-logs.json).
    pub fn connect(regions: &[String], profile: Option<&str>) -> Result<LookupSource, SourceError> {
        let runtime = runtime()?;
        let clients = regions
            .iter()
            .map(|region| {
                let client = runtime.block_on(log_reading_cloudtrail(Some(region), profile));
                (region.clone(), client)
            })
            .collect();
        Ok(LookupSource {
            clients,
            runtime,
            pace: PACE,
        })
    }

    /// A source using the clients as given, one per region (tests pass ones answering
    /// recorded responses, and a short pace).
    pub fn with_clients(
        clients: Vec<(String, aws_sdk_cloudtrail::Client)>,
        pace: Duration,
    ) -> Result<LookupSource, SourceError> {
        Ok(LookupSource {
            clients,
            runtime: runtime()?,
            pace,
        })
    }

    pub fn describe(&self) -> String {
        let regions: Vec<&str> = self.clients.iter().map(|(r, _)| r.as_str()).collect();
        format!("CloudTrail LookupEvents in {}", regions.join(", "))
    }

    /// Reads every KMS event of the window in each region and analyses them. Each region's
    /// history is also summarised as the collector would (`Scan::event_summaries`, keyed by the
    /// events' account), so that a run reading it here does not read it again to collect.
    pub fn read(&self, rules: &Rules) -> Result<Scan, SourceError> {
        let mut activity = Activity::default();
        let mut lookup = LookupStats::default();
        let mut event_summaries = BTreeMap::new();
        for (region, client) in &self.clients {
            let mut summary = SummaryBuilder::new(rules.since, rules.until);
            let mut account = None;
            lookup.pages += self.runtime.block_on(history(
                client,
                region,
                rules,
                self.pace,
                |event, record| {
                    *lookup
                        .events_by_region
                        .entry(record.account_region())
                        .or_default() += 1;
                    activity.add_n(record, 1, rules);
                    summary.add(event);
                    if account.is_none() {
                        account = record.account.as_deref().map(str::to_string);
                    }
                },
            ))?;
            lookup.regions.push(region.clone());
            // A history without events names no account; the collector reads it itself (one
            // empty page).
            if let Some(account) = account {
                event_summaries.insert((account, region.clone()), summary.finish());
            }
        }
        let kms_records = lookup.events_by_region.values().sum();
        let stats = ScanStats {
            source: self.describe(),
            records: kms_records,
            kms_records,
            lookup: Some(lookup),
            ..ScanStats::default()
        };
        Ok(Scan {
            activity,
            stats,
            log_hashes: HashMap::new(),
            event_summaries,
        })
    }
}

/// Pages through one region's KMS events of the window, handing each event and its record to
/// `on_event`. Returns the pages read.
async fn history(
    client: &aws_sdk_cloudtrail::Client,
    region: &str,
    rules: &Rules,
    pace: Duration,
    mut on_event: impl FnMut(&Event, &super::KmsRecord<'_>),
) -> Result<u64, SourceError> {
    let read = kms_event_pages(client, rules.since, rules.until, pace, |events| {
        for event in events {
            let id = event.event_id().unwrap_or("<no id>");
            let malformed = |reason: String| {
                failure(
                    region,
                    ApiFailure::new(
                        "MalformedEvent",
                        format!("event {id}: CloudTrailEvent {reason}"),
                    ),
                )
            };
            let raw = event
                .cloud_trail_event()
                .ok_or_else(|| malformed("is missing".into()))?;
            let parsed: RawRecord<'_> = serde_json::from_str(raw)
                .map_err(|e| malformed(format!("is not a record: {e}")))?;
            let mut record = parsed.to_record();
            // The history's own time stands in for a record without a readable one; the
            // 10.2.2 check still sees that the record lacks it.
            if !record.fields.time
                && let Some(time) = event.event_time().and_then(to_utc)
            {
                record.event_time = time;
            }
            on_event(event, &record);
        }
        Ok(true)
    })
    .await;
    match read {
        Ok(pages) => Ok(pages.read),
        Err(PagesStop::Api(e)) => Err(failure(region, e)),
        Err(PagesStop::Page(e)) => Err(e),
    }
}

fn failure(region: &str, failure: ApiFailure) -> SourceError {
    SourceError::Api {
        operation: "LookupEvents",
        target: format!("the event history of {region}"),
        failure,
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, SourceError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SourceError::Runtime)
}
