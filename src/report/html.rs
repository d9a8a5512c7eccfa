//! `report.html`: one self-contained page for people, rendered with Tera.
//!
//! The built-in template is `templates/report.html.tera`, compiled into the binary; a file of
//! the same name in `--templates DIR` overrides it. Autoescaping is on for the template whatever
//! its name, so every string from AWS (descriptions, tags, aliases, policies) is escaped; the
//! page loads nothing from outside itself; its Content-Security-Policy allows only the page's own
//! inline script, pinned by hash, which only reads `data-` attributes.
//! NOT_APPLICABLE findings are counted in the summaries but not listed, and PASS findings are
//! listed up to [`MAX_PASS_ROWS`] (CSV and JSON list everything).

use super::{Report, ReportError, Templates};
use crate::rules::Status;

/// Most PASS findings listed row by row in the page.
pub const MAX_PASS_ROWS: usize = 5_000;

/// The built-in template.
pub const BUILTIN: &str = include_str!("../../templates/report.html.tera");

/// Renders the HTML report.
pub fn render(report: &Report, templates: &Templates) -> Result<Vec<u8>, ReportError> {
    let source = templates.load("report.html.tera", BUILTIN)?;
    let mut tera = tera::Tera::default();
    // Escape by default regardless of the file name (Tera's default list misses `.html.tera`).
    tera.autoescape_on(vec!["report.html"]);
    tera.add_raw_template("report.html", &source)
        .map_err(|e| ReportError::Html(error_chain(&e)))?;
    // NOT_APPLICABLE rows are counted in the summaries but left out of the page: they are
    // noise for a reader and, on a large estate, most of its size. PASS rows are listed up to
    // MAX_PASS_ROWS, so the page stays usable in a browser on a large estate. FAIL, ERROR and
    // MANUAL rows are always all there; CSV and JSON list everything.
    let mut pass_rows = 0usize;
    let findings: Vec<&crate::report::model::ReportFinding> = report
        .findings
        .iter()
        .filter(|f| match f.status {
            Status::NotApplicable => false,
            Status::Pass => {
                pass_rows += 1;
                pass_rows <= MAX_PASS_ROWS
            }
            _ => true,
        })
        .collect();
    let pass_omitted = report.totals.pass.saturating_sub(MAX_PASS_ROWS);
    let mut ctx = tera::Context::new();
    ctx.insert("meta", &report.meta);
    ctx.insert("totals", &report.totals);
    ctx.insert("requirements", &report.requirements);
    ctx.insert("controls", &report.controls);
    ctx.insert("findings", &findings);
    ctx.insert("pass_omitted", &pass_omitted);
    ctx.insert("gaps", &report.gaps);
    ctx.insert("key_inventory", &report.key_inventory);
    ctx.insert("coverage", &report.coverage);
    ctx.insert("history", &report.history);
    ctx.insert("kms_activity", &report.kms_activity);
    let html = tera
        .render("report.html", &ctx)
        .map_err(|e| ReportError::Html(error_chain(&e)))?;
    Ok(pin_script_hash(html).into_bytes())
}

/// Replaces the `'keyproof-script-hash'` placeholder of the page's Content-Security-Policy with
/// the SHA-256 of each inline script the page holds, so the browser runs exactly those scripts
/// and nothing else that might ever be smuggled into the page.
fn pin_script_hash(html: String) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    const PLACEHOLDER: &str = "'keyproof-script-hash'";
    if !html.contains(PLACEHOLDER) {
        return html;
    }
    let mut hashes = Vec::new();
    let mut rest = html.as_str();
    while let Some(start) = rest.find("<script>") {
        let body = &rest[start + "<script>".len()..];
        let Some(end) = body.find("</script>") else {
            break;
        };
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &body[end..];
    }
    let policy = if hashes.is_empty() {
        "'none'".to_string()
    } else {
        hashes.join(" ")
    };
    html.replacen(PLACEHOLDER, &policy, 1)
}

/// Tera nests the useful message in the error's sources.
fn error_chain(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
