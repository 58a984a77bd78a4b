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
pub fn fill(text: &str, saved: &HashMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (name, id) in saved {
        out = out.replace(&format!("{{{name}}}"), id);
    }
    out
}

/// The same in every string of a JSON value.
pub fn fill_json(value: &Value, saved: &HashMap<String, String>) -> Value {
    map_strings(value, &|text| fill(text, saved))
}

/// The scenario with every user and group it creates renamed `<prefix>-<name>` (userNames,
/// group displayNames), wherever the name appears: in bodies, in `expect`, and in queries in
/// any of the encodings IdPs use (`%20` or `+` for a space, `@` or `%40`). `verify` plays it
/// so against a real application: what it creates is then named as the probe's resources
/// are. Refused when a create would still carry a name without the prefix.
pub fn renamed(scenario: &Scenario, prefix: &str) -> Result<Scenario, String> {
    let mut names: Vec<String> = Vec::new();
    for step in scenario.steps.iter().filter(|s| s.method.eq_ignore_ascii_case("POST")) {
        for key in ["userName", "displayName"] {
            let name = step.body.as_ref().and_then(|b| b.get(key)).and_then(Value::as_str);
            let is_group = step.path.trim_end_matches('/').ends_with("/Groups");
            if let Some(name) = name.filter(|_| (key == "userName") != is_group) {
                names.push(name.to_owned());
            }
        }
    }
    let expect = &scenario.expect;
    for (list, key) in [
        ("users", Some("userName")),
        ("groups", Some("displayName")),
        ("absent_users", None),
    ] {
        for item in expect.get(list).and_then(Value::as_array).into_iter().flatten() {
            let name = match key {
                Some(key) => item.get(key).and_then(Value::as_str),
                None => item.as_str(),
            };
            names.extend(name.map(str::to_owned));
        }
    }
    names.sort();
    names.dedup();
    // Every way a name is written, longest first, each with what replaces it.
    let mut forms: Vec<(String, String)> = Vec::new();
    for name in &names {
        for space in [" ", "%20", "+"] {
            for at in ["@", "%40"] {
                let form = name.replace(' ', space).replace('@', at);
                if !forms.iter().any(|(f, _)| *f == form) {
                    forms.push((form.clone(), format!("{prefix}-{form}")));
                }
            }
        }
    }
    forms.sort_by_key(|(form, _)| std::cmp::Reverse(form.len()));
    let rename = |text: &str| rename_in(text, &forms);
    let mut renamed = scenario.clone();
    for step in &mut renamed.steps {
        step.path = rename(&step.path);
        step.query = step.query.as_deref().map(rename);
        step.body = step.body.as_ref().map(|b| map_strings(b, &rename));
    }
    renamed.expect = map_strings(&scenario.expect, &rename);
    for step in renamed.steps.iter().filter(|s| s.method.eq_ignore_ascii_case("POST")) {
        for key in ["userName", "displayName"] {
            if let Some(name) = step.body.as_ref().and_then(|b| b.get(key)).and_then(Value::as_str) {
                let is_group = step.path.trim_end_matches('/').ends_with("/Groups");
                if (key == "userName") != is_group && !name.starts_with(prefix) {
                    return Err(format!(
                        "scenario {}: step \"{}\" would create {name:?}, which cannot be renamed {prefix}-…",
                        scenario.name, step.name
                    ));
                }
            }
        }
    }
    Ok(renamed)
}

/// Each of `forms` found in `text` replaced, in one pass (a replacement is never read again).
fn rename_in(text: &str, forms: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for (form, replacement) in forms {
            if let Some(after) = rest.strip_prefix(form.as_str()) {
                out.push_str(replacement);
                rest = after;
                continue 'outer;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// `change` applied to every string of a JSON value (keys stay).
fn map_strings(value: &Value, change: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::String(text) => Value::String(change(text)),
        Value::Array(items) => Value::Array(items.iter().map(|v| map_strings(v, change)).collect()),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), map_strings(v, change)))
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

    /// Every bundled scenario renames: no original name is left anywhere, every create is
    /// named with the prefix, and the names in queries keep their encoding.
    #[test]
    fn every_bundled_scenario_renames_each_name_in_every_encoding() {
        for scenario in bundled().unwrap() {
            let renamed = renamed(&scenario, "scimtrail-probe-1a2b").unwrap();
            let expect = &scenario.expect;
            let mut names: Vec<String> = Vec::new();
            for user in expect["users"].as_array().unwrap() {
                names.push(user["userName"].as_str().unwrap().to_owned());
            }
            for user in expect["absent_users"].as_array().unwrap() {
                names.push(user.as_str().unwrap().to_owned());
            }
            for group in expect["groups"].as_array().unwrap() {
                names.push(group["displayName"].as_str().unwrap().to_owned());
            }
            let mut found = 0;
            for step in &renamed.steps {
                let text = format!(
                    "{} {} {}",
                    step.path,
                    step.query.clone().unwrap_or_default(),
                    step.body.clone().unwrap_or_default()
                );
                for name in &names {
                    for form in [
                        name.clone(),
                        name.replace(' ', "%20").replace('@', "%40"),
                        name.replace(' ', "+").replace('@', "%40"),
                    ] {
                        for (at, _) in text.match_indices(&form) {
                            found += 1;
                            assert!(
                                text[..at].ends_with("scimtrail-probe-1a2b-"),
                                "{}: {}: {form} not renamed in {text}",
                                scenario.name,
                                step.name
                            );
                        }
                    }
                }
            }
            assert!(found > 5, "{}: names found {found} times", scenario.name);
            for user in renamed.expect["users"].as_array().unwrap() {
                assert!(user["userName"].as_str().unwrap().starts_with("scimtrail-probe-1a2b-"));
            }
            for group in renamed.expect["groups"].as_array().unwrap() {
                assert!(group["displayName"]
                    .as_str()
                    .unwrap()
                    .starts_with("scimtrail-probe-1a2b-"));
            }
        }
    }

    #[test]
    fn names_are_renamed_once_in_each_encoding() {
        let scenario = parse(
            "x",
            r#"{"idp": "okta", "title": "t", "steps": [
                {"name": "find", "method": "GET", "path": "/Groups", "query": "filter=displayName+eq+%22Ops%20Team%22%20or%20displayName%20eq%20%22Ops+Team%22"},
                {"name": "make", "method": "POST", "path": "/Groups", "body": {"displayName": "Ops Team", "note": "Ops Team and a@b.c"}},
                {"name": "user", "method": "POST", "path": "/Users", "body": {"userName": "a@b.c", "emails": [{"value": "a@b.c"}]}},
                {"name": "look", "method": "GET", "path": "/Users", "query": "filter=userName%20eq%20%22a%40b.c%22"}
            ], "expect": {"users": [{"userName": "a@b.c"}], "groups": [{"displayName": "Ops Team", "members": []}]}}"#,
        )
        .unwrap();
        let renamed = renamed(&scenario, "P").unwrap();
        assert_eq!(
            renamed.steps[0].query.as_deref(),
            Some("filter=displayName+eq+%22P-Ops%20Team%22%20or%20displayName%20eq%20%22P-Ops+Team%22")
        );
        assert_eq!(
            renamed.steps[1].body,
            Some(serde_json::json!({"displayName": "P-Ops Team", "note": "P-Ops Team and P-a@b.c"}))
        );
        assert_eq!(
            renamed.steps[2].body,
            Some(serde_json::json!({"userName": "P-a@b.c", "emails": [{"value": "P-a@b.c"}]}))
        );
        assert_eq!(
            renamed.steps[3].query.as_deref(),
            Some("filter=userName%20eq%20%22P-a%40b.c%22")
        );
        assert_eq!(renamed.expect["users"][0]["userName"], "P-a@b.c");
        assert_eq!(renamed.expect["groups"][0]["displayName"], "P-Ops Team");
    }
}
