//! Publishing sealed runs to S3 with Object Lock, against moto's S3 through the real AWS SDK.
//!
//! moto enforces Object Lock retention (deleting a locked version is refused), so the tests
//! check the protection itself, not only the request headers: every published object is read
//! back with boto3 (`tests/moto/s3.py inspect`) and compared with the run's manifest.

mod util;

use serde_json::Value;
use std::path::Path;
use util::moto::Moto;
use util::{TestDir, keyproof_env};

fn env(moto: &Moto) -> Vec<(&'static str, String)> {
    moto.env()
}

fn run(moto: &Moto, args: &[&str]) -> util::Output {
    let env = env(moto);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    keyproof_env(args, &env)
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
        .expect("manifest JSON")
}

#[test]
fn a_sealed_run_is_published_under_compliance_lock_and_cannot_be_deleted() {
    let moto = Moto::start();
    moto.s3(&["buckets"]);
    let tmp = TestDir::new();
    let out = tmp.path("runs/2026-11-01");
    let out_s = out.to_str().expect("utf-8");
    run(
        &moto,
        &[
            "demo",
            "--out",
            out_s,
            "--format",
            "json,csv",
            "--publish",
            "s3://evidence-locked/pci/keyproof",
        ],
    )
    .assert_code(0)
    .assert_stderr_has(
        "to s3://evidence-locked/pci/keyproof/2026-11-01/ under Object Lock COMPLIANCE until",
    );

    let m = manifest(&out);
    let objects = moto.s3(&["inspect", "evidence-locked"]);
    let objects = objects.as_object().expect("object map");
    let mut expected: Vec<String> = m["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            format!(
                "pci/keyproof/2026-11-01/{}",
                f["path"].as_str().expect("path")
            )
        })
        .collect();
    expected.push("pci/keyproof/2026-11-01/manifest.json".into());
    expected.sort();
    let mut keys: Vec<String> = objects.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, expected, "exactly the run's files and its manifest");

    let manifest_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(out.join("manifest.json")).expect("manifest"),
        ))
    };
    let year_ahead = chrono::Utc::now() + chrono::Duration::days(396);
    for (key, obj) in objects {
        let name = key
            .rsplit_once("2026-11-01/")
            .map(|(_, n)| n)
            .unwrap_or_default();
        let want = if name == "manifest.json" {
            manifest_sha.clone()
        } else {
            m["files"]
                .as_array()
                .and_then(|f| f.iter().find(|f| f["path"] == name))
                .and_then(|f| f["sha256"].as_str())
                .expect("in manifest")
                .to_string()
        };
        assert_eq!(obj["sha256"], want.as_str(), "{key} content");
        assert_eq!(obj["mode"], "COMPLIANCE", "{key} lock mode");
        let until: chrono::DateTime<chrono::Utc> = obj["until"]
            .as_str()
            .and_then(|u| u.parse().ok())
            .unwrap_or_else(|| panic!("{key} retain-until date: {obj}"));
        assert!(
            until > year_ahead,
            "{key} locked until {until}: the default is 397 days"
        );
        assert_ne!(
            obj["delete_refused"], false,
            "{key} could be deleted: {obj}"
        );
    }
}

#[test]
fn a_bucket_without_object_lock_is_refused_unless_told() {
    let moto = Moto::start();
    moto.s3(&["buckets"]);
    let tmp = TestDir::new();
    let out = tmp.path("runs/2026-11-01");
    let out_s = out.to_str().expect("utf-8");
    run(
        &moto,
        &[
            "demo",
            "--out",
            out_s,
            "--format",
            "json",
            "--publish",
            "s3://evidence-plain/pci",
        ],
    )
    .assert_code(2)
    .assert_stderr_has("bucket evidence-plain does not have S3 Object Lock enabled")
    .assert_stderr_has("retry with `keyproof publish");
    // The run itself is sealed and intact; nothing reached the bucket.
    assert!(out.join("manifest.json").exists());
    assert_eq!(
        moto.s3(&["inspect", "evidence-plain"]),
        serde_json::json!({})
    );

    // Told to, it publishes without protection and says so.
    run(
        &moto,
        &[
            "publish",
            out_s,
            "--to",
            "s3://evidence-plain/pci",
            "--publish-unlocked",
        ],
    )
    .assert_code(0)
    .assert_stderr_has("WITHOUT Object Lock");
    let objects = moto.s3(&["inspect", "evidence-plain"]);
    let objects = objects.as_object().expect("object map");
    assert!(objects.contains_key("pci/2026-11-01/manifest.json"));
    assert!(objects.values().all(|o| o["mode"].is_null()));
}

#[test]
fn an_altered_run_is_not_published() {
    let moto = Moto::start();
    moto.s3(&["buckets"]);
    let tmp = TestDir::new();
    let out = tmp.path("runs/2026-11-01");
    let out_s = out.to_str().expect("utf-8");
    util::demo(&out, "json,csv");
    let csv = out.join("findings.csv");
    let mut bytes = std::fs::read(&csv).expect("csv");
    bytes[10] ^= 1;
    std::fs::write(&csv, bytes).expect("tamper");
    run(
        &moto,
        &["publish", out_s, "--to", "s3://evidence-locked/pci"],
    )
    .assert_code(2)
    .assert_stderr_has("findings.csv no longer matches the manifest");
    assert_eq!(
        moto.s3(&["inspect", "evidence-locked"]),
        serde_json::json!({})
    );

    run(&moto, &["publish", out_s, "--to", "evidence-locked/pci"])
        .assert_code(2)
        .assert_stderr_has("is not an S3 location");
}
