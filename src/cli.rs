//! The command line: argument definitions, the commands, and exit codes.
//!
//! Exit codes (documented in the README and `--help`):
//! - 0: the command ran, and no finding tripped `--fail-on`;
//! - 1: a FAIL or ERROR finding of `--fail-on` severity or higher exists;
//! - 2: keyproof could not run (bad arguments, missing or corrupt snapshot, invalid controls or
//!   config); the message says what to do.

use crate::collect::{self, CollectArgs, Ledger, Progress, Session, SessionError, Settings};
use crate::config::Config;
use crate::report::{Format, Templates, build_report, write_reports};
use crate::rules::{ControlSet, Finding, Framework, Severity, Status, evaluate};
use crate::selftest::kms_provider::KmsProviderFactory;
use crate::selftest::simulated::{Simulated, SimulatedFactory};
use crate::selftest::{self, SelfTestOptions};
use crate::snapshot::sample::{SAMPLE_CONFIG, sample_estate};
use crate::snapshot::{LoadedSnapshot, read_snapshot, write_snapshot};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod audit_logs;

const AFTER_HELP: &str = "Exit codes: 0 = ran, nothing tripped --fail-on; 1 = a FAIL or ERROR finding at or above --fail-on severity; 2 = could not run (bad input; the message says what to do).";

#[derive(Debug, Parser)]
#[command(
    name = "keyproof",
    version,
    about = "Turns the state of an AWS estate's key management into audit-ready PCI DSS evidence",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline on the embedded sample estate (no AWS account needed): writes
    /// snapshot.json and the reports.
    Demo {
        /// Output directory.
        #[arg(long, default_value = "reports/demo")]
        out: PathBuf,
        #[command(flatten)]
        eval: EvalArgs,
        #[command(flatten)]
        render: RenderArgs,
        #[command(flatten)]
        seal: SealArgs,
    },
    /// Evaluate a snapshot and print the results by requirement and the failed findings.
    Evaluate {
        /// Snapshot file (JSON, optionally gzip).
        snapshot: PathBuf,
        #[command(flatten)]
        eval: EvalArgs,
    },
    /// Evaluate a snapshot and write reports.
    Report {
        /// Snapshot file (JSON, optionally gzip).
        snapshot: PathBuf,
        /// Output directory [default: reports/<first 12 hex digits of the snapshot SHA-256>].
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        eval: EvalArgs,
        #[command(flatten)]
        render: RenderArgs,
        /// Make the output directory a sealed run (a copy of the snapshot, manifest.json,
        /// history), as `run` does, e.g. for a snapshot collected separately.
        #[arg(long)]
        seal: bool,
        #[command(flatten)]
        seal_args: SealArgs,
    },
    /// Collect a snapshot from AWS (read-only) and write it.
    Collect {
        #[command(flatten)]
        aws: AwsArgs,
        /// Snapshot file to write (`.gz` for gzip) [default: reports/<run-id>/snapshot.json].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Collect, self-test, evaluate and report in one go, into reports/<run-id>/.
    Run {
        #[command(flatten)]
        aws: AwsArgs,
        #[command(flatten)]
        selftest: SelfTestArgs,
        /// Skip the envelope-encryption self-test (its controls then come out ERROR).
        #[arg(long)]
        no_selftest: bool,
        /// Run directory [default: reports/<run-id>, the run's start time in UTC].
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        eval: EvalArgs,
        #[command(flatten)]
        render: RenderArgs,
        #[command(flatten)]
        seal: SealArgs,
    },
    /// Verify a sealed run directory: every file against manifest.json, the signature, and the
    /// hash chain back through the earlier runs beside it. Exit 0 intact, 1 not, 2 cannot run.
    Verify {
        /// The run directory (holding manifest.json).
        run_dir: PathBuf,
        /// The signer's public key (PEM, from `keyproof keys init`).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Check files and chain only, not the signature (says so in the output).
        #[arg(long, conflicts_with = "public_key")]
        no_signature: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the sealed runs in the history: date, scope, counts, failing requirements.
    History {
        /// The directory holding the run directories and history.sqlite.
        #[arg(long, default_value = "reports")]
        runs: PathBuf,
        /// Re-create history.sqlite from the run directories (they are the truth).
        #[arg(long)]
        rebuild: bool,
        #[arg(long)]
        json: bool,
    },
    /// Compare two runs [default: the last two]: newly failing first, then fixed, still failing
    /// (for how many runs), new and vanished resources.
    Diff {
        /// The earlier run [default: the run before TO].
        from: Option<String>,
        /// The later run [default: the newest].
        to: Option<String>,
        #[arg(long, default_value = "reports")]
        runs: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run on the cron schedule of keyproof.toml's [schedule] as a long-running process: one
    /// run at a time (a lock), a catch-up run when the last scheduled one was missed, old runs
    /// deleted after `keep_months`.
    Schedule {
        /// keyproof.toml with the [schedule] section (also passed to each `run`).
        #[arg(long, default_value = "keyproof.toml")]
        config: PathBuf,
        /// Stop after this many runs.
        #[arg(long)]
        max_runs: Option<u32>,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        duration: Option<u64>,
    },
    /// Publish a sealed run to S3 under Object Lock (compliance mode), e.g. one whose
    /// publishing failed during `run`. Every file is checked against the manifest first.
    Publish {
        /// The sealed run directory.
        run_dir: PathBuf,
        /// Where to [default: keyproof.toml's publish.target]; the run lands in
        /// <prefix>/<run-id>/.
        #[arg(long, value_name = "S3_URL")]
        to: Option<String>,
        /// keyproof.toml with a [publish] section [default: ./keyproof.toml if present].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Days the objects stay locked [default: publish.retention_days, 397].
        #[arg(long)]
        retention_days: Option<u32>,
        /// Publish even to a bucket without Object Lock (the evidence is then unprotected).
        #[arg(long)]
        publish_unlocked: bool,
    },
    /// Analyse CloudTrail log files (local or in the trail's S3 bucket), a CloudTrail Lake
    /// event data store or the account's LookupEvents history for KMS activity: calls per key and principal, failed calls,
    /// administrative events, the PCI DSS 10.2.2 field check, and detections (root use,
    /// cross-account use, unusable keys, spikes, ...).
    AuditLogs(audit_logs::AuditLogsArgs),
    /// Manage the Ed25519 key that signs run manifests.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Run the envelope-encryption self-test on a snapshot's keys and write the snapshot with
    /// its results (KMS GenerateDataKey/Decrypt; `--simulated` for the in-process provider).
    Selftest {
        /// Snapshot whose keys are tested.
        snapshot: PathBuf,
        /// Where to write the snapshot with the self-test [default: beside the input,
        /// `<name>.selftest.json`].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Use the in-process simulated key provider instead of AWS KMS (labelled in reports).
        #[arg(long)]
        simulated: bool,
        #[command(flatten)]
        selftest: SelfTestArgs,
        #[command(flatten)]
        aws: AwsArgs,
    },
    /// Print the least-privilege IAM policy that collection needs (read-only actions only), or
    /// with --selftest the separate policy of the self-test.
    IamPolicy {
        #[arg(long)]
        selftest: bool,
        /// The policy of `--sign-with-kms` (kms:Sign and kms:GetPublicKey).
        #[arg(long, conflicts_with = "selftest")]
        signing: bool,
        /// The policy of `--publish` (S3 PutObject with retention; edit the bucket and prefix).
        #[arg(long, conflicts_with_all = ["selftest", "signing"])]
        publish: bool,
        /// The policy of `audit-logs --cloudtrail-s3` (list and read the trail's log files).
        #[arg(long, conflicts_with_all = ["selftest", "signing", "publish"])]
        logs: bool,
    },
    /// List or show the controls.
    Controls {
        #[command(subcommand)]
        action: ControlsAction,
        /// Load controls from this directory instead of the built-in set.
        #[arg(long, global = true)]
        controls: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Write a new key pair: DIR/signing.pem (private, mode 0600) and DIR/signing.pub.pem.
    Init {
        #[arg(long, default_value = "keys")]
        dir: PathBuf,
    },
    /// Write the public key of a KMS signing key (PEM) for verifying offline.
    ExportKms {
        key_arn: String,
        #[arg(long)]
        out: PathBuf,
    },
}

/// How a run directory is sealed.
#[derive(Debug, Args)]
struct SealArgs {
    /// Ed25519 private key (PEM) that signs the run's manifest.json; without one the manifest
    /// is written unsigned.
    #[arg(long, env = "KEYPROOF_SIGNING_KEY")]
    sign_key: Option<PathBuf>,
    /// Sign with this AWS KMS key (ECC_NIST_P256) instead: no private key outside KMS. Export
    /// its public key for the auditor with `keyproof keys export-kms`.
    #[arg(long, value_name = "KEY_ARN", conflicts_with = "sign_key")]
    sign_with_kms: Option<String>,
    /// Publish the sealed run to this S3 location under Object Lock (compliance mode, for
    /// keyproof.toml's publish.retention_days) [default: publish.target, if set].
    #[arg(long, value_name = "S3_URL")]
    publish: Option<String>,
    /// Publish even to a bucket without Object Lock (the evidence is then unprotected).
    #[arg(long)]
    publish_unlocked: bool,
}

#[derive(Debug, Subcommand)]
enum ControlsAction {
    /// One line per control.
    List,
    /// Everything about one control: what it checks, the requirements, the expression, the fix.
    Show { id: String },
    /// The whole catalog as Markdown (what docs/controls.md holds).
    Doc,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Load controls from this directory (*.yaml) instead of the built-in set.
    #[arg(long)]
    controls: Option<PathBuf>,
    /// keyproof.toml with parameters (cryptoperiod, allowed accounts, tag conventions).
    /// Default: ./keyproof.toml if it exists, else the documented defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Framework version the results are organised by.
    #[arg(long, value_enum, default_value_t = Framework::PciDss401)]
    framework: Framework,
    /// Exit 1 when a FAIL or ERROR finding of this severity or higher exists.
    #[arg(long, value_enum)]
    fail_on: Option<Severity>,
}

/// How to run the envelope-encryption self-test.
#[derive(Debug, Args)]
struct SelfTestArgs {
    /// Test only this key (ARN or key id); repeat for more. Default: every customer managed
    /// symmetric encryption key.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// Most keys tested; the rest are NOT_TESTED (ERROR in the reports).
    #[arg(long, default_value_t = 500)]
    max_keys: usize,
    /// Timeout of each GenerateDataKey / Decrypt call, in seconds.
    #[arg(long, default_value_t = 10)]
    selftest_timeout: u64,
}

/// Where and how to collect from AWS.
#[derive(Debug, Args)]
struct AwsArgs {
    /// Named profile from ~/.aws/config (default: the AWS default credential chain).
    #[arg(long)]
    profile: Option<String>,
    /// Regions, comma-separated, or `all` for every region enabled in the account
    /// [default: the profile's or AWS_REGION's region].
    #[arg(long, visible_alias = "region", value_delimiter = ',')]
    regions: Vec<String>,
    /// Accounts to collect, comma-separated (each other than the caller's through --role-name).
    #[arg(long, value_delimiter = ',', conflicts_with = "organization")]
    accounts: Vec<String>,
    /// Collect every active account of the AWS Organization (organizations:ListAccounts).
    #[arg(long)]
    organization: bool,
    /// Role to assume in each account other than the caller's.
    #[arg(long)]
    role_name: Option<String>,
    /// External id for assuming --role-name.
    #[arg(long, requires = "role_name")]
    external_id: Option<String>,
    /// Endpoint for every AWS service, e.g. an emulator (AWS_ENDPOINT_URL works too).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// CloudTrail KMS event window: days back (`90d`) or a date (`2026-09-01`).
    #[arg(long, default_value = "90d")]
    since: String,
    /// Skip the CloudTrail LookupEvents history (it is paced at 2 requests a second).
    #[arg(long)]
    no_events: bool,
    /// Most KMS events read per account and region (newest first; 0 = no limit). Reaching it is
    /// a gap: the history is partial.
    #[arg(long, default_value_t = 200_000)]
    max_events: u64,
    /// Attempts per AWS call, with adaptive retry for throttling.
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// Account-regions collected at once; also the requests in flight per service in each.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Also analyse the trail's CloudTrail log files over the --since window into the
    /// snapshot's KMS activity (as `keyproof audit-logs` does).
    #[command(flatten)]
    logs: audit_logs::LogSourceArgs,
}

#[derive(Debug, Args)]
struct RenderArgs {
    /// Report formats, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "pdf,html,csv,json")]
    format: Vec<Format>,
    /// Directory whose report.html.tera / report.typ override the built-in templates.
    #[arg(long)]
    templates: Option<PathBuf>,
}

/// Entry point: parses arguments, runs, maps errors to exit code 2.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // The reader went away (`keyproof history | head`): nothing left to say.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The chain can carry text from AWS (error messages, names): no control
            // characters reach the terminal.
            eprintln!("error: {}", term_safe(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo {
            out,
            eval,
            render,
            seal,
        } => {
            let path = out.join("snapshot.json");
            // The demo runs the same self-test code path as a live run, against the simulated
            // in-process key provider (the reports say so).
            let mut sample = sample_estate();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("could not start the async runtime")?;
            let provider = SimulatedFactory(Arc::new(Simulated::for_snapshot(&sample)));
            let options = SelfTestOptions::new("demo");
            let (selftest, gaps) = runtime.block_on(selftest::run(&sample, &provider, &options));
            selftest::attach(&mut sample, selftest, gaps);
            let sha = write_snapshot(&sample, &path).context(
                "could not write the sample snapshot; check that the output directory is writable",
            )?;
            eprintln!("wrote {} (sha256 {sha})", path.display());
            // The sample company's config goes beside its snapshot, where `keyproof report`
            // finds it, so the reports can be re-created from the directory alone.
            if eval.config.is_none() {
                let config_path = out.join("keyproof.toml");
                crate::fsutil::write_atomic(&config_path, SAMPLE_CONFIG.as_bytes())
                    .with_context(|| format!("could not write {}", config_path.display()))?;
                eprintln!("wrote {}", config_path.display());
            }
            let loaded = read_snapshot(&path)?;
            produce(&loaded, &path, &out, &eval, &render, Some(&seal))
        }
        Command::Report {
            snapshot,
            out,
            eval,
            render,
            seal,
            seal_args,
        } => {
            let loaded = read_snapshot(&snapshot)?;
            let out = out.unwrap_or_else(|| {
                Path::new("reports").join(loaded.sha256.get(..12).unwrap_or("snapshot"))
            });
            let seal = seal || seal_args.sign_key.is_some() || seal_args.sign_with_kms.is_some();
            if seal {
                // A sealed run holds its own evidence: the snapshot (and config) beside the
                // reports, byte for byte.
                let name = snapshot
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("snapshot.json"));
                let target = out.join(name);
                if target != snapshot {
                    std::fs::create_dir_all(&out)
                        .with_context(|| format!("could not create {}", out.display()))?;
                    std::fs::copy(&snapshot, &target).with_context(|| {
                        format!("could not copy the snapshot to {}", target.display())
                    })?;
                }
                if let Some(config) = &eval.config {
                    let target = out.join("keyproof.toml");
                    std::fs::copy(config, &target).with_context(|| {
                        format!("could not copy the config to {}", target.display())
                    })?;
                }
            }
            produce(
                &loaded,
                &snapshot,
                &out,
                &eval,
                &render,
                seal.then_some(&seal_args),
            )
        }
        Command::Evaluate { snapshot, eval } => {
            let loaded = read_snapshot(&snapshot)?;
            let (controls, config) = load_rules(&eval, &snapshot)?;
            let findings = evaluate(&loaded.snapshot, &controls, &config);
            let report = build_report(&loaded, &controls, &config, &findings, eval.framework);
            print_evaluation(&report)?;
            Ok(gate(&findings, &controls, eval.fail_on))
        }
        Command::Collect { aws, out } => {
            let started = Utc::now();
            let out = out.unwrap_or_else(|| {
                Path::new("reports")
                    .join(run_id(started))
                    .join("snapshot.json")
            });
            let config = Some(PathBuf::from("keyproof.toml")).filter(|p| p.exists());
            collect_to(&aws, started, &out, None, config.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Selftest {
            snapshot,
            out,
            simulated,
            selftest,
            aws,
        } => {
            let loaded = read_snapshot(&snapshot)?;
            let out = out.unwrap_or_else(|| snapshot.with_extension("selftest.json"));
            selftest_to(loaded.snapshot, &out, simulated, &selftest, &aws)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            aws,
            selftest,
            no_selftest,
            out,
            eval,
            render,
            seal,
        } => {
            let started = Utc::now();
            let dir = out.unwrap_or_else(|| Path::new("reports").join(run_id(started)));
            let path = dir.join("snapshot.json");
            let config = eval
                .config
                .clone()
                .or_else(|| Some(PathBuf::from("keyproof.toml")).filter(|p| p.exists()));
            collect_to(
                &aws,
                started,
                &path,
                (!no_selftest).then_some(&selftest),
                config.as_deref(),
            )?;
            // The config used goes beside the snapshot, so the run directory alone re-creates
            // the reports.
            if let Some(config) = config {
                let target = dir.join("keyproof.toml");
                std::fs::copy(&config, &target).with_context(|| {
                    format!(
                        "could not copy {} to {}",
                        config.display(),
                        target.display()
                    )
                })?;
            }
            let loaded = read_snapshot(&path)?;
            produce(&loaded, &path, &dir, &eval, &render, Some(&seal))
        }
        Command::Verify {
            run_dir,
            public_key,
            no_signature,
            json,
        } => verify_run(&run_dir, public_key.as_deref(), no_signature, json),
        Command::AuditLogs(args) => audit_logs::run(args),
        Command::Publish {
            run_dir,
            to,
            config,
            retention_days,
            publish_unlocked,
        } => {
            let config_path =
                config.or_else(|| Some(PathBuf::from("keyproof.toml")).filter(|p| p.exists()));
            let config = Config::load(config_path.as_deref())?;
            let Some(target) = to.or(config.publish.target.clone()) else {
                bail!(
                    "nowhere to publish to: pass --to s3://bucket/prefix or set publish.target in keyproof.toml"
                );
            };
            let mut publish = config.publish.clone();
            if let Some(days) = retention_days {
                publish.retention_days = days;
            }
            publish_run(&run_dir, &target, &publish, publish_unlocked)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::History {
            runs,
            rebuild,
            json,
        } => {
            let mut history = crate::history::History::open(&runs)?;
            if rebuild {
                let rebuilt = history.rebuild(&runs)?;
                eprintln!(
                    "indexed {} run(s) from {}",
                    rebuilt.indexed.len(),
                    runs.display()
                );
                for (run, why) in rebuilt.skipped {
                    eprintln!("skipped {}: {}", term_safe(&run), term_safe(&why));
                }
            }
            let rows = history.runs()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print_history(&rows)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            from,
            to,
            runs,
            json,
        } => {
            let history = crate::history::History::open(&runs)?;
            let diff = history.diff(from.as_deref(), to.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&diff)?);
            } else {
                print_diff(&diff)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule {
            config,
            max_runs,
            duration,
        } => schedule_loop(&config, max_runs, duration),
        Command::Keys {
            action: KeysAction::ExportKms { key_arn, out },
        } => {
            let signer = crate::bundle::KmsSigner::connect(&key_arn)?;
            crate::fsutil::write_atomic(&out, signer.public_key_pem().as_bytes())
                .with_context(|| format!("could not write {}", out.display()))?;
            eprintln!("wrote {}", out.display());
            println!("public key sha256 {}", signer.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            action: KeysAction::Init { dir },
        } => {
            let (private, public) = crate::bundle::init_keys(&dir)?;
            let key = crate::bundle::load_signing_key(&private)?;
            eprintln!(
                "wrote {} (private, mode 0600: keep it secret)",
                private.display()
            );
            eprintln!(
                "wrote {} (public: give it to the auditor)",
                public.display()
            );
            println!("public key sha256 {}", key.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
        Command::IamPolicy {
            selftest,
            signing,
            publish,
            logs,
        } => {
            print!(
                "{}",
                if selftest {
                    crate::collect::SELFTEST_IAM_POLICY
                } else if signing {
                    crate::collect::SIGNING_IAM_POLICY
                } else if publish {
                    crate::collect::PUBLISH_IAM_POLICY
                } else if logs {
                    crate::collect::LOGS_IAM_POLICY
                } else {
                    crate::collect::IAM_POLICY
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Controls { action, controls } => {
            let set = match &controls {
                Some(dir) => ControlSet::from_dir(dir)?,
                None => ControlSet::embedded()?,
            };
            match action {
                ControlsAction::List => print_control_list(&set)?,
                ControlsAction::Show { id } => {
                    let Some(c) = set.get(&id) else {
                        bail!("no control `{id}`; `keyproof controls list` shows the ids");
                    };
                    print_control(c)?;
                }
                ControlsAction::Doc => {
                    std::io::stdout()
                        .lock()
                        .write_all(crate::rules::catalog::markdown(&set).as_bytes())?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A run's id: its start time in UTC, sortable and safe as a directory name.
fn run_id(started: DateTime<Utc>) -> String {
    started.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Parses `--since`: `90d` (days back from `now`) or a date / RFC 3339 time.
fn parse_since(since: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Some(days) = since.strip_suffix('d') {
        let days: i64 = days
            .parse()
            .with_context(|| format!("--since {since}: expected e.g. 90d or 2026-09-01"))?;
        return Ok(now - chrono::Duration::days(days));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(since) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d")
        .with_context(|| format!("--since {since}: expected e.g. 90d or 2026-09-01"))?;
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// Collects from AWS and writes the snapshot atomically: an interrupted run leaves no file.
fn collect_to(
    aws: &AwsArgs,
    started: DateTime<Utc>,
    out: &Path,
    selftest_args: Option<&SelfTestArgs>,
    config_path: Option<&Path>,
) -> Result<()> {
    let since = parse_since(&aws.since, started)?;
    if since >= started {
        bail!("--since {} is not in the past", aws.since);
    }
    // The log files are read first: a bad source fails before the long collection.
    let config = Config::load(config_path)?;
    let analysed = audit_logs::analyse(
        &aws.logs,
        since,
        started,
        started,
        &config,
        aws.profile.as_deref(),
    )?;
    let args = CollectArgs {
        profile: aws.profile.clone(),
        regions: aws.regions.clone(),
        accounts: aws.accounts.clone(),
        organization: aws.organization,
        role_name: aws.role_name.clone(),
        external_id: aws.external_id.clone(),
        endpoint_url: aws.endpoint_url.clone(),
        max_attempts: aws.max_attempts,
        ..CollectArgs::default()
    };
    let mut settings = Settings::new(started, since);
    settings.lookup_events = !aws.no_events;
    settings.max_events = (aws.max_events > 0).then_some(aws.max_events);
    // A LookupEvents source has read these histories already: the collector takes its
    // summaries instead of paging through them again.
    let activity = analysed.map(|a| {
        settings.known_events = a.event_summaries;
        a.logs
    });
    settings.region_concurrency = aws.concurrency.max(1);
    settings.service_concurrency = aws.concurrency.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let clock = Instant::now();
    let ledger = Arc::new(Ledger::default());
    let progress = Progress::stderr(aws.quiet);
    let collected = runtime.block_on(async {
        let work = async {
            let session = Session::connect(&args, ledger.clone()).await?;
            let (plan, factory) = session.plan(&args).await?;
            let mut snapshot = collect::collect(&plan, &factory, &settings, &progress).await;
            if let Some(st) = selftest_args {
                let providers = KmsProviderFactory {
                    sessions: Arc::new(factory),
                    ledger: ledger.clone(),
                    timeout: Duration::from_secs(st.selftest_timeout.max(1)),
                };
                let options = selftest_options(st, run_id(started));
                let (result, gaps) = selftest::run(&snapshot, &providers, &options).await;
                selftest::attach(&mut snapshot, result, gaps);
            }
            Ok::<_, SessionError>(snapshot)
        };
        tokio::select! {
            r = work => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    let Some(snapshot) = collected else {
        progress.hide();
        eprintln!("interrupted: no snapshot was written");
        std::process::exit(130);
    };
    let mut snapshot = snapshot?;
    if let Some(activity) = activity {
        eprintln!(
            "KMS activity: {} events in {} log files ({} unreadable), {} detections{}",
            activity.activity.events,
            activity.scan.files_read,
            activity.scan.issues.len(),
            activity.activity.detections.len(),
            activity
                .integrity
                .as_ref()
                .map(|i| format!(
                    "; digests {}",
                    if i.intact() { "intact" } else { "NOT intact" }
                ))
                .unwrap_or_default()
        );
        snapshot.kms_activity = Some(activity);
    }
    let summary = collect::summarize(&snapshot, &ledger, clock);
    let sha = write_snapshot(&snapshot, out)
        .with_context(|| format!("could not write the snapshot to {}", out.display()))?;
    eprintln!("{summary}");
    if let Some(st) = &snapshot.selftest {
        eprintln!("{}", selftest_summary(st));
    }
    eprintln!("wrote {} (sha256 {sha})", out.display());
    for gap in snapshot.gaps.iter().take(20) {
        // The error code comes from AWS: no control characters reach the terminal.
        eprintln!(
            "gap: {} {} {}:{} {}",
            gap.account_id,
            gap.region,
            gap.service,
            gap.api,
            term_safe(&gap.error_code)
        );
    }
    if snapshot.gaps.len() > 20 {
        eprintln!("... {} more gaps in the snapshot", snapshot.gaps.len() - 20);
    }
    Ok(())
}

fn selftest_options(args: &SelfTestArgs, run_id: String) -> SelfTestOptions {
    SelfTestOptions {
        keys: args.keys.clone(),
        max_keys: args.max_keys,
        ..SelfTestOptions::new(run_id)
    }
}

/// One line: how many keys passed, failed, could not be tested.
fn selftest_summary(st: &crate::snapshot::SelfTest) -> String {
    let count = |r: &str| st.keys.iter().filter(|k| k.result == r).count();
    format!(
        "self-test ({}): known-answer tests {}, {} keys PASS, {} FAIL, {} ERROR, {} NOT_TESTED",
        st.provider,
        if st.kat.passed { "passed" } else { "FAILED" },
        count("PASS"),
        count("FAIL"),
        count("ERROR"),
        count("NOT_TESTED")
    )
}

/// Runs the self-test on a loaded snapshot and writes the result as a new snapshot (any
/// earlier self-test and its gaps are replaced).
fn selftest_to(
    mut snapshot: crate::snapshot::Snapshot,
    out: &Path,
    simulated: bool,
    args: &SelfTestArgs,
    aws: &AwsArgs,
) -> Result<()> {
    snapshot
        .gaps
        .retain(|g| g.evidence != crate::snapshot::EvidenceKind::SelfTest);
    snapshot.selftest = None;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let options = selftest_options(args, run_id(Utc::now()));
    let (result, gaps) = if simulated {
        let provider = SimulatedFactory(Arc::new(Simulated::for_snapshot(&snapshot)));
        runtime.block_on(selftest::run(&snapshot, &provider, &options))
    } else {
        let accounts: Vec<String> = snapshot
            .scope
            .accounts
            .iter()
            .map(|a| a.account_id.clone())
            .collect();
        let collect_args = CollectArgs {
            profile: aws.profile.clone(),
            regions: snapshot.scope.regions.clone(),
            accounts,
            role_name: aws.role_name.clone(),
            external_id: aws.external_id.clone(),
            endpoint_url: aws.endpoint_url.clone(),
            max_attempts: aws.max_attempts,
            ..CollectArgs::default()
        };
        let ledger = Arc::new(Ledger::default());
        runtime.block_on(async {
            let session = Session::connect(&collect_args, ledger.clone()).await?;
            let (_plan, factory) = session.plan(&collect_args).await?;
            let providers = KmsProviderFactory {
                sessions: Arc::new(factory),
                ledger,
                timeout: Duration::from_secs(args.selftest_timeout.max(1)),
            };
            Ok::<_, SessionError>(selftest::run(&snapshot, &providers, &options).await)
        })?
    };
    selftest::attach(&mut snapshot, result, gaps);
    let sha = write_snapshot(&snapshot, out)
        .with_context(|| format!("could not write the snapshot to {}", out.display()))?;
    if let Some(st) = &snapshot.selftest {
        eprintln!("{}", selftest_summary(st));
    }
    eprintln!("wrote {} (sha256 {sha})", out.display());
    Ok(())
}

/// Loads the controls and the config. The config is, in order: `--config`, `keyproof.toml`
/// beside the snapshot, `./keyproof.toml`, or the built-in defaults.
fn load_rules(eval: &EvalArgs, snapshot: &Path) -> Result<(ControlSet, Config)> {
    let controls = match &eval.controls {
        Some(dir) => ControlSet::from_dir(dir)?,
        None => ControlSet::embedded()?,
    };
    let beside = snapshot
        .parent()
        .map(|d| d.join("keyproof.toml"))
        .filter(|p| p.exists());
    let cwd = Some(PathBuf::from("keyproof.toml")).filter(|p| p.exists());
    let config_path = eval.config.clone().or(beside).or(cwd);
    match &config_path {
        Some(p) => eprintln!("using config {}", p.display()),
        None => eprintln!("using the default config (no keyproof.toml found)"),
    }
    let config = Config::load(config_path.as_deref())?;
    Ok((controls, config))
}

/// Evaluate, build the report model, write the formats, print a summary.
fn produce(
    loaded: &LoadedSnapshot,
    snapshot_path: &Path,
    out: &Path,
    eval: &EvalArgs,
    render: &RenderArgs,
    seal: Option<&SealArgs>,
) -> Result<ExitCode> {
    let (controls, config) = load_rules(eval, snapshot_path)?;
    let findings = evaluate(&loaded.snapshot, &controls, &config);
    let mut report = build_report(loaded, &controls, &config, &findings, eval.framework);
    // A sealed run takes its seal time, reads the history and seals under the seal lock, so that
    // it links to every run sealed before it and one sealed at the same moment waits its turn.
    let _seal_lock = match seal {
        Some(_) => Some(
            crate::schedule::seal_lock(&runs_dir_of(out))
                .context("could not take the runs directory's seal lock")?,
        ),
        None => None,
    };
    let sealed_at = Utc::now();
    if seal.is_some() {
        report.history = history_section(out, sealed_at, &findings, &controls);
    }
    let mut formats = render.format.clone();
    formats.sort();
    formats.dedup();
    let templates = Templates {
        dir: render.templates.clone(),
    };
    let written = write_reports(&report, &formats, out, &templates)
        .with_context(|| format!("could not write reports to {}", out.display()))?;
    for p in &written {
        eprintln!("wrote {}", p.display());
    }
    if let Some(seal) = seal {
        seal_run(
            out,
            loaded,
            &controls,
            &config,
            eval.framework,
            seal,
            sealed_at,
        )?;
    }
    let t = &report.totals;
    println!(
        "snapshot {}: {} FAIL, {} ERROR, {} MANUAL, {} PASS, {} NOT_APPLICABLE",
        loaded.sha256, t.fail, t.error, t.manual, t.pass, t.not_applicable
    );
    Ok(gate(&findings, &controls, eval.fail_on))
}

/// Writes the run directory's manifest.json (signed when a key is given), chained to the run
/// before it.
fn seal_run(
    dir: &Path,
    loaded: &LoadedSnapshot,
    controls: &ControlSet,
    config: &Config,
    framework: Framework,
    seal: &SealArgs,
    sealed_at: DateTime<Utc>,
) -> Result<()> {
    use sha2::Digest;
    let signer: Option<Box<dyn crate::bundle::ManifestSigner>> =
        match (&seal.sign_key, &seal.sign_with_kms) {
            (Some(path), _) => Some(Box::new(
                crate::bundle::load_signing_key(path)
                    .context("could not load the signing key; `keyproof keys init` makes one")?,
            )),
            (None, Some(key)) => Some(Box::new(
                crate::bundle::KmsSigner::connect(key)
                    .context("could not use the KMS signing key")?,
            )),
            (None, None) => None,
        };
    let scope = &loaded.snapshot.scope;
    let config_sha = hex::encode(sha2::Sha256::digest(config.canonical_json().as_bytes()));
    let framework = framework.to_string();
    let (manifest, sha) = crate::bundle::seal(
        dir,
        crate::bundle::SealInput {
            snapshot_sha256: &loaded.sha256,
            controls_digest: &controls.digest,
            config_sha256: &config_sha,
            framework: &framework,
            scope: crate::bundle::ManifestScope {
                accounts: scope
                    .accounts
                    .iter()
                    .map(|a| a.account_id.clone())
                    .collect(),
                regions: scope.regions.clone(),
            },
            sealed_at,
            signer: signer.as_deref(),
        },
    )
    .with_context(|| format!("could not seal {}", dir.display()))?;
    let manifest_path = dir.join(crate::bundle::MANIFEST);
    match &signer {
        Some(s) => eprintln!(
            "wrote {} (sha256 {sha}, {} files, signed by {} key {})",
            manifest_path.display(),
            manifest.files.len(),
            s.info().algorithm,
            s.info().public_key_sha256
        ),
        None => eprintln!(
            "wrote {} (sha256 {sha}, {} files, UNSIGNED: pass --sign-key, see `keyproof keys init`)",
            manifest_path.display(),
            manifest.files.len()
        ),
    }
    if let Some(prev) = &manifest.previous {
        eprintln!(
            "chained to run {} (manifest sha256 {})",
            term_safe(&prev.run_id),
            prev.manifest_sha256
        );
    }
    // The history is an index of the sealed runs beside this one; failing to update it loses
    // nothing (`keyproof history --rebuild` re-creates it), so it only warns.
    let runs_dir = runs_dir_of(dir);
    match crate::history::History::open(&runs_dir).and_then(|mut h| h.index_run(dir)) {
        Ok(()) => eprintln!(
            "indexed in {}",
            runs_dir.join(crate::history::DATABASE).display()
        ),
        Err(e) => eprintln!("warning: run not added to the history: {e}"),
    }
    if let Some(target) = seal.publish.as_ref().or(config.publish.target.as_ref()) {
        publish_run(dir, target, &config.publish, seal.publish_unlocked).with_context(|| {
            format!(
                "the run is sealed in {} but was not published; retry with `keyproof publish {} --to {}`",
                dir.display(),
                dir.display(),
                term_safe(target)
            )
        })?;
    }
    Ok(())
}

/// Publishes a sealed run to S3 and says where, until when it is locked.
fn publish_run(
    dir: &Path,
    target: &str,
    config: &crate::bundle::PublishConfig,
    allow_unlocked: bool,
) -> Result<()> {
    let options = crate::bundle::PublishOptions {
        target: target.parse()?,
        retention_days: config.retention_days,
        allow_unlocked,
    };
    let published = crate::bundle::publish(dir, &options)?;
    match &published.lock {
        Some((mode, until)) => eprintln!(
            "published {} files ({} bytes) to {} under Object Lock {mode} until {}",
            published.files,
            published.bytes,
            term_safe(&published.location),
            until.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => eprintln!(
            "published {} files ({} bytes) to {} WITHOUT Object Lock: the evidence there can be changed or deleted",
            published.files,
            published.bytes,
            term_safe(&published.location)
        ),
    }
    Ok(())
}

fn print_history(rows: &[crate::history::RunRow]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<17} {:>8} {:>7} {:>5} {:>5} {:>6} {:>5} {:>5}",
        "RUN", "SEALED (UTC)", "ACCOUNTS", "REGIONS", "FAIL", "ERROR", "MANUAL", "PASS", "N/A"
    )?;
    for r in rows {
        let n = |s: &str| r.counts.get(s).copied().unwrap_or(0);
        writeln!(
            out,
            "{:<24} {:<17} {:>8} {:>7} {:>5} {:>5} {:>6} {:>5} {:>5}",
            term_safe(&r.run_id),
            r.sealed_at.format("%Y-%m-%d %H:%M"),
            r.accounts.len(),
            r.regions.len(),
            n("FAIL"),
            n("ERROR"),
            n("MANUAL"),
            n("PASS"),
            n("NOT_APPLICABLE")
        )?;
        let mut reqs: Vec<(&String, &std::collections::BTreeMap<String, u64>)> =
            r.by_requirement.iter().collect();
        reqs.sort_by_key(|(id, _)| crate::rules::pci::requirement_sort_key(id));
        let failing: Vec<String> = reqs
            .iter()
            .filter_map(|(id, c)| {
                let (f, e) = (
                    c.get("FAIL").copied().unwrap_or(0),
                    c.get("ERROR").copied().unwrap_or(0),
                );
                (f + e > 0).then(|| format!("{id} {f}F/{e}E"))
            })
            .collect();
        if !failing.is_empty() {
            writeln!(out, "    failing: {}", failing.join(", "))?;
        }
    }
    Ok(())
}

fn print_diff(d: &crate::history::Diff) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} -> {}", term_safe(&d.from), term_safe(&d.to))?;
    let line = |i: &crate::history::DiffItem| {
        format!(
            "{:<6} {:<8} {:<34} {}/{}/{}",
            i.status,
            i.severity,
            i.key.control_id,
            term_safe(&i.key.account_id),
            term_safe(&i.key.region),
            term_safe(&i.key.resource_id)
        )
    };
    let findings: [(&str, &[crate::history::DiffItem]); 3] = [
        ("newly failing", &d.newly_failing),
        ("fixed", &d.fixed),
        ("still failing", &d.still_failing),
    ];
    for (title, items) in findings {
        writeln!(out, "\n{title} ({}):", items.len())?;
        for i in items {
            if title == "still failing" {
                writeln!(
                    out,
                    "  {}  (failing for {} runs)",
                    line(i),
                    i.consecutive_runs
                )?;
            } else {
                writeln!(out, "  {}", line(i))?;
            }
        }
    }
    let resources: [(&str, &[String]); 2] = [
        ("new resources", &d.new_resources),
        ("vanished resources", &d.vanished_resources),
    ];
    for (title, items) in resources {
        writeln!(out, "\n{title} ({}):", items.len())?;
        for r in items {
            writeln!(out, "  {}", term_safe(r))?;
        }
    }
    Ok(())
}

/// `keyproof schedule`: waits for each fire time and runs the job as a child process.
fn schedule_loop(
    config_path: &Path,
    max_runs: Option<u32>,
    duration: Option<u64>,
) -> Result<ExitCode> {
    let config = Config::load(Some(config_path))?;
    let sc = &config.schedule;
    let schedule = crate::schedule::Schedule::parse(sc)?;
    let runs_dir = PathBuf::from(&sc.runs_dir);
    let deadline = duration.map(|s| Instant::now() + Duration::from_secs(s));
    let exe = std::env::current_exe().context("cannot find the keyproof executable")?;
    let mut runs = 0u32;
    let last_sealed = || -> Option<DateTime<Utc>> {
        crate::history::History::open(&runs_dir)
            .ok()?
            .runs()
            .ok()?
            .last()
            .map(|r| r.sealed_at)
    };
    eprintln!(
        "schedule `{}` ({} into {}); next run {}",
        term_safe(&sc.cron),
        sc.job,
        runs_dir.display(),
        schedule
            .next_after(Utc::now())
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into())
    );
    let mut due_now = schedule.missed(last_sealed(), Utc::now());
    if due_now {
        eprintln!("the last scheduled run was missed: catching up now");
    }
    loop {
        if max_runs.is_some_and(|m| runs >= m) {
            break;
        }
        if !due_now {
            let Some(next) = schedule.next_after(Utc::now()) else {
                eprintln!("the schedule has no further fire times");
                break;
            };
            // Sleep in short steps so that the deadline is honoured.
            loop {
                let now = Utc::now();
                if now >= next {
                    break;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(ExitCode::SUCCESS);
                }
                let left = (next - now).to_std().unwrap_or_default();
                std::thread::sleep(left.min(Duration::from_millis(250)));
            }
        }
        due_now = false;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let Some(_lock) = crate::schedule::try_lock(&runs_dir)? else {
            eprintln!("skipped: another run holds {}", crate::schedule::LOCK_FILE);
            continue;
        };
        let out = runs_dir.join(run_id(Utc::now()));
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg(&sc.job).arg("--out").arg(&out);
        if sc.job == "run" {
            cmd.arg("--config").arg(config_path);
        }
        if let Some(key) = &sc.sign_key {
            cmd.arg("--sign-key").arg(key);
        }
        cmd.args(&sc.args);
        eprintln!("run {} started", out.display());
        let status = cmd.status().context("could not start the scheduled run")?;
        runs += 1;
        eprintln!("run {} finished: {status}", out.display());
        let expired = crate::schedule::expired(&runs_dir, sc.keep_months, Utc::now());
        for e in &expired {
            match &e.needed_by {
                Some(next) => eprintln!(
                    "retention: deleting run {} (sealed {}, older than {} months); the chain of run {} will end there",
                    e.dir.display(),
                    e.sealed_at,
                    sc.keep_months,
                    term_safe(next)
                ),
                None => eprintln!(
                    "retention: deleting run {} (sealed {}, older than {} months)",
                    e.dir.display(),
                    e.sealed_at,
                    sc.keep_months
                ),
            }
        }
        if !expired.is_empty() {
            crate::schedule::remove(&expired)?;
            crate::history::History::open(&runs_dir)?.rebuild(&runs_dir)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The directory whose run directories and history a run directory belongs to.
fn runs_dir_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What the report of the run in `dir` shows about the runs before it; `None` (with a warning
/// when the history cannot be read) without earlier runs.
fn history_section(
    dir: &Path,
    sealed_at: DateTime<Utc>,
    findings: &[Finding],
    controls: &ControlSet,
) -> Option<crate::history::HistorySection> {
    let current: crate::history::Findings = findings
        .iter()
        .map(|f| {
            let def = controls.get(&f.control_id).map(|c| &c.def);
            (
                crate::history::FindingKey {
                    control_id: f.control_id.clone(),
                    account_id: f.account_id.clone(),
                    region: f.region.clone(),
                    resource_id: f.resource_id.clone(),
                },
                crate::history::RunFinding {
                    status: f.status.as_str().to_string(),
                    severity: def.map(|d| d.severity.to_string()).unwrap_or_default(),
                    resource_type: f.resource_type.as_str().to_string(),
                    requirements: def.map(|d| d.pci_dss_v4.clone()).unwrap_or_default(),
                },
            )
        })
        .collect();
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let runs_dir = runs_dir_of(dir);
    if !runs_dir.join(crate::history::DATABASE).exists() {
        return None;
    }
    match crate::history::History::open(&runs_dir)
        .and_then(|h| h.section_for(&run_id, sealed_at, &current))
    {
        Ok(section) => section,
        Err(e) => {
            eprintln!("warning: the report has no history section: {e}");
            None
        }
    }
}

/// `keyproof verify`: prints what is intact and what is not; exit 1 on any failure.
fn verify_run(
    dir: &Path,
    public_key: Option<&Path>,
    no_signature: bool,
    json: bool,
) -> Result<ExitCode> {
    use crate::bundle::{LinkStatus, SignatureStatus};
    let key = match public_key {
        Some(p) => Some(crate::bundle::load_public_key(p)?),
        None if no_signature => None,
        None => bail!(
            "give the signer's public key with --public-key FILE, or --no-signature to check files and chain only"
        ),
    };
    let v = crate::bundle::verify(dir, key.as_ref());
    let ok = v.intact() && (no_signature || v.signature == SignatureStatus::Valid);
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let mut out = std::io::stdout().lock();
    if let Some(e) = &v.error {
        writeln!(out, "NOT VERIFIED: {}", term_safe(e))?;
        return Ok(ExitCode::from(1));
    }
    writeln!(
        out,
        "run {} manifest sha256 {}",
        term_safe(&v.run_id),
        v.manifest_sha256
    )?;
    for (what, list) in [
        ("altered", &v.altered),
        ("missing", &v.missing),
        ("extra", &v.extra),
    ] {
        for f in list {
            writeln!(out, "  {what}: {}", term_safe(f))?;
        }
    }
    if v.altered.is_empty() && v.missing.is_empty() && v.extra.is_empty() {
        writeln!(out, "  files: all match the manifest")?;
    }
    let signer = v.signer_public_key_sha256.as_deref().unwrap_or("none");
    match &v.signature {
        SignatureStatus::Valid => writeln!(out, "  signature: valid (key sha256 {signer})")?,
        SignatureStatus::NotChecked => writeln!(out, "  signature: NOT checked (--no-signature)")?,
        SignatureStatus::Invalid(d) | SignatureStatus::Unsigned(d) => {
            writeln!(out, "  signature: INVALID: {d}")?
        }
    }
    for link in &v.chain {
        let (a, b) = (term_safe(&link.run_id), term_safe(&link.previous_run_id));
        match &link.status {
            LinkStatus::Intact => writeln!(out, "  chain: {a} -> {b} intact")?,
            LinkStatus::NotPresent => {
                writeln!(out, "  chain: {a} -> {b}: {b} is not here; the chain ends")?
            }
            LinkStatus::Broken(d) => writeln!(out, "  chain: {a} -> {b} BROKEN: {}", term_safe(d))?,
            LinkStatus::PredecessorAltered(d) => {
                writeln!(out, "  chain: {a} -> {b}: {b} ALTERED: {}", term_safe(d))?
            }
        }
    }
    writeln!(out, "{}", if ok { "VERIFIED" } else { "NOT VERIFIED" })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Exit 1 when a FAIL or ERROR at or above `fail_on` exists.
fn gate(findings: &[Finding], controls: &ControlSet, fail_on: Option<Severity>) -> ExitCode {
    let Some(threshold) = fail_on else {
        return ExitCode::SUCCESS;
    };
    let tripped = findings.iter().any(|f| {
        matches!(f.status, Status::Fail | Status::Error)
            && controls
                .get(&f.control_id)
                .is_some_and(|c| c.def.severity >= threshold)
    });
    if tripped {
        eprintln!("failing: findings of severity {threshold} or higher are FAIL or ERROR");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Removes control characters so that text from AWS cannot drive the terminal.
fn term_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn print_evaluation(report: &crate::report::Report) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let m = &report.meta;
    writeln!(out, "snapshot sha256 {}", m.snapshot_sha256)?;
    if let Some(n) = &m.source_notice {
        writeln!(out, "{n}")?;
    }
    writeln!(
        out,
        "\n{:<10} {:<15} {:>5} {:>5} {:>5} {:>6}  title",
        "req", "status", "fail", "error", "pass", "manual"
    )?;
    for r in &report.requirements {
        writeln!(
            out,
            "{:<10} {:<15} {:>5} {:>5} {:>5} {:>6}  {}",
            r.id,
            r.status.as_str(),
            r.counts.fail,
            r.counts.error,
            r.counts.pass,
            r.counts.manual,
            r.title
        )?;
    }
    writeln!(out)?;
    for f in report.actionable() {
        writeln!(
            out,
            "{:<5} {:<32} {} {} {} {}",
            f.status.as_str(),
            f.control_id,
            f.account_id,
            f.region,
            term_safe(&f.resource_id),
            term_safe(if f.detail.is_empty() {
                &f.evidence_text
            } else {
                &f.detail
            })
        )?;
    }
    let t = &report.totals;
    writeln!(
        out,
        "\n{} FAIL, {} ERROR, {} MANUAL, {} PASS, {} NOT_APPLICABLE",
        t.fail, t.error, t.manual, t.pass, t.not_applicable
    )?;
    Ok(())
}

fn print_control_list(set: &ControlSet) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for c in &set.controls {
        writeln!(
            out,
            "{:<32} {:<8} {:<18} v4.0.1 {:<16} v3.2.1 {:<12} {}",
            c.def.id,
            c.def.severity.to_string(),
            c.def.applies_to.as_str(),
            c.def.pci_dss_v4.join(","),
            c.def.pci_dss_v321.join(","),
            c.def.title
        )?;
    }
    Ok(())
}

fn print_control(c: &crate::rules::Control) -> Result<()> {
    let d = &c.def;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} — {}", d.id, d.title)?;
    writeln!(
        out,
        "severity: {}    applies to: {}    file: {}",
        d.severity, d.applies_to, c.source
    )?;
    writeln!(
        out,
        "PCI DSS v4.0.1: {}    v3.2.1: {}",
        d.pci_dss_v4.join(", "),
        d.pci_dss_v321.join(", ")
    )?;
    if let Some(r) = &d.aws_config_rule {
        writeln!(out, "AWS Config rule: {r}")?;
    }
    if let Some(s) = &d.security_hub {
        writeln!(out, "Security Hub: {s}")?;
    }
    writeln!(out, "\n{}", d.description.trim())?;
    let needs: Vec<&str> = d.needs.iter().map(|n| n.as_str()).collect();
    writeln!(out, "\nneeds evidence: {}", needs.join(", "))?;
    if let Some(w) = &d.where_ {
        writeln!(out, "where: {}", w.trim())?;
    }
    if let Some(r) = &d.review {
        writeln!(out, "review (MANUAL when true): {}", r.trim())?;
    }
    if let Some(ch) = &d.check {
        writeln!(out, "check: {}", ch.trim())?;
    } else if !d.evidence.is_empty() {
        writeln!(
            out,
            "verdict: MANUAL review of the evidence (ERROR when it is missing)"
        )?;
    }
    if !d.evidence.is_empty() {
        writeln!(out, "evidence: {}", d.evidence.join(", "))?;
    }
    writeln!(out, "\nremediation: {}", d.remediation.text.trim())?;
    if let Some(cli) = &d.remediation.aws_cli {
        writeln!(out, "\nAWS CLI:\n  {}", cli.trim())?;
    }
    if let Some(tf) = &d.remediation.terraform {
        writeln!(out, "\nTerraform:\n{}", tf.trim_end())?;
    }
    if let Some(u) = &d.remediation.url {
        writeln!(out, "\nsee {u}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T06:00:00Z")
            .expect("time")
            .to_utc()
    }

    #[test]
    fn since_accepts_days_dates_and_times() {
        let day = |s: &str| parse_since(s, now()).expect(s).to_rfc3339();
        assert_eq!(day("90d"), "2026-08-31T06:00:00+00:00");
        assert_eq!(day("2026-09-01"), "2026-09-01T00:00:00+00:00");
        assert_eq!(
            day("2026-09-01T12:30:00+02:00"),
            "2026-09-01T10:30:00+00:00"
        );
        for bad in ["ninety", "90", "d", "2026-13-01"] {
            assert!(parse_since(bad, now()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn run_ids_sort_by_time_and_are_safe_directory_names() {
        assert_eq!(run_id(now()), "20261129T060000Z");
    }
}
