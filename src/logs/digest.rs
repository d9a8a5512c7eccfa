//! CloudTrail log file integrity (PCI DSS 10.3.2, 10.3.4; v3.2.1 10.5.2, 10.5.5): the digest
//! files verified, not just the "validation enabled" flag.
//!
//! CloudTrail delivers an hourly digest per trail and region listing every log file it
//! delivered with the SHA-256 of its uncompressed content, the SHA-256 and RSA signature of the
//! previous digest, and is itself signed (SHA256withRSA; the hex signature is kept in the digest
//! object's S3 metadata, `x-amz-meta-signature`). The signature covers
//! `digestEndTime \n digestS3Bucket/digestS3Object \n sha256hex(uncompressed digest) \n
//! previousDigestSignature` (the text `null` for a chain's first digest), as the AWS CLI's
//! `validate-logs` builds it. The key is chosen by `digestPublicKeyFingerprint` among the
//! region's keys from CloudTrail ListPublicKeys (or the JSON `aws cloudtrail list-public-keys`
//! prints, for offline work); the fingerprint is the MD5 of the key's DER bytes.
//!
//! Checked here, per chain (account, region, trail):
//! - each digest's signature; a digest whose signature is not available (a local copy keeps no
//!   S3 metadata) is authenticated through its successor, which carries its signature, and only
//!   the newest one of a local copy stays unverifiable unless its signature is saved beside it as
//!   `<digest>.sig` (hex);
//! - that a digest lies where it says it was delivered;
//! - each link: the previous digest named by a digest exists, and its SHA-256 and signature are
//!   the ones recorded (a deleted or altered digest breaks the chain);
//! - each log file a valid digest lists: present, and its content's SHA-256 as recorded;
//! - log files in the window that no digest lists (added, or delivered while validation was
//!   off), except those too recent to be in a digest yet.

use super::source::{LogObject, LogStore, SourceError, logical_key};
use chrono::{DateTime, Duration, Utc};
use flate2::read::GzDecoder;
use md5::Digest as _;
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;

/// A digest file's content (the fields integrity checking uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DigestJson {
    digest_end_time: String,
    digest_s3_bucket: String,
    digest_s3_object: String,
    digest_public_key_fingerprint: String,
    previous_digest_s3_object: Option<String>,
    previous_digest_hash_value: Option<String>,
    previous_digest_signature: Option<String>,
    #[serde(default)]
    log_files: Vec<DigestLogFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DigestLogFile {
    s3_object: String,
    hash_value: String,
}

/// CloudTrail's public keys, by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    keys: HashMap<String, RsaPublicKey>,
}

/// Why public keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("public key list: {0}")]
    Json(#[from] serde_json::Error),
    #[error("public key {fingerprint}: not an RSA public key (PKCS#1 or SubjectPublicKeyInfo DER)")]
    NotRsa { fingerprint: String },
    #[error("public key {fingerprint}: its value is not base64")]
    Base64 { fingerprint: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CliKeyList {
    public_key_list: Vec<CliKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CliKey {
    value: String,
    fingerprint: Option<String>,
}

/// The fingerprint CloudTrail gives a key: MD5 of its DER bytes, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(md5::Md5::digest(der))
}

impl PublicKeys {
    /// Adds a key from its DER bytes (PKCS#1 RSAPublicKey, or SubjectPublicKeyInfo).
    pub fn add_der(&mut self, der: &[u8], fingerprint_hint: Option<&str>) -> Result<(), KeyError> {
        let fp = fingerprint_hint
            .map(str::to_ascii_lowercase)
            .unwrap_or_else(|| fingerprint(der));
        let key = RsaPublicKey::from_pkcs1_der(der)
            .or_else(|_| RsaPublicKey::from_public_key_der(der))
            .map_err(|_| KeyError::NotRsa {
                fingerprint: fp.clone(),
            })?;
        self.keys.insert(fp, key);
        Ok(())
    }

    /// Reads what `aws cloudtrail list-public-keys` prints (`{"PublicKeyList": [...]}`, values
    /// in base64); several such files' keys can be added to one set.
    pub fn add_cli_json(&mut self, json: &[u8]) -> Result<(), KeyError> {
        use base64::Engine as _;
        let list: CliKeyList = serde_json::from_slice(json)?;
        for k in list.public_key_list {
            let fp = k.fingerprint.clone().unwrap_or_default();
            let der = base64::engine::general_purpose::STANDARD
                .decode(k.value.trim())
                .map_err(|_| KeyError::Base64 {
                    fingerprint: fp.clone(),
                })?;
            self.add_der(&der, k.fingerprint.as_deref())?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn verify(&self, fingerprint: &str, message: &[u8], signature_hex: &str) -> Verdict {
        let Some(key) = self.keys.get(&fingerprint.to_ascii_lowercase()) else {
            return Verdict::NoKey;
        };
        let Ok(bytes) = hex::decode(signature_hex.trim()) else {
            return Verdict::Invalid;
        };
        let Ok(signature) = rsa::pkcs1v15::Signature::try_from(bytes.as_slice()) else {
            return Verdict::Invalid;
        };
        let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone());
        if verifier.verify(message, &signature).is_ok() {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }
}

/// Adds CloudTrail's public keys of `region` valid between `start` and `end`
/// (ListPublicKeys, with the default AWS configuration).
pub fn fetch_public_keys(
    keys: &mut PublicKeys,
    region: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    profile: Option<&str>,
) -> Result<(), SourceError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SourceError::Runtime)?;
    runtime.block_on(async {
        let client = crate::collect::log_reading_cloudtrail(Some(region), profile).await;
        let mut token: Option<String> = None;
        loop {
            let out = client
                .list_public_keys()
                .start_time(crate::collect::to_sdk_time(start))
                .end_time(crate::collect::to_sdk_time(end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| SourceError::Api {
                    operation: "ListPublicKeys",
                    target: format!("CloudTrail in {region}"),
                    failure: crate::collect::ApiFailure::from_sdk(&e),
                })?;
            for k in out.public_key_list() {
                let Some(der) = k.value() else { continue };
                // A key that does not parse verifies nothing; the digests it signed are then
                // reported as unverifiable.
                let _ = keys.add_der(der.as_ref(), k.fingerprint());
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(());
            }
        }
    })
}

enum Verdict {
    Valid,
    Invalid,
    NoKey,
}

/// What is wrong with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProblemKind {
    /// The digest's signature does not verify: the digest was altered or forged.
    DigestSignatureInvalid,
    /// The digest cannot be authenticated (no signature available, or no key for it).
    DigestUnverifiable,
    /// The digest is not where it says it was delivered.
    DigestMoved,
    /// The digest could not be read (not gzip, not a digest).
    DigestUnreadable,
    /// A digest names a previous digest that is not there (deleted).
    DigestMissing,
    /// A digest's record of its predecessor (hash or signature) does not match it.
    ChainBroken,
    /// A log file's content does not match the digest's hash.
    LogAltered,
    /// A log file a digest lists is not there (deleted).
    LogMissing,
    /// A log file in the window that no digest lists.
    LogUnreferenced,
}

/// One integrity problem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The file (its key from `AWSLogs/`).
    pub file: String,
    pub detail: String,
}

/// The result of checking the window's digests and log files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Integrity {
    /// Digest files read.
    pub digests: u64,
    /// Digests whose signature verified (directly or through the successor's record).
    pub digests_valid: u64,
    /// Log files listed by valid digests and checked.
    pub log_files_checked: u64,
    /// Of those, present with the recorded hash.
    pub log_files_valid: u64,
    /// Chains (account/region/trail) and the digests seen in each.
    pub chains: BTreeMap<String, u64>,
    /// Digest files read per `account/region`.
    #[serde(default)]
    pub digests_by_region: BTreeMap<String, u64>,
    pub problems: Vec<Problem>,
}

impl Integrity {
    /// Whether everything checked out.
    pub fn intact(&self) -> bool {
        self.problems.is_empty() && self.digests > 0
    }
}

struct ReadDigest {
    key: String,
    json: DigestJson,
    sha256: String,
    /// From S3 metadata or a `.sig` file beside a local copy.
    signature: Option<String>,
    end: DateTime<Utc>,
}

/// The chain a digest belongs to, from its key: `<account>/<region>/<trail>`.
fn chain_of(key: &str) -> String {
    let file = key.rsplit('/').next().unwrap_or(key);
    // <acct>_CloudTrail-Digest_<region>_<trail-name>_<home-region>_<stamp>.json.gz
    let parts: Vec<&str> = file.splitn(3, '_').collect();
    let account = parts.first().copied().unwrap_or_default();
    let rest = parts.get(2).copied().unwrap_or_default();
    // Drop the trailing _<stamp>.json.gz (and a _backfill suffix).
    let rest = rest
        .trim_end_matches(".json.gz")
        .trim_end_matches("_backfill");
    let rest = rest.rsplit_once('_').map(|(r, _)| r).unwrap_or(rest);
    format!("{account}/{rest}")
}

/// Checks the digests of the window and the log files they list. `log_hashes` maps each log
/// file read by the scan (its key from `AWSLogs/`) to the SHA-256 of its uncompressed content
/// (`None` when it could not be decompressed). `now` decides which unlisted log files are too
/// recent to be in a digest yet.
pub fn verify(
    store: &dyn LogStore,
    keys: &PublicKeys,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    log_hashes: &HashMap<String, Option<String>>,
    now: DateTime<Utc>,
) -> Result<Integrity, SourceError> {
    let mut out = Integrity::default();
    let problem = |kind, file: &str, detail: String| Problem {
        kind,
        file: file.to_string(),
        detail,
    };
    let mut problems = Vec::new();
    // Digests are delivered about an hour after the logs they cover.
    let objects = store.list_digests(since, until + Duration::hours(2))?;
    let mut digests: Vec<ReadDigest> = Vec::new();
    for object in &objects {
        let key = logical_key(&object.name).to_string();
        out.digests += 1;
        if let Some(region) = super::source::account_region(&key) {
            *out.digests_by_region.entry(region).or_default() += 1;
        }
        match read_digest(store, object) {
            Ok((json, sha256, signature)) => {
                let end = DateTime::parse_from_rfc3339(&json.digest_end_time)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                if let Some(bucket) = store.bucket()
                    && (json.digest_s3_bucket != bucket || json.digest_s3_object != object.name)
                {
                    problems.push(problem(
                        ProblemKind::DigestMoved,
                        &key,
                        format!(
                            "says it was delivered to {}/{}",
                            json.digest_s3_bucket, json.digest_s3_object
                        ),
                    ));
                } else if logical_key(&json.digest_s3_object) != key {
                    problems.push(problem(
                        ProblemKind::DigestMoved,
                        &key,
                        format!("says it was delivered as {}", json.digest_s3_object),
                    ));
                }
                digests.push(ReadDigest {
                    key,
                    json,
                    sha256,
                    signature,
                    end,
                });
            }
            Err(reason) => problems.push(problem(ProblemKind::DigestUnreadable, &key, reason)),
        }
    }

    // Per chain, oldest first.
    let mut chains: BTreeMap<String, Vec<ReadDigest>> = BTreeMap::new();
    for d in digests {
        chains.entry(chain_of(&d.key)).or_default().push(d);
    }
    let mut listed: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (chain, mut ds) in chains {
        ds.sort_by(|a, b| a.end.cmp(&b.end).then(a.key.cmp(&b.key)));
        out.chains.insert(chain, ds.len() as u64);
        let by_key: HashMap<&str, usize> = ds
            .iter()
            .enumerate()
            .map(|(i, d)| (d.key.as_str(), i))
            .collect();
        // A digest's signature: its own (metadata), else the one its successor records.
        let mut recorded: HashMap<usize, String> = HashMap::new();
        for d in &ds {
            if let (Some(prev), Some(sig)) = (
                d.json.previous_digest_s3_object.as_deref(),
                d.json.previous_digest_signature.as_deref(),
            ) && let Some(&i) = by_key.get(logical_key(prev))
            {
                recorded.insert(i, sig.to_string());
            }
        }
        let mut valid = vec![false; ds.len()];
        for (i, d) in ds.iter().enumerate() {
            let message = format!(
                "{}\n{}/{}\n{}\n{}",
                d.json.digest_end_time,
                d.json.digest_s3_bucket,
                d.json.digest_s3_object,
                d.sha256,
                d.json
                    .previous_digest_signature
                    .as_deref()
                    .unwrap_or("null")
            );
            let signature = d.signature.clone().or_else(|| recorded.get(&i).cloned());
            match signature {
                None => problems.push(problem(
                    ProblemKind::DigestUnverifiable,
                    &d.key,
                    "no signature: a local copy keeps no S3 metadata, and no later digest records this one's; save it beside the file as <name>.sig (aws s3api head-object --query Metadata.signature)".into(),
                )),
                Some(sig) => match keys.verify(&d.json.digest_public_key_fingerprint, message.as_bytes(), &sig) {
                    Verdict::Valid => valid[i] = true,
                    Verdict::Invalid => problems.push(problem(
                        ProblemKind::DigestSignatureInvalid,
                        &d.key,
                        "the signature does not verify: the digest was altered or not made by CloudTrail".into(),
                    )),
                    Verdict::NoKey => problems.push(problem(
                        ProblemKind::DigestUnverifiable,
                        &d.key,
                        format!(
                            "no CloudTrail public key with fingerprint {} (ListPublicKeys of the digest's region and period)",
                            d.json.digest_public_key_fingerprint
                        ),
                    )),
                },
            }
            // Its own signature and the successor's record of it must agree.
            if let (Some(own), Some(rec)) = (&d.signature, recorded.get(&i))
                && !own.eq_ignore_ascii_case(rec)
            {
                problems.push(problem(
                    ProblemKind::ChainBroken,
                    &d.key,
                    "the next digest records a different signature for this one".into(),
                ));
            }
            // The link to the predecessor.
            if let Some(prev) = d.json.previous_digest_s3_object.as_deref() {
                match by_key.get(logical_key(prev)) {
                    Some(&p) => {
                        let want = d.json.previous_digest_hash_value.as_deref().unwrap_or("");
                        if !ds[p].sha256.eq_ignore_ascii_case(want) {
                            problems.push(problem(
                                ProblemKind::ChainBroken,
                                &d.key,
                                format!(
                                    "records sha256 {want} for the previous digest {}, which now hashes to {}",
                                    ds[p].key, ds[p].sha256
                                ),
                            ));
                        }
                    }
                    None if i > 0 => problems.push(problem(
                        ProblemKind::DigestMissing,
                        logical_key(prev),
                        format!("named as the previous digest by {}, but not there", d.key),
                    )),
                    // The first digest of the window links to one before it: not checked.
                    None => {}
                }
            }
        }
        for (i, d) in ds.iter().enumerate() {
            for log in &d.json.log_files {
                let log_key = logical_key(&log.s3_object).to_string();
                listed.insert(log_key.clone());
                if !valid[i] {
                    continue;
                }
                let hash = log_hashes.get(&log_key);
                // A listed file the scan did not read: outside the window's files, or deleted.
                if hash.is_none() && store.exists(&log.s3_object)? {
                    continue;
                }
                out.log_files_checked += 1;
                match hash {
                    None => problems.push(problem(
                        ProblemKind::LogMissing,
                        &log_key,
                        format!("listed by digest {} but not there", d.key),
                    )),
                    Some(None) => problems.push(problem(
                        ProblemKind::LogAltered,
                        &log_key,
                        format!("cannot be decompressed; digest {} lists it", d.key),
                    )),
                    Some(Some(actual)) if actual.eq_ignore_ascii_case(&log.hash_value) => {
                        out.log_files_valid += 1;
                    }
                    Some(Some(actual)) => problems.push(problem(
                        ProblemKind::LogAltered,
                        &log_key,
                        format!(
                            "sha256 {actual}, digest {} records {}",
                            d.key, log.hash_value
                        ),
                    )),
                }
            }
        }
        out.digests_valid += valid.iter().filter(|v| **v).count() as u64;
    }
    for key in log_hashes.keys() {
        if listed.contains(key) {
            continue;
        }
        let recent = super::source::name_stamp(key).is_some_and(|s| s > now - Duration::hours(2));
        if !recent {
            problems.push(problem(
                ProblemKind::LogUnreferenced,
                key,
                "no digest lists this log file (added later, or delivered while validation was off)".into(),
            ));
        }
    }
    problems.sort();
    out.problems = problems;
    Ok(out)
}

fn read_digest(
    store: &dyn LogStore,
    object: &LogObject,
) -> Result<(DigestJson, String, Option<String>), String> {
    let (bytes, signature) = store.fetch_digest(object).map_err(|e| e.to_string())?;
    // One gzip member only: data appended after it is not part of the digest.
    let mut content = Vec::new();
    GzDecoder::new(bytes.as_slice())
        .take(64 << 20)
        .read_to_end(&mut content)
        .map_err(|e| format!("not a gzip digest file: {e}"))?;
    let sha256 = hex::encode(<Sha256 as sha2::Digest>::digest(&content));
    let json: DigestJson =
        serde_json::from_slice(&content).map_err(|e| format!("not a CloudTrail digest: {e}"))?;
    Ok((json, sha256, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_come_from_digest_names() {
        assert_eq!(
            chain_of(
                "AWSLogs/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/111122223333_CloudTrail-Digest_us-east-2_my-trail_us-east-2_20150817T150131Z.json.gz"
            ),
            "111122223333/us-east-2_my-trail_us-east-2"
        );
        assert_eq!(
            chain_of(
                "x/111122223333_CloudTrail-Digest_us-east-2_my-trail_us-east-2_20150817T150131Z_backfill.json.gz"
            ),
            "111122223333/us-east-2_my-trail_us-east-2"
        );
    }
}
