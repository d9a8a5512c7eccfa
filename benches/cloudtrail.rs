//! CloudTrail log benchmark: how fast keyproof reads trail files, next to the decompression
//! floor. Prints figures; asserts nothing about speed.
//!
//! Run with `cargo bench --bench cloudtrail`. It generates realistic gzip CloudTrail files
//! (mixed services, 10% KMS; `KEYPROOF_BENCH_GB` GB of JSON, default 3) into
//! `target/bench-cloudtrail/` (reused when the size matches), loads them into memory, then times:
//!
//! 1. the floor: libdeflate decompressing every file into one reused buffer, one thread, nothing
//!    else (one process, not one decompressor process per file); libdeflate's gzip decompression
//!    checks each file's CRC-32 in a pass of its own, which keyproof does inside its scan instead
//!    (see `logs::crc`): both check it;
//! 2. keyproof's whole file path (decompress, delimit records, parse KMS records, analyse) on
//!    one thread, then on every core; it inflates with ISA-L where it was installed at build
//!    time, else with libdeflate (`--no-default-features` forces it; the first line printed
//!    says which);
//! 3. peak memory (the child's own `VmHWM`) of `keyproof audit-logs --local` over windows of 6,
//!    12 and 24 hours of the same files, in child processes, to show it stays flat as the volume
//!    grows.
//!
//! Every time is the best of five runs, and the floor is run again before each of keyproof's.
//!
//! Targets: one thread at most 1.5× the floor's time; all cores below the floor's time.
//!
//! `KEYPROOF_BENCH_THREADS=1` times one thread count only and skips the memory runs, for
//! profiling (`perf record`).

use chrono::{DateTime, Duration, Utc};
use keyproof::logs::source::LogObject;
use keyproof::logs::synthetic::{self, Spec};
use keyproof::logs::{LogStore, Rules, SourceError, scan};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Error = Box<dyn std::error::Error>;

const START: &str = "2026-11-01T00:00:00Z";
const RECORDS_PER_FILE: usize = 2_000;
/// Each timing is the best of this many runs (the machine is shared; the best run is the one
/// least disturbed). The floor is run again before each run of keyproof's path, and its best is
/// taken over all of them, so that a quiet or busy spell of the machine does not fall on one
/// side of the ratio only.
const RUNS: usize = 5;
/// Average size of a generated record, for sizing the run.
const RECORD_BYTES: f64 = 1_450.0;

/// Files held in memory, so that disk speed is not measured.
struct MemStore<'f> {
    files: &'f [(LogObject, bytes::Bytes)],
    threads: usize,
}

impl LogStore for MemStore<'_> {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn list(&self, _: DateTime<Utc>, _: DateTime<Utc>) -> Result<Vec<LogObject>, SourceError> {
        Ok(self.files.iter().map(|(o, _)| o.clone()).collect())
    }

    fn fetch(&self, object: &LogObject) -> Result<bytes::Bytes, SourceError> {
        // The index is in the size field: files are fetched by position, not by name lookup.
        // A shared handle, not a copy: the floor reads the same bytes in place.
        Ok(self.files[object.size as usize].1.clone())
    }

    fn parallelism(&self) -> usize {
        self.threads
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            files_under(&e.path(), out)?;
        } else {
            out.push(e.path());
        }
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let gb: f64 = std::env::var("KEYPROOF_BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let start: DateTime<Utc> = START.parse()?;
    let regions = vec!["eu-west-1".to_string(), "us-east-1".to_string()];
    let hours = 24u32;
    let records = gb * 1e9 / RECORD_BYTES;
    let files_per_hour = ((records / RECORDS_PER_FILE as f64) / f64::from(hours) / 2.0)
        .ceil()
        .max(1.0) as u32;
    let spec = Spec {
        account: synthetic::ACCOUNT.into(),
        regions,
        start,
        hours,
        files_per_hour,
        records_per_file: RECORDS_PER_FILE,
        kms_percent: 10,
        seed: 42,
        anomalies: false,
        digests: false,
        bucket: String::new(),
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-cloudtrail")
        .join(format!("{files_per_hour}x{RECORDS_PER_FILE}"));
    if !dir.join("DONE").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        eprintln!(
            "generating about {gb} GB of CloudTrail JSON into {} ...",
            dir.display()
        );
        let e = synthetic::write(&dir, &spec)?;
        std::fs::write(dir.join("DONE"), format!("{}\n", e.json_bytes))?;
        eprintln!(
            "generated {} files, {} records ({} KMS) in {:.0} s",
            e.files,
            e.records,
            e.kms_events,
            t.elapsed().as_secs_f64()
        );
    }

    let mut paths = Vec::new();
    files_under(&dir.join("AWSLogs"), &mut paths)?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    let mut stored = 0u64;
    for (i, p) in paths.iter().enumerate() {
        let bytes = std::fs::read(p)?;
        stored += bytes.len() as u64;
        files.push((
            LogObject {
                name: p.display().to_string(),
                size: i as u64,
            },
            bytes::Bytes::from(bytes),
        ));
    }

    // 1. The floor: libdeflate alone, one thread.
    let mut d = keyproof::logs::parse::Inflater::new();
    let mut buf = Vec::new();
    let mut floor = f64::MAX;
    let mut run_floor = |floor: &mut f64| -> Result<u64, Error> {
        let mut json_bytes = 0;
        let t = Instant::now();
        for (_, data) in &files {
            json_bytes += keyproof::logs::parse::gunzip(&mut d, data, &mut buf)? as u64;
        }
        *floor = floor.min(t.elapsed().as_secs_f64());
        Ok(json_bytes)
    };
    let json_bytes = run_floor(&mut floor)?;

    // 2. keyproof's path, one thread and all cores, each run after a run of the floor.
    let rules = Rules::new(
        start,
        spec.end(),
        &[],
        &keyproof::logs::LogsConfig::default(),
    )?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // `KEYPROOF_BENCH_THREADS=N` times only N threads and skips the memory runs (for profiling).
    let only: Option<usize> = std::env::var("KEYPROOF_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut timed = Vec::new();
    for threads in only.map_or_else(|| vec![1, cores], |n| vec![n]) {
        let store = MemStore {
            files: &files,
            threads,
        };
        let mut secs = f64::MAX;
        let mut result = None;
        for _ in 0..RUNS {
            run_floor(&mut floor)?;
            let t = Instant::now();
            let scanned = scan(&store, &rules, false)?;
            secs = secs.min(t.elapsed().as_secs_f64());
            result = Some(scanned);
        }
        let result = result.ok_or("no run")?;
        timed.push((threads, secs, result));
    }

    println!(
        "{} files, {:.2} GB of JSON ({:.0} MB gzip), {} records each; keyproof inflates with {}",
        files.len(),
        json_bytes as f64 / 1e9,
        stored as f64 / 1e6,
        RECORDS_PER_FILE,
        keyproof::logs::parse::INFLATER
    );
    println!(
        "{:<34} {:>8} {:>10} {:>14} {:>8}",
        "", "seconds", "GB/s JSON", "records/s", "× floor"
    );
    let total_records = (files.len() * RECORDS_PER_FILE) as f64;
    let line = |label: &str, secs: f64| {
        println!(
            "{label:<34} {secs:>8.2} {:>10.2} {:>14.0} {:>8.2}",
            json_bytes as f64 / 1e9 / secs,
            total_records / secs,
            secs / floor
        );
    };
    line("floor: libdeflate only, 1 thread", floor);
    for (threads, secs, result) in timed {
        let report = result.activity.finish(&rules);
        line(&format!("keyproof, {threads} thread(s)"), secs);
        println!(
            "{:<34} {} KMS events ({:.0}/s), {} unreadable files",
            "",
            report.events,
            report.events as f64 / secs,
            result.stats.issues.len()
        );
    }

    // 3. Peak memory as the volume grows.
    drop(files);
    if only.is_some() {
        return Ok(());
    }
    let exe = env!("CARGO_BIN_EXE_keyproof");
    println!("\npeak memory of `keyproof audit-logs --local` (child process):");
    for window in [6i64, 12, 24] {
        let until = start + Duration::hours(window);
        let child = std::process::Command::new(exe)
            .args([
                "audit-logs",
                "--local",
                dir.to_str().unwrap_or_default(),
                "--since",
                &start.to_rfc3339(),
                "--until",
                &until.to_rfc3339(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let (secs, max_rss_kib) = wait_with_rusage(child)?;
        println!(
            "  {window:>2} h window ({:.2} GB of JSON): {:>6.0} MiB peak, {secs:.1} s",
            json_bytes as f64 / 1e9 * window as f64 / 24.0,
            max_rss_kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// Waits for the child and returns its wall time and peak resident set size (KiB), read from
/// its own `VmHWM` while it runs. (`wait4`'s `ru_maxrss` would not do: a child started with
/// vfork/posix_spawn inherits the parent's high-water mark at exec, and the parent holds the
/// files in memory.)
fn wait_with_rusage(mut child: std::process::Child) -> Result<(f64, i64), Error> {
    let t = Instant::now();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0i64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
                .unwrap_or(0);
            peak = peak.max(hwm);
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok((t.elapsed().as_secs_f64(), peak))
}
