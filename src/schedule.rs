//! Scheduled runs: when the next run is due, whether a missed one must be caught up, the lock
//! that keeps two runs from overlapping, and retention of old run directories.
//!
//! The CLI's `keyproof schedule` loop uses these; each run is a child `keyproof run` (or
//! `demo`) process, so a failed run cannot take the scheduler down.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The lock file in the runs directory; held (advisory lock) while a run is in progress.
pub const LOCK_FILE: &str = ".keyproof-run.lock";

/// `[schedule]` in keyproof.toml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Cron expression with seconds, in UTC: `sec min hour day-of-month month day-of-week`.
    /// Default `0 0 6 1 * *` (06:00 UTC on the first day of every month).
    pub cron: String,
    /// `run` (collect from AWS) or `demo` (the sample estate, to try the scheduler).
    pub job: String,
    /// Extra arguments for the job, e.g. `["--regions", "all"]`.
    pub args: Vec<String>,
    /// Where run directories (and history.sqlite) go. Default `reports`.
    pub runs_dir: String,
    /// Months of runs kept; older sealed runs are deleted after a run. 0 keeps everything.
    /// Default 13 (PCI DSS 10.5.1: a year of history, plus a month of margin).
    pub keep_months: u32,
    /// Ed25519 key that signs each run's manifest. Default: none (unsigned).
    pub sign_key: Option<String>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: "0 0 6 1 * *".into(),
            job: "run".into(),
            args: Vec::new(),
            runs_dir: "reports".into(),
            keep_months: 13,
            sign_key: None,
        }
    }
}

/// Why the schedule cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "schedule.cron `{expr}` is not a cron expression with seconds ({message}); e.g. \"0 0 6 1 * *\" is 06:00 UTC on the 1st of each month"
    )]
    Cron { expr: String, message: String },
    #[error("schedule.job must be \"run\" or \"demo\", not `{0}`")]
    Job(String),
    #[error("cannot use the lock file {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: String,
        source: std::io::Error,
    },
}

/// A parsed schedule.
pub struct Schedule {
    cron: cron::Schedule,
}

impl Schedule {
    pub fn parse(config: &ScheduleConfig) -> Result<Schedule, ScheduleError> {
        if config.job != "run" && config.job != "demo" {
            return Err(ScheduleError::Job(config.job.clone()));
        }
        let cron = cron::Schedule::from_str(&config.cron).map_err(|e| ScheduleError::Cron {
            expr: config.cron.clone(),
            message: e.to_string(),
        })?;
        Ok(Schedule { cron })
    }

    /// The first fire time after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.after(&t).next()
    }

    /// The last fire time at or before `t`.
    pub fn previous_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.after(&t).next_back()
    }

    /// Whether the last scheduled time before `now` passed without a run since: then one
    /// catch-up run is due (one, however many were missed).
    pub fn missed(&self, last_run: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        self.previous_before(now)
            .is_some_and(|due| last_run.is_none_or(|last| last < due))
    }
}

/// The lock file in the runs directory held while a run is sealed: from the moment its seal
/// time is taken until its manifest is written, so that runs sealed at once into one directory
/// link one after the other and never both to the same predecessor (which would fork the chain).
/// It is not the run lock: the scheduler holds that one while the run it started seals.
pub const SEAL_LOCK_FILE: &str = ".keyproof-seal.lock";

/// Held while a run is in progress (or sealed); released when dropped (or when the process
/// dies).
pub struct RunLock {
    _file: File,
}

/// Opens (creating) the lock file `name` in `runs_dir`.
fn lock_file(
    runs_dir: &Path,
    name: &str,
) -> Result<(File, impl Fn(std::io::Error) -> ScheduleError), ScheduleError> {
    let path = runs_dir.join(name);
    let err = move |source| ScheduleError::Lock {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(runs_dir).map_err(&err)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(runs_dir.join(name))
        .map_err(&err)?;
    Ok((file, err))
}

/// Takes the seal lock of `runs_dir`, waiting while another run is being sealed.
pub fn seal_lock(runs_dir: &Path) -> Result<RunLock, ScheduleError> {
    let (file, err) = lock_file(runs_dir, SEAL_LOCK_FILE)?;
    file.lock().map_err(err)?;
    Ok(RunLock { _file: file })
}

/// Takes the run lock of `runs_dir`, or `None` when another run holds it.
pub fn try_lock(runs_dir: &Path) -> Result<Option<RunLock>, ScheduleError> {
    let (file, err) = lock_file(runs_dir, LOCK_FILE)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(RunLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(err(e)),
    }
}

/// A run directory retention would delete.
#[derive(Debug, Clone, PartialEq)]
pub struct Expired {
    pub dir: PathBuf,
    pub sealed_at: DateTime<Utc>,
    /// The kept run whose chain link points at this one (its chain will end there).
    pub needed_by: Option<String>,
}

/// Sealed runs in `runs_dir` sealed more than `keep_months` months before `now`.
pub fn expired(runs_dir: &Path, keep_months: u32, now: DateTime<Utc>) -> Vec<Expired> {
    if keep_months == 0 {
        return Vec::new();
    }
    let Some(cutoff) = now.checked_sub_months(Months::new(keep_months)) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let manifests: Vec<(PathBuf, crate::bundle::Manifest)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter_map(|p| {
            let (m, _, _) = crate::bundle::read_manifest(&p)?;
            Some((p, m))
        })
        .collect();
    let mut out: Vec<Expired> = manifests
        .iter()
        .filter(|(_, m)| m.sealed_at < cutoff)
        .map(|(dir, m)| Expired {
            dir: dir.clone(),
            sealed_at: m.sealed_at,
            needed_by: manifests
                .iter()
                .find(|(_, k)| {
                    k.sealed_at >= cutoff
                        && k.previous.as_ref().is_some_and(|p| p.run_id == m.run_id)
                })
                .map(|(_, k)| k.run_id.clone()),
        })
        .collect();
    out.sort_by_key(|e| e.sealed_at);
    out
}

/// Deletes the expired run directories.
pub fn remove(expired: &[Expired]) -> Result<(), ScheduleError> {
    for e in expired {
        std::fs::remove_dir_all(&e.dir).map_err(|source| ScheduleError::Remove {
            path: e.dir.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn monthly_schedule_catches_up_once_after_a_missed_run() {
        let s = Schedule::parse(&ScheduleConfig::default()).expect("default parses");
        let now = at("2026-11-29T10:00:00Z");
        assert_eq!(s.previous_before(now), Some(at("2026-11-01T06:00:00Z")));
        assert_eq!(s.next_after(now), Some(at("2026-12-01T06:00:00Z")));
        // Last run in October: November's was missed.
        assert!(s.missed(Some(at("2026-10-01T06:01:00Z")), now));
        // After the catch-up run, nothing more is due until December.
        assert!(!s.missed(Some(at("2026-11-29T10:00:05Z")), now));
        assert!(s.missed(None, now));
    }

    #[test]
    fn bad_cron_and_job_are_explained() {
        let bad = ScheduleConfig {
            cron: "every month".into(),
            ..ScheduleConfig::default()
        };
        assert!(matches!(
            Schedule::parse(&bad),
            Err(ScheduleError::Cron { .. })
        ));
        let job = ScheduleConfig {
            job: "rm".into(),
            ..ScheduleConfig::default()
        };
        assert!(matches!(Schedule::parse(&job), Err(ScheduleError::Job(_))));
    }

    #[test]
    fn retention_names_old_runs_and_the_chain_that_ends_there() {
        let root = tempfile::tempdir().expect("tempdir");
        for (name, sealed) in [
            ("2025-09", "2025-09-01T06:00:00Z"),
            ("2025-10", "2025-10-01T06:00:00Z"),
            ("2026-11", "2026-11-01T06:00:00Z"),
        ] {
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir).expect("dir");
            std::fs::write(dir.join("findings.json"), "{}").expect("file");
            crate::bundle::seal(
                &dir,
                crate::bundle::SealInput {
                    snapshot_sha256: "s",
                    controls_digest: "c",
                    config_sha256: "k",
                    framework: "pci-dss-4.0.1",
                    scope: crate::bundle::ManifestScope {
                        accounts: vec![],
                        regions: vec![],
                    },
                    sealed_at: at(sealed),
                    signer: None,
                },
            )
            .expect("seal");
        }
        let now = at("2026-11-29T10:00:00Z");
        let names = |list: &[Expired]| -> Vec<String> {
            list.iter()
                .map(|e| {
                    e.dir
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        // 14 months back is 2025-09-29: only 2025-09 goes, and 2025-10's chain ends there.
        let old = expired(root.path(), 14, now);
        assert_eq!(names(&old), ["2025-09"]);
        assert_eq!(old[0].needed_by.as_deref(), Some("2025-10"));
        // 13 months: both 2025 runs go; only the kept 2026-11 run's link matters.
        let old = expired(root.path(), 13, now);
        assert_eq!(names(&old), ["2025-09", "2025-10"]);
        assert_eq!(old[0].needed_by, None);
        assert_eq!(old[1].needed_by.as_deref(), Some("2026-11"));
        assert!(expired(root.path(), 0, now).is_empty());
    }

    #[test]
    fn a_seal_waits_for_the_seal_before_it_and_not_for_the_run_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The scheduler's run lock does not hold up the seal of the run it started.
        let _run = try_lock(dir.path()).expect("lock").expect("free");
        let held = seal_lock(dir.path()).expect("seal lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let lock = seal_lock(&path).expect("seal lock");
            tx.send(()).expect("send");
            drop(lock);
        });
        // While one seal holds the lock, the next one waits...
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err()
        );
        drop(held);
        // ...and goes on as soon as it is released.
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second seal went on");
        waiter.join().expect("thread");
    }

    #[test]
    fn the_lock_keeps_a_second_run_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = try_lock(dir.path()).expect("lock").expect("free");
        assert!(try_lock(dir.path()).expect("lock").is_none());
        drop(first);
        assert!(try_lock(dir.path()).expect("lock").is_some());
    }
}
