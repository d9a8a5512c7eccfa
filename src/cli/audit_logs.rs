//! `keyproof audit-logs`: KMS activity and detections from CloudTrail log files or CloudTrail
//! Lake, on their own (the job of the old key-audit-logging script, at trail scale).

use super::{parse_since, term_safe};
use crate::config::Config;
use crate::logs::lake::{LakeSource, Wait};
use crate::logs::lookup::LookupSource;
use crate::logs::{self, AuditLogs, EventSource, LocalStore, LogStore, Rules, S3Store};
use crate::snapshot::KmsEventSummary;
use anyhow::{Context, Result, bail};
use chrono::{Duration, Utc};
use clap::Args;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where CloudTrail log files are read from (shared by `audit-logs`, `collect` and `run`).
#[derive(Debug, Clone, Args)]
pub(super) struct LogSourceArgs {
    /// A local directory of CloudTrail log files (what `aws s3 sync` of the trail bucket
    /// leaves), for working offline.
    #[arg(
        long = "cloudtrail-local",
        visible_alias = "local",
        value_name = "DIR",
        conflicts_with_all = ["cloudtrail_s3", "cloudtrail_lake", "cloudtrail_lookup"]
    )]
    local: Option<PathBuf>,
    /// The trail's bucket and prefix, s3://bucket/prefix: the log files under its AWSLogs/ are
    /// read, listing only the days of the window (s3:ListBucket, s3:GetObject; see
    /// `keyproof iam-policy --logs`).
    #[arg(long, value_name = "S3_URL", conflicts_with_all = ["cloudtrail_lake", "cloudtrail_lookup"])]
    cloudtrail_s3: Option<String>,
    /// A CloudTrail Lake event data store (ARN or id): the analysis runs there as one SQL query
    /// instead of downloading log files (cloudtrail:StartQuery, DescribeQuery, GetQueryResults;
    /// see `keyproof iam-policy --logs`). Lake keeps no digest files.
    #[arg(
        long,
        value_name = "EVENT_DATA_STORE",
        conflicts_with_all = ["verify_digests", "cloudtrail_lookup"]
    )]
    cloudtrail_lake: Option<String>,
    /// The account's own CloudTrail event history in these regions (comma-separated), read with
    /// LookupEvents: management events only, the last 90 days, two requests a second per
    /// region (cloudtrail:LookupEvents). For when the trail's log files are not at hand; it
    /// keeps no digest files.
    #[arg(
        long,
        value_name = "REGIONS",
        value_delimiter = ',',
        num_args = 1..,
        conflicts_with = "verify_digests"
    )]
    cloudtrail_lookup: Vec<String>,
    /// How long to wait for the CloudTrail Lake query, in minutes.
    #[arg(
        long,
        value_name = "MINUTES",
        default_value_t = 30,
        requires = "cloudtrail_lake"
    )]
    lake_timeout: u64,
    /// Verify the trail's digest files: signatures, the chain, and every log file's hash
    /// (PCI DSS 10.3.2, 10.3.4).
    #[arg(long)]
    verify_digests: bool,
    /// CloudTrail's public keys as `aws cloudtrail list-public-keys` prints them (repeatable,
    /// e.g. one per region) [default with --cloudtrail-s3: CloudTrail ListPublicKeys].
    #[arg(long, value_name = "FILE")]
    public_keys: Vec<PathBuf>,
    /// Named profile from ~/.aws/config for reading the logs (the trail's bucket, Lake,
    /// LookupEvents, ListPublicKeys): a trail bucket often lives in a log-archive account
    /// [default: `--profile` of collect/run, else the AWS default credential chain].
    #[arg(long, value_name = "PROFILE", conflicts_with = "local")]
    logs_profile: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct AuditLogsArgs {
    #[command(flatten)]
    source: LogSourceArgs,
    /// The window: the last N hours [default: 24].
    #[arg(long, conflicts_with = "since")]
    hours: Option<u32>,
    /// The window's start instead: days back (`90d`), a date or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// The window's end, a date or an RFC 3339 time [default: now].
    #[arg(long)]
    until: Option<String>,
    /// Print the detections, and exit 1 when there is one of MEDIUM severity or higher or a
    /// log file could not be read.
    #[arg(long)]
    detect_anomalies: bool,
    /// keyproof.toml ([logs] and parameters.allowed_accounts) [default: ./keyproof.toml if
    /// present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write kms-activity.json and kms-anomalies.csv into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print kms-activity.json to standard output instead of the summary.
    #[arg(long)]
    json: bool,
}

/// What [`analyse`] gives: the analysis, and for LookupEvents the collector's summaries of the
/// histories it read (see `collect::Settings::known_events`).
pub(super) struct Analysed {
    pub logs: AuditLogs,
    pub event_summaries: BTreeMap<(String, String), KmsEventSummary>,
}

/// Reads and analyses the log files of the window (and verifies their digests when asked);
/// `None` when no source is given. The AWS sources use `--logs-profile`, else `profile` (the
/// profile `collect`/`run` collect with), else the default credential chain.
pub(super) fn analyse(
    source: &LogSourceArgs,
    since: chrono::DateTime<Utc>,
    until: chrono::DateTime<Utc>,
    now: chrono::DateTime<Utc>,
    config: &Config,
    profile: Option<&str>,
) -> Result<Option<Analysed>> {
    let profile = source.logs_profile.as_deref().or(profile);
    let rules = Rules::new(
        since,
        until,
        &config.parameters.allowed_accounts,
        &config.logs,
    )?;
    let events = match (
        &source.local,
        &source.cloudtrail_s3,
        &source.cloudtrail_lake,
    ) {
        (None, None, None) if !source.cloudtrail_lookup.is_empty() => EventSource::Lookup(
            LookupSource::connect(&source.cloudtrail_lookup, profile)
                .context("could not set up CloudTrail LookupEvents")?,
        ),
        (Some(dir), _, _) => {
            if !dir.is_dir() {
                bail!(
                    "{} is not a directory of CloudTrail log files",
                    dir.display()
                );
            }
            EventSource::Files(Box::new(LocalStore::new(dir.clone())))
        }
        (None, Some(url), _) => EventSource::Files(Box::new(
            S3Store::connect(&url.parse()?, profile)
                .context("could not reach the trail's bucket")?,
        )),
        (None, None, Some(store)) => {
            let wait = Wait {
                timeout: std::time::Duration::from_secs(source.lake_timeout.saturating_mul(60)),
                ..Wait::default()
            };
            EventSource::Lake(
                LakeSource::connect(store, wait, profile)
                    .context("could not set up CloudTrail Lake")?,
            )
        }
        (None, None, None) => return Ok(None),
    };
    eprintln!(
        "reading KMS events from {} for {} → {}",
        term_safe(&events.describe()),
        since.to_rfc3339(),
        until.to_rfc3339()
    );
    let scan = events
        .read(&rules, source.verify_digests)
        .context("could not read the KMS events")?;
    let integrity = match events.files() {
        Some(store) if source.verify_digests => {
            let keys = public_keys(source, store, since, until, profile)?;
            Some(
                logs::digest::verify(store, &keys, since, until, &scan.log_hashes, now)
                    .context("could not read the digest files")?,
            )
        }
        _ => None,
    };
    Ok(Some(Analysed {
        logs: AuditLogs {
            tool: format!("keyproof {}", env!("CARGO_PKG_VERSION")),
            generated_at: now,
            scan: scan.stats,
            activity: scan.activity.finish(&rules),
            integrity,
        },
        event_summaries: scan.event_summaries,
    }))
}

/// Runs the command.
pub(super) fn run(args: AuditLogsArgs) -> Result<ExitCode> {
    let now = Utc::now();
    let until = match &args.until {
        Some(u) => parse_since(u, now).with_context(|| format!("--until {u}"))?,
        None => now,
    };
    let since = match (&args.since, args.hours) {
        (Some(s), _) => parse_since(s, until)?,
        (None, hours) => until - Duration::hours(i64::from(hours.unwrap_or(24))),
    };
    if since >= until {
        bail!("the window is empty: --since must be before --until");
    }
    let config_path = args
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("keyproof.toml")).filter(|p| p.exists()));
    let config = Config::load(config_path.as_deref())?;
    let Some(Analysed { logs: result, .. }) =
        analyse(&args.source, since, until, now, &config, None)?
    else {
        bail!(
            "pass --local DIR, --cloudtrail-s3 s3://bucket/prefix, --cloudtrail-lake EVENT_DATA_STORE or --cloudtrail-lookup REGIONS"
        );
    };

    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .with_context(|| format!("could not create {}", out.display()))?;
        let mut json = serde_json::to_vec_pretty(&result)?;
        json.push(b'\n');
        let json_path = out.join("kms-activity.json");
        crate::fsutil::write_atomic(&json_path, &json)
            .with_context(|| format!("could not write {}", json_path.display()))?;
        let csv_path = out.join("kms-anomalies.csv");
        let csv = logs::anomalies_csv(&result.activity.detections)?;
        crate::fsutil::write_atomic(&csv_path, &csv)
            .with_context(|| format!("could not write {}", csv_path.display()))?;
        eprintln!("wrote {} and {}", json_path.display(), csv_path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_summary(&result, args.detect_anomalies)?;
    }
    let alarming = result
        .activity
        .detections
        .iter()
        .any(|d| matches!(d.severity.as_str(), "HIGH" | "MEDIUM"));
    let tampered = result.integrity.as_ref().is_some_and(|i| !i.intact());
    Ok(
        if (args.detect_anomalies && (alarming || !result.scan.issues.is_empty())) || tampered {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// CloudTrail's public keys: from the files given, else from ListPublicKeys in every region
/// whose digests are in the window.
fn public_keys(
    args: &LogSourceArgs,
    store: &dyn LogStore,
    since: chrono::DateTime<Utc>,
    until: chrono::DateTime<Utc>,
    profile: Option<&str>,
) -> Result<logs::digest::PublicKeys> {
    let mut keys = logs::digest::PublicKeys::default();
    for path in &args.public_keys {
        let bytes =
            std::fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
        keys.add_cli_json(&bytes).with_context(|| {
            format!(
                "{} is not `aws cloudtrail list-public-keys` output",
                path.display()
            )
        })?;
    }
    if !args.public_keys.is_empty() {
        return Ok(keys);
    }
    if args.local.is_some() {
        bail!(
            "--verify-digests on a local copy needs --public-keys FILE (save `aws cloudtrail list-public-keys --start-time ... --end-time ...` of each region as JSON)"
        );
    }
    let mut regions: Vec<String> = store
        .list_digests(since, until + Duration::hours(2))?
        .iter()
        .filter_map(|o| {
            let after = o.name.split("/CloudTrail-Digest/").nth(1)?;
            Some(after.split('/').next()?.to_string())
        })
        .collect();
    regions.sort();
    regions.dedup();
    for region in regions {
        logs::digest::fetch_public_keys(
            &mut keys,
            &region,
            since - Duration::days(1),
            until + Duration::days(1),
            profile,
        )
        .with_context(|| format!("could not read CloudTrail's public keys in {region}"))?;
    }
    Ok(keys)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn print_summary(r: &AuditLogs, detections: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let s = &r.scan;
    let a = &r.activity;
    match (&s.lookup, &s.lake) {
        (Some(lookup), _) => writeln!(
            out,
            "CloudTrail LookupEvents in {}: {} KMS events over {} pages",
            term_safe(&lookup.regions.join(", ")),
            s.kms_records,
            lookup.pages
        )?,
        (None, Some(lake)) => writeln!(
            out,
            "CloudTrail Lake: store {}, query {}: {} events scanned ({}), {} groups of KMS events",
            term_safe(&lake.event_data_store),
            term_safe(&lake.query_id),
            lake.events_scanned
                .map_or_else(|| "?".into(), |n| n.to_string()),
            lake.bytes_scanned
                .map_or_else(|| "? bytes".into(), |n| mib(u64::try_from(n).unwrap_or(0))),
            lake.groups
        )?,
        (None, None) => writeln!(
            out,
            "files: {} listed, {} read, {} unreadable ({} stored, {} of JSON, {} records)",
            s.files,
            s.files_read,
            s.issues.len(),
            mib(s.stored_bytes),
            mib(s.json_bytes),
            s.records
        )?,
    }
    for issue in &s.issues {
        writeln!(out, "  UNREADABLE {}", term_safe(&issue.to_string()))?;
    }
    if !s.issues.is_empty() {
        writeln!(
            out,
            "  the analysis below does not cover these files: their events are missing, not absent"
        )?;
    }
    writeln!(
        out,
        "KMS events in the window: {} ({} failed); {} outside the window, {} without a time",
        a.events, a.failed, a.outside_window, a.undated
    )?;
    let ops: Vec<String> = top(&a.by_operation, 8)
        .into_iter()
        .map(|(k, v)| format!("{} {v}", term_safe(k)))
        .collect();
    writeln!(out, "by operation: {}", ops.join(", "))?;
    if !a.errors_by_code.is_empty() {
        let errs: Vec<String> = top(&a.errors_by_code, 8)
            .into_iter()
            .map(|(k, v)| format!("{} {v}", term_safe(k)))
            .collect();
        writeln!(out, "failed calls: {}", errs.join(", "))?;
    }
    writeln!(
        out,
        "keys used: {}; principals: {}; administrative events: {}",
        a.keys.len(),
        a.principals.len(),
        a.admin_events.len() as u64 + a.admin_omitted
    )?;
    let f = &a.fields;
    writeln!(
        out,
        "PCI DSS 10.2.2 fields: {} of KMS events carry all six (identity {}, type {}, time {}, outcome {}, origin {}, resource {})",
        percent(f.complete, f.records),
        percent(f.identity, f.records),
        percent(f.event_type, f.records),
        percent(f.time, f.records),
        percent(f.outcome, f.records),
        percent(f.origin, f.records),
        percent(f.resource, f.records),
    )?;
    if !a.source_ip_check {
        writeln!(
            out,
            "source IPs were not checked: set logs.allowed_source_cidrs in keyproof.toml"
        )?;
    }
    if let Some(i) = &r.integrity {
        writeln!(
            out,
            "\nlog file integrity: {} digests in {} chain(s), {} with a valid signature; {} log files checked, {} match their digest",
            i.digests,
            i.chains.len(),
            i.digests_valid,
            i.log_files_checked,
            i.log_files_valid
        )?;
        if i.digests == 0 {
            writeln!(
                out,
                "  NO DIGEST FILES in the window: log file validation is off, or the digests are not where the logs are"
            )?;
        }
        for p in &i.problems {
            let kind = serde_json::to_value(p.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            writeln!(
                out,
                "  {kind:<24} {}: {}",
                term_safe(&p.file),
                term_safe(&p.detail)
            )?;
        }
    }
    if detections {
        writeln!(out, "\ndetections: {}", a.detections.len())?;
        for d in &a.detections {
            let first = d.events.first();
            writeln!(
                out,
                "{:<7} {:<26} {:>6}  {}{}{}",
                d.severity,
                d.title,
                d.count,
                term_safe(d.principal.as_deref().unwrap_or("-")),
                d.key
                    .as_deref()
                    .map(|k| format!(" on {}", term_safe(k)))
                    .unwrap_or_default(),
                if d.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", term_safe(&d.detail))
                }
            )?;
            if let Some(e) = first {
                writeln!(
                    out,
                    "        first: {} {} {} from {}",
                    e.event_time.to_rfc3339(),
                    term_safe(&e.event_id),
                    term_safe(&e.event_name),
                    term_safe(e.source_ip.as_deref().unwrap_or("-"))
                )?;
            }
        }
    }
    Ok(())
}

fn top(map: &std::collections::BTreeMap<String, u64>, n: usize) -> Vec<(&String, u64)> {
    let mut v: Vec<(&String, u64)> = map.iter().map(|(k, v)| (k, *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.truncate(n);
    v
}
