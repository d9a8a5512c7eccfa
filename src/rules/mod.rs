//! The rule engine stage: control definitions as data, compiled once, evaluated against a
//! snapshot into findings.
//!
//! Not for: I/O or AWS calls. The engine reads a snapshot and returns findings.

pub mod catalog;
mod cel_value;
pub mod control;
pub mod engine;
pub mod pci;

pub use control::{Control, ControlDef, ControlError, ControlSet, Remediation, Severity};
pub use engine::{EvidenceItem, Finding, Status, evaluate};
pub use pci::Framework;
