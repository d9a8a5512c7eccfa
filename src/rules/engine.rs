//! The rule engine: snapshot + controls + config in, findings out. No I/O, no clock.
//!
//! Verdicts follow one principle: never a false PASS. A subject whose evidence has a gap in a
//! category the control needs is ERROR (with the gap named); an expression that fails to
//! evaluate, e.g. because a field it reads is `null` in the snapshot, is ERROR; an account ×
//! region in scope with no evidence and no recorded gap is ERROR too.

use super::cel_value::to_cel;
use super::control::{Control, ControlSet};
use crate::analyze::{ResourceType, Subject, build_subjects};
use crate::config::Config;
use crate::snapshot::{EvidenceKind, Gap, Snapshot};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// The outcome of one control on one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Fail,
    Error,
    Manual,
    Pass,
    NotApplicable,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Fail,
        Status::Error,
        Status::Manual,
        Status::Pass,
        Status::NotApplicable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::NotApplicable => "NOT_APPLICABLE",
            Status::Manual => "MANUAL",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One snapshot field a verdict used, with its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceItem {
    pub field: String,
    pub value: Value,
}

/// The result of one control on one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub control_id: String,
    pub status: Status,
    pub account_id: String,
    pub region: String,
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub resource_arn: String,
    /// JSON pointer to the snapshot record the verdict was computed from.
    pub snapshot_pointer: String,
    pub evidence: Vec<EvidenceItem>,
    /// Why the verdict is what it is, where more than the evidence is needed (errors, gaps).
    pub detail: String,
}

/// Evaluates every control against the snapshot.
pub fn evaluate(snapshot: &Snapshot, controls: &ControlSet, config: &Config) -> Vec<Finding> {
    let subjects = build_subjects(snapshot, config);
    let gaps = GapIndex::new(&snapshot.gaps);
    let params_json = serde_json::to_value(&config.parameters).unwrap_or(Value::Null);
    let by_type: HashMap<ResourceType, Vec<usize>> =
        controls
            .controls
            .iter()
            .enumerate()
            .fold(HashMap::new(), |mut m, (i, c)| {
                m.entry(c.def.applies_to).or_default().push(i);
                m
            });

    // Subject by subject, in parallel: each subject's view is converted for CEL once, however
    // many controls apply to it. Each worker has one root context (the CEL standard library is
    // costly to build) holding the parameters; a subject gets a child scope with its variable.
    let judged: Vec<Vec<(usize, Finding)>> = subjects
        .par_iter()
        .map_init(
            || {
                let mut root = cel::Context::default();
                root.add_variable_from_value("params", to_cel(&params_json));
                root
            },
            |root, subject| {
                let Some(indices) = by_type.get(&subject.resource_type) else {
                    return Vec::new();
                };
                let mut ctx = root.new_inner_scope();
                ctx.add_variable_from_value(
                    subject.resource_type.variable(),
                    to_cel(&subject.view),
                );
                indices
                    .iter()
                    .map(|&i| {
                        let control = &controls.controls[i];
                        (i, judge(control, subject, &ctx, &gaps, &params_json))
                    })
                    .collect()
            },
        )
        .collect();

    // Findings per control, in control order, subjects in snapshot order.
    let mut per_control: Vec<Vec<Finding>> = controls.controls.iter().map(|_| Vec::new()).collect();
    for (i, finding) in judged.into_iter().flatten() {
        per_control[i].push(finding);
    }
    let mut seen_types: HashMap<(String, String), BTreeSet<ResourceType>> = HashMap::new();
    for subject in &subjects {
        seen_types
            .entry((subject.account_id.clone(), subject.region.clone()))
            .or_default()
            .insert(subject.resource_type);
    }

    for (i, control) in controls.controls.iter().enumerate() {
        let out = &mut per_control[i];
        match control.def.applies_to {
            ResourceType::Attestation => out.push(manual_finding(control)),
            rt => {
                // Account × region pairs in scope with nothing to evaluate: either a gap
                // explains it (ERROR naming the gap) or nothing does (ERROR: missing evidence).
                for account in &snapshot.scope.accounts {
                    for region in &snapshot.scope.regions {
                        let key = (account.account_id.clone(), region.clone());
                        let has_region = seen_types
                            .get(&key)
                            .is_some_and(|t| t.contains(&ResourceType::Region));
                        let has_subjects = seen_types.get(&key).is_some_and(|t| t.contains(&rt));
                        if has_subjects {
                            continue;
                        }
                        // Only a gap in the evidence that *lists* this kind of subject means
                        // there may be subjects we never saw.
                        let listing = listing_evidence(rt);
                        let blocking: Vec<&Gap> = gaps
                            .blocking(&account.account_id, region, None, control)
                            .into_iter()
                            .filter(|g| {
                                g.evidence == EvidenceKind::Region || listing.contains(&g.evidence)
                            })
                            .collect();
                        if !blocking.is_empty() {
                            out.push(scope_error(
                                control,
                                &account.account_id,
                                region,
                                gap_detail(&blocking),
                            ));
                        } else if !has_region {
                            out.push(scope_error(
                                control,
                                &account.account_id,
                                region,
                                "no evidence was collected for this account and region, and no collection gap explains why".into(),
                            ));
                        }
                    }
                }
            }
        }
    }
    per_control.into_iter().flatten().collect()
}

fn judge(
    control: &Control,
    subject: &Subject,
    ctx: &cel::Context,
    gaps: &GapIndex,
    params_json: &Value,
) -> Finding {
    let evidence = control
        .def
        .evidence
        .iter()
        .map(|path| EvidenceItem {
            field: path.clone(),
            value: lookup(subject, params_json, path),
        })
        .collect();
    let mut finding = Finding {
        control_id: control.def.id.clone(),
        status: Status::Error,
        account_id: subject.account_id.clone(),
        region: subject.region.clone(),
        resource_type: subject.resource_type,
        resource_id: subject.resource_id.clone(),
        resource_arn: subject.resource_arn.clone(),
        snapshot_pointer: subject.pointer.clone(),
        evidence,
        detail: String::new(),
    };
    let blocking = gaps.blocking(
        &subject.account_id,
        &subject.region,
        Some(&subject.resource_arn),
        control,
    );
    if !blocking.is_empty() {
        finding.detail = gap_detail(&blocking);
        return finding;
    }
    if let Some(program) = &control.where_program {
        match run_bool(program, ctx) {
            Ok(true) => {}
            Ok(false) => {
                // The verdict used only the scope filter: no evidence to show.
                finding.evidence.clear();
                finding.status = Status::NotApplicable;
                finding.detail = "outside the control's scope (`where` is false)".into();
                return finding;
            }
            Err(e) => {
                finding.detail = format!("could not decide whether the control applies: {e}");
                return finding;
            }
        }
    }
    if let Some(program) = &control.review_program {
        match run_bool(program, ctx) {
            Ok(true) => {
                finding.status = Status::Manual;
                finding.detail =
                    "needs review: match the changes in the evidence with approved change records"
                        .into();
                return finding;
            }
            Ok(false) => {}
            Err(e) => {
                finding.detail = missing_or(
                    &finding.evidence,
                    |field| why(subject, params_json, field),
                    &format!("could not decide whether a review is needed: {e}"),
                );
                return finding;
            }
        }
    }
    let Some(program) = &control.check_program else {
        // A review-only control: MANUAL when its evidence is there to review, else ERROR.
        if finding.evidence.iter().any(|item| item.value.is_null()) {
            finding.detail = missing_or(
                &finding.evidence,
                |field| why(subject, params_json, field),
                "",
            );
        } else {
            finding.status = Status::Manual;
            finding.detail =
                "needs review: an auditor confirms the evidence shown was reviewed".into();
        }
        return finding;
    };
    match run_bool(program, ctx) {
        Ok(true) => finding.status = Status::Pass,
        Ok(false) => finding.status = Status::Fail,
        Err(e) => {
            finding.detail = missing_or(
                &finding.evidence,
                |field| why(subject, params_json, field),
                &format!("the check could not be evaluated on this evidence: {e}"),
            );
        }
    }
    finding
}

/// Names the evidence that is missing (null) when there is some: that is what the reader can
/// act on; `fallback` (the expression error) otherwise. Where the facts say why a value is
/// missing (`why(field)`), that reason is given instead of the generic one.
fn missing_or(
    evidence: &[EvidenceItem],
    why: impl Fn(&str) -> Option<String>,
    fallback: &str,
) -> String {
    let (mut explained, mut unexplained) = (Vec::new(), Vec::new());
    for item in evidence.iter().filter(|item| item.value.is_null()) {
        match why(&item.field) {
            Some(reason) => explained.push(format!("{} is missing: {reason}", item.field)),
            None => unexplained.push(item.field.as_str()),
        }
    }
    if !unexplained.is_empty() {
        explained.push(format!(
            "evidence not in the snapshot: {} (not collected, or it belongs to a key or resource outside the collected scope)",
            unexplained.join(", ")
        ));
    }
    if explained.is_empty() {
        fallback.to_string()
    } else {
        explained.join("; ")
    }
}

/// Why the facts left `field` null: the string at `<field>_why` beside it, when there is one.
fn why(subject: &Subject, params: &Value, field: &str) -> Option<String> {
    match lookup(subject, params, &format!("{field}_why")) {
        Value::String(reason) => Some(reason),
        _ => None,
    }
}

fn run_bool(program: &cel::Program, ctx: &cel::Context) -> Result<bool, String> {
    match program.execute(ctx) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("expression returned {other:?}, not true or false")),
        Err(e) => Err(e.to_string()),
    }
}

/// Follows a dotted path (after the subject variable) through the view; `null` if absent.
fn lookup(subject: &Subject, params: &Value, path: &str) -> Value {
    let mut parts = path.split('.');
    let root = parts.next().unwrap_or_default();
    let mut cur = if root == subject.resource_type.variable() {
        &subject.view
    } else if root == "params" {
        params
    } else {
        return Value::Null;
    };
    for p in parts {
        cur = match cur {
            Value::Object(m) => match m.get(p) {
                Some(v) => v,
                None => return Value::Null,
            },
            Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(v) => v,
                None => return Value::Null,
            },
            _ => return Value::Null,
        };
    }
    cur.clone()
}

/// The evidence whose absence hides subjects of a type altogether.
fn listing_evidence(rt: ResourceType) -> &'static [EvidenceKind] {
    match rt {
        ResourceType::KmsKey => &[EvidenceKind::KmsKeys],
        ResourceType::CustomKeyStore => &[EvidenceKind::KmsCustomKeyStores],
        ResourceType::CloudhsmCluster => &[EvidenceKind::CloudHsmClusters],
        ResourceType::Trail => &[EvidenceKind::CloudTrailTrails],
        ResourceType::EncryptedResource => &[EvidenceKind::ConfigResources],
        ResourceType::Region | ResourceType::Attestation => &[],
    }
}

fn manual_finding(control: &Control) -> Finding {
    Finding {
        control_id: control.def.id.clone(),
        status: Status::Manual,
        account_id: "*".into(),
        region: "*".into(),
        resource_type: ResourceType::Attestation,
        resource_id: "attestation".into(),
        resource_arn: String::new(),
        snapshot_pointer: String::new(),
        evidence: Vec::new(),
        detail: "needs a documented human attestation; keyproof cannot observe it in AWS".into(),
    }
}

fn scope_error(control: &Control, account: &str, region: &str, detail: String) -> Finding {
    Finding {
        control_id: control.def.id.clone(),
        status: Status::Error,
        account_id: account.into(),
        region: region.into(),
        resource_type: control.def.applies_to,
        resource_id: "*".into(),
        resource_arn: String::new(),
        snapshot_pointer: "/gaps".into(),
        evidence: Vec::new(),
        detail,
    }
}

fn gap_detail(gaps: &[&Gap]) -> String {
    let parts: Vec<String> = gaps
        .iter()
        .map(|g| {
            format!(
                "evidence missing: {}:{} failed in {}/{} with {} ({})",
                g.service, g.api, g.account_id, g.region, g.error_code, g.message
            )
        })
        .collect();
    parts.join("; ")
}

/// Gaps by account and region, for quick "does this block that" questions.
struct GapIndex<'a> {
    by_scope: HashMap<(&'a str, &'a str), Vec<&'a Gap>>,
}

impl<'a> GapIndex<'a> {
    fn new(gaps: &'a [Gap]) -> Self {
        let mut by_scope: HashMap<(&str, &str), Vec<&Gap>> = HashMap::new();
        for g in gaps {
            by_scope
                .entry((g.account_id.as_str(), g.region.as_str()))
                .or_default()
                .push(g);
        }
        GapIndex { by_scope }
    }

    /// Gaps that take away evidence `control` needs for a subject (or, with `arn` None, for
    /// the account and region as a whole).
    fn blocking(
        &self,
        account: &str,
        region: &str,
        arn: Option<&str>,
        control: &Control,
    ) -> Vec<&'a Gap> {
        let mut out = Vec::new();
        for scope in [(account, region), (account, "*"), ("*", "*")] {
            let Some(list) = self.by_scope.get(&scope) else {
                continue;
            };
            for g in list {
                let needed =
                    g.evidence == EvidenceKind::Region || control.def.needs.contains(&g.evidence);
                let applies = match (&g.resource_arn, arn) {
                    (None, _) => true,
                    (Some(gap_arn), Some(arn)) => gap_arn == arn,
                    (Some(_), None) => false,
                };
                if needed && applies {
                    out.push(*g);
                }
            }
        }
        out
    }
}
