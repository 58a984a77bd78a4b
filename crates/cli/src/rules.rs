//! `scimtrail idps` and `scimtrail rules test`.

use clap::Subcommand;
use scimtrail_rules::{builtin_profiles, run_tests, Profile};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum RulesCommand {
    /// Run the test cases embedded in rule files (the built-in profiles, or the files given).
    Test {
        /// Rule files (TOML); none runs the built-in profiles.
        files: Vec<PathBuf>,
    },
}

pub(crate) fn idps() -> anyhow::Result<()> {
    for profile in builtin_profiles()? {
        println!("{}: {}", profile.name, profile.description);
        for rule in &profile.rules {
            println!("  {:<4} {:<26} {}", rule.id, rule.action.name(), rule.why);
        }
        println!();
    }
    Ok(())
}

pub(crate) fn run(command: RulesCommand) -> anyhow::Result<()> {
    let RulesCommand::Test { files } = command;
    let profiles: Vec<Profile> = if files.is_empty() {
        builtin_profiles()?
    } else {
        files
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
                Ok(Profile::from_toml(&path.display().to_string(), &text)?)
            })
            .collect::<anyhow::Result<_>>()?
    };
    let (mut passed, mut failed) = (0, 0);
    for profile in &profiles {
        for outcome in run_tests(profile) {
            match outcome.failure {
                None => {
                    passed += 1;
                    println!("ok    {} / {}", outcome.profile, outcome.name);
                }
                Some(failure) => {
                    failed += 1;
                    println!(
                        "FAIL  {} / {}\n      {}",
                        outcome.profile,
                        outcome.name,
                        failure.replace('\n', "\n      ")
                    );
                }
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        anyhow::bail!("{failed} rule test(s) failed");
    }
    Ok(())
}
