//! `findings.json`: the whole report model, for machines.

use super::{Report, ReportError};

/// Pretty JSON of the report model with a trailing newline.
pub fn render(report: &Report) -> Result<Vec<u8>, ReportError> {
    let mut out = serde_json::to_vec_pretty(report)?;
    out.push(b'\n');
    Ok(out)
}
