//! Record in flight: an exchange's record as it starts, and — for a write — its commit to
//! the store before the request is forwarded, so that a crash leaves a record saying it may
//! have reached the application. A read changes nothing: it is recorded once, whole, when it
//! finishes (`finish.rs`): one wait, not two.

use super::finish::RecordedAs;
use super::{ExchangeError, Link, Origin};
use crate::capacity::{forwarded_client, is_trusted};
use crate::clock::now_ms;
use crate::pacing::{Mark, Patience};
use crate::{redact, Proxy};
use http::HeaderMap;
use scimtrail_analysis::classify;
use scimtrail_store::{NewExchange, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// An exchange on its way: what its record says so far, when it started, whether its
/// record is in the store, in flight (its end is then an update, else a whole record), and
/// the patience its requests wait with in pacing queues (shared with the exchange it was made
/// for, if any), marked where this exchange began.
pub(crate) struct Recording<'p> {
    pub(crate) new: NewExchange,
    pub(crate) started: Instant,
    pub(crate) in_flight: bool,
    pub(crate) patience: &'p mut Patience,
    pub(crate) mark: Mark,
}

impl Recording<'_> {
    /// How long this exchange's requests (its operations', for a bulk request fanned out)
    /// waited in pacing queues, in milliseconds; `None` when none went through a paced route.
    pub(crate) fn paced_ms(&self) -> Option<i64> {
        self.patience.paced_ms_since(self.mark)
    }
}

impl Proxy {
    /// The record of a request as it arrives: before admission knows its route, the query
    /// redacted as any route would.
    pub(super) fn recording<'p>(
        &self,
        id: &str,
        started: Instant,
        parts: &http::request::Parts,
        origin: Origin,
        link: Link,
        patience: &'p mut Patience,
    ) -> Recording<'p> {
        let path = parts.uri.path();
        let new = NewExchange {
            id: id.to_owned(),
            received_at_ms: now_ms(),
            instance: self.config.instance.clone(),
            route: None,
            idp: None,
            method: parts.method.as_str().to_owned(),
            path: path.to_owned(),
            query: redact::query(parts.uri.query(), self.redaction_for(path)),
            resource_type: None,
            resource_id: None,
            user_name: None,
            operation: "other".to_owned(),
            lifecycle: None,
            request_headers: self.redactor.headers(&parts.headers),
            request_body: None,
            replay_of: link.replay_of,
            parent_id: link.parent_id,
            client: Some(self.client_of(&parts.headers, origin.peer).to_string()),
            rules_version: None,
            reconcile_of: link.reconcile_of,
            synthetic: link.synthetic,
        };
        Recording {
            new,
            started,
            in_flight: false,
            mark: patience.mark(),
            patience,
        }
    }

    /// Commits a write's record, in flight, when the proxy waits for the store. A failure
    /// refuses the exchange unless `on_store_failure = "serve_unrecorded"`: nothing is
    /// forwarded that could not be recorded.
    pub(super) async fn record_in_flight(&self, recording: &mut Recording<'_>) -> Result<(), ExchangeError> {
        let new = &recording.new;
        let how = self.recorded_as(new);
        if how == RecordedAs::Behind || classify::is_read(&new.method, &new.operation) {
            return Ok(());
        }
        match self.record(how, Write::Begin(Box::new(new.clone()))).await {
            Ok(()) => {
                recording.in_flight = true;
                Ok(())
            }
            Err(error) if self.fail_closed(new) => Err(ExchangeError::not_recorded(&error)),
            Err(error) => {
                tracing::error!(%error, "The exchange could not be recorded; forwarding it anyway (on_store_failure = serve_unrecorded).");
                Ok(())
            }
        }
    }

    /// The client an exchange comes from: the peer, or behind a trusted proxy the client
    /// `X-Forwarded-For` names.
    fn client_of(&self, headers: &HeaderMap, peer: SocketAddr) -> std::net::IpAddr {
        let trusted = &self.config.trusted_proxies;
        match is_trusted(peer.ip(), trusted) {
            true => forwarded_client(headers, trusted).unwrap_or(peer.ip()),
            false => peer.ip(),
        }
    }
}
