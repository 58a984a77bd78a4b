//! `scimtrail serve` run as a process, as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

/// The proxy address a `scimtrail serve` child prints (its stdout piped), within 30 s. Its
/// stdout is read to the end in the background: a pipe closed after the address would fail
/// the next line the proxy prints.
pub async fn proxy_address(child: &mut Child) -> String {
    addresses(child).await.0
}

/// The proxy's and the admin listener's addresses a `scimtrail serve` child prints (`IP:PORT`
/// each), within 30 s; its stdout is read to the end in the background.
pub async fn addresses(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut proxy = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let proxy_line = line
                .strip_prefix("scimtrail: proxy on http://")
                .or_else(|| line.strip_prefix("scimtrail: proxy on https://"));
            if let Some(addr) = proxy_line {
                proxy = Some(addr.to_owned());
            } else if let (Some(admin), Some(proxy)) = (line.strip_prefix("scimtrail: admin on http://"), proxy.take())
            {
                let _ = found.send((proxy, admin.to_owned()));
            }
        }
    });
    tokio::task::spawn_blocking(move || address.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("the reader")
        .expect("serve prints its addresses")
}

/// Sends `signal` (`HUP`, `TERM`, …) to `child` with kill(1); the signal must be delivered.
pub fn signal(child: &Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal} {}", child.id());
}

/// Stops a `scimtrail serve` child with SIGTERM and returns what it logged (its stderr, piped);
/// it must exit 0.
pub async fn stop(child: Child) -> String {
    signal(&child, "TERM");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("the waiter")
        .expect("serve is waited for");
    assert!(output.status.success(), "serve exited with {}", output.status);
    String::from_utf8_lossy(&output.stderr).into_owned()
}
