#![allow(dead_code)] // Each test binary uses what it needs of this.
//! What the binary's tests share.

use std::process::Command;

/// The binary under test.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_scimtrail");

/// Runs the binary to its end: (success, stdout, stderr).
pub(crate) fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .env("SCIMTRAIL_LOG", "warn")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY)
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The binary with these arguments, started under `umask` (as a shell would).
pub(crate) fn under_umask(umask: &str, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(BINARY)
        .args(args)
        .env("SCIMTRAIL_LOG", "warn")
        .env("SCIMTRAIL_FINGERPRINT_KEY", scimtrail_integration::FINGERPRINT_KEY);
    command
}
