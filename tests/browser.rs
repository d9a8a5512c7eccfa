//! The HTML report in a real browser: headless Chromium loads it from disk, the page's filter
//! script runs (it writes "N of M findings"), and the console shows no errors (script errors,
//! Content-Security-Policy violations, blocked loads).
//!
//! Needs Debian's `chromium` (`scripts/test` installs it). Set `KEYPROOF_CHROMIUM` to another
//! binary, or `KEYPROOF_SKIP_BROWSER=1` to skip on a machine without one.

mod util;

use std::path::PathBuf;
use std::process::Command;
use util::{TestDir, demo};

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KEYPROOF_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn html_report_runs_in_headless_chromium_without_console_errors() {
    if std::env::var("KEYPROOF_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("skipped: KEYPROOF_SKIP_BROWSER=1");
        return;
    }
    let Some(browser) = chromium() else {
        panic!(
            "chromium not found: run scripts/test (it installs it), set KEYPROOF_CHROMIUM, or KEYPROOF_SKIP_BROWSER=1"
        );
    };
    let dir = TestDir::new();
    let out = dir.path("demo");
    demo(&out, "html");
    let page = out.join("report.html");
    let profile = dir.path("profile");
    let result = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&result.stdout);
    let log = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "chromium failed: {log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    // The filter script ran and counted every row.
    let rows = dom.matches("<tr data-status=").count();
    assert!(rows > 100, "findings table has {rows} rows");
    assert!(
        dom.contains(&format!("{rows} of {rows} findings")),
        "filter script did not run"
    );
}
