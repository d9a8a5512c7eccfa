//! Turns a snapshot into evaluation subjects: one per resource that a control can apply to,
//! each with the view that control expressions see.
//!
//! A view is the resource's snapshot record plus derived facts that need the rest of the
//! snapshot (which resources use a key, the key behind a resource, the policy analysis, ages in
//! days relative to the collection time). Derived facts are computed here, once, so that control
//! expressions stay simple and every control sees the same answer. Nothing here reads a clock:
//! "now" is the snapshot's collection time, so evaluation is reproducible.

use super::policy::{account_of, analyze_policy};
use crate::config::Config;
use crate::snapshot::{
    EncryptedResource, KmsEvent, KmsEventSummary, KmsKey, RegionEvidence, Snapshot,
};
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// The kinds of thing a control can apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    KmsKey,
    CustomKeyStore,
    CloudhsmCluster,
    Trail,
    EncryptedResource,
    /// One account and region as a whole (e.g. "KMS management events are logged here").
    Region,
    /// No AWS resource: a procedure a human must attest to (verdict MANUAL).
    Attestation,
}

impl ResourceType {
    pub const ALL: [ResourceType; 7] = [
        ResourceType::KmsKey,
        ResourceType::CustomKeyStore,
        ResourceType::CloudhsmCluster,
        ResourceType::Trail,
        ResourceType::EncryptedResource,
        ResourceType::Region,
        ResourceType::Attestation,
    ];

    /// The snake_case name used in control files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::KmsKey => "kms_key",
            ResourceType::CustomKeyStore => "custom_key_store",
            ResourceType::CloudhsmCluster => "cloudhsm_cluster",
            ResourceType::Trail => "trail",
            ResourceType::EncryptedResource => "encrypted_resource",
            ResourceType::Region => "region",
            ResourceType::Attestation => "attestation",
        }
    }

    /// The variable name a control expression uses for the subject.
    pub fn variable(self) -> &'static str {
        match self {
            ResourceType::KmsKey => "key",
            ResourceType::CustomKeyStore => "store",
            ResourceType::CloudhsmCluster => "cluster",
            ResourceType::Trail => "trail",
            ResourceType::EncryptedResource => "resource",
            ResourceType::Region => "region",
            ResourceType::Attestation => "attestation",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing to evaluate controls against.
#[derive(Debug, Clone)]
pub struct Subject {
    pub resource_type: ResourceType,
    pub account_id: String,
    pub region: String,
    pub resource_id: String,
    pub resource_arn: String,
    /// JSON pointer to the record in the snapshot this subject was built from.
    pub pointer: String,
    /// What control expressions see.
    pub view: Value,
}

/// Where a key sits in the snapshot.
#[derive(Debug, Clone, Copy)]
struct KeyLoc {
    account: usize,
    region: usize,
    key: usize,
}

/// Finds the key a resource names, however it names it (key id, ARN, alias name or alias ARN).
pub struct KeyIndex<'a> {
    snapshot: &'a Snapshot,
    by_name: HashMap<String, KeyLoc>,
}

impl<'a> KeyIndex<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let mut by_name = HashMap::new();
        for (ai, acct) in snapshot.accounts.iter().enumerate() {
            for (ri, reg) in acct.regions.iter().enumerate() {
                for (ki, key) in reg.kms_keys.iter().enumerate() {
                    let loc = KeyLoc {
                        account: ai,
                        region: ri,
                        key: ki,
                    };
                    let scope = format!("{}/{}/", acct.account_id, reg.region);
                    by_name.insert(key.arn.clone(), loc);
                    by_name.insert(format!("{scope}{}", key.key_id), loc);
                    for alias in &key.aliases {
                        by_name.insert(format!("{scope}{alias}"), loc);
                        by_name.insert(
                            format!("arn:aws:kms:{}:{}:{alias}", reg.region, acct.account_id),
                            loc,
                        );
                    }
                }
            }
        }
        KeyIndex { snapshot, by_name }
    }

    /// The key `reference` names, seen from a resource in `account` and `region`.
    pub fn key(&self, account: &str, region: &str, reference: &str) -> Option<&'a KmsKey> {
        self.resolve(account, region, reference).map(|(_, k)| k)
    }

    fn resolve(
        &self,
        account: &str,
        region: &str,
        reference: &str,
    ) -> Option<(KeyLoc, &'a KmsKey)> {
        let loc = self
            .by_name
            .get(reference)
            .or_else(|| self.by_name.get(&format!("{account}/{region}/{reference}")))?;
        let key = &self.snapshot.accounts[loc.account].regions[loc.region].kms_keys[loc.key];
        Some((*loc, key))
    }
}

/// Tag-derived classification of a key or resource.
#[derive(Debug, Clone, Serialize)]
struct Classification {
    environment: Option<String>,
    production: bool,
    in_cde: bool,
}

fn classify(tags: &crate::snapshot::Tags, config: &Config) -> Classification {
    let t = &config.tags;
    let environment = tags
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&t.environment_key))
        .map(|(_, v)| v.to_ascii_lowercase());
    let production = environment.as_deref().is_some_and(|e| {
        t.production_values
            .iter()
            .any(|p| p.eq_ignore_ascii_case(e))
    });
    // All spellings of production are one environment (`prod` and `production` are not two).
    let environment = match (production, t.production_values.first()) {
        (true, Some(canonical)) => Some(canonical.to_ascii_lowercase()),
        _ => environment,
    };
    let in_cde = tags
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&t.cde_key))
        .is_some_and(|(_, v)| t.cde_values.iter().any(|c| c.eq_ignore_ascii_case(v)));
    Classification {
        environment,
        production,
        in_cde,
    }
}

fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days()
}

fn to_object(v: impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn insert_common(m: &mut Map<String, Value>, account: &str, region: &str) {
    m.insert("account_id".into(), json!(account));
    m.insert("region".into(), json!(region));
}

/// Builds every subject in the snapshot. Accounts × regions in scope without evidence still get
/// a `region` subject, so that the engine can report them as missing.
pub fn build_subjects(snapshot: &Snapshot, config: &Config) -> Vec<Subject> {
    let now = snapshot.collected_at;
    let index = KeyIndex::new(snapshot);
    let tests = selftest_facts(snapshot);

    // Which resources use each key, resolved once.
    let mut users_of: HashMap<(usize, usize, usize), Vec<Value>> = HashMap::new();
    for acct in &snapshot.accounts {
        for reg in &acct.regions {
            for res in &reg.resources {
                if let Some(reference) = &res.kms_key_id
                    && let Some((loc, _)) = index.resolve(&acct.account_id, &reg.region, reference)
                {
                    let c = classify(&res.tags, config);
                    users_of
                        .entry((loc.account, loc.region, loc.key))
                        .or_default()
                        .push(json!({
                            "arn": res.arn,
                            "resource_type": res.resource_type,
                            "account_id": acct.account_id,
                            "environment": c.environment,
                            "production": c.production,
                            "in_cde": c.in_cde,
                        }));
                }
            }
        }
    }

    let mut subjects = Vec::new();
    for (ai, acct) in snapshot.accounts.iter().enumerate() {
        for (ri, reg) in acct.regions.iter().enumerate() {
            let base = format!("/accounts/{ai}/regions/{ri}");
            let account = acct.account_id.as_str();
            // Key and resource views are the bulk of the work: built in parallel, kept in order.
            let keys: Vec<Subject> = reg
                .kms_keys
                .par_iter()
                .enumerate()
                .map(|(ki, key)| {
                    let used_by = users_of.get(&(ai, ri, ki)).cloned().unwrap_or_default();
                    Subject {
                        resource_type: ResourceType::KmsKey,
                        account_id: account.into(),
                        region: reg.region.clone(),
                        resource_id: key.key_id.clone(),
                        resource_arn: key.arn.clone(),
                        pointer: format!("{base}/kms_keys/{ki}"),
                        view: {
                            let mut v = key_view(key, reg, account, used_by, now, config);
                            if let Value::Object(m) = &mut v {
                                m.insert(
                                    "selftest".into(),
                                    tests.get(key.arn.as_str()).cloned().unwrap_or(Value::Null),
                                );
                            }
                            v
                        },
                    }
                })
                .collect();
            subjects.extend(keys);
            for (si, store) in reg.custom_key_stores.iter().enumerate() {
                let mut m = to_object(store);
                insert_common(&mut m, account, &reg.region);
                let cluster = store
                    .cloudhsm_cluster_id
                    .as_ref()
                    .and_then(|id| reg.cloudhsm_clusters.iter().find(|c| &c.cluster_id == id));
                m.insert(
                    "cluster".into(),
                    serde_json::to_value(cluster).unwrap_or(Value::Null),
                );
                let keys: Vec<&str> = reg
                    .kms_keys
                    .iter()
                    .filter(|k| k.custom_key_store_id.as_deref() == Some(store.id.as_str()))
                    .map(|k| k.arn.as_str())
                    .collect();
                m.insert("key_arns".into(), json!(keys));
                subjects.push(Subject {
                    resource_type: ResourceType::CustomKeyStore,
                    account_id: account.into(),
                    region: reg.region.clone(),
                    resource_id: store.id.clone(),
                    resource_arn: format!(
                        "arn:aws:kms:{}:{}:custom-key-store/{}",
                        reg.region, account, store.id
                    ),
                    pointer: format!("{base}/custom_key_stores/{si}"),
                    view: Value::Object(m),
                });
            }
            for (ci, cluster) in reg.cloudhsm_clusters.iter().enumerate() {
                let mut m = to_object(cluster);
                insert_common(&mut m, account, &reg.region);
                // Only HSMs that serve requests count towards resilience.
                let azs: BTreeSet<&str> = cluster
                    .hsms
                    .iter()
                    .filter(|h| h.state == "ACTIVE")
                    .map(|h| h.availability_zone.as_str())
                    .collect();
                m.insert("availability_zones".into(), json!(azs));
                subjects.push(Subject {
                    resource_type: ResourceType::CloudhsmCluster,
                    account_id: account.into(),
                    region: reg.region.clone(),
                    resource_id: cluster.cluster_id.clone(),
                    resource_arn: format!(
                        "arn:aws:cloudhsm:{}:{}:cluster/{}",
                        reg.region, account, cluster.cluster_id
                    ),
                    pointer: format!("{base}/cloudhsm_clusters/{ci}"),
                    view: Value::Object(m),
                });
            }
            for (ti, trail) in reg.trails.iter().enumerate() {
                // A multi-Region trail shows up in every region; judge it once, in its home.
                if trail.home_region != reg.region {
                    continue;
                }
                let mut m = to_object(trail);
                insert_common(&mut m, account, &reg.region);
                subjects.push(Subject {
                    resource_type: ResourceType::Trail,
                    account_id: account.into(),
                    region: reg.region.clone(),
                    resource_id: trail.name.clone(),
                    resource_arn: trail.arn.clone(),
                    pointer: format!("{base}/trails/{ti}"),
                    view: Value::Object(m),
                });
            }
            let resources: Vec<Subject> = reg
                .resources
                .par_iter()
                .enumerate()
                .map(|(xi, res)| Subject {
                    resource_type: ResourceType::EncryptedResource,
                    account_id: account.into(),
                    region: reg.region.clone(),
                    resource_id: res.resource_id.clone(),
                    resource_arn: res.arn.clone(),
                    pointer: format!("{base}/resources/{xi}"),
                    view: resource_view(res, reg, account, &index, &tests, config),
                })
                .collect();
            subjects.extend(resources);
            subjects.push(Subject {
                resource_type: ResourceType::Region,
                account_id: account.into(),
                region: reg.region.clone(),
                resource_id: format!("{account}/{}", reg.region),
                resource_arn: String::new(),
                pointer: base.clone(),
                view: region_view(snapshot, ai, reg),
            });
        }
    }
    subjects
}

/// The self-test verdict per key ARN, as facts: `{result, provider, failed_step, error_code,
/// message}` for keys whose round trip PASSed or FAILed. Keys that could not be tested have no
/// fact (null), so checks on them come out ERROR; their gap says why.
fn selftest_facts(snapshot: &Snapshot) -> HashMap<&str, Value> {
    let Some(st) = &snapshot.selftest else {
        return HashMap::new();
    };
    st.keys
        .iter()
        .filter(|k| k.result == "PASS" || k.result == "FAIL")
        .map(|k| {
            (
                k.key_arn.as_str(),
                json!({
                    "result": k.result,
                    "provider": st.provider,
                    "failed_step": k.failed_step,
                    "error_code": k.error_code,
                    "message": k.message,
                }),
            )
        })
        .collect()
}

fn key_view(
    key: &KmsKey,
    reg: &RegionEvidence,
    account: &str,
    used_by: Vec<Value>,
    now: DateTime<Utc>,
    config: &Config,
) -> Value {
    let mut m = to_object(key);
    insert_common(&mut m, account, &reg.region);
    let c = classify(&key.tags, config);
    m.insert("environment".into(), json!(c.environment));
    m.insert("production".into(), json!(c.production));
    m.insert("in_cde".into(), json!(c.in_cde));
    m.insert(
        "customer_managed".into(),
        json!(key.key_manager == "CUSTOMER"),
    );
    m.insert("age_days".into(), json!(days_between(key.created_at, now)));

    // Days since the key material last changed: the newest rotation, else creation. Unknown
    // (null) when the rotation history was not collected: creation is then no proof.
    let last_change = key.rotation.as_ref().map(|r| {
        r.history
            .iter()
            .map(|h| h.rotated_at)
            .max()
            .unwrap_or(key.created_at)
    });
    m.insert(
        "days_since_rotation".into(),
        json!(last_change.map(|t| days_between(t, now))),
    );

    insert_lifecycle_facts(&mut m, key, reg, now, config);

    let policy = analyze_policy(key.policy.as_deref(), account, &key.arn);
    let mut external: BTreeSet<String> = policy.external_accounts.iter().cloned().collect();
    for g in &key.grants {
        if let Some(a) = account_of(&g.grantee_principal).filter(|a| a != account) {
            external.insert(a);
        }
    }
    // An unreadable policy yields null, so that any control reading it is ERROR, not PASS.
    if policy.parsed {
        m.insert(
            "policy_analysis".into(),
            serde_json::to_value(&policy).unwrap_or(Value::Null),
        );
        m.insert("external_accounts".into(), json!(external));
    } else {
        m.insert("policy_analysis".into(), Value::Null);
        m.insert("external_accounts".into(), Value::Null);
        m.insert("policy_error".into(), json!(policy.parse_error));
    }

    let envs: BTreeSet<String> = used_by
        .iter()
        .filter_map(|u| {
            u.get("environment")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    m.insert("used_by_environments".into(), json!(envs));
    m.insert("used_by".into(), Value::Array(used_by));

    let store = key
        .custom_key_store_id
        .as_ref()
        .and_then(|id| reg.custom_key_stores.iter().find(|s| &s.id == id));
    m.insert(
        "custom_key_store".into(),
        serde_json::to_value(store).unwrap_or(Value::Null),
    );
    Value::Object(m)
}

/// Facts about the key's lifecycle: tags, DR replicas, deletion, material age, and the changes
/// CloudTrail saw. Event-derived facts are `null` when the events were not collected, or when
/// the event summary is truncated and the answer could hide in what was left out.
fn insert_lifecycle_facts(
    m: &mut Map<String, Value>,
    key: &KmsKey,
    reg: &RegionEvidence,
    now: DateTime<Utc>,
    config: &Config,
) {
    let params = &config.parameters;
    let tag = |name: &str| {
        key.tags
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let missing: Vec<&String> = params
        .required_key_tags
        .iter()
        .filter(|t| tag(t).is_none())
        .collect();
    m.insert("missing_tags".into(), json!(missing));
    m.insert("service".into(), json!(tag(&config.tags.service_key)));
    let replica_regions: BTreeSet<&str> = key
        .multi_region
        .iter()
        .flat_map(|mr| mr.replica_arns.iter())
        .filter_map(|arn| arn.split(':').nth(3))
        .collect();
    m.insert("replica_regions".into(), json!(replica_regions));
    m.insert(
        "days_until_deletion".into(),
        json!(key.deletion_date.map(|d| days_between(now, d))),
    );

    let summary = reg.kms_events.as_ref();
    let complete = summary.is_some_and(|s| s.notable_omitted == 0);
    // Successful events about this key (the summary names a key by ARN or id).
    let events: Vec<&KmsEvent> = summary
        .map(|s| {
            s.notable
                .iter()
                .filter(|e| e.error_code.is_none())
                .filter(|e| {
                    e.key_arn.as_deref().is_some_and(|a| {
                        a == key.arn || a == key.key_id || a.ends_with(&format!("/{}", key.key_id))
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let named = |names: &[&str]| -> Vec<Value> {
        events
            .iter()
            .filter(|e| names.contains(&e.event_name.as_str()))
            .map(|e| {
                json!({
                    "event_id": e.event_id,
                    "event_time": e.event_time,
                    "event_name": e.event_name,
                    "principal_arn": e.principal_arn,
                    "source_ip": e.source_ip,
                })
            })
            .collect()
    };
    // A change found is a fact; "no change" is one only if the summary lists every change.
    let changes = |names: &[&str]| {
        let found = named(names);
        if summary.is_none() || (found.is_empty() && !complete) {
            Value::Null
        } else {
            Value::Array(found)
        }
    };
    m.insert("policy_changes".into(), changes(&["PutKeyPolicy"]));
    m.insert(
        "alias_changes".into(),
        changes(&["CreateAlias", "UpdateAlias", "DeleteAlias"]),
    );
    let latest = |name: &str| {
        events
            .iter()
            .filter(|e| e.event_name == name)
            .map(|e| e.event_time)
            .max()
    };

    // The waiting period chosen when the deletion was scheduled.
    let window = key
        .deletion_date
        .zip(latest("ScheduleKeyDeletion"))
        .map(|(d, t)| {
            let hours = (d - t).num_hours();
            (hours + 12) / 24
        });
    m.insert("deletion_window_days".into(), json!(window));

    // How old the key material is, from creation, rotations and imports. Certain for keys whose
    // material cannot change in place (CloudHSM); for imported material only when the event
    // window reaches back a whole cryptoperiod; otherwise only when it is young enough anyway.
    let last_import = latest("ImportKeyMaterial");
    m.insert("last_material_import".into(), json!(last_import));
    let mut age = days_between(key.created_at, now);
    if let Some(t) = key
        .rotation
        .as_ref()
        .and_then(|r| r.history.iter().map(|h| h.rotated_at).max())
    {
        age = age.min(days_between(t, now));
    }
    if let Some(t) = last_import {
        age = age.min(days_between(t, now));
    }
    let cryptoperiod = params.cryptoperiod_days;
    let window_covers =
        complete && summary.is_some_and(|s| days_between(s.window_start, now) >= cryptoperiod);
    let certain = age <= cryptoperiod
        || match key.origin.as_str() {
            "AWS_CLOUDHSM" => true,
            "EXTERNAL" => window_covers,
            "AWS_KMS" => key.rotation.is_some(),
            _ => false,
        };
    m.insert("material_age_days".into(), json!(certain.then_some(age)));
}

fn resource_view(
    res: &EncryptedResource,
    reg: &RegionEvidence,
    account: &str,
    index: &KeyIndex<'_>,
    tests: &HashMap<&str, Value>,
    config: &Config,
) -> Value {
    let mut m = to_object(res);
    insert_common(&mut m, account, &reg.region);
    let c = classify(&res.tags, config);
    m.insert("environment".into(), json!(c.environment));
    m.insert("production".into(), json!(c.production));
    m.insert("in_cde".into(), json!(c.in_cde));
    let key = res
        .kms_key_id
        .as_ref()
        .and_then(|r| index.resolve(account, &reg.region, r))
        .map(|(_, k)| {
            let kc = classify(&k.tags, config);
            json!({
                "arn": k.arn,
                "aliases": k.aliases,
                "account_id": account_of(&k.arn),
                "key_manager": k.key_manager,
                "customer_managed": k.key_manager == "CUSTOMER",
                "state": k.state,
                "deletion_date": k.deletion_date,
                "origin": k.origin,
                "environment": kc.environment,
                "production": kc.production,
                "in_cde": kc.in_cde,
                "selftest": tests.get(k.arn.as_str()).cloned().unwrap_or(Value::Null),
            })
        });
    // A key the resource names but the snapshot does not hold (another account or region out
    // of scope) is "unresolved": controls needing its properties come out ERROR, not PASS.
    m.insert("key_resolved".into(), json!(key.is_some()));
    m.insert("key".into(), key.unwrap_or(Value::Null));
    Value::Object(m)
}

fn region_view(snapshot: &Snapshot, account_index: usize, reg: &RegionEvidence) -> Value {
    let acct = &snapshot.accounts[account_index];
    // Trails of this account that cover this region: its own home trails, plus multi-Region
    // trails from any region of the account.
    let mut covering = Vec::new();
    let mut seen = BTreeSet::new();
    for other in &acct.regions {
        for t in &other.trails {
            let covers = t.home_region == reg.region || t.is_multi_region;
            if covers && t.home_region == other.region && seen.insert(t.arn.clone()) {
                covering.push(json!({
                    "name": t.name,
                    "arn": t.arn,
                    "is_logging": t.is_logging,
                    "management_events": t.selectors.as_ref().map(|s| s.management_events),
                    "kms_events_included": t.selectors.as_ref().map(|s| s.kms_events_included),
                    "management_read": t.selectors.as_ref().map(|s| s.management_read),
                    "management_write": t.selectors.as_ref().map(|s| s.management_write),
                    "logs_kms_management_events": t.is_logging == Some(true)
                        && t.selectors.as_ref().is_some_and(|s| {
                            s.management_events
                                && s.management_read
                                && s.management_write
                                && s.kms_events_included
                        }),
                }));
            }
        }
    }
    // Logged if a covering trail proves it; unknown (null, so ERROR) if none does but one
    // could, because its status or selectors were not collected; else false.
    let proven = covering
        .iter()
        .any(|t| t["logs_kms_management_events"] == json!(true));
    let unknown = covering
        .iter()
        .any(|t| t["is_logging"].is_null() || t["management_events"].is_null());
    let logged = if proven {
        json!(true)
    } else if unknown {
        Value::Null
    } else {
        json!(false)
    };
    json!({
        "account_id": acct.account_id,
        "region": reg.region,
        "covering_trails": covering,
        "kms_management_events_logged": logged,
        "config_recording": reg.config_recorders.iter().any(|r| r.recording),
        "key_count": reg.kms_keys.len(),
        "resource_count": reg.resources.len(),
        "kms_events": reg.kms_events,
        "kms_activity": reg.kms_events.as_ref().map(kms_activity),
        "log_analysis": log_analysis(snapshot, &acct.account_id, &reg.region),
    })
}

/// What the analysis of the trail's log files (`snapshot.kms_activity`) says about one account
/// and region. `fields_complete` and `integrity` are null (so ERROR) when the files were not
/// analysed, none of this region's were read, or, for the fields, some could not be read:
/// events that were not seen cannot be judged.
fn log_analysis(snapshot: &Snapshot, account: &str, region: &str) -> Value {
    use crate::logs::source::account_region;
    let Some(a) = &snapshot.kms_activity else {
        return json!({
            "analysed": false,
            "source": null,
            "log_files_read": null,
            "unreadable_files": null,
            "events": null,
            "fields": null,
            "fields_complete": null,
            "fields_complete_why": "no KMS events were analysed: give run or collect an event source (--cloudtrail-s3, --cloudtrail-local, --cloudtrail-lake or --cloudtrail-lookup)",
            "incomplete_events": null,
            "integrity": null,
            "integrity_why": "the trail's log files were not analysed: run or collect with --cloudtrail-s3 (or --cloudtrail-local) and --verify-digests",
        });
    };
    let here = format!("{account}/{region}");
    let files = a.scan.files_by_region.get(&here).copied().unwrap_or(0);
    let unreadable = a
        .scan
        .issues
        .iter()
        .filter(|i| account_region(&i.file).as_deref() == Some(here.as_str()))
        .count();
    let fields = a.activity.regions.get(&here).copied().unwrap_or_default();
    // From CloudTrail Lake or LookupEvents there are no files: the region counts as read when
    // the source held its events.
    let source_events: u64 = [
        a.scan.lake.as_ref().map(|l| &l.events_by_region),
        a.scan.lookup.as_ref().map(|l| &l.events_by_region),
    ]
    .into_iter()
    .flatten()
    .filter_map(|by_region| by_region.get(&here))
    .sum();
    let read_any = files > 0 || unreadable > 0 || source_events > 0;
    let fields_complete = if read_any && unreadable == 0 {
        json!(fields.complete == fields.records)
    } else {
        Value::Null
    };
    // Why a null verdict input is null, in words the reader can act on (the engine shows it).
    let not_read =
        "the event source held no KMS events and no log files of this account and region";
    let fields_complete_why = if !read_any {
        Some(not_read.to_string())
    } else if unreadable > 0 {
        Some(format!(
            "{unreadable} log file(s) of this region could not be read, so not every event was seen (the KMS activity section lists them)"
        ))
    } else {
        None
    };
    let integrity_why = if a.scan.lake.is_some() {
        Some("CloudTrail Lake keeps no digest files: verify the trail's S3 copy with --cloudtrail-s3 and --verify-digests".to_string())
    } else if a.scan.lookup.is_some() {
        Some("LookupEvents keeps no digest files: verify the trail's S3 copy with --cloudtrail-s3 and --verify-digests".to_string())
    } else if a.integrity.is_none() {
        Some("the digest files were not checked: add --verify-digests".to_string())
    } else if !read_any {
        Some(not_read.to_string())
    } else {
        None
    };
    let integrity = match &a.integrity {
        Some(i) if read_any => {
            let problems: Vec<String> = i
                .problems
                .iter()
                .filter(|p| account_region(&p.file).as_deref() == Some(here.as_str()))
                .map(|p| {
                    let kind = serde_json::to_value(p.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    format!("{kind} {}", p.file)
                })
                .collect();
            json!({
                "digests": i.digests_by_region.get(&here).copied().unwrap_or(0),
                "problems": problems,
            })
        }
        _ => Value::Null,
    };
    json!({
        "analysed": true,
        "source": a.scan.source,
        "log_files_read": files,
        "unreadable_files": unreadable,
        "events": fields.records,
        "fields": fields,
        "fields_complete": fields_complete,
        "fields_complete_why": fields_complete_why,
        // Which events lack which fields, with the first of them, for the engineer who fixes it.
        "incomplete_events": a.activity.incomplete.get(&here).map_or_else(Vec::new, |groups| {
            groups
                .iter()
                .map(|g| {
                    let first: Vec<Value> = g
                        .events
                        .iter()
                        .map(|e| {
                            json!({
                                "event_id": e.event_id,
                                "event_time": e.event_time,
                                "event_name": e.event_name,
                                "principal": e.principal,
                            })
                        })
                        .collect();
                    json!({"missing": g.missing, "count": g.count, "first_events": first})
                })
                .collect()
        }),
        "integrity": integrity,
        "integrity_why": integrity_why,
    })
}

/// The review summary of a region's KMS events: what an auditor checks was looked at.
fn kms_activity(s: &KmsEventSummary) -> Value {
    let count = |names: &[&str]| -> u64 {
        names
            .iter()
            .map(|n| s.by_event_name.get(*n).copied().unwrap_or(0))
            .sum()
    };
    let access_denied: u64 = s
        .errors_by_code
        .iter()
        .filter(|(code, _)| code.contains("AccessDenied") || code.contains("Unauthorized"))
        .map(|(_, n)| n)
        .sum();
    json!({
        "window_start": s.window_start,
        "window_end": s.window_end,
        "total_events": s.total_events,
        "failed_calls": s.errors_by_code.values().sum::<u64>(),
        "access_denied": access_denied,
        "errors_by_code": s.errors_by_code,
        "disable_or_delete_attempts": count(&[
            "DisableKey",
            "ScheduleKeyDeletion",
            "DeleteImportedKeyMaterial",
            "DisableKeyRotation",
            "DeleteAlias",
            "DisconnectCustomKeyStore",
            "DeleteCustomKeyStore",
        ]),
        "policy_changes": count(&["PutKeyPolicy"]),
        "grant_changes": count(&["CreateGrant", "RevokeGrant", "RetireGrant"]),
        "notable_events_listed": s.notable.len(),
        "notable_events_omitted": s.notable_omitted,
    })
}
