//! Key-policy analysis: who a KMS key policy lets in, and on what terms.
//!
//! The analysis answers the questions the controls ask, and is deliberately strict where the
//! common scanners are lax:
//! - A wildcard principal (`"*"`, `{"AWS": "*"}`, or any `NotPrincipal` in an Allow) is public
//!   unless a *restrictive* condition narrows it. Condition keys compare case-insensitively (as
//!   IAM does). A condition only restricts when its operator is a positive match (`StringEquals`,
//!   `ArnLike`, `IpAddress`, ...), is not `...IfExists` (an absent key would pass), and its values
//!   are not themselves wildcards.
//! - Principals in other accounts are listed by account id, from ARNs and bare account ids.
//! - The account root principal (`arn:aws:iam::ACCOUNT:root`) delegates to IAM; it is reported
//!   as such rather than counted as a custodian.
//!
//! Not for: evaluating IAM identity policies or SCPs (not in the snapshot).

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

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

/// KMS actions that administer a key rather than use it.
const ADMIN_ACTIONS: &[&str] = &[
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:DisableKey",
    "kms:EnableKey",
    "kms:DisableKeyRotation",
    "kms:ImportKeyMaterial",
    "kms:DeleteImportedKeyMaterial",
    "kms:UpdateKeyDescription",
    "kms:CreateAlias",
    "kms:DeleteAlias",
];

/// KMS actions that destroy or lock data and should require MFA for humans.
const DESTRUCTIVE_ACTIONS: &[&str] = &[
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:PutKeyPolicy",
    "kms:DeleteImportedKeyMaterial",
];

/// KMS actions that use a key for cryptography.
const CRYPTO_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:Sign",
    "kms:GenerateMac",
];

/// What a key policy allows, reduced to what the controls check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyAnalysis {
    /// Whether the policy was present and parsed; `false` means the other fields are empty
    /// because there was nothing to analyze (controls treat that as missing evidence).
    pub parsed: bool,
    /// Why parsing failed, if it did.
    pub parse_error: Option<String>,
    /// Allow statements (by Sid, or `#<index>` without one) open to any principal with no
    /// restrictive condition.
    pub public_statements: Vec<String>,
    /// Allow statements open to any principal but limited by a restrictive condition.
    pub conditioned_wildcard_statements: Vec<String>,
    /// Accounts other than the key's own that principals in Allow statements belong to.
    pub external_accounts: Vec<String>,
    /// Principals (excluding the account root) allowed administrative actions.
    pub administrators: Vec<String>,
    /// Principals (excluding the account root) allowed cryptographic use.
    pub users: Vec<String>,
    /// Principals in both lists: a separation-of-duties conflict.
    pub admin_and_user: Vec<String>,
    /// Principals allowed destructive actions without an MFA condition (roles of services are
    /// excluded: MFA only applies to humans).
    pub destructive_without_mfa: Vec<String>,
    /// The account root principal is granted access (IAM policies then decide).
    pub root_delegation: bool,
}

/// Analyzes a key policy document for a key in `key_account`.
pub fn analyze_policy(document: Option<&str>, key_account: &str) -> PolicyAnalysis {
    let Some(document) = document else {
        return PolicyAnalysis::default();
    };
    let doc: Value = match serde_json::from_str(document) {
        Ok(v) => v,
        Err(e) => {
            return PolicyAnalysis {
                parse_error: Some(format!("key policy is not valid JSON: {e}")),
                ..PolicyAnalysis::default()
            };
        }
    };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(obj @ Value::Object(_)) => vec![obj],
        _ => {
            return PolicyAnalysis {
                parse_error: Some("key policy has no Statement".into()),
                ..PolicyAnalysis::default()
            };
        }
    };

    let mut out = PolicyAnalysis {
        parsed: true,
        ..PolicyAnalysis::default()
    };
    let mut external = BTreeSet::new();
    let mut admins = BTreeSet::new();
    let mut users = BTreeSet::new();
    let mut no_mfa = BTreeSet::new();

    for (index, stmt) in statements.iter().enumerate() {
        if !stmt
            .get("Effect")
            .and_then(Value::as_str)
            .is_some_and(|e| e.eq_ignore_ascii_case("Allow"))
        {
            continue;
        }
        let label = stmt
            .get("Sid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{index}"));
        let condition = stmt.get("Condition");
        let principals = principals_of(stmt);
        let wildcard = stmt.get("NotPrincipal").is_some() || principals.iter().any(|p| p == "*");
        if wildcard {
            if has_restrictive_condition(condition) {
                out.conditioned_wildcard_statements.push(label.clone());
            } else {
                out.public_statements.push(label.clone());
            }
        }
        let actions = actions_of(stmt);
        let grants_admin = ADMIN_ACTIONS.iter().any(|a| actions_allow(&actions, a));
        let grants_crypto = CRYPTO_ACTIONS.iter().any(|a| actions_allow(&actions, a));
        let grants_destructive = DESTRUCTIVE_ACTIONS
            .iter()
            .any(|a| actions_allow(&actions, a));
        let requires_mfa = condition_mentions(condition, "aws:multifactorauthpresent");

        for p in principals.iter().filter(|p| *p != "*") {
            if let Some(account) = account_of(p)
                && account != key_account
            {
                external.insert(account);
            }
            if is_account_root(p, key_account) {
                out.root_delegation = true;
                continue;
            }
            if p.ends_with(".amazonaws.com") {
                // A service principal is not a custodian; conditions on it are checked by the
                // wildcard and cross-account rules.
                continue;
            }
            if grants_admin {
                admins.insert(p.clone());
            }
            if grants_crypto {
                users.insert(p.clone());
            }
            if grants_destructive && !requires_mfa && !is_service_role(p) {
                no_mfa.insert(p.clone());
            }
        }
    }
    out.admin_and_user = admins.intersection(&users).cloned().collect();
    out.external_accounts = external.into_iter().collect();
    out.administrators = admins.into_iter().collect();
    out.users = users.into_iter().collect();
    out.destructive_without_mfa = no_mfa.into_iter().collect();
    out
}

/// The account id a principal ARN or bare account id belongs to.
pub fn account_of(principal: &str) -> Option<String> {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Some(principal.to_string());
    }
    // arn:partition:service:region:account:resource
    let mut parts = principal.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let account = parts.nth(3)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

fn is_account_root(principal: &str, account: &str) -> bool {
    principal == account
        || (principal.starts_with("arn:") && principal.ends_with(&format!(":{account}:root")))
}

/// Roles named like AWS service-linked roles are used by services, not people.
fn is_service_role(principal: &str) -> bool {
    principal.contains(":role/aws-service-role/")
}

/// Every principal named in a statement's `Principal` (all types), as strings.
fn principals_of(stmt: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match stmt.get("Principal") {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Object(map)) => {
            for v in map.values() {
                out.extend(strings_of(v));
            }
        }
        _ => {}
    }
    out
}

fn actions_of(stmt: &Value) -> Vec<String> {
    stmt.get("Action").map(strings_of).unwrap_or_default()
}

fn strings_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether any action pattern (IAM glob, case-insensitive) matches `action`.
fn actions_allow(patterns: &[String], action: &str) -> bool {
    patterns
        .iter()
        .any(|p| glob_match(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()))
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

/// Whether a condition block contains a restrictive key under a positive operator with
/// non-wildcard values.
fn has_restrictive_condition(condition: Option<&Value>) -> bool {
    let Some(Value::Object(ops)) = condition else {
        return false;
    };
    ops.iter().any(|(op, keys)| {
        let op_l = op.to_ascii_lowercase();
        let positive = !op_l.contains("not")
            && !op_l.ends_with("ifexists")
            && !op_l.starts_with("null")
            && !op_l.starts_with("forallvalues:");
        let Value::Object(keys) = keys else {
            return false;
        };
        positive
            && keys.iter().any(|(k, v)| {
                RESTRICTIVE_KEYS.contains(&k.to_ascii_lowercase().as_str())
                    && !strings_of(v).is_empty()
                    && strings_of(v)
                        .iter()
                        .all(|s| !s.trim().is_empty() && s != "*")
            })
    })
}

/// Whether a condition block tests `key` (lower-case) under any operator.
fn condition_mentions(condition: Option<&Value>, key: &str) -> bool {
    let Some(Value::Object(ops)) = condition else {
        return false;
    };
    ops.values().any(|keys| match keys {
        Value::Object(keys) => keys.keys().any(|k| k.eq_ignore_ascii_case(key)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "111122223333";

    fn analyze(stmts: &str) -> PolicyAnalysis {
        analyze_policy(
            Some(&format!(
                r#"{{"Version":"2012-10-17","Statement":[{stmts}]}}"#
            )),
            ACCT,
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
    }

    #[test]
    fn condition_keys_are_case_insensitive() {
        let a = analyze(
            r#"{"Sid":"Svc","Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*",
                "Condition":{"StringEquals":{"KMS:CallerAccount":"111122223333"}}}"#,
        );
        assert!(a.public_statements.is_empty());
        assert_eq!(a.conditioned_wildcard_statements, vec!["Svc"]);
    }

    #[test]
    fn weak_conditions_do_not_restrict() {
        for cond in [
            r#"{"StringEqualsIfExists":{"kms:CallerAccount":"111122223333"}}"#,
            r#"{"StringNotEquals":{"kms:CallerAccount":"999999999999"}}"#,
            r#"{"StringLike":{"aws:PrincipalArn":"*"}}"#,
            r#"{"StringEquals":{"kms:EncryptionContext:app":"x"}}"#,
        ] {
            let a = analyze(&format!(
                r#"{{"Sid":"W","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{cond}}}"#
            ));
            assert_eq!(a.public_statements, vec!["W"], "{cond}");
        }
    }

    #[test]
    fn not_principal_allow_is_public_and_deny_is_ignored() {
        let a = analyze(
            r#"{"Sid":"N","Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/x"},"Action":"kms:*","Resource":"*"},
               {"Sid":"D","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}"#,
        );
        assert_eq!(a.public_statements, vec!["N"]);
    }

    #[test]
    fn external_accounts_and_separation_of_duties() {
        let a = analyze(
            r#"{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
               {"Sid":"Admin","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:role/KeyAdmins","arn:aws:iam::111122223333:role/App"]},"Action":["kms:Put*","kms:ScheduleKeyDeletion"],"Resource":"*"},
               {"Sid":"Use","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:role/App","arn:aws:iam::777788889999:role/Backup"]},"Action":["kms:Decrypt","kms:GenerateDataKey*"],"Resource":"*"}"#,
        );
        assert!(a.root_delegation);
        assert_eq!(a.external_accounts, vec!["777788889999"]);
        assert_eq!(a.admin_and_user, vec!["arn:aws:iam::111122223333:role/App"]);
        assert_eq!(a.administrators.len(), 2);
        assert_eq!(a.destructive_without_mfa.len(), 2);
    }

    #[test]
    fn mfa_condition_clears_destructive_finding() {
        let a = analyze(
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/KeyAdmins"},"Action":"kms:*","Resource":"*",
                "Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}"#,
        );
        assert!(a.destructive_without_mfa.is_empty());
    }

    #[test]
    fn missing_or_broken_policy_is_not_parsed() {
        assert!(!analyze_policy(None, ACCT).parsed);
        let broken = analyze_policy(Some("{not json"), ACCT);
        assert!(!broken.parsed);
        assert!(broken.parse_error.is_some());
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
