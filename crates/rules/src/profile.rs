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
//!
//! An operator's rule file may build on another profile (`extends = "okta"` under
//! `[profile]`): its `[[rule]]` entries then add a rule the base lacks (at the end, or
//! `before`/`after` a rule id), replace one it has (`replace = true`) or disable one
//! (`disable = true`, with only `id` and `why`). `catalog.rs` resolves them.

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

/// A rule of its base that a profile turns off, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    /// The rule id.
    pub id: String,
    /// Why it is off.
    pub why: String,
}

/// Where a profile came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into the binary (`config/idps/<name>.toml`).
    Bundled,
    /// A rule file of the operator's (`[rules] dir`), by its path.
    File(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Bundled => f.write_str("bundled"),
            Origin::File(path) => f.write_str(path),
        }
    }
}

/// An IdP profile: its rules, in the order they run, and its test cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `okta`, `entra` …
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// The rules, applied in this order (for a profile that extends another: its base's,
    /// with this profile's additions, replacements and removals).
    pub rules: Vec<Rule>,
    /// Cases that `scimtrail rules test` runs (a profile's own: a base's are not inherited,
    /// since they test the base's rules, which this profile may change on purpose).
    pub tests: Vec<TestCase>,
    /// Where it came from.
    pub origin: Origin,
    /// The profile it is built on, if any (which may itself extend another).
    pub extends: Option<String>,
    /// The rules of its base it turns off.
    pub disabled: Vec<Disabled>,
    /// `rules_version`: see [`crate::rules_version`]. Set when the profile is built, from
    /// `rules` as they are then.
    pub(crate) version: String,
}

impl Profile {
    /// The hash of its rules as resolved (`rules_version`, recorded with every exchange):
    /// equal for two profiles whose rules are equal, whatever files they came from.
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Why a rule file, or a set of them, was refused.
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
    /// The file parses, but cannot be resolved among the others: its name, its base, a rule
    /// it replaces, disables or places itself against.
    #[error("rule file {file}: {detail}")]
    Resolve {
        /// The file.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// One of the file's own `[[test]]` cases does not hold. Shown on one line (a log line,
    /// a command's one-line error); `failure` keeps the diff's lines.
    #[error("rule file {file}: profile {profile}: case \"{case}\" failed: {}", joined(failure))]
    Case {
        /// The file.
        file: String,
        /// The profile.
        profile: String,
        /// The case's name.
        case: String,
        /// What did not hold (the diff, for a body).
        failure: String,
    },
}

/// Lines joined into one, each trimmed: a diff's lines hold one JSON value each.
fn joined(text: &str) -> String {
    text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// Where a rule goes among its base's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// Just before the rule with this id.
    Before(String),
    /// Just after it.
    After(String),
}

/// One `[[rule]]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A rule the base does not have (every rule of a profile that extends none).
    Add(Rule, Option<Place>),
    /// `replace = true`: a rule of the base, replaced (where it was, unless placed).
    Replace(Rule, Option<Place>),
    /// `disable = true`: a rule of the base, turned off.
    Disable(Disabled),
}

/// A rule file as written, before it is resolved against its base.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleFile {
    /// Names it in errors.
    pub(crate) file: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) extends: Option<String>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) tests: Vec<TestCase>,
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
    extends: Option<String>,
}

/// The longest profile name: it is a route's `idp` and a file's name.
const MAX_NAME: usize = 64;
/// The longest rule id: it is recorded with every change the rule makes.
const MAX_RULE_ID: usize = 32;

/// Letters, digits, `-`, `_` and `.`, beginning with a letter or digit.
fn plain(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether `name` may name a profile.
pub(crate) fn valid_name(name: &str) -> bool {
    plain(name, MAX_NAME)
}

impl RuleFile {
    /// Parses a rule file; `file` names it in errors. Each key is checked, each rule's
    /// entry kind and place, and that no id appears twice; the base is not looked at.
    pub(crate) fn parse(file: &str, text: &str) -> Result<RuleFile, ProfileError> {
        let error = |detail: String| ProfileError::Format {
            file: file.to_owned(),
            detail,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| error(one_line(&e.to_string())))?;
        if !valid_name(&raw.profile.name) {
            return Err(error(format!(
                "[profile] name \"{}\": use 1 to {MAX_NAME} letters, digits, '-', '_' or '.', beginning with a letter or digit",
                raw.profile.name
            )));
        }
        if let Some(base) = &raw.profile.extends {
            if !valid_name(base) {
                return Err(error(format!("[profile] extends \"{base}\" is not a profile name")));
            }
        }
        let extends = raw.profile.extends;
        let mut entries: Vec<Entry> = Vec::with_capacity(raw.rule.len());
        for (index, table) in raw.rule.into_iter().enumerate() {
            let entry = entry(index, table, extends.as_deref()).map_err(&error)?;
            let id = entry_id(&entry);
            if entries.iter().any(|e| entry_id(e) == id) {
                return Err(error(format!("rule {id} appears twice")));
            }
            entries.push(entry);
        }
        Ok(RuleFile {
            file: file.to_owned(),
            name: raw.profile.name,
            description: raw.profile.description,
            extends,
            entries,
            tests: raw.test,
        })
    }
}

pub(crate) fn entry_id(entry: &Entry) -> &str {
    match entry {
        Entry::Add(rule, _) | Entry::Replace(rule, _) => &rule.id,
        Entry::Disable(disabled) => &disabled.id,
    }
}

/// One `[[rule]]` table (the `index`th, from 0) of a file that extends `base`, if any.
fn entry(index: usize, mut table: toml::Table, base: Option<&str>) -> Result<Entry, String> {
    let id = string(&mut table, "id", &format!("rule {}", index + 1))?
        .ok_or_else(|| format!("rule {}: \"id\" is missing", index + 1))?;
    if !plain(&id, MAX_RULE_ID) {
        return Err(format!(
            "rule {}: id \"{id}\": use 1 to {MAX_RULE_ID} letters, digits, '-', '_' or '.'",
            index + 1
        ));
    }
    let what = format!("rule {id}");
    let why = string(&mut table, "why", &what)?.ok_or_else(|| format!("rule {id}: \"why\" is missing"))?;
    let before = string(&mut table, "before", &what)?;
    let after = string(&mut table, "after", &what)?;
    let replace = flag(&mut table, "replace", &what)?;
    let disable = flag(&mut table, "disable", &what)?;
    let needs_base = |what: &str| {
        match base {
        Some(_) => Ok(()),
        None => Err(format!(
            "rule {id}: {what} works on the rules of a base, and this profile extends none: add extends = \"<profile>\" under [profile]"
        )),
    }
    };
    let place = match (before, after) {
        (Some(_), Some(_)) => return Err(format!("rule {id}: give \"before\" or \"after\", not both")),
        (Some(other), None) => Some(Place::Before(other)),
        (None, Some(other)) => Some(Place::After(other)),
        (None, None) => None,
    };
    if place.is_some() {
        needs_base("before/after")?;
    }
    if disable {
        needs_base("disable = true")?;
        if replace {
            return Err(format!(
                "rule {id}: disable = true and replace = true together: a rule is either turned off or replaced"
            ));
        }
        if place.is_some() {
            return Err(format!("rule {id}: a disabled rule has no place: remove before/after"));
        }
        if let Some(key) = table.keys().next() {
            return Err(format!(
                "rule {id}: disable = true takes only id and why; remove \"{key}\""
            ));
        }
        return Ok(Entry::Disable(Disabled { id, why }));
    }
    if !table.contains_key("action") {
        return Err(format!("rule {id}: \"action\" is missing"));
    }
    let keys: Vec<String> = table.keys().cloned().collect();
    let action = Action::deserialize(toml::Value::Table(table)).map_err(|e| format!("rule {id}: {}", e.message()))?;
    // serde lets unit variants ignore extra keys; a rule file must not.
    if let Some(unknown) = keys.iter().find(|key| !action.parameters().contains(&key.as_str())) {
        return Err(format!(
            "rule {id}: unknown key \"{unknown}\" for action {}",
            action.name()
        ));
    }
    if replace {
        needs_base("replace = true")?;
    }
    let rule = Rule { id, action, why };
    Ok(match replace {
        true => Entry::Replace(rule, place),
        false => Entry::Add(rule, place),
    })
}

/// A string key taken out of a rule's table (`what` names the rule in errors).
fn string(table: &mut toml::Table, key: &str, what: &str) -> Result<Option<String>, String> {
    match table.remove(key) {
        Some(toml::Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(format!("{what}: \"{key}\" must be a string")),
        None => Ok(None),
    }
}

/// A boolean key taken out of a rule's table; absent is false.
fn flag(table: &mut toml::Table, key: &str, what: &str) -> Result<bool, String> {
    match table.remove(key) {
        Some(toml::Value::Boolean(value)) => Ok(value),
        Some(_) => Err(format!("{what}: \"{key}\" must be true or false")),
        None => Ok(false),
    }
}

/// A TOML error on one line: the command prints its error as one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Profile {
    /// Parses a self-contained rule file (one that extends no other); `file` names it in
    /// errors and is its origin. A file with `extends` is resolved among the others by
    /// [`crate::Catalog`].
    pub fn from_toml(file: &str, text: &str) -> Result<Profile, ProfileError> {
        let parsed = RuleFile::parse(file, text)?;
        if let Some(base) = &parsed.extends {
            return Err(ProfileError::Resolve {
                file: file.to_owned(),
                detail: format!(
                    "extends \"{base}\": a profile built on another is resolved with the others (scimtrail rules test DIR, or [rules] dir)"
                ),
            });
        }
        let rules = parsed
            .entries
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::Add(rule, _) => Some(rule),
                // Refused by `parse` without a base.
                Entry::Replace(..) | Entry::Disable(_) => None,
            })
            .collect();
        Ok(Profile::build(
            parsed.name,
            parsed.description,
            rules,
            parsed.tests,
            Origin::File(file.to_owned()),
            None,
            Vec::new(),
        ))
    }

    /// A profile of these parts, its version computed from `rules`.
    pub(crate) fn build(
        name: String,
        description: String,
        rules: Vec<Rule>,
        tests: Vec<TestCase>,
        origin: Origin,
        extends: Option<String>,
        disabled: Vec<Disabled>,
    ) -> Profile {
        let version = crate::catalog::rules_version(&rules);
        Profile {
            name,
            description,
            rules,
            tests,
            origin,
            extends,
            disabled,
            version,
        }
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

/// The rules every profile should carry first: the repairs safe whoever sends the request
/// (issue 18, point 3). A test holds the bundled profiles to it; an operator's profile that
/// lacks one is loaded with a warning.
pub const SAFE_REPAIRS: [&str; 8] = ["N9", "N10", "N1", "N3", "N11", "N13", "N2", "N14"];

/// Every built-in profile, or the first rule file that does not parse.
pub fn builtin_profiles() -> Result<Vec<Profile>, ProfileError> {
    BUILTIN
        .iter()
        .map(|(file, text)| {
            let mut profile = Profile::from_toml(file, text)?;
            profile.origin = Origin::Bundled;
            Ok(profile)
        })
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
            assert_eq!(profile.origin, Origin::Bundled);
            assert_eq!(profile.version(), crate::catalog::rules_version(&profile.rules));
        }
    }

    #[test]
    fn every_builtin_profile_carries_the_repairs_safe_for_every_client_before_its_own() {
        // Safe whoever sends the request: no IdP's request is refused, or forwarded broken,
        // for a shape a rule repairs for another IdP (issue 18, point 3).
        for profile in builtin_profiles().unwrap() {
            let ids: Vec<&str> = profile.rules.iter().map(|rule| rule.id.as_str()).collect();
            for id in SAFE_REPAIRS {
                assert!(ids.contains(&id), "{} lacks {id}: {ids:?}", profile.name);
            }
            // Bare literals are quoted before the filter is re-encoded canonically.
            let position = |id: &str| ids.iter().position(|i| *i == id);
            assert!(position("N9") < position("N10"), "{}: N9 after N10", profile.name);
        }
    }

    #[test]
    fn rule_files_refuse_unknown_actions_and_keys() {
        let head = "[profile]\nname='x'\ndescription='d'\n";
        let based = "[profile]\nname='x'\ndescription='d'\nextends='okta'\n";
        let cases = [
            (
                format!("{head}[[rule]]\nid='N1'\nwhy='w'\naction='make_it_work'\n"),
                "unknown variant `make_it_work`",
            ),
            (
                format!("{head}[[rule]]\nid='N1'\nwhy='w'\naction='lowercase_patch_ops'\ncolour='red'\n"),
                "unknown key \"colour\" for action lowercase_patch_ops",
            ),
            (format!("{head}extra=1\n"), "extra"),
            (format!("{head}[[rule]]\nid='N1'\naction='drop_nulls'\n"), "rule N1: \"why\" is missing"),
            (format!("{head}[[rule]]\nwhy='w'\naction='drop_nulls'\n"), "rule 1: \"id\" is missing"),
            (format!("{head}[[rule]]\nid='N1'\nwhy='w'\n"), "rule N1: \"action\" is missing"),
            (
                format!("{head}[[rule]]\nid='N1'\nwhy='w'\naction='drop_nulls'\n[[rule]]\nid='N1'\nwhy='w'\naction='drop_nulls'\n"),
                "rule N1 appears twice",
            ),
            (format!("{head}[[rule]]\nid='N 1'\nwhy='w'\naction='drop_nulls'\n"), "id \"N 1\""),
            ("[profile]\nname='../x'\ndescription='d'\n".to_owned(), "name \"../x\""),
            (format!("{head}[[rule]]\nid='N1'\nwhy='w'\naction='drop_nulls'\nreplace='yes'\n"), "\"replace\" must be true or false"),
            // What only a profile with a base can say.
            (
                format!("{head}[[rule]]\nid='N1'\nwhy='w'\naction='drop_nulls'\nreplace=true\n"),
                "replace = true works on the rules of a base, and this profile extends none",
            ),
            (format!("{head}[[rule]]\nid='N1'\nwhy='w'\ndisable=true\n"), "disable = true works on the rules of a base"),
            (format!("{head}[[rule]]\nid='N1'\nwhy='w'\naction='drop_nulls'\nafter='N2'\n"), "before/after works on the rules of a base"),
            // A disabled rule is only its id and why.
            (format!("{based}[[rule]]\nid='N1'\nwhy='w'\ndisable=true\naction='drop_nulls'\n"), "disable = true takes only id and why; remove \"action\""),
            (format!("{based}[[rule]]\nid='N1'\nwhy='w'\ndisable=true\nreplace=true\n"), "either turned off or replaced"),
            (format!("{based}[[rule]]\nid='N1'\nwhy='w'\ndisable=true\nafter='N2'\n"), "a disabled rule has no place"),
            (format!("{based}[[rule]]\nid='X'\nwhy='w'\naction='drop_nulls'\nafter='N2'\nbefore='N3'\n"), "not both"),
            (format!("{based}[[rule]]\nid='N1'\nwhy='w'\ndisable=true\n[[rule]]\nid='N1'\nwhy='w'\naction='drop_nulls'\nreplace=true\n"), "rule N1 appears twice"),
        ];
        for (text, expected) in cases {
            let error = RuleFile::parse("test.toml", &text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
            assert!(error.starts_with("rule file test.toml: "), "{error:?} names the file");
        }
    }

    #[test]
    fn a_self_contained_file_parses_alone_and_one_with_a_base_says_where_it_is_resolved() {
        let alone = Profile::from_toml(
            "x.toml",
            "[profile]\nname='x'\ndescription='d'\n[[rule]]\nid='N15'\nwhy='w'\naction='drop_nulls'\n",
        )
        .unwrap();
        assert_eq!(alone.origin, Origin::File("x.toml".to_owned()));
        assert_eq!(alone.rules.len(), 1);
        let error = Profile::from_toml("y.toml", "[profile]\nname='y'\ndescription='d'\nextends='okta'\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("resolved with the others"), "{error}");
    }
}
