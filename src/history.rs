//! Run history: an SQLite index (`history.sqlite`) beside the run directories, one row per run
//! and per finding, for listing runs and comparing them.
//!
//! The run directories are the truth and the database only an index of them: each sealed run
//! is added from its `manifest.json` and `findings.json`, and `rebuild` re-creates the whole
//! database from the directories.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The database's file name in the runs directory.
pub const DATABASE: &str = "history.sqlite";

/// Why the history could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history database {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("no run `{0}` in the history; `keyproof history` lists the runs")]
    UnknownRun(String),
    #[error("the history has {0} run(s); a diff needs two")]
    TooFewRuns(usize),
}

/// One run, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub sealed_at: DateTime<Utc>,
    pub snapshot_sha256: String,
    pub manifest_sha256: String,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub counts: BTreeMap<String, u64>,
    /// Per v4.0.1 requirement: counts by status.
    pub by_requirement: BTreeMap<String, BTreeMap<String, u64>>,
}

/// One finding's identity and status in a run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FindingKey {
    pub control_id: String,
    pub account_id: String,
    pub region: String,
    pub resource_id: String,
}

/// A failing finding in the diff, with how many consecutive runs it has failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffItem {
    #[serde(flatten)]
    pub key: FindingKey,
    pub status: String,
    pub severity: String,
    pub consecutive_runs: u32,
}

/// What changed between two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub from: String,
    pub to: String,
    /// FAIL or ERROR in `to`, not in `from`.
    pub newly_failing: Vec<DiffItem>,
    /// FAIL or ERROR in `from`, PASS or NOT_APPLICABLE in `to`.
    pub fixed: Vec<DiffItem>,
    /// FAIL or ERROR in both.
    pub still_failing: Vec<DiffItem>,
    /// `resource_type/account/region/resource_id` present in `to` only.
    pub new_resources: Vec<String>,
    /// Present in `from` only.
    pub vanished_resources: Vec<String>,
}

/// What `rebuild` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    /// Runs indexed.
    pub indexed: Vec<String>,
    /// Sealed run directories that could not be indexed, with why.
    pub skipped: Vec<(String, String)>,
}

/// The history database of a runs directory.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

/// The parts of `findings.json` the history keeps.
#[derive(Deserialize)]
struct ReportFile {
    findings: Vec<ReportFinding>,
}

#[derive(Deserialize)]
struct ReportFinding {
    control_id: String,
    status: String,
    severity: String,
    pci_dss_v4: Vec<String>,
    account_id: String,
    region: String,
    resource_type: String,
    resource_id: String,
}

fn failing(status: &str) -> bool {
    status == "FAIL" || status == "ERROR"
}

impl History {
    /// Opens (creating if needed) `runs_dir/history.sqlite`.
    pub fn open(runs_dir: &Path) -> Result<History, HistoryError> {
        let path = runs_dir.join(DATABASE);
        let db = |source| HistoryError::Db {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(runs_dir).map_err(|e| HistoryError::Read {
            path: runs_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let conn = Connection::open(&path).map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY,
                sealed_at TEXT NOT NULL,
                snapshot_sha256 TEXT NOT NULL,
                manifest_sha256 TEXT NOT NULL,
                accounts TEXT NOT NULL,
                regions TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS findings (
                run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
                control_id TEXT NOT NULL,
                account_id TEXT NOT NULL,
                region TEXT NOT NULL,
                resource_type TEXT NOT NULL,
                resource_id TEXT NOT NULL,
                status TEXT NOT NULL,
                severity TEXT NOT NULL,
                requirements TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS findings_run ON findings(run_id);
            PRAGMA foreign_keys = ON;",
        )
        .map_err(db)?;
        Ok(History { conn, path })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        move |source| HistoryError::Db {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Adds (or replaces) the sealed run in `run_dir`.
    pub fn index_run(&mut self, run_dir: &Path) -> Result<(), HistoryError> {
        let read = |name: &str| {
            let path = run_dir.join(name);
            std::fs::read(&path).map_err(|e| HistoryError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        };
        let manifest_bytes = read(crate::bundle::MANIFEST)?;
        let manifest: crate::bundle::Manifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| HistoryError::Read {
                path: run_dir.join(crate::bundle::MANIFEST).display().to_string(),
                message: e.to_string(),
            })?;
        let report: ReportFile =
            serde_json::from_slice(&read("findings.json")?).map_err(|e| HistoryError::Read {
                path: run_dir.join("findings.json").display().to_string(),
                message: format!("{e} (the history needs the json report format)"),
            })?;
        let manifest_sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&manifest_bytes))
        };
        let run_id = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(manifest.run_id.clone());
        let db = self.db();
        let tx = self.conn.unchecked_transaction().map_err(&db)?;
        tx.execute("DELETE FROM findings WHERE run_id = ?1", params![run_id])
            .map_err(&db)?;
        tx.execute(
            "INSERT OR REPLACE INTO runs VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                run_id,
                manifest.sealed_at.to_rfc3339(),
                manifest.snapshot_sha256,
                manifest_sha,
                manifest.scope.accounts.join(","),
                manifest.scope.regions.join(","),
            ],
        )
        .map_err(&db)?;
        {
            let mut insert = tx
                .prepare("INSERT INTO findings VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
                .map_err(&db)?;
            for f in &report.findings {
                insert
                    .execute(params![
                        run_id,
                        f.control_id,
                        f.account_id,
                        f.region,
                        f.resource_type,
                        f.resource_id,
                        f.status,
                        f.severity,
                        f.pci_dss_v4.join(","),
                    ])
                    .map_err(&db)?;
            }
        }
        tx.commit().map_err(&db)
    }

    /// Empties the database and indexes every sealed run directory under `runs_dir` that has a
    /// json report. Returns the runs indexed and the directories skipped with why.
    pub fn rebuild(&mut self, runs_dir: &Path) -> Result<Rebuilt, HistoryError> {
        let db = self.db();
        self.conn
            .execute_batch("DELETE FROM findings; DELETE FROM runs;")
            .map_err(db)?;
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(runs_dir)
            .map_err(|e| HistoryError::Read {
                path: runs_dir.display().to_string(),
                message: e.to_string(),
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join(crate::bundle::MANIFEST).is_file())
            .collect();
        dirs.sort();
        let (mut done, mut skipped) = (Vec::new(), Vec::new());
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match self.index_run(&dir) {
                Ok(()) => done.push(name),
                Err(e) => skipped.push((name, e.to_string())),
            }
        }
        Ok(Rebuilt {
            indexed: done,
            skipped,
        })
    }

    /// Every run, oldest first, with its counts.
    pub fn runs(&self) -> Result<Vec<RunRow>, HistoryError> {
        let db = self.db();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, sealed_at, snapshot_sha256, manifest_sha256, accounts, regions
                 FROM runs ORDER BY sealed_at, run_id",
            )
            .map_err(&db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(&db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&db)?;
        let split = |s: &str| -> Vec<String> {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        // Every run's counts in one pass over the findings, grouped by the database.
        let mut tallies: BTreeMap<String, Vec<(String, String, u64)>> = BTreeMap::new();
        for (run_id, status, reqs, n) in self.status_counts()? {
            tallies.entry(run_id).or_default().push((status, reqs, n));
        }
        let mut out = Vec::new();
        for (run_id, sealed_at, snap, man, accounts, regions) in rows {
            let mut counts = BTreeMap::new();
            let mut by_requirement: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for (status, reqs, n) in tallies.remove(&run_id).unwrap_or_default() {
                *counts.entry(status.clone()).or_default() += n;
                for r in split(&reqs) {
                    *by_requirement
                        .entry(r)
                        .or_default()
                        .entry(status.clone())
                        .or_default() += n;
                }
            }
            out.push(RunRow {
                run_id,
                sealed_at: DateTime::parse_from_rfc3339(&sealed_at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_default(),
                snapshot_sha256: snap,
                manifest_sha256: man,
                accounts: split(&accounts),
                regions: split(&regions),
                counts,
                by_requirement,
            });
        }
        Ok(out)
    }

    /// Findings per run, status and requirement list.
    fn status_counts(&self) -> Result<Vec<(String, String, String, u64)>, HistoryError> {
        let db = self.db();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, status, requirements, COUNT(*) FROM findings
                 GROUP BY run_id, status, requirements",
            )
            .map_err(&db)?;
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)?.max(0) as u64,
            ))
        })
        .map_err(&db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(&db)
    }

    /// Findings of a run by identity.
    fn findings(&self, run_id: &str) -> Result<Findings, HistoryError> {
        let db = self.db();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT control_id, account_id, region, resource_id, status, severity,
                        resource_type, requirements
                 FROM findings WHERE run_id = ?1",
            )
            .map_err(&db)?;
        let rows = stmt
            .query_map(params![run_id], |r| {
                let key = FindingKey {
                    control_id: r.get(0)?,
                    account_id: r.get(1)?,
                    region: r.get(2)?,
                    resource_id: r.get(3)?,
                };
                let reqs: String = r.get(7)?;
                Ok((
                    key,
                    RunFinding {
                        status: r.get(4)?,
                        severity: r.get(5)?,
                        resource_type: r.get(6)?,
                        requirements: reqs
                            .split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_string)
                            .collect(),
                    },
                ))
            })
            .map_err(&db)?
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map_err(&db)?;
        Ok(rows)
    }

    /// What a report of a new run shows about the runs before it: the difference from the last
    /// one and the trend over up to 12 runs (the new one included). `None` without earlier runs.
    pub fn section_for(
        &self,
        run_id: &str,
        sealed_at: DateTime<Utc>,
        current: &Findings,
    ) -> Result<Option<HistorySection>, HistoryError> {
        let earlier: Vec<RunRow> = self
            .runs()?
            .into_iter()
            .filter(|r| r.run_id != run_id && r.sealed_at < sealed_at)
            .collect();
        let Some(last) = earlier.last() else {
            return Ok(None);
        };
        let mut before = Vec::new();
        for r in earlier.iter().rev() {
            before.push(self.findings(&r.run_id)?);
        }
        let diff = compare(&last.run_id, run_id, &before[0], current, &before[1..]);
        let mut points: Vec<TrendPoint> = earlier
            .iter()
            .rev()
            .take(11)
            .rev()
            .map(|r| TrendPoint::of(&r.run_id, r.sealed_at, &r.counts, &r.by_requirement))
            .collect();
        let (counts, by_req) = tally(current);
        points.push(TrendPoint::of(run_id, sealed_at, &counts, &by_req));
        let mut reqs: BTreeSet<String> = BTreeSet::new();
        for p in &points {
            reqs.extend(p.failing_by_requirement.keys().cloned());
        }
        let mut requirements: Vec<RequirementTrend> = reqs
            .into_iter()
            .map(|id| RequirementTrend {
                failing: points
                    .iter()
                    .map(|p| p.failing_by_requirement.get(&id).copied().unwrap_or(0))
                    .collect(),
                id,
            })
            .collect();
        requirements.sort_by_key(|r| crate::rules::pci::requirement_sort_key(&r.id));
        let chart_svg = trend_svg(&points);
        Ok(Some(HistorySection {
            previous_run_id: last.run_id.clone(),
            previous_sealed_at: last.sealed_at,
            still_failing: diff.still_failing.len(),
            newly_failing: diff.newly_failing,
            fixed: diff.fixed,
            new_resources: diff.new_resources.len(),
            vanished_resources: diff.vanished_resources.len(),
            runs: points,
            requirements,
            chart_svg,
        }))
    }

    /// Compares two runs (default: the last two).
    pub fn diff(&self, from: Option<&str>, to: Option<&str>) -> Result<Diff, HistoryError> {
        let runs = self.runs()?;
        let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        let pick = |wanted: Option<&str>, default_back: usize| -> Result<String, HistoryError> {
            match wanted {
                Some(id) => ids
                    .iter()
                    .find(|r| **r == id)
                    .map(|r| r.to_string())
                    .ok_or_else(|| HistoryError::UnknownRun(id.to_string())),
                None => ids
                    .len()
                    .checked_sub(default_back)
                    .and_then(|i| ids.get(i))
                    .map(|r| r.to_string())
                    .ok_or(HistoryError::TooFewRuns(ids.len())),
            }
        };
        let to = pick(to, 1)?;
        let from = match from {
            Some(f) => pick(Some(f), 0)?,
            None => {
                // The run before `to`.
                let pos = ids.iter().position(|r| *r == to).unwrap_or(0);
                pos.checked_sub(1)
                    .and_then(|i| ids.get(i))
                    .map(|r| r.to_string())
                    .ok_or(HistoryError::TooFewRuns(ids.len()))?
            }
        };
        let a = self.findings(&from)?;
        let b = self.findings(&to)?;
        // Earlier runs, newest first, for the length of failing streaks.
        let upto = ids.iter().position(|r| *r == to).unwrap_or(0);
        let from_pos = ids.iter().position(|r| *r == from).unwrap_or(0);
        let mut earlier = Vec::new();
        for id in ids[..upto.min(from_pos)].iter().rev() {
            earlier.push(self.findings(id)?);
        }
        Ok(compare(&from, &to, &a, &b, &earlier))
    }
}

/// A run's findings by identity.
pub type Findings = BTreeMap<FindingKey, RunFinding>;

/// A finding's outcome in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFinding {
    pub status: String,
    pub severity: String,
    pub resource_type: String,
    pub requirements: Vec<String>,
}

/// Compares run `b` with run `a`; `earlier` are the runs before `a`, newest first.
fn compare(from: &str, to: &str, a: &Findings, b: &Findings, earlier: &[Findings]) -> Diff {
    let streak = |key: &FindingKey| -> u32 {
        // `b` and `a` fail; count further back while it keeps failing.
        2 + earlier
            .iter()
            .take_while(|f| f.get(key).is_some_and(|x| failing(&x.status)))
            .count() as u32
    };
    let item = |key: &FindingKey, f: &RunFinding, n: u32| DiffItem {
        key: key.clone(),
        status: f.status.clone(),
        severity: f.severity.clone(),
        consecutive_runs: n,
    };
    let (mut newly, mut fixed, mut still) = (Vec::new(), Vec::new(), Vec::new());
    for (key, f) in b {
        if failing(&f.status) {
            if a.get(key).is_some_and(|x| failing(&x.status)) {
                still.push(item(key, f, streak(key)));
            } else {
                newly.push(item(key, f, 1));
            }
        }
    }
    for (key, f) in a {
        if failing(&f.status)
            && b.get(key)
                .is_some_and(|x| x.status == "PASS" || x.status == "NOT_APPLICABLE")
        {
            fixed.push(item(key, f, 0));
        }
    }
    // Most severe first within each list.
    let rank = |s: &str| match s {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        _ => 3,
    };
    for list in [&mut newly, &mut fixed, &mut still] {
        list.sort_by(|x, y| {
            rank(&x.severity)
                .cmp(&rank(&y.severity))
                .then(x.key.cmp(&y.key))
        });
    }
    let resources = |m: &Findings| -> BTreeSet<String> {
        m.iter()
            .filter(|(k, f)| f.resource_type != "attestation" && k.resource_id != "*")
            .map(|(k, f)| {
                format!(
                    "{}/{}/{}/{}",
                    f.resource_type, k.account_id, k.region, k.resource_id
                )
            })
            .collect()
    };
    let (ra, rb) = (resources(a), resources(b));
    Diff {
        from: from.to_string(),
        to: to.to_string(),
        newly_failing: newly,
        fixed,
        still_failing: still,
        new_resources: rb.difference(&ra).cloned().collect(),
        vanished_resources: ra.difference(&rb).cloned().collect(),
    }
}

/// Counts by status, and by requirement and status.
fn tally(
    f: &Findings,
) -> (
    BTreeMap<String, u64>,
    BTreeMap<String, BTreeMap<String, u64>>,
) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_req: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for x in f.values() {
        *counts.entry(x.status.clone()).or_default() += 1;
        for r in &x.requirements {
            *by_req
                .entry(r.clone())
                .or_default()
                .entry(x.status.clone())
                .or_default() += 1;
        }
    }
    (counts, by_req)
}

/// What a report shows about earlier runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistorySection {
    pub previous_run_id: String,
    pub previous_sealed_at: DateTime<Utc>,
    /// Most severe first.
    pub newly_failing: Vec<DiffItem>,
    pub fixed: Vec<DiffItem>,
    pub still_failing: usize,
    pub new_resources: usize,
    pub vanished_resources: usize,
    /// Up to 12 runs, oldest first, this one last.
    pub runs: Vec<TrendPoint>,
    /// FAIL + ERROR per requirement over `runs`.
    pub requirements: Vec<RequirementTrend>,
    /// The trend as a self-contained SVG (no scripts, no external references; text escaped).
    pub chart_svg: String,
}

/// One run in the trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub date: String,
    pub fail: u64,
    pub error: u64,
    pub pass: u64,
    #[serde(skip)]
    failing_by_requirement: BTreeMap<String, u64>,
}

impl TrendPoint {
    fn of(
        run_id: &str,
        at: DateTime<Utc>,
        counts: &BTreeMap<String, u64>,
        by_req: &BTreeMap<String, BTreeMap<String, u64>>,
    ) -> TrendPoint {
        let n = |m: &BTreeMap<String, u64>, s: &str| m.get(s).copied().unwrap_or(0);
        TrendPoint {
            run_id: run_id.to_string(),
            date: at.format("%Y-%m-%d").to_string(),
            fail: n(counts, "FAIL"),
            error: n(counts, "ERROR"),
            pass: n(counts, "PASS"),
            failing_by_requirement: by_req
                .iter()
                .map(|(r, c)| (r.clone(), n(c, "FAIL") + n(c, "ERROR")))
                .filter(|(_, v)| *v > 0)
                .collect(),
        }
    }
}

/// FAIL + ERROR of one requirement over the trend's runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequirementTrend {
    pub id: String,
    pub failing: Vec<u64>,
}

/// Stacked bars of FAIL (red) and ERROR (orange) per run, labelled with the run dates.
fn trend_svg(points: &[TrendPoint]) -> String {
    let bars: Vec<crate::report::chart::Bar<'_>> = points
        .iter()
        .map(|p| crate::report::chart::Bar {
            label: &p.date,
            name: &p.run_id,
            bottom: p.fail,
            top: p.error,
        })
        .collect();
    crate::report::chart::stacked_bars(
        &bars,
        [("FAIL", "#c0392b"), ("ERROR", "#e67e22")],
        "FAIL and ERROR findings per run",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_chart_escapes_run_names_and_scales_to_the_worst_run() {
        let at = DateTime::parse_from_rfc3339("2026-11-01T06:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let counts =
            |f: u64, e: u64| BTreeMap::from([("FAIL".to_string(), f), ("ERROR".to_string(), e)]);
        let points = vec![
            TrendPoint::of(
                "<script>alert(1)</script>",
                at,
                &counts(4, 1),
                &BTreeMap::new(),
            ),
            TrendPoint::of("2026-11", at, &counts(10, 0), &BTreeMap::new()),
        ];
        let svg = trend_svg(&points);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        // The axis is labelled with the largest FAIL + ERROR.
        assert!(svg.contains(">10</text>"), "{svg}");
    }
}
