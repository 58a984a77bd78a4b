//! The profiles a proxy serves: the bundled ones and the operator's rule files, resolved.
//!
//! An operator's file may build on any other profile (`extends`), bundled or another of the
//! operator's files, in a chain of any length. Resolution takes the base's rules, resolved
//! first, and applies the file's `[[rule]]` entries in order:
//! - a rule whose id the base lacks is added at the end, or `before`/`after` the rule named;
//! - `replace = true` replaces the base's rule of that id where it stands (or where placed);
//!   an id the base lacks is an error, and so is an id the base has without `replace`;
//! - `disable = true` removes the base's rule of that id; an id the base lacks is an error.
//!
//! Names: a file is named after its profile (`acme-okta.toml` holds `name = "acme-okta"`),
//! and may not take a bundled profile's name. A route that names `okta` always gets the
//! bundled Okta rules: an operator who wants other rules names them otherwise and
//! `extends = "okta"`, so the route says which rules it uses and the record shows it.
//!
//! Every error names the file, and for a chain the files it goes through. Pure: the files
//! are given as text; reading the directory is the caller's.

use crate::profile::{entry_id, Disabled, Entry, Origin, Place, Profile, ProfileError, Rule, RuleFile};
use crate::testcase::run_tests;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// One of the operator's rule files: its path (which names it in errors and in `scimtrail
/// idps`, and whose file name must be its profile's name with `.toml`) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSource {
    /// Where it was read from.
    pub path: String,
    /// Its contents.
    pub text: String,
}

/// Every profile a route may name, each once: the bundled ones, then the operator's by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    profiles: Vec<Arc<Profile>>,
    by_name: HashMap<String, usize>,
}

/// What [`Catalog::resolve`] made of a set of files: the profiles that resolved (with the
/// bundled ones), and why each of the others was refused.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The bundled profiles and the operator's that resolved.
    pub catalog: Catalog,
    /// One error per refused file, in the files' order.
    pub errors: Vec<ProfileError>,
}

/// Why a set of rule files is refused as a whole: every file's error and every failing case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct LoadError {
    /// Each reason, naming its file.
    pub errors: Vec<ProfileError>,
}

impl Catalog {
    /// The bundled profiles alone.
    pub fn bundled() -> Result<Catalog, ProfileError> {
        let mut catalog = Catalog::default();
        for profile in crate::builtin_profiles()? {
            catalog.push(profile);
        }
        Ok(catalog)
    }

    fn push(&mut self, profile: Profile) {
        self.by_name.insert(profile.name.clone(), self.profiles.len());
        self.profiles.push(Arc::new(profile));
    }

    /// The bundled profiles and what of `sources` resolves (see the module's documentation).
    /// The files' test cases are not run. `Err` only when a bundled profile does not parse.
    pub fn resolve(sources: &[RuleSource]) -> Result<Resolution, ProfileError> {
        let mut catalog = Catalog::bundled()?;
        let mut resolver = Resolver::new(&catalog, sources);
        let mut resolved: Vec<Profile> = Vec::new();
        for index in 0..resolver.files.len() {
            if let Ok(profile) = resolver.resolve(index, &mut Vec::new()) {
                resolved.push(profile);
            }
        }
        let errors = resolver.into_errors();
        resolved.sort_by(|a, b| a.name.cmp(&b.name));
        for profile in resolved {
            catalog.push(profile);
        }
        Ok(Resolution { catalog, errors })
    }

    /// The bundled profiles and every one of `sources`, all resolved and each file's test
    /// cases holding; or every reason why not (a case's failure carries its diff).
    pub fn load(sources: &[RuleSource]) -> Result<Catalog, LoadError> {
        let Resolution { catalog, mut errors } =
            Catalog::resolve(sources).map_err(|error| LoadError { errors: vec![error] })?;
        for profile in catalog.operators() {
            for outcome in run_tests(profile) {
                if let Some(failure) = outcome.failure {
                    errors.push(ProfileError::Case {
                        file: profile.origin.to_string(),
                        profile: profile.name.clone(),
                        case: outcome.name,
                        failure,
                    });
                }
            }
        }
        match errors.is_empty() {
            true => Ok(catalog),
            false => Err(LoadError { errors }),
        }
    }

    /// The profile of this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Profile>> {
        self.by_name.get(name).and_then(|&index| self.profiles.get(index))
    }

    /// Every profile: the bundled ones, then the operator's by name.
    pub fn profiles(&self) -> &[Arc<Profile>] {
        &self.profiles
    }

    /// The operator's profiles, by name.
    pub fn operators(&self) -> impl Iterator<Item = &Profile> {
        self.profiles
            .iter()
            .map(AsRef::as_ref)
            .filter(|profile| profile.origin != Origin::Bundled)
    }

    /// Every profile's name, as a route may give it.
    pub fn names(&self) -> Vec<&str> {
        self.profiles.iter().map(|profile| profile.name.as_str()).collect()
    }

    /// What an operator should know about profiles that loaded: one without test cases,
    /// one without a repair that is safe for every client (`SAFE_REPAIRS`).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for profile in self.operators() {
            if profile.tests.is_empty() {
                warnings.push(format!(
                    "profile {} ({}) has no [[test]] cases: its rules are loaded untested",
                    profile.name, profile.origin
                ));
            }
            let missing: Vec<&str> = crate::profile::SAFE_REPAIRS
                .into_iter()
                .filter(|id| !profile.rules.iter().any(|rule| rule.id == *id))
                .collect();
            if !missing.is_empty() {
                warnings.push(format!(
                    "profile {} ({}) lacks {}, among the repairs safe for every client: requests they repair are forwarded as sent, or refused",
                    profile.name,
                    profile.origin,
                    missing.join(", ")
                ));
            }
        }
        warnings
    }
}

/// A file's state while the set resolves.
enum State {
    /// Parsed and named well, not resolved yet.
    Pending(Box<RuleFile>),
    /// Being resolved: its chain passes through it.
    Visiting,
    Done(Box<Profile>),
    /// Refused; its error is recorded.
    Refused,
}

struct Resolver<'a> {
    bundled: &'a Catalog,
    /// Per source, in order: its path, the name it claims (its file's stem when it did not
    /// parse), its state.
    files: Vec<(String, String, State)>,
    errors: Vec<(usize, ProfileError)>,
}

/// A file's stem: `acme` of `/etc/scimtrail/idps/acme.toml`.
fn stem(path: &str) -> String {
    std::path::Path::new(path)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl<'a> Resolver<'a> {
    fn new(bundled: &'a Catalog, sources: &[RuleSource]) -> Resolver<'a> {
        let mut resolver = Resolver {
            bundled,
            files: Vec::with_capacity(sources.len()),
            errors: Vec::new(),
        };
        for (index, source) in sources.iter().enumerate() {
            let stem = stem(&source.path);
            let state = match RuleFile::parse(&source.path, &source.text) {
                Ok(file) => match resolver.name_error(&source.path, &stem, &file, sources, index) {
                    None => State::Pending(Box::new(file)),
                    Some(error) => {
                        resolver.errors.push((index, error));
                        State::Refused
                    }
                },
                Err(error) => {
                    resolver.errors.push((index, error));
                    State::Refused
                }
            };
            let name = match &state {
                State::Pending(file) => file.name.clone(),
                _ => stem,
            };
            resolver.files.push((source.path.clone(), name, state));
        }
        resolver
    }

    /// Why `file` may not have its name: not its file's, a bundled profile's, or another
    /// file's before it.
    fn name_error(
        &self,
        path: &str,
        stem: &str,
        file: &RuleFile,
        sources: &[RuleSource],
        index: usize,
    ) -> Option<ProfileError> {
        let refuse = |detail: String| {
            Some(ProfileError::Resolve {
                file: path.to_owned(),
                detail,
            })
        };
        let name = &file.name;
        if self.bundled.get(name).is_some() {
            return refuse(format!(
                "profile \"{name}\" has the name of a bundled profile, which a route naming it must keep getting: name yours otherwise (and its file), with extends = \"{name}\" to build on it"
            ));
        }
        if name != stem {
            return refuse(format!(
                "[profile] name is \"{name}\": a rule file is named after its profile ({name}.toml)"
            ));
        }
        if let Some(earlier) = sources[..index].iter().find(|s| self::stem(&s.path) == *name) {
            return refuse(format!("profile \"{name}\" is also defined by {}", earlier.path));
        }
        None
    }

    fn refuse(&mut self, index: usize, detail: String) {
        let path = self.files[index].0.clone();
        self.errors.push((index, ProfileError::Resolve { file: path, detail }));
        self.files[index].2 = State::Refused;
    }

    /// The profile of file `index`, its base resolved first; `chain` holds the files whose
    /// resolution waits for this one (a cycle, when it comes back to one of them).
    fn resolve(&mut self, index: usize, chain: &mut Vec<usize>) -> Result<Profile, ()> {
        let file = match std::mem::replace(&mut self.files[index].2, State::Visiting) {
            State::Pending(file) => file,
            State::Done(profile) => {
                let copy = (*profile).clone();
                self.files[index].2 = State::Done(profile);
                return Ok(copy);
            }
            State::Visiting => {
                // Back at a file whose resolution is under way: every file from it on is
                // in the cycle, and each is refused naming the whole of it.
                let start = chain.iter().position(|&i| i == index).unwrap_or(0);
                let members: Vec<usize> = chain[start..].to_vec();
                let mut names: Vec<String> = members
                    .iter()
                    .map(|&i| format!("{} ({})", self.files[i].1, self.files[i].0))
                    .collect();
                names.push(self.files[index].1.clone());
                let cycle = names.join(" extends ");
                for member in members {
                    self.refuse(member, format!("extends in a cycle: {cycle}"));
                }
                return Err(());
            }
            State::Refused => {
                self.files[index].2 = State::Refused;
                return Err(());
            }
        };
        let base: Option<Profile> = match &file.extends {
            None => None,
            Some(base) => match self.bundled.get(base) {
                Some(bundled) => Some((**bundled).clone()),
                None => match self.files.iter().position(|(_, name, _)| name == base) {
                    Some(base_index) => {
                        chain.push(index);
                        let resolved = self.resolve(base_index, chain);
                        chain.pop();
                        match resolved {
                            Ok(profile) => Some(profile),
                            Err(()) => {
                                // A cycle through this file has refused it already.
                                if !matches!(self.files[index].2, State::Refused) {
                                    let detail = format!(
                                        "extends \"{base}\" ({}), which is refused: see its error",
                                        self.files[base_index].0
                                    );
                                    self.refuse(index, detail);
                                }
                                return Err(());
                            }
                        }
                    }
                    None => {
                        let mut known = self.bundled.names();
                        known.extend(self.files.iter().map(|(_, name, _)| name.as_str()));
                        let detail = format!(
                            "extends \"{base}\": no profile has that name; there are {}",
                            known.join(", ")
                        );
                        self.refuse(index, detail);
                        return Err(());
                    }
                },
            },
        };
        let path = self.files[index].0.clone();
        match apply(&path, *file, base) {
            Ok(profile) => {
                self.files[index].2 = State::Done(Box::new(profile.clone()));
                Ok(profile)
            }
            Err(detail) => {
                self.refuse(index, detail);
                Err(())
            }
        }
    }

    fn into_errors(mut self) -> Vec<ProfileError> {
        self.errors.sort_by_key(|(index, _)| *index);
        self.errors.into_iter().map(|(_, error)| error).collect()
    }
}

/// A file's entries applied to its base's rules (none without a base).
fn apply(path: &str, file: RuleFile, base: Option<Profile>) -> Result<Profile, String> {
    let base_name = base.as_ref().map(|b| b.name.clone());
    let mut rules: Vec<Rule> = base.map(|b| b.rules).unwrap_or_default();
    let mut disabled: Vec<Disabled> = Vec::new();
    let of_base = |id: &str| match &base_name {
        Some(name) => format!("rule {id}: {name} has no rule {id}"),
        None => format!("rule {id}: there is no rule {id}"),
    };
    let position = |rules: &[Rule], id: &str| rules.iter().position(|rule| rule.id == id);
    for entry in file.entries {
        let id = entry_id(&entry).to_owned();
        let (rule, place) = match entry {
            Entry::Disable(off) => {
                let at = position(&rules, &off.id).ok_or_else(|| format!("{} to disable", of_base(&off.id)))?;
                rules.remove(at);
                disabled.push(off);
                continue;
            }
            Entry::Replace(rule, place) => {
                let at = position(&rules, &id).ok_or_else(|| format!("{} to replace", of_base(&id)))?;
                match place {
                    None => {
                        rules[at] = rule;
                        continue;
                    }
                    Some(place) => {
                        rules.remove(at);
                        (rule, Some(place))
                    }
                }
            }
            Entry::Add(rule, place) => {
                if let (Some(name), true) = (&base_name, position(&rules, &id).is_some()) {
                    return Err(format!(
                        "rule {id}: {name} has a rule {id} already: say replace = true to replace it, or disable = true to turn it off"
                    ));
                }
                (rule, place)
            }
        };
        let at = match &place {
            None => rules.len(),
            Some(Place::Before(other)) => position(&rules, other).ok_or_else(|| {
                format!("rule {id}: before = \"{other}\", and there is no rule {other} to place it against")
            })?,
            Some(Place::After(other)) => position(&rules, other).map(|at| at + 1).ok_or_else(|| {
                format!("rule {id}: after = \"{other}\", and there is no rule {other} to place it against")
            })?,
        };
        rules.insert(at, rule);
    }
    Ok(Profile::build(
        file.name,
        file.description,
        rules,
        file.tests,
        Origin::File(path.to_owned()),
        file.extends,
        disabled,
    ))
}

/// `rules_version`: the first 16 hex digits (64 bits) of the SHA-256 of the rules' canonical
/// form — a format tag, then each rule in order as JSON with its keys sorted: its id, its
/// action's name and the action's parameters. Not the profile's name, description, `why`s or
/// test cases: two profiles that act alike have one version, and rewording a reason changes
/// none. SHA-256 because the version is stored and compared across releases and hosts, so it
/// must not depend on Rust's own hashers, which may change; 64 bits tell apart the few
/// versions one deployment sees by far more than any chance collision. It identifies the
/// configuration of the rules, not the code of their actions (a release may change an
/// action; the instance's version, in `instances`, says which code ran).
pub fn rules_version(rules: &[Rule]) -> String {
    let canonical: Vec<serde_json::Value> = rules
        .iter()
        .map(|rule| {
            let mut value = serde_json::to_value(&rule.action).unwrap_or(serde_json::Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.insert("id".to_owned(), serde_json::Value::String(rule.id.clone()));
            }
            sorted(value)
        })
        .collect();
    let mut hasher = Sha256::new();
    hasher.update(b"scimtrail-rules 1\n");
    hasher.update(serde_json::Value::Array(canonical).to_string().as_bytes());
    hasher.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The value with every object's keys in sorted order (maps keep insertion order here).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(object) => {
            let mut entries: Vec<(String, serde_json::Value)> = object.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
