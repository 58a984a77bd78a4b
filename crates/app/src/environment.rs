//! The settings a deployment gives through the environment (twelve-factor), and where each
//! resolved value came from. One precedence for all of them: flags > environment > file >
//! defaults. Secrets are not among them: they stay in the variables (or files) the
//! configuration names.

use crate::config::{Overrides, RawConfig};

/// Each setting the environment may give: its variable, the older name kept as an alias, and
/// the flag and file key that give it too.
pub const VARIABLES: [Variable; 8] = [
    Variable {
        name: "SCIMTRAIL_CONFIG",
        alias: None,
        flag: "--config",
        key: "",
    },
    Variable {
        name: "SCIMTRAIL_LISTEN",
        alias: None,
        flag: "--listen",
        key: "[listen] addr",
    },
    Variable {
        name: "SCIMTRAIL_ADMIN_LISTEN",
        alias: None,
        flag: "--admin-listen",
        key: "[admin] addr",
    },
    Variable {
        name: "SCIMTRAIL_STORE_URL",
        alias: Some("SCIMTRAIL_DATABASE_URL"),
        flag: "--store",
        key: "[store] url_env / url_file / url",
    },
    Variable {
        name: "SCIMTRAIL_INSTANCE",
        alias: None,
        flag: "",
        key: "[store] instance",
    },
    Variable {
        name: "SCIMTRAIL_LOG_FORMAT",
        alias: None,
        flag: "",
        key: "[log] format",
    },
    Variable {
        name: "SCIMTRAIL_LOG_LEVEL",
        alias: Some("SCIMTRAIL_LOG"),
        flag: "",
        key: "[log] level",
    },
    Variable {
        name: "SCIMTRAIL_RULES_DIR",
        alias: None,
        flag: "",
        key: "[rules] dir",
    },
];

/// One setting the environment may give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// Its variable.
    pub name: &'static str,
    /// An older name read when the first is not set.
    pub alias: Option<&'static str>,
    /// The flag that overrides it (`""` where there is none).
    pub flag: &'static str,
    /// The file's key it overrides (`""` where there is none).
    pub key: &'static str,
}

/// The values the environment gives, by variable (the alias already folded into its name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    values: Vec<(&'static str, String, &'static str)>,
}

impl Environment {
    /// Reads the variables of [`VARIABLES`] from `vars` (the process's: `std::env::vars()`).
    /// An empty value is no value.
    pub fn read(vars: impl IntoIterator<Item = (String, String)>) -> Environment {
        let vars: Vec<(String, String)> = vars.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let get = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let values = VARIABLES
            .iter()
            .filter_map(|variable| {
                get(variable.name)
                    .map(|value| (variable.name, value, variable.name))
                    .or_else(|| {
                        let alias = variable.alias?;
                        get(alias).map(|value| (variable.name, value, alias))
                    })
            })
            .collect();
        Environment { values }
    }

    /// The process's environment.
    pub fn of_process() -> Environment {
        Environment::read(std::env::vars())
    }

    /// The value of `name` (one of [`VARIABLES`]), read under it or its alias.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, v, _)| v.as_str())
    }

    /// The variable a value was read from (`name` or its alias).
    fn read_from(&self, name: &str) -> Option<&'static str> {
        self.values.iter().find(|(n, ..)| *n == name).map(|(.., from)| *from)
    }

    /// `flags` with what the environment gives where no flag does.
    pub fn under(&self, flags: Overrides) -> Overrides {
        let or = |flag: Option<String>, name: &str| flag.or_else(|| self.get(name).map(str::to_owned));
        Overrides {
            listen: or(flags.listen, "SCIMTRAIL_LISTEN"),
            admin_listen: or(flags.admin_listen, "SCIMTRAIL_ADMIN_LISTEN"),
            store: or(flags.store, "SCIMTRAIL_STORE_URL"),
            instance: or(flags.instance, "SCIMTRAIL_INSTANCE"),
            log_format: or(flags.log_format, "SCIMTRAIL_LOG_FORMAT"),
            log_level: or(flags.log_level, "SCIMTRAIL_LOG_LEVEL"),
            rules_dir: or(flags.rules_dir, "SCIMTRAIL_RULES_DIR"),
            ..flags
        }
    }

    /// Where each setting of [`VARIABLES`] came from, given the flags as typed (before
    /// [`Environment::under`]) and the file: `("SCIMTRAIL_LISTEN", "the environment (SCIMTRAIL_LISTEN)")`.
    pub fn provenance(&self, flags: &Overrides, config_flag: bool, raw: &RawConfig) -> Vec<(&'static str, String)> {
        VARIABLES
            .iter()
            .map(|variable| {
                let flagged = match variable.name {
                    "SCIMTRAIL_CONFIG" => config_flag,
                    "SCIMTRAIL_LISTEN" => flags.listen.is_some(),
                    "SCIMTRAIL_ADMIN_LISTEN" => flags.admin_listen.is_some(),
                    "SCIMTRAIL_STORE_URL" => flags.store.is_some(),
                    "SCIMTRAIL_INSTANCE" => flags.instance.is_some(),
                    "SCIMTRAIL_LOG_FORMAT" => flags.log_format.is_some(),
                    "SCIMTRAIL_RULES_DIR" => flags.rules_dir.is_some(),
                    _ => flags.log_level.is_some(),
                };
                let in_file = match variable.name {
                    "SCIMTRAIL_LISTEN" => raw.listen.addr.is_some(),
                    "SCIMTRAIL_ADMIN_LISTEN" => raw.admin.addr.is_some(),
                    "SCIMTRAIL_STORE_URL" => {
                        raw.store.url.is_some() || raw.store.url_env.is_some() || raw.store.url_file.is_some()
                    }
                    "SCIMTRAIL_INSTANCE" => raw.store.instance.is_some(),
                    "SCIMTRAIL_LOG_FORMAT" => raw.log.format.is_some(),
                    "SCIMTRAIL_LOG_LEVEL" => raw.log.level.is_some(),
                    "SCIMTRAIL_RULES_DIR" => raw.rules.dir.is_some(),
                    _ => false,
                };
                let source = match (flagged, self.read_from(variable.name)) {
                    (true, _) => format!("the flag {}", variable.flag),
                    (false, Some(from)) => format!("the environment ({from})"),
                    (false, None) if in_file => format!("the file ({})", variable.key),
                    (false, None) => "the default".to_owned(),
                };
                (variable.name, source)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::read(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn flags_over_environment_over_file_over_defaults() {
        let environment = env(&[
            ("SCIMTRAIL_LISTEN", "0.0.0.0:8080"),
            ("SCIMTRAIL_DATABASE_URL", "postgres://db/scimtrail"),
            ("SCIMTRAIL_INSTANCE", "scimtrail-1"),
            ("SCIMTRAIL_LOG_FORMAT", ""),
            ("SCIMTRAIL_RULES_DIR", "/etc/scimtrail/idps"),
            ("HOME", "/root"),
        ]);
        let flags = Overrides {
            store: Some("sqlite://flag.db".into()),
            ..Overrides::default()
        };
        let raw = RawConfig::from_toml("[log]\nformat = \"json\"\n", "test").unwrap();
        let merged = environment.under(flags.clone());
        assert_eq!(
            merged.listen.as_deref(),
            Some("0.0.0.0:8080"),
            "environment over default"
        );
        assert_eq!(
            merged.store.as_deref(),
            Some("sqlite://flag.db"),
            "flag over environment"
        );
        assert_eq!(merged.instance.as_deref(), Some("scimtrail-1"));
        assert_eq!(merged.rules_dir.as_deref(), Some("/etc/scimtrail/idps"));
        assert_eq!(
            merged.log_format, None,
            "an empty variable is no value: the file's stays"
        );
        let sources: Vec<String> = environment
            .provenance(&flags, false, &raw)
            .into_iter()
            .map(|(name, source)| format!("{name}: {source}"))
            .collect();
        assert_eq!(
            sources,
            [
                "SCIMTRAIL_CONFIG: the default",
                "SCIMTRAIL_LISTEN: the environment (SCIMTRAIL_LISTEN)",
                "SCIMTRAIL_ADMIN_LISTEN: the default",
                "SCIMTRAIL_STORE_URL: the flag --store",
                "SCIMTRAIL_INSTANCE: the environment (SCIMTRAIL_INSTANCE)",
                "SCIMTRAIL_LOG_FORMAT: the file ([log] format)",
                "SCIMTRAIL_LOG_LEVEL: the default",
                "SCIMTRAIL_RULES_DIR: the environment (SCIMTRAIL_RULES_DIR)",
            ]
        );
    }

    #[test]
    fn the_store_url_has_one_name_and_an_alias() {
        assert_eq!(
            env(&[("SCIMTRAIL_DATABASE_URL", "postgres://old")]).get("SCIMTRAIL_STORE_URL"),
            Some("postgres://old")
        );
        let both = env(&[
            ("SCIMTRAIL_DATABASE_URL", "postgres://old"),
            ("SCIMTRAIL_STORE_URL", "postgres://new"),
        ]);
        assert_eq!(
            both.get("SCIMTRAIL_STORE_URL"),
            Some("postgres://new"),
            "the name over its alias"
        );
    }
}
