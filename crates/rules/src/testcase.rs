//! Test cases embedded in rule files, run by `scimtrail rules test` and by `cargo test`.

use crate::{normalize_request, normalize_response, Change, Profile, Request, Response, Target};
use serde::Deserialize;
use serde_json::Value;

/// One case: a request (and optionally the application's response), and what the profile
/// must make of it. Bodies are JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What it shows.
    pub name: String,
    /// The request method.
    pub method: String,
    /// The request path, relative to the route.
    pub path: String,
    /// The raw query string.
    pub query: Option<String>,
    /// The request's content type (`application/scim+json` when there is a body and this
    /// is not given).
    pub content_type: Option<String>,
    /// The request body.
    pub body: Option<String>,
    /// The application, when not the strict default.
    pub target: Option<Target>,
    /// The resource as the application has it (JSON), for the stateful rules.
    pub state: Option<String>,
    /// The method to forward.
    pub expect_method: Option<String>,
    /// The `If-Match` to forward.
    pub expect_if_match: Option<String>,
    /// The bodies of the requests sent after the first (R16), in order.
    pub expect_then: Option<Vec<String>>,
    /// The body to forward.
    pub expect_body: Option<String>,
    /// The query string to forward.
    pub expect_query: Option<String>,
    /// The content type to forward.
    pub expect_content_type: Option<String>,
    /// The `scimType` of the refusal the request must get (its status when it has none).
    pub expect_refusal: Option<String>,
    /// The rules that changed something, in order of first change.
    pub expect_rules: Option<Vec<String>>,
    /// The application's status.
    pub response_status: Option<u16>,
    /// The application's body.
    pub response_body: Option<String>,
    /// The application's content type.
    pub response_content_type: Option<String>,
    /// The application's `Retry-After`.
    pub response_retry_after: Option<String>,
    /// When the response arrived, epoch seconds.
    pub received_at_secs: Option<i64>,
    /// The `Retry-After` the IdP must receive.
    pub expect_retry_after: Option<String>,
    /// The status the IdP must receive.
    pub expect_status: Option<u16>,
    /// The body the IdP must receive.
    pub expect_response_body: Option<String>,
    /// The content type the IdP must receive.
    pub expect_response_content_type: Option<String>,
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The profile.
    pub profile: String,
    /// The case.
    pub name: String,
    /// What did not hold; `None` when the case passed.
    pub failure: Option<String>,
}

/// Runs every case of the profile.
pub fn run_tests(profile: &Profile) -> Vec<TestOutcome> {
    profile
        .tests
        .iter()
        .map(|case| TestOutcome {
            profile: profile.name.clone(),
            name: case.name.clone(),
            failure: run(profile, case).err(),
        })
        .collect()
}

fn parse(what: &str, text: &Option<String>) -> Result<Option<Value>, String> {
    text.as_deref()
        .map(|text| serde_json::from_str(text).map_err(|e| format!("{what} is not JSON: {e}")))
        .transpose()
}

fn run(profile: &Profile, case: &TestCase) -> Result<(), String> {
    if !asserts_something(case) {
        return Err("the case expects nothing".to_owned());
    }
    let request = Request {
        method: case.method.clone(),
        path: case.path.clone(),
        query: case.query.clone(),
        content_type: case
            .content_type
            .clone()
            .or_else(|| case.body.as_ref().map(|_| "application/scim+json".to_owned())),
        body: parse("body", &case.body)?,
        if_match: None,
        post_filter: None,
        then: Vec::new(),
        pages: None,
    };
    let target = case.target.clone().unwrap_or_default();
    let state = parse("state", &case.state)?;
    let forwarded = match normalize_request(&request, profile, &target, state.as_ref()) {
        Ok(forwarded) => forwarded,
        Err(refusal) => {
            // The refusal's scimType, or its status when it has none.
            let kind = refusal
                .error
                .scim_type
                .map_or_else(|| refusal.error.status.to_string(), |t| t.as_str().to_owned());
            return match &case.expect_refusal {
                Some(expected) if &kind == expected => Ok(()),
                _ => Err(format!("refused: {} (rule {})", refusal.error.detail, refusal.rule)),
            };
        }
    };
    if let Some(expected) = &case.expect_refusal {
        return Err(format!(
            "expected a refusal ({expected}), but the request was forwarded"
        ));
    }
    let mut rules: Vec<String> = Vec::new();
    note_rules(&mut rules, &forwarded.changes);
    let sent = &forwarded.value;
    check_forwarded(case, sent)?;
    if let Some(status) = case.response_status {
        let response = Response {
            status,
            content_type: case.response_content_type.clone(),
            has_body: case.response_body.is_some(),
            retry_after: case.response_retry_after.clone(),
            received_at_secs: case.received_at_secs.unwrap_or(0),
            body: parse("response_body", &case.response_body)?,
        };
        let returned = normalize_response(sent, &response, profile, &target);
        note_rules(&mut rules, &returned.changes);
        check_returned(case, &returned.value)?;
    } else if case.expect_status.is_some() || case.expect_response_body.is_some() {
        return Err("response expectations need a response_status".to_owned());
    }
    if let Some(expected) = &case.expect_rules {
        if &rules != expected {
            return Err(format!("rules applied {rules:?}, expected {expected:?}"));
        }
    }
    Ok(())
}

/// Whether the case checks anything at all.
fn asserts_something(case: &TestCase) -> bool {
    case.expect_body.is_some()
        || case.expect_query.is_some()
        || case.expect_content_type.is_some()
        || case.expect_method.is_some()
        || case.expect_if_match.is_some()
        || case.expect_then.is_some()
        || case.expect_refusal.is_some()
        || case.expect_rules.is_some()
        || case.expect_status.is_some()
        || case.expect_response_body.is_some()
        || case.expect_response_content_type.is_some()
        || case.expect_retry_after.is_some()
}

/// Adds the rules of `changes` not yet in `rules`, in order of first change.
fn note_rules(rules: &mut Vec<String>, changes: &[Change]) {
    for change in changes {
        if !rules.contains(&change.rule) {
            rules.push(change.rule.clone());
        }
    }
}

/// The request's expectations against what was forwarded.
fn check_forwarded(case: &TestCase, sent: &Request) -> Result<(), String> {
    if let Some(expected) = parse("expect_body", &case.expect_body)? {
        if sent.body.as_ref() != Some(&expected) {
            return Err(format!(
                "forwarded body differs:\n  got      {}\n  expected {expected}",
                show(&sent.body)
            ));
        }
    }
    if let Some(expected) = &case.expect_query {
        if sent.query.as_deref().unwrap_or_default() != expected {
            return Err(format!("forwarded query {:?}, expected {expected:?}", sent.query));
        }
    }
    if let Some(expected) = &case.expect_method {
        if &sent.method != expected {
            return Err(format!("forwarded method {}, expected {expected}", sent.method));
        }
    }
    if let Some(expected) = &case.expect_if_match {
        if sent.if_match.as_deref() != Some(expected.as_str()) {
            return Err(format!("forwarded If-Match {:?}, expected {expected:?}", sent.if_match));
        }
    }
    if let Some(expected) = &case.expect_then {
        let got: Vec<Option<Value>> = sent.then.iter().map(|r| r.body.clone()).collect();
        let wanted = expected
            .iter()
            .map(|text| parse("expect_then", &Some(text.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        if got != wanted {
            return Err(format!(
                "requests sent after the first differ:\n  got      {got:?}\n  expected {wanted:?}"
            ));
        }
    }
    if let Some(expected) = &case.expect_content_type {
        if sent.content_type.as_deref() != Some(expected.as_str()) {
            return Err(format!(
                "forwarded content type {:?}, expected {expected:?}",
                sent.content_type
            ));
        }
    }
    Ok(())
}

/// The response's expectations against what the IdP receives.
fn check_returned(case: &TestCase, returned: &Response) -> Result<(), String> {
    if let Some(expected) = case.expect_status {
        if returned.status != expected {
            return Err(format!("returned status {}, expected {expected}", returned.status));
        }
    }
    if let Some(expected) = parse("expect_response_body", &case.expect_response_body)? {
        if returned.body.as_ref() != Some(&expected) {
            return Err(format!(
                "returned body differs:\n  got      {}\n  expected {expected}",
                show(&returned.body)
            ));
        }
    }
    if let Some(expected) = &case.expect_retry_after {
        if returned.retry_after.as_deref() != Some(expected.as_str()) {
            return Err(format!(
                "returned Retry-After {:?}, expected {expected:?}",
                returned.retry_after
            ));
        }
    }
    if let Some(expected) = &case.expect_response_content_type {
        if returned.content_type.as_deref() != Some(expected.as_str()) {
            return Err(format!(
                "returned content type {:?}, expected {expected:?}",
                returned.content_type
            ));
        }
    }
    Ok(())
}

fn show(body: &Option<Value>) -> String {
    body.as_ref().map_or_else(|| "(none)".to_owned(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test` runs every case of every built-in rule file.
    #[test]
    fn every_builtin_rule_file_passes_its_own_tests() {
        let mut failures = Vec::new();
        let mut count = 0;
        for profile in crate::builtin_profiles().unwrap() {
            for outcome in run_tests(&profile) {
                count += 1;
                if let Some(failure) = outcome.failure {
                    failures.push(format!("{} / {}: {failure}", outcome.profile, outcome.name));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {count} cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(count >= 20, "only {count} cases");
    }

    /// Every rule of every bundled profile has a case that shows it applied (the rules the
    /// case expects name it), and every profile has a case that shows a request its rules
    /// leave alone (it expects no rule).
    #[test]
    fn every_rule_of_a_bundled_profile_has_a_case_that_shows_it_applied() {
        let mut missing = Vec::new();
        for profile in crate::builtin_profiles().unwrap() {
            let expected: Vec<&Vec<String>> = profile
                .tests
                .iter()
                .filter_map(|case| case.expect_rules.as_ref())
                .collect();
            for rule in &profile.rules {
                if !expected.iter().any(|rules| rules.contains(&rule.id)) {
                    missing.push(format!("{} {} ({})", profile.name, rule.id, rule.action.name()));
                }
            }
            if !expected.iter().any(|rules| rules.is_empty()) {
                missing.push(format!("{}: no case with expect_rules = []", profile.name));
            }
        }
        assert!(
            missing.is_empty(),
            "{} without a case:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }
}
