//! Pipeline benchmark: a synthetic estate of 100,000 keys (override with KEYPROOF_BENCH_KEYS)
//! through evaluation and every report format. Prints figures; asserts nothing about speed.
//!
//! Run with `cargo bench --bench pipeline`. The PDF is rendered for a smaller estate
//! (KEYPROOF_BENCH_PDF_KEYS, default 10,000) because an auditor's PDF of 100,000 keys runs to
//! thousands of pages; set it equal to the key count to time that too.

use keyproof::config::Config;
use keyproof::report::{Format, Templates, build_report, render};
use keyproof::rules::{ControlSet, evaluate};
use keyproof::snapshot::synthetic::synthetic_estate;
use keyproof::snapshot::{LoadedSnapshot, snapshot_bytes};
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load(keys: usize) -> (LoadedSnapshot, f64) {
    let t = Instant::now();
    let snapshot = synthetic_estate(keys);
    let bytes = snapshot_bytes(&snapshot, false).expect("serialize");
    let sha = keyproof::snapshot::sha256_hex(&bytes);
    (
        LoadedSnapshot {
            snapshot,
            sha256: sha,
        },
        t.elapsed().as_secs_f64(),
    )
}

fn main() {
    let keys = env_usize("KEYPROOF_BENCH_KEYS", 100_000);
    let pdf_keys = env_usize("KEYPROOF_BENCH_PDF_KEYS", 10_000).min(keys);
    let controls = ControlSet::embedded().expect("controls");
    let config = Config::default();
    let templates = Templates::default();

    let (loaded, gen_s) = load(keys);
    let s = &loaded.snapshot;
    let resources: usize = s
        .accounts
        .iter()
        .flat_map(|a| &a.regions)
        .map(|r| r.resources.len())
        .sum();
    println!(
        "synthetic estate: {keys} keys, {resources} resources (generated and hashed in {gen_s:.2} s)"
    );

    let t = Instant::now();
    let subjects = keyproof::analyze::build_subjects(s, &config);
    println!(
        "derive facts: {} subjects in {:.2} s",
        subjects.len(),
        t.elapsed().as_secs_f64()
    );
    drop(subjects);

    let t = Instant::now();
    let findings = evaluate(s, &controls, &config);
    let eval_s = t.elapsed().as_secs_f64();
    println!(
        "evaluate: {} resource-control evaluations in {eval_s:.2} s = {:.0} evaluations/s",
        findings.len(),
        findings.len() as f64 / eval_s
    );

    let t = Instant::now();
    let report = build_report(&loaded, &controls, &config, &findings, Default::default());
    println!("build report model: {:.2} s", t.elapsed().as_secs_f64());

    for format in [Format::Csv, Format::Json, Format::Html] {
        let t = Instant::now();
        let bytes = render(&report, format, &templates).expect("render");
        println!(
            "render {format}: {:.2} s, {:.1} MB",
            t.elapsed().as_secs_f64(),
            bytes.len() as f64 / 1e6
        );
    }

    let (small, _) = load(pdf_keys);
    let small_findings = evaluate(&small.snapshot, &controls, &config);
    let small_report = build_report(
        &small,
        &controls,
        &config,
        &small_findings,
        Default::default(),
    );
    let t = Instant::now();
    let pdf = render(&small_report, Format::Pdf, &templates).expect("pdf");
    println!(
        "render pdf ({pdf_keys} keys, {} findings): {:.2} s, {:.1} MB",
        small_findings.len(),
        t.elapsed().as_secs_f64(),
        pdf.len() as f64 / 1e6
    );
}
