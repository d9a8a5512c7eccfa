//! `keyproof audit-logs` on generated CloudTrail files with known content: a day of a
//! two-region trail (about 29 000 records, 15% KMS) with one of each anomaly injected and two
//! broken files. The analysis must find exactly the injected detections, account for every
//! file, and give the same result from a local directory and from the same files in (moto's)
//! S3.

mod util;

use keyproof::logs::synthetic::{self, Expected, Spec};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use util::moto::Moto;
use util::{TestDir, keyproof_env};

const SINCE: &str = "2026-11-01T00:00:00Z";
const UNTIL: &str = "2026-11-02T00:00:00Z";

fn generate(dir: &Path) -> Expected {
    let spec = Spec::small(SINCE.parse().expect("time"));
    synthetic::write(dir, &spec).expect("generate log files")
}

fn config(tmp: &TestDir) -> String {
    let path = tmp.path("keyproof.toml");
    std::fs::write(&path, "[logs]\nallowed_source_cidrs = [\"10.0.0.0/8\"]\n").expect("config");
    path.to_str().expect("utf-8").to_string()
}

fn audit(source: &[&str], config: &str, out: &Path, env: &[(&str, &str)]) -> util::Output {
    let mut args = vec!["audit-logs"];
    args.extend_from_slice(source);
    args.extend_from_slice(&[
        "--since",
        SINCE,
        "--until",
        UNTIL,
        "--config",
        config,
        "--detect-anomalies",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    keyproof_env(&args, env)
}

fn activity(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("kms-activity.json")).expect("json"))
        .expect("kms-activity.json parses")
}

/// (kind, first event id, count) of every detection, spikes with the principal instead.
fn detections(v: &Value) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = v["activity"]["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .map(|d| {
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            let id = if kind == "VOLUME_SPIKE" {
                d["principal"].as_str().unwrap_or_default().to_string()
            } else {
                d["events"][0]["event_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            (kind, id, d["count"].as_u64().unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

fn expected_detections(e: &Expected) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = e
        .detections
        .iter()
        .map(|(kind, id, count)| {
            let kind = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let id = if kind == "VOLUME_SPIKE" {
                format!("arn:aws:iam::{}:role/batch", synthetic::ACCOUNT)
            } else {
                id.clone()
            };
            (kind, id, *count)
        })
        .collect();
    out.sort();
    out
}

fn check(v: &Value, e: &Expected, issue_names: &[String]) {
    let scan = &v["scan"];
    assert_eq!(scan["files"], e.files, "files listed");
    assert_eq!(scan["files_read"], e.files - 2, "files read");
    assert_eq!(scan["records"], e.records, "records");
    assert_eq!(scan["kms_records"], e.kms_events, "KMS records");
    assert_eq!(scan["json_bytes"], e.json_bytes, "JSON bytes");
    let issues: Vec<(String, bool)> = scan["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| {
            (
                i["file"].as_str().unwrap_or_default().to_string(),
                !i["reason"].as_str().unwrap_or_default().is_empty(),
            )
        })
        .collect();
    let want: Vec<(String, bool)> = issue_names.iter().map(|n| (n.clone(), true)).collect();
    assert_eq!(issues, want, "exactly the broken files are reported");
    // The malformed one says where.
    assert!(scan["issues"].as_array().expect("issues").iter().any(|i| {
        i["offset"].as_u64().is_some()
            && i["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("malformed JSON")
    }));
    let a = &v["activity"];
    assert_eq!(
        a["events"], e.kms_events,
        "every KMS event is in the window"
    );
    assert_eq!(a["outside_window"], 0);
    assert_eq!(
        a["fields"]["complete"], e.kms_events,
        "generated records carry all fields"
    );
    assert_eq!(
        detections(v),
        expected_detections(e),
        "exactly the injected detections"
    );
}

#[test]
fn local_files_give_exactly_the_injected_detections() {
    let tmp = TestDir::new();
    let logs = tmp.path("logs");
    let expected = generate(&logs);
    assert!(expected.records > 25_000, "{expected:?}");
    let out = tmp.path("out");
    let run = audit(
        &["--local", logs.to_str().expect("utf-8")],
        &config(&tmp),
        &out,
        &[],
    );
    run.assert_code(1);
    assert!(run.stdout.contains("UNREADABLE"), "{}", run.stdout);
    assert!(
        run.stdout.contains("KMS call by the root user"),
        "{}",
        run.stdout
    );
    let v = activity(&out);
    let names: Vec<String> = expected
        .broken_files
        .iter()
        .map(|f| logs.join(f).display().to_string())
        .collect();
    check(&v, &expected, &names);

    // The CSV has one row per detection, with its first event.
    let csv = std::fs::read_to_string(out.join("kms-anomalies.csv")).expect("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + expected.detections.len());
    assert!(
        rows.iter()
            .any(|r| r.contains("ROOT_USE") && r.contains("anomaly-root-1"))
    );

    // Without --detect-anomalies the exit code does not depend on the findings.
    let quiet = keyproof_env(
        &[
            "audit-logs",
            "--local",
            logs.to_str().expect("utf-8"),
            "--since",
            SINCE,
            "--until",
            UNTIL,
        ],
        &[],
    );
    quiet.assert_code(0);
    assert!(
        quiet.stdout.contains("source IPs were not checked"),
        "{}",
        quiet.stdout
    );
}

#[test]
fn the_same_files_in_s3_give_the_same_result() {
    let tmp = TestDir::new();
    let logs = tmp.path("logs");
    let expected = generate(&logs);
    let moto = Moto::start();
    let uploaded = moto.s3(&["upload", "trail-bucket", logs.to_str().expect("utf-8")]);
    assert_eq!(
        uploaded["uploaded"],
        expected.files + expected.digest_files.len() as u64
    );
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = tmp.path("out-s3");
    let keys = tmp.path("public-keys.json");
    std::fs::write(&keys, &expected.public_keys_json).expect("keys");
    audit(
        &[
            "--cloudtrail-s3",
            "s3://trail-bucket",
            "--verify-digests",
            "--public-keys",
            keys.to_str().expect("utf-8"),
        ],
        &config(&tmp),
        &out,
        &env,
    )
    .assert_code(1);
    let v = activity(&out);
    check(&v, &expected, &expected.broken_files);
    // Signatures come from the digests' S3 metadata: every digest verifies, and only the two
    // damaged log files fail their digest's hash.
    let integrity = &v["integrity"];
    assert_eq!(integrity["digests"], expected.digest_files.len() as u64);
    assert_eq!(
        integrity["digests_valid"],
        expected.digest_files.len() as u64
    );
    assert_eq!(
        problems(&v),
        expected
            .broken_files
            .iter()
            .map(|f| ("LOG_ALTERED".to_string(), f.clone()))
            .collect::<Vec<_>>()
    );

    // Without --public-keys, CloudTrail's keys come from ListPublicKeys in each region with
    // digests. moto has no ListPublicKeys, so a stub on loopback answers it (the S3 calls still
    // go to moto), with the generated key in the wire format (epoch-second times).
    let cli: Value = serde_json::from_str(&expected.public_keys_json).expect("keys json");
    let epoch = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("time"))
            .expect("rfc3339")
            .timestamp()
    };
    let wire = serde_json::json!({
        "PublicKeyList": cli["PublicKeyList"]
            .as_array()
            .expect("list")
            .iter()
            .map(|k| serde_json::json!({
                "Value": k["Value"],
                "Fingerprint": k["Fingerprint"],
                "ValidityStartTime": epoch(&k["ValidityStartTime"]),
                "ValidityEndTime": epoch(&k["ValidityEndTime"]),
            }))
            .collect::<Vec<_>>()
    })
    .to_string();
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = calls.clone();
    let stub = util::stub::serve(move |req| {
        log.lock().expect("log").push(req.target.clone());
        (200, "application/x-amz-json-1.1", wire.clone())
    });
    let mut live_env = env.clone();
    live_env.push(("AWS_ENDPOINT_URL_CLOUDTRAIL", stub.as_str()));
    let live_out = tmp.path("out-live-keys");
    audit(
        &["--cloudtrail-s3", "s3://trail-bucket", "--verify-digests"],
        &config(&tmp),
        &live_out,
        &live_env,
    )
    .assert_code(1);
    let live = activity(&live_out);
    assert_eq!(
        live["integrity"]["digests_valid"],
        integrity["digests_valid"]
    );
    assert_eq!(problems(&live), problems(&v));
    let calls = calls.lock().expect("log");
    assert_eq!(
        calls.len(),
        2,
        "one ListPublicKeys per region with digests: {calls:?}"
    );
    assert!(
        calls.iter().all(|t| t.ends_with(".ListPublicKeys")),
        "{calls:?}"
    );

    let local_out = tmp.path("out-local");
    audit(
        &["--local", logs.to_str().expect("utf-8")],
        &config(&tmp),
        &local_out,
        &[],
    )
    .assert_code(1);
    assert_eq!(v["activity"], activity(&local_out)["activity"]);

    // A window that misses the generated day lists no day prefix holding files.
    let empty_out = tmp.path("out-empty");
    let run = keyproof_env(
        &[
            "audit-logs",
            "--cloudtrail-s3",
            "s3://trail-bucket",
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-02",
            "--out",
            empty_out.to_str().expect("utf-8"),
        ],
        &env,
    );
    run.assert_code(0);
    assert_eq!(activity(&empty_out)["scan"]["files"], 0);
}

fn problems(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["integrity"]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap_or_default().to_string(),
                p["file"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

#[test]
fn digest_verification_names_each_tampered_file() {
    let tmp = TestDir::new();
    let logs = tmp.path("logs");
    let e = generate(&logs);
    let keys = tmp.path("public-keys.json");
    std::fs::write(&keys, &e.public_keys_json).expect("keys");
    let verify = |out: &str| {
        let out = tmp.path(out);
        let run = keyproof_env(
            &[
                "audit-logs",
                "--local",
                logs.to_str().expect("utf-8"),
                "--since",
                SINCE,
                "--until",
                UNTIL,
                "--verify-digests",
                "--public-keys",
                keys.to_str().expect("utf-8"),
                "--out",
                out.to_str().expect("utf-8"),
            ],
            &[],
        );
        (run, activity(&out))
    };
    let altered = |f: &String| ("LOG_ALTERED".to_string(), f.clone());

    // As generated: only the two files damaged after delivery.
    let (run, v) = verify("clean");
    run.assert_code(1);
    assert!(
        run.stdout
            .contains("log file integrity: 48 digests in 2 chain(s), 48 with a valid signature"),
        "{}",
        run.stdout
    );
    assert_eq!(
        problems(&v),
        e.broken_files.iter().map(altered).collect::<Vec<_>>()
    );

    // The files of the second region, hour by hour.
    let region_files = |region: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(logs.join(format!(
            "AWSLogs/{}/CloudTrail/{region}/2026/11/01",
            synthetic::ACCOUNT
        )))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            p.strip_prefix(&logs)
                .expect("under logs")
                .display()
                .to_string()
        })
        .collect();
        v.sort();
        v
    };
    let logs_us = region_files("us-east-1");
    let digests_us: Vec<&String> = e
        .digest_files
        .iter()
        .filter(|d| d.contains("us-east-1"))
        .collect();
    assert_eq!(digests_us.len(), 24);

    // 1. A log file's content changed (valid gzip, one byte of JSON).
    let changed = &logs_us[10];
    let mut json = gunzip(&std::fs::read(logs.join(changed)).expect("read"));
    let at = json.len() / 2;
    json[at] = if json[at] == b'a' { b'b' } else { b'a' };
    std::fs::write(logs.join(changed), gzip(&json)).expect("write");
    // 2. A log file deleted.
    let deleted = &logs_us[20];
    std::fs::remove_file(logs.join(deleted)).expect("delete");
    // 3. A log file added that no digest lists.
    let added = logs_us[30].replace(".json.gz", "0.json.gz");
    std::fs::copy(logs.join(&logs_us[30]), logs.join(&added)).expect("copy");
    // 4. A digest deleted from the middle of the chain: the log files only it listed are now
    //    unreferenced too.
    let gone = digests_us[5];
    std::fs::remove_file(logs.join(gone)).expect("delete digest");
    std::fs::remove_file(logs.join(format!("{gone}.sig"))).expect("delete signature");
    // 5. A digest rewritten (a log hash swapped) under its old signature.
    let forged = digests_us[15];
    let text =
        String::from_utf8(gunzip(&std::fs::read(logs.join(forged)).expect("read"))).expect("utf-8");
    let forged_text = text.replacen("\"hashValue\":\"", "\"hashValue\":\"00", 1);
    assert_ne!(text, forged_text);
    std::fs::write(logs.join(forged), gzip(forged_text.as_bytes())).expect("write");
    // 6. The newest digest's signature not kept beside it (a plain `aws s3 sync` copy).
    let newest = digests_us[23];
    std::fs::remove_file(logs.join(format!("{newest}.sig"))).expect("delete signature");

    let (run, v) = verify("tampered");
    run.assert_code(1);
    let mut want: Vec<(String, String)> = e.broken_files.iter().map(altered).collect();
    want.extend([
        ("LOG_ALTERED".to_string(), changed.clone()),
        ("LOG_MISSING".to_string(), deleted.clone()),
        ("LOG_UNREFERENCED".to_string(), added.clone()),
        ("DIGEST_MISSING".to_string(), gone.clone()),
        ("DIGEST_SIGNATURE_INVALID".to_string(), forged.clone()),
        ("CHAIN_BROKEN".to_string(), digests_us[16].clone()),
        ("DIGEST_UNVERIFIABLE".to_string(), newest.clone()),
    ]);
    want.extend(
        logs_us[15..18]
            .iter()
            .map(|f| ("LOG_UNREFERENCED".to_string(), f.clone())),
    );
    want.sort();
    assert_eq!(problems(&v), want);
    for (kind, _) in &want {
        assert!(
            run.stdout.contains(kind.as_str()),
            "{kind} not printed:\n{}",
            run.stdout
        );
    }

    // Without keys for the fingerprint nothing can be authenticated, and it says so.
    std::fs::write(&keys, r#"{"PublicKeyList":[]}"#).expect("keys");
    let (run, v) = verify("no-keys");
    run.assert_code(1);
    assert_eq!(v["integrity"]["digests_valid"], 0);
    assert!(
        run.stdout
            .contains("no CloudTrail public key with fingerprint"),
        "{}",
        run.stdout
    );
}

#[test]
fn collect_puts_the_kms_activity_in_the_snapshot() {
    let tmp = TestDir::new();
    let logs = tmp.path("logs");
    let expected = generate(&logs);
    let moto = Moto::start();
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = tmp.path("snapshot.json");
    let run = keyproof_env(
        &[
            "collect",
            "--regions",
            "eu-west-1",
            "--max-attempts",
            "1",
            "--no-events",
            "--quiet",
            "--since",
            SINCE,
            "--cloudtrail-local",
            logs.to_str().expect("utf-8"),
            "--out",
            out.to_str().expect("utf-8"),
        ],
        &env,
    );
    run.assert_code(0);
    run.assert_stderr_has(&format!("KMS activity: {} events", expected.kms_events));
    let snap: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("snapshot")).expect("json");
    let a = &snap["kms_activity"];
    assert_eq!(a["activity"]["events"], expected.kms_events);
    assert_eq!(a["scan"]["files"], expected.files);
    assert_eq!(a["activity"]["window_start"], "2026-11-01T00:00:00Z");

    // The report of that snapshot has the section and the anomalies CSV.
    let dir = tmp.path("report");
    util::report(&out, "html,csv", &dir);
    let html = std::fs::read_to_string(dir.join("report.html")).expect("html");
    assert!(html.contains("KMS activity from CloudTrail</h2>"));
    assert!(
        html.contains(" log files read ("),
        "the section says what was read"
    );
    let csv = std::fs::read_to_string(dir.join("kms-anomalies.csv")).expect("csv");
    assert!(csv.contains("anomaly-root-1"), "{csv}");
}
