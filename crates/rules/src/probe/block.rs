//! The `[route.target]` block a decision is emitted as.

use super::{Decision, NOT_PROBED};
use std::fmt::Write as _;

impl Decision {
    /// The `[route.target]` block, for `application` (its base URL, without credentials): a
    /// header saying where it comes from and what it leaves at the defaults, each key under
    /// a comment naming the probe that decided it, and the report-only findings at its end.
    pub fn toml(&self, application: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Pinned by `scimtrail probe` against {}.", one_line(application));
        let _ = writeln!(
            out,
            "# Each key names the probe that decided it; the probe's report shows the evidence."
        );
        let mut defaults: Vec<String> = self
            .undecided
            .iter()
            .map(|(key, probe)| format!("{key} ({} could not tell)", probe.name()))
            .collect();
        defaults.extend(NOT_PROBED.iter().map(|key| format!("{key} (not probed)")));
        let _ = writeln!(out, "# Left at their defaults: {}.", defaults.join(", "));
        out.push_str("[route.target]\n");
        for pinned in &self.keys {
            let _ = writeln!(out, "# {}: {}", pinned.probe.name(), one_line(&pinned.why));
            let _ = writeln!(out, "{} = {}", pinned.key, pinned.value);
        }
        if !self.notes.is_empty() {
            out.push_str("#\n# Report only (no key expresses these):\n");
            for note in &self.notes {
                let _ = writeln!(
                    out,
                    "# - {}{}: {}",
                    if note.warning { "WARNING " } else { "" },
                    note.probe.name(),
                    one_line(&note.text)
                );
            }
        }
        out
    }
}

/// Text for a comment: one line, control characters out.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}
