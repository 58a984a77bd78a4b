//! The reference application, started in-process on a free loopback port.

use crate::Client;
use scimtrail_refapp::{RefApp, RunningRefApp};

/// Starts a fresh, empty reference application on `127.0.0.1:0`.
pub async fn start() -> (RunningRefApp, Client) {
    let running = RefApp::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let client = Client::new(running.base_url());
    (running, client)
}
