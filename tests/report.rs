//! The report model and renderers on a large synthetic estate: the HTML page caps PASS rows
//! (and says so) while CSV keeps every finding.

use keyproof::config::Config;
use keyproof::report::html::MAX_PASS_ROWS;
use keyproof::report::{Format, Templates, build_report, render};
use keyproof::rules::{ControlSet, Framework, Status, evaluate};
use keyproof::snapshot::synthetic::synthetic_estate;
use keyproof::snapshot::{LoadedSnapshot, sha256_hex, snapshot_bytes};

#[test]
fn html_caps_pass_rows_and_csv_keeps_every_finding() {
    let snapshot = synthetic_estate(1_500);
    let sha256 = sha256_hex(&snapshot_bytes(&snapshot, false).expect("bytes"));
    let loaded = LoadedSnapshot { snapshot, sha256 };
    let controls = ControlSet::embedded().expect("controls");
    let config = Config::default();
    let findings = evaluate(&loaded.snapshot, &controls, &config);
    let report = build_report(&loaded, &controls, &config, &findings, Framework::PciDss401);
    let pass = findings.iter().filter(|f| f.status == Status::Pass).count();
    assert!(
        pass > MAX_PASS_ROWS,
        "the estate must exceed the cap: {pass}"
    );

    let html =
        String::from_utf8(render(&report, Format::Html, &Templates::default()).expect("html"))
            .expect("utf-8");
    assert_eq!(
        html.matches("<tr data-status=\"PASS\"").count(),
        MAX_PASS_ROWS
    );
    let fails = findings.iter().filter(|f| f.status == Status::Fail).count();
    assert_eq!(html.matches("<tr data-status=\"FAIL\"").count(), fails);
    assert!(html.contains(&format!(
        "{} PASS findings are not listed here",
        pass - MAX_PASS_ROWS
    )));

    let csv = render(&report, Format::Csv, &Templates::default()).expect("csv");
    let rows = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(csv.as_slice())
        .records()
        .count();
    assert_eq!(rows, findings.len());
}
