//! The observations decided, one group of keys at a time: what pins a key, what is only
//! reported, and what no probe could tell.

use super::*;
use crate::Target;

/// Turns observations into a decision. `max_body_bytes`: the proxy's request body limit,
/// which `max_bulk_payload_bytes` may not exceed (the configuration refuses more).
pub fn decide(seen: &Observations, max_body_bytes: usize) -> Decision {
    let mut d = Decider {
        decision: Decision {
            target: Target::default(),
            keys: Vec::new(),
            undecided: Vec::new(),
            notes: Vec::new(),
        },
    };
    d.content_type(seen);
    d.methods(seen);
    d.paths(seen);
    d.members(seen);
    d.booleans(seen);
    d.user_names(seen);
    d.filters(seen);
    d.paging(seen);
    d.bulk(seen, max_body_bytes);
    d.report_only(seen);
    d.decision
}

struct Decider {
    decision: Decision,
}

impl Decider {
    fn pin(&mut self, key: &'static str, value: toml::Value, probe: Probe, why: impl Into<String>) {
        self.decision.keys.push(Pinned {
            key,
            value,
            probe,
            why: why.into(),
        });
    }

    fn undecided(&mut self, key: &'static str, probe: Probe) {
        self.decision.undecided.push((key, probe));
    }

    fn note(&mut self, probe: Probe, text: impl Into<String>) {
        self.decision.notes.push(Note {
            probe,
            text: text.into(),
            warning: false,
        });
    }

    fn warn(&mut self, probe: Probe, text: impl Into<String>) {
        self.decision.notes.push(Note {
            probe,
            text: text.into(),
            warning: true,
        });
    }

    /// A boolean key decided by one observation, set in the target by `set`.
    fn flag(
        &mut self,
        key: &'static str,
        probe: Probe,
        seen: Option<bool>,
        why: [&str; 2],
        set: fn(&mut Target, bool),
    ) {
        match seen {
            Some(value) => {
                set(&mut self.decision.target, value);
                self.pin(key, toml::Value::Boolean(value), probe, why[usize::from(value)]);
            }
            None => self.undecided(key, probe),
        }
    }

    fn content_type(&mut self, seen: &Observations) {
        let (scim, json) = (seen.accepts_scim_json, seen.accepts_json);
        let media = match (scim, json) {
            (Some(true), _) => Some("application/scim+json"),
            (_, Some(true)) => Some("application/json"),
            _ => None,
        };
        let word = |accepted: Option<bool>| match accepted {
            Some(true) => "accepted",
            Some(false) => "refused",
            None => "not known",
        };
        let why = format!("application/scim+json {}, application/json {}", word(scim), word(json));
        match media {
            Some(media) => {
                self.decision.target.content_type = media.to_owned();
                self.pin(
                    "content_type",
                    toml::Value::String(media.to_owned()),
                    Probe::ContentType,
                    why,
                );
            }
            None => {
                self.undecided("content_type", Probe::ContentType);
                if scim == Some(false) && json == Some(false) {
                    self.warn(
                        Probe::ContentType,
                        format!("a create was refused with either media type ({why})"),
                    );
                }
            }
        }
    }

    fn methods(&mut self, seen: &Observations) {
        self.flag(
            "patch",
            Probe::PatchSupport,
            seen.patch,
            [
                "PATCH is refused: the proxy sends PUT instead (N20)",
                "PATCH is applied",
            ],
            |target, value| target.patch = value,
        );
        self.flag(
            "put",
            Probe::PutSupport,
            seen.put,
            ["PUT is refused: the proxy sends PATCH instead (N20)", "PUT is applied"],
            |target, value| target.put = value,
        );
        if seen.patch == Some(false) && seen.put == Some(false) {
            self.warn(
                Probe::PutSupport,
                "neither PATCH nor PUT changed a user: no update can reach it",
            );
        }
    }

    fn paths(&mut self, seen: &Observations) {
        let both = [
            (seen.member_filter_path, "members[value eq …]"),
            (seen.value_filter_path, "emails[type eq \"work\"].value"),
        ];
        let known: Vec<(bool, &str)> = both.iter().filter_map(|(v, what)| v.map(|v| (v, *what))).collect();
        if known.is_empty() {
            self.undecided("value_path_filters", Probe::ValueFilterPath);
            return;
        }
        let supported = known.iter().all(|(v, _)| *v);
        let why: Vec<String> = known
            .iter()
            .map(|(v, what)| format!("{what} {}", if *v { "applied" } else { "not applied" }))
            .collect();
        // Named after the probe that found it lacking, if one did.
        let probe = if seen.member_filter_path == Some(false) && seen.value_filter_path != Some(false) {
            Probe::MemberFilterPath
        } else {
            Probe::ValueFilterPath
        };
        let mut why = why.join(", ");
        if !supported {
            why.push_str(": the proxy replaces the whole attribute instead (R13)");
        }
        self.decision.target.value_path_filters = supported;
        self.pin("value_path_filters", toml::Value::Boolean(supported), probe, why);
    }

    fn members(&mut self, seen: &Observations) {
        self.flag(
            "empty_members_replace",
            Probe::EmptyMembersReplace,
            seen.empty_members_replace,
            [
                "replace members [] is not applied: the proxy removes each member instead (N19)",
                "replace members [] empties the group",
            ],
            |target, value| target.empty_members_replace = value,
        );
        self.flag(
            "member_type_required",
            Probe::MemberType,
            seen.member_type_required,
            [
                "a member without \"type\" is accepted",
                "a member without \"type\" is refused: the proxy adds it (N17)",
            ],
            |target, value| target.member_type_required = value,
        );
    }

    fn booleans(&mut self, seen: &Observations) {
        let Some(taken) = seen.string_boolean else {
            self.undecided("strict_booleans", Probe::StringBoolean);
            return;
        };
        let (strict, why) = match taken {
            StringBoolean::Refused => (true, "\"active\":\"False\" is refused: the proxy sends false (N2)"),
            StringBoolean::Applied => (false, "\"active\":\"False\" is taken as false: sent as it is"),
            StringBoolean::Ignored => (
                true,
                "\"active\":\"False\" is accepted but the user stays active: the proxy sends false (N2)",
            ),
        };
        if taken == StringBoolean::Ignored {
            self.warn(
                Probe::StringBoolean,
                "\"active\":\"False\" is answered with success and the user stays active: a client sending it directly deactivates no one",
            );
        }
        self.decision.target.strict_booleans = strict;
        self.pin(
            "strict_booleans",
            toml::Value::Boolean(strict),
            Probe::StringBoolean,
            why,
        );
    }

    fn user_names(&mut self, seen: &Observations) {
        self.flag(
            "user_name_case_exact",
            Probe::UserNameCase,
            seen.user_name_case_exact,
            [
                "userName eq matches another casing (RFC 7643)",
                "userName eq does not match another casing: the proxy compares without case (N21, R11)",
            ],
            |target, value| target.user_name_case_exact = value,
        );
    }

    fn filters(&mut self, seen: &Observations) {
        if seen.filters.is_empty() {
            self.undecided("filter_attributes", Probe::Filters);
            self.undecided("filter_operators", Probe::Filters);
            return;
        }
        let correct = |attribute: &str, operator: &str| {
            seen.filters
                .iter()
                .find(|f| f.attribute == attribute && f.operator == operator)
                .and_then(|f| f.correct)
        };
        // An attribute is understood when `eq` on it is answered right.
        let attributes: Vec<&str> = FILTER_ATTRIBUTES
            .iter()
            .copied()
            .filter(|a| correct(a, "eq") == Some(true))
            .collect();
        let failed_attributes: Vec<&str> = FILTER_ATTRIBUTES
            .iter()
            .copied()
            .filter(|a| correct(a, "eq") == Some(false))
            .collect();
        let (value, why) = if failed_attributes.is_empty() {
            (
                Vec::new(),
                format!("eq answered right on {}: all (empty list)", attributes.join(", ")),
            )
        } else if attributes.is_empty() {
            (
                vec!["id".to_owned()],
                format!(
                    "eq answered wrong on every attribute asked ({}): only id is listed, so the proxy evaluates every other filter itself (R12)",
                    failed_attributes.join(", ")
                ),
            )
        } else {
            (
                attributes.iter().map(|a| (*a).to_owned()).collect(),
                format!(
                    "eq answered wrong on {}: the proxy evaluates filters on it itself (R12)",
                    failed_attributes.join(", ")
                ),
            )
        };
        self.decision.target.filter_attributes = value.clone();
        self.pin("filter_attributes", string_array(&value), Probe::Filters, why);

        // An operator is understood when it is answered right on every understood attribute
        // it was asked on (and on one at least). With no attribute understood, none can be
        // told apart from a filter ignored.
        if attributes.is_empty() {
            let value = vec!["eq".to_owned()];
            self.decision.target.filter_operators = value.clone();
            let why = "no attribute filtered right, so no operator can be told apart: only eq is listed, so the proxy evaluates every other filter itself (R12)";
            self.pin("filter_operators", string_array(&value), Probe::Filters, why);
            return;
        }
        let mut operators = Vec::new();
        let mut failed = Vec::new();
        for operator in FILTER_OPERATORS {
            let asked: Vec<Option<bool>> = seen
                .filters
                .iter()
                .filter(|f| f.operator == operator && attributes.contains(&f.attribute.as_str()))
                .map(|f| f.correct)
                .collect();
            if asked.contains(&Some(false)) {
                failed.push(operator);
            } else if asked.contains(&Some(true)) {
                operators.push(operator);
            }
        }
        let (value, why) = match (failed.is_empty(), operators.is_empty()) {
            (true, _) => (Vec::new(), format!("{} answered right: all (empty list)", operators.join(", "))),
            (false, false) => (
                operators.iter().map(|o| (*o).to_owned()).collect(),
                format!(
                    "{} answered wrong or refused: the proxy evaluates filters using them itself (R12)",
                    failed.join(", ")
                ),
            ),
            // An empty list means all: "eq" alone keeps the rest with the proxy.
            (false, true) => (
                vec!["eq".to_owned()],
                format!(
                    "every operator asked ({}) answered wrong or refused: only eq is listed, so the proxy evaluates every other filter itself (R12)",
                    failed.join(", ")
                ),
            ),
        };
        self.decision.target.filter_operators = value.clone();
        self.pin("filter_operators", string_array(&value), Probe::Filters, why);
    }

    fn paging(&mut self, seen: &Observations) {
        let default = Target::default().max_results;
        let (max, why) = match (seen.page_cap, seen.advertised_max_results) {
            (Some(cap), Some(advertised)) if cap < advertised => (
                cap,
                format!("advertises maxResults {advertised} but gave {cap} when asked for more"),
            ),
            (Some(cap), None) => (cap, format!("gave {cap} when asked for more")),
            (_, Some(advertised)) => (advertised, format!("advertises maxResults {advertised}")),
            (None, None) => {
                self.undecided("max_results", Probe::Paging);
                (default, String::new())
            }
        };
        if !why.is_empty() {
            let max = max.max(1);
            self.decision.target.max_results = max;
            self.pin(
                "max_results",
                toml::Value::Integer(i64::try_from(max).unwrap_or(i64::MAX)),
                Probe::Paging,
                why,
            );
        }
        let sorting = match (seen.sorting, seen.sort_advertised) {
            (Some(sorted), advertised) => Some((
                sorted,
                format!(
                    "sortBy=userName&sortOrder=descending {}{}",
                    if sorted { "sorted" } else { "did not sort" },
                    match advertised {
                        Some(true) => " (sort.supported: true)",
                        Some(false) => " (sort.supported: false)",
                        None => "",
                    }
                ),
            )),
            (None, Some(advertised)) => Some((advertised, format!("sort.supported: {advertised}"))),
            (None, None) => None,
        };
        match sorting {
            Some((sorted, why)) => {
                self.decision.target.sorting = sorted;
                self.pin("sorting", toml::Value::Boolean(sorted), Probe::Sorting, why);
            }
            None => self.undecided("sorting", Probe::Sorting),
        }
    }

    fn bulk(&mut self, seen: &Observations, max_body_bytes: usize) {
        let advertised = seen.bulk_advertised.unwrap_or_default();
        let (supported, why) = match (seen.bulk_advertised, seen.bulk_works) {
            (Some(a), Some(works)) => (
                a.supported && works,
                format!(
                    "bulk.supported: {}, a bulk create {}",
                    a.supported,
                    if works { "succeeded" } else { "failed" }
                ),
            ),
            (None, Some(works)) => (
                works,
                format!("a bulk create {}", if works { "succeeded" } else { "failed" }),
            ),
            (Some(a), None) => (a.supported, format!("bulk.supported: {}", a.supported)),
            (None, None) => {
                self.undecided("bulk", Probe::Bulk);
                return;
            }
        };
        if advertised.supported && seen.bulk_works == Some(false) {
            self.warn(
                Probe::Bulk,
                "/Bulk is advertised but a bulk request of one create failed",
            );
        }
        self.decision.target.bulk = supported;
        let why = if supported {
            why
        } else {
            format!("{why}: the proxy sends each operation on its own")
        };
        self.pin("bulk", toml::Value::Boolean(supported), Probe::Bulk, why);
        if !supported {
            return;
        }
        if let Some(max) = advertised.max_operations.filter(|m| *m > 0) {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            self.decision.target.max_bulk_operations = max;
            self.pin(
                "max_bulk_operations",
                toml::Value::Integer(i64::try_from(max).unwrap_or(i64::MAX)),
                Probe::Bulk,
                "bulk.maxOperations",
            );
        }
        if let Some(max) = advertised.max_payload_bytes.filter(|m| *m > 0) {
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            let (bytes, why) = if max > max_body_bytes {
                (
                    max_body_bytes,
                    format!("bulk.maxPayloadSize is {max}, above the proxy's body limit ([record] max_body_bytes = {max_body_bytes})"),
                )
            } else {
                (max, "bulk.maxPayloadSize".to_owned())
            };
            self.decision.target.max_bulk_payload_bytes = Some(bytes);
            self.pin(
                "max_bulk_payload_bytes",
                toml::Value::Integer(i64::try_from(bytes).unwrap_or(i64::MAX)),
                Probe::Bulk,
                why,
            );
        }
    }

    /// What no key expresses: how PATCH is taken, how the application answers and reads
    /// back, each said with what the proxy does about it.
    fn report_only(&mut self, seen: &Observations) {
        if let Some(media) = &seen.answers_content_type {
            self.note(Probe::ContentType, format!("answers with Content-Type {media}"));
        }
        self.report_patches(seen);
        self.report_uniqueness(seen);
        self.report_reads(seen);
        self.report_lifecycle(seen);
    }

    fn report_patches(&mut self, seen: &Observations) {
        match seen.op_case_insensitive {
            Some(true) => self.note(Probe::OpCase, "\"op\":\"Replace\" is accepted (lenient)"),
            Some(false) => self.note(
                Probe::OpCase,
                "\"op\":\"Replace\" is not accepted: every profile lowercases it (N1)",
            ),
            None => {}
        }
        match seen.pathless_patch {
            Some(true) => self.note(Probe::PathlessPatch, "a path-less PATCH is applied"),
            Some(false) => self.warn(
                Probe::PathlessPatch,
                "a path-less PATCH (value an object of attributes) is not applied: Okta's and Entra's deactivations take that shape",
            ),
            None => {}
        }
        match seen.member_filter_path {
            Some(true) => self.note(
                Probe::MemberFilterPath,
                "remove members[value eq …] removes that member only (value_path_filters)",
            ),
            Some(false) => self.note(
                Probe::MemberFilterPath,
                "remove members[value eq …] does not remove that member only (value_path_filters)",
            ),
            None => {}
        }
        match seen.value_array_removal {
            Some(ArrayRemoval::OnlyNamed) => self.note(
                Probe::ValueArrayRemoval,
                "remove members with a value array removes the named member only",
            ),
            Some(ArrayRemoval::All) => self.note(
                Probe::ValueArrayRemoval,
                "remove members with a value array empties the group (RFC 7644 read strictly): every profile names each member instead (N3)",
            ),
            Some(ArrayRemoval::Refused) => self.note(
                Probe::ValueArrayRemoval,
                "remove members with a value array is refused: every profile names each member instead (N3)",
            ),
            Some(ArrayRemoval::Nothing) => self.note(
                Probe::ValueArrayRemoval,
                "remove members with a value array is accepted and removes nothing: every profile names each member instead (N3)",
            ),
            None => {}
        }
        if let Some(status) = seen.patch_status {
            let how = match status {
                204 => "204 with no body: the proxy reads the resource back only when a rule needs it".to_owned(),
                200 => "200 with the resource".to_owned(),
                other => format!("{other}"),
            };
            self.note(Probe::PatchAnswer, format!("a successful PATCH is answered {how}"));
        }
    }

    fn report_uniqueness(&mut self, seen: &Observations) {
        if let Some(u) = seen.uniqueness {
            let say = |status: Option<u16>| status.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
            let text = format!(
                "a second create of the same userName got {}, in another casing {}",
                say(u.same),
                say(u.other_case)
            );
            let created = |status: Option<u16>| status.is_some_and(|s| (200..300).contains(&s));
            if created(u.same) || created(u.other_case) {
                self.warn(
                    Probe::UserNameUniqueness,
                    format!("{text}: userNames are not unique without case (RFC 7643 §4.1.1)"),
                );
            } else if u.same != Some(409) {
                self.note(
                    Probe::UserNameUniqueness,
                    format!("{text}: RFC 7644 says 409 uniqueness (R7 answers so)"),
                );
            } else {
                self.note(Probe::UserNameUniqueness, text);
            }
        }
    }

    fn report_reads(&mut self, seen: &Observations) {
        match (seen.count_honoured, seen.total_results) {
            (Some(false), _) => self.note(
                Probe::Paging,
                "a small count is not honoured: more resources come back than asked",
            ),
            (_, Some(false)) => self.note(Probe::Paging, "lists carry no totalResults (R3 adds it)"),
            (Some(true), Some(true)) => self.note(Probe::Paging, "count is honoured and lists carry totalResults"),
            _ => {}
        }
        if let Some(e) = seen.etags {
            let advertised = match e.advertised {
                Some(true) => "advertised",
                Some(false) => "not advertised",
                None => "advertisement unknown",
            };
            let text = match (e.given, e.stale_if_match) {
                (false, _) => format!("ETags {advertised}; none given on a GET"),
                (true, Some(412)) => format!("ETags {advertised} and given; a stale If-Match is refused 412"),
                (true, Some(status)) => format!(
                    "ETags {advertised} and given; a stale If-Match got {status}: not enforced, so N20's If-Match guards nothing"
                ),
                (true, None) => format!("ETags {advertised} and given"),
            };
            self.note(Probe::Etags, text);
        }
    }

    fn report_lifecycle(&mut self, seen: &Observations) {
        if let Some(d) = seen.after_delete {
            let gone = d.get_status == 404 && !d.still_listed;
            let text = format!(
                "DELETE answered {}; a GET afterwards {}; {}",
                d.delete_status,
                d.get_status,
                if d.still_listed {
                    "still listed by userName"
                } else {
                    "no longer listed"
                }
            );
            if gone {
                self.note(Probe::Deletion, text);
            } else {
                self.warn(Probe::Deletion, format!("{text}: a deleted user stays"));
            }
        }
        if let Some(d) = seen.after_deactivate {
            if d.reads_inactive {
                self.note(
                    Probe::Deactivation,
                    format!(
                        "a deactivated user reads back active: false{}",
                        if d.still_listed {
                            " and is still listed"
                        } else {
                            " and is no longer listed"
                        }
                    ),
                );
            } else {
                self.warn(
                    Probe::Deactivation,
                    "a deactivated user reads back active: a leaver keeps access (no key can fix this)",
                );
            }
        }
    }
}

fn string_array(values: &[String]) -> toml::Value {
    toml::Value::Array(values.iter().cloned().map(toml::Value::String).collect())
}
