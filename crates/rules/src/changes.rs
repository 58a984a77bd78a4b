//! What a normalisation changed: one [`Change`] per edit, recorded through [`Changes`] on both
//! sides of the exchange.

use serde_json::{json, Value};

/// Which side of the exchange a change edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request, toward the application.
    Request,
    /// The response, toward the IdP.
    Response,
}

/// One edit: which rule, where (an RFC 6901 pointer into the body, `?name` for a query
/// parameter, `?` for the whole query, `header:name` for a header, or `status`), and the
/// value before and after (`None` when absent: an attribute added or removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The rule id (`N1`, `R3` …).
    pub rule: String,
    /// Request or response.
    pub side: Side,
    /// Where.
    pub pointer: String,
    /// The value before; `None` when it was added.
    pub before: Option<Value>,
    /// The value after; `None` when it was removed.
    pub after: Option<Value>,
}

impl Change {
    /// The change as the exchange's `changes` list stores it: `op` says whether the value
    /// was `added`, `removed` or `replaced`, so that a removed `null` is told apart from
    /// one replaced by `null`.
    pub fn to_json(&self) -> Value {
        let op = match (&self.before, &self.after) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "replaced",
        };
        json!({
            "rule": self.rule,
            "side": match self.side { Side::Request => "request", Side::Response => "response" },
            "op": op,
            "pointer": self.pointer,
            "before": self.before,
            "after": self.after,
        })
    }
}

/// The edits of one side of an exchange, in the order they are made, each under the rule
/// running when it was made ([`Changes::by`]).
#[derive(Debug)]
pub(crate) struct Changes {
    side: Side,
    rule: String,
    list: Vec<Change>,
}

impl Changes {
    /// No change yet, on `side`.
    pub(crate) fn new(side: Side) -> Changes {
        Changes {
            side,
            rule: String::new(),
            list: Vec::new(),
        }
    }

    /// The edits from now on are rule `id`'s.
    pub(crate) fn by(&mut self, id: &str) {
        id.clone_into(&mut self.rule);
    }

    /// The rule running.
    pub(crate) fn rule(&self) -> &str {
        &self.rule
    }

    /// One edit at `pointer`: the value before and after (`None`: absent).
    pub(crate) fn record(&mut self, pointer: impl Into<String>, before: Option<Value>, after: Option<Value>) {
        self.list.push(Change {
            rule: self.rule.clone(),
            side: self.side,
            pointer: pointer.into(),
            before,
            after,
        });
    }

    /// Every edit, in order.
    pub(crate) fn into_list(self) -> Vec<Change> {
        self.list
    }
}
