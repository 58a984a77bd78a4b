//! Statements and parameter binding, written once for both backends: statements use `?`
//! placeholders, which [`numbered_placeholders`] turns into PostgreSQL's `$n`.

use crate::column::{self, key};
use crate::model::{Completion, NewExchange, ResourceName, Snapshot, Write, OUTCOME_IN_FLIGHT};
use sqlx::postgres::PgArguments;
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Postgres, Sqlite};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(Option<String>),
    Int(Option<i64>),
}

const INSERT: &str = "INSERT INTO exchanges (id, received_at, instance, route, idp, method, path, query, \
    resource_type, resource_id, user_name, operation, lifecycle, request_headers, request_body, outcome, replay_of, \
    parent_id, client, rules_version, reconcile_of, synthetic) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (id) DO NOTHING";

const FINISH: &str = "UPDATE exchanges SET duration_ms = ?, forwarded_headers = ?, forwarded_body = ?, changes = ?, \
    upstream_status = ?, status = ?, response_headers = ?, response_body = ?, findings = ?, bulk_operations = ?, \
    error = ?, paced_ms = ?, outcome = ?, resource_id = COALESCE(resource_id, ?), user_name = COALESCE(user_name, ?) \
    WHERE id = ?";

/// A whole exchange, inserted once. Over an existing row (its begin, applied earlier, or the
/// same record applied again after a crash) it sets what [`FINISH`] sets.
const WHOLE: &str = "INSERT INTO exchanges (id, received_at, instance, route, idp, method, path, query, \
    resource_type, resource_id, user_name, operation, lifecycle, request_headers, request_body, outcome, replay_of, \
    parent_id, client, rules_version, reconcile_of, synthetic, duration_ms, forwarded_headers, forwarded_body, changes, \
    upstream_status, status, response_headers, response_body, findings, bulk_operations, error, paced_ms) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (id) DO UPDATE SET duration_ms = excluded.duration_ms, forwarded_headers = excluded.forwarded_headers, \
    forwarded_body = excluded.forwarded_body, changes = excluded.changes, upstream_status = excluded.upstream_status, \
    status = excluded.status, response_headers = excluded.response_headers, response_body = excluded.response_body, \
    outcome = excluded.outcome, findings = excluded.findings, bulk_operations = excluded.bulk_operations, \
    error = excluded.error, paced_ms = excluded.paced_ms, resource_id = COALESCE(exchanges.resource_id, excluded.resource_id), \
    user_name = COALESCE(exchanges.user_name, excluded.user_name)";

const KEEP_SNAPSHOT: &str = "INSERT INTO resource_snapshots (route, resource_type, resource_id, body, updated_at) \
    VALUES (?, ?, ?, ?, ?) ON CONFLICT (route, resource_type, resource_id) \
    DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at \
    WHERE excluded.updated_at >= resource_snapshots.updated_at";

/// Only ever raised, so that applying it again (the journal after a crash) changes nothing.
const REPEATS: &str = "UPDATE exchanges SET repeat_count = ? WHERE id = ? AND repeat_count < ?";

const FORGET_SNAPSHOT: &str =
    "DELETE FROM resource_snapshots WHERE route = ? AND resource_type = ? AND resource_id = ?";

pub(crate) const KEEP_SHAPE: &str =
    "INSERT INTO route_shapes (route, shape, first_seen) VALUES (?, ?, ?) ON CONFLICT (route, shape) DO NOTHING";

/// The shapes a route has seen.
pub(crate) const ROUTE_SHAPES: &str = "SELECT shape FROM route_shapes WHERE route = ?";

/// The last representation of one resource.
pub(crate) const GET_SNAPSHOT: &str =
    "SELECT body FROM resource_snapshots WHERE route = ? AND resource_type = ? AND resource_id = ?";

/// The statements of one write, in order.
pub(crate) fn statements(write: &Write) -> Vec<(&'static str, Vec<Param>)> {
    match write {
        Write::Begin(new) => vec![(INSERT, insert_params(new))],
        Write::Finish(done) => vec![(FINISH, finish_params(done))],
        Write::Whole(new, done) => vec![(WHOLE, whole_params(new, done))],
        Write::Snapshot(snapshot) => vec![snapshot_statement(snapshot)],
        Write::Repeats(id, count) => vec![(
            REPEATS,
            vec![Param::Int(Some(*count)), key_param(id), Param::Int(Some(*count))],
        )],
        Write::Names(names) => names.iter().map(name_statement).collect(),
        Write::Shape(route, shape, at) => vec![(
            KEEP_SHAPE,
            vec![
                key_param(route),
                Param::Text(Some(column::bounded(shape, column::SHAPE_MAX_BYTES))),
                Param::Int(Some(*at)),
            ],
        )],
    }
}

/// A name seen replaces the one kept; one not shown keeps it.
const KEEP_NAME: &str = "INSERT INTO resource_names (route, resource_type, resource_id, user_name, external_id, \
    display_name, learned_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (route, resource_type, resource_id) \
    DO UPDATE SET user_name = COALESCE(excluded.user_name, resource_names.user_name), \
    external_id = COALESCE(excluded.external_id, resource_names.external_id), \
    display_name = COALESCE(excluded.display_name, resource_names.display_name), learned_at = excluded.learned_at \
    WHERE COALESCE(excluded.user_name, resource_names.user_name) IS DISTINCT FROM resource_names.user_name \
    OR COALESCE(excluded.external_id, resource_names.external_id) IS DISTINCT FROM resource_names.external_id \
    OR COALESCE(excluded.display_name, resource_names.display_name) IS DISTINCT FROM resource_names.display_name";

fn name_statement(name: &ResourceName) -> (&'static str, Vec<Param>) {
    let bounded = |value: &Option<String>| opt_key(value.as_deref());
    (
        KEEP_NAME,
        vec![
            key_param(&name.route),
            key_param(&name.resource_type),
            key_param(&name.resource_id),
            bounded(&name.user_name),
            bounded(&name.external_id),
            bounded(&name.display_name),
            Param::Int(Some(name.learned_at_ms)),
        ],
    )
}

fn snapshot_statement(snapshot: &Snapshot) -> (&'static str, Vec<Param>) {
    let key = vec![
        key_param(&snapshot.route),
        key_param(&snapshot.resource_type),
        key_param(&snapshot.resource_id),
    ];
    match &snapshot.body {
        Some(body) => {
            let mut params = key;
            params.push(text(body));
            params.push(Param::Int(Some(snapshot.updated_at_ms)));
            (KEEP_SNAPSHOT, params)
        }
        None => (FORGET_SNAPSHOT, key),
    }
}

/// Every text value is cleaned of what a database refuses (see [`column`]).
pub(crate) fn text(value: &str) -> Param {
    Param::Text(Some(column::clean(value).into_owned()))
}

fn opt(value: &Option<String>) -> Param {
    Param::Text(value.as_deref().map(|value| column::clean(value).into_owned()))
}

/// An indexed column's value: cleaned and bounded.
pub(crate) fn key_param(value: &str) -> Param {
    Param::Text(Some(key(value)))
}

fn opt_key(value: Option<&str>) -> Param {
    Param::Text(value.map(key))
}

fn insert_params(new: &NewExchange) -> Vec<Param> {
    exchange_params(new, OUTCOME_IN_FLIGHT, new.resource_id.clone(), new.user_name.clone())
}

/// The columns of [`INSERT`], in order.
fn exchange_params(
    new: &NewExchange,
    outcome: &str,
    resource_id: Option<String>,
    user_name: Option<String>,
) -> Vec<Param> {
    vec![
        key_param(&new.id),
        Param::Int(Some(new.received_at_ms)),
        key_param(&new.instance),
        opt_key(new.route.as_deref()),
        opt_key(new.idp.as_deref()),
        key_param(&new.method),
        Param::Text(Some(column::bounded(&new.path, column::PATH_MAX_BYTES))),
        opt(&new.query),
        opt_key(new.resource_type.as_deref()),
        opt_key(resource_id.as_deref()),
        opt_key(user_name.as_deref()),
        key_param(&new.operation),
        opt_key(new.lifecycle.as_deref()),
        text(&new.request_headers.to_string()),
        opt(&new.request_body),
        text(outcome),
        opt_key(new.replay_of.as_deref()),
        opt_key(new.parent_id.as_deref()),
        opt_key(new.client.as_deref()),
        opt_key(new.rules_version.as_deref()),
        opt_key(new.reconcile_of.as_deref()),
        opt_key(new.synthetic.as_deref()),
    ]
}

/// The columns a completion sets, but the outcome and what it may learn (`FINISH`'s first).
fn completion_params(done: &Completion) -> Vec<Param> {
    vec![
        Param::Int(Some(done.duration_ms)),
        Param::Text(done.forwarded_headers.as_ref().map(ToString::to_string)),
        opt(&done.forwarded_body),
        text(&done.changes.to_string()),
        Param::Int(done.upstream_status.map(i64::from)),
        Param::Int(Some(i64::from(done.status))),
        text(&done.response_headers.to_string()),
        opt(&done.response_body),
        text(&done.findings.to_string()),
        Param::Text(done.bulk_operations.as_ref().map(ToString::to_string)),
        opt(&done.error),
        Param::Int(done.paced_ms),
    ]
}

fn whole_params(new: &NewExchange, done: &Completion) -> Vec<Param> {
    let resource_id = new.resource_id.clone().or_else(|| done.resource_id.clone());
    let user_name = new.user_name.clone().or_else(|| done.user_name.clone());
    let mut params = exchange_params(new, &done.outcome, resource_id, user_name);
    params.extend(completion_params(done));
    params
}

fn finish_params(done: &Completion) -> Vec<Param> {
    let mut params = completion_params(done);
    params.extend([
        text(&done.outcome),
        opt_key(done.resource_id.as_deref()),
        opt_key(done.user_name.as_deref()),
        key_param(&done.id),
    ]);
    params
}

/// Binds each parameter in order; one body for the four query types sqlx has.
macro_rules! bind_each {
    ($query:ident, $params:ident) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Text(value) => query.bind(value),
                Param::Int(value) => query.bind(value),
            };
        }
        query
    }};
}

pub(crate) fn bind_sqlite<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    params: Vec<Param>,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    bind_each!(query, params)
}

pub(crate) fn bind_postgres(
    query: Query<'_, Postgres, PgArguments>,
    params: Vec<Param>,
) -> Query<'_, Postgres, PgArguments> {
    bind_each!(query, params)
}

pub(crate) fn bind_sqlite_scalar<'q, O>(
    query: QueryScalar<'q, Sqlite, O, SqliteArguments<'q>>,
    params: Vec<Param>,
) -> QueryScalar<'q, Sqlite, O, SqliteArguments<'q>> {
    bind_each!(query, params)
}

pub(crate) fn bind_postgres_scalar<O>(
    query: QueryScalar<'_, Postgres, O, PgArguments>,
    params: Vec<Param>,
) -> QueryScalar<'_, Postgres, O, PgArguments> {
    bind_each!(query, params)
}

pub(crate) fn bind_sqlite_as<'q, O>(
    query: QueryAs<'q, Sqlite, O, SqliteArguments<'q>>,
    params: Vec<Param>,
) -> QueryAs<'q, Sqlite, O, SqliteArguments<'q>> {
    bind_each!(query, params)
}

pub(crate) fn bind_postgres_as<O>(
    query: QueryAs<'_, Postgres, O, PgArguments>,
    params: Vec<Param>,
) -> QueryAs<'_, Postgres, O, PgArguments> {
    bind_each!(query, params)
}

/// `?` placeholders as `$1`, `$2`, … (our statements have no `?` inside literals).
pub(crate) fn numbered_placeholders(statement: &str) -> String {
    let mut out = String::with_capacity(statement.len() + 16);
    let mut index = 0;
    for c in statement.chars() {
        if c == '?' {
            index += 1;
            out.push('$');
            out.push_str(&index.to_string());
        } else {
            out.push(c);
        }
    }
    out
}
