//! The one integration test binary (see DESIGN.md §2.8): every module below starts real
//! servers on loopback port 0 and talks HTTP to them.

// Test helpers fail the test when what they wait for does not happen.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod alerts;
mod findings;
mod hardening;
mod normalization;
mod pacing;
mod privacy;
mod proxy;
mod refapp;
mod replay;
mod rules;
mod scim2_server;
mod store_faults;
mod ui;
mod upstream_auth;
