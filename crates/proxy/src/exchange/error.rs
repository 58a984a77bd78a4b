//! What the proxy answers itself when an exchange cannot go on: one type for every such
//! answer, classified by the side that failed. The side decides the outcome recorded; the
//! caller is told a stable SCIM error that says nothing of the proxy's insides (no upstream
//! URL, no error chain, no database error): those go to the record's `error` and the log,
//! and the answer names the exchange that holds them.

use crate::buffers::NoRoom;
use crate::config::Route;
use crate::pacing::{Refused, Why};
use crate::upstream::UpstreamError;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;
use scimtrail_scim::ScimError;
use scimtrail_store::REPLAYABLE_OUTCOMES;

/// The response header that names the proxy's own error, on responses the proxy made.
pub const ERROR_HEADER: &str = "scimtrail-error";

/// Who failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The IdP's request cannot be served as it is: recorded `rejected`.
    Idp,
    /// The proxy could not carry a request it accepted: recorded `failed`.
    Proxy,
    /// The application gave no whole answer: `unreachable` when it cannot have applied the
    /// request's effect for sure, `failed` when it may have.
    Application,
    /// The store could not record the exchange.
    Store,
    /// The proxy held the request back to keep within the application's limits (`pacing.rs`):
    /// nothing was sent, so it is recorded `unreachable`, which a replay may send again.
    Pacing,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Idp => "idp",
            Side::Proxy => "proxy",
            Side::Application => "application",
            Side::Store => "store",
            Side::Pacing => "pacing",
        }
    }
}

/// An answer the proxy made itself, instead of the application's.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeError {
    /// What the caller is told: stable, nothing of the proxy's insides.
    error: ScimError,
    /// The `scimtrail-error` header's value.
    kind: &'static str,
    side: Side,
    outcome: &'static str,
    /// What the record and the log keep beside it: the upstream URL and error chain, the
    /// store's error, the routes there are.
    internal: Option<String>,
    /// `Retry-After`, in seconds, when the caller may come back then.
    retry_after: Option<u64>,
}

impl ExchangeError {
    /// The IdP's request is refused: nothing was forwarded.
    pub(crate) fn idp(error: ScimError, kind: &'static str) -> ExchangeError {
        ExchangeError::new(Side::Idp, "rejected", error, kind)
    }

    /// The proxy could not send on what it accepted.
    pub(crate) fn proxy(error: ScimError, kind: &'static str) -> ExchangeError {
        ExchangeError::new(Side::Proxy, "failed", error, kind)
    }

    /// The route's IdP profile is not among those in force. Never, by construction: the
    /// configuration and every reload check that each route's profile is there. Refused
    /// rather than served with other rules.
    pub(crate) fn no_profile(route: &Route) -> ExchangeError {
        let detail = "the proxy cannot apply this route's rules";
        ExchangeError::new(Side::Proxy, "rejected", ScimError::new(503, None, detail), "no_profile").with_internal(
            format!(
                "route {} names profile {}, which is not among the profiles in force",
                route.name, route.idp
            ),
        )
    }

    /// The application gave no whole answer.
    pub(crate) fn application(error: &UpstreamError, route: &Route) -> ExchangeError {
        let (status, detail, kind, outcome) = match error {
            UpstreamError::Unreachable(_) => (
                502,
                "the application could not be reached".to_owned(),
                "unreachable",
                "unreachable",
            ),
            UpstreamError::Timeout(limit) => (
                504,
                format!("the application did not answer within {} s", limit.as_secs_f64()),
                "timeout",
                "unreachable",
            ),
            // The answer came, but there was no room to buffer it: the application may have
            // applied the request.
            UpstreamError::NoRoom(_) => {
                let detail = "the application answered, but the proxy had no room to buffer its answer";
                return ExchangeError::new(Side::Proxy, "failed", ScimError::new(503, None, detail), "buffers_full")
                    .with_internal(error.to_string());
            }
            UpstreamError::Paced(refused) => return ExchangeError::paced(refused),
            // It may have applied the request.
            UpstreamError::BadResponse(_) => (
                502,
                "the application's answer could not be read".to_owned(),
                "bad_response",
                "failed",
            ),
        };
        ExchangeError::new(Side::Application, outcome, ScimError::new(status, None, detail), kind)
            .with_internal(format!("the application at {} {error}", route.upstream))
    }

    /// The route's pacing did not send the request (`pacing.rs`): its queue was full, or the
    /// request could not wait for its turn (429 with `Retry-After`: R14); or its client left
    /// while it waited.
    pub(crate) fn paced(refused: &Refused) -> ExchangeError {
        let detail = refused.detail.as_str();
        let error = match refused.why {
            Why::ClientGone => return ExchangeError::idp(ScimError::new(499, None, detail), "client_gone"),
            Why::QueueFull => ExchangeError::new(
                Side::Pacing,
                "unreachable",
                ScimError::new(429, None, detail),
                "queue_full",
            ),
            Why::WaitBound => ExchangeError::new(
                Side::Pacing,
                "unreachable",
                ScimError::new(429, None, detail),
                "queue_timeout",
            ),
        };
        ExchangeError {
            retry_after: Some(refused.retry_after),
            ..error
        }
    }

    /// The store could not record the exchange in flight, so it was not forwarded.
    pub(crate) fn not_recorded(error: &crate::recorder::RecordError) -> ExchangeError {
        let detail = "the exchange could not be recorded, so it was not forwarded";
        ExchangeError::new(
            Side::Store,
            "rejected",
            ScimError::new(503, None, detail),
            "record_failed",
        )
        .with_internal(error.to_string())
    }

    /// The application answered, but its answer could not be recorded, so it is withheld.
    pub(crate) fn answer_not_recorded(read: bool, error: &crate::recorder::RecordError) -> ExchangeError {
        let detail = if read {
            "the application answered but its response could not be recorded, so it is withheld"
        } else {
            "the application answered but its response could not be recorded; the request may have been applied"
        };
        ExchangeError::new(
            Side::Store,
            "failed",
            ScimError::new(503, None, detail),
            "record_failed",
        )
        .with_internal(error.to_string())
    }

    /// No room to buffer the request within `max_buffered_bytes`: nothing was forwarded, and
    /// the IdP may send it again.
    pub(crate) fn no_room(no_room: &NoRoom) -> ExchangeError {
        let detail = "the proxy is buffering as much as it may; try again later";
        ExchangeError::new(
            Side::Proxy,
            "rejected",
            ScimError::new(503, None, detail),
            "buffers_full",
        )
        .with_internal(no_room.to_string())
    }

    fn new(side: Side, outcome: &'static str, error: ScimError, kind: &'static str) -> ExchangeError {
        ExchangeError {
            error,
            kind,
            side,
            outcome,
            internal: None,
            retry_after: None,
        }
    }

    /// The same answer, with what only the record and the log are told.
    pub(crate) fn with_internal(mut self, internal: String) -> ExchangeError {
        self.internal = Some(internal);
        self
    }

    /// The HTTP status the caller receives.
    pub(crate) fn status(&self) -> u16 {
        self.error.status
    }

    /// The outcome the exchange is recorded with.
    pub(crate) fn outcome(&self) -> &'static str {
        self.outcome
    }

    /// Whether a replay may send the request again (`REPLAYABLE_OUTCOMES`): not what the
    /// IdP sent wrong, which a replay would send as wrong again.
    pub(crate) fn replayable(&self) -> bool {
        REPLAYABLE_OUTCOMES.contains(&self.outcome)
    }

    /// The SCIM error the caller receives: naming the exchange that records it.
    pub(crate) fn caller_error(&self, id: &str) -> ScimError {
        let mut error = self.error.clone();
        error.detail = format!("{} (scimtrail exchange {id})", error.detail);
        error
    }

    /// What the record's `error` says: the side, the kind, and what only the record is told.
    pub(crate) fn recorded(&self) -> String {
        let told = self.internal.as_deref().unwrap_or(&self.error.detail);
        format!("[{}] {}: {told}", self.side.name(), self.kind)
    }

    /// The response for the caller.
    pub(crate) fn response(&self, id: &str) -> Response<Full<Bytes>> {
        let mut response = error_response(&self.caller_error(id), self.kind);
        if self.error.status == 405 {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// Logs what went wrong, as loud as the side that failed deserves: an IdP's bad request
    /// is routine, the application or the store failing is not.
    pub(crate) fn log(&self) {
        let (kind, side, replayable) = (self.kind, self.side.name(), self.replayable());
        let internal = self.internal.as_deref().unwrap_or(&self.error.detail);
        match self.side {
            // An IdP's bad request is in the record; a line for each would let any client fill
            // the log. Only a refusal with more to say than its caller is told (no route, a
            // busy client, an unreadable body) gets one at info.
            Side::Idp if self.internal.is_none() => tracing::debug!(kind, side, %internal, "Refused."),
            Side::Idp => tracing::info!(kind, side, %internal, "Refused."),
            Side::Application => {
                tracing::warn!(kind, side, replayable, %internal, "The application gave no whole answer.");
            }
            // Counted in `/metrics`; under a burst, one line each would flood the log.
            Side::Pacing => tracing::debug!(kind, side, replayable, %internal, "Held back by the route's pacing."),
            Side::Proxy | Side::Store => {
                tracing::error!(kind, side, replayable, %internal, "The proxy could not carry the exchange.");
            }
        }
    }
}

/// A SCIM error response made by the proxy, marked with `scimtrail-error`.
pub(crate) fn error_response(error: &ScimError, kind: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(error.to_json().to_string())));
    *response.status_mut() = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_GATEWAY);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    response
        .headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(kind));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_records_its_outcome_and_only_failures_past_the_idp_are_replayable() {
        let bad = ScimError::new(400, None, "bad");
        let cases = [
            (ExchangeError::idp(bad.clone(), "bad_path"), "rejected", false),
            (
                ExchangeError::proxy(bad.clone(), "bad_upstream_request"),
                "failed",
                true,
            ),
            (
                ExchangeError::not_recorded(&crate::recorder::RecordError::Stopped),
                "rejected",
                false,
            ),
            (
                ExchangeError::answer_not_recorded(false, &crate::recorder::RecordError::Stopped),
                "failed",
                true,
            ),
        ];
        for (error, outcome, replayable) in cases {
            assert_eq!(error.outcome(), outcome, "{}", error.kind);
            assert_eq!(error.replayable(), replayable, "{}", error.kind);
        }
    }

    #[test]
    fn the_caller_is_told_the_exchange_and_never_the_internal_detail() {
        let error = ExchangeError::idp(ScimError::not_found("no route serves this path"), "no_route")
            .with_internal("routes: /okta".to_owned());
        let told = error.caller_error("e1");
        assert_eq!(told.detail, "no route serves this path (scimtrail exchange e1)");
        assert_eq!(error.recorded(), "[idp] no_route: routes: /okta");
        let response = error.response("e1");
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()[ERROR_HEADER], "no_route");
    }
}
