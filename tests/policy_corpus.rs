//! The key-policy analyzer against a corpus of real-world policy shapes (`tests/policy-corpus/`):
//! each file holds a policy, the key it belongs to, and the expected answer for the fields it
//! names. Every file must name at least one field, and every field named must be one the
//! analyzer produces, so a typo in the corpus cannot turn a case into a test that cannot fail.

use keyproof::analyze::policy::analyze_policy;
use serde_json::Value;
use std::path::Path;

#[test]
fn corpus_answers_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy-corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/policy-corpus exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("readable"))
            .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let account = case["key_account"].as_str().expect("key_account");
        let arn = case["key_arn"].as_str().unwrap_or_default();
        let policy = match &case["policy"] {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        let got = serde_json::to_value(analyze_policy(Some(&policy), account, arn))
            .expect("analysis serialises");
        let expect = case["expect"].as_object().expect("expect is an object");
        assert!(!expect.is_empty(), "{name}: expects nothing");
        for (field, want) in expect {
            let have = got
                .get(field)
                .unwrap_or_else(|| panic!("{name}: the analyzer has no field `{field}`"));
            if have != want {
                failures.push(format!("{name}: {field}: expected {want}, got {have}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
