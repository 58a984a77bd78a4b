//! The SCIM 2.0 language (RFC 7643 schema, RFC 7644 protocol) as a pure library.
//!
//! # Brief overview
//! - [`schema`]: the core `User`, `Group` and `EnterpriseUser` schemas as static data, and
//!   [`schema::ResourceType`], which resolves attribute names (case-insensitively, URN-qualified
//!   or not) to their definition and canonical spelling.
//! - [`json`]: helpers for the JSON view of resources: case-insensitive member lookup that keeps
//!   every unknown attribute and extension object unchanged.
//! - [`filter`]: the complete filter language of RFC 7644 §3.4.2.2: parser with byte offsets,
//!   printer (`print(parse(x))` parses to the same tree), validation against a schema, evaluation.
//! - [`path`]: attribute paths (RFC 7644 §3.10), with value-path filters and sub-attributes.
//! - [`patch`]: PATCH requests (RFC 7644 §3.5.2): strict parsing and application.
//! - [`resource`]: checking and canonicalising a resource body against its schemas, and
//!   projecting it for a response (`attributes`, `excludedAttributes`, `returned`).
//! - [`message`]: ListResponse, SearchRequest, BulkRequest/BulkResponse and the error body.
//! - [`redact`]: redaction of the `password` attribute wherever it appears.
//! - [`strict_json`]: JSON as a SCIM body must be: a member name (in any casing) once per object.
//! - [`write_keys`]: what a write touches, as keys (attribute paths, members), and which later
//!   keys cover which earlier ones.
//!
//! # Invariants
//! - No I/O, no async, no global state: every function is deterministic.
//! - Input never panics: every parser returns an error carrying where and what went wrong.
//! - Unknown attributes and extension objects are kept unchanged by every transformation that
//!   does not explicitly target them.
#![deny(missing_docs)]

pub mod endpoint;
pub mod error;
pub mod filter;
pub mod json;
pub mod message;
pub mod patch;
pub mod path;
pub mod redact;
pub mod resource;
pub mod schema;
pub mod strict_json;
mod value;
pub mod write_keys;

pub use error::{ScimError, ScimType};
pub use filter::Filter;

pub use patch::PatchRequest;
pub use path::{AttrPath, PatchPath};
pub use schema::ResourceType;
