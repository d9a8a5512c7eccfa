//! keyproof turns the state of an AWS estate's key management into audit-ready PCI DSS
//! evidence.
//!
//! Data flows one way, one module a stage:
//! [`collect`] (AWS → snapshot) → [`snapshot`] (the evidence contract, hashed) →
//! [`analyze`] (derived facts) → [`rules`] (controls as data → findings) →
//! [`report`] (PDF, HTML, CSV, JSON) → [`bundle`] (signed, chained evidence). [`selftest`] proves
//! keys work; [`logs`] reads CloudTrail log files at scale (KMS activity and detections); [`cli`]
//! drives it all.

pub mod analyze;
pub mod bundle;
pub mod cli;
pub mod collect;
pub mod config;
pub mod fsutil;
pub mod history;
pub mod logs;
pub mod report;
pub mod rules;
pub mod schedule;
pub mod selftest;
pub mod snapshot;
