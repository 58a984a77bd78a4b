//! Reading exchanges back: one, a page of a listing (a person's pages planned apart), a
//! resource's writes, replays, snapshots, route shapes and names.

use crate::exchange::{self, Exchange, Page};
use crate::model::{ExchangeQuery, ResourceName};
use crate::{column, query, sql, stored_json, Pool, Store, StoreError};

impl Store {
    /// The deactivations and deprovisions `instance` left in flight (at most 1000): what to
    /// alert on before they are marked interrupted.
    pub async fn in_flight_deprovisions(&self, instance: &str) -> Result<Vec<Exchange>, StoreError> {
        self.select(&query::in_flight_deprovisions(instance)).await
    }

    /// One exchange in full, with the ids of its replays.
    pub async fn get(&self, id: &str) -> Result<Exchange, StoreError> {
        let mut found = self.select(&query::by_id(id)).await?;
        let mut exchange = found.pop().ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        exchange.replays = self.ids_where("replay_of", id).await?;
        exchange.children = self.ids_where("parent_id", id).await?;
        Ok(exchange)
    }

    /// A page of exchanges matching `filter`, newest first.
    pub async fn list(&self, filter: &ExchangeQuery) -> Result<Page, StoreError> {
        let limit = filter.limit.clamp(1, 1000);
        let select = match &filter.user {
            Some(user) => self.plan_for_person(filter, user, limit + 1).await?,
            None => query::list(filter, limit + 1),
        };
        let mut items = self.select(&select).await?;
        // The person's plan reads each name and resource apart: merge them, newest first.
        items.sort_unstable_by(|a, b| b.begun.id.cmp(&a.begun.id));
        items.dedup_by(|a, b| a.begun.id == b.begun.id);
        let next_cursor = if items.len() as u64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| e.begun.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// How to read a page of one person's exchanges. Through the names index when the text
    /// names at most [`NAMED_RESOURCES_READ_APART`] resources: their writes and everything
    /// carrying their userNames (or the text itself as a userName: a failed create of someone
    /// never provisioned), each read from an index — under a hundred milliseconds on a store of
    /// a million exchanges. A text that names more is common enough that walking the
    /// exchanges from the newest finds a page quickly.
    async fn plan_for_person(
        &self,
        filter: &ExchangeQuery,
        user: &str,
        limit: u64,
    ) -> Result<query::Select, StoreError> {
        self.caught_up().await;
        let named = query::resources_named(user, filter.route.as_deref(), NAMED_RESOURCES_READ_APART + 1);
        let rows = self.text_rows(&named.sql, named.params).await?;
        if rows.len() as u64 > NAMED_RESOURCES_READ_APART {
            return Ok(query::list(filter, limit));
        }
        let mut user_names = vec![user.to_lowercase()];
        let mut resources = Vec::new();
        for row in rows {
            let [Some(route), Some(resource_type), Some(resource_id), user_name] =
                <[Option<String>; 4]>::try_from(row).unwrap_or_default()
            else {
                continue;
            };
            if let Some(name) = user_name.map(|n| n.to_lowercase()) {
                if !user_names.contains(&name) {
                    user_names.push(name);
                }
            }
            resources.push(query::ResourceKey {
                route,
                resource_type,
                resource_id,
            });
        }
        Ok(query::list_named(filter, &user_names, &resources, limit))
    }

    /// What the resources at `keys` (route, resource type, id) are called, where the names
    /// index knows (at most 200 keys are looked up).
    pub async fn names_of(&self, keys: &[(String, String, String)]) -> Result<Vec<ResourceName>, StoreError> {
        let keys = &keys[..keys.len().min(200)];
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let wanted = vec!["(route = ? AND resource_type = ? AND resource_id = ?)"; keys.len()].join(" OR ");
        let params = keys
            .iter()
            .flat_map(|(route, resource_type, id)| [route, resource_type, id].map(|v| sql::key_param(v)))
            .collect();
        let rows = self
            .text_rows(
                &format!(
                    "SELECT route, resource_type, resource_id, user_name, external_id, display_name, \
                     CAST(learned_at AS TEXT) FROM resource_names WHERE {wanted}"
                ),
                params,
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let [Some(route), Some(resource_type), Some(resource_id), user_name, external_id, display_name, learned] =
                    <[Option<String>; 7]>::try_from(row).ok()?
                else {
                    return None;
                };
                Some(ResourceName {
                    route,
                    resource_type,
                    resource_id,
                    user_name,
                    external_id,
                    display_name,
                    learned_at_ms: learned.and_then(|l| l.parse().ok()).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// The writes (POST, PUT, PATCH, DELETE) `route` recorded on one resource, replays
    /// included, oldest first.
    pub async fn writes_to(
        &self,
        route: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Vec<Exchange>, StoreError> {
        self.select(&query::writes_to(route, resource_type, resource_id)).await
    }

    /// Creates on `route` of `resource_type` that succeeded after `after_id`, replays
    /// included, of `user_name` when given; oldest first, at most 1000.
    pub async fn later_creates(
        &self,
        route: &str,
        resource_type: &str,
        after_id: &str,
        user_name: Option<&str>,
    ) -> Result<Vec<Exchange>, StoreError> {
        self.select(&query::later_creates(route, resource_type, after_id, user_name))
            .await
    }

    /// The replays of one exchange, in full, oldest first.
    pub async fn replays(&self, id: &str) -> Result<Vec<Exchange>, StoreError> {
        self.select(&query::replays_of(id)).await
    }

    /// The application's last representation of a resource as `route` saw it, if kept.
    pub async fn snapshot(
        &self,
        route: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.caught_up().await;
        // Bound as they were written (see `column`).
        let [route, resource_type, resource_id] = [route, resource_type, resource_id].map(column::key);
        let body: Option<String> = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sqlx::query_scalar(sql::GET_SNAPSHOT)
                    .bind(&route)
                    .bind(&resource_type)
                    .bind(&resource_id)
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(sql::GET_SNAPSHOT);
                sqlx::query_scalar(&statement)
                    .bind(&route)
                    .bind(&resource_type)
                    .bind(&resource_id)
                    .fetch_optional(pool)
                    .await?
            }
        };
        body.map(|body| {
            stored_json::from_slice(body.as_bytes()).map_err(|source| StoreError::Corrupt {
                id: format!("{route}/{resource_type}/{resource_id}"),
                column: "resource_snapshots.body",
                source,
            })
        })
        .transpose()
    }

    /// The request shapes `route` has seen.
    pub async fn route_shapes(&self, route: &str) -> Result<Vec<String>, StoreError> {
        self.caught_up().await;
        let route = column::key(route);
        let shapes = match &self.pool {
            Pool::Sqlite(pool, ..) => {
                sqlx::query_scalar(sql::ROUTE_SHAPES)
                    .bind(&route)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(sql::ROUTE_SHAPES);
                sqlx::query_scalar(&statement).bind(&route).fetch_all(pool).await?
            }
        };
        Ok(shapes)
    }

    /// Adds `shape` to what `route` has seen, at `at_ms`; true when this call added it,
    /// false when it was there (another instance, or a restart, saw it first). Written
    /// directly, not behind: a new shape is rare, and whether it is new decides a finding
    /// that only one instance may make.
    pub async fn add_route_shape(&self, route: &str, shape: &str, at_ms: i64) -> Result<bool, StoreError> {
        let params = vec![
            sql::Param::Text(Some(column::key(route))),
            sql::Param::Text(Some(column::bounded(shape, column::SHAPE_MAX_BYTES))),
            sql::Param::Int(Some(at_ms)),
        ];
        Ok(self.execute(sql::KEEP_SHAPE, params).await? > 0)
    }

    /// The ids of the exchanges linked to `id` by `column` (`replay_of`, `parent_id`).
    async fn ids_where(&self, column: &'static str, id: &str) -> Result<Vec<String>, StoreError> {
        self.caught_up().await;
        let statement = format!("SELECT id FROM exchanges WHERE {column} = ? ORDER BY id");
        let statement = statement.as_str();
        let ids = match &self.pool {
            Pool::Sqlite(pool, ..) => sqlx::query_scalar(statement).bind(id).fetch_all(pool).await?,
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(statement);
                sqlx::query_scalar(&statement).bind(id).fetch_all(pool).await?
            }
        };
        Ok(ids)
    }

    async fn select(&self, query: &query::Select) -> Result<Vec<Exchange>, StoreError> {
        self.caught_up().await;
        match &self.pool {
            Pool::Sqlite(pool, ..) => {
                let rows = sql::bind_sqlite(sqlx::query(&query.sql), query.params.clone())
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(exchange::exchange_from_row).collect()
            }
            Pool::Postgres(pool, _) => {
                let statement = sql::numbered_placeholders(&query.sql);
                let rows = sql::bind_postgres(sqlx::query(&statement), query.params.clone())
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(exchange::exchange_from_row).collect()
            }
        }
    }
}

/// How many resources a person's filter may name and still be read resource by resource.
pub(crate) const NAMED_RESOURCES_READ_APART: u64 = 100;
