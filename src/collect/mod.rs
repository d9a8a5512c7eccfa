//! The collection stage: read-only snapshots of a live AWS estate (KMS, CloudHSM, CloudTrail,
//! AWS Config), one module per service, fanned out over accounts × regions, with every failed
//! call recorded as a [`crate::snapshot::Gap`].
//!
//! Not built yet: live collection arrives with the AWS SDK (see the issue "Live collection from
//! AWS"). Until then snapshots come from the embedded sample estate
//! ([`crate::snapshot::sample::sample_estate`]) or from a file written by another keyproof.
