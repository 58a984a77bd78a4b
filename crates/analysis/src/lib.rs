//! What one exchange is and what it shows, read from the SCIM request and the application's
//! answer, and what a replay sends again, decided from the records. Pure: no I/O, no async,
//! no global state; every function is deterministic, so the proxy, replay and the fuzz
//! targets run the same code on what was recorded.
//!
//! - [`classify`]: resource type and id, operation, lifecycle, the userName a request shows.
//! - [`findings`]: what the answer shows did not take effect, and request shapes.
//! - [`bulk`]: what each operation of a bulk request became.
//! - [`replay_plan`]: which recorded exchanges a replay sends, which it skips, and why.

#![deny(missing_docs)]

pub mod bulk;
pub mod classify;
pub mod findings;
pub mod replay_plan;
