//! `report.pdf`: the auditor's document, typeset with typst used as a library.
//!
//! The template is `templates/report.typ` (built in; `--templates DIR` overrides it). It reads
//! the report model from the virtual file `data.json`, so strings from AWS reach typst only as
//! data and are never evaluated as markup. Fonts are the ones embedded in the binary (from
//! typst-assets), never the host's, and the document date and identifier are taken from the
//! snapshot, so the same snapshot gives byte-identical PDF/A-2b output.

use super::typst_engine::{PdfInput, render_pdf, sanitize_text};
use super::{Report, ReportError, Templates};

/// The built-in template.
pub const BUILTIN: &str = include_str!("../../templates/report.typ");

/// Renders the PDF report.
pub fn render(report: &Report, templates: &Templates) -> Result<Vec<u8>, ReportError> {
    let source = templates.load("report.typ", BUILTIN)?;
    // PDF/A needs a glyph for every character, and the embedded fonts cannot draw everything an
    // AWS description or tag may hold (control characters, CJK, emoji): such characters are
    // shown as `<U+XXXX>` instead of failing the whole export.
    // The PDF lists only FAIL and ERROR findings (the totals come from the summaries), so only
    // those travel to typst: on a large estate the others are most of the data.
    let mut value = serde_json::to_value(report)?;
    if let Some(serde_json::Value::Array(findings)) = value.get_mut("findings") {
        findings.retain(|f| {
            matches!(
                f.get("status").and_then(|s| s.as_str()),
                Some("FAIL" | "ERROR")
            )
        });
    }
    sanitize(&mut value);
    let data = serde_json::to_vec(&value)?;
    let files: [(&str, &[u8]); 1] = [("data.json", &data)];
    Ok(render_pdf(&PdfInput {
        template: &source,
        files: &files,
        timestamp: report.meta.collected_at,
        ident: &report.meta.snapshot_sha256,
    })?)
}

/// Replaces, in every string of `v`, the characters the embedded fonts cannot draw.
fn sanitize(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = sanitize_text(s) {
                *s = clean;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(sanitize),
        serde_json::Value::Object(m) => m.values_mut().for_each(sanitize),
        _ => {}
    }
}
