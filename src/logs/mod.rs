//! CloudTrail log evidence at scale: KMS activity, detections and the PCI DSS 10.2.2 field
//! check, read from the trail's own log files rather than LookupEvents.
//!
//! [`source`] lists and fetches log files (a local directory or the trail's S3 bucket),
//! [`parse`] turns each into typed KMS records without parsing the rest of the trail
//! ([`structure`] delimits the records, [`crc`] checks gzip's CRC-32 inside that scan), [`lake`] runs the analysis as SQL on a CloudTrail Lake
//! event data store instead, and [`lookup`] reads one account's event history with
//! LookupEvents ([`EventSource`] is any of the three),
//! [`analysis`] counts and detects, and [`anomalies_csv`] writes the detections for engineers.
//! [`synthetic`] generates realistic log files with known anomalies for the tests and the
//! benchmark.
//!
//! Not for: the short LookupEvents summary `collect` keeps in the snapshot beside any analysis
//! (that is `collect::cloudtrail`; it reads records with the same [`record::RawRecord`]).

pub mod analysis;
pub mod crc;
pub mod digest;
pub mod extract;
pub mod lake;
pub mod lookup;
pub mod parse;
pub mod record;
pub mod source;
pub mod structure;
pub mod synthetic;

pub use analysis::{
    Activity, ActivityReport, Detection, DetectionKind, FieldCounts, IncompleteEvents, LogsConfig,
    Rules,
};
pub use parse::{FileIssue, FileScan, LogParser};
pub use record::{EventRef, KmsRecord, RequiredFields};
pub use source::{LocalStore, LogStore, S3Store, Scan, ScanStats, SourceError, scan};

use serde::{Deserialize, Serialize};

/// Where a window's KMS events are read from: log files (a local directory or the trail's
/// bucket), a CloudTrail Lake event data store, or the account's LookupEvents history. All give
/// the same [`Scan`].
pub enum EventSource {
    Files(Box<dyn LogStore>),
    Lake(lake::LakeSource),
    Lookup(lookup::LookupSource),
}

impl EventSource {
    pub fn describe(&self) -> String {
        match self {
            EventSource::Files(store) => store.describe(),
            EventSource::Lake(lake) => lake.describe(),
            EventSource::Lookup(lookup) => lookup.describe(),
        }
    }

    /// Reads and analyses the window; `hash` keeps each log file's hash for digest checks.
    pub fn read(&self, rules: &Rules, hash: bool) -> Result<Scan, SourceError> {
        match self {
            EventSource::Files(store) => scan(store.as_ref(), rules, hash),
            EventSource::Lake(lake) => lake.read(rules),
            EventSource::Lookup(lookup) => lookup.read(rules),
        }
    }

    /// The files behind the source, for digest verification.
    pub fn files(&self) -> Option<&dyn LogStore> {
        match self {
            EventSource::Files(store) => Some(store.as_ref()),
            EventSource::Lake(_) | EventSource::Lookup(_) => None,
        }
    }
}

/// What `keyproof audit-logs` writes as `kms-activity.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditLogs {
    pub tool: String,
    pub generated_at: chrono::DateTime<chrono::Utc>,
    pub scan: ScanStats,
    pub activity: ActivityReport,
    /// The digest-file check, when asked for (`--verify-digests`).
    pub integrity: Option<digest::Integrity>,
}

/// The detections as CSV, one row each, formula cells defused.
pub fn anomalies_csv(detections: &[Detection]) -> Result<Vec<u8>, csv::Error> {
    use crate::report::csv::defuse;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "severity",
        "detection",
        "title",
        "requirements",
        "principal",
        "key",
        "detail",
        "count",
        "first_event_id",
        "first_event_time",
        "first_source_ip",
        "event_ids",
    ])?;
    for d in detections {
        let first = d.events.first();
        let ids: Vec<&str> = d.events.iter().map(|e| e.event_id.as_str()).collect();
        let kind = serde_json::to_value(d.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        w.write_record([
            defuse(&d.severity),
            kind,
            defuse(&d.title),
            d.requirements.join(" "),
            defuse(d.principal.as_deref().unwrap_or("")),
            defuse(d.key.as_deref().unwrap_or("")),
            defuse(&d.detail),
            d.count.to_string(),
            defuse(first.map(|e| e.event_id.as_str()).unwrap_or("")),
            first.map(|e| e.event_time.to_rfc3339()).unwrap_or_default(),
            defuse(first.and_then(|e| e.source_ip.as_deref()).unwrap_or("")),
            defuse(&ids.join(" ")),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomaly_csv_defuses_hostile_strings() {
        let d = Detection {
            kind: DetectionKind::AccessDenied,
            severity: "LOW".into(),
            requirements: vec!["10.2.1.4".into()],
            title: "Access denied".into(),
            principal: Some("=HYPERLINK(\"http://x\")".into()),
            key: Some("arn:aws:kms:eu-west-1:111122223333:key/k".into()),
            detail: "+Decrypt".into(),
            count: 2,
            events: vec![EventRef {
                event_time: "2026-11-01T00:00:00Z".parse().expect("time"),
                event_id: "@id".into(),
                event_name: "Decrypt".into(),
                principal: None,
                source_ip: Some("-10.0.0.1".into()),
                key: None,
                error_code: Some("AccessDeniedException".into()),
            }],
        };
        let csv = String::from_utf8(anomalies_csv(&[d]).expect("csv")).expect("utf-8");
        let row = csv.lines().nth(1).expect("a row");
        assert!(row.contains("'=HYPERLINK"), "{row}");
        assert!(
            row.contains("'+Decrypt") && row.contains("'@id") && row.contains("'-10.0.0.1"),
            "{row}"
        );
        assert!(row.starts_with("LOW,ACCESS_DENIED,"), "{row}");
    }
}
