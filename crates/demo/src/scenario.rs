//! Scenario files (`config/scenarios/*.json`, format in its README): one IdP's lifecycle as
//! the requests it sends, and the state it means to leave in the application.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file's stem (`entra-flag`); the demo's route prefix.
    pub name: String,
    /// The IdP profile (`entra`).
    pub idp: String,
    /// One line for humans.
    pub title: String,
    /// The requests, in order.
    pub steps: Vec<Step>,
    /// The intended end state.
    pub expect: Value,
}

/// One request.
#[derive(Debug, Clone)]
pub struct Step {
    /// What it does.
    pub name: String,
    /// The method.
    pub method: String,
    /// The path, with `{name}` placeholders.
    pub path: String,
    /// The raw query string, with placeholders.
    pub query: Option<String>,
    /// Extra headers (content types).
    pub headers: Vec<(String, String)>,
    /// The body, with placeholders in string values.
    pub body: Option<Value>,
    /// Where the created resource's id is saved.
    pub save: Option<String>,
}

const BUNDLED: [(&str, &str); 7] = [
    ("okta", include_str!("../../../config/scenarios/okta.json")),
    ("entra", include_str!("../../../config/scenarios/entra.json")),
    ("entra-flag", include_str!("../../../config/scenarios/entra-flag.json")),
    ("onelogin", include_str!("../../../config/scenarios/onelogin.json")),
    ("jumpcloud", include_str!("../../../config/scenarios/jumpcloud.json")),
    ("google", include_str!("../../../config/scenarios/google.json")),
    ("ping", include_str!("../../../config/scenarios/ping.json")),
];

/// The scenarios compiled into the binary.
pub fn bundled() -> Result<Vec<Scenario>, String> {
    BUNDLED.iter().map(|(name, text)| parse(name, text)).collect()
}

/// Parses one scenario file.
pub fn parse(name: &str, text: &str) -> Result<Scenario, String> {
    let file: Value = serde_json::from_str(text).map_err(|e| format!("scenario {name}: {e}"))?;
    let text_of = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let required =
        |value: &Value, key: &str| text_of(value, key).ok_or_else(|| format!("scenario {name}: \"{key}\" is missing"));
    let steps = file
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("scenario {name}: \"steps\" is missing"))?
        .iter()
        .map(|step| {
            Ok(Step {
                name: required(step, "name")?,
                method: required(step, "method")?,
                path: required(step, "path")?,
                query: text_of(step, "query").filter(|q| !q.is_empty()),
                headers: step
                    .get("headers")
                    .and_then(Value::as_object)
                    .map(|headers| {
                        headers
                            .iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
                body: step.get("body").cloned(),
                save: text_of(step, "save"),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Scenario {
        name: name.to_owned(),
        idp: required(&file, "idp")?,
        title: required(&file, "title")?,
        steps,
        expect: file.get("expect").cloned().unwrap_or(Value::Null),
    })
}

/// `{name}` replaced by the saved id, in a string.
pub(crate) fn fill(text: &str, saved: &HashMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (name, id) in saved {
        out = out.replace(&format!("{{{name}}}"), id);
    }
    out
}

/// The same in every string of a JSON value.
pub(crate) fn fill_json(value: &Value, saved: &HashMap<String, String>) -> Value {
    match value {
        Value::String(text) => Value::String(fill(text, saved)),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_json(v, saved)).collect()),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), fill_json(v, saved)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_scenario_parses_and_saves_before_it_uses() {
        let scenarios = bundled().unwrap();
        assert_eq!(scenarios.len(), 7);
        for scenario in scenarios {
            let mut saved: Vec<String> = Vec::new();
            for step in &scenario.steps {
                let text = format!(
                    "{} {:?} {}",
                    step.path,
                    step.query,
                    step.body.clone().unwrap_or_default()
                );
                for (start, _) in text.match_indices('{') {
                    let end = text[start..].find('}').map(|e| start + e);
                    if let Some(end) = end {
                        let name = &text[start + 1..end];
                        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                            assert!(
                                saved.iter().any(|s| s == name),
                                "{}: {} uses {{{name}}} before it is saved",
                                scenario.name,
                                step.name
                            );
                        }
                    }
                }
                saved.extend(step.save.clone());
            }
        }
    }
}
