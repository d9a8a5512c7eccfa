//! moto, the AWS API emulator, as a test peer: started on 127.0.0.1 with a free port for one
//! test and stopped when dropped, plus the estate seeder (`tests/moto/seed.py`, boto3).
//!
//! `scripts/test` installs moto into `.venv`; `KEYPROOF_MOTO_PYTHON` names another interpreter.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running moto server (with the timestamp fix of `tests/moto/server.py`).
pub struct Moto {
    child: Child,
    /// Held open: the server exits when its stdin closes, so it cannot outlive the test.
    _stdin: Option<ChildStdin>,
    pub endpoint: String,
}

/// The Python that has moto installed.
pub fn python() -> PathBuf {
    let path = std::env::var_os("KEYPROOF_MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "moto is not installed at {}: run scripts/test once (it creates .venv with moto[server])",
        path.display()
    );
    path
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/moto")
        .join(name)
}

impl Moto {
    pub fn start() -> Moto {
        let mut child = Command::new(python())
            .arg(script("server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let stdout = child.stdout.take().expect("moto stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("moto prints its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("unexpected first line from moto: {line:?}"))
            .to_string();
        let stdin = child.stdin.take();
        Moto {
            child,
            _stdin: stdin,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Seeds the estate described in `tests/moto/seed.py` and returns what it created.
    pub fn seed(&self) -> serde_json::Value {
        self.run_seed("seed.py")
    }

    /// Creates an organization with one member account (`tests/moto/seed_org.py`).
    pub fn seed_organization(&self) -> serde_json::Value {
        self.run_seed("seed_org.py")
    }

    /// Creates an ECC_NIST_P256 signing key (`tests/moto/seed_signing.py`).
    pub fn seed_signing_key(&self) -> serde_json::Value {
        self.run_seed("seed_signing.py")
    }

    /// Runs `tests/moto/s3.py ENDPOINT ARGS` (bucket set-up, uploads, inspection).
    pub fn s3(&self, args: &[&str]) -> serde_json::Value {
        self.run_script("s3.py", args)
    }

    fn run_seed(&self, name: &str) -> serde_json::Value {
        self.run_script(name, &[])
    }

    fn run_script(&self, name: &str, args: &[&str]) -> serde_json::Value {
        let out = Command::new(python())
            .arg(script(name))
            .arg(&self.endpoint)
            .args(args)
            .output()
            .expect("run seed.py");
        assert!(
            out.status.success(),
            "{name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the seeder prints JSON")
    }

    /// Environment for a `keyproof` child process talking to this server with dummy
    /// credentials and no shared config files or instance metadata.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "eu-west-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            (
                "AWS_CONFIG_FILE",
                "/nonexistent/keyproof-test-config".into(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/keyproof-test-credentials".into(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
