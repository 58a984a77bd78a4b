//! Test harness: real servers on loopback port 0 and a real HTTP client.
//!
//! `refapp::start()` runs the reference application in-process on `127.0.0.1:0`;
//! [`Client`] speaks HTTP/1.1 to it over a socket, as any SCIM client would.

// Test support: a failure here (the server under test not answering) is the test failing.
#![allow(clippy::expect_used)]

pub mod client;
pub mod guarded;
pub mod limited;
pub mod misbehave;
pub mod postgres_cluster;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod refapp;
pub mod slow;
pub mod spy;
pub mod tls_client;
pub mod webhook;

pub use client::{Client, TestResponse};

/// The key the tests' proxies fingerprint credentials with, in process and as spawned
/// binaries (`SCIMTRAIL_FINGERPRINT_KEY`): a store one writes, another may replay from.
pub const FINGERPRINT_KEY: &str = "the tests' fingerprint key, not a secret";
