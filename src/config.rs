//! `keyproof.toml`: the organisation's parameters that controls are evaluated against.
//!
//! Every field has a documented default, so keyproof runs without a config file; a file only
//! needs the values that differ. Unknown keys are rejected, so a typo cannot silently leave a
//! default in force.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path} is invalid: {message}")]
    Invalid { path: String, message: String },
}

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Values the controls compare against; available to CEL expressions as `params`.
    pub parameters: Parameters,
    /// How environments and PCI scope are read from resource and key tags.
    pub tags: TagConventions,
    /// When `keyproof schedule` runs, what, and how long runs are kept.
    pub schedule: crate::schedule::ScheduleConfig,
    /// Where sealed runs are published (S3 with Object Lock) and for how long they are locked.
    pub publish: crate::bundle::PublishConfig,
    /// How CloudTrail log files are analysed (`keyproof audit-logs`).
    pub logs: crate::logs::LogsConfig,
}

/// Parameters available to control expressions as `params.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Parameters {
    /// Longest acceptable cryptoperiod for a data-encryption key, in days (PCI DSS 3.6.4 /
    /// 3.7.4 let the entity define it; 90 is a common QSA expectation). Default 90.
    pub cryptoperiod_days: i64,
    /// Accounts (besides the key's own) that may be granted access to keys, e.g. the DR or
    /// backup account. Default: none.
    pub allowed_accounts: Vec<String>,
    /// Most principals that may administer a single key (fewest custodians). Default 5.
    pub max_key_administrators: i64,
    /// Key specs accepted as strong cryptography. Default: AES-256 (SYMMETRIC_DEFAULT), RSA
    /// 2048+, NIST P-256+ curves, HMAC 256+.
    pub strong_key_specs: Vec<String>,
    /// Shortest acceptable waiting period when a key is scheduled for deletion. Default 7
    /// (the KMS minimum).
    pub deletion_window_min_days: i64,
    /// Longest acceptable waiting period. Default 30 (the KMS maximum).
    pub deletion_window_max_days: i64,
    /// Tags every customer managed key must carry. Default `Environment`, `Service`,
    /// `PCIScope`.
    pub required_key_tags: Vec<String>,
    /// Values of the `Service` tag (see `tags.service_key`) whose keys need a replica in
    /// `dr_region`. Default: none.
    pub critical_services: Vec<String>,
    /// The disaster-recovery region critical keys are replicated to. Default: none (the DR
    /// control is then not applicable).
    pub dr_region: String,
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            cryptoperiod_days: 90,
            allowed_accounts: Vec::new(),
            max_key_administrators: 5,
            strong_key_specs: [
                "SYMMETRIC_DEFAULT",
                "RSA_2048",
                "RSA_3072",
                "RSA_4096",
                "ECC_NIST_P256",
                "ECC_NIST_P384",
                "ECC_NIST_P521",
                "HMAC_256",
                "HMAC_384",
                "HMAC_512",
            ]
            .map(String::from)
            .to_vec(),
            deletion_window_min_days: 7,
            deletion_window_max_days: 30,
            required_key_tags: ["Environment", "Service", "PCIScope"]
                .map(String::from)
                .to_vec(),
            critical_services: Vec::new(),
            dr_region: String::new(),
        }
    }
}

/// Tag conventions for environment and CDE scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TagConventions {
    /// Tag key holding the environment. Default `Environment`.
    pub environment_key: String,
    /// Values of that tag meaning production (compared case-insensitively). Default
    /// `production`, `prod`.
    pub production_values: Vec<String>,
    /// Tag key marking PCI scope. Default `PCIScope`.
    pub cde_key: String,
    /// Values of that tag meaning "in the cardholder data environment". Default `cde`.
    pub cde_values: Vec<String>,
    /// Tag key naming the service a key or resource belongs to. Default `Service`.
    pub service_key: String,
}

impl Default for TagConventions {
    fn default() -> Self {
        TagConventions {
            environment_key: "Environment".into(),
            production_values: vec!["production".into(), "prod".into()],
            cde_key: "PCIScope".into(),
            cde_values: vec!["cde".into()],
            service_key: "Service".into(),
        }
    }
}

impl Config {
    /// Loads `path`, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        if config.parameters.cryptoperiod_days <= 0 {
            return Err(ConfigError::Invalid {
                path: origin.to_string(),
                message: "parameters.cryptoperiod_days must be a positive number of days".into(),
            });
        }
        let p = &config.parameters;
        if p.deletion_window_min_days > p.deletion_window_max_days {
            return Err(ConfigError::Invalid {
                path: origin.to_string(),
                message:
                    "parameters.deletion_window_min_days is larger than deletion_window_max_days"
                        .into(),
            });
        }
        Ok(config)
    }

    /// Canonical JSON of the effective config, for hashing into reports.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", "test").expect("parses");
        assert_eq!(c, Config::default());
        assert_eq!(c.parameters.cryptoperiod_days, 90);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = Config::parse("[parameters]\ncryptoperiod = 30\n", "k.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("k.toml"), "{msg}");
        assert!(msg.contains("cryptoperiod"), "{msg}");
    }

    #[test]
    fn non_positive_cryptoperiod_is_rejected() {
        assert!(Config::parse("[parameters]\ncryptoperiod_days = 0\n", "k").is_err());
    }
}
