//! The PDF report as an auditor's tools see it: poppler's `pdfinfo` reads it, `pdftoppm`
//! renders every page, it declares PDF/A-2b, and the same input gives the same bytes.
//!
//! Needs Debian's `poppler-utils` (`scripts/test` installs it).

mod util;

use keyproof::snapshot::sample::sample_estate;
use keyproof::snapshot::write_snapshot;
use std::process::Command;
use util::{TestDir, demo, report};

#[test]
fn every_page_renders_and_the_pdf_declares_pdf_a_2b() {
    let dir = TestDir::new();
    let out = dir.path("demo");
    demo(&out, "pdf");
    let pdf = out.join("report.pdf");

    let info = Command::new("pdfinfo")
        .arg(&pdf)
        .output()
        .expect("pdfinfo (poppler-utils) runs");
    assert!(
        info.status.success(),
        "pdfinfo: {}",
        String::from_utf8_lossy(&info.stderr)
    );
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count in pdfinfo output: {info}"));
    assert!(
        pages >= 3,
        "a cover, a summary and findings at least: {pages} pages"
    );

    let png = dir.path("png");
    std::fs::create_dir_all(&png).expect("mkdir");
    let render = Command::new("pdftoppm")
        .args(["-png", "-r", "20"])
        .arg(&pdf)
        .arg(png.join("page"))
        .output()
        .expect("pdftoppm runs");
    assert!(
        render.status.success(),
        "pdftoppm: {}",
        String::from_utf8_lossy(&render.stderr)
    );
    let stderr = String::from_utf8_lossy(&render.stderr);
    assert!(
        !stderr.contains("Syntax Error"),
        "poppler complained: {stderr}"
    );
    let rendered = std::fs::read_dir(&png).expect("png dir").count();
    assert_eq!(rendered, pages, "every page rendered to an image");

    let bytes = std::fs::read(&pdf).expect("pdf");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("pdfaid:part>2<") || text.contains("pdfaid:part=\"2\""),
        "PDF/A part 2 declared"
    );
    assert!(
        text.contains("pdfaid:conformance>B<") || text.contains("pdfaid:conformance=\"B\""),
        "PDF/A conformance B declared"
    );
}

#[test]
fn same_snapshot_gives_identical_pdf_bytes() {
    let dir = TestDir::new();
    let snap = dir.path("s.json");
    write_snapshot(&sample_estate(), &snap).expect("write");
    let render = |name: &str| {
        let out = dir.path(name);
        report(&snap, "pdf", &out);
        std::fs::read(out.join("report.pdf")).expect("pdf")
    };
    let a = render("a");
    let b = render("b");
    assert!(a.starts_with(b"%PDF-"));
    assert!(
        a == b,
        "PDF bytes differ between two renders of the same snapshot"
    );
}

#[test]
fn characters_the_fonts_cannot_draw_do_not_break_the_pdf() {
    let dir = TestDir::new();
    let mut s = sample_estate();
    s.accounts[0].regions[0].kms_keys[0].description = "clé 🔑 漢字 \u{7} #panic(\"x\")".into();
    let snap = dir.path("s.json");
    write_snapshot(&s, &snap).expect("write");
    let out = dir.path("out");
    report(&snap, "pdf", &out);
    let text = Command::new("pdftotext")
        .arg(out.join("report.pdf"))
        .arg("-")
        .output()
        .expect("pdftotext runs");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("<U+1F511>"),
        "undrawable character shown as its code point"
    );
    assert!(text.contains("#panic"), "data is printed, not evaluated");
}
