//! Key-policy analysis: parses a KMS key policy completely and answers who can use the key, who
//! can administer it, which of them are outside the account or unrestricted, and which
//! conditions restrict them. The answers become `key.policy_analysis` facts that controls check.
//!
//! The analysis is deliberately strict where common scanners are lax:
//! - **Principals**: `"*"`, `{"AWS": "*"}` and any `NotPrincipal` in an Allow mean *anyone*.
//!   `AWS` (account ids are normalised to `arn:aws:iam::ID:root`), `Service`, `Federated` and
//!   `CanonicalUser` principals are all read.
//! - **Actions and resources**: `Action`/`NotAction` and `Resource`/`NotResource` with IAM
//!   wildcards (`*`, `?`), actions case-insensitively. A statement whose resources do not match
//!   the key does not apply to it.
//! - **Deny overrides Allow**: an unconditional Deny removes the actions it covers from the
//!   principals it covers (explicitly, through their account root, `"*"`, or `NotPrincipal`).
//!   A Deny whose conditions are all *negated restrictive* (`StringNotEquals
//!   aws:PrincipalOrgID`, ...) restricts what it covers; one whose condition is
//!   `aws:MultiFactorAuthPresent = false` requires MFA. Any other conditional Deny might not
//!   apply and is ignored, so it can never hide a finding.
//! - **Restrictive conditions**: a condition limits "anyone" only when its operator is a
//!   positive match (`StringEquals`, `StringLike`, `ArnLike`, `IpAddress`, ... or their
//!   `ForAnyValue:` forms), not `...IfExists` (an absent key would pass), not `ForAllValues:`
//!   (an empty set passes), its key is one that names who or where the caller is
//!   (`kms:CallerAccount`, `kms:ViaService`, `aws:PrincipalOrgID`, `aws:SourceVpce`, ...;
//!   compared case-insensitively, as IAM does) and its values are not wildcards.
//! - The key account's root principal delegates to IAM; it is reported as `root_delegation`
//!   rather than counted as a custodian.
//!
//! A document that cannot be understood (not JSON, no statements, a statement without a valid
//! Effect, Principal or Action) is reported as not parsed, so controls reading it are ERROR.
//!
//! Not for: evaluating IAM identity policies or SCPs (not in the snapshot).

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Condition keys that can limit a wildcard principal to something narrower than "anyone".
const RESTRICTIVE_KEYS: &[&str] = &[
    "kms:calleraccount",
    "kms:viaservice",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceowner",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceip",
    "aws:userid",
];

/// Condition keys whose values are account ids (they name the accounts a wildcard reaches).
const ACCOUNT_KEYS: &[&str] = &[
    "kms:calleraccount",
    "aws:principalaccount",
    "aws:sourceaccount",
];

/// KMS actions that administer a key (or delegate its use) rather than use it.
pub const ADMIN_ACTIONS: &[&str] = &[
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:DisableKey",
    "kms:EnableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKeyRotation",
    "kms:ImportKeyMaterial",
    "kms:DeleteImportedKeyMaterial",
    "kms:UpdateKeyDescription",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:UpdateAlias",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:CreateGrant",
    "kms:RevokeGrant",
    "kms:ReplicateKey",
    "kms:UpdatePrimaryRegion",
    "kms:RotateKeyOnDemand",
];

/// KMS actions that destroy or lock data and should require MFA for humans.
pub const DESTRUCTIVE_ACTIONS: &[&str] = &[
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:PutKeyPolicy",
    "kms:DeleteImportedKeyMaterial",
];

/// KMS actions that use a key for cryptography.
pub const CRYPTO_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:Sign",
    "kms:Verify",
    "kms:GenerateMac",
    "kms:VerifyMac",
    "kms:DeriveSharedSecret",
];

/// Read-only KMS actions on a key: not use, not administration, but still access.
const READ_ACTIONS: &[&str] = &[
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:GetPublicKey",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:RetireGrant",
];

/// What a key policy allows, reduced to what the controls check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyAnalysis {
    /// Whether the policy was present and understood; `false` means the other fields are
    /// empty because there was nothing to analyze (controls treat that as missing evidence).
    pub parsed: bool,
    /// Why parsing failed, if it did.
    pub parse_error: Option<String>,
    /// Allow statements (by Sid, or `#<index>` without one) open to anyone with no restrictive
    /// condition.
    pub public_statements: Vec<String>,
    /// Allow statements open to anyone but limited by a restrictive condition (their own, or a
    /// Deny's).
    pub conditioned_wildcard_statements: Vec<String>,
    /// Accounts other than the key's own that allowed principals belong to, or that a
    /// wildcard's account condition names. Canonical users appear as `canonical-user:<id>`.
    pub external_accounts: Vec<String>,
    /// Principals (excluding the account root, services and anyone) allowed administrative
    /// actions.
    pub administrators: Vec<String>,
    /// Principals (same exclusions) allowed cryptographic use.
    pub users: Vec<String>,
    /// Principals in both lists: a separation-of-duties conflict.
    pub admin_and_user: Vec<String>,
    /// Principals allowed destructive actions without MFA being required (service-linked
    /// roles are excluded: MFA only applies to humans).
    pub destructive_without_mfa: Vec<String>,
    /// The account root principal is granted access (IAM policies then decide).
    pub root_delegation: bool,
    /// Every principal the policy lets in, with what it may do and what restricts it.
    pub accesses: Vec<Access>,
}

/// One principal's access to the key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Access {
    /// As written, normalised: `*` for anyone, an ARN, a service or federated provider name,
    /// or `canonical-user:<id>`.
    pub principal: String,
    pub kind: PrincipalKind,
    /// The account the principal belongs to, where that is known.
    pub account: Option<String>,
    /// The principal is outside the key's account (or its account is unknown).
    pub outside_account: bool,
    pub can_use: bool,
    pub can_administer: bool,
    /// Some allowed action is not limited by any restrictive condition.
    pub unrestricted: bool,
    /// Condition keys (lower case) that restrict some of its access.
    pub restricted_by: Vec<String>,
    /// The Allow statements that grant it.
    pub statements: Vec<String>,
}

/// The kind of principal a statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    Anyone,
    Aws,
    Service,
    Federated,
    CanonicalUser,
}

/// A principal named in a statement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Principal {
    kind: PrincipalKind,
    id: String,
}

impl Principal {
    fn anyone() -> Self {
        Principal {
            kind: PrincipalKind::Anyone,
            id: "*".into(),
        }
    }

    fn display(&self) -> String {
        match self.kind {
            PrincipalKind::CanonicalUser => format!("canonical-user:{}", self.id),
            _ => self.id.clone(),
        }
    }

    fn account(&self) -> Option<String> {
        match self.kind {
            PrincipalKind::Aws | PrincipalKind::Federated => account_of(&self.id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// `Principal` or `NotPrincipal`.
#[derive(Debug, Clone)]
enum Principals {
    Only(Vec<Principal>),
    AllExcept(Vec<Principal>),
}

/// `Action`/`NotAction` or `Resource`/`NotResource` patterns.
#[derive(Debug, Clone)]
enum Patterns {
    Only(Vec<String>),
    AllExcept(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Single,
    AnyValue,
    AllValues,
}

/// One condition: operator, key, values.
#[derive(Debug, Clone)]
struct Condition {
    /// Operator without set prefix and `IfExists`, lower case.
    base: String,
    if_exists: bool,
    set: SetOp,
    /// Lower case.
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone)]
struct Statement {
    label: String,
    effect: Effect,
    principals: Principals,
    actions: Patterns,
    resources: Option<Patterns>,
    conditions: Vec<Condition>,
}

const POSITIVE_OPS: &[&str] = &[
    "stringequals",
    "stringequalsignorecase",
    "stringlike",
    "arnequals",
    "arnlike",
    "ipaddress",
];

const NEGATED_OPS: &[&str] = &[
    "stringnotequals",
    "stringnotequalsignorecase",
    "stringnotlike",
    "arnnotequals",
    "arnnotlike",
    "notipaddress",
];

impl Condition {
    /// Every value names something narrower than "anything": not empty, not only wildcards,
    /// and not a network of every address (`0.0.0.0/0`, `::/0`).
    fn concrete_values(&self) -> bool {
        !self.values.is_empty()
            && self.values.iter().all(|v| {
                let v = v.trim();
                !v.is_empty() && !v.chars().all(|c| c == '*' || c == '?') && !v.ends_with("/0")
            })
    }

    /// Limits an Allow to callers matching the values.
    fn restricts(&self) -> bool {
        POSITIVE_OPS.contains(&self.base.as_str())
            && !self.if_exists
            && self.set != SetOp::AllValues
            && RESTRICTIVE_KEYS.contains(&self.key.as_str())
            && self.concrete_values()
    }

    /// In a Deny: denies callers *not* matching the values, i.e. restricts everyone else.
    fn restricts_by_negation(&self) -> bool {
        NEGATED_OPS.contains(&self.base.as_str())
            && self.set == SetOp::Single
            && RESTRICTIVE_KEYS.contains(&self.key.as_str())
            && self.concrete_values()
    }

    /// In an Allow: MFA must be present.
    fn requires_mfa(&self) -> bool {
        (self.base == "bool"
            && !self.if_exists
            && self.key == "aws:multifactorauthpresent"
            && self.values.iter().all(|v| v.eq_ignore_ascii_case("true"))
            && !self.values.is_empty())
            || (self.base.starts_with("numericlessthan") && self.key == "aws:multifactorauthage")
    }

    /// In an Allow: grants may only be created by or for AWS services acting for the caller
    /// (`kms:GrantIsForAWSResource = true`, or a `kms:ViaService` restriction).
    fn grants_for_aws_resources(&self) -> bool {
        (self.base == "bool"
            && !self.if_exists
            && self.key == "kms:grantisforawsresource"
            && !self.values.is_empty()
            && self.values.iter().all(|v| v.eq_ignore_ascii_case("true")))
            || (self.key == "kms:viaservice" && self.restricts())
    }

    /// In a Deny: denies when MFA is absent.
    fn denies_without_mfa(&self) -> bool {
        self.base == "bool"
            && self.key == "aws:multifactorauthpresent"
            && !self.values.is_empty()
            && self.values.iter().all(|v| v.eq_ignore_ascii_case("false"))
    }
}

/// What a Deny statement does to the access it covers.
enum DenyKind {
    Removes,
    Restricts(Vec<String>),
    RequiresMfa,
    /// It may or may not apply: ignored.
    Unknown,
}

impl Statement {
    fn deny_kind(&self) -> DenyKind {
        if self.conditions.is_empty() {
            DenyKind::Removes
        } else if self.conditions.iter().all(Condition::restricts_by_negation) {
            DenyKind::Restricts(self.conditions.iter().map(|c| c.key.clone()).collect())
        } else if self.conditions.iter().all(Condition::denies_without_mfa) {
            DenyKind::RequiresMfa
        } else {
            DenyKind::Unknown
        }
    }

    fn allows_action(&self, action: &str) -> bool {
        let action = action.to_ascii_lowercase();
        let hit = |ps: &[String]| {
            ps.iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), &action))
        };
        match &self.actions {
            Patterns::Only(ps) => hit(ps),
            Patterns::AllExcept(ps) => !hit(ps),
        }
    }

    /// Whether the statement's resources include the key (`*` is the key in a key policy).
    fn applies_to(&self, key_arn: &str) -> bool {
        let hit = |ps: &[String]| {
            ps.iter()
                .any(|p| p == "*" || key_arn.is_empty() || glob_match(p, key_arn))
        };
        match &self.resources {
            None => true,
            Some(Patterns::Only(ps)) => hit(ps),
            Some(Patterns::AllExcept(ps)) => !ps.iter().any(|p| p == "*" || glob_match(p, key_arn)),
        }
    }

    /// Whether a Deny's principals cover `p`.
    fn covers(&self, p: &Principal) -> bool {
        let names = |list: &[Principal]| {
            list.iter().any(|q| {
                q == p
                    || (q.kind == PrincipalKind::Aws
                        && p.kind == PrincipalKind::Aws
                        && q.id.ends_with(":root")
                        && account_of(&q.id).is_some()
                        && account_of(&q.id) == account_of(&p.id))
            })
        };
        match &self.principals {
            Principals::Only(list) => {
                list.iter().any(|q| q.kind == PrincipalKind::Anyone) || names(list)
            }
            Principals::AllExcept(list) => p.kind == PrincipalKind::Anyone || !names(list),
        }
    }
}

/// Per principal × action: how the access is granted.
#[derive(Debug, Default, Clone)]
struct Grant {
    statements: BTreeSet<String>,
    /// Some granting statement leaves it unrestricted.
    unrestricted: bool,
    restricted_by: BTreeSet<String>,
    /// Some granting statement does not require MFA.
    without_mfa: bool,
    /// Some granting statement does not limit grants to AWS services acting for the principal
    /// (`kms:GrantIsForAWSResource`); only meaningful for the grant actions.
    beyond_aws_resources: bool,
}

/// Grant actions: administrative (they hand out or take away use of the key) unless the
/// statement limits them to AWS services integrated with KMS acting for the caller, as the
/// default key policy's "persistent resources" statement (`kms:GrantIsForAWSResource`) and
/// service-use statements (`kms:ViaService`) do; that is use, not custody.
const GRANT_ACTIONS: &[&str] = &["kms:CreateGrant", "kms:RevokeGrant"];

/// Analyzes a key policy document for the key `key_arn` in `key_account`. An empty `key_arn`
/// makes every statement apply (the strict reading).
pub fn analyze_policy(document: Option<&str>, key_account: &str, key_arn: &str) -> PolicyAnalysis {
    let Some(document) = document else {
        return PolicyAnalysis::default();
    };
    let statements = match parse_policy(document) {
        Ok(s) => s,
        Err(e) => {
            return PolicyAnalysis {
                parse_error: Some(e),
                ..PolicyAnalysis::default()
            };
        }
    };
    let applying: Vec<&Statement> = statements
        .iter()
        .filter(|s| s.applies_to(key_arn))
        .collect();
    let denies: Vec<(&Statement, DenyKind)> = applying
        .iter()
        .filter(|s| s.effect == Effect::Deny)
        .map(|s| (*s, s.deny_kind()))
        .collect();
    let universe: Vec<&str> = ADMIN_ACTIONS
        .iter()
        .chain(CRYPTO_ACTIONS)
        .chain(READ_ACTIONS)
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let mut grants: BTreeMap<Principal, BTreeMap<&str, Grant>> = BTreeMap::new();
    let mut out = PolicyAnalysis {
        parsed: true,
        ..PolicyAnalysis::default()
    };
    let mut external: BTreeSet<String> = BTreeSet::new();

    for stmt in applying.iter().filter(|s| s.effect == Effect::Allow) {
        let principals = match &stmt.principals {
            Principals::Only(list) => list.clone(),
            Principals::AllExcept(_) => vec![Principal::anyone()],
        };
        let own_restrictions: BTreeSet<String> = stmt
            .conditions
            .iter()
            .filter(|c| c.restricts())
            .map(|c| c.key.clone())
            .collect();
        let own_mfa = stmt.conditions.iter().any(Condition::requires_mfa);
        let for_aws_resources = stmt
            .conditions
            .iter()
            .any(Condition::grants_for_aws_resources);
        let mut wildcard_open = false;
        let mut wildcard_reaches = false;
        for p in &principals {
            for action in universe.iter().filter(|a| stmt.allows_action(a)) {
                let mut restricted_by = own_restrictions.clone();
                let mut mfa = own_mfa;
                let mut removed = false;
                for (deny, kind) in &denies {
                    if !deny.allows_action(action) || !deny.covers(p) {
                        continue;
                    }
                    match kind {
                        // A NotPrincipal Deny leaves only the principals it names: "anyone"
                        // is then restricted to them rather than removed.
                        DenyKind::Removes
                            if p.kind == PrincipalKind::Anyone
                                && matches!(deny.principals, Principals::AllExcept(_)) =>
                        {
                            restricted_by.insert("notprincipal".into());
                        }
                        DenyKind::Removes => removed = true,
                        DenyKind::Restricts(keys) => restricted_by.extend(keys.iter().cloned()),
                        DenyKind::RequiresMfa => mfa = true,
                        DenyKind::Unknown => {}
                    }
                }
                if removed {
                    continue;
                }
                let g = grants
                    .entry(p.clone())
                    .or_default()
                    .entry(action)
                    .or_default();
                g.statements.insert(stmt.label.clone());
                g.unrestricted |= restricted_by.is_empty();
                g.without_mfa |= !mfa;
                g.beyond_aws_resources |= !for_aws_resources;
                g.restricted_by.extend(restricted_by.iter().cloned());
                if p.kind == PrincipalKind::Anyone {
                    wildcard_reaches = true;
                    wildcard_open |= restricted_by.is_empty();
                }
            }
        }
        if wildcard_reaches {
            if wildcard_open {
                out.public_statements.push(stmt.label.clone());
            } else {
                out.conditioned_wildcard_statements.push(stmt.label.clone());
            }
            // The accounts a wildcard's account condition names are reached too.
            for c in stmt.conditions.iter().filter(|c| c.restricts()) {
                if ACCOUNT_KEYS.contains(&c.key.as_str()) {
                    external.extend(
                        c.values
                            .iter()
                            .filter(|v| is_account_id(v) && *v != key_account)
                            .cloned(),
                    );
                }
            }
        }
    }

    let root = format!("arn:aws:iam::{key_account}:root");
    let mut admins = BTreeSet::new();
    let mut users = BTreeSet::new();
    let mut no_mfa = BTreeSet::new();
    for (p, actions) in &grants {
        let account = p.account();
        let outside = match p.kind {
            PrincipalKind::Anyone => true,
            PrincipalKind::Service => false,
            PrincipalKind::CanonicalUser => true,
            PrincipalKind::Aws | PrincipalKind::Federated => {
                account.as_deref().is_some_and(|a| a != key_account)
            }
        };
        if outside && p.kind != PrincipalKind::Anyone {
            external.insert(account.clone().unwrap_or_else(|| p.display()));
        }
        let can_use = CRYPTO_ACTIONS.iter().any(|a| actions.contains_key(a));
        let can_administer = ADMIN_ACTIONS.iter().any(|a| {
            actions
                .get(a)
                .is_some_and(|g| !GRANT_ACTIONS.contains(a) || g.beyond_aws_resources)
        });
        let custodian =
            matches!(p.kind, PrincipalKind::Aws | PrincipalKind::Federated) && p.id != root;
        if p.kind == PrincipalKind::Aws && p.id == root {
            out.root_delegation = true;
        }
        if custodian {
            if can_administer {
                admins.insert(p.display());
            }
            if can_use {
                users.insert(p.display());
            }
            let destructive_open = DESTRUCTIVE_ACTIONS
                .iter()
                .any(|a| actions.get(a).is_some_and(|g| g.without_mfa));
            if destructive_open && !is_service_role(&p.id) {
                no_mfa.insert(p.display());
            }
        }
        out.accesses.push(Access {
            principal: p.display(),
            kind: p.kind,
            account,
            outside_account: outside,
            can_use,
            can_administer,
            unrestricted: actions.values().any(|g| g.unrestricted),
            restricted_by: actions
                .values()
                .flat_map(|g| g.restricted_by.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            statements: actions
                .values()
                .flat_map(|g| g.statements.iter().cloned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        });
    }
    out.admin_and_user = admins.intersection(&users).cloned().collect();
    out.external_accounts = external.into_iter().collect();
    out.administrators = admins.into_iter().collect();
    out.users = users.into_iter().collect();
    out.destructive_without_mfa = no_mfa.into_iter().collect();
    out
}

/// Parses a policy document into statements, or says why it cannot be understood.
fn parse_policy(document: &str) -> Result<Vec<Statement>, String> {
    let doc: Value =
        serde_json::from_str(document).map_err(|e| format!("key policy is not valid JSON: {e}"))?;
    let list: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
        Some(obj @ Value::Object(_)) => vec![obj],
        _ => return Err("key policy has no Statement".into()),
    };
    list.iter()
        .enumerate()
        .map(|(index, v)| parse_statement(index, v))
        .collect()
}

fn parse_statement(index: usize, v: &Value) -> Result<Statement, String> {
    let label = v
        .get("Sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("#{index}"));
    let bad = |what: &str| format!("statement {label}: {what}");
    let effect = match v.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(bad("Effect must be \"Allow\" or \"Deny\"")),
    };
    let principals = match (v.get("Principal"), v.get("NotPrincipal")) {
        (Some(p), None) => {
            Principals::Only(parse_principals(p).ok_or_else(|| bad("invalid Principal"))?)
        }
        (None, Some(p)) => {
            Principals::AllExcept(parse_principals(p).ok_or_else(|| bad("invalid NotPrincipal"))?)
        }
        (Some(_), Some(_)) => return Err(bad("has both Principal and NotPrincipal")),
        (None, None) => return Err(bad("names no Principal")),
    };
    let actions = match (v.get("Action"), v.get("NotAction")) {
        (Some(a), None) => Patterns::Only(strings(a).ok_or_else(|| bad("invalid Action"))?),
        (None, Some(a)) => Patterns::AllExcept(strings(a).ok_or_else(|| bad("invalid NotAction"))?),
        (Some(_), Some(_)) => return Err(bad("has both Action and NotAction")),
        (None, None) => return Err(bad("names no Action")),
    };
    let resources = match (v.get("Resource"), v.get("NotResource")) {
        (Some(r), None) => Some(Patterns::Only(
            strings(r).ok_or_else(|| bad("invalid Resource"))?,
        )),
        (None, Some(r)) => Some(Patterns::AllExcept(
            strings(r).ok_or_else(|| bad("invalid NotResource"))?,
        )),
        (Some(_), Some(_)) => return Err(bad("has both Resource and NotResource")),
        (None, None) => None,
    };
    let conditions = match v.get("Condition") {
        None | Some(Value::Null) => Vec::new(),
        Some(c) => parse_conditions(c).ok_or_else(|| bad("invalid Condition"))?,
    };
    Ok(Statement {
        label,
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

fn parse_principals(v: &Value) -> Option<Vec<Principal>> {
    match v {
        Value::String(s) if s == "*" => Some(vec![Principal::anyone()]),
        Value::Object(map) => {
            let mut out = Vec::new();
            for (kind, ids) in map {
                let kind = match kind.as_str() {
                    "AWS" => PrincipalKind::Aws,
                    "Service" => PrincipalKind::Service,
                    "Federated" => PrincipalKind::Federated,
                    "CanonicalUser" => PrincipalKind::CanonicalUser,
                    _ => return None,
                };
                for id in strings(ids)? {
                    out.push(match (kind, id.as_str()) {
                        (PrincipalKind::Aws, "*") => Principal::anyone(),
                        (PrincipalKind::Aws, _) if is_account_id(&id) => Principal {
                            kind,
                            id: format!("arn:aws:iam::{id}:root"),
                        },
                        _ => Principal { kind, id },
                    });
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn parse_conditions(v: &Value) -> Option<Vec<Condition>> {
    let Value::Object(ops) = v else {
        return None;
    };
    let mut out = Vec::new();
    for (op, keys) in ops {
        let mut rest = op.to_ascii_lowercase();
        let set = if let Some(r) = rest.strip_prefix("foranyvalue:") {
            rest = r.to_string();
            SetOp::AnyValue
        } else if let Some(r) = rest.strip_prefix("forallvalues:") {
            rest = r.to_string();
            SetOp::AllValues
        } else {
            SetOp::Single
        };
        let if_exists = rest.ends_with("ifexists");
        let base = rest.trim_end_matches("ifexists").to_string();
        let Value::Object(keys) = keys else {
            return None;
        };
        for (key, values) in keys {
            let values = match values {
                Value::Array(list) => list.iter().map(scalar).collect::<Option<Vec<_>>>()?,
                other => vec![scalar(other)?],
            };
            out.push(Condition {
                base: base.clone(),
                if_exists,
                set,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Some(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A string or a list of strings.
fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(list) => list
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The account id a principal ARN or bare account id belongs to.
pub fn account_of(principal: &str) -> Option<String> {
    if is_account_id(principal) {
        return Some(principal.to_string());
    }
    // arn:partition:service:region:account:resource
    let mut parts = principal.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let account = parts.nth(3)?;
    is_account_id(account).then(|| account.to_string())
}

/// Roles named like AWS service-linked roles are used by services, not people.
fn is_service_role(principal: &str) -> bool {
    principal.contains(":role/aws-service-role/")
}

/// IAM-style glob: `*` any run, `?` one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "111122223333";
    const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/k1";

    fn analyze(stmts: &str) -> PolicyAnalysis {
        analyze_policy(
            Some(&format!(
                r#"{{"Version":"2012-10-17","Statement":[{stmts}]}}"#
            )),
            ACCT,
            ARN,
        )
    }

    #[test]
    fn wildcard_without_condition_is_public() {
        let a = analyze(
            r#"{"Sid":"Open","Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*"}"#,
        );
        assert_eq!(a.public_statements, vec!["Open"]);
        let a = analyze(r#"{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}"#);
        assert_eq!(a.public_statements, vec!["#0"]);
        assert!(a.accesses[0].unrestricted);
    }

    #[test]
    fn condition_keys_are_case_insensitive_and_name_accounts() {
        let a = analyze(
            r#"{"Sid":"Svc","Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*",
                "Condition":{"StringEquals":{"KMS:CallerAccount":"444455556666"}}}"#,
        );
        assert!(a.public_statements.is_empty());
        assert_eq!(a.conditioned_wildcard_statements, vec!["Svc"]);
        assert_eq!(a.external_accounts, vec!["444455556666"]);
        assert_eq!(a.accesses[0].restricted_by, vec!["kms:calleraccount"]);
    }

    #[test]
    fn weak_conditions_do_not_restrict() {
        for cond in [
            r#"{"StringEqualsIfExists":{"kms:CallerAccount":"111122223333"}}"#,
            r#"{"StringNotEquals":{"kms:CallerAccount":"999999999999"}}"#,
            r#"{"StringLike":{"aws:PrincipalArn":"*"}}"#,
            r#"{"StringEquals":{"kms:EncryptionContext:app":"x"}}"#,
            r#"{"ForAllValues:StringLike":{"aws:PrincipalOrgPaths":"o-1/r-1/*"}}"#,
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","0.0.0.0/0"]}}"#,
        ] {
            let a = analyze(&format!(
                r#"{{"Sid":"W","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{cond}}}"#
            ));
            assert_eq!(a.public_statements, vec!["W"], "{cond}");
        }
        let a = analyze(
            r#"{"Sid":"W","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*",
                "Condition":{"ForAnyValue:StringLike":{"aws:PrincipalOrgPaths":"o-1/r-1/*"}}}"#,
        );
        assert_eq!(a.conditioned_wildcard_statements, vec!["W"]);
    }

    #[test]
    fn not_principal_allow_is_public_and_not_principal_deny_restricts() {
        let a = analyze(
            r#"{"Sid":"N","Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/x"},"Action":"kms:*","Resource":"*"}"#,
        );
        assert_eq!(a.public_statements, vec!["N"]);
        let a = analyze(
            r#"{"Sid":"Open","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"},
               {"Sid":"OnlyApp","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/App"},"Action":"kms:*","Resource":"*"}"#,
        );
        assert!(a.public_statements.is_empty());
        assert_eq!(a.conditioned_wildcard_statements, vec!["Open"]);
    }

    #[test]
    fn deny_overrides_allow() {
        // An unconditional Deny removes the access; an org Deny restricts the wildcard.
        let a = analyze(
            r#"{"Sid":"Open","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"},
               {"Sid":"Shut","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#,
        );
        assert!(a.public_statements.is_empty());
        assert!(a.conditioned_wildcard_statements.is_empty());
        assert!(a.accesses.is_empty());
        let a = analyze(
            r#"{"Sid":"Open","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"},
               {"Sid":"Org","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
                "Condition":{"StringNotEquals":{"aws:PrincipalOrgID":"o-abc123"}}}"#,
        );
        assert_eq!(a.conditioned_wildcard_statements, vec!["Open"]);
        assert_eq!(a.accesses[0].restricted_by, vec!["aws:principalorgid"]);
        // A Deny with an unrelated condition may not apply: ignored.
        let a = analyze(
            r#"{"Sid":"Open","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"},
               {"Sid":"Tls","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
                "Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
        );
        assert_eq!(a.public_statements, vec!["Open"]);
    }

    #[test]
    fn external_accounts_and_separation_of_duties() {
        let a = analyze(
            r#"{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
               {"Sid":"Admin","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:role/KeyAdmins","arn:aws:iam::111122223333:role/App"]},"Action":["kms:Put*","kms:ScheduleKeyDeletion"],"Resource":"*"},
               {"Sid":"Use","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:role/App","777788889999"]},"Action":["kms:Decrypt","kms:GenerateDataKey*"],"Resource":"*"}"#,
        );
        assert!(a.root_delegation);
        assert_eq!(a.external_accounts, vec!["777788889999"]);
        assert_eq!(a.admin_and_user, vec!["arn:aws:iam::111122223333:role/App"]);
        assert_eq!(a.administrators.len(), 2);
        assert_eq!(
            a.users,
            vec![
                "arn:aws:iam::111122223333:role/App",
                "arn:aws:iam::777788889999:root"
            ]
        );
        assert_eq!(a.destructive_without_mfa.len(), 2);
    }

    #[test]
    fn not_action_and_not_resource() {
        let a = analyze(
            r#"{"Sid":"All","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/Ops"},"NotAction":"kms:ScheduleKeyDeletion","Resource":"*"}"#,
        );
        assert_eq!(a.admin_and_user, vec!["arn:aws:iam::111122223333:role/Ops"]);
        let a = analyze(
            r#"{"Sid":"Other","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:eu-west-1:111122223333:key/other"},
               {"Sid":"NotThis","Effect":"Allow","Principal":"*","Action":"kms:*","NotResource":"arn:aws:kms:*:111122223333:key/k1"}"#,
        );
        assert!(a.public_statements.is_empty(), "{a:?}");
        assert!(a.accesses.is_empty());
    }

    #[test]
    fn mfa_in_allow_or_deny_clears_destructive_finding() {
        let a = analyze(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/KeyAdmins"},"Action":"kms:*","Resource":"*",
                "Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}"#,
        );
        assert!(a.destructive_without_mfa.is_empty());
        let a = analyze(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/KeyAdmins"},"Action":"kms:*","Resource":"*",
                "Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}}"#,
        );
        assert_eq!(
            a.destructive_without_mfa.len(),
            1,
            "IfExists passes without MFA"
        );
        let a = analyze(
            r#"{"Sid":"A","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/KeyAdmins"},"Action":"kms:*","Resource":"*"},
               {"Sid":"D","Effect":"Deny","Principal":"*","Action":["kms:ScheduleKeyDeletion","kms:DisableKey","kms:PutKeyPolicy","kms:DeleteImportedKeyMaterial"],"Resource":"*",
                "Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}"#,
        );
        assert!(a.destructive_without_mfa.is_empty());
    }

    #[test]
    fn service_federated_and_canonical_principals() {
        let a = analyze(
            r#"{"Sid":"CT","Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"kms:GenerateDataKey*","Resource":"*"},
               {"Sid":"Fed","Effect":"Allow","Principal":{"Federated":"arn:aws:iam::111122223333:saml-provider/Okta"},"Action":"kms:Decrypt","Resource":"*"},
               {"Sid":"Can","Effect":"Allow","Principal":{"CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},"Action":"kms:Decrypt","Resource":"*"}"#,
        );
        assert!(a.public_statements.is_empty());
        assert_eq!(
            a.users,
            vec!["arn:aws:iam::111122223333:saml-provider/Okta"]
        );
        assert_eq!(
            a.external_accounts,
            vec!["canonical-user:79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"]
        );
        let svc = a
            .accesses
            .iter()
            .find(|x| x.kind == PrincipalKind::Service)
            .expect("service access");
        assert!(svc.can_use && !svc.outside_account);
    }

    #[test]
    fn unreadable_policies_are_not_parsed() {
        assert!(!analyze_policy(None, ACCT, ARN).parsed);
        for doc in [
            "{not json",
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"kms:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"kms:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Nobody":"x"},"Action":"kms:*"}]}"#,
        ] {
            let a = analyze_policy(Some(doc), ACCT, ARN);
            assert!(!a.parsed, "{doc}");
            assert!(a.parse_error.is_some(), "{doc}");
        }
    }

    #[test]
    fn glob_matches_iam_style() {
        assert!(glob_match("kms:*", "kms:decrypt"));
        assert!(glob_match("kms:reencrypt*", "kms:reencryptfrom"));
        assert!(glob_match("*", "kms:putkeypolicy"));
        assert!(!glob_match("kms:get*", "kms:putkeypolicy"));
        assert!(glob_match("kms:?ecrypt", "kms:decrypt"));
    }
}
