//! Every control on small changes of the sample estate: each case in `tests/control-cases/*.yaml`
//! names a control and one subject, changes that subject's snapshot record (or the config, the
//! gaps, the region's CloudTrail events), evaluates, and expects one verdict for that subject.
//!
//! A second test holds the catalog to its promise: every control has a PASS and a FAIL case
//! and at least one NOT_APPLICABLE or ERROR case (attestations: MANUAL; review-only controls:
//! MANUAL and ERROR), so a new control cannot land untested.

use keyproof::config::Config;
use keyproof::rules::{ControlSet, evaluate};
use keyproof::snapshot::Snapshot;
use keyproof::snapshot::sample::{SAMPLE_CONFIG, sample_estate};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    control: String,
    subject: SubjectSpec,
    /// Dotted paths into the subject's snapshot record (keys, resources, trails, stores,
    /// clusters) or region record (`region`), with the JSON value to put there.
    #[serde(default)]
    set: BTreeMap<String, serde_json::Value>,
    /// Dotted paths into the region record the subject lives in.
    #[serde(default)]
    set_region: BTreeMap<String, serde_json::Value>,
    /// Dotted paths into the whole snapshot (e.g. `selftest`), applied last.
    #[serde(default)]
    set_snapshot: BTreeMap<String, serde_json::Value>,
    /// Gaps (partial `Gap` records) to add, scoped to the subject's account and region; with
    /// `scoped: true` also to the subject's ARN.
    #[serde(default)]
    add_gaps: Vec<Value>,
    /// Notable CloudTrail events to add to the subject's region (partial `KmsEvent` records;
    /// `key: this` names the subject key).
    #[serde(default)]
    add_events: Vec<Value>,
    /// TOML merged into the sample estate's keyproof.toml, table by table.
    #[serde(default)]
    config: Option<String>,
    expect: String,
    #[serde(default)]
    detail_contains: Option<String>,
    /// A string the finding's evidence (as JSON) must hold.
    #[serde(default)]
    evidence_contains: Option<String>,
}

/// The subject as written: exactly one of the fields, or the string `attestation`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SubjectSpec {
    Named(String),
    Fields {
        key: Option<String>,
        resource: Option<String>,
        trail: Option<String>,
        store: Option<String>,
        cluster: Option<String>,
        region: Option<String>,
    },
}

impl SubjectSpec {
    fn resolve(&self) -> Result<SubjectRef, String> {
        let SubjectSpec::Fields {
            key,
            resource,
            trail,
            store,
            cluster,
            region,
        } = self
        else {
            return match self {
                SubjectSpec::Named(n) if n == "attestation" => Ok(SubjectRef::Attestation),
                other => Err(format!("unknown subject {other:?}")),
            };
        };
        let given: Vec<SubjectRef> = [
            key.clone().map(SubjectRef::Key),
            resource.clone().map(SubjectRef::Resource),
            trail.clone().map(SubjectRef::Trail),
            store.clone().map(SubjectRef::Store),
            cluster.clone().map(SubjectRef::Cluster),
            region.clone().map(SubjectRef::Region),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[SubjectRef; 1]>::try_from(given) {
            Ok([one]) => Ok(one),
            Err(_) => Err(format!("subject {self:?} must name exactly one thing")),
        }
    }
}

#[derive(Debug)]
enum SubjectRef {
    /// A key by alias (`alias/...`) or key id, in `account`/`region` when given.
    Key(String),
    /// An encrypted resource by name or resource id.
    Resource(String),
    Trail(String),
    Store(String),
    Cluster(String),
    /// `ACCOUNT/REGION`.
    Region(String),
    Attestation,
}

/// Where a subject's record is in the snapshot JSON.
struct Located {
    account: usize,
    region: usize,
    /// `kms_keys`, `resources`, ... and the index; `None` for a region subject.
    record: Option<(&'static str, usize)>,
    resource_id: String,
    arn: String,
}

type Matcher<'a> = Box<dyn Fn(&Value) -> bool + 'a>;

fn locate(snap: &Value, subject: &SubjectRef) -> Option<Located> {
    let (list, matches): (&'static str, Matcher<'_>) = match subject {
        SubjectRef::Key(name) => (
            "kms_keys",
            Box::new(move |k: &Value| {
                k["key_id"] == json!(name)
                    || k["aliases"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == &json!(name)))
            }),
        ),
        SubjectRef::Resource(name) => (
            "resources",
            Box::new(move |r: &Value| r["name"] == json!(name) || r["resource_id"] == json!(name)),
        ),
        SubjectRef::Trail(name) => (
            "trails",
            Box::new(move |t: &Value| t["name"] == json!(name) && t["home_region"] == t["_region"]),
        ),
        SubjectRef::Store(id) => (
            "custom_key_stores",
            Box::new(move |s: &Value| s["id"] == json!(id)),
        ),
        SubjectRef::Cluster(id) => (
            "cloudhsm_clusters",
            Box::new(move |c: &Value| c["cluster_id"] == json!(id)),
        ),
        SubjectRef::Region(id) => {
            let (account, region) = id.split_once('/')?;
            for (ai, a) in snap["accounts"].as_array()?.iter().enumerate() {
                for (ri, r) in a["regions"].as_array()?.iter().enumerate() {
                    if a["account_id"] == json!(account) && r["region"] == json!(region) {
                        return Some(Located {
                            account: ai,
                            region: ri,
                            record: None,
                            resource_id: id.clone(),
                            arn: String::new(),
                        });
                    }
                }
            }
            return None;
        }
        SubjectRef::Attestation => return None,
    };
    for (ai, a) in snap["accounts"].as_array()?.iter().enumerate() {
        for (ri, r) in a["regions"].as_array()?.iter().enumerate() {
            for (i, item) in r[list].as_array()?.iter().enumerate() {
                // Trails repeat in every region; the subject is the one in its home region.
                let mut probe = item.clone();
                probe["_region"] = r["region"].clone();
                if matches(&probe) {
                    let (resource_id, arn) = match list {
                        "kms_keys" => (item["key_id"].clone(), item["arn"].clone()),
                        "resources" => (item["resource_id"].clone(), item["arn"].clone()),
                        "trails" => (item["name"].clone(), item["arn"].clone()),
                        "custom_key_stores" => (item["id"].clone(), Value::Null),
                        _ => (item["cluster_id"].clone(), Value::Null),
                    };
                    return Some(Located {
                        account: ai,
                        region: ri,
                        record: Some((list, i)),
                        resource_id: resource_id.as_str().unwrap_or_default().to_string(),
                        arn: arn.as_str().unwrap_or_default().to_string(),
                    });
                }
            }
        }
    }
    None
}

/// Puts `value` at a dotted path, creating objects on the way.
fn set_path(target: &mut Value, path: &str, value: Value) {
    let mut cur = target;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let obj = cur.as_object_mut().expect("object");
        if i + 1 == parts.len() {
            obj.insert((*p).to_string(), value);
            return;
        }
        cur = obj.entry((*p).to_string()).or_insert(Value::Null);
    }
}

fn run_case(case: &Case, controls: &ControlSet) -> Result<(), String> {
    let mut snap = serde_json::to_value(sample_estate()).map_err(|e| e.to_string())?;
    let subject = case.subject.resolve()?;
    let located = match &subject {
        SubjectRef::Attestation => None,
        other => Some(locate(&snap, other).ok_or(format!("subject {other:?} not in the sample"))?),
    };
    if let Some(l) = &located {
        let account_id = snap["accounts"][l.account]["account_id"].clone();
        let region_name = snap["accounts"][l.account]["regions"][l.region]["region"].clone();
        let region = &mut snap["accounts"][l.account]["regions"][l.region];
        for (path, value) in &case.set_region {
            set_path(region, path, value.clone());
        }
        match l.record {
            Some((list, i)) => {
                for (path, value) in &case.set {
                    set_path(&mut region[list][i], path, value.clone());
                }
            }
            None => {
                for (path, value) in &case.set {
                    set_path(region, path, value.clone());
                }
            }
        }
        for e in &case.add_events {
            let mut e = e.clone();
            if e["key"] == json!("this") {
                e["key_arn"] = json!(l.arn);
            }
            if let Some(m) = e.as_object_mut() {
                m.remove("key");
                m.entry("event_id").or_insert(json!("case-event"));
                m.entry("principal_arn").or_insert(Value::Null);
                m.entry("source_ip").or_insert(Value::Null);
                m.entry("key_arn").or_insert(Value::Null);
                m.entry("error_code").or_insert(Value::Null);
            }
            let notable = &mut region["kms_events"]["notable"];
            if !notable.is_array() {
                return Err("the subject's region has no event summary to add events to".into());
            }
            if let Some(list) = notable.as_array_mut() {
                list.push(e);
            }
        }
        for g in &case.add_gaps {
            let mut g = g.clone();
            let scoped = g["scoped"] == json!(true);
            if let Some(m) = g.as_object_mut() {
                m.remove("scoped");
                m.entry("account_id").or_insert(account_id.clone());
                m.entry("region").or_insert(region_name.clone());
                m.entry("service").or_insert(json!("kms"));
                m.entry("api").or_insert(json!("Test"));
                m.entry("error_code")
                    .or_insert(json!("AccessDeniedException"));
                m.entry("message").or_insert(json!("denied in a test"));
                m.insert(
                    "resource_arn".into(),
                    if scoped { json!(l.arn) } else { Value::Null },
                );
            }
            if let Some(list) = snap["gaps"].as_array_mut() {
                list.push(g);
            }
        }
    }
    for (path, value) in &case.set_snapshot {
        set_path(&mut snap, path, value.clone());
    }
    let snapshot: Snapshot =
        serde_json::from_value(snap).map_err(|e| format!("snapshot no longer valid: {e}"))?;
    let config = case_config(case.config.as_deref())?;
    let findings = evaluate(&snapshot, controls, &config);
    let (account, region) = located
        .as_ref()
        .map(|l| {
            let a = &snapshot.accounts[l.account];
            (a.account_id.clone(), a.regions[l.region].region.clone())
        })
        .unwrap_or_default();
    let resource_id = located
        .as_ref()
        .map(|l| l.resource_id.clone())
        .unwrap_or_else(|| "attestation".into());
    let found: Vec<_> = findings
        .iter()
        .filter(|f| f.control_id == case.control && f.resource_id == resource_id)
        .filter(|f| located.is_none() || (f.account_id == account && f.region == region))
        .collect();
    let [finding] = found.as_slice() else {
        return Err(format!(
            "{} findings of {} for {resource_id}",
            found.len(),
            case.control
        ));
    };
    if finding.status.as_str() != case.expect {
        return Err(format!(
            "expected {}, got {} ({}; evidence {})",
            case.expect,
            finding.status,
            finding.detail,
            serde_json::to_string(&finding.evidence).unwrap_or_default()
        ));
    }
    if let Some(want) = &case.detail_contains
        && !finding.detail.contains(want.as_str())
    {
        return Err(format!("detail `{}` lacks `{want}`", finding.detail));
    }
    if let Some(want) = &case.evidence_contains {
        let evidence = serde_json::to_string(&finding.evidence).unwrap_or_default();
        if !evidence.contains(want.as_str()) {
            return Err(format!("evidence {evidence} lacks `{want}`"));
        }
    }
    Ok(())
}

/// The sample keyproof.toml with the case's TOML merged into it table by table.
fn case_config(extra: Option<&str>) -> Result<Config, String> {
    fn merge(base: &mut toml::Table, extra: toml::Table) {
        for (k, v) in extra {
            match (base.get_mut(&k), v) {
                (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
                (_, v) => {
                    base.insert(k, v);
                }
            }
        }
    }
    let mut base: toml::Table = toml::from_str(SAMPLE_CONFIG).map_err(|e| e.to_string())?;
    if let Some(extra) = extra {
        merge(
            &mut base,
            toml::from_str(extra).map_err(|e| format!("case config: {e}"))?,
        );
    }
    let text = toml::to_string(&base).map_err(|e| e.to_string())?;
    Config::parse(&text, "case").map_err(|e| e.to_string())
}

fn load_cases() -> Vec<(String, Case)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/control-cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/control-cases exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("readable");
        let file: CaseFile =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.extend(file.cases.into_iter().map(|c| (name.clone(), c)));
    }
    out
}

#[test]
fn every_case_gives_its_verdict() {
    let controls = ControlSet::embedded().expect("embedded controls load");
    let cases = load_cases();
    let mut failures = Vec::new();
    for (file, case) in &cases {
        if controls.get(&case.control).is_none() {
            failures.push(format!(
                "{file}: {}: no control {}",
                case.name, case.control
            ));
            continue;
        }
        if let Err(e) = run_case(case, &controls) {
            failures.push(format!("{file}: {} [{}]: {e}", case.name, case.control));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_control_has_pass_fail_and_edge_cases() {
    let controls = ControlSet::embedded().expect("embedded controls load");
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, case) in load_cases() {
        seen.entry(case.control.clone())
            .or_default()
            .insert(case.expect.clone());
    }
    let mut missing = Vec::new();
    for c in &controls.controls {
        let have = seen.get(&c.def.id).cloned().unwrap_or_default();
        let need: Vec<&[&str]> = if c.def.applies_to.as_str() == "attestation" {
            vec![&["MANUAL"]]
        } else if c.def.check.is_none() {
            vec![&["MANUAL"], &["ERROR"]]
        } else if c.def.review.is_some() {
            // Where `review` is the negation of `check`, the verdict other than PASS is MANUAL.
            vec![&["PASS"], &["FAIL", "MANUAL"], &["NOT_APPLICABLE", "ERROR"]]
        } else {
            vec![&["PASS"], &["FAIL"], &["NOT_APPLICABLE", "ERROR"]]
        };
        for alternatives in need {
            if !alternatives.iter().any(|s| have.contains(*s)) {
                missing.push(format!(
                    "{}: no {} case",
                    c.def.id,
                    alternatives.join(" or ")
                ));
            }
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}
