//! Where CloudTrail log files come from: a local directory (what `aws s3 sync` leaves) or the
//! trail's S3 bucket. Both list only the files of the window and hand their bytes to the same
//! parser; [`scan`] reads them in parallel and merges the per-worker results.
//!
//! The standard layout is `AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/<yyyy>/<mm>/<dd>/
//! <account>_CloudTrail_<region>_<yyyymmddThhmmZ>_<id>.json.gz`. The S3 source lists account
//! and region prefixes, then only the day prefixes of the window; both sources skip files whose
//! name stamps them outside it. CloudTrail delivers a file within about 15 minutes of its
//! events, so files up to an hour after the window are read and their late events counted as
//! outside it.

use super::analysis::{Activity, Rules};
use super::parse::{FileIssue, LogParser};
use crate::collect::{ApiFailure, Guard, Ledger};
use crate::snapshot::KmsEventSummary;
use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One log file of a source.
#[derive(Debug, Clone)]
pub struct LogObject {
    /// Path (local) or key (S3), for messages and issues.
    pub name: String,
    pub size: u64,
}

/// Why a source could not be listed or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{operation} on {target} failed: {failure}")]
    Api {
        operation: &'static str,
        target: String,
        failure: ApiFailure,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// A CloudTrail Lake query that did not finish, or whose results could not be read.
    #[error("CloudTrail Lake{}: {reason}", query_id.as_ref().map(|q| format!(" query {q}")).unwrap_or_default())]
    Lake {
        query_id: Option<String>,
        reason: String,
    },
}

/// A place log files are listed and read from.
pub trait LogStore: Sync {
    /// What the source is, for the report.
    fn describe(&self) -> String;
    /// The log files (not digests) that can hold events of the window.
    fn list(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<LogObject>, SourceError>;
    /// The bytes of one file (shared, so that a store holding them already, or an S3 body
    /// received in one piece, hands them over without a copy).
    fn fetch(&self, object: &LogObject) -> Result<Bytes, SourceError>;
    /// Files fetched at once (I/O-bound stores want more than the cores).
    fn parallelism(&self) -> usize {
        rayon::current_num_threads()
    }
    /// The digest files (CloudTrail-Digest) stamped within the window.
    fn list_digests(
        &self,
        _since: DateTime<Utc>,
        _until: DateTime<Utc>,
    ) -> Result<Vec<LogObject>, SourceError> {
        Ok(Vec::new())
    }
    /// A digest file's bytes and its signature (hex), when the store keeps it.
    fn fetch_digest(&self, object: &LogObject) -> Result<(Vec<u8>, Option<String>), SourceError> {
        Ok((self.fetch(object)?.into(), None))
    }
    /// The bucket, for a store that is one (digests name the bucket they were delivered to).
    fn bucket(&self) -> Option<&str> {
        None
    }
    /// Whether the object a digest names (its S3 key) is in the store.
    fn exists(&self, _s3_key: &str) -> Result<bool, SourceError> {
        Ok(false)
    }
}

/// The part of a path or key from `AWSLogs/` on, which names a file the same way in the bucket
/// and in a local copy.
pub fn logical_key(name: &str) -> &str {
    match name.find("AWSLogs/") {
        Some(at) => &name[at..],
        None => name,
    }
}

fn is_digest_name(name: &str) -> bool {
    name.contains("CloudTrail-Digest") && name.ends_with(".json.gz")
}

/// The stamp in a CloudTrail log file name (`..._20261128T1005Z_...`) or digest file name
/// (`..._20261128T100531Z.json.gz`).
pub fn name_stamp(name: &str) -> Option<DateTime<Utc>> {
    let file = name.rsplit('/').next()?;
    file.split(['_', '.']).find_map(|part| {
        let format = match part.len() {
            14 => "%Y%m%dT%H%MZ",
            16 => "%Y%m%dT%H%M%SZ",
            _ => return None,
        };
        (part.as_bytes()[8] == b'T' && part.ends_with('Z'))
            .then(|| NaiveDateTime::parse_from_str(part, format).ok())
            .flatten()
            .map(|t| t.and_utc())
    })
}

/// Whether a file stamped `stamp` can hold events of the window.
fn stamp_in_window(
    stamp: Option<DateTime<Utc>>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> bool {
    stamp.is_none_or(|s| s >= since && s <= until + Duration::hours(1))
}

/// The days whose folders can hold files of the window.
pub fn window_days(since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<NaiveDate> {
    let last = (until + Duration::hours(1)).date_naive();
    since
        .date_naive()
        .iter_days()
        .take_while(|d| *d <= last)
        .collect()
}

fn is_log_name(name: &str) -> bool {
    (name.ends_with(".json.gz") || name.ends_with(".json"))
        && !name.contains("CloudTrail-Digest")
        && !name.contains("-Digest_")
}

/// A directory tree of log files.
pub struct LocalStore {
    root: PathBuf,
    keys: std::sync::OnceLock<std::collections::HashSet<String>>,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> LocalStore {
        LocalStore {
            root,
            keys: std::sync::OnceLock::new(),
        }
    }
}

impl LogStore for LocalStore {
    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    fn list(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<LogObject>, SourceError> {
        let mut out = Vec::new();
        walk(&self.root, &mut out)?;
        out.retain(|o| is_log_name(&o.name) && stamp_in_window(name_stamp(&o.name), since, until));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn fetch(&self, object: &LogObject) -> Result<Bytes, SourceError> {
        std::fs::read(&object.name)
            .map(Bytes::from)
            .map_err(|source| SourceError::Io {
                path: object.name.clone(),
                source,
            })
    }

    fn list_digests(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<LogObject>, SourceError> {
        let mut out = Vec::new();
        walk(&self.root, &mut out)?;
        out.retain(|o| {
            is_digest_name(&o.name) && stamp_in_window(name_stamp(&o.name), since, until)
        });
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// A local copy keeps no S3 metadata; a signature saved beside the digest as
    /// `<name>.sig` (hex) is used when present.
    fn fetch_digest(&self, object: &LogObject) -> Result<(Vec<u8>, Option<String>), SourceError> {
        let bytes = self.fetch(object)?.into();
        let signature = std::fs::read_to_string(format!("{}.sig", object.name))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        Ok((bytes, signature))
    }

    fn exists(&self, s3_key: &str) -> Result<bool, SourceError> {
        let keys = self.keys.get_or_init(|| {
            let mut all = Vec::new();
            // An unreadable tree has no files to offer; the scan already reported it.
            let _ = walk(&self.root, &mut all);
            all.iter()
                .map(|o| logical_key(&o.name).to_string())
                .collect()
        });
        Ok(keys.contains(logical_key(s3_key)))
    }
}

fn walk(dir: &Path, out: &mut Vec<LogObject>) -> Result<(), SourceError> {
    let err = |source| SourceError::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let kind = entry.file_type().map_err(err)?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() {
            out.push(LogObject {
                name: path.display().to_string(),
                size: entry.metadata().map(|m| m.len()).unwrap_or(0),
            });
        }
    }
    Ok(())
}

/// A trail's S3 bucket (`s3://bucket/prefix`, the prefix the trail was given).
pub struct S3Store {
    bucket: String,
    /// The `AWSLogs/` prefix.
    base: String,
    client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Runtime,
}

impl S3Store {
    /// Connects with the default AWS configuration (or the named `profile`); the client is held
    /// to listing and reading.
    pub fn connect(
        url: &crate::bundle::S3Url,
        profile: Option<&str>,
    ) -> Result<S3Store, SourceError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(SourceError::Runtime)?;
        let client = runtime.block_on(crate::bundle::s3_client(
            Guard::log_reading("s3", Arc::new(Ledger::default())),
            profile,
        ));
        let base = if url.prefix.is_empty() {
            "AWSLogs/".to_string()
        } else if url.prefix == "AWSLogs" || url.prefix.ends_with("/AWSLogs") {
            format!("{}/", url.prefix)
        } else {
            format!("{}/AWSLogs/", url.prefix)
        };
        Ok(S3Store {
            bucket: url.bucket.clone(),
            base,
            client,
            runtime,
        })
    }

    /// GetObject: the body and the `signature` metadata (a digest's; `None` for log files).
    fn get(&self, key: &str) -> Result<(Bytes, Option<String>), SourceError> {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| self.failure("GetObject", key, ApiFailure::from_sdk(&e)))?;
            let signature = out.metadata().and_then(|m| m.get("signature")).cloned();
            let body = out.body.collect().await.map_err(|e| {
                self.failure(
                    "GetObject",
                    key,
                    ApiFailure::new("ReadBodyFailed", e.to_string()),
                )
            })?;
            Ok((body.into_bytes(), signature))
        })
    }

    fn failure(&self, operation: &'static str, target: &str, failure: ApiFailure) -> SourceError {
        SourceError::Api {
            operation,
            target: format!("s3://{}/{target}", self.bucket),
            failure,
        }
    }

    /// The common prefixes one level below `prefix`.
    async fn prefixes(&self, prefix: &str) -> Result<Vec<String>, SourceError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.failure("ListObjectsV2", prefix, ApiFailure::from_sdk(&e)))?;
            out.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
        }
        Ok(out)
    }

    async fn objects(&self, prefix: &str) -> Result<Vec<LogObject>, SourceError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.failure("ListObjectsV2", prefix, ApiFailure::from_sdk(&e)))?;
            out.extend(page.contents().iter().filter_map(|o| {
                Some(LogObject {
                    name: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                })
            }));
        }
        Ok(out)
    }

    async fn list_async(
        &self,
        folder: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<LogObject>, SourceError> {
        // AWSLogs/<account>/ or, for an organisation trail, AWSLogs/<org-id>/<account>/.
        let mut accounts = Vec::new();
        for p in self.prefixes(&self.base).await? {
            let name = p
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            if name.starts_with("o-") {
                accounts.extend(self.prefixes(&p).await?);
            } else {
                accounts.push(p);
            }
        }
        let days = window_days(since, until);
        let mut out = Vec::new();
        for account in accounts {
            for region in self.prefixes(&format!("{account}{folder}/")).await? {
                for day in &days {
                    let prefix = format!("{region}{}/", day.format("%Y/%m/%d"));
                    out.extend(self.objects(&prefix).await?);
                }
            }
        }
        let wanted = if folder == "CloudTrail" {
            is_log_name
        } else {
            is_digest_name
        };
        out.retain(|o| wanted(&o.name) && stamp_in_window(name_stamp(&o.name), since, until));
        Ok(out)
    }
}

impl LogStore for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.base)
    }

    fn list(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<LogObject>, SourceError> {
        self.runtime
            .block_on(self.list_async("CloudTrail", since, until))
    }

    fn list_digests(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<LogObject>, SourceError> {
        self.runtime
            .block_on(self.list_async("CloudTrail-Digest", since, until))
    }

    fn fetch_digest(&self, object: &LogObject) -> Result<(Vec<u8>, Option<String>), SourceError> {
        self.get(&object.name)
            .map(|(bytes, signature)| (bytes.into(), signature))
    }

    fn bucket(&self) -> Option<&str> {
        Some(&self.bucket)
    }

    fn exists(&self, s3_key: &str) -> Result<bool, SourceError> {
        self.runtime.block_on(async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(s3_key)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) => {
                    let failure = ApiFailure::from_sdk(&e);
                    if matches!(failure.code.as_str(), "NotFound" | "NoSuchKey" | "404") {
                        Ok(false)
                    } else {
                        Err(self.failure("HeadObject", s3_key, failure))
                    }
                }
            }
        })
    }

    fn fetch(&self, object: &LogObject) -> Result<Bytes, SourceError> {
        self.get(&object.name).map(|(bytes, _)| bytes)
    }

    fn parallelism(&self) -> usize {
        16
    }
}

/// What reading the files gave: the merged activity and an account of every file.
#[derive(Debug)]
pub struct Scan {
    pub activity: Activity,
    pub stats: ScanStats,
    /// With hashing: each file's key from `AWSLogs/` and the SHA-256 of its uncompressed
    /// content (`None` when it did not decompress).
    pub log_hashes: HashMap<String, Option<String>>,
    /// LookupEvents only: the collector's summary of each (account, region) history read, built
    /// from the same pages, so that a run does not read the history a second time.
    pub event_summaries: BTreeMap<(String, String), KmsEventSummary>,
}

/// An account of the files read, so nothing vanishes from the counts unnoticed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ScanStats {
    pub source: String,
    /// Files listed for the window.
    pub files: u64,
    /// Files read and analysed.
    pub files_read: u64,
    pub stored_bytes: u64,
    pub json_bytes: u64,
    /// Records of every service in the files read.
    pub records: u64,
    /// KMS records in the files read (inside and outside the window).
    pub kms_records: u64,
    /// Files that could not be read or parsed, with where and why; their records are not
    /// counted.
    pub issues: Vec<FileIssue>,
    /// Files read per `account/region` (from the CloudTrail layout of their path).
    #[serde(default)]
    pub files_by_region: BTreeMap<String, u64>,
    /// With CloudTrail Lake as the source: the query run and what it covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lake: Option<super::lake::LakeStats>,
    /// With LookupEvents as the source: the regions read and their events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<super::lookup::LookupStats>,
}

/// `account/region` of a file in the CloudTrail layout
/// (`.../AWSLogs/[o-id/]<account>/CloudTrail[-Digest]/<region>/...`).
pub fn account_region(name: &str) -> Option<String> {
    let parts: Vec<&str> = logical_key(name).split('/').collect();
    let at = parts
        .iter()
        .position(|p| *p == "CloudTrail" || *p == "CloudTrail-Digest")?;
    let account = parts.get(at.checked_sub(1)?)?;
    let region = parts.get(at + 1)?;
    Some(format!("{account}/{region}"))
}

#[derive(Default)]
struct Partial {
    activity: Activity,
    stats: ScanStats,
    hashes: HashMap<String, Option<String>>,
}

/// Reads every file of the window from `store` in parallel and analyses its KMS events; with
/// `hash`, also records each file's content hash for [`super::digest::verify`].
pub fn scan(store: &dyn LogStore, rules: &Rules, hash: bool) -> Result<Scan, SourceError> {
    let objects = store.list(rules.since, rules.until)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(store.parallelism().max(1))
        .build()
        .map_err(|e| SourceError::Runtime(std::io::Error::other(e)))?;
    let merged = pool.install(|| {
        objects
            .par_iter()
            .fold(
                || {
                    let mut parser = LogParser::new();
                    parser.hash = hash;
                    (parser, Partial::default())
                },
                |(mut parser, mut part), object| {
                    let outcome = store
                        .fetch(object)
                        .map_err(|e| FileIssue {
                            file: object.name.clone(),
                            offset: None,
                            reason: e.to_string(),
                        })
                        .and_then(|data| {
                            parser.scan(&object.name, &data, |r| part.activity.add(r, rules))
                        });
                    match outcome {
                        Ok(file) => {
                            part.stats.files_read += 1;
                            if let Some(region) = account_region(&object.name) {
                                *part.stats.files_by_region.entry(region).or_default() += 1;
                            }
                            part.stats.stored_bytes += file.stored_bytes;
                            part.stats.json_bytes += file.json_bytes;
                            part.stats.records += file.records;
                            part.stats.kms_records += file.kms;
                        }
                        Err(issue) => part.stats.issues.push(issue),
                    }
                    if hash {
                        part.hashes.insert(
                            logical_key(&object.name).to_string(),
                            parser.last_sha256.take(),
                        );
                    }
                    (parser, part)
                },
            )
            .map(|(_, part)| part)
            .reduce(Partial::default, |mut a, b| Partial {
                activity: a.activity.merge(b.activity, rules),
                hashes: {
                    a.hashes.extend(b.hashes);
                    a.hashes
                },
                stats: ScanStats {
                    source: String::new(),
                    files: 0,
                    files_read: a.stats.files_read + b.stats.files_read,
                    stored_bytes: a.stats.stored_bytes + b.stats.stored_bytes,
                    json_bytes: a.stats.json_bytes + b.stats.json_bytes,
                    records: a.stats.records + b.stats.records,
                    kms_records: a.stats.kms_records + b.stats.kms_records,
                    issues: [a.stats.issues, b.stats.issues].concat(),
                    lake: None,
                    lookup: None,
                    files_by_region: {
                        let mut m = a.stats.files_by_region;
                        for (k, v) in b.stats.files_by_region {
                            *m.entry(k).or_default() += v;
                        }
                        m
                    },
                },
            })
    });
    let mut stats = merged.stats;
    stats.source = store.describe();
    stats.files = objects.len() as u64;
    stats.issues.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Scan {
        activity: merged.activity,
        stats,
        log_hashes: merged.hashes,
        event_summaries: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_stamps_and_window_days() {
        let stamp = name_stamp(
            "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/28/111122223333_CloudTrail_eu-west-1_20261128T1005Z_abcDEF123.json.gz",
        );
        assert_eq!(stamp, "2026-11-28T10:05:00Z".parse().ok());
        assert_eq!(name_stamp("x/other.json.gz"), None);
        let since = "2026-11-27T23:00:00Z".parse().expect("t");
        let until = "2026-11-28T23:30:00Z".parse().expect("t");
        let days: Vec<String> = window_days(since, until)
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(days, ["2026-11-27", "2026-11-28", "2026-11-29"]);
        assert!(!is_log_name(
            "AWSLogs/1/CloudTrail-Digest/eu-west-1/2026/11/28/1_CloudTrail-Digest_eu-west-1_x_20261128T1005Z.json.gz"
        ));
    }
}
