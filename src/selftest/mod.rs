//! The envelope-encryption self-test: known-answer tests of AES-256-GCM, then a live
//! GenerateDataKey → encrypt → Decrypt round trip per in-scope key, recorded as evidence.
//!
//! Not built yet (see the issue "Embedded envelope-encryption self-test"); this module holds its
//! place in the pipeline: collect → snapshot → self-test → evaluate → report.
