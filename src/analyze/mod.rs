//! The analysis stage between snapshot and rules: derived facts (who uses which key, what a
//! key policy allows) computed once so that control expressions stay simple.

mod facts;
pub mod policy;

pub use facts::{KeyIndex, ResourceType, Subject, build_subjects};
