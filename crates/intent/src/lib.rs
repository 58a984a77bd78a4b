//! What the IdP intends an application to hold, and where the application differs. Pure: no
//! I/O (the store keeps the writes, the proxy reads the application).
//!
//! Every authenticated IdP write to a user or group counts as intent, whether the application
//! took it or not: a deactivation the application refused, or never received, still means the
//! IdP wants that person inactive — the leaver reconcile exists to find. A write is reduced to
//! the keys it touches (`scimtrail_scim::write_keys`), each kept with where it stands in the
//! IdP's order ([`written`]); the latest write to each key is all a resource's intent needs,
//! so the store keeps one row per key, whatever the record's retention. [`intended`] folds a
//! resource's rows, in the IdP's order, into what it should be; [`drift`] compares that with
//! what the application holds; [`repair`] plans the write that brings it back.

pub mod drift;
pub mod intended;
pub mod repair;
pub mod written;

pub use drift::{compare, unknown_to_idp, Drift, DriftKind};
pub use intended::Intended;
pub use repair::Repair;
pub use written::{intent_writes, IntentWrite, RecordedWrite};
