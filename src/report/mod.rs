//! The report stage: one model built from snapshot + findings, rendered to CSV, JSON, HTML and
//! PDF. Every renderer is a pure function of the model (and, for HTML/PDF, a template), so the
//! same snapshot gives the same bytes.

pub mod activity;
pub mod chart;
pub mod csv;
pub mod html;
pub mod json;
pub mod model;
pub mod pdf;
mod typst_engine;

pub use model::{Report, build_report};

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    Csv,
    Json,
    Html,
    Pdf,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Pdf, Format::Html, Format::Csv, Format::Json];

    /// The file each format is written to.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Csv => "findings.csv",
            Format::Json => "findings.json",
            Format::Html => "report.html",
            Format::Pdf => "report.pdf",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
            Format::Pdf => "pdf",
        })
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "html" => Ok(Format::Html),
            "pdf" => Ok(Format::Pdf),
            other => Err(format!(
                "unknown report format `{other}` (use pdf, html, csv, json)"
            )),
        }
    }
}

/// Why a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("CSV report: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("JSON report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("HTML report: {0}")]
    Html(String),
    #[error("PDF report: {0}")]
    Pdf(#[from] typst_engine::PdfError),
    #[error("cannot read template {path}: {source}")]
    Template {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where templates come from: the built-in ones, overridden file by file from a directory.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    pub dir: Option<PathBuf>,
}

impl Templates {
    /// The template `name`: from the override directory if it holds one, else built in.
    pub fn load(&self, name: &str, builtin: &'static str) -> Result<String, ReportError> {
        if let Some(dir) = &self.dir {
            let path = dir.join(name);
            if path.exists() {
                return std::fs::read_to_string(&path)
                    .map_err(|source| ReportError::Template { path, source });
            }
        }
        Ok(builtin.to_string())
    }
}

/// Renders one format.
pub fn render(
    report: &Report,
    format: Format,
    templates: &Templates,
) -> Result<Vec<u8>, ReportError> {
    match format {
        Format::Csv => csv::render(report),
        Format::Json => json::render(report),
        Format::Html => html::render(report, templates),
        Format::Pdf => pdf::render(report, templates),
    }
}

/// Renders `formats` into `dir` (atomically, file by file) and returns the paths written.
pub fn write_reports(
    report: &Report,
    formats: &[Format],
    dir: &Path,
    templates: &Templates,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    for &format in formats {
        let bytes = render(report, format, templates)?;
        let path = dir.join(format.file_name());
        crate::fsutil::write_atomic(&path, &bytes).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
        // The KMS activity's detections, for engineers' spreadsheets.
        if format == Format::Csv
            && let Some(anomalies) = &report.kms_anomalies
        {
            let bytes = crate::logs::anomalies_csv(anomalies)?;
            let path = dir.join(ANOMALIES_CSV);
            crate::fsutil::write_atomic(&path, &bytes).map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The detections of the KMS activity analysis, one row each (written with the CSV format).
pub const ANOMALIES_CSV: &str = "kms-anomalies.csv";
