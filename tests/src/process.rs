//! `scimtrail serve` run as a process, as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

/// The proxy address a `scimtrail serve` child prints (its stdout piped), within 30 s. Its
/// stdout is read to the end in the background: a pipe closed after the address would fail
/// the next line the proxy prints.
pub async fn proxy_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("scimtrail: proxy on http://") {
                let _ = found.send(addr.to_owned());
            }
        }
    });
    tokio::task::spawn_blocking(move || address.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("the reader")
        .expect("serve prints its address")
}
