//! Control definitions: parsed from `controls/*.yaml`, validated, and compiled once.
//!
//! A control file is a YAML mapping with a `controls:` list. Every problem is reported with the
//! file, the control id and (where known) the line, and all problems in a set are reported
//! together, so a control author fixes them in one pass. The YAML files shipped in the
//! repository are also embedded in the binary, so keyproof works outside the repository;
//! `--controls DIR` loads another set instead.

use super::pci::{Framework, requirement_sort_key};
use crate::analyze::ResourceType;
use crate::snapshot::EvidenceKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The control files compiled into the binary (kept in step with `controls/` by a test).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "3.5-encryption-at-rest.yaml",
        include_str!("../../controls/3.5-encryption-at-rest.yaml"),
    ),
    (
        "3.6-key-protection.yaml",
        include_str!("../../controls/3.6-key-protection.yaml"),
    ),
    (
        "3.7-key-lifecycle.yaml",
        include_str!("../../controls/3.7-key-lifecycle.yaml"),
    ),
    (
        "10-audit-logging.yaml",
        include_str!("../../controls/10-audit-logging.yaml"),
    ),
];

/// How bad a failure of the control is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// How to fix a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remediation {
    pub text: String,
    /// An AWS CLI command; `{resource_id}`, `{resource_arn}`, `{region}` and `{account_id}`
    /// are filled in per finding, shell-quoted.
    pub aws_cli: Option<String>,
    pub terraform: Option<String>,
    /// A documentation link.
    pub url: Option<String>,
}

/// A control as written in YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlDef {
    pub id: String,
    pub title: String,
    pub description: String,
    /// PCI DSS v4.0.1 requirement numbers this control tests.
    pub pci_dss_v4: Vec<String>,
    /// The equivalent PCI DSS v3.2.1 numbers.
    pub pci_dss_v321: Vec<String>,
    pub severity: Severity,
    pub applies_to: ResourceType,
    /// Evidence categories the control needs; a gap in any of them makes it ERROR.
    #[serde(default)]
    pub needs: Vec<EvidenceKind>,
    /// CEL: which subjects the control applies to (others are NOT_APPLICABLE). Default: all.
    #[serde(rename = "where", default)]
    pub where_: Option<String>,
    /// CEL: true means the subject needs a human review of its evidence (verdict MANUAL),
    /// e.g. changes in the window that must be matched with change records. Evaluated before
    /// `check`.
    #[serde(default)]
    pub review: Option<String>,
    /// CEL: true means PASS. Absent for `attestation` controls (MANUAL) and for review-only
    /// controls, whose verdict is MANUAL when their evidence is present and ERROR when not.
    #[serde(default)]
    pub check: Option<String>,
    /// Paths into the subject's view shown as evidence, e.g. `key.rotation.period_days`.
    #[serde(default)]
    pub evidence: Vec<String>,
    pub remediation: Remediation,
    /// Equivalent AWS Config managed rule, if any.
    #[serde(default)]
    pub aws_config_rule: Option<String>,
    /// Equivalent AWS Security Hub control id, if any.
    #[serde(default)]
    pub security_hub: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlFile {
    controls: Vec<ControlDef>,
}

/// A validated control with its expressions compiled.
pub struct Control {
    pub def: ControlDef,
    /// The file it came from.
    pub source: String,
    pub where_program: Option<Arc<cel::Program>>,
    pub review_program: Option<Arc<cel::Program>>,
    pub check_program: Option<Arc<cel::Program>>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("id", &self.def.id)
            .field("source", &self.source)
            .finish()
    }
}

impl Control {
    /// The requirement ids for `framework`.
    pub fn requirements(&self, framework: Framework) -> &[String] {
        match framework {
            Framework::PciDss401 => &self.def.pci_dss_v4,
            Framework::PciDss321 => &self.def.pci_dss_v321,
        }
    }
}

/// One problem in a control file.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlProblem {
    pub file: String,
    pub line: Option<usize>,
    pub control_id: Option<String>,
    pub message: String,
}

impl fmt::Display for ControlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(id) = &self.control_id {
            write!(f, ": control {id}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a control set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot read controls from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no control files (*.yaml) found in {0}")]
    Empty(String),
    #[error("invalid controls:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ControlProblem>),
}

/// A loaded, validated control set, sorted by id.
#[derive(Debug)]
pub struct ControlSet {
    pub controls: Vec<Control>,
    /// SHA-256 over the source files (name and bytes, in name order), so a report can say
    /// exactly which control definitions produced it.
    pub digest: String,
    /// Where the set came from: `embedded` or a directory.
    pub origin: String,
}

impl ControlSet {
    /// The set compiled into the binary.
    pub fn embedded() -> Result<ControlSet, ControlError> {
        let files: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        ControlSet::from_sources(files, "embedded")
    }

    /// Every `*.yaml` / `*.yml` file in `dir`.
    pub fn from_dir(dir: &Path) -> Result<ControlSet, ControlError> {
        let read_err = |source| ControlError::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).map_err(|source| ControlError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                files.push((path.display().to_string(), text));
            }
        }
        if files.is_empty() {
            return Err(ControlError::Empty(dir.display().to_string()));
        }
        ControlSet::from_sources(files, &dir.display().to_string())
    }

    /// Parses, validates and compiles control files given as (name, text).
    pub fn from_sources(
        mut files: Vec<(String, String)>,
        origin: &str,
    ) -> Result<ControlSet, ControlError> {
        files.sort();
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut problems = Vec::new();
        let mut controls = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, text) in &files {
            let base = Path::new(name)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.clone());
            sha2::Digest::update(&mut hasher, base.as_bytes());
            sha2::Digest::update(&mut hasher, [0u8]);
            sha2::Digest::update(&mut hasher, text.as_bytes());
            sha2::Digest::update(&mut hasher, [0u8]);
            let file: ControlFile = match serde_norway::from_str(text) {
                Ok(f) => f,
                Err(e) => {
                    problems.push(ControlProblem {
                        file: name.clone(),
                        line: e.location().map(|l| l.line()),
                        control_id: None,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            for def in file.controls {
                let line = line_of_id(text, &def.id);
                let mut problem = |message: String| {
                    problems.push(ControlProblem {
                        file: name.clone(),
                        line,
                        control_id: Some(def.id.clone()),
                        message,
                    })
                };
                if !seen.insert(def.id.clone()) {
                    problem("duplicate control id".into());
                }
                for msg in validate(&def) {
                    problem(msg);
                }
                let where_program = compile(def.where_.as_deref(), "where", &mut problem);
                let review_program = compile(def.review.as_deref(), "review", &mut problem);
                let check_program = compile(def.check.as_deref(), "check", &mut problem);
                controls.push(Control {
                    def,
                    source: base.clone(),
                    where_program,
                    review_program,
                    check_program,
                });
            }
        }
        if !problems.is_empty() {
            return Err(ControlError::Invalid(problems));
        }
        controls.sort_by(|a, b| a.def.id.cmp(&b.def.id));
        Ok(ControlSet {
            controls,
            digest: hex::encode(sha2::Digest::finalize(hasher)),
            origin: origin.to_string(),
        })
    }

    /// The control with `id` (case-insensitive).
    pub fn get(&self, id: &str) -> Option<&Control> {
        self.controls
            .iter()
            .find(|c| c.def.id.eq_ignore_ascii_case(id))
    }
}

fn compile(
    source: Option<&str>,
    what: &str,
    problem: &mut impl FnMut(String),
) -> Option<Arc<cel::Program>> {
    let source = source?;
    match cel::Program::compile(source) {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            problem(format!("`{what}` is not a valid CEL expression: {e}"));
            None
        }
    }
}

/// The 1-based line where `id: <id>` is written, for error messages.
fn line_of_id(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim();
            t.strip_prefix("id:")
                .is_some_and(|rest| rest.trim().trim_matches(['"', '\'']) == id)
        })
        .map(|i| i + 1)
}

/// Checks that do not need the expression compiler.
fn validate(def: &ControlDef) -> Vec<String> {
    let mut out = Vec::new();
    let id_ok = !def.id.is_empty()
        && def
            .id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !id_ok {
        out.push("id must be upper-case letters, digits, '-' or '.'".into());
    }
    if def.title.trim().is_empty() {
        out.push("title is empty".into());
    }
    if def.pci_dss_v4.is_empty() {
        out.push("pci_dss_v4 must name at least one PCI DSS v4.0.1 requirement".into());
    }
    for (framework, list) in [
        (Framework::PciDss401, &def.pci_dss_v4),
        (Framework::PciDss321, &def.pci_dss_v321),
    ] {
        for r in list {
            if framework.title(r).is_none() {
                out.push(format!(
                    "{r} is not a {} requirement keyproof knows (see src/rules/pci.rs)",
                    framework.label()
                ));
            }
        }
        let mut sorted = list.clone();
        sorted.sort_by_key(|r| requirement_sort_key(r));
        sorted.dedup();
        if sorted.len() != list.len() {
            out.push(format!("{} lists a requirement twice", framework.label()));
        }
    }
    let manual = def.applies_to == ResourceType::Attestation;
    match (&def.check, manual) {
        (None, false) if def.evidence.is_empty() => out.push(
            "a control without `check` is a review of its evidence and must list `evidence`".into(),
        ),
        (None, false) if def.review.is_some() => {
            out.push("`review` needs a `check` for the subjects that need no review".into())
        }
        (Some(_), true) => {
            out.push("attestation controls are MANUAL and must not have a check expression".into())
        }
        _ => {}
    }
    if manual && (def.review.is_some() || def.where_.is_some()) {
        out.push("attestation controls have no subject: no `where` or `review`".into());
    }
    let var = def.applies_to.variable();
    for path in &def.evidence {
        let head = path.split('.').next().unwrap_or_default();
        if head != var && head != "params" {
            out.push(format!(
                "evidence path `{path}` must start with `{var}.` (the {} being checked) or `params.`",
                def.applies_to
            ));
        }
    }
    if def.remediation.text.trim().is_empty() {
        out.push("remediation.text is empty".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
controls:
  - id: KP-TEST-01
    title: Test
    description: A test control.
    pci_dss_v4: ["3.7.4"]
    pci_dss_v321: ["3.6.4"]
    severity: high
    applies_to: kms_key
    needs: [kms.rotation]
    check: key.rotation.enabled
    evidence: [key.rotation.enabled]
    remediation:
      text: Enable rotation.
"#;

    fn load(text: &str) -> Result<ControlSet, ControlError> {
        ControlSet::from_sources(vec![("t.yaml".into(), text.into())], "test")
    }

    #[test]
    fn good_file_loads() {
        let set = load(GOOD).expect("loads");
        assert_eq!(set.controls.len(), 1);
        assert!(set.controls[0].check_program.is_some());
        assert_eq!(set.digest.len(), 64);
    }

    #[test]
    fn bad_expression_names_file_control_line_and_parser_message() {
        let text = GOOD.replace(
            "check: key.rotation.enabled",
            "check: key.rotation.enabled &&",
        );
        let msg = load(&text).unwrap_err().to_string();
        assert!(msg.contains("t.yaml:3: control KP-TEST-01"), "{msg}");
        assert!(
            msg.contains("`check` is not a valid CEL expression"),
            "{msg}"
        );
        assert!(msg.contains("<input>:1:"), "parser position missing: {msg}");
    }

    #[test]
    fn yaml_error_has_line() {
        let text = GOOD.replace("severity: high", "severity: [");
        let err = load(&text).unwrap_err();
        let ControlError::Invalid(problems) = err else {
            panic!("expected Invalid")
        };
        assert_eq!(problems[0].file, "t.yaml");
        assert!(problems[0].line.is_some());
    }

    #[test]
    fn unknown_requirement_and_field_are_rejected() {
        let msg = load(&GOOD.replace("\"3.7.4\"", "\"3.7.99\""))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("3.7.99 is not a PCI DSS v4.0.1 requirement"),
            "{msg}"
        );
        let msg = load(&GOOD.replace("severity: high", "severity: high\n    sevrity: low"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("sevrity"), "{msg}");
    }

    #[test]
    fn evidence_path_must_use_subject_variable() {
        let msg = load(&GOOD.replace("evidence: [key.rotation.enabled]", "evidence: [trail.name]"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("must start with `key.`"), "{msg}");
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let two = format!("{GOOD}{}", &GOOD[GOOD.find("  - id").unwrap_or(0)..]);
        let msg = load(&two).unwrap_err().to_string();
        assert!(msg.contains("duplicate control id"), "{msg}");
    }

    #[test]
    fn embedded_set_loads_and_matches_directory() {
        let set = ControlSet::embedded().expect("embedded controls are valid");
        assert!(!set.controls.is_empty());
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("controls");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("controls dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        let embedded: BTreeSet<String> = EMBEDDED.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, embedded, "add new control files to EMBEDDED");
        let from_dir = ControlSet::from_dir(&dir).expect("directory loads");
        assert_eq!(from_dir.digest, set.digest);
    }
}
