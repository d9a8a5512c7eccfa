//! A small harness for driving the `keyproof` binary: a temporary directory and a runner that
//! captures the exit code and output.

#![allow(dead_code)]

pub mod moto;
pub mod stub;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary directory removed when dropped.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        TestDir {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// What a run of the binary produced.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code {} (expected {expected})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts that standard error contains `text`, showing it otherwise.
    pub fn assert_stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// Runs `keyproof ARGS` in a scratch working directory.
pub fn keyproof(args: &[&str]) -> Output {
    keyproof_env(args, &[])
}

/// AWS environment variables of the host that would change which credentials, profile or region
/// the binary uses.
pub const AMBIENT_AWS: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
];

/// Runs `keyproof ARGS` in a scratch working directory with extra environment variables.
pub fn keyproof_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let cwd = tempfile::tempdir().expect("cwd");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyproof"));
    // AWS settings of the machine running the tests never leak into a test's AWS peer.
    for var in AMBIENT_AWS {
        cmd.env_remove(var);
    }
    // Nor does a signing key configured on the machine.
    cmd.env_remove("KEYPROOF_SIGNING_KEY");
    let out = cmd
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd.path())
        .output()
        .expect("run keyproof");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `keyproof demo --out OUT --format FORMATS` and expects success.
pub fn demo(out: &Path, formats: &str) -> Output {
    let run = keyproof(&[
        "demo",
        "--out",
        out.to_str().unwrap_or_default(),
        "--format",
        formats,
    ]);
    run.assert_code(0);
    run
}

/// Runs `keyproof report SNAPSHOT --format FORMATS --out OUT` and expects success.
pub fn report(snapshot: &Path, formats: &str, out: &Path) -> Output {
    let out = keyproof(&[
        "report",
        snapshot.to_str().unwrap_or_default(),
        "--format",
        formats,
        "--out",
        out.to_str().unwrap_or_default(),
    ]);
    out.assert_code(0);
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
