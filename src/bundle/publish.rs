//! Publishing a sealed run to S3 under Object Lock in compliance mode, so that the evidence can
//! be neither changed nor deleted before its retention date, not even by the bucket's owner.
//!
//! Every file is checked against the manifest before it leaves the machine (an altered run is
//! never published), sent with its SHA-256 so that S3 checks the transfer, and the manifest and
//! its signature go last: whoever sees the manifest in the bucket finds every file it lists. A
//! bucket without Object Lock is refused unless the caller says otherwise, and the retention S3
//! actually applied is read back. The client is held by its own guard to PutObject,
//! GetObjectLockConfiguration and HeadObject (`docs/iam-policy-publish.json`).

use super::manifest::{MANIFEST, SIGNATURE, read_manifest};
use crate::collect::{ApiFailure, Guard, Ledger};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockEnabled, ObjectLockMode};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

/// `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Without leading or trailing slashes; may be empty.
    pub prefix: String,
}

impl S3Url {
    /// The object key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

impl FromStr for S3Url {
    type Err = PublishError;

    fn from_str(s: &str) -> Result<S3Url, PublishError> {
        let bad = |why: &str| PublishError::BadUrl {
            url: s.to_string(),
            why: why.to_string(),
        };
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3 bucket naming rules: 3-63 characters of lower-case letters, digits, dots, hyphens.
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !valid {
            return Err(bad("the bucket name is not a valid S3 bucket name"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            return Err(bad("the prefix has an empty, `.` or `..` segment"));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// `[publish]` in keyproof.toml.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Where every sealed run is published, e.g. `s3://evidence-bucket/keyproof`. Default:
    /// none (runs are published only with `--publish`).
    pub target: Option<String>,
    /// Days the published objects stay locked in compliance mode. Default 397 (13 months:
    /// PCI DSS 10.5.1's year of history plus a month of margin).
    pub retention_days: u32,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            target: None,
            retention_days: 397,
        }
    }
}

/// What to publish where.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub target: S3Url,
    /// Days the objects stay locked (compliance mode).
    pub retention_days: u32,
    /// Publish to a bucket without Object Lock (the objects are then unprotected).
    pub allow_unlocked: bool,
}

/// What was published.
#[derive(Debug, Clone)]
pub struct Published {
    /// `s3://bucket/prefix/<run-id>/`.
    pub location: String,
    pub files: usize,
    pub bytes: u64,
    /// Object Lock mode and retain-until date as S3 reports them for manifest.json; `None` when
    /// published without Object Lock.
    pub lock: Option<(String, DateTime<Utc>)>,
}

/// Why a run could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{url} is not an S3 location: {why} (expected s3://bucket/prefix)")]
    BadUrl { url: String, why: String },
    #[error("{0} is not a sealed run (no readable manifest.json)")]
    NotSealed(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} no longer matches the manifest (sha256 {actual}, manifest says {expected}): refusing to publish an altered run; `keyproof verify` shows what changed"
    )]
    Altered {
        path: String,
        expected: String,
        actual: String,
    },
    #[error(
        "bucket {bucket} does not have S3 Object Lock enabled, so published evidence could be changed or deleted. Use a bucket created with Object Lock (aws s3api create-bucket --object-lock-enabled-for-bucket), or pass --publish-unlocked to publish without the protection"
    )]
    NoObjectLock { bucket: String },
    #[error(
        "S3 applied {mode} retention until {until} to {key}, not COMPLIANCE until at least {wanted}"
    )]
    WeakRetention {
        key: String,
        mode: String,
        until: String,
        wanted: DateTime<Utc>,
    },
    #[error("S3 {operation} on {target} failed: {failure}")]
    Call {
        operation: &'static str,
        target: String,
        failure: ApiFailure,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Uploads the sealed run `run_dir` to `s3://bucket/prefix/<run-id>/`.
pub fn publish(run_dir: &Path, options: &PublishOptions) -> Result<Published, PublishError> {
    let (manifest, _, manifest_bytes) = read_manifest(run_dir)
        .ok_or_else(|| PublishError::NotSealed(run_dir.display().to_string()))?;
    // Every file is read and checked first: nothing is uploaded from an altered run.
    let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(manifest.files.len() + 2);
    for entry in &manifest.files {
        let path = run_dir.join(&entry.path);
        let bytes = std::fs::read(&path).map_err(|source| PublishError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != entry.sha256 {
            return Err(PublishError::Altered {
                path: path.display().to_string(),
                expected: entry.sha256.clone(),
                actual,
            });
        }
        files.push((entry.path.clone(), bytes));
    }
    files.push((MANIFEST.to_string(), manifest_bytes));
    let sig = run_dir.join(SIGNATURE);
    if sig.exists() {
        let bytes = std::fs::read(&sig).map_err(|source| PublishError::Read {
            path: sig.display().to_string(),
            source,
        })?;
        files.push((SIGNATURE.to_string(), bytes));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PublishError::Runtime)?;
    runtime.block_on(upload(&manifest.run_id, files, options))
}

async fn upload(
    run_id: &str,
    files: Vec<(String, Vec<u8>)>,
    options: &PublishOptions,
) -> Result<Published, PublishError> {
    let client = s3_client(Guard::publishing(Arc::new(Ledger::default())), None).await;
    let bucket = &options.target.bucket;
    let call = |operation: &'static str, target: String| {
        move |failure: ApiFailure| PublishError::Call {
            operation,
            target,
            failure,
        }
    };

    let locked = match client
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => out
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled())
            .is_some_and(|e| *e == ObjectLockEnabled::Enabled),
        Err(e) => {
            let failure = ApiFailure::from_sdk(&e);
            if failure.code != "ObjectLockConfigurationNotFoundError" {
                return Err(call("GetObjectLockConfiguration", format!("s3://{bucket}"))(failure));
            }
            false
        }
    };
    if !locked && !options.allow_unlocked {
        return Err(PublishError::NoObjectLock {
            bucket: bucket.clone(),
        });
    }
    // Whole seconds: S3 keeps retention dates to the second, and the read-back compares them.
    let now = Utc::now();
    let retain_until = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
        + Duration::days(i64::from(options.retention_days));

    let run_prefix = options.target.key(run_id);
    let count = files.len();
    let mut bytes_total = 0u64;
    for (name, bytes) in files {
        let key = format!("{run_prefix}/{name}");
        bytes_total += bytes.len() as u64;
        let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        let mut put = client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(content_type(&name))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum)
            .body(ByteStream::from(bytes));
        if locked {
            put = put
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                    retain_until.timestamp(),
                ));
        }
        put.send().await.map_err(|e| {
            call("PutObject", format!("s3://{bucket}/{key}"))(ApiFailure::from_sdk(&e))
        })?;
    }

    let lock = if locked {
        let key = format!("{run_prefix}/{MANIFEST}");
        // HeadObject reports the lock S3 applied (with s3:GetObjectRetention allowed).
        let out = client
            .head_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                call("HeadObject", format!("s3://{bucket}/{key}"))(ApiFailure::from_sdk(&e))
            })?;
        let mode = out
            .object_lock_mode()
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| "no".into());
        let until = out
            .object_lock_retain_until_date()
            .and_then(|d| DateTime::from_timestamp(d.secs(), 0));
        match until {
            Some(until) if mode == "COMPLIANCE" && until >= retain_until => Some((mode, until)),
            _ => {
                return Err(PublishError::WeakRetention {
                    key,
                    mode,
                    until: until
                        .map(|u| u.to_rfc3339())
                        .unwrap_or_else(|| "none".into()),
                    wanted: retain_until,
                });
            }
        }
    } else {
        None
    };
    Ok(Published {
        location: format!("s3://{bucket}/{run_prefix}/"),
        files: count,
        bytes: bytes_total,
        lock,
    })
}

/// An S3 client from the default AWS configuration, held by `guard`. With an endpoint override
/// (an S3-compatible store, or the tests' emulator) buckets are addressed by path, since
/// virtual-host names do not resolve there. Shared by publishing and by log reading.
pub(crate) async fn s3_client(guard: Guard, profile: Option<&str>) -> aws_sdk_s3::Client {
    let sdk = crate::collect::default_config(None, profile).await;
    let path_style = sdk.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .interceptor(guard)
            .build(),
    )
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("pdf") => "application/pdf",
        Some("gz") => "application/gzip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        let u: S3Url = "s3://evidence-bucket/pci/keyproof/".parse().expect("valid");
        assert_eq!(u.bucket, "evidence-bucket");
        assert_eq!(u.prefix, "pci/keyproof");
        assert_eq!(u.key("run-1"), "pci/keyproof/run-1");
        let bare: S3Url = "s3://evidence-bucket".parse().expect("valid");
        assert_eq!(bare.key("run-1"), "run-1");
        for bad in [
            "evidence-bucket/x",
            "s3://",
            "s3://Evidence/x",
            "s3://ab/x",
            "s3://-bucket/x",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
        ] {
            assert!(bad.parse::<S3Url>().is_err(), "{bad} accepted");
        }
    }
}
