//! IdP profiles: rule files in TOML, one per IdP.
//!
//! ```toml
//! [profile]
//! name = "entra"
//! description = "Microsoft Entra ID provisioning"
//!
//! [[rule]]
//! id = "N1"
//! action = "lowercase_patch_ops"
//! why = "Entra's default PATCH capitalises op"
//!
//! [[test]]
//! name = "Replace becomes replace"
//! method = "PATCH"
//! …
//! ```

use crate::action::Action;
use crate::testcase::TestCase;
use serde::Deserialize;

/// Whether a route's profile changes the exchange or only records what it would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Forward the normalised request and return the normalised response.
    #[default]
    Enforce,
    /// Forward the original; record what would have changed.
    Observe,
}

/// One rule: an id (`N1` …), an action, and why this IdP needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule id, unique in its profile.
    pub id: String,
    /// What it does.
    pub action: Action,
    /// Why this IdP needs it (shown by `scimtrail idps`).
    pub why: String,
}

/// An IdP profile: its rules, in the order they run, and its test cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `okta`, `entra` …
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// The rules, applied in this order.
    pub rules: Vec<Rule>,
    /// Cases that `scimtrail rules test` runs.
    pub tests: Vec<TestCase>,
}

/// Why a rule file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Not TOML, or a key or value the format does not have.
    #[error("rule file {file}: {detail}")]
    Format {
        /// The profile's file or name.
        file: String,
        /// What is wrong, and where.
        detail: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    profile: RawProfile,
    #[serde(default)]
    rule: Vec<toml::Table>,
    #[serde(default)]
    test: Vec<TestCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    description: String,
}

impl Profile {
    /// Parses a rule file; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Profile, ProfileError> {
        let error = |detail: String| ProfileError::Format {
            file: file.to_owned(),
            detail,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| error(e.to_string()))?;
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.rule.len());
        for (index, mut table) in raw.rule.into_iter().enumerate() {
            let mut take = |key: &str| match table.remove(key) {
                Some(toml::Value::String(value)) => Ok(value),
                Some(_) => Err(error(format!("rule {}: \"{key}\" must be a string", index + 1))),
                None => Err(error(format!("rule {}: \"{key}\" is missing", index + 1))),
            };
            let id = take("id")?;
            let why = take("why")?;
            let keys: Vec<String> = table.keys().cloned().collect();
            let action = Action::deserialize(toml::Value::Table(table))
                .map_err(|e| error(format!("rule {id}: {}", e.message())))?;
            // serde lets unit variants ignore extra keys; a rule file must not.
            if let Some(unknown) = keys.iter().find(|key| !action.parameters().contains(&key.as_str())) {
                return Err(error(format!(
                    "rule {id}: unknown key \"{unknown}\" for action {}",
                    action.name()
                )));
            }
            if rules.iter().any(|r| r.id == id) {
                return Err(error(format!("rule {id} appears twice")));
            }
            rules.push(Rule { id, action, why });
        }
        Ok(Profile {
            name: raw.profile.name,
            description: raw.profile.description,
            rules,
            tests: raw.test,
        })
    }
}

/// The rule files compiled into the binary: `config/idps/*.toml`.
const BUILTIN: [(&str, &str); 7] = [
    ("okta.toml", include_str!("../../../config/idps/okta.toml")),
    ("entra.toml", include_str!("../../../config/idps/entra.toml")),
    ("onelogin.toml", include_str!("../../../config/idps/onelogin.toml")),
    ("jumpcloud.toml", include_str!("../../../config/idps/jumpcloud.toml")),
    ("google.toml", include_str!("../../../config/idps/google.toml")),
    ("ping.toml", include_str!("../../../config/idps/ping.toml")),
    ("generic.toml", include_str!("../../../config/idps/generic.toml")),
];

/// Every built-in profile, or the first rule file that does not parse.
pub fn builtin_profiles() -> Result<Vec<Profile>, ProfileError> {
    BUILTIN
        .iter()
        .map(|(file, text)| Profile::from_toml(file, text))
        .collect()
}

/// The built-in profile with this name.
pub fn builtin_profile(name: &str) -> Result<Option<Profile>, ProfileError> {
    Ok(builtin_profiles()?.into_iter().find(|p| p.name == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses_and_is_named_after_its_file() {
        let profiles = builtin_profiles().unwrap();
        for ((file, _), profile) in BUILTIN.iter().zip(&profiles) {
            assert_eq!(format!("{}.toml", profile.name), *file);
        }
    }

    #[test]
    fn every_builtin_profile_carries_the_repairs_safe_for_every_client_before_its_own() {
        // Safe whoever sends the request: no IdP's request is refused, or forwarded broken,
        // for a shape a rule repairs for another IdP (issue 18, point 3).
        const SAFE: [&str; 8] = ["N9", "N10", "N1", "N3", "N11", "N13", "N2", "N14"];
        for profile in builtin_profiles().unwrap() {
            let ids: Vec<&str> = profile.rules.iter().map(|rule| rule.id.as_str()).collect();
            for id in SAFE {
                assert!(ids.contains(&id), "{} lacks {id}: {ids:?}", profile.name);
            }
            // Bare literals are quoted before the filter is re-encoded canonically.
            let position = |id: &str| ids.iter().position(|i| *i == id);
            assert!(position("N9") < position("N10"), "{}: N9 after N10", profile.name);
        }
    }

    #[test]
    fn rule_files_refuse_unknown_actions_and_keys() {
        let cases = [
            (
                "[profile]\nname='x'\ndescription='d'\n[[rule]]\nid='N1'\nwhy='w'\naction='make_it_work'\n",
                "unknown variant `make_it_work`",
            ),
            (
                "[profile]\nname='x'\ndescription='d'\n[[rule]]\nid='N1'\nwhy='w'\naction='lowercase_patch_ops'\ncolour='red'\n",
                "colour",
            ),
            ("[profile]\nname='x'\ndescription='d'\nextra=1\n", "extra"),
            ("[profile]\nname='x'\ndescription='d'\n[[rule]]\nid='N1'\naction='drop_nulls'\n", "\"why\" is missing"),
            (
                "[profile]\nname='x'\ndescription='d'\n[[rule]]\nid='N1'\nwhy='w'\naction='drop_nulls'\n[[rule]]\nid='N1'\nwhy='w'\naction='drop_nulls'\n",
                "appears twice",
            ),
        ];
        for (text, expected) in cases {
            let error = Profile::from_toml("test.toml", text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
        }
    }
}
