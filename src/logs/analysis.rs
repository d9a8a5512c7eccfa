//! KMS activity over a window, per key and per principal, and the detections an engineer acts
//! on and an auditor reads as evidence that the logs were reviewed (PCI DSS 10.4.1, 10.4.1.1,
//! 10.4.3, 10.7).
//!
//! [`Activity`] is a partial result: workers fill one each from their files and the partials
//! merge, so the result does not depend on file order or thread count. Memory grows with the
//! number of keys, principals and active hours, never with the number of events: each
//! detection keeps its first [`LogsConfig::evidence_per_detection`] events and a count.
//!
//! Detections:
//! - **Root use**: any KMS call by an account's root user (10.2.1.2).
//! - **Cross-account use**: a key used by a principal of another account that is not in
//!   `parameters.allowed_accounts`.
//! - **Source IP outside the allowed ranges**: a call from an IP address outside
//!   `logs.allowed_source_cidrs` (calls made by AWS services on the caller's behalf carry a
//!   service name instead of an address and are not judged). Off when no range is configured.
//! - **Use of a disabled key or a key pending deletion**: a call that failed with
//!   `DisabledException` or `KMSInvalidStateException`. KMS refuses every such use, so the
//!   failure is how the logs show that something still depends on a key being retired.
//! - **Access denied**: calls refused with `AccessDeniedException` (invalid logical access
//!   attempts, 10.2.1.4), per principal and key.
//! - **Sensitive administrative change**: key deletion scheduled, key disabled, rotation turned
//!   off, imported key material deleted, a key policy replaced, a custom key store
//!   disconnected, for review (3.6/3.7, 10.2.1.7).
//! - **Volume spike**: an hour in which a principal made far more calls than its own baseline.
//!   The statistic is a robust z-score over the principal's hourly call counts in the window
//!   (hours without calls count as zero): with median `m` and median absolute deviation `MAD`,
//!   an hour with `n` calls is a spike when `n ≥ spike_min_calls`, `n ≥ 3·m` and
//!   `(n − m) / max(1.4826·MAD, 1) ≥ spike_threshold`. Median and MAD are not moved by the spike
//!   itself, unlike a mean and standard deviation.
//!
//!   Recurring jobs are not spikes. When the window holds an hour of the day on at least
//!   `spike_hour_of_day_min_days` days, the hour must also be a spike, by the same test, against
//!   the principal's counts at that hour (UTC) on every day of the window; and when it holds an
//!   hour of the week in at least `spike_hour_of_week_min_weeks` weeks, against its counts at
//!   that hour of that weekday in every week. A job that runs at 02:00 every day (or every
//!   Sunday) is quiet in the other hours, so against the whole window each of its runs looks
//!   like a spike; against its own hour of the day (or week) it is the norm. A dormant
//!   credential suddenly used heavily is a spike against all of them. What this does not absorb
//!   is a job on a longer cycle (monthly), whose hour of the week is quiet in most weeks.

use super::record::{EventRef, KmsRecord};
use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The analysis's hash maps, looked up a few times per KMS record: foldhash (seeded per map)
/// rather than SipHash. Their keys are ARNs and principals an outsider can choose, so the seed
/// matters; foldhash's is random per process.
type HashMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<T> = hashbrown::HashSet<T, foldhash::fast::RandomState>;
use std::net::IpAddr;

/// `[logs]` in keyproof.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// CIDR ranges KMS calls are expected from (offices, VPN, NAT gateways), e.g.
    /// `["10.0.0.0/8", "203.0.113.0/24"]`. Default: none, and the source-IP check is off.
    pub allowed_source_cidrs: Vec<String>,
    /// Fewest calls in an hour that can count as a volume spike. Default 100.
    pub spike_min_calls: u64,
    /// Robust z-score an hour must reach to be a spike. Default 6.
    pub spike_threshold: f64,
    /// Days the window must span before an hour must also stand out against the same hour of
    /// the other days (so that a daily job is not a spike every day). Default 7; 0 turns the
    /// hour-of-day test off.
    pub spike_hour_of_day_min_days: u32,
    /// Weeks the window must span before an hour must also stand out against the same hour of
    /// the same weekday in the other weeks (so that a weekly job is not a spike every week).
    /// Default 4; 0 turns the hour-of-week test off.
    pub spike_hour_of_week_min_weeks: u32,
    /// Events cited per detection (the count covers all). Default 20.
    pub evidence_per_detection: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            allowed_source_cidrs: Vec::new(),
            spike_min_calls: 100,
            spike_threshold: 6.0,
            spike_hour_of_day_min_days: 7,
            spike_hour_of_week_min_weeks: 4,
            evidence_per_detection: 20,
        }
    }
}

/// Why the analysis settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("logs.allowed_source_cidrs: {value:?} is not a CIDR range (e.g. 10.0.0.0/8): {message}")]
pub struct BadCidr {
    pub value: String,
    pub message: String,
}

/// The settings the analysis runs with.
#[derive(Debug, Clone)]
pub struct Rules {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub allowed_accounts: BTreeSet<String>,
    pub allowed_ranges: Vec<IpNet>,
    pub config: LogsConfig,
}

impl Rules {
    pub fn new(
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        allowed_accounts: &[String],
        config: &LogsConfig,
    ) -> Result<Rules, BadCidr> {
        let allowed_ranges = config
            .allowed_source_cidrs
            .iter()
            .map(|c| {
                c.parse::<IpNet>().map_err(|e| BadCidr {
                    value: c.clone(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Rules {
            since,
            until,
            allowed_accounts: allowed_accounts.iter().cloned().collect(),
            allowed_ranges,
            config: config.clone(),
        })
    }
}

/// What kind of detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DetectionKind {
    RootUse,
    UnusableKeyUse,
    CrossAccountUse,
    SourceIpOutsideRanges,
    VolumeSpike,
    AccessDenied,
    SensitiveAdminChange,
}

impl DetectionKind {
    pub fn severity(self) -> &'static str {
        match self {
            DetectionKind::RootUse | DetectionKind::UnusableKeyUse => "HIGH",
            DetectionKind::CrossAccountUse
            | DetectionKind::SourceIpOutsideRanges
            | DetectionKind::VolumeSpike => "MEDIUM",
            DetectionKind::AccessDenied => "LOW",
            DetectionKind::SensitiveAdminChange => "REVIEW",
        }
    }

    /// PCI DSS v4.0.1 requirements the detection is evidence for.
    pub fn requirements(self) -> &'static [&'static str] {
        match self {
            DetectionKind::RootUse => &["10.2.1.2", "10.4.1"],
            DetectionKind::UnusableKeyUse => &["3.7.5", "10.4.1"],
            DetectionKind::CrossAccountUse => &["3.5.1", "10.4.1"],
            DetectionKind::SourceIpOutsideRanges => &["10.4.1"],
            DetectionKind::VolumeSpike => &["10.4.1.1"],
            DetectionKind::AccessDenied => &["10.2.1.4", "10.4.1"],
            DetectionKind::SensitiveAdminChange => &["3.6.1", "3.7.1", "10.2.1.7", "10.4.1"],
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            DetectionKind::RootUse => "KMS call by the root user",
            DetectionKind::UnusableKeyUse => "Use of a disabled key or a key pending deletion",
            DetectionKind::CrossAccountUse => "Key used from another account",
            DetectionKind::SourceIpOutsideRanges => "Call from outside the allowed IP ranges",
            DetectionKind::VolumeSpike => "Call volume far above the principal's baseline",
            DetectionKind::AccessDenied => "Access denied",
            DetectionKind::SensitiveAdminChange => "Sensitive administrative change",
        }
    }
}

/// Administrative changes that are always put in front of a reviewer.
pub const SENSITIVE_EVENTS: &[&str] = &[
    "DeleteImportedKeyMaterial",
    "DisableKey",
    "DisableKeyRotation",
    "DisconnectCustomKeyStore",
    "DeleteCustomKeyStore",
    "PutKeyPolicy",
    "ScheduleKeyDeletion",
];

/// The error codes of a call on a key that cannot be used.
const UNUSABLE_KEY_ERRORS: &[&str] = &[
    "DisabledException",
    "KMSInvalidStateException",
    "KeyUnavailableException",
];

/// One detection: what, who, which key, how many times, and the events that show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub kind: DetectionKind,
    pub severity: String,
    pub requirements: Vec<String>,
    pub title: String,
    pub principal: Option<String>,
    pub key: Option<String>,
    /// What sets this group apart (the source IP, the hour of a spike, the event name).
    pub detail: String,
    pub count: u64,
    /// The first events, oldest first; `count` covers them all.
    pub events: Vec<EventRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GroupKey {
    kind: DetectionKind,
    principal: Option<String>,
    key: Option<String>,
    detail: String,
}

#[derive(Debug, Default, Clone)]
struct Group {
    count: u64,
    events: Vec<EventRef>,
}

impl Group {
    fn add(&mut self, event: EventRef, n: u64, keep: usize) {
        self.count += n;
        self.events.push(event);
        if self.events.len() >= keep.saturating_mul(2).max(2) {
            self.trim(keep);
        }
    }

    fn trim(&mut self, keep: usize) {
        self.events.sort();
        self.events.dedup();
        self.events.truncate(keep);
    }

    fn merge(&mut self, other: Group, keep: usize) {
        self.count += other.count;
        self.events.extend(other.events);
        self.trim(keep);
    }
}

/// Events cited per group of events lacking the same 10.2.2 fields.
pub const INCOMPLETE_EXAMPLES: usize = 5;

/// Events of one region that lack the same PCI DSS 10.2.2 fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncompleteEvents {
    /// The fields they lack: identity, event_type, time, outcome, origin, resource.
    pub missing: Vec<String>,
    pub count: u64,
    /// The first of them (at most [`INCOMPLETE_EXAMPLES`]).
    pub events: Vec<EventRef>,
}

/// Calls on one key.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyActivity {
    pub calls: u64,
    pub failed: u64,
    pub by_operation: BTreeMap<String, u64>,
    pub errors_by_code: BTreeMap<String, u64>,
    pub principals: BTreeSet<String>,
}

/// Calls by one principal.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalActivity {
    pub identity_type: Option<String>,
    pub account: Option<String>,
    pub calls: u64,
    pub failed: u64,
    pub by_operation: BTreeMap<String, u64>,
    pub keys: BTreeSet<String>,
}

/// Calls on one day.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayVolume {
    pub calls: u64,
    pub failed: u64,
}

/// Counts of records carrying each PCI DSS 10.2.2 field.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCounts {
    pub records: u64,
    pub identity: u64,
    pub event_type: u64,
    pub time: u64,
    pub outcome: u64,
    pub origin: u64,
    pub resource: u64,
    /// Records that carry all six.
    pub complete: u64,
}

impl FieldCounts {
    fn add(&mut self, r: &KmsRecord<'_>, n: u64) {
        let f = &r.fields;
        let count = |present: bool| if present { n } else { 0 };
        self.records += n;
        self.identity += count(f.identity);
        self.event_type += count(f.event_type);
        self.time += count(f.time);
        self.outcome += count(f.outcome);
        self.origin += count(f.origin);
        self.resource += count(f.resource);
        self.complete += count(f.all());
    }

    fn merge(&mut self, o: &FieldCounts) {
        self.records += o.records;
        self.identity += o.identity;
        self.event_type += o.event_type;
        self.time += o.time;
        self.outcome += o.outcome;
        self.origin += o.origin;
        self.resource += o.resource;
        self.complete += o.complete;
    }

    /// The share of records that carry every field, in percent (100 when there are none).
    pub fn complete_percent(&self) -> f64 {
        if self.records == 0 {
            100.0
        } else {
            self.complete as f64 * 100.0 / self.records as f64
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Hour {
    count: u64,
    first: Option<EventRef>,
}

/// A partial analysis, filled from records and merged with others.
#[derive(Debug, Default, Clone)]
pub struct Activity {
    /// KMS records in the window.
    pub events: u64,
    pub failed: u64,
    /// KMS records outside the window (read, not analysed).
    pub outside_window: u64,
    /// KMS records without a usable event time (counted, not placed in time).
    pub undated: u64,
    pub by_key: HashMap<String, KeyActivity>,
    pub by_principal: HashMap<String, PrincipalActivity>,
    pub by_operation: BTreeMap<String, u64>,
    pub errors_by_code: BTreeMap<String, u64>,
    pub daily: BTreeMap<NaiveDate, DayVolume>,
    pub fields: FieldCounts,
    /// The 10.2.2 field counts per `account/region` of the recording trail.
    pub regions: HashMap<String, FieldCounts>,
    /// Events lacking 10.2.2 fields, per `account/region` and set of missing fields.
    incomplete: HashMap<(String, Vec<&'static str>), Group>,
    /// Scratch for the `account/region` key (the records of a file share it).
    region_key: String,
    /// Administrative events (any of [`crate::collect::cloudtrail::ADMINISTRATIVE_EVENTS`]).
    admin: Group,
    groups: HashMap<GroupKey, Group>,
    hours: HashMap<String, BTreeMap<i64, Hour>>,
    /// Every (key, principal) seen: one lookup per record tells whether the key's principals
    /// and the principal's keys (ordered sets, for the report) need the pair at all.
    pairs: HashSet<(String, String)>,
}

/// A (key, principal) pair looked up without copying either.
#[derive(Hash)]
struct Pair<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(String, String)> for Pair<'_> {
    fn equivalent(&self, pair: &(String, String)) -> bool {
        self.0 == pair.0 && self.1 == pair.1
    }
}

/// Cryptographic operations: a use of the key, as opposed to managing it.
pub fn is_use(event_name: &str) -> bool {
    matches!(
        event_name,
        "Encrypt"
            | "Decrypt"
            | "ReEncrypt"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateDataKeyPair"
            | "GenerateDataKeyPairWithoutPlaintext"
            | "Sign"
            | "Verify"
            | "GenerateMac"
            | "VerifyMac"
            | "DeriveSharedSecret"
    )
}

/// The most administrative events listed; the count covers all.
pub const ADMIN_LIMIT: usize = 5_000;

impl Activity {
    /// Adds one record.
    pub fn add(&mut self, r: &KmsRecord<'_>, rules: &Rules) {
        self.add_n(r, 1, rules);
    }

    /// Adds `n` events that are alike in everything the analysis looks at, `r` being the first
    /// of them (a source that aggregates, such as CloudTrail Lake, passes one row per group).
    /// Maps are looked up by reference and keys copied only when new: this runs once per KMS
    /// record.
    pub fn add_n(&mut self, r: &KmsRecord<'_>, n: u64, rules: &Rules) {
        let keep = rules.config.evidence_per_detection;
        if !r.fields.time {
            self.undated += n;
        } else if r.event_time < rules.since || r.event_time >= rules.until {
            self.outside_window += n;
            return;
        }
        self.events += n;
        self.fields.add(r, n);
        self.region_key.clear();
        r.write_account_region(&mut self.region_key);
        if !r.fields.all() {
            self.incomplete
                .entry((self.region_key.clone(), r.fields.missing()))
                .or_default()
                .add(r.evidence(), n, INCOMPLETE_EXAMPLES);
        }
        entry(&mut self.regions, &self.region_key).add(r, n);
        let failed = if r.failed() { n } else { 0 };
        self.failed += failed;
        bump(&mut self.by_operation, &r.event_name, n);
        if let Some(code) = &r.error_code {
            bump(&mut self.errors_by_code, code, n);
        }
        if r.fields.time {
            let day = self.daily.entry(r.event_time.date_naive()).or_default();
            day.calls += n;
            day.failed += failed;
        }
        let principal = r.principal.as_deref().unwrap_or("<unknown>");
        // The key, when this principal had not used it before. (A tuple of two strings hashes
        // as `Pair` does: each string in turn.)
        let new_pair = match r.key.as_deref() {
            Some(key) if !self.pairs.contains(&Pair(key, principal)) => {
                self.pairs.insert((key.to_string(), principal.to_string()));
                Some(key)
            }
            _ => None,
        };
        if let Some(key) = &r.key {
            let k = entry(&mut self.by_key, key);
            k.calls += n;
            k.failed += failed;
            bump(&mut k.by_operation, &r.event_name, n);
            if let Some(code) = &r.error_code {
                bump(&mut k.errors_by_code, code, n);
            }
            if new_pair.is_some() {
                k.principals.insert(principal.to_string());
            }
        }
        let p = entry(&mut self.by_principal, principal);
        p.calls += n;
        p.failed += failed;
        bump(&mut p.by_operation, &r.event_name, n);
        if p.identity_type.is_none() {
            p.identity_type = r.identity_type.as_deref().map(str::to_string);
        }
        if p.account.is_none() {
            p.account = r.principal_account.as_deref().map(str::to_string);
        }
        if let Some(key) = new_pair {
            p.keys.insert(key.to_string());
        }
        if r.fields.time {
            let hour = r.event_time.timestamp().div_euclid(3600);
            let cell = entry(&mut self.hours, principal).entry(hour).or_default();
            cell.count += n;
            // EventRef orders by time, then id: build one only when this record can come first.
            let earlier = cell.first.as_ref().is_none_or(|f| {
                (r.event_time, r.event_id.as_ref()) <= (f.event_time, f.event_id.as_str())
            });
            if earlier {
                let ev = r.evidence();
                if cell.first.as_ref().is_none_or(|f| ev < *f) {
                    cell.first = Some(ev);
                }
            }
        }

        if crate::collect::cloudtrail::ADMINISTRATIVE_EVENTS.contains(&r.event_name.as_ref()) {
            self.admin.add(r.evidence(), n, ADMIN_LIMIT);
        }
        let mut detect = |kind: DetectionKind, detail: String| {
            let key = GroupKey {
                kind,
                principal: r.principal.as_deref().map(str::to_string),
                key: r.key.as_deref().map(str::to_string),
                detail,
            };
            self.groups
                .entry(key)
                .or_default()
                .add(r.evidence(), n, keep);
        };
        if r.identity_type.as_deref() == Some("Root") {
            detect(DetectionKind::RootUse, String::new());
        }
        if let Some(code) = r.error_code.as_deref() {
            if UNUSABLE_KEY_ERRORS.contains(&code) {
                detect(DetectionKind::UnusableKeyUse, code.to_string());
            } else if code == "AccessDenied" || code == "AccessDeniedException" {
                detect(DetectionKind::AccessDenied, r.event_name.to_string());
            }
        }
        if SENSITIVE_EVENTS.contains(&r.event_name.as_ref()) {
            detect(
                DetectionKind::SensitiveAdminChange,
                r.event_name.to_string(),
            );
        }
        if let (Some(caller), Some(owner)) = (r.principal_account.as_deref(), r.key_account())
            && caller != owner
            && !rules.allowed_accounts.contains(caller)
            && r.identity_type.as_deref() != Some("AWSService")
        {
            detect(
                DetectionKind::CrossAccountUse,
                format!("account {caller} on a key of account {owner}"),
            );
        }
        if !rules.allowed_ranges.is_empty()
            && let Some(ip) = r
                .source_ip
                .as_deref()
                .and_then(|s| s.parse::<IpAddr>().ok())
            && !rules.allowed_ranges.iter().any(|n| n.contains(&ip))
        {
            detect(DetectionKind::SourceIpOutsideRanges, ip.to_string());
        }
    }

    /// Adds every record of a slice (the tests' shorthand).
    #[cfg(test)]
    fn add_all(&mut self, records: &[KmsRecord<'_>], rules: &Rules) {
        for r in records {
            self.add(r, rules);
        }
    }

    /// Merges another partial into this one.
    pub fn merge(mut self, other: Activity, rules: &Rules) -> Activity {
        let keep = rules.config.evidence_per_detection;
        self.events += other.events;
        self.failed += other.failed;
        self.outside_window += other.outside_window;
        self.undated += other.undated;
        for (k, v) in other.by_key {
            let e = self.by_key.entry(k).or_default();
            e.calls += v.calls;
            e.failed += v.failed;
            add_counts(&mut e.by_operation, v.by_operation);
            add_counts(&mut e.errors_by_code, v.errors_by_code);
            e.principals.extend(v.principals);
        }
        for (k, v) in other.by_principal {
            let e = self.by_principal.entry(k).or_default();
            e.calls += v.calls;
            e.failed += v.failed;
            add_counts(&mut e.by_operation, v.by_operation);
            e.keys.extend(v.keys);
            if e.identity_type.is_none() {
                e.identity_type = v.identity_type;
            }
            if e.account.is_none() {
                e.account = v.account;
            }
        }
        add_counts(&mut self.by_operation, other.by_operation);
        add_counts(&mut self.errors_by_code, other.errors_by_code);
        for (d, v) in other.daily {
            let e = self.daily.entry(d).or_default();
            e.calls += v.calls;
            e.failed += v.failed;
        }
        self.fields.merge(&other.fields);
        for (k, v) in other.regions {
            self.regions.entry(k).or_default().merge(&v);
        }
        for (k, g) in other.incomplete {
            self.incomplete
                .entry(k)
                .or_default()
                .merge(g, INCOMPLETE_EXAMPLES);
        }
        self.admin.merge(other.admin, ADMIN_LIMIT);
        for (k, g) in other.groups {
            self.groups.entry(k).or_default().merge(g, keep);
        }
        for (principal, hours) in other.hours {
            let mine = self.hours.entry(principal).or_default();
            for (h, cell) in hours {
                let e = mine.entry(h).or_default();
                e.count += cell.count;
                if let Some(f) = cell.first
                    && e.first.as_ref().is_none_or(|mine| f < *mine)
                {
                    e.first = Some(f);
                }
            }
        }
        self.pairs.extend(other.pairs);
        self
    }

    /// The volume spikes, per principal (see the module documentation for the statistic).
    fn spikes(&self, rules: &Rules) -> Vec<Detection> {
        let cfg = &rules.config;
        let first_hour = rules.since.timestamp().div_euclid(3600);
        let last_hour = (rules.until.timestamp() - 1)
            .div_euclid(3600)
            .max(first_hour);
        let span = (last_hour - first_hour + 1) as usize;
        // The cycles a recurring job follows, and how many times the window must hold an hour
        // of the cycle before that hour is also judged against its own counts.
        let cycles = [
            Cycle::new(DAY, cfg.spike_hour_of_day_min_days, first_hour, last_hour),
            Cycle::new(
                WEEK,
                cfg.spike_hour_of_week_min_weeks,
                first_hour,
                last_hour,
            ),
        ];
        let mut out = Vec::new();
        for (principal, hours) in &self.hours {
            let whole = Baseline::of(hours.values().map(|h| h.count), span);
            'hours: for (hour, cell) in hours {
                let n = cell.count;
                if n < cfg.spike_min_calls || !whole.spike(n, cfg.spike_threshold) {
                    continue;
                }
                let mut detail = format!(
                    "baseline: median {} per hour, MAD {}, z = {:.1}",
                    whole.median,
                    whole.mad,
                    whole.z(n)
                );
                for cycle in &cycles {
                    let Some((own, samples)) = cycle.baseline(*hour, hours) else {
                        continue;
                    };
                    if !own.spike(n, cfg.spike_threshold) {
                        continue 'hours;
                    }
                    detail.push_str(&format!(
                        "; {}: median {}, MAD {}, z = {:.1}",
                        cycle.describe(*hour, samples),
                        own.median,
                        own.mad,
                        own.z(n)
                    ));
                }
                let start = DateTime::from_timestamp(hour * 3600, 0).unwrap_or(rules.since);
                out.push(Detection {
                    kind: DetectionKind::VolumeSpike,
                    severity: DetectionKind::VolumeSpike.severity().into(),
                    requirements: strings(DetectionKind::VolumeSpike.requirements()),
                    title: DetectionKind::VolumeSpike.title().into(),
                    principal: Some(principal.clone()),
                    key: None,
                    detail: format!(
                        "{n} calls in the hour from {} ({detail})",
                        start.format("%Y-%m-%d %H:00 UTC")
                    ),
                    count: n,
                    events: cell.first.iter().cloned().collect(),
                });
            }
        }
        out
    }

    /// The finished analysis.
    pub fn finish(self, rules: &Rules) -> ActivityReport {
        let mut detections: Vec<Detection> = self
            .groups
            .iter()
            .map(|(k, g)| {
                let mut events = g.events.clone();
                events.sort();
                events.truncate(rules.config.evidence_per_detection);
                Detection {
                    kind: k.kind,
                    severity: k.kind.severity().into(),
                    requirements: strings(k.kind.requirements()),
                    title: k.kind.title().into(),
                    principal: k.principal.clone(),
                    key: k.key.clone(),
                    detail: k.detail.clone(),
                    count: g.count,
                    events,
                }
            })
            .collect();
        detections.extend(self.spikes(rules));
        detections.sort_by(|a, b| {
            (
                a.kind,
                std::cmp::Reverse(a.count),
                &a.principal,
                &a.key,
                &a.detail,
            )
                .cmp(&(
                    b.kind,
                    std::cmp::Reverse(b.count),
                    &b.principal,
                    &b.key,
                    &b.detail,
                ))
        });
        let mut incomplete: BTreeMap<String, Vec<IncompleteEvents>> = BTreeMap::new();
        for ((region, missing), mut g) in self.incomplete {
            g.trim(INCOMPLETE_EXAMPLES);
            incomplete
                .entry(region)
                .or_default()
                .push(IncompleteEvents {
                    missing: strings(&missing),
                    count: g.count,
                    events: g.events,
                });
        }
        for list in incomplete.values_mut() {
            list.sort_by(|a, b| {
                (std::cmp::Reverse(a.count), &a.missing)
                    .cmp(&(std::cmp::Reverse(b.count), &b.missing))
            });
        }
        let mut admin = self.admin.events.clone();
        admin.sort();
        let admin_omitted = self.admin.count.saturating_sub(admin.len() as u64);
        ActivityReport {
            window_start: rules.since,
            window_end: rules.until,
            events: self.events,
            failed: self.failed,
            outside_window: self.outside_window,
            undated: self.undated,
            by_operation: self.by_operation,
            errors_by_code: self.errors_by_code,
            daily: self.daily,
            keys: self.by_key.into_iter().collect(),
            principals: self.by_principal.into_iter().collect(),
            fields: self.fields,
            regions: self.regions.into_iter().collect(),
            incomplete,
            admin_events: admin,
            admin_omitted,
            detections,
            source_ip_check: !rules.allowed_ranges.is_empty(),
        }
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Adds `n` to `map[key]`, copying the key only when it is new.
fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_string(), n);
        }
    }
}

/// `map[key]`, inserted as the default when new, copying the key only then.
fn entry<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> &'m mut V {
    map.entry_ref(key).or_default()
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

/// A cycle a recurring job may follow: its length in hours, and how a place in it is named.
struct Period {
    hours: i64,
    /// `strftime` of an hour's place in the cycle ("at 02:00").
    place: &'static str,
    /// The preposition and the plural name of the cycle ("on the window's 14 days").
    within: &'static str,
    unit: &'static str,
}

const DAY: Period = Period {
    hours: 24,
    place: "at %H:00",
    within: "on",
    unit: "days",
};

const WEEK: Period = Period {
    hours: 168,
    place: "on %A at %H:00",
    within: "in",
    unit: "weeks",
};

/// A cycle over the window: how often the window holds each hour of it.
struct Cycle {
    period: Period,
    /// Times the window must hold an hour of the cycle before it is judged within the cycle
    /// (0: never).
    min_samples: usize,
    /// Hours of the window at each hour of the cycle: the size of that hour's own sample.
    samples: Vec<usize>,
}

impl Cycle {
    fn new(period: Period, min_samples: u32, first_hour: i64, last_hour: i64) -> Cycle {
        let mut samples = vec![0usize; period.hours as usize];
        for h in first_hour..=last_hour {
            if let Some(n) = samples.get_mut(h.rem_euclid(period.hours) as usize) {
                *n += 1;
            }
        }
        Cycle {
            period,
            min_samples: min_samples as usize,
            samples,
        }
    }

    /// The baseline of `hour`'s place in the cycle (the principal's counts at that place in
    /// every cycle of the window, silent ones as zero) and the number of those cycles, when the
    /// window holds it often enough.
    fn baseline(&self, hour: i64, hours: &BTreeMap<i64, Hour>) -> Option<(Baseline, usize)> {
        let slot = hour.rem_euclid(self.period.hours);
        let samples = *self.samples.get(slot as usize)?;
        if self.min_samples == 0 || samples < self.min_samples {
            return None;
        }
        let same = hours
            .iter()
            .filter(|(h, _)| h.rem_euclid(self.period.hours) == slot)
            .map(|(_, c)| c.count);
        Some((Baseline::of(same, samples), samples))
    }

    /// Which place in the cycle `hour` is, over the window's `samples` cycles.
    fn describe(&self, hour: i64, samples: usize) -> String {
        let start = DateTime::from_timestamp(hour * 3600, 0).unwrap_or_default();
        let Period {
            place,
            within,
            unit,
            ..
        } = self.period;
        format!(
            "{} {within} the window's {samples} {unit}",
            start.format(place)
        )
    }
}

/// A robust baseline of hourly call counts: their median and median absolute deviation.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    median: u64,
    mad: u64,
}

impl Baseline {
    /// The baseline of `counts` padded with zeros to `hours` values (the silent hours).
    fn of(counts: impl Iterator<Item = u64>, hours: usize) -> Baseline {
        let mut counts: Vec<u64> = counts.collect();
        counts.resize(hours.max(counts.len()), 0);
        let median = median_of(&mut counts);
        let mut deviations: Vec<u64> = counts.iter().map(|c| c.abs_diff(median)).collect();
        Baseline {
            median,
            mad: median_of(&mut deviations),
        }
    }

    /// The robust z-score of an hour with `n` calls.
    fn z(&self, n: u64) -> f64 {
        let scale = (1.4826 * self.mad as f64).max(1.0);
        (n as f64 - self.median as f64) / scale
    }

    /// Whether `n` calls stand out: at least three times the median and `threshold` robust
    /// standard deviations above it.
    fn spike(&self, n: u64, threshold: f64) -> bool {
        n >= self.median.saturating_mul(3) && self.z(n) >= threshold
    }
}

fn median_of(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable(mid).1
}

/// The finished analysis of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityReport {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// KMS events in the window.
    pub events: u64,
    pub failed: u64,
    pub outside_window: u64,
    pub undated: u64,
    pub by_operation: BTreeMap<String, u64>,
    pub errors_by_code: BTreeMap<String, u64>,
    pub daily: BTreeMap<NaiveDate, DayVolume>,
    pub keys: BTreeMap<String, KeyActivity>,
    pub principals: BTreeMap<String, PrincipalActivity>,
    /// PCI DSS 10.2.2: how many records carry each required field.
    pub fields: FieldCounts,
    /// The same per `account/region` of the trail that recorded the events.
    #[serde(default)]
    pub regions: BTreeMap<String, FieldCounts>,
    /// Per `account/region`, the events lacking 10.2.2 fields, grouped by the fields they
    /// lack (most events first), each group with its first events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub incomplete: BTreeMap<String, Vec<IncompleteEvents>>,
    /// Administrative events, oldest first (at most [`ADMIN_LIMIT`]).
    pub admin_events: Vec<EventRef>,
    pub admin_omitted: u64,
    pub detections: Vec<Detection>,
    /// Whether source IPs were checked (allowed ranges are configured).
    pub source_ip_check: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::record::RequiredFields;

    fn rules() -> Rules {
        let since = "2026-11-01T00:00:00Z".parse().expect("time");
        let until = "2026-11-02T00:00:00Z".parse().expect("time");
        Rules::new(
            since,
            until,
            &["999988887777".to_string()],
            &LogsConfig {
                allowed_source_cidrs: vec!["10.0.0.0/8".into()],
                ..LogsConfig::default()
            },
        )
        .expect("rules")
    }

    fn rec(id: &str, minute: i64, name: &str) -> KmsRecord<'static> {
        KmsRecord {
            event_id: id.to_string().into(),
            event_time: DateTime::from_timestamp(1_793_491_200 + minute * 60, 0).expect("time"),
            event_name: name.to_string().into(),
            region: "eu-west-1".into(),
            account: Some("111122223333".into()),
            identity_type: Some("AssumedRole".into()),
            principal: Some("arn:aws:iam::111122223333:role/app".into()),
            principal_account: Some("111122223333".into()),
            source_ip: Some("10.1.2.3".into()),
            key: Some("arn:aws:kms:eu-west-1:111122223333:key/k1".into()),
            error_code: None,
            fields: RequiredFields {
                identity: true,
                event_type: true,
                time: true,
                outcome: true,
                origin: true,
                resource: true,
            },
        }
    }

    #[test]
    fn detections_and_merge_do_not_depend_on_order() {
        let rules = rules();
        let mut records = Vec::new();
        for i in 0..50 {
            records.push(rec(&format!("use-{i}"), i, "Decrypt"));
        }
        let mut root = rec("root-1", 5, "Decrypt");
        root.identity_type = Some("Root".into());
        root.principal = Some("arn:aws:iam::111122223333:root".into());
        let mut foreign = rec("x-1", 7, "Decrypt");
        foreign.principal_account = Some("444455556666".into());
        foreign.principal = Some("arn:aws:iam::444455556666:role/x".into());
        let mut allowed = rec("dr-1", 8, "Decrypt");
        allowed.principal_account = Some("999988887777".into());
        let mut ip = rec("ip-1", 9, "Encrypt");
        ip.source_ip = Some("198.51.100.7".into());
        let mut service = rec("svc-1", 9, "Decrypt");
        service.source_ip = Some("s3.amazonaws.com".into());
        let mut pending = rec("pd-1", 10, "Decrypt");
        pending.error_code = Some("KMSInvalidStateException".into());
        let mut denied = rec("ad-1", 11, "Decrypt");
        denied.error_code = Some("AccessDenied".into());
        let sched = rec("sd-1", 12, "ScheduleKeyDeletion");
        let outside = rec("old-1", -10, "Decrypt");
        records.extend([
            root, foreign, allowed, ip, service, pending, denied, sched, outside,
        ]);

        let one = {
            let mut a = Activity::default();
            a.add_all(&records, &rules);
            a.finish(&rules)
        };
        let split = {
            let (x, y) = records.split_at(23);
            let mut a = Activity::default();
            a.add_all(y, &rules);
            let mut b = Activity::default();
            b.add_all(x, &rules);
            a.merge(b, &rules).finish(&rules)
        };
        assert_eq!(one, split);
        let kinds: Vec<(DetectionKind, String)> = one
            .detections
            .iter()
            .map(|d| {
                (
                    d.kind,
                    d.events
                        .first()
                        .map(|e| e.event_id.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (DetectionKind::RootUse, "root-1".to_string()),
                (DetectionKind::UnusableKeyUse, "pd-1".into()),
                (DetectionKind::CrossAccountUse, "x-1".into()),
                (DetectionKind::SourceIpOutsideRanges, "ip-1".into()),
                (DetectionKind::AccessDenied, "ad-1".into()),
                (DetectionKind::SensitiveAdminChange, "sd-1".into()),
            ]
        );
        assert_eq!(one.events, 58);
        assert_eq!(one.outside_window, 1);
        assert_eq!(one.failed, 2);
        assert_eq!(one.admin_events.len(), 1);
    }

    #[test]
    fn events_lacking_fields_are_cited_per_region_and_missing_fields() {
        let rules = rules();
        let mut records: Vec<KmsRecord<'static>> = (0..10)
            .map(|i| rec(&format!("ok-{i}"), i, "Decrypt"))
            .collect();
        for i in 0..7 {
            let mut r = rec(&format!("noip-{i}"), 20 - i, "Decrypt");
            r.source_ip = None;
            r.fields.origin = false;
            records.push(r);
        }
        let mut bare = rec("bare-1", 30, "GenerateDataKey");
        bare.fields.identity = false;
        bare.fields.resource = false;
        records.push(bare);
        let mut elsewhere = rec("us-1", 31, "Decrypt");
        elsewhere.region = "us-east-1".into();
        elsewhere.fields.outcome = false;
        records.push(elsewhere);

        let one = {
            let mut a = Activity::default();
            a.add_all(&records, &rules);
            a.finish(&rules)
        };
        let split = {
            let (x, y) = records.split_at(12);
            let (mut a, mut b) = (Activity::default(), Activity::default());
            a.add_all(y, &rules);
            b.add_all(x, &rules);
            a.merge(b, &rules).finish(&rules)
        };
        assert_eq!(one, split);
        let summary: Vec<(&str, Vec<String>, u64, Vec<&str>)> = one
            .incomplete
            .iter()
            .flat_map(|(region, groups)| {
                groups.iter().map(move |g| {
                    let ids = g.events.iter().map(|e| e.event_id.as_str()).collect();
                    (region.as_str(), g.missing.clone(), g.count, ids)
                })
            })
            .collect();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            summary,
            vec![
                (
                    "111122223333/eu-west-1",
                    names(&["origin"]),
                    7,
                    // The first five by time, oldest first.
                    vec!["noip-6", "noip-5", "noip-4", "noip-3", "noip-2"],
                ),
                (
                    "111122223333/eu-west-1",
                    names(&["identity", "resource"]),
                    1,
                    vec!["bare-1"],
                ),
                (
                    "111122223333/us-east-1",
                    names(&["outcome"]),
                    1,
                    vec!["us-1"]
                ),
            ]
        );
        assert_eq!(one.fields.complete, 10);
    }

    #[test]
    fn a_spike_against_the_principals_own_baseline() {
        let rules = rules();
        let mut a = Activity::default();
        // 20 calls an hour all day, then 400 in hour 13.
        for hour in 0..24 {
            let n = if hour == 13 { 400 } else { 20 };
            for i in 0..n {
                a.add(
                    &rec(&format!("h{hour}-{i}"), hour * 60 + (i % 60), "Decrypt"),
                    &rules,
                );
            }
        }
        let report = a.finish(&rules);
        let spikes: Vec<&Detection> = report
            .detections
            .iter()
            .filter(|d| d.kind == DetectionKind::VolumeSpike)
            .collect();
        assert_eq!(spikes.len(), 1, "{spikes:?}");
        assert_eq!(spikes[0].count, 400);
        assert!(
            spikes[0].detail.contains("13:00 UTC"),
            "{}",
            spikes[0].detail
        );

        // A steady 400 an hour is its own baseline: no spike.
        let mut steady = Activity::default();
        for hour in 0..24 {
            for i in 0..400 {
                steady.add(
                    &rec(&format!("s{hour}-{i}"), hour * 60 + (i % 60), "Decrypt"),
                    &rules,
                );
            }
        }
        assert!(
            steady
                .finish(&rules)
                .detections
                .iter()
                .all(|d| d.kind != DetectionKind::VolumeSpike)
        );
    }

    /// `n` Decrypt calls by `principal` in the hour `hour` hours after 2026-11-01 00:00 UTC.
    fn calls(a: &mut Activity, rules: &Rules, principal: &str, hour: i64, n: u64) {
        for i in 0..n {
            let mut r = rec(
                &format!("{principal}-{hour}-{i}"),
                hour * 60 + (i % 60) as i64,
                "Decrypt",
            );
            r.principal = Some(format!("arn:aws:iam::111122223333:role/{principal}").into());
            a.add(&r, rules);
        }
    }

    /// (principal's role name, hour of the spike) of each spike, in order.
    fn spike_hours(report: &ActivityReport) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = report
            .detections
            .iter()
            .filter(|d| d.kind == DetectionKind::VolumeSpike)
            .map(|d| {
                let role = d.principal.as_deref().unwrap_or("");
                let role = role.rsplit('/').next().unwrap_or("").to_string();
                let at = d.detail.split(" from ").nth(1).unwrap_or("");
                (role, at.get(..16).unwrap_or("").to_string())
            })
            .collect();
        v.sort();
        v
    }

    /// 2026-11-01 00:00 UTC, a Sunday: where the long-window spike tests start.
    fn nov_1() -> DateTime<Utc> {
        "2026-11-01T00:00:00Z".parse().expect("time")
    }

    /// Rules over `days` days from [`nov_1`].
    fn days_from_nov_1(days: i64, config: LogsConfig) -> Rules {
        Rules::new(
            nov_1(),
            nov_1() + chrono::Duration::days(days),
            &[],
            &config,
        )
        .expect("rules")
    }

    /// The detail of the report's first volume spike.
    fn first_spike_detail(report: &ActivityReport) -> &str {
        report
            .detections
            .iter()
            .find(|d| d.kind == DetectionKind::VolumeSpike)
            .map(|d| d.detail.as_str())
            .expect("spike")
    }

    #[test]
    fn a_daily_job_is_its_own_baseline_over_a_long_window_and_a_dormant_credential_is_not() {
        let days = 14;
        let window = |min_days: u32| {
            days_from_nov_1(
                days,
                LogsConfig {
                    spike_hour_of_day_min_days: min_days,
                    ..LogsConfig::default()
                },
            )
        };
        let fill = |rules: &Rules| {
            let mut a = Activity::default();
            for day in 0..days {
                // The batch job: 500 calls at 02:00 every day, a few in the other hours.
                for hour in 0..24 {
                    let n = if hour == 2 { 500 } else { 3 };
                    calls(&mut a, rules, "batch", day * 24 + hour, n);
                }
            }
            // A credential unused for 13 days, then 300 calls at 02:00 and 150 at 15:00.
            calls(&mut a, rules, "dormant", 13 * 24 + 2, 300);
            calls(&mut a, rules, "dormant", 13 * 24 + 15, 150);
            a.finish(rules)
        };

        let dormant = vec![
            ("dormant".to_string(), "2026-11-14 02:00".to_string()),
            ("dormant".to_string(), "2026-11-14 15:00".to_string()),
        ];
        let report = fill(&window(7));
        assert_eq!(spike_hours(&report), dormant);
        let detail = first_spike_detail(&report);
        assert!(
            detail.contains("at 02:00 on the window's 14 days: median 0"),
            "{detail}"
        );

        // With the hour-of-day test off, the window's median hour of the batch job is 3 calls,
        // so each of its 14 runs is a spike, as it was before the test existed.
        let mut every_day: Vec<(String, String)> = (1..=14)
            .map(|d| ("batch".to_string(), format!("2026-11-{d:02} 02:00")))
            .collect();
        every_day.extend(dormant.clone());
        assert_eq!(spike_hours(&fill(&window(0))), every_day);
        // A window shorter than the days asked for also keeps the whole-window test alone.
        assert_eq!(spike_hours(&fill(&window(15))), every_day);
    }

    #[test]
    fn a_weekly_job_is_its_own_baseline_over_four_weeks_or_more() {
        let weeks = 8;
        let window = |min_weeks: u32| {
            days_from_nov_1(
                weeks * 7,
                LogsConfig {
                    spike_hour_of_week_min_weeks: min_weeks,
                    ..LogsConfig::default()
                },
            )
        };
        let fill = |rules: &Rules| {
            let mut a = Activity::default();
            for day in 0..weeks * 7 {
                // The weekly job: 500 calls on Sundays at 03:00, a few in every other hour.
                for hour in 0..24 {
                    let n = if day % 7 == 0 && hour == 3 { 500 } else { 3 };
                    calls(&mut a, rules, "weekly", day * 24 + hour, n);
                }
            }
            // A credential unused for seven weeks, then 300 calls on a Sunday at 03:00.
            calls(&mut a, rules, "dormant", 49 * 24 + 3, 300);
            a.finish(rules)
        };

        let report = fill(&window(4));
        assert_eq!(
            spike_hours(&report),
            vec![("dormant".to_string(), "2026-12-20 03:00".to_string())]
        );
        let detail = first_spike_detail(&report);
        assert!(
            detail.contains("on Sunday at 03:00 in the window's 8 weeks: median 0"),
            "{detail}"
        );

        // Against its hour of the day alone (03:00 is quiet six days a week), each of the job's
        // eight runs is a spike: so it is with the hour-of-week test off, or a window of fewer
        // weeks than asked for.
        let mut every_week: Vec<(String, String)> = (0..weeks)
            .map(|w| {
                let day = nov_1() + chrono::Duration::weeks(w) + chrono::Duration::hours(3);
                (
                    "weekly".to_string(),
                    day.format("%Y-%m-%d %H:00").to_string(),
                )
            })
            .collect();
        every_week.push(("dormant".to_string(), "2026-12-20 03:00".to_string()));
        every_week.sort();
        assert_eq!(spike_hours(&fill(&window(0))), every_week);
        assert_eq!(spike_hours(&fill(&window(9))), every_week);
    }
}
