//! Collection benchmark: live collection, through the library, against the moto AWS emulator
//! seeded with 1,000 customer managed keys (override with KEYPROOF_BENCH_KEYS) over three
//! regions. Prints figures; asserts nothing about speed.
//!
//! Run with `cargo bench --bench collect`. Needs moto: `scripts/test` installs it into `.venv`
//! once; KEYPROOF_MOTO_PYTHON names another interpreter that has it.
//!
//! moto answers a few KMS calls it does not implement (DescribeCustomKeyStores,
//! GetKeyLastUsage) with HTTP 500, so the run records gaps: about one per key. That is expected
//! and is reported, not treated as a failure. Figures measure moto (single Python process) as
//! much as keyproof; they compare runs, not AWS.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use keyproof::collect::{self, CollectArgs, Ledger, Progress, Session, Settings};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

type Error = Box<dyn std::error::Error>;

const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-southeast-2"];
const CONCURRENCY: [usize; 2] = [8, 32];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that has moto installed: `Err` names the path where none was found.
fn python() -> Result<PathBuf, PathBuf> {
    let path = std::env::var_os("KEYPROOF_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join(".venv/bin/python"));
    if path.exists() { Ok(path) } else { Err(path) }
}

fn script(name: &str) -> PathBuf {
    manifest_dir().join("tests/moto").join(name)
}

/// A running moto server, killed when dropped (and it exits by itself when its stdin closes).
struct Moto {
    child: Child,
    _stdin: Option<ChildStdin>,
    port: u16,
}

impl Moto {
    fn start(python: &Path) -> Result<Moto, Error> {
        let mut child = Command::new(python)
            .arg(script("server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // moto logs every request on stderr.
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", python.display()))?;
        let stdin = child.stdin.take();
        // From here on the guard owns the child, so an early return kills it.
        let mut moto = Moto {
            child,
            _stdin: stdin,
            port: 0,
        };
        let stdout = moto
            .child
            .stdout
            .take()
            .ok_or("moto's stdout is not piped")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        moto.port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("unexpected first line from moto: {line:?}"))?;
        Ok(moto)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seeds `keys` keys with `tests/moto/seed_bulk.py`; returns the seconds it reports.
fn seed(python: &Path, moto: &Moto, keys: usize) -> Result<f64, Error> {
    let out = Command::new(python)
        .arg(script("seed_bulk.py"))
        .arg(moto.endpoint())
        .arg(keys.to_string())
        .args(REGIONS)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "seed_bulk.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    report["seconds"]
        .as_f64()
        .ok_or_else(|| format!("seed_bulk.py printed no seconds: {report}").into())
}

/// One measured collection.
struct Row {
    concurrency: usize,
    keys: usize,
    seconds: f64,
    requests: u64,
    gaps: usize,
    /// Gaps by `service:Api`, to tell moto's known 500s from anything new.
    gaps_by_api: BTreeMap<String, usize>,
}

async fn collect_once(endpoint: &str, concurrency: usize) -> Result<Row, Error> {
    let ledger = Arc::new(Ledger::default());
    let base = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "bench",
        )))
        .retry_config(RetryConfig::disabled())
        .build();
    let session = Session::with_config(base, ledger.clone()).await?;
    let args = CollectArgs {
        regions: REGIONS.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    let (plan, factory) = session.plan(&args).await?;
    let now = chrono::Utc::now();
    let mut settings = Settings::new(now, now - chrono::Duration::days(90));
    settings.lookup_events = false; // moto has no LookupEvents
    settings.region_concurrency = concurrency;
    settings.service_concurrency = concurrency;

    let started = Instant::now();
    let snapshot = collect::collect(&plan, &factory, &settings, &Progress::hidden()).await;
    let seconds = started.elapsed().as_secs_f64();
    let keys = snapshot
        .accounts
        .iter()
        .flat_map(|a| &a.regions)
        .map(|r| r.kms_keys.len())
        .sum();
    let mut gaps_by_api = BTreeMap::new();
    for gap in &snapshot.gaps {
        *gaps_by_api
            .entry(format!("{}:{}", gap.service, gap.api))
            .or_insert(0) += 1;
    }
    Ok(Row {
        concurrency,
        keys,
        seconds,
        // Every request of the run, the session's one GetCallerIdentity included.
        requests: ledger.requests(),
        gaps: snapshot.gaps.len(),
        gaps_by_api,
    })
}

fn main() -> Result<(), Error> {
    let python = match python() {
        Ok(python) => python,
        Err(missing) => {
            println!(
                "collect bench skipped: no Python with moto at {} (KEYPROOF_MOTO_PYTHON, or \
                 .venv/bin/python by default); run scripts/test once to install moto into .venv",
                missing.display()
            );
            return Ok(());
        }
    };
    let keys = env_usize("KEYPROOF_BENCH_KEYS", 1000);

    let moto = Moto::start(&python)?;
    let wall = Instant::now();
    let seed_s = seed(&python, &moto, keys)?;
    println!(
        "moto: seeded {keys} keys over {} regions in {seed_s:.2} s ({:.0} keys/s, {:.2} s wall)",
        REGIONS.len(),
        keys as f64 / seed_s.max(f64::EPSILON),
        wall.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "{:>11} {:>6} {:>9} {:>9} {:>9} {:>8} {:>6}",
        "concurrency", "keys", "seconds", "keys/s", "API calls", "per key", "gaps"
    );
    let mut rows = Vec::new();
    for concurrency in CONCURRENCY {
        let row = runtime.block_on(collect_once(&moto.endpoint(), concurrency))?;
        println!(
            "{:>11} {:>6} {:>9.2} {:>9.1} {:>9} {:>8.2} {:>6}",
            row.concurrency,
            row.keys,
            row.seconds,
            row.keys as f64 / row.seconds.max(f64::EPSILON),
            row.requests,
            row.requests as f64 / row.keys.max(1) as f64,
            row.gaps
        );
        if row.keys != keys {
            println!("  note: collected {} keys, seeded {keys}", row.keys);
        }
        rows.push(row);
    }
    for row in &rows {
        let gaps: Vec<String> = row
            .gaps_by_api
            .iter()
            .map(|(api, n)| format!("{api} {n}"))
            .collect();
        println!(
            "gaps at concurrency {}: {}",
            row.concurrency,
            if gaps.is_empty() {
                "none".to_string()
            } else {
                gaps.join(", ")
            }
        );
    }
    Ok(())
}
