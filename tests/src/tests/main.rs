//! The one integration test binary (see DESIGN.md §2.8): every module below starts real
//! servers on loopback port 0 and talks HTTP to them.

mod refapp;
