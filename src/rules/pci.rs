//! The PCI DSS requirement numbers keyproof maps controls to, in both versions, with titles.
//!
//! Control files may only cite requirements listed here, so a typo or an invented "pseudo
//! requirement" fails at load instead of reaching an auditor.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The framework version a report is organised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
pub enum Framework {
    /// PCI DSS v4.0.1 (current).
    #[default]
    #[serde(rename = "pci-dss-4.0.1")]
    #[value(name = "pci-dss-4.0.1")]
    PciDss401,
    /// PCI DSS v3.2.1 (retired, still asked for).
    #[serde(rename = "pci-dss-3.2.1")]
    #[value(name = "pci-dss-3.2.1")]
    PciDss321,
}

impl Framework {
    pub fn label(self) -> &'static str {
        match self {
            Framework::PciDss401 => "PCI DSS v4.0.1",
            Framework::PciDss321 => "PCI DSS v3.2.1",
        }
    }

    /// Title of requirement `id` in this framework, if keyproof knows it.
    pub fn title(self, id: &str) -> Option<&'static str> {
        let table = match self {
            Framework::PciDss401 => V4_0_1,
            Framework::PciDss321 => V3_2_1,
        };
        table.iter().find(|(r, _)| *r == id).map(|(_, t)| *t)
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framework::PciDss401 => "pci-dss-4.0.1",
            Framework::PciDss321 => "pci-dss-3.2.1",
        })
    }
}

/// Sorts requirement ids numerically (3.6.1.2 before 3.6.10).
pub fn requirement_sort_key(id: &str) -> Vec<u32> {
    id.split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}

/// PCI DSS v4.0.1 requirements in keyproof's scope (abridged titles).
pub const V4_0_1: &[(&str, &str)] = &[
    (
        "3.1.1",
        "Security policies and procedures for protecting stored account data are documented, in use and known",
    ),
    (
        "3.5.1",
        "PAN is rendered unreadable anywhere it is stored (strong cryptography with key management)",
    ),
    (
        "3.6.1",
        "Procedures are defined to protect cryptographic keys against disclosure and misuse",
    ),
    (
        "3.6.1.1",
        "Documented cryptographic architecture; no shared keys between production and test",
    ),
    (
        "3.6.1.2",
        "Secret and private keys are stored in approved forms (e.g. within an HSM)",
    ),
    (
        "3.6.1.3",
        "Access to cleartext key components is restricted to the fewest custodians",
    ),
    (
        "3.6.1.4",
        "Keys are stored in the fewest possible locations",
    ),
    (
        "3.7.1",
        "Key-management procedures include generation of strong keys",
    ),
    (
        "3.7.2",
        "Key-management procedures include secure key distribution",
    ),
    (
        "3.7.3",
        "Key-management procedures include secure key storage",
    ),
    (
        "3.7.4",
        "Keys are changed at the end of their defined cryptoperiod",
    ),
    (
        "3.7.5",
        "Keys are retired, replaced or destroyed when integrity is weakened or at end of use",
    ),
    (
        "3.7.6",
        "Manual cleartext key operations use split knowledge and dual control",
    ),
    ("3.7.7", "Unauthorized substitution of keys is prevented"),
    (
        "3.7.8",
        "Key custodians formally acknowledge their responsibilities",
    ),
    (
        "10.2.1",
        "Audit logs are enabled and active for all system components",
    ),
    (
        "10.2.1.2",
        "Audit logs capture all actions taken by individuals with administrative access",
    ),
    (
        "10.2.2",
        "Audit logs record user, event type, date/time, outcome, origin and affected resource",
    ),
    (
        "10.3.1",
        "Read access to audit log files is limited to those with a job-related need",
    ),
    ("10.3.2", "Audit log files are protected from modification"),
    (
        "10.3.3",
        "Audit log files are promptly backed up to a secure central store",
    ),
    (
        "10.3.4",
        "File-integrity monitoring or change detection is used on audit logs",
    ),
    (
        "10.4.1",
        "Security events and critical-component logs are reviewed at least daily",
    ),
    (
        "10.4.3",
        "Exceptions and anomalies identified in the review are addressed",
    ),
    (
        "10.5.1",
        "Audit log history is retained for at least 12 months",
    ),
    ("10.6.1", "System clocks and time are synchronized"),
    (
        "10.7.1",
        "Failures of critical security control systems are detected and responded to (service providers)",
    ),
    (
        "10.7.2",
        "Failures of critical security control systems are detected and responded to",
    ),
];

/// PCI DSS v3.2.1 requirements in keyproof's scope (abridged titles).
pub const V3_2_1: &[(&str, &str)] = &[
    ("3.4", "Render PAN unreadable anywhere it is stored"),
    ("3.5", "Protect keys used to secure stored cardholder data"),
    (
        "3.5.1",
        "Service providers: maintain a documented cryptographic architecture",
    ),
    (
        "3.5.2",
        "Restrict access to cryptographic keys to the fewest custodians",
    ),
    ("3.5.3", "Store secret and private keys in approved forms"),
    (
        "3.5.4",
        "Store cryptographic keys in the fewest possible locations",
    ),
    ("3.6.1", "Generation of strong cryptographic keys"),
    ("3.6.2", "Secure cryptographic key distribution"),
    ("3.6.3", "Secure cryptographic key storage"),
    (
        "3.6.4",
        "Cryptographic key changes at the end of the cryptoperiod",
    ),
    ("3.6.5", "Retirement or replacement of keys"),
    (
        "3.6.6",
        "Split knowledge and dual control for manual cleartext key operations",
    ),
    ("3.6.7", "Prevention of unauthorized substitution of keys"),
    ("3.6.8", "Key custodians acknowledge their responsibilities"),
    (
        "3.7",
        "Security policies and procedures for protecting stored cardholder data",
    ),
    (
        "10.1",
        "Implement audit trails to link access to individual users",
    ),
    (
        "10.2",
        "Implement automated audit trails for all system components",
    ),
    (
        "10.2.2",
        "Audit trails record all actions by anyone with root or administrative privileges",
    ),
    (
        "10.3",
        "Record audit trail entries for all system components",
    ),
    ("10.3.1", "Audit trail entries include user identification"),
    ("10.3.2", "Audit trail entries include type of event"),
    ("10.3.3", "Audit trail entries include date and time"),
    (
        "10.3.4",
        "Audit trail entries include success or failure indication",
    ),
    ("10.3.5", "Audit trail entries include origination of event"),
    (
        "10.3.6",
        "Audit trail entries include identity of affected data, component or resource",
    ),
    ("10.5", "Secure audit trails so they cannot be altered"),
    (
        "10.5.1",
        "Limit viewing of audit trails to those with a job-related need",
    ),
    (
        "10.5.2",
        "Protect audit trail files from unauthorized modifications",
    ),
    (
        "10.5.3",
        "Promptly back up audit trail files to a centralized log server",
    ),
    (
        "10.5.5",
        "Use file-integrity monitoring or change-detection software on logs",
    ),
    (
        "10.6",
        "Review logs and security events for all system components",
    ),
    (
        "10.6.1",
        "Review security events and critical-component logs at least daily",
    ),
    (
        "10.6.3",
        "Follow up exceptions and anomalies identified during the review process",
    ),
    ("10.7", "Retain audit trail history for at least one year"),
    (
        "10.8",
        "Service providers: detect and report failures of critical security control systems",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_numerically() {
        let mut ids = vec!["3.6.10", "3.6.1.2", "10.2.1", "3.6.1"];
        ids.sort_by_key(|i| requirement_sort_key(i));
        assert_eq!(ids, vec!["3.6.1", "3.6.1.2", "3.6.10", "10.2.1"]);
    }

    #[test]
    fn knows_titles_in_both_versions() {
        assert!(Framework::PciDss401.title("3.7.4").is_some());
        assert!(Framework::PciDss321.title("3.6.4").is_some());
        assert!(Framework::PciDss401.title("3.6.4").is_none());
    }
}
