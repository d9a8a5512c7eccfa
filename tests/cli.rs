//! The `keyproof` binary driven the way a user drives it: demo, report, evaluate, controls,
//! exit codes, and what reaches the report files from hostile or broken input.

mod util;

use keyproof::snapshot::sample::sample_estate;
use keyproof::snapshot::{EncryptedResource, write_snapshot};
use std::fs;
use util::{TestDir, keyproof, report};

const REPORT_FILES: [&str; 4] = ["findings.csv", "findings.json", "report.html", "report.pdf"];

#[test]
fn demo_writes_snapshot_and_reports_that_report_reproduces_byte_for_byte() {
    let dir = TestDir::new();
    let demo = dir.path("demo");
    let out = keyproof(&["demo", "--out", demo.to_str().unwrap_or_default()]);
    out.assert_code(0);
    let snapshot = demo.join("snapshot.json");
    let bytes = fs::read(&snapshot).expect("snapshot written");
    let sha = util::sha256_hex(&bytes);
    assert!(
        out.stdout.contains(&sha),
        "summary names the snapshot hash: {}",
        out.stdout
    );
    for f in REPORT_FILES {
        let content = fs::read(demo.join(f)).expect(f);
        assert!(!content.is_empty(), "{f} is empty");
        if f != "report.pdf" {
            assert!(
                String::from_utf8_lossy(&content).contains(&sha),
                "{f} must name the snapshot hash"
            );
        }
    }
    let pdf = fs::read(demo.join("report.pdf")).expect("pdf");
    assert!(pdf.starts_with(b"%PDF-"));

    // Re-create the reports from the snapshot alone (config found beside it).
    let again = dir.path("again");
    keyproof(&[
        "report",
        snapshot.to_str().unwrap_or_default(),
        "--out",
        again.to_str().unwrap_or_default(),
    ])
    .assert_code(0);
    for f in REPORT_FILES {
        let a = fs::read(demo.join(f)).expect(f);
        let b = fs::read(again.join(f)).expect(f);
        assert!(a == b, "{f} differs between demo and report");
    }
}

#[test]
fn hostile_strings_are_escaped_in_html_and_defused_in_csv() {
    let dir = TestDir::new();
    let mut s = sample_estate();
    let region = &mut s.accounts[0].regions[0];
    region.kms_keys[0].description = "<script>alert(1)</script>".into();
    region.kms_keys[0]
        .aliases
        .push("alias/\"><img src=x onerror=alert(2)>".into());
    region.kms_keys[0]
        .tags
        .insert("Owner".into(), "</td><script>alert(3)</script>".into());
    let mut evil = region.resources[0].clone();
    evil.resource_id = "=HYPERLINK(\"http://evil.example\",\"click\")".into();
    evil.arn = "+cmd|' /C calc'!A0".into();
    region.resources.push(EncryptedResource { ..evil });
    let snap = dir.path("snap.json");
    write_snapshot(&s, &snap).expect("write");
    let out = dir.path("out");
    report(&snap, "html,csv", &out);

    let html = fs::read_to_string(out.join("report.html")).expect("html");
    assert!(
        !html.contains("<script>alert(1)"),
        "raw script from a key description"
    );
    assert!(!html.contains("<img src=x"), "raw tag from an alias");
    assert!(!html.contains("<script>alert(3)"), "raw script from a tag");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
    // Only the page's own script may run, pinned by its hash.
    assert!(html.contains("script-src 'sha256-"), "CSP pins the script");
    assert!(!html.contains("script-src 'unsafe-inline"));
    // Exactly one script element: the page's own filter code.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external assets"
    );

    let csv = fs::read_to_string(out.join("findings.csv")).expect("csv");
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(csv.as_bytes());
    let headers = reader.headers().expect("header").clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        keyproof::report::csv::COLUMNS.to_vec()
    );
    let mut saw_evil = false;
    for rec in reader.records() {
        let rec = rec.expect("row");
        for cell in rec.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "formula cell reached the CSV: {cell}"
            );
        }
        if rec.get(9) == Some("'=HYPERLINK(\"http://evil.example\",\"click\")") {
            saw_evil = true;
            assert_eq!(rec.get(10), Some("'+cmd|' /C calc'!A0"));
        }
    }
    assert!(saw_evil, "the hostile resource's rows are present, defused");
}

#[test]
fn wrong_version_corrupt_and_missing_snapshots_are_clear_errors() {
    let dir = TestDir::new();
    let good = dir.path("good.json");
    write_snapshot(&sample_estate(), &good).expect("write");
    let text = fs::read_to_string(&good).expect("read");
    let future = dir.path("future.json");
    fs::write(
        &future,
        text.replacen("\"schema_version\": 1", "\"schema_version\": 99", 1),
    )
    .expect("write");
    let out = keyproof(&["evaluate", future.to_str().unwrap_or_default()]);
    out.assert_code(2);
    out.assert_stderr_has("schema_version 99");
    out.assert_stderr_has("only version 1");

    let corrupt = dir.path("corrupt.json");
    fs::write(&corrupt, &text[..text.len() / 2]).expect("write");
    let out = keyproof(&["evaluate", corrupt.to_str().unwrap_or_default()]);
    out.assert_code(2);
    out.assert_stderr_has("not a valid keyproof snapshot");

    let out = keyproof(&[
        "evaluate",
        dir.path("nope.json").to_str().unwrap_or_default(),
    ]);
    out.assert_code(2);
    out.assert_stderr_has("cannot read snapshot");
}

#[test]
fn gzip_snapshot_is_read_and_identified_by_its_stored_bytes() {
    let dir = TestDir::new();
    let gz = dir.path("snap.json.gz");
    let sha = write_snapshot(&sample_estate(), &gz).expect("write");
    let bytes = fs::read(&gz).expect("read");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    assert_eq!(util::sha256_hex(&bytes), sha);
    let out = keyproof(&["evaluate", gz.to_str().unwrap_or_default()]);
    out.assert_code(0);
    assert!(out.stdout.contains(&sha));
}

#[test]
fn fail_on_gates_the_exit_code() {
    let dir = TestDir::new();
    let snap = dir.path("s.json");
    write_snapshot(&sample_estate(), &snap).expect("write");
    let p = snap.to_str().unwrap_or_default();
    keyproof(&["evaluate", p]).assert_code(0);
    keyproof(&["evaluate", p, "--fail-on", "critical"]).assert_code(1);
}

#[test]
fn bad_control_file_error_names_file_line_control_and_parser_message() {
    let dir = TestDir::new();
    let controls = dir.path("controls");
    fs::create_dir_all(&controls).expect("mkdir");
    fs::write(
        controls.join("broken.yaml"),
        "controls:\n  - id: KP-BROKEN\n    title: Broken\n    description: x\n    pci_dss_v4: [\"3.7.4\"]\n    pci_dss_v321: [\"3.6.4\"]\n    severity: high\n    applies_to: kms_key\n    check: key.rotation.enabled &&\n    remediation:\n      text: fix\n",
    )
    .expect("write");
    let out = keyproof(&[
        "controls",
        "list",
        "--controls",
        controls.to_str().unwrap_or_default(),
    ]);
    out.assert_code(2);
    out.assert_stderr_has("broken.yaml:2: control KP-BROKEN");
    out.assert_stderr_has("not a valid CEL expression");
}

#[test]
fn controls_list_and_show() {
    let out = keyproof(&["controls", "list"]);
    out.assert_code(0);
    assert!(out.stdout.contains("KP-KEY-ROTATION-PERIOD"));
    let out = keyproof(&["controls", "show", "kp-key-rotation-enabled"]);
    out.assert_code(0);
    assert!(out.stdout.contains("cmk-backing-key-rotation-enabled"));
    assert!(out.stdout.contains("KMS.4"));
    assert!(out.stdout.contains("aws kms enable-key-rotation"));
    keyproof(&["controls", "show", "KP-NOPE"]).assert_code(2);
}

#[test]
fn framework_321_organises_the_summary_by_old_numbers() {
    let dir = TestDir::new();
    let snap = dir.path("s.json");
    write_snapshot(&sample_estate(), &snap).expect("write");
    let out = keyproof(&[
        "evaluate",
        snap.to_str().unwrap_or_default(),
        "--framework",
        "pci-dss-3.2.1",
    ]);
    out.assert_code(0);
    assert!(out.stdout.contains("\n3.6.4 "), "{}", out.stdout);
    assert!(!out.stdout.contains("\n3.7.4 "), "{}", out.stdout);
}

#[test]
fn templates_directory_overrides_the_built_in_html_template() {
    let dir = TestDir::new();
    let snap = dir.path("s.json");
    write_snapshot(&sample_estate(), &snap).expect("write");
    let templates = dir.path("templates");
    fs::create_dir_all(&templates).expect("mkdir");
    fs::write(
        templates.join("report.html.tera"),
        "<p>custom {{ meta.snapshot_sha256 }} {{ key_inventory.0.description }}</p>",
    )
    .expect("write");
    let out = dir.path("out");
    keyproof(&[
        "report",
        snap.to_str().unwrap_or_default(),
        "--format",
        "html",
        "--templates",
        templates.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
    ])
    .assert_code(0);
    let html = fs::read_to_string(out.join("report.html")).expect("html");
    assert!(html.starts_with("<p>custom "), "{html}");
    let broken = templates.join("report.html.tera");
    fs::write(&broken, "{% for x in %}").expect("write");
    let out = keyproof(&[
        "report",
        snap.to_str().unwrap_or_default(),
        "--format",
        "html",
        "--templates",
        templates.to_str().unwrap_or_default(),
        "--out",
        dir.path("out2").to_str().unwrap_or_default(),
    ]);
    out.assert_code(2);
    out.assert_stderr_has("HTML report");
}

#[test]
fn selftest_command_adds_the_self_test_to_a_snapshot() {
    let dir = util::TestDir::new();
    let out = dir.path("demo");
    util::demo(&out, "json");
    let source = out.join("snapshot.json");
    let tested = dir.path("tested.json");
    let run = util::keyproof(&[
        "selftest",
        source.to_str().expect("utf-8"),
        "--simulated",
        "--max-keys",
        "3",
        "--out",
        tested.to_str().expect("utf-8"),
    ]);
    run.assert_code(0).assert_stderr_has(
        "self-test (simulated): known-answer tests passed, 3 keys PASS, 0 FAIL, 0 ERROR,",
    );
    let snap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tested).expect("written")).expect("JSON");
    let keys = snap["selftest"]["keys"].as_array().expect("keys");
    assert_eq!(
        keys.iter().filter(|k| k["result"] != "NOT_TESTED").count(),
        3
    );
    // The earlier self-test's gaps were replaced, not added to.
    let gaps = snap["gaps"].as_array().expect("gaps");
    let selftest_gaps = gaps.iter().filter(|g| g["evidence"] == "selftest").count();
    assert_eq!(selftest_gaps, keys.len() - 3);
}

#[test]
fn iam_policies_are_printed_separately() {
    let collect = util::keyproof(&["iam-policy"]);
    collect.assert_code(0);
    assert!(collect.stdout.contains("kms:ListKeys"));
    assert!(
        !collect.stdout.contains("kms:Decrypt"),
        "collection stays read-only"
    );
    let selftest = util::keyproof(&["iam-policy", "--selftest"]);
    selftest.assert_code(0);
    assert!(
        selftest.stdout.contains("kms:GenerateDataKey") && selftest.stdout.contains("kms:Decrypt")
    );
    assert!(!selftest.stdout.contains("kms:ListKeys"));
    let parsed: serde_json::Value = serde_json::from_str(&selftest.stdout).expect("policy is JSON");
    assert_eq!(parsed["Version"], "2012-10-17");
}

/// Copies a directory tree (run directories are small).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Two signed monthly runs side by side, and the key pair that signed them.
struct Runs {
    dir: TestDir,
}

impl Runs {
    fn new() -> Runs {
        let dir = TestDir::new();
        let keys = dir.path("keys");
        keyproof(&["keys", "init", "--dir", keys.to_str().unwrap_or_default()]).assert_code(0);
        let key = keys.join("signing.pem");
        for month in ["2026-10", "2026-11"] {
            let out = dir.path(&format!("runs/{month}"));
            keyproof(&[
                "demo",
                "--out",
                out.to_str().unwrap_or_default(),
                "--format",
                "json,csv",
                "--sign-key",
                key.to_str().unwrap_or_default(),
            ])
            .assert_code(0);
        }
        Runs { dir }
    }

    /// A fresh copy of both runs to tamper with.
    fn copy(&self, name: &str) -> std::path::PathBuf {
        let to = self.dir.path(name);
        copy_tree(&self.dir.path("runs"), &to);
        to
    }

    fn verify(&self, runs: &std::path::Path, run: &str) -> util::Output {
        let key = self.dir.path("keys/signing.pub.pem");
        keyproof(&[
            "verify",
            runs.join(run).to_str().unwrap_or_default(),
            "--public-key",
            key.to_str().unwrap_or_default(),
        ])
    }
}

#[test]
fn keys_init_writes_a_private_key_for_the_owner_only_and_refuses_to_overwrite() {
    let dir = TestDir::new();
    let keys = dir.path("keys");
    let k = keys.to_str().unwrap_or_default();
    let out = keyproof(&["keys", "init", "--dir", k]);
    out.assert_code(0);
    assert!(out.stdout.contains("public key sha256 "), "{}", out.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(keys.join("signing.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = keyproof(&["keys", "init", "--dir", k]);
    again.assert_code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}

#[test]
fn verify_accepts_untouched_runs_and_names_every_kind_of_tampering() {
    let runs = Runs::new();
    let base = runs.dir.path("runs");
    let ok = runs.verify(&base, "2026-11");
    ok.assert_code(0);
    assert!(ok.stdout.contains("signature: valid"), "{}", ok.stdout);
    assert!(
        ok.stdout.contains("chain: 2026-11 -> 2026-10 intact"),
        "{}",
        ok.stdout
    );
    assert!(ok.stdout.contains("VERIFIED"), "{}", ok.stdout);

    // One byte of a report changed.
    let t = runs.copy("byte");
    let csv = t.join("2026-11/findings.csv");
    let mut bytes = fs::read(&csv).expect("csv");
    bytes[10] ^= 1;
    fs::write(&csv, bytes).expect("write");
    let out = runs.verify(&t, "2026-11");
    out.assert_code(1);
    assert!(
        out.stdout.contains("altered: findings.csv"),
        "{}",
        out.stdout
    );

    // A file deleted, another added.
    let t = runs.copy("files");
    fs::remove_file(t.join("2026-11/findings.json")).expect("rm");
    fs::write(t.join("2026-11/notes.txt"), "added later").expect("add");
    let out = runs.verify(&t, "2026-11");
    out.assert_code(1);
    assert!(
        out.stdout.contains("missing: findings.json"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("extra: notes.txt"), "{}", out.stdout);

    // Another month's snapshot swapped in.
    let t = runs.copy("swap");
    fs::copy(
        t.join("2026-10/snapshot.json"),
        t.join("2026-11/snapshot.json"),
    )
    .expect("swap");
    let out = runs.verify(&t, "2026-11");
    out.assert_code(1);
    assert!(
        out.stdout.contains("altered: snapshot.json"),
        "{}",
        out.stdout
    );

    // The manifest edited to match the swapped file: the signature no longer matches.
    let t = runs.copy("resign");
    let manifest = t.join("2026-11/manifest.json");
    let text = fs::read_to_string(&manifest).expect("manifest");
    fs::write(
        &manifest,
        text.replacen("\"framework\"", "\"framework\" ", 1),
    )
    .expect("edit");
    let out = runs.verify(&t, "2026-11");
    out.assert_code(1);
    assert!(out.stdout.contains("signature: INVALID"), "{}", out.stdout);

    // The previous month's manifest changed: the chain link is broken.
    let t = runs.copy("chain");
    let prev = t.join("2026-10/manifest.json");
    let text = fs::read_to_string(&prev).expect("manifest");
    fs::write(&prev, format!("{text} ")).expect("edit");
    let out = runs.verify(&t, "2026-11");
    out.assert_code(1);
    assert!(
        out.stdout.contains("chain: 2026-11 -> 2026-10 BROKEN"),
        "{}",
        out.stdout
    );

    // The previous month's report changed under an intact manifest.
    let t = runs.copy("prevfile");
    fs::write(t.join("2026-10/findings.csv"), "nothing to see").expect("edit");
    let out = runs.verify(&t, "2026-11");
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("2026-10 ALTERED: altered: findings.csv"),
        "{}",
        out.stdout
    );

    // Another key does not verify the signature.
    let other = runs.dir.path("other-keys");
    keyproof(&["keys", "init", "--dir", other.to_str().unwrap_or_default()]).assert_code(0);
    let out = keyproof(&[
        "verify",
        base.join("2026-11").to_str().unwrap_or_default(),
        "--public-key",
        other.join("signing.pub.pem").to_str().unwrap_or_default(),
    ]);
    out.assert_code(1);
    assert!(out.stdout.contains("signature: INVALID"), "{}", out.stdout);
}

#[test]
fn an_unsigned_run_does_not_verify_unless_the_signature_is_waived() {
    let dir = TestDir::new();
    let run = dir.path("run");
    let r = run.to_str().unwrap_or_default();
    let out = keyproof(&["demo", "--out", r, "--format", "json"]);
    out.assert_code(0);
    assert!(out.stderr.contains("UNSIGNED"), "{}", out.stderr);
    let keys = dir.path("keys");
    keyproof(&["keys", "init", "--dir", keys.to_str().unwrap_or_default()]).assert_code(0);
    let pubkey = keys.join("signing.pub.pem");
    let out = keyproof(&[
        "verify",
        r,
        "--public-key",
        pubkey.to_str().unwrap_or_default(),
    ]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("the manifest names no signer"),
        "{}",
        out.stdout
    );
    let out = keyproof(&["verify", r, "--no-signature"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("signature: NOT checked"),
        "{}",
        out.stdout
    );
    // No key and no waiver: the user is told what to pass.
    keyproof(&["verify", r]).assert_code(2);
}

/// Seals a snapshot as a run directory under `runs/` with `keyproof report --seal`.
fn seal_run(dir: &TestDir, name: &str, snapshot: &keyproof::snapshot::Snapshot, formats: &str) {
    let file = dir.path(&format!("{name}.json"));
    write_snapshot(snapshot, &file).expect("snapshot");
    let out = dir.path(&format!("runs/{name}"));
    keyproof(&[
        "report",
        file.to_str().unwrap_or_default(),
        "--out",
        out.to_str().unwrap_or_default(),
        "--format",
        formats,
        "--seal",
    ])
    .assert_code(0);
}

#[test]
fn a_run_sealed_while_another_seals_waits_and_links_after_it() {
    let dir = TestDir::new();
    let s = sample_estate();
    seal_run(&dir, "2026-10", &s, "json");
    // Another run of the same runs directory is sealing (the test holds its seal lock).
    let runs = dir.path("runs");
    let held = keyproof::schedule::seal_lock(&runs).expect("seal lock");
    let file = dir.path("2026-11.json");
    write_snapshot(&s, &file).expect("snapshot");
    let out = runs.join("2026-11");
    let cwd = tempfile::tempdir().expect("cwd");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_keyproof"));
    for var in util::AMBIENT_AWS {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .env_remove("KEYPROOF_SIGNING_KEY")
        .args(["report", file.to_str().unwrap_or_default(), "--out"])
        .arg(&out)
        .args(["--format", "json", "--seal"])
        .current_dir(cwd.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("keyproof");
    // It waits for the seal before it: no manifest, still running.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(child.try_wait().expect("status").is_none());
    assert!(!out.join("manifest.json").exists());
    drop(held);
    assert!(child.wait().expect("status").success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["previous"]["run_id"], "2026-10");
}

#[test]
fn history_and_diff_over_three_runs_give_exactly_the_changes_made() {
    let dir = TestDir::new();
    const QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/payments-retry-queue";
    const PROD_EBS: &str = "d3335f51-e1f8-45b4-b1da-6e4e7ce91dff";
    // Month 1: the sample estate.
    let mut s = sample_estate();
    seal_run(&dir, "2026-09", &s, "json");
    // Month 2: the unencrypted queue is fixed; rotation is switched off on the EBS key.
    let region = &mut s.accounts[0].regions[0];
    let queue = region
        .resources
        .iter_mut()
        .find(|r| r.resource_id == QUEUE)
        .expect("queue");
    queue.kms_key_id = Some("alias/prod-sqs-payments".into());
    queue.encrypted = Some(true);
    queue.encryption_type = "CUSTOMER_KMS".into();
    let ebs = region
        .kms_keys
        .iter_mut()
        .find(|k| k.key_id == PROD_EBS)
        .expect("ebs key");
    if let Some(r) = ebs.rotation.as_mut() {
        r.enabled = false;
    }
    seal_run(&dir, "2026-10", &s, "json");
    // Month 3: a new bucket appears, the queue is deleted.
    let region = &mut s.accounts[0].regions[0];
    let mut bucket = region
        .resources
        .iter()
        .find(|r| r.resource_type == "AWS::S3::Bucket")
        .cloned()
        .expect("a bucket");
    bucket.resource_id = "northwind-new-exports".into();
    bucket.arn = "arn:aws:s3:::northwind-new-exports".into();
    bucket.name = Some("northwind-new-exports".into());
    region.resources.push(bucket);
    region.resources.retain(|r| r.resource_id != QUEUE);
    seal_run(&dir, "2026-11", &s, "json,html");

    let runs = dir.path("runs");
    let r = runs.to_str().unwrap_or_default();
    let out = keyproof(&["history", "--runs", r, "--json"]);
    out.assert_code(0);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let ids: Vec<&str> = rows
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    assert_eq!(ids, ["2026-09", "2026-10", "2026-11"]);
    assert_eq!(
        rows[1]["by_requirement"]["3.7.4"]["FAIL"],
        rows[0]["by_requirement"]["3.7.4"]["FAIL"]
            .as_u64()
            .unwrap_or(0)
            + 1
    );

    let diff = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["diff"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--runs", r, "--json"]);
        let out = keyproof(&all);
        out.assert_code(0);
        serde_json::from_str(&out.stdout).expect("diff json")
    };
    let ids_of = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|i| {
                format!(
                    "{} {} {}",
                    i["status"].as_str().unwrap_or_default(),
                    i["control_id"].as_str().unwrap_or_default(),
                    i["resource_id"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    let d = diff(&["2026-09", "2026-10"]);
    // The queue's recoverability is unproven without a self-test: ERROR, listed as failing.
    assert_eq!(
        ids_of(&d["newly_failing"]),
        [
            format!("FAIL KP-KEY-ROTATION-ENABLED {PROD_EBS}"),
            format!("ERROR KP-RES-DATA-RECOVERABLE {QUEUE}")
        ]
    );
    assert_eq!(
        ids_of(&d["fixed"]),
        [format!("FAIL KP-RES-ENCRYPTED {QUEUE}")]
    );
    assert_eq!(d["new_resources"], serde_json::json!([]));

    // Default: the last two runs.
    let d = diff(&[]);
    assert_eq!(d["from"], "2026-10");
    assert_eq!(d["to"], "2026-11");
    assert_eq!(
        ids_of(&d["newly_failing"]),
        ["ERROR KP-RES-DATA-RECOVERABLE northwind-new-exports"]
    );
    assert_eq!(ids_of(&d["fixed"]), Vec::<String>::new());
    assert_eq!(
        d["new_resources"],
        serde_json::json!(["encrypted_resource/111122223333/eu-west-1/northwind-new-exports"])
    );
    assert_eq!(
        d["vanished_resources"],
        serde_json::json!([format!("encrypted_resource/111122223333/eu-west-1/{QUEUE}")])
    );
    let still = d["still_failing"].as_array().expect("list");
    let streak = |control: &str, resource: &str| {
        still
            .iter()
            .find(|i| i["control_id"] == control && i["resource_id"] == resource)
            .map(|i| i["consecutive_runs"].as_u64().unwrap_or(0))
    };
    assert_eq!(streak("KP-KEY-ROTATION-ENABLED", PROD_EBS), Some(2));
    assert_eq!(
        streak(
            "KP-KEY-NO-PUBLIC-ACCESS",
            "cf09be01-6f45-46b9-abd3-b15222985778"
        ),
        Some(3)
    );

    // The report of the last run knows what changed since the one before, and the trend.
    let report: serde_json::Value = serde_json::from_slice(
        &fs::read(runs.join("2026-11/findings.json")).expect("findings.json"),
    )
    .expect("json");
    let h = &report["history"];
    assert_eq!(h["previous_run_id"], "2026-10");
    assert_eq!(ids_of(&h["newly_failing"]), ids_of(&d["newly_failing"]));
    assert_eq!(h["runs"].as_array().map(Vec::len), Some(3));
    let html = fs::read_to_string(runs.join("2026-11/report.html")).expect("html");
    assert!(html.contains("Since the last run"));
    assert!(html.contains("<svg") && html.contains("FAIL and ERROR findings per run"));
    let first: serde_json::Value = serde_json::from_slice(
        &fs::read(runs.join("2026-09/findings.json")).expect("findings.json"),
    )
    .expect("json");
    assert!(first["history"].is_null(), "the first run has no history");

    // The database is only an index: deleted, it is rebuilt from the run directories.
    fs::remove_file(runs.join("history.sqlite")).expect("rm db");
    let out = keyproof(&["history", "--runs", r, "--rebuild"]);
    out.assert_code(0);
    assert!(out.stderr.contains("indexed 3 run(s)"), "{}", out.stderr);
    assert_eq!(diff(&[])["vanished_resources"], d["vanished_resources"]);
}

/// A keyproof.toml whose schedule runs the demo into `runs/` of `dir`.
fn schedule_config(dir: &TestDir, cron: &str) -> std::path::PathBuf {
    let path = dir.path("keyproof.toml");
    let runs = dir.path("runs");
    fs::write(
        &path,
        format!(
            "[schedule]\ncron = \"{cron}\"\njob = \"demo\"\nargs = [\"--format\", \"json\"]\nruns_dir = {:?}\n",
            runs.to_string_lossy()
        ),
    )
    .expect("config");
    path
}

fn run_dirs(dir: &TestDir) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir.path("runs"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().join("manifest.json").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn schedule_runs_on_a_fast_cron_and_chains_the_runs() {
    let dir = TestDir::new();
    let config = schedule_config(&dir, "*/2 * * * * *");
    let c = config.to_str().unwrap_or_default();
    let out = keyproof(&["schedule", "--config", c, "--max-runs", "2", "--for", "60"]);
    out.assert_code(0);
    let runs = run_dirs(&dir);
    assert_eq!(runs.len(), 2, "{runs:?}\n{}", out.stderr);
    let second: serde_json::Value = serde_json::from_slice(
        &fs::read(dir.path("runs").join(&runs[1]).join("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(second["previous"]["run_id"], runs[0].as_str());
}

#[test]
fn schedule_skips_while_another_run_holds_the_lock() {
    let dir = TestDir::new();
    let config = schedule_config(&dir, "* * * * * *");
    fs::create_dir_all(dir.path("runs")).expect("runs");
    let lock = fs::File::create(dir.path("runs/.keyproof-run.lock")).expect("lock file");
    lock.lock().expect("hold the lock");
    let out = keyproof(&[
        "schedule",
        "--config",
        config.to_str().unwrap_or_default(),
        "--max-runs",
        "1",
        "--for",
        "3",
    ]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("skipped: another run holds"),
        "{}",
        out.stderr
    );
    assert!(run_dirs(&dir).is_empty());
    drop(lock);
}

#[test]
fn schedule_catches_up_a_missed_monthly_run_exactly_once() {
    let dir = TestDir::new();
    // Monthly: the 1st at 06:00 UTC has passed with no run, so one run is due now; the next is
    // weeks away.
    let config = schedule_config(&dir, "0 0 6 1 * *");
    let c = config.to_str().unwrap_or_default();
    let out = keyproof(&["schedule", "--config", c, "--max-runs", "3", "--for", "3"]);
    out.assert_code(0);
    assert!(out.stderr.contains("catching up"), "{}", out.stderr);
    assert_eq!(run_dirs(&dir).len(), 1);
    // Started again: the catch-up run counts, nothing more is due.
    let out = keyproof(&["schedule", "--config", c, "--max-runs", "3", "--for", "2"]);
    out.assert_code(0);
    assert!(!out.stderr.contains("catching up"), "{}", out.stderr);
    assert_eq!(run_dirs(&dir).len(), 1);
}
