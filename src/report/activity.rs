//! The KMS activity section of the HTML and PDF reports, from the snapshot's analysis of the
//! trail's log files: the window and what was read, detections, calls per key, failed calls,
//! the administrative timeline, the PCI DSS 10.2.2 field check, the digest check and a daily
//! call-volume chart. Long lists are cut here (the report says by how much); the snapshot and
//! `kms-activity.json` keep everything.

use crate::logs::AuditLogs;
use serde::Serialize;

/// Rows shown per table.
const KEY_ROWS: usize = 25;
const ADMIN_ROWS: usize = 100;
const FAILED_ROWS: usize = 40;
const PROBLEM_ROWS: usize = 100;

/// The sentence saying what the analysis read.
fn coverage(scan: &crate::logs::ScanStats) -> String {
    match (&scan.lookup, &scan.lake) {
        (Some(lookup), _) => format!(
            "The account's CloudTrail event history (LookupEvents) in {}: {} KMS events over {} \
             pages. It holds management events only (no data events) for the last 90 days, and \
             keeps no digest files, so log integrity was not verified from it.",
            lookup.regions.join(", "),
            scan.kms_records,
            lookup.pages
        ),
        (None, Some(lake)) => format!(
            "One CloudTrail Lake query ({}): {} events scanned, {} groups of alike KMS events; a \
             detection's evidence cites the first event of each group. Lake keeps no digest \
             files, so log integrity was not verified from it.",
            lake.query_id,
            lake.events_scanned
                .map_or_else(|| "an unreported number of".into(), |n| n.to_string()),
            lake.groups
        ),
        (None, None) => format!(
            "{} of {} log files read ({} records of every service).",
            scan.files_read, scan.files, scan.records
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivitySection {
    pub source: String,
    pub window_start: String,
    pub window_end: String,
    pub files: u64,
    pub files_read: u64,
    pub records: u64,
    /// What was read, in a sentence: the log files, or the CloudTrail Lake query.
    pub coverage: String,
    pub events: u64,
    pub failed: u64,
    pub unreadable: Vec<Unreadable>,
    pub detections: Vec<DetectionRow>,
    pub keys: Vec<KeyRow>,
    pub keys_omitted: usize,
    pub failed_calls: Vec<FailedRow>,
    pub failed_omitted: usize,
    pub admin: Vec<AdminRow>,
    pub admin_omitted: u64,
    pub fields: Vec<FieldRow>,
    /// Events lacking 10.2.2 fields: per region and set of missing fields, the first event.
    pub incomplete: Vec<IncompleteRow>,
    pub complete_percent: String,
    pub source_ip_check: bool,
    pub integrity: Option<IntegrityRows>,
    /// Calls per day, failed stacked on successful, as a self-contained SVG.
    pub chart_svg: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionRow {
    pub severity: String,
    pub title: String,
    pub requirements: String,
    pub principal: String,
    pub key: String,
    pub detail: String,
    pub count: u64,
    pub first_event: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRow {
    pub key: String,
    pub calls: u64,
    pub failed: u64,
    pub operations: String,
    pub principals: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedRow {
    pub error_code: String,
    pub key: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminRow {
    pub time: String,
    pub event: String,
    pub principal: String,
    pub key: String,
    pub outcome: String,
    pub event_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncompleteRow {
    /// `account/region`.
    pub region: String,
    pub missing: String,
    pub count: u64,
    /// The first such event: time, id and principal.
    pub first_event: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldRow {
    pub field: String,
    pub requirement: String,
    pub present: u64,
    pub percent: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrityRows {
    pub digests: u64,
    pub digests_valid: u64,
    pub chains: usize,
    pub log_files_checked: u64,
    pub log_files_valid: u64,
    pub intact: bool,
    pub problems: Vec<ProblemRow>,
    pub problems_omitted: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemRow {
    pub kind: String,
    pub file: String,
    pub detail: String,
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}", part as f64 * 100.0 / whole as f64)
    }
}

fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Builds the section.
pub fn section(a: &AuditLogs) -> ActivitySection {
    let act = &a.activity;
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let detections = act
        .detections
        .iter()
        .map(|d| DetectionRow {
            severity: d.severity.clone(),
            title: d.title.clone(),
            requirements: d.requirements.join(", "),
            principal: d.principal.clone().unwrap_or_default(),
            key: d.key.clone().unwrap_or_default(),
            detail: d.detail.clone(),
            count: d.count,
            first_event: d
                .events
                .first()
                .map(|e| {
                    format!(
                        "{} {} from {}",
                        time(&e.event_time),
                        e.event_id,
                        e.source_ip.as_deref().unwrap_or("-")
                    )
                })
                .unwrap_or_default(),
        })
        .collect();
    let mut keys: Vec<KeyRow> = act
        .keys
        .iter()
        .map(|(k, v)| {
            let mut ops: Vec<(&String, &u64)> = v.by_operation.iter().collect();
            ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            KeyRow {
                key: k.clone(),
                calls: v.calls,
                failed: v.failed,
                operations: ops
                    .iter()
                    .take(4)
                    .map(|(o, n)| format!("{o} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                principals: v.principals.len(),
            }
        })
        .collect();
    keys.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.key.cmp(&b.key)));
    let keys_omitted = keys.len().saturating_sub(KEY_ROWS);
    keys.truncate(KEY_ROWS);
    let mut failed_calls: Vec<FailedRow> = act
        .keys
        .iter()
        .flat_map(|(k, v)| {
            v.errors_by_code.iter().map(move |(code, n)| FailedRow {
                error_code: code.clone(),
                key: k.clone(),
                count: *n,
            })
        })
        .collect();
    failed_calls.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.error_code.cmp(&b.error_code))
            .then(a.key.cmp(&b.key))
    });
    let failed_omitted = failed_calls.len().saturating_sub(FAILED_ROWS);
    failed_calls.truncate(FAILED_ROWS);
    let admin_shown = act.admin_events.len().min(ADMIN_ROWS);
    let admin = act.admin_events[act.admin_events.len() - admin_shown..]
        .iter()
        .map(|e| AdminRow {
            time: time(&e.event_time),
            event: e.event_name.clone(),
            principal: e.principal.clone().unwrap_or_default(),
            key: e.key.clone().unwrap_or_default(),
            outcome: e.error_code.clone().unwrap_or_else(|| "success".into()),
            event_id: e.event_id.clone(),
        })
        .collect();
    let f = &act.fields;
    let fields = [
        ("User identity", "10.2.2 (v3.2.1 10.3.1)", f.identity),
        ("Type of event", "10.2.2 (v3.2.1 10.3.2)", f.event_type),
        ("Date and time", "10.2.2 (v3.2.1 10.3.3)", f.time),
        ("Success or failure", "10.2.2 (v3.2.1 10.3.4)", f.outcome),
        ("Origination", "10.2.2 (v3.2.1 10.3.5)", f.origin),
        ("Affected resource", "10.2.2 (v3.2.1 10.3.6)", f.resource),
    ]
    .into_iter()
    .map(|(field, requirement, present)| FieldRow {
        field: field.into(),
        requirement: requirement.into(),
        present,
        percent: percent(present, f.records),
    })
    .collect();
    let incomplete = act
        .incomplete
        .iter()
        .flat_map(|(region, groups)| {
            groups.iter().map(move |g| IncompleteRow {
                region: region.clone(),
                missing: g.missing.join(", "),
                count: g.count,
                first_event: g
                    .events
                    .first()
                    .map(|e| {
                        format!(
                            "{} {} {}",
                            time(&e.event_time),
                            e.event_id,
                            e.principal.as_deref().unwrap_or("(no principal)")
                        )
                    })
                    .unwrap_or_default(),
            })
        })
        .collect();
    let integrity = a.integrity.as_ref().map(|i| {
        let problems_omitted = i.problems.len().saturating_sub(PROBLEM_ROWS);
        IntegrityRows {
            digests: i.digests,
            digests_valid: i.digests_valid,
            chains: i.chains.len(),
            log_files_checked: i.log_files_checked,
            log_files_valid: i.log_files_valid,
            intact: i.intact(),
            problems: i
                .problems
                .iter()
                .take(PROBLEM_ROWS)
                .map(|p| ProblemRow {
                    kind: name(&p.kind),
                    file: p.file.clone(),
                    detail: p.detail.clone(),
                })
                .collect(),
            problems_omitted,
        }
    });
    let days: Vec<(String, String, u64, u64)> = act
        .daily
        .iter()
        .map(|(d, v)| {
            (
                d.format("%m-%d").to_string(),
                d.to_string(),
                v.calls - v.failed,
                v.failed,
            )
        })
        .collect();
    let bars: Vec<super::chart::Bar<'_>> = days
        .iter()
        .map(|(label, day, ok, failed)| super::chart::Bar {
            label,
            name: day,
            bottom: *ok,
            top: *failed,
        })
        .collect();
    let chart_svg = super::chart::stacked_bars(
        &bars,
        [("successful", "#2e86c1"), ("failed", "#c0392b")],
        "KMS calls per day",
    );
    ActivitySection {
        source: a.scan.source.clone(),
        window_start: time(&act.window_start),
        window_end: time(&act.window_end),
        files: a.scan.files,
        files_read: a.scan.files_read,
        records: a.scan.records,
        coverage: coverage(&a.scan),
        events: act.events,
        failed: act.failed,
        unreadable: a
            .scan
            .issues
            .iter()
            .map(|i| Unreadable {
                file: i.file.clone(),
                reason: match i.offset {
                    Some(o) => format!("{} (at byte {o})", i.reason),
                    None => i.reason.clone(),
                },
            })
            .collect(),
        detections,
        keys,
        keys_omitted,
        failed_calls,
        failed_omitted,
        admin,
        admin_omitted: act.admin_omitted + (act.admin_events.len() - admin_shown) as u64,
        fields,
        incomplete,
        complete_percent: percent(f.complete, f.records),
        source_ip_check: act.source_ip_check,
        integrity,
        chart_svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{EventRef, IncompleteEvents};

    #[test]
    fn events_lacking_fields_get_a_row_per_region_and_missing_set() {
        let mut audit: AuditLogs =
            serde_json::from_str(crate::snapshot::sample::SAMPLE_KMS_ACTIVITY).expect("sample");
        let event = |id: &str, principal: Option<&str>| EventRef {
            event_time: "2026-10-31T10:00:00Z".parse().expect("time"),
            event_id: id.into(),
            event_name: "Decrypt".into(),
            principal: principal.map(str::to_string),
            source_ip: None,
            key: None,
            error_code: None,
        };
        audit.activity.incomplete.insert(
            "111122223333/eu-central-1".into(),
            vec![
                IncompleteEvents {
                    missing: vec!["origin".into()],
                    count: 7,
                    events: vec![event("ev-1", Some("arn:aws:iam::111122223333:role/batch"))],
                },
                IncompleteEvents {
                    missing: vec!["identity".into(), "resource".into()],
                    count: 1,
                    events: vec![event("ev-2", None)],
                },
            ],
        );
        let rows: Vec<(String, String, u64, String)> = section(&audit)
            .incomplete
            .into_iter()
            .map(|r| (r.region, r.missing, r.count, r.first_event))
            .collect();
        assert_eq!(
            rows,
            vec![
                (
                    "111122223333/eu-central-1".to_string(),
                    "origin".to_string(),
                    7,
                    "2026-10-31 10:00:00 UTC ev-1 arn:aws:iam::111122223333:role/batch".to_string()
                ),
                (
                    "111122223333/eu-central-1".to_string(),
                    "identity, resource".to_string(),
                    1,
                    "2026-10-31 10:00:00 UTC ev-2 (no principal)".to_string()
                ),
            ]
        );
    }
}
