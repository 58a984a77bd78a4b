//! `scimtrail idps` and `scimtrail rules test`.

use clap::{Args, Subcommand};
use scimtrail_app::config::RawConfig;
use scimtrail_app::{rules_dir, Environment};
use scimtrail_rules::{run_tests, Catalog, Origin, Profile, ProfileError, RuleSource};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub(crate) enum RulesCommand {
    /// Run the test cases of rule files: every `*.toml` of each directory given, and each file
    /// given (`extends` resolved against the bundled profiles and the other files given); none
    /// given runs the bundled profiles' cases. Prints a line per case and each failure's
    /// diff; exits non-zero on any failure, or a file that cannot be loaded.
    Test {
        /// Rule directories or files (TOML).
        paths: Vec<PathBuf>,
    },
}

/// `scimtrail idps`: which profiles, from where.
#[derive(Debug, Args)]
pub(crate) struct IdpsArgs {
    /// A configuration file whose `[rules] dir` adds the operator's profiles (default:
    /// $SCIMTRAIL_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The operator's rule directory (default: $SCIMTRAIL_RULES_DIR, else the configuration's
    /// `[rules] dir`).
    #[arg(long)]
    rules_dir: Option<PathBuf>,
}

/// Every profile `serve` would offer with these arguments, each with where it came from, its
/// `rules_version` and its rules (for one that extends another: what it added, replaced and
/// disabled).
pub(crate) fn idps(args: IdpsArgs) -> anyhow::Result<()> {
    let environment = Environment::of_process();
    let dir = match args.rules_dir {
        Some(dir) => Some(dir),
        None => match environment.get("SCIMTRAIL_RULES_DIR") {
            Some(dir) => Some(PathBuf::from(dir)),
            None => match crate::config_path(args.config, &environment) {
                Some(path) => RawConfig::from_file(&path)?.rules.dir,
                None => None,
            },
        },
    };
    let catalog = match &dir {
        Some(dir) => rules_dir::load(dir)?,
        None => Catalog::bundled()?,
    };
    for profile in catalog.profiles() {
        let base = profile.extends.as_deref().and_then(|name| catalog.get(name));
        print!("{}", describe(profile, base.map(AsRef::as_ref)));
        println!();
    }
    if dir.is_none() {
        println!("(bundled profiles only: --rules-dir DIR, $SCIMTRAIL_RULES_DIR or a configuration's [rules] dir adds the operator's)");
    }
    Ok(())
}

/// A profile's heading and rules; against its base, each rule marked `+` (added) or `~`
/// (replaced), and its base's rules it disabled marked `-`.
fn describe(profile: &Profile, base: Option<&Profile>) -> String {
    let mut out = format!(
        "{} ({}{}, rules_version {}): {}\n",
        profile.name,
        profile.origin,
        profile
            .extends
            .as_ref()
            .map(|name| format!(", extends {name}"))
            .unwrap_or_default(),
        profile.version(),
        profile.description
    );
    for rule in &profile.rules {
        let mark = match base.map(|base| base.rules.iter().find(|r| r.id == rule.id)) {
            None => ' ',
            Some(None) => '+',
            Some(Some(inherited)) if inherited == rule => ' ',
            Some(Some(_)) => '~',
        };
        out.push_str(&format!(
            "{mark} {:<4} {:<32} {}\n",
            rule.id,
            rule.action.name(),
            rule.why
        ));
    }
    for disabled in &profile.disabled {
        out.push_str(&format!("- {:<4} {:<32} {}\n", disabled.id, "(disabled)", disabled.why));
    }
    out
}

pub(crate) fn run(command: RulesCommand) -> anyhow::Result<()> {
    let RulesCommand::Test { paths } = command;
    let (profiles, refused): (Vec<Profile>, Vec<ProfileError>) = if paths.is_empty() {
        (scimtrail_rules::builtin_profiles()?, Vec::new())
    } else {
        let mut sources: Vec<RuleSource> = Vec::new();
        for path in &paths {
            sources.extend(read(path)?);
        }
        let resolution = Catalog::resolve(&sources)?;
        let operators = resolution.catalog.operators().cloned().collect();
        (operators, resolution.errors)
    };
    let (mut passed, mut failed) = (0, 0);
    for error in &refused {
        failed += 1;
        println!("FAIL  {}", error.to_string().replace('\n', "\n      "));
    }
    for profile in &profiles {
        if profile.tests.is_empty() && profile.origin != Origin::Bundled {
            println!("none  {} ({}): no [[test]] cases", profile.name, profile.origin);
        }
        for outcome in run_tests(profile) {
            match outcome.failure {
                None => {
                    passed += 1;
                    println!("ok    {} / {}", outcome.profile, outcome.name);
                }
                Some(failure) => {
                    failed += 1;
                    println!(
                        "FAIL  {} / {} ({})\n      {}",
                        outcome.profile,
                        outcome.name,
                        profile.origin,
                        failure.replace('\n', "\n      ")
                    );
                }
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    if failed > 0 {
        anyhow::bail!("{failed} rule test(s) or file(s) failed");
    }
    Ok(())
}

/// The rule files at `path`: every `*.toml` of a directory, or the file itself.
fn read(path: &Path) -> anyhow::Result<Vec<RuleSource>> {
    let metadata =
        std::fs::metadata(path).map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    Ok(match metadata.is_dir() {
        true => rules_dir::read(path)?,
        false => vec![rules_dir::read_file(path)?],
    })
}
