//! SELECT statements for reading exchanges.

use crate::model::ExchangeQuery;
use crate::sql::{key_param, Param};

pub(crate) struct Select {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

const COLUMNS: &str = "id, received_at, duration_ms, route, idp, method, path, query, resource_type, resource_id, \
    user_name, operation, lifecycle, request_headers, request_body, forwarded_headers, forwarded_body, changes, \
    upstream_status, status, response_headers, response_body, outcome, findings, bulk_operations, error, instance, replay_of, parent_id, client, repeat_count, rules_version, paced_ms, reconcile_of, synthetic";

/// The outcomes replay takes up.
pub const REPLAYABLE_OUTCOMES: [&str; 4] = ["failed", "unreachable", "partial", "interrupted"];

fn quoted(words: &[&str]) -> String {
    words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(", ")
}

/// The writes made to one resource on one route, replays included, oldest first.
pub(crate) fn writes_to(route: &str, resource_type: &str, resource_id: &str) -> Select {
    Select {
        sql: format!(
            "SELECT {COLUMNS} FROM exchanges WHERE route = ? AND resource_type = ? AND resource_id = ? \
             AND method IN ('POST', 'PUT', 'PATCH', 'DELETE') ORDER BY id"
        ),
        params: [route, resource_type, resource_id].map(key_param).to_vec(),
    }
}

/// Creates on a route that succeeded after `after_id` (replays included), of this userName
/// when one is given; oldest first, at most 1000.
pub(crate) fn later_creates(route: &str, resource_type: &str, after_id: &str, user_name: Option<&str>) -> Select {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM exchanges WHERE route = ? AND resource_type = ? AND operation = 'create' \
         AND outcome = 'ok' AND id > ?"
    );
    let mut params: Vec<Param> = [route, resource_type, after_id].map(key_param).to_vec();
    if let Some(user_name) = user_name {
        sql.push_str(" AND user_name = ?");
        params.push(key_param(user_name));
    }
    sql.push_str(" ORDER BY id LIMIT 1000");
    Select { sql, params }
}

/// The deactivations and deprovisions an instance left in flight.
pub(crate) fn in_flight_deprovisions(instance: &str) -> Select {
    Select {
        sql: format!(
            "SELECT {COLUMNS} FROM exchanges WHERE outcome = 'in_flight' AND instance = ? \
             AND lifecycle IN ('deactivate', 'deprovision') ORDER BY id LIMIT 1000"
        ),
        params: vec![key_param(instance)],
    }
}

/// The replays of one exchange, oldest first.
pub(crate) fn replays_of(id: &str) -> Select {
    Select {
        sql: format!("SELECT {COLUMNS} FROM exchanges WHERE replay_of = ? ORDER BY id"),
        params: vec![Param::Text(Some(id.to_owned()))],
    }
}

pub(crate) fn by_id(id: &str) -> Select {
    Select {
        sql: format!("SELECT {COLUMNS} FROM exchanges WHERE id = ?"),
        params: vec![Param::Text(Some(id.to_owned()))],
    }
}

/// The smallest UUIDv7 string of a millisecond: ids compare as time.
pub(crate) fn id_floor(ms: i64) -> String {
    let hex = format!("{:012x}", ms.clamp(0, 0xffff_ffff_ffff));
    format!("{}-{}-0000-0000-000000000000", &hex[..8], &hex[8..])
}

/// Every filter's condition but the person's, which the two plans below apply each their way.
fn conditions(filter: &ExchangeQuery, steer: Steer) -> (Vec<String>, Vec<Param>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut params = Vec::new();
    // A column as an expression no index serves, where only the person's index may be used.
    let column = |name: &str| match steer {
        Steer::AnyIndex => name.to_owned(),
        Steer::PersonIndexOnly => format!("COALESCE({name}, '')"),
    };
    let mut eq = |name: &str, value: &Option<String>| {
        if let Some(value) = value {
            conditions.push(format!("{} = ?", column(name)));
            params.push(Param::Text(Some(value.clone())));
        }
    };
    eq("outcome", &filter.outcome);
    eq("idp", &filter.idp);
    eq("route", &filter.route);
    eq("resource_type", &filter.resource);
    eq("method", &filter.method);
    eq("lifecycle", &filter.lifecycle);
    // The terms of the partial indexes of migration 0013, spelt as they are there: a planner
    // uses a partial index only for a query that states its condition.
    let steered = steer == Steer::AnyIndex;
    if steered && filter.method.as_deref().is_some_and(|m| WRITE_METHODS.contains(&m)) {
        conditions.push(format!("method IN ({})", quoted(&WRITE_METHODS)));
    }
    if steered && filter.lifecycle.as_deref().is_some_and(|l| l != "lookup") {
        conditions.push("lifecycle <> 'lookup'".to_owned());
    }
    if filter.has_findings || filter.finding.is_some() {
        conditions.push(format!("{} <> '[]'", column("findings")));
    }
    if let Some(kind) = &filter.finding {
        // Findings are stored as compact JSON: `[{"kind":"…","detail":"…"},…]`.
        conditions.push("findings LIKE ? ESCAPE '\\'".to_owned());
        params.push(Param::Text(Some(format!(
            "%\"kind\":{}%",
            like_escaped(&serde_json::Value::String(kind.clone()).to_string())
        ))));
    }
    if filter.failed {
        conditions.push("outcome NOT IN ('ok', 'in_flight')".to_owned());
    }
    conditions.push(match filter.synthetic {
        true => "synthetic IS NOT NULL".to_owned(),
        false => "synthetic IS NULL".to_owned(),
    });
    if filter.replayable {
        conditions.push(format!(
            "{} IN ({}) AND replay_of IS NULL",
            column("outcome"),
            quoted(&REPLAYABLE_OUTCOMES)
        ));
    }
    if let Some(since) = filter.since_ms {
        conditions.push("id >= ?".to_owned());
        params.push(Param::Text(Some(id_floor(since))));
    }
    if let Some(until) = filter.until_ms {
        conditions.push("id < ?".to_owned());
        params.push(Param::Text(Some(id_floor(until))));
    }
    if let Some(cursor) = &filter.cursor {
        conditions.push("id < ?".to_owned());
        params.push(Param::Text(Some(cursor.clone())));
    }
    (conditions, params)
}

/// Which indexes a page's conditions may lead the planner to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Steer {
    /// Any: the walk from the newest exchange.
    AnyIndex,
    /// Only the person's (userName, resource id): each branch of a person's page is a short
    /// range of that index, filtered. Measured: a planner that took the lifecycle index for a
    /// branch instead read every deactivation in the store, 1.5 s for one page of a million.
    PersonIndexOnly,
}

/// The methods that write; the partial indexes of replay and of the method filter hold them.
const WRITE_METHODS: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

/// A page, newest first, read by walking the exchanges from the newest: fast when matches are
/// dense. The person's filter is a substring match here, on the exchange's userName and on its
/// resource's names.
pub(crate) fn list(filter: &ExchangeQuery, limit: u64) -> Select {
    let (mut conditions, mut params) = conditions(filter, Steer::AnyIndex);
    if let Some(user) = &filter.user {
        // The userName it shows, or — a request by id, a deactivation among them — what the
        // resource it addresses is called (`resource_names`).
        conditions.push(
            "(LOWER(user_name) LIKE ? ESCAPE '\\' OR (resource_id IS NOT NULL AND EXISTS (SELECT 1 FROM resource_names n \
             WHERE n.route = exchanges.route AND n.resource_type = exchanges.resource_type \
             AND n.resource_id = exchanges.resource_id AND (LOWER(n.user_name) LIKE ? ESCAPE '\\' \
             OR LOWER(n.external_id) LIKE ? ESCAPE '\\' OR LOWER(n.display_name) LIKE ? ESCAPE '\\'))))"
                .to_owned(),
        );
        let pattern = format!("%{}%", like_escaped(&user.to_lowercase()));
        params.extend((0..4).map(|_| Param::Text(Some(pattern.clone()))));
    }
    let mut sql = format!("SELECT {COLUMNS} FROM exchanges");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    params.push(limit_param(limit));
    Select { sql, params }
}

/// The resources whose recorded userName, externalId or displayName contains `text` (ignoring
/// case), or whose id is `text`: `route, resource_type, resource_id, user_name`, at most `cap`.
/// One row per resource, so this scan is bounded by the directory's size, not the traffic's.
pub(crate) fn resources_named(text: &str, route: Option<&str>, cap: u64) -> Select {
    let pattern = format!("%{}%", like_escaped(&text.to_lowercase()));
    let mut sql = "SELECT route, resource_type, resource_id, user_name FROM resource_names \
        WHERE (LOWER(user_name) LIKE ? ESCAPE '\\' OR LOWER(external_id) LIKE ? ESCAPE '\\' \
        OR LOWER(display_name) LIKE ? ESCAPE '\\' OR resource_id = ?)"
        .to_owned();
    let mut params: Vec<Param> = (0..3).map(|_| Param::Text(Some(pattern.clone()))).collect();
    params.push(key_param(text));
    if let Some(route) = route {
        sql.push_str(" AND route = ?");
        params.push(key_param(route));
    }
    sql.push_str(" LIMIT ?");
    params.push(limit_param(cap));
    Select { sql, params }
}

/// One resource as `resource_names` keys it.
pub(crate) struct ResourceKey {
    pub(crate) route: String,
    pub(crate) resource_type: String,
    pub(crate) resource_id: String,
}

/// A page of one person's (or group's) exchanges, read through indexes: the newest `limit` of
/// each userName (ignoring case) and of each resource's writes, merged by the caller (the same
/// exchange may come twice). Fast however sparse the matches.
pub(crate) fn list_named(
    filter: &ExchangeQuery,
    user_names: &[String],
    resources: &[ResourceKey],
    limit: u64,
) -> Select {
    let (conditions, shared) = conditions(filter, Steer::PersonIndexOnly);
    let mut branches = Vec::new();
    let mut params = Vec::new();
    let mut branch = |own: &str, own_params: Vec<Param>| {
        let mut all = vec![own.to_owned()];
        all.extend(conditions.iter().cloned());
        branches.push(format!(
            "SELECT * FROM (SELECT {COLUMNS} FROM exchanges WHERE {} ORDER BY id DESC LIMIT ?) AS b{}",
            all.join(" AND "),
            branches.len()
        ));
        params.extend(own_params);
        params.extend(shared.iter().cloned());
        params.push(limit_param(limit));
    };
    for name in user_names {
        branch(
            "LOWER(user_name) = ? AND user_name IS NOT NULL",
            vec![key_param(&name.to_lowercase())],
        );
    }
    for key in resources {
        branch(
            &format!(
                "route = ? AND resource_type = ? AND resource_id = ? AND method IN ({})",
                quoted(&WRITE_METHODS)
            ),
            [&key.route, &key.resource_type, &key.resource_id]
                .map(|v| key_param(v))
                .to_vec(),
        );
    }
    Select {
        sql: branches.join(" UNION ALL "),
        params,
    }
}

fn limit_param(limit: u64) -> Param {
    Param::Int(Some(i64::try_from(limit).unwrap_or(i64::MAX)))
}

/// `text` for a `LIKE … ESCAPE '\\'` pattern: its wildcards taken literally.
pub(crate) fn like_escaped(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_floor_orders_like_uuid_v7() {
        let id = uuid::Uuid::now_v7().to_string();
        let ms = i64::from_str_radix(&id[..8], 16).unwrap() << 16 | i64::from_str_radix(&id[9..13], 16).unwrap();
        assert!(id_floor(ms).as_str() <= id.as_str());
        assert!(id_floor(ms + 1).as_str() > id.as_str());
    }
}
