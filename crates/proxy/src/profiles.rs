//! The IdP profiles the routes use, swapped whole when the operator's rule files are read
//! again (SIGHUP).
//!
//! An exchange takes its route's profile once, at admission ([`ProfileBook::of`]), and holds
//! it to its end — its fanned-out bulk operations are handed the same one, and so is a
//! replay's exchange — so a reload never changes the rules under an exchange in flight, and
//! the `rules_version` it records is the version of every rule it ran. A reload swaps the
//! whole catalog at once, or not at all: a catalog that lacks a route's profile is refused,
//! and the one in force stays.
//!
//! The catalog sits behind a `RwLock` read once per exchange: a read is an uncontended
//! atomic on the lock and an `Arc` clone of one profile, and the lock is written only by a
//! reload, which holds it for the swap of one pointer.

use crate::config::Route;
use scimtrail_rules::{Catalog, Profile};
use serde_json::{json, Value};
use std::sync::{Arc, PoisonError, RwLock};

/// The catalog in force, and what every catalog must hold: each route's profile.
#[derive(Debug)]
pub(crate) struct ProfileBook {
    current: RwLock<Arc<Catalog>>,
    /// Each route's name and the profile it names.
    routes: Vec<(String, String)>,
}

/// Why a new catalog was not swapped in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(String);

/// One profile that a swap added, changed, kept or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Changed {
    name: String,
    /// Where it comes from (where it came from, when removed).
    origin: String,
    /// Its version before the swap; `None` when added.
    from: Option<String>,
    /// Its version after; `None` when removed.
    to: Option<String>,
}

impl Changed {
    /// One line for the log and the reload's report.
    pub(crate) fn line(&self) -> String {
        let Changed { name, origin, from, to } = self;
        match (from, to) {
            (None, Some(to)) => format!("profile {name} ({origin}): added, rules_version {to}"),
            (Some(from), None) => format!("profile {name} ({origin}): removed (was rules_version {from})"),
            (Some(from), Some(to)) if from == to => format!("profile {name} ({origin}): unchanged, rules_version {to}"),
            (Some(from), Some(to)) => format!("profile {name} ({origin}): changed, rules_version {from} -> {to}"),
            (None, None) => format!("profile {name} ({origin})"),
        }
    }

    /// As the audit keeps it.
    pub(crate) fn to_json(&self) -> Value {
        json!({"profile": self.name, "origin": self.origin, "from": self.from, "to": self.to})
    }

    /// Whether the swap changed it.
    pub(crate) fn changed(&self) -> bool {
        self.from != self.to
    }
}

impl ProfileBook {
    /// The book of `catalog`, which must hold every route's profile (the configuration
    /// checks it; an exchange of a route whose profile is missing is refused, never served
    /// with other rules).
    pub(crate) fn new(catalog: Arc<Catalog>, routes: &[Route]) -> ProfileBook {
        ProfileBook {
            current: RwLock::new(catalog),
            routes: routes.iter().map(|r| (r.name.clone(), r.idp.clone())).collect(),
        }
    }

    /// The profile `route` uses now: what an exchange takes once and keeps to its end.
    pub(crate) fn of(&self, route: &Route) -> Option<Arc<Profile>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.get(&route.idp).cloned()
    }

    /// Each route's name and the profile it names.
    pub(crate) fn routes(&self) -> &[(String, String)] {
        &self.routes
    }

    /// The catalog in force.
    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `new` in force in place of the current catalog, at once, unless it lacks a
    /// route's profile: then the current one stays and the error names the routes. Returns
    /// the operator's profiles as the swap left them, beside what they were.
    pub(crate) fn swap(&self, new: Catalog) -> Result<Vec<Changed>, Refused> {
        let missing: Vec<String> = self
            .routes
            .iter()
            .filter(|(_, idp)| new.get(idp).is_none())
            .map(|(route, idp)| format!("route {route} uses profile {idp}"))
            .collect();
        if !missing.is_empty() {
            return Err(Refused(format!(
                "the new rule files lack profiles routes use ({}): kept the profiles in force",
                missing.join("; ")
            )));
        }
        let new = Arc::new(new);
        let old = {
            let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *current, Arc::clone(&new))
        };
        let mut changes: Vec<Changed> = new
            .operators()
            .map(|profile| Changed {
                name: profile.name.clone(),
                origin: profile.origin.to_string(),
                from: old.get(&profile.name).map(|p| p.version().to_owned()),
                to: Some(profile.version().to_owned()),
            })
            .collect();
        changes.extend(
            old.operators()
                .filter(|profile| new.get(&profile.name).is_none())
                .map(|profile| Changed {
                    name: profile.name.clone(),
                    origin: profile.origin.to_string(),
                    from: Some(profile.version().to_owned()),
                    to: None,
                }),
        );
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scimtrail_rules::RuleSource;

    fn route(name: &str, idp: &str) -> Route {
        let mut route = crate::upstream::tests::route("http://127.0.0.1:9/scim", None);
        route.name = name.to_owned();
        route.idp = idp.to_owned();
        route
    }

    fn catalog(files: &[(&str, &str)]) -> Catalog {
        let sources: Vec<RuleSource> = files
            .iter()
            .map(|(name, rules)| RuleSource {
                path: format!("/rules/{name}.toml"),
                text: format!("[profile]\nname = \"{name}\"\ndescription = \"d\"\nextends = \"okta\"\n{rules}"),
            })
            .collect();
        Catalog::load(&sources).unwrap()
    }

    const DROP_NULLS: &str = "[[rule]]\nid = \"N15\"\naction = \"drop_nulls\"\nwhy = \"w\"\n";

    #[test]
    fn a_swap_is_whole_and_refused_when_a_route_would_lose_its_profile() {
        let routes = [route("a", "acme"), route("o", "okta")];
        let book = ProfileBook::new(Arc::new(catalog(&[("acme", ""), ("gone", "")])), &routes);
        let before = book.of(&routes[0]).unwrap();
        assert_eq!(
            before.version(),
            book.of(&routes[1]).unwrap().version(),
            "acme is okta as it is"
        );

        // A set without acme is refused whole: acme stays as it was.
        let refused = book.swap(catalog(&[("other", "")])).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the new rule files lack profiles routes use (route a uses profile acme): kept the profiles in force"
        );
        assert_eq!(book.of(&routes[0]).unwrap().version(), before.version());

        let changes = book.swap(catalog(&[("acme", DROP_NULLS), ("new", "")])).unwrap();
        let lines: Vec<String> = changes.iter().map(Changed::line).collect();
        let after = book.of(&routes[0]).unwrap();
        assert_eq!(
            lines,
            [
                format!(
                    "profile acme (/rules/acme.toml): changed, rules_version {} -> {}",
                    before.version(),
                    after.version()
                ),
                format!(
                    "profile new (/rules/new.toml): added, rules_version {}",
                    before.version()
                ),
                format!(
                    "profile gone (/rules/gone.toml): removed (was rules_version {})",
                    before.version()
                ),
            ]
        );
        assert!(changes.iter().all(Changed::changed));
        // What an exchange took before the swap is what it keeps.
        assert!(!before.rules.iter().any(|r| r.id == "N15"));
        assert!(after.rules.iter().any(|r| r.id == "N15"));
        assert_eq!(after.origin.to_string(), "/rules/acme.toml");
        assert_eq!(book.of(&routes[1]).unwrap().origin.to_string(), "bundled");
    }
}
