//! The request shapes each route has seen, for `shape_drift`: a shape a route has not seen
//! before, once the route is past its learning period, is a finding (e.g. an IdP that
//! switches from `userName eq` to `externalId eq` lookups after a change on its side).
//!
//! Shapes are kept in the store (`route_shapes`), so that instances and restarts agree; each
//! instance loads a route's shapes once and remembers what it adds. A shape new to an
//! instance is inserted at once, and only the instance whose insert added it reports drift:
//! two instances meeting the same new shape report it once. The learning period is counted
//! per instance (each sees its share of the route's traffic).

use crate::recorder::Recorder;
use crate::Route;
use scimtrail_store::{Store, Write};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
struct RouteShapes {
    known: HashSet<String>,
    /// Exchanges this instance has seen on the route.
    seen: u64,
}

/// Every route's shapes.
#[derive(Debug, Default)]
pub(crate) struct ShapeBook {
    routes: Mutex<HashMap<String, RouteShapes>>,
}

impl ShapeBook {
    /// Notes `shape` on `route`; returns whether it is drift: new, and the route past its
    /// learning period (`route.shape_learning` exchanges on this instance).
    pub(crate) async fn observe(&self, store: &Store, recorder: &Recorder, route: &Route, shape: String) -> bool {
        let loaded = self.lock().contains_key(&route.name);
        if !loaded {
            let stored = match store.route_shapes(&route.name).await {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::warn!(%error, route = %route.name, "Reading the route's request shapes failed.");
                    Vec::new()
                }
            };
            self.lock().entry(route.name.clone()).or_default().known.extend(stored);
        }
        let learning_over = {
            let mut routes = self.lock();
            let shapes = routes.entry(route.name.clone()).or_default();
            shapes.seen += 1;
            if !shapes.known.insert(shape.clone()) {
                return false;
            }
            shapes.seen > route.shape_learning
        };
        // New here; the store decides whether it is new everywhere: of the instances that meet
        // a shape, only the one whose insert adds it reports it.
        let now = crate::clock::now_ms();
        match store.add_route_shape(&route.name, &shape, now).await {
            Ok(added) => added && learning_over,
            Err(error) => {
                // Kept behind, as any record: a finding is not worth failing an exchange for.
                tracing::warn!(%error, route = %route.name, "Writing a new request shape failed; written behind.");
                recorder.write_behind(Write::Shape(route.name.clone(), shape, now));
                learning_over
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RouteShapes>> {
        // A set of strings stays usable after a panic elsewhere.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
