//! Statements and parameter binding, written once for both backends: statements use `?`
//! placeholders, which [`numbered_placeholders`] turns into PostgreSQL's `$n`.

use crate::model::{Completion, NewExchange, Snapshot, Write, OUTCOME_IN_FLIGHT};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
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
    parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const FINISH: &str = "UPDATE exchanges SET duration_ms = ?, forwarded_headers = ?, forwarded_body = ?, changes = ?, \
    upstream_status = ?, status = ?, response_headers = ?, response_body = ?, outcome = ?, findings = ?, \
    bulk_operations = ?, error = ?, resource_id = COALESCE(resource_id, ?), user_name = COALESCE(user_name, ?) \
    WHERE id = ?";

const KEEP_SNAPSHOT: &str = "INSERT INTO resource_snapshots (route, resource_type, resource_id, body, updated_at) \
    VALUES (?, ?, ?, ?, ?) ON CONFLICT (route, resource_type, resource_id) \
    DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at";

const FORGET_SNAPSHOT: &str =
    "DELETE FROM resource_snapshots WHERE route = ? AND resource_type = ? AND resource_id = ?";

const KEEP_SHAPE: &str =
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
        Write::Whole(new, done) => vec![(INSERT, insert_params(new)), (FINISH, finish_params(done))],
        Write::Snapshot(snapshot) => vec![snapshot_statement(snapshot)],
        Write::Shape(route, shape, at) => vec![(KEEP_SHAPE, vec![text(route), text(shape), Param::Int(Some(*at))])],
    }
}

fn snapshot_statement(snapshot: &Snapshot) -> (&'static str, Vec<Param>) {
    let key = vec![
        text(&snapshot.route),
        text(&snapshot.resource_type),
        text(&snapshot.resource_id),
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

fn text(value: &str) -> Param {
    Param::Text(Some(value.to_owned()))
}

fn opt(value: &Option<String>) -> Param {
    Param::Text(value.clone())
}

fn insert_params(new: &NewExchange) -> Vec<Param> {
    vec![
        text(&new.id),
        Param::Int(Some(new.received_at_ms)),
        text(&new.instance),
        opt(&new.route),
        opt(&new.idp),
        text(&new.method),
        text(&new.path),
        opt(&new.query),
        opt(&new.resource_type),
        opt(&new.resource_id),
        opt(&new.user_name),
        text(&new.operation),
        opt(&new.lifecycle),
        text(&new.request_headers.to_string()),
        opt(&new.request_body),
        text(OUTCOME_IN_FLIGHT),
        opt(&new.replay_of),
        opt(&new.parent_id),
    ]
}

fn finish_params(done: &Completion) -> Vec<Param> {
    vec![
        Param::Int(Some(done.duration_ms)),
        Param::Text(done.forwarded_headers.as_ref().map(ToString::to_string)),
        opt(&done.forwarded_body),
        text(&done.changes.to_string()),
        Param::Int(done.upstream_status.map(i64::from)),
        Param::Int(Some(i64::from(done.status))),
        text(&done.response_headers.to_string()),
        opt(&done.response_body),
        text(&done.outcome),
        text(&done.findings.to_string()),
        Param::Text(done.bulk_operations.as_ref().map(ToString::to_string)),
        opt(&done.error),
        opt(&done.resource_id),
        opt(&done.user_name),
        text(&done.id),
    ]
}

pub(crate) fn bind_sqlite<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments<'q>>,
    params: Vec<Param>,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for param in params {
        query = match param {
            Param::Text(value) => query.bind(value),
            Param::Int(value) => query.bind(value),
        };
    }
    query
}

pub(crate) fn bind_postgres(
    mut query: Query<'_, Postgres, PgArguments>,
    params: Vec<Param>,
) -> Query<'_, Postgres, PgArguments> {
    for param in params {
        query = match param {
            Param::Text(value) => query.bind(value),
            Param::Int(value) => query.bind(value),
        };
    }
    query
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
