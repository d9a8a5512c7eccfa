//! The envelope-encryption self-test through the in-process simulated provider: verdicts, the
//! negative checks, known-answer failures, and that no data key reaches any output.

mod util;

use keyproof::collect::ApiFailure;
use keyproof::report::{Format, Templates, build_report, write_reports};
use keyproof::rules::{ControlSet, Status, evaluate};
use keyproof::selftest::provider::{Context, DataKey, KeyProvider, ProviderFactory};
use keyproof::selftest::simulated::{Simulated, SimulatedFactory};
use keyproof::selftest::{self, SelfTestOptions, kat};
use keyproof::snapshot::sample::sample_estate;
use keyproof::snapshot::{EvidenceKind, LoadedSnapshot, Snapshot, sha256_hex, snapshot_bytes};
use std::sync::Arc;

const DISABLED_KEY_STATE: &str = "Disabled";

async fn run_with(
    snapshot: &Snapshot,
    factory: &dyn ProviderFactory,
    options: &SelfTestOptions,
) -> Snapshot {
    let (result, gaps) = selftest::run(snapshot, factory, options).await;
    let mut out = snapshot.clone();
    selftest::attach(&mut out, result, gaps);
    out
}

fn result_of<'a>(s: &'a Snapshot, arn: &str) -> &'a keyproof::snapshot::KeySelfTest {
    s.selftest
        .as_ref()
        .and_then(|st| st.keys.iter().find(|k| k.key_arn == arn))
        .unwrap_or_else(|| panic!("no self-test result for {arn}"))
}

/// The ARN of the sample's production EBS key.
fn ebs_key(s: &Snapshot) -> String {
    s.accounts
        .iter()
        .flat_map(|a| a.regions.iter())
        .flat_map(|r| r.kms_keys.iter())
        .find(|k| k.key_id == "d3335f51-e1f8-45b4-b1da-6e4e7ce91dff")
        .map(|k| k.arn.clone())
        .expect("sample EBS key")
}

#[tokio::test]
async fn enabled_keys_pass_and_unusable_keys_fail_with_the_kms_error() {
    let mut sample = sample_estate();
    let ebs = ebs_key(&sample);
    // Disable the EBS key: data under it can no longer be read.
    for k in sample
        .accounts
        .iter_mut()
        .flat_map(|a| a.regions.iter_mut())
        .flat_map(|r| r.kms_keys.iter_mut())
    {
        if k.arn == ebs {
            k.state = DISABLED_KEY_STATE.into();
        }
    }
    let factory = SimulatedFactory(Arc::new(Simulated::for_snapshot(&sample)));
    let tested = run_with(&sample, &factory, &SelfTestOptions::new("t1")).await;
    let st = tested.selftest.as_ref().expect("selftest");
    assert_eq!(st.provider, "simulated");
    assert!(st.kat.passed && st.kat.vectors == 4);

    let ebs_result = result_of(&tested, &ebs);
    assert_eq!(ebs_result.result, "FAIL");
    assert_eq!(ebs_result.failed_step.as_deref(), Some("GenerateDataKey"));
    assert_eq!(ebs_result.error_code.as_deref(), Some("DisabledException"));
    let passed: Vec<_> = st.keys.iter().filter(|k| k.result == "PASS").collect();
    assert!(passed.len() >= 8, "{:#?}", st.keys);
    for k in &passed {
        assert_eq!(k.tampered_tag_rejected, Some(true));
        assert_eq!(k.wrong_context_rejected, Some(true));
        assert_eq!(k.wrong_key_rejected, Some(true));
        assert!(k.generate_ms.is_some() && k.decrypt_ms.is_some());
    }

    // The controls: the disabled key FAILs KP-KEY-SELFTEST and the resources under it FAIL
    // KP-RES-DATA-RECOVERABLE.
    let controls = ControlSet::embedded().expect("controls");
    let findings = evaluate(&tested, &controls, &keyproof::config::Config::default());
    let key_finding = findings
        .iter()
        .find(|f| f.control_id == "KP-KEY-SELFTEST" && f.resource_arn == ebs)
        .expect("finding for the EBS key");
    assert_eq!(key_finding.status, Status::Fail);
    let recoverable: Vec<_> = findings
        .iter()
        .filter(|f| f.control_id == "KP-RES-DATA-RECOVERABLE" && f.status == Status::Fail)
        .collect();
    assert!(
        !recoverable.is_empty(),
        "volumes under the disabled key fail"
    );
}

#[tokio::test]
async fn a_corrupted_known_answer_test_makes_every_key_error_and_encrypts_nothing() {
    let sample = sample_estate();
    let simulated = Arc::new(Simulated::for_snapshot(&sample).recording());
    let factory = SimulatedFactory(simulated.clone());
    let mut options = SelfTestOptions::new("t2");
    options.kat_vectors[0].tag[0] ^= 0x80;
    let tested = run_with(&sample, &factory, &options).await;
    let st = tested.selftest.as_ref().expect("selftest");
    assert!(!st.kat.passed);
    assert_eq!(st.kat.failures.len(), 1, "{:?}", st.kat.failures);
    assert!(st.keys.iter().all(|k| k.result == "ERROR"));
    assert!(simulated.issued().is_empty(), "no data key was generated");

    // Each key is a self-test gap, so KP-KEY-SELFTEST is ERROR (never PASS) and says why.
    let gaps = tested
        .gaps
        .iter()
        .filter(|g| g.evidence == EvidenceKind::SelfTest)
        .count();
    assert_eq!(gaps, st.keys.len());
    let controls = ControlSet::embedded().expect("controls");
    let findings = evaluate(&tested, &controls, &keyproof::config::Config::default());
    let key_findings: Vec<_> = findings
        .iter()
        .filter(|f| f.control_id == "KP-KEY-SELFTEST" && f.status != Status::NotApplicable)
        .collect();
    assert!(!key_findings.is_empty());
    assert!(
        key_findings.iter().all(|f| f.status == Status::Error),
        "{key_findings:#?}"
    );
    assert!(
        key_findings
            .iter()
            .filter(|f| f.resource_id != "*")
            .all(|f| f.detail.contains("known-answer")),
        "{key_findings:#?}"
    );
}

/// A provider that ignores the encryption context: the wrong-context check must catch it.
struct ContextBlind(Simulated);

impl KeyProvider for ContextBlind {
    fn name(&self) -> &'static str {
        "context-blind"
    }
    fn generate_data_key<'a>(
        &'a self,
        key_arn: &'a str,
        _context: &'a Context,
    ) -> futures_util::future::BoxFuture<'a, Result<DataKey, ApiFailure>> {
        Box::pin(async move { self.0.generate_data_key(key_arn, &Context::new()).await })
    }
    fn decrypt<'a>(
        &'a self,
        blob: &'a [u8],
        _context: &'a Context,
        key_arn: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<zeroize::Zeroizing<Vec<u8>>, ApiFailure>> {
        Box::pin(async move { self.0.decrypt(blob, &Context::new(), key_arn).await })
    }
}

struct One(Arc<dyn KeyProvider>);

impl ProviderFactory for One {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn provider(&self, _a: &str, _r: &str) -> Arc<dyn KeyProvider> {
        self.0.clone()
    }
}

#[tokio::test]
async fn a_provider_that_ignores_the_encryption_context_fails_the_self_test() {
    let sample = sample_estate();
    let ebs = ebs_key(&sample);
    let factory = One(Arc::new(ContextBlind(Simulated::for_snapshot(&sample))));
    let mut options = SelfTestOptions::new("t3");
    options.keys = vec![ebs.clone()];
    let tested = run_with(&sample, &factory, &options).await;
    let r = result_of(&tested, &ebs);
    assert_eq!(r.result, "FAIL");
    assert_eq!(r.failed_step.as_deref(), Some("WrongContext"));
    assert_eq!(r.wrong_context_rejected, Some(false));
    assert_eq!(
        tested.selftest.as_ref().map(|s| s.keys.len()),
        Some(1),
        "--key selects one key"
    );
}

#[tokio::test]
async fn keys_over_the_limit_are_not_tested_and_never_pass() {
    let sample = sample_estate();
    let factory = SimulatedFactory(Arc::new(Simulated::for_snapshot(&sample)));
    let mut options = SelfTestOptions::new("t4");
    options.max_keys = 2;
    let tested = run_with(&sample, &factory, &options).await;
    let st = tested.selftest.as_ref().expect("selftest");
    assert_eq!(
        st.keys.iter().filter(|k| k.result != "NOT_TESTED").count(),
        2
    );
    let not_tested = st.keys.iter().filter(|k| k.result == "NOT_TESTED").count();
    assert!(not_tested > 5);
    let gaps = tested
        .gaps
        .iter()
        .filter(|g| g.evidence == EvidenceKind::SelfTest && g.error_code == "NOT_TESTED")
        .count();
    assert_eq!(gaps, not_tested);
}

/// Every encoding a key could leak in: raw bytes, hex either case, base64.
fn leaks(haystack: &[u8], key: &[u8]) -> bool {
    use base64::Engine;
    let text = String::from_utf8_lossy(haystack);
    let hex = hex::encode(key);
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let b64_no_pad = b64.trim_end_matches('=');
    haystack.windows(key.len()).any(|w| w == key)
        || text.contains(&hex)
        || text.contains(&hex.to_uppercase())
        || text.contains(b64_no_pad)
}

#[tokio::test]
async fn no_data_key_reaches_the_snapshot_or_any_report() {
    let sample = sample_estate();
    let simulated = Arc::new(Simulated::for_snapshot(&sample).recording());
    let factory = SimulatedFactory(simulated.clone());
    let tested = run_with(&sample, &factory, &SelfTestOptions::new("leak-check")).await;
    let issued = simulated.issued();
    assert!(
        issued.len() >= 9,
        "data keys were generated: {}",
        issued.len()
    );

    let dir = util::TestDir::new();
    let bytes = snapshot_bytes(&tested, false).expect("bytes");
    std::fs::write(dir.path("snapshot.json"), &bytes).expect("write");
    let loaded = LoadedSnapshot {
        sha256: sha256_hex(&bytes),
        snapshot: tested,
    };
    let controls = ControlSet::embedded().expect("controls");
    let config = keyproof::config::Config::default();
    let findings = evaluate(&loaded.snapshot, &controls, &config);
    let report = build_report(
        &loaded,
        &controls,
        &config,
        &findings,
        keyproof::rules::Framework::PciDss401,
    );
    let written = write_reports(
        &report,
        &[Format::Csv, Format::Json, Format::Html, Format::Pdf],
        &dir.path("out"),
        &Templates { dir: None },
    )
    .expect("reports");
    let mut files = written;
    files.push(dir.path("snapshot.json"));
    // Four reports, the KMS anomalies CSV beside findings.csv, and the snapshot.
    assert_eq!(files.len(), 6);
    for file in &files {
        let content = std::fs::read(file).expect("read output");
        for key in &issued {
            assert!(
                !leaks(&content, key),
                "a data key appears in {}",
                file.display()
            );
        }
    }
    // The check itself can fail: a file holding a key's hex is caught.
    assert!(leaks(hex::encode(&issued[0]).as_bytes(), &issued[0]));
}

#[test]
fn the_full_nist_cavp_gcm_files_pass() {
    // The complete CAVP AES-256 GCM files from the PyPI package cryptography-vectors, which
    // scripts/test installs into .venv beside moto.
    let python = util::moto::python();
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import cryptography_vectors, os; print(os.path.dirname(cryptography_vectors.__file__))",
        ])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "cryptography-vectors is not installed in {}: run scripts/test",
        python.display()
    );
    let root = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        .join("ciphers/AES/GCM");
    let mut checked = 0;
    let mut must_fail = 0;
    let mut skipped = 0;
    for name in ["gcmEncryptExtIV256.rsp", "gcmDecrypt256.rsp"] {
        let text = std::fs::read_to_string(root.join(name)).expect("CAVP file");
        let vectors = kat::parse_rsp(name, &text);
        assert!(vectors.len() > 3000, "{name}: {} vectors", vectors.len());
        for v in &vectors {
            match kat::check_vector(v) {
                Ok(None) => {
                    checked += 1;
                    if v.must_fail {
                        must_fail += 1;
                    }
                }
                Ok(Some(reason)) => panic!("{}: {reason}", v.name),
                // IVs other than 96 bits and tags under 96 bits are parameters keyproof never
                // uses; they are counted, not hidden.
                Err(_) => skipped += 1,
            }
        }
    }
    assert!(checked > 2000, "checked {checked}, skipped {skipped}");
    assert!(must_fail > 100, "FAIL vectors exercised: {must_fail}");
    eprintln!(
        "CAVP: {checked} vectors checked ({must_fail} must-fail), {skipped} with unused parameters skipped"
    );
}
