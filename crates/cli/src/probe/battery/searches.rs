//! The searches: each filter operator and attribute, paging, sorting, userName uniqueness.

use super::*;

impl Battery {
    // === filters ===

    /// The value of `attribute` for `who`, and the part of it that tells alpha from bravo.
    pub(super) fn value_of(&self, attribute: &str, who: &str) -> (String, String) {
        match attribute {
            "userName" | "emails.value" => (self.user_name(who), format!("{who}@example.com")),
            "externalId" => (format!("{}-{who}", self.run), who.to_owned()),
            _ => {
                let capital = capitalised(who);
                (format!("{} {capital}", self.run), capital)
            }
        }
    }

    /// A filtered list: whether alpha and bravo are in it, or `None` when the answer was
    /// refused; `cut` when the page holds fewer than `totalResults`.
    pub(super) async fn search(&mut self, probe: Probe, filter: &str, extra: &str) -> Result<Option<Listed>, String> {
        let path = format!("/Users?filter={}{extra}", encode(filter));
        let reply = self.send(probe, "GET", &path, None).await?;
        if !reply.ok() || (reply.body.get("Resources").is_none() && reply.total_results() != Some(0)) {
            return Ok(None);
        }
        let ids = reply.listed_ids();
        let cut = reply.total_results().is_some_and(|total| total > ids.len() as u64);
        Ok(Some(Listed { ids, cut }))
    }

    pub(super) async fn filters(&mut self, alpha: &Person, bravo: &Person) {
        let mut checks = Vec::new();
        for attribute in FILTER_ATTRIBUTES {
            let (a, a_part) = self.value_of(attribute, alpha.who);
            let (b, _) = self.value_of(attribute, bravo.who);
            let q = |v: &str| json!(v).to_string();
            let prefix_len = a.len() - a_part.len() + 3;
            let start = a.get(..prefix_len).unwrap_or(&a);
            let nobody = format!("{}-nobody", self.run);
            // (operator, filters, whether alpha and bravo are expected in each)
            let cases: Vec<(&str, Vec<Expected>)> = vec![
                ("eq", vec![(format!("{attribute} eq {}", q(&a)), true, false)]),
                ("ne", vec![(format!("{attribute} ne {}", q(&a)), false, true)]),
                ("co", vec![(format!("{attribute} co {}", q(&a_part)), true, false)]),
                ("sw", vec![(format!("{attribute} sw {}", q(start)), true, false)]),
                ("ew", vec![(format!("{attribute} ew {}", q(&a_part)), true, false)]),
                ("pr", vec![(format!("{attribute} pr"), true, true)]),
                ("gt", vec![(format!("{attribute} gt {}", q(&a)), false, true)]),
                ("ge", vec![(format!("{attribute} ge {}", q(&b)), false, true)]),
                ("lt", vec![(format!("{attribute} lt {}", q(&b)), true, false)]),
                ("le", vec![(format!("{attribute} le {}", q(&a)), true, false)]),
                (
                    "and",
                    vec![
                        (
                            format!("{attribute} eq {} and {attribute} eq {}", q(&a), q(&a)),
                            true,
                            false,
                        ),
                        (
                            format!("{attribute} eq {} and {attribute} eq {}", q(&a), q(&b)),
                            false,
                            false,
                        ),
                    ],
                ),
                (
                    "or",
                    vec![
                        (
                            format!("{attribute} eq {} or {attribute} eq {}", q(&a), q(&b)),
                            true,
                            true,
                        ),
                        (
                            format!("{attribute} eq {} or {attribute} eq {}", q(&a), q(&nobody)),
                            true,
                            false,
                        ),
                    ],
                ),
                ("not", vec![(format!("not ({attribute} eq {})", q(&a)), false, true)]),
            ];
            for (operator, filters) in cases {
                let mut correct = Some(true);
                for (filter, want_a, want_b) in filters {
                    let verdict = match self.search(Probe::Filters, &filter, "&count=1000").await {
                        Err(error) => {
                            self.cannot_tell(Probe::Filters, error);
                            None
                        }
                        Ok(None) => Some(false),
                        Ok(Some(listed)) => listed.verdict(&alpha.id, want_a, &bravo.id, want_b),
                    };
                    correct = match (correct, verdict) {
                        (Some(false), _) | (_, Some(false)) => Some(false),
                        (None, _) | (_, None) => None,
                        _ => Some(true),
                    };
                }
                checks.push(FilterCheck {
                    attribute: attribute.to_owned(),
                    operator: operator.to_owned(),
                    correct,
                });
            }
        }
        debug_assert_eq!(checks.len(), FILTER_ATTRIBUTES.len() * FILTER_OPERATORS.len());
        let eq_works = checks
            .iter()
            .any(|c| c.attribute == "userName" && c.operator == "eq" && c.correct == Some(true));
        self.seen.filters = checks;

        // userName in another casing: found means compared without case, as RFC 7643 says.
        if !eq_works {
            self.cannot_tell(
                Probe::UserNameCase,
                "userName eq does not find the user in its own casing",
            );
            return;
        }
        let shouted = self.user_name(alpha.who).to_uppercase();
        match self
            .search(Probe::UserNameCase, &format!("userName eq {}", json!(shouted)), "")
            .await
        {
            Ok(Some(listed)) => self.seen.user_name_case_exact = Some(!listed.ids.contains(&alpha.id)),
            Ok(None) => self.cannot_tell(Probe::UserNameCase, "the search was refused"),
            Err(error) => self.cannot_tell(Probe::UserNameCase, error),
        }
    }

    // === paging and sorting ===

    pub(super) async fn paging(&mut self) {
        let probe = Probe::Paging;
        match self.send(probe, "GET", "/Users?startIndex=1&count=1", None).await {
            Ok(reply) if reply.ok() => {
                self.seen.count_honoured = Some(reply.listed_ids().len() <= 1);
                self.seen.total_results = Some(reply.total_results().is_some());
            }
            Ok(reply) => self.cannot_tell(probe, format!("a list of one was answered {}", reply.status)),
            Err(error) => self.cannot_tell(probe, error),
        }
        // Asked for more than it advertises: a page cut below what it holds is its real page.
        let asked = self
            .seen
            .advertised_max_results
            .unwrap_or(1000)
            .saturating_add(1)
            .min(100_000);
        let mut reply = self
            .send(probe, "GET", &format!("/Users?startIndex=1&count={asked}"), None)
            .await;
        if matches!(&reply, Ok(r) if r.status == 400) {
            let asked = self.seen.advertised_max_results.unwrap_or(1000);
            reply = self
                .send(probe, "GET", &format!("/Users?startIndex=1&count={asked}"), None)
                .await;
        }
        match reply {
            Ok(reply) if reply.ok() => {
                let given = reply.listed_ids().len() as u64;
                if let Some(total) = reply.total_results() {
                    if given < total.min(asked) {
                        self.seen.page_cap = Some(given);
                    }
                }
            }
            Ok(reply) => self.cannot_tell(probe, format!("a large page was answered {}", reply.status)),
            Err(error) => self.cannot_tell(probe, error),
        }
    }

    pub(super) async fn sorting(&mut self, alpha: &Person, bravo: &Person) {
        let probe = Probe::Sorting;
        let filters = [
            format!("userName sw {}", json!(self.run)),
            format!(
                "userName eq {} or userName eq {}",
                json!(self.user_name(alpha.who)),
                json!(self.user_name(bravo.who))
            ),
        ];
        for filter in filters {
            match self
                .search(probe, &filter, "&sortBy=userName&sortOrder=descending")
                .await
            {
                Ok(Some(listed)) => {
                    let at = |id: &str| listed.ids.iter().position(|i| i == id);
                    if let (Some(a), Some(b)) = (at(&alpha.id), at(&bravo.id)) {
                        self.seen.sorting = Some(b < a);
                        return;
                    }
                }
                Ok(None) => {
                    // Refused with sortBy: not sorting, if the same filter works without.
                    if let Ok(Some(_)) = self.search(probe, &filter, "").await {
                        self.seen.sorting = Some(false);
                        return;
                    }
                }
                Err(error) => self.cannot_tell(probe, error),
            }
        }
        self.cannot_tell(probe, "no filter listed both probe users");
    }

    // === userName uniqueness ===

    pub(super) async fn uniqueness(&mut self, alpha: &Person) {
        let probe = Probe::UserNameUniqueness;
        let mut again = self.user(alpha.who);
        let mut statuses = [None, None];
        for (i, name) in [self.user_name(alpha.who), self.user_name(alpha.who).to_uppercase()]
            .into_iter()
            .enumerate()
        {
            again["userName"] = json!(name);
            match self.send(probe, "POST", "/Users", Some(&again)).await {
                Ok(reply) => {
                    statuses[i] = Some(reply.status);
                    // A duplicate taken is the probe's to delete.
                    if let Some(id) = created_id(&reply).filter(|_| reply.ok()) {
                        if let Err(error) = self.app.created("Users", &id, &lowercase_prefix(&name)) {
                            self.cannot_tell(probe, error);
                        }
                    }
                }
                Err(error) => self.cannot_tell(probe, error),
            }
        }
        if statuses.iter().any(Option::is_some) {
            self.seen.uniqueness = Some(Uniqueness {
                same: statuses[0],
                other_case: statuses[1],
            });
        }
    }

    // === PATCH, PUT, booleans ===
}
