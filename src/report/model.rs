//! The one report model every format is rendered from: snapshot identity, scope, summaries by
//! requirement and control, findings with evidence and remediation, gaps, key inventory and
//! encryption coverage.
//!
//! Building it is pure: the same snapshot, controls, config and framework give the same model,
//! which is what makes every report reproducible byte for byte from its snapshot.

use crate::analyze::ResourceType;
use crate::config::Config;
use crate::rules::{ControlSet, EvidenceItem, Finding, Framework, Severity, Status};
use crate::snapshot::{AccountRef, Gap, LoadedSnapshot, SnapshotSource};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Counts of findings by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub manual: usize,
    pub not_applicable: usize,
    pub total: usize,
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Pass => self.pass += 1,
            Status::Fail => self.fail += 1,
            Status::Error => self.error += 1,
            Status::Manual => self.manual += 1,
            Status::NotApplicable => self.not_applicable += 1,
        }
        self.total += 1;
    }

    fn merge(&mut self, other: &Counts) {
        self.pass += other.pass;
        self.fail += other.fail;
        self.error += other.error;
        self.manual += other.manual;
        self.not_applicable += other.not_applicable;
        self.total += other.total;
    }

    /// The verdict for a group: FAIL beats ERROR beats MANUAL beats PASS.
    pub fn overall(&self) -> Status {
        if self.fail > 0 {
            Status::Fail
        } else if self.error > 0 {
            Status::Error
        } else if self.manual > 0 {
            Status::Manual
        } else if self.pass > 0 {
            Status::Pass
        } else {
            Status::NotApplicable
        }
    }
}

/// Run metadata every report states.
#[derive(Debug, Clone, Serialize)]
pub struct ReportMeta {
    pub title: String,
    pub tool_name: String,
    pub tool_version: String,
    /// SHA-256 of the snapshot file's bytes.
    pub snapshot_sha256: String,
    pub snapshot_source: SnapshotSource,
    /// Set for anything that is not live AWS evidence; reports show it prominently.
    pub source_notice: Option<String>,
    /// Version of the tool that collected the snapshot (may differ from the one reporting).
    pub collected_by: String,
    pub collected_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub events_since: Option<DateTime<Utc>>,
    pub accounts: Vec<AccountRef>,
    pub regions: Vec<String>,
    pub framework: Framework,
    pub framework_label: String,
    pub other_framework_label: String,
    pub controls_digest: String,
    pub controls_origin: String,
    pub config_digest: String,
}

/// One requirement of the chosen framework with the controls that test it.
#[derive(Debug, Clone, Serialize)]
pub struct RequirementSummary {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub counts: Counts,
    pub controls: Vec<String>,
}

/// One control with its results.
#[derive(Debug, Clone, Serialize)]
pub struct ControlSummary {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    /// Requirements in the chosen framework, then in the other one.
    pub requirements: Vec<String>,
    pub other_requirements: Vec<String>,
    pub pci_dss_v4: Vec<String>,
    pub pci_dss_v321: Vec<String>,
    pub applies_to: ResourceType,
    pub aws_config_rule: Option<String>,
    pub security_hub: Option<String>,
    pub status: Status,
    pub counts: Counts,
    pub remediation_text: String,
    pub terraform: Option<String>,
    pub url: Option<String>,
}

/// One finding, flattened with what a reader needs beside it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportFinding {
    pub control_id: String,
    pub title: String,
    pub status: Status,
    pub severity: Severity,
    pub pci_dss_v4: Vec<String>,
    pub pci_dss_v321: Vec<String>,
    pub account_id: String,
    pub region: String,
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub resource_arn: String,
    pub snapshot_pointer: String,
    pub evidence: Vec<EvidenceItem>,
    /// The evidence as one line: `field = value; ...`.
    pub evidence_text: String,
    pub detail: String,
    /// For FAIL findings: how to fix it (empty otherwise; see the control summary).
    pub remediation: String,
    /// For FAIL findings: the AWS CLI command with this finding's identifiers filled in
    /// (shell-quoted).
    pub aws_cli: Option<String>,
}

/// One row of the key inventory appendix.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    pub account_id: String,
    pub region: String,
    pub key_id: String,
    pub arn: String,
    pub aliases: Vec<String>,
    pub description: String,
    pub key_manager: String,
    pub state: String,
    pub spec: String,
    pub origin: String,
    pub rotation: String,
    pub multi_region: String,
}

/// Encryption coverage of one resource type.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageRow {
    pub resource_type: String,
    pub total: usize,
    pub encrypted: usize,
    pub customer_managed: usize,
    pub unknown: usize,
    /// Share of resources encrypted with a customer managed key, in percent (one decimal).
    pub cmk_percent: String,
    /// Encrypted with a customer managed key whose envelope self-test passed.
    pub proven: usize,
    /// `proven` as a share of all resources, in percent; `n/a` without a self-test.
    pub proven_percent: String,
}

/// The envelope-encryption self-test, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct SelfTestSection {
    pub provider: String,
    /// Set when the provider is not AWS KMS.
    pub provider_notice: Option<String>,
    pub run_id: String,
    pub kat_passed: bool,
    pub kat_vectors: u32,
    pub kat_failures: Vec<String>,
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub not_tested: usize,
    /// Per key, FAIL and ERROR first.
    pub keys: Vec<crate::snapshot::KeySelfTest>,
}

/// Everything a report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub meta: ReportMeta,
    pub totals: Counts,
    pub requirements: Vec<RequirementSummary>,
    pub controls: Vec<ControlSummary>,
    pub findings: Vec<ReportFinding>,
    pub gaps: Vec<Gap>,
    pub key_inventory: Vec<KeyRow>,
    pub coverage: Vec<CoverageRow>,
    /// `None` when the snapshot holds no self-test.
    pub selftest: Option<SelfTestSection>,
    /// Since the last run and the trend; only for sealed runs with earlier runs beside them.
    pub history: Option<crate::history::HistorySection>,
    /// KMS activity from the trail's log files; `None` when the snapshot holds none.
    pub kms_activity: Option<super::activity::ActivitySection>,
    /// Every detection of the KMS activity, for `kms-anomalies.csv` beside `findings.csv`.
    #[serde(skip)]
    pub kms_anomalies: Option<Vec<crate::logs::Detection>>,
}

impl Report {
    /// Findings that need action: FAIL and ERROR.
    pub fn actionable(&self) -> impl Iterator<Item = &ReportFinding> {
        self.findings
            .iter()
            .filter(|f| matches!(f.status, Status::Fail | Status::Error))
    }
}

/// Builds the report model.
pub fn build_report(
    loaded: &LoadedSnapshot,
    controls: &ControlSet,
    config: &Config,
    findings: &[Finding],
    framework: Framework,
) -> Report {
    let snap = &loaded.snapshot;
    let other = match framework {
        Framework::PciDss401 => Framework::PciDss321,
        Framework::PciDss321 => Framework::PciDss401,
    };
    let source_notice = match snap.source {
        SnapshotSource::Aws => None,
        SnapshotSource::Sample => Some(
            "SAMPLE DATA: evidence from keyproof's embedded fictitious estate, not from AWS. Not valid as audit evidence.".to_string(),
        ),
        SnapshotSource::Synthetic => Some(
            "SYNTHETIC DATA: generated for benchmarking, not from AWS. Not valid as audit evidence.".to_string(),
        ),
    };
    let meta = ReportMeta {
        title: "Key management and audit logging evidence".into(),
        tool_name: "keyproof".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        snapshot_sha256: loaded.sha256.clone(),
        snapshot_source: snap.source,
        source_notice,
        collected_by: format!("{} {}", snap.tool.name, snap.tool.version),
        collected_at: snap.collected_at,
        completed_at: snap.completed_at,
        events_since: snap.scope.events_since,
        accounts: snap.scope.accounts.clone(),
        regions: snap.scope.regions.clone(),
        framework,
        framework_label: framework.label().into(),
        other_framework_label: other.label().into(),
        controls_digest: controls.digest.clone(),
        controls_origin: controls.origin.clone(),
        config_digest: hex::encode(Sha256::digest(config.canonical_json().as_bytes())),
    };

    let by_id: HashMap<&str, &crate::rules::Control> = controls
        .controls
        .iter()
        .map(|c| (c.def.id.as_str(), c))
        .collect();
    let mut totals = Counts::default();
    let mut per_control: HashMap<&str, Counts> = HashMap::new();
    let mut report_findings = Vec::with_capacity(findings.len());
    for f in findings {
        totals.add(f.status);
        per_control
            .entry(f.control_id.as_str())
            .or_default()
            .add(f.status);
        let Some(c) = by_id.get(f.control_id.as_str()) else {
            continue;
        };
        report_findings.push(ReportFinding {
            control_id: f.control_id.clone(),
            title: c.def.title.clone(),
            status: f.status,
            severity: c.def.severity,
            pci_dss_v4: c.def.pci_dss_v4.clone(),
            pci_dss_v321: c.def.pci_dss_v321.clone(),
            account_id: f.account_id.clone(),
            region: f.region.clone(),
            resource_type: f.resource_type,
            resource_id: f.resource_id.clone(),
            resource_arn: f.resource_arn.clone(),
            snapshot_pointer: f.snapshot_pointer.clone(),
            evidence_text: evidence_text(&f.evidence),
            evidence: f.evidence.clone(),
            detail: f.detail.clone(),
            // The fix is per finding only where there is something to fix; the control
            // summary carries it for everything else.
            remediation: if f.status == Status::Fail {
                c.def.remediation.text.trim().to_string()
            } else {
                String::new()
            },
            aws_cli: c
                .def
                .remediation
                .aws_cli
                .as_ref()
                .filter(|_| f.status == Status::Fail)
                .map(|cmd| fill_command(cmd, f)),
        });
    }

    let control_summaries: Vec<ControlSummary> = controls
        .controls
        .iter()
        .map(|c| {
            let counts = per_control
                .get(c.def.id.as_str())
                .cloned()
                .unwrap_or_default();
            ControlSummary {
                id: c.def.id.clone(),
                title: c.def.title.clone(),
                description: c.def.description.trim().to_string(),
                severity: c.def.severity,
                requirements: c.requirements(framework).to_vec(),
                other_requirements: c.requirements(other).to_vec(),
                pci_dss_v4: c.def.pci_dss_v4.clone(),
                pci_dss_v321: c.def.pci_dss_v321.clone(),
                applies_to: c.def.applies_to,
                aws_config_rule: c.def.aws_config_rule.clone(),
                security_hub: c.def.security_hub.clone(),
                status: counts.overall(),
                counts,
                remediation_text: c.def.remediation.text.trim().to_string(),
                terraform: c.def.remediation.terraform.clone(),
                url: c.def.remediation.url.clone(),
            }
        })
        .collect();

    let mut reqs: BTreeMap<Vec<u32>, RequirementSummary> = BTreeMap::new();
    for cs in &control_summaries {
        for r in &cs.requirements {
            let entry = reqs
                .entry(crate::rules::pci::requirement_sort_key(r))
                .or_insert_with(|| RequirementSummary {
                    id: r.clone(),
                    title: framework.title(r).unwrap_or("").to_string(),
                    status: Status::NotApplicable,
                    counts: Counts::default(),
                    controls: Vec::new(),
                });
            entry.controls.push(cs.id.clone());
            entry.counts.merge(&cs.counts);
        }
    }
    let requirements = reqs
        .into_values()
        .map(|mut r| {
            r.status = r.counts.overall();
            r
        })
        .collect();

    Report {
        meta,
        totals,
        requirements,
        controls: control_summaries,
        findings: report_findings,
        gaps: snap.gaps.clone(),
        key_inventory: key_inventory(loaded),
        coverage: coverage(loaded),
        selftest: selftest_section(loaded),
        history: None,
        kms_activity: snap.kms_activity.as_ref().map(super::activity::section),
        kms_anomalies: snap
            .kms_activity
            .as_ref()
            .map(|a| a.activity.detections.clone()),
    }
}

/// `field = value; ...` with JSON values, strings unquoted.
fn evidence_text(items: &[EvidenceItem]) -> String {
    items
        .iter()
        .map(|e| {
            let v = match &e.value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{} = {}", e.field, v)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Fills `{resource_id}` and friends into a CLI template, quoting values for a POSIX shell.
/// Identifiers come from AWS and are normally plain, but a resource name is chosen by whoever
/// created it, so nothing is inserted unquoted.
fn fill_command(template: &str, f: &Finding) -> String {
    template
        .trim()
        .replace("{resource_id}", &shell_quote(&f.resource_id))
        .replace("{resource_arn}", &shell_quote(&f.resource_arn))
        .replace("{region}", &shell_quote(&f.region))
        .replace("{account_id}", &shell_quote(&f.account_id))
}

/// Quotes `s` for a POSIX shell unless it is made only of characters that need no quoting.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn key_inventory(loaded: &LoadedSnapshot) -> Vec<KeyRow> {
    let mut rows = Vec::new();
    for acct in &loaded.snapshot.accounts {
        for reg in &acct.regions {
            for k in &reg.kms_keys {
                let rotation = match &k.rotation {
                    None => "not reported".to_string(),
                    Some(r) if !r.enabled => "off".to_string(),
                    Some(r) => match r.period_days {
                        Some(d) => format!("every {d} days"),
                        None => "on (period not reported)".to_string(),
                    },
                };
                rows.push(KeyRow {
                    account_id: acct.account_id.clone(),
                    region: reg.region.clone(),
                    key_id: k.key_id.clone(),
                    arn: k.arn.clone(),
                    aliases: k.aliases.clone(),
                    description: k.description.clone(),
                    key_manager: k.key_manager.clone(),
                    state: k.state.clone(),
                    spec: k.spec.clone(),
                    origin: k.origin.clone(),
                    rotation,
                    multi_region: k
                        .multi_region
                        .as_ref()
                        .map(|m| m.key_type.clone())
                        .unwrap_or_default(),
                });
            }
        }
    }
    rows
}

fn coverage(loaded: &LoadedSnapshot) -> Vec<CoverageRow> {
    #[derive(Default, Clone, Copy)]
    struct Tally {
        total: usize,
        encrypted: usize,
        cmk: usize,
        unknown: usize,
        proven: usize,
    }
    let snap = &loaded.snapshot;
    let index = crate::analyze::KeyIndex::new(snap);
    let passed: std::collections::HashSet<&str> = snap
        .selftest
        .iter()
        .flat_map(|st| st.keys.iter())
        .filter(|k| k.result == "PASS")
        .map(|k| k.key_arn.as_str())
        .collect();
    let mut by_type: BTreeMap<&str, Tally> = BTreeMap::new();
    for acct in &snap.accounts {
        for reg in &acct.regions {
            for r in &reg.resources {
                let e = by_type.entry(r.resource_type.as_str()).or_default();
                e.total += 1;
                match r.encrypted {
                    Some(true) => e.encrypted += 1,
                    Some(false) => {}
                    None => e.unknown += 1,
                }
                if r.encrypted == Some(true) && r.encryption_type == "CUSTOMER_KMS" {
                    e.cmk += 1;
                    let proven = r
                        .kms_key_id
                        .as_deref()
                        .and_then(|k| index.key(&acct.account_id, &reg.region, k))
                        .is_some_and(|k| passed.contains(k.arn.as_str()));
                    if proven {
                        e.proven += 1;
                    }
                }
            }
        }
    }
    let percent = |part: usize, total: usize| {
        if total == 0 {
            "n/a".to_string()
        } else {
            format!("{:.1}", part as f64 * 100.0 / total as f64)
        }
    };
    let tested = snap.selftest.is_some();
    let row = |name: &str, t: Tally| CoverageRow {
        resource_type: name.to_string(),
        total: t.total,
        encrypted: t.encrypted,
        customer_managed: t.cmk,
        unknown: t.unknown,
        cmk_percent: percent(t.cmk, t.total),
        proven: t.proven,
        proven_percent: if tested {
            percent(t.proven, t.total)
        } else {
            "n/a".into()
        },
    };
    let mut all = Tally::default();
    let mut rows: Vec<CoverageRow> = by_type
        .into_iter()
        .map(|(name, t)| {
            all.total += t.total;
            all.encrypted += t.encrypted;
            all.cmk += t.cmk;
            all.unknown += t.unknown;
            all.proven += t.proven;
            row(name, t)
        })
        .collect();
    rows.push(row("All resources", all));
    rows
}

fn selftest_section(loaded: &LoadedSnapshot) -> Option<SelfTestSection> {
    let st = loaded.snapshot.selftest.as_ref()?;
    let count = |r: &str| st.keys.iter().filter(|k| k.result == r).count();
    let rank = |r: &str| match r {
        "FAIL" => 0,
        "ERROR" => 1,
        "NOT_TESTED" => 2,
        _ => 3,
    };
    let mut keys = st.keys.clone();
    keys.sort_by(|a, b| {
        (rank(&a.result), &a.account_id, &a.region, &a.key_arn).cmp(&(
            rank(&b.result),
            &b.account_id,
            &b.region,
            &b.key_arn,
        ))
    });
    Some(SelfTestSection {
        provider_notice: (st.provider != "aws-kms").then(|| {
            "SIMULATED: this self-test ran against keyproof's in-process software key provider, not AWS KMS. It shows the procedure, not the keys.".to_string()
        }),
        provider: st.provider.clone(),
        run_id: st.run_id.clone(),
        kat_passed: st.kat.passed,
        kat_vectors: st.kat.vectors,
        kat_failures: st.kat.failures.clone(),
        pass: count("PASS"),
        fail: count("FAIL"),
        error: count("ERROR"),
        not_tested: count("NOT_TESTED"),
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_ids_and_quotes_the_rest() {
        assert_eq!(shell_quote("1234abcd-12ab"), "1234abcd-12ab");
        assert_eq!(
            shell_quote("arn:aws:kms:eu-west-1:111122223333:key/x"),
            "arn:aws:kms:eu-west-1:111122223333:key/x"
        );
        assert_eq!(shell_quote("a b;rm -rf /"), "'a b;rm -rf /'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
    }

    #[test]
    fn overall_status_order() {
        let mut c = Counts::default();
        c.add(Status::Pass);
        assert_eq!(c.overall(), Status::Pass);
        c.add(Status::Error);
        assert_eq!(c.overall(), Status::Error);
        c.add(Status::Fail);
        assert_eq!(c.overall(), Status::Fail);
    }
}
