//! `findings.csv`: one row per (control, resource), for spreadsheets and scripts.
//!
//! The header row is exactly
//! `control_id,title,status,severity,pci_dss_v4,pci_dss_v321,account,region,resource_type,resource_id,resource_arn,evidence,remediation`
//! (requirements joined with `;`). It is preceded by `#` comment lines naming the snapshot hash,
//! tool version, scope and collection time (read them with a CSV reader's comment option).
//! Cells a spreadsheet would run as a formula are defused with a leading `'`.

use super::{Report, ReportError};

/// The header, in order.
pub const COLUMNS: [&str; 13] = [
    "control_id",
    "title",
    "status",
    "severity",
    "pci_dss_v4",
    "pci_dss_v321",
    "account",
    "region",
    "resource_type",
    "resource_id",
    "resource_arn",
    "evidence",
    "remediation",
];

/// Makes a cell safe to open in a spreadsheet: a value starting with `=`, `+`, `-`, `@`, a tab
/// or a carriage return is prefixed with `'` so it is shown as text, never evaluated.
pub fn defuse(cell: &str) -> String {
    match cell.chars().next() {
        Some(
            '=' | '+' | '-' | '@' | '\t' | '\r' | '\u{ff1d}' | '\u{ff0b}' | '\u{ff0d}' | '\u{ff20}',
        ) => {
            format!("'{cell}")
        }
        _ => cell.to_string(),
    }
}

/// Single-line text for a comment row (no line breaks can escape the comment).
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Renders the CSV.
pub fn render(report: &Report) -> Result<Vec<u8>, ReportError> {
    let m = &report.meta;
    let mut out = Vec::new();
    let accounts: Vec<&str> = m.accounts.iter().map(|a| a.account_id.as_str()).collect();
    let header = [
        format!(
            "# keyproof {} findings ({})",
            m.tool_version, m.framework_label
        ),
        format!("# snapshot_sha256: {}", m.snapshot_sha256),
        format!(
            "# collected_at: {}",
            m.collected_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        format!(
            "# scope: accounts {} ; regions {}",
            accounts.join(" "),
            m.regions.join(" ")
        ),
    ];
    for line in header {
        out.extend_from_slice(one_line(&line).as_bytes());
        out.push(b'\n');
    }
    if let Some(notice) = &m.source_notice {
        out.extend_from_slice(format!("# {}\n", one_line(notice)).as_bytes());
    }
    let mut w = ::csv::WriterBuilder::new().from_writer(out);
    w.write_record(COLUMNS)?;
    for f in &report.findings {
        let row = [
            f.control_id.as_str(),
            f.title.as_str(),
            f.status.as_str(),
            &f.severity.to_string(),
            &f.pci_dss_v4.join(";"),
            &f.pci_dss_v321.join(";"),
            f.account_id.as_str(),
            f.region.as_str(),
            f.resource_type.as_str(),
            f.resource_id.as_str(),
            f.resource_arn.as_str(),
            &if f.detail.is_empty() || f.status == crate::rules::Status::NotApplicable {
                f.evidence_text.clone()
            } else if f.evidence_text.is_empty() {
                f.detail.clone()
            } else {
                format!("{} ({})", f.evidence_text, f.detail)
            },
            &match (&f.status, &f.aws_cli) {
                (crate::rules::Status::Fail, Some(cli)) => format!("{} CLI: {}", f.remediation, cli),
                (crate::rules::Status::Fail, None) => f.remediation.clone(),
                (crate::rules::Status::Error, _) => {
                    "Restore the missing evidence named in the evidence column (permissions, throttling, API availability) and collect again.".to_string()
                }
                _ => String::new(),
            },
        ];
        w.write_record(row.iter().map(|c| defuse(c)))?;
    }
    w.into_inner()
        .map_err(|e| ReportError::Csv(::csv::Error::from(e.into_error())))
}

#[cfg(test)]
mod tests {
    use super::defuse;

    #[test]
    fn formulas_are_defused() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "＝1",
        ] {
            let d = defuse(bad);
            assert!(d.starts_with('\''), "{bad} -> {d}");
        }
        assert_eq!(defuse("alias/prod"), "alias/prod");
        assert_eq!(defuse(""), "");
    }
}
