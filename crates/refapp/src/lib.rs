//! The reference SCIM 2.0 application: strict, in memory, built on `scimtrail-scim`.
//!
//! # Brief overview
//! - [`Directory`]: the resources and every SCIM operation on them (create, get, replace,
//!   patch, delete, search, bulk), synchronous and free of HTTP, so that the semantics are
//!   tested without a socket.
//! - [`discovery`]: `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes`.
//! - [`server`]: the hyper server: routing, content types, ETags and `If-Match`, body limits,
//!   SCIM error bodies for every failure.
//!
//! # Invariants
//! - Strict: what RFC 7643/7644 do not allow is refused with the matching status and
//!   `scimType`, never silently ignored; what they allow is applied as they say, even where
//!   that hurts (a `remove` of `members` without a filter removes every member).
//! - Every response to a SCIM endpoint is `application/scim+json`; every error has a SCIM
//!   error body.
//! - Nothing panics on input: every request ends in a response.

mod bulk;
pub mod directory;
pub mod discovery;
pub mod server;

pub use directory::Directory;
pub use server::{RefApp, RunningRefApp};

/// Largest request body accepted, in bytes; also the advertised bulk `maxPayloadSize`.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Most operations accepted in one bulk request (advertised `maxOperations`).
pub const MAX_BULK_OPERATIONS: usize = 1000;
/// Most results a list returns in one page (advertised `filter.maxResults`).
pub const MAX_RESULTS: u64 = 1000;
