//! The life of one exchange, read top to bottom in [`Proxy::exchange`]: admit (`admit.rs`)
//! → normalise (`normalise.rs`) → record in flight (`record.rs`) → forward (`forward.rs`,
//! or `fan_out.rs` for a bulk request the application cannot take) → respond (`respond.rs`,
//! with `read_back.rs`) → finish (`finish.rs`).
//!
//! Every path out ends in `finish.rs`, the one place that decides how an exchange is
//! recorded and releases its response; what the proxy answers itself is an
//! [`ExchangeError`] (`error.rs`), classified by the side that failed.

mod admit;
mod error;
mod fan_out;
mod finish;
mod forward;
mod normalise;
mod read_back;
mod record;
mod respond;

pub(crate) use admit::relative_path;
pub use error::ERROR_HEADER;
pub(crate) use error::{error_response, ExchangeError};
pub(crate) use normalise::rules_request;
pub(crate) use record::Recording;

use crate::{pacing::Patience, Proxy};
use admit::Admitted;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use http_body_util::Full;
use scimtrail_rules::Profile;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The response header that carries the exchange id back to the client.
pub const EXCHANGE_ID_HEADER: &str = "scimtrail-exchange-id";

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a request came from: the address that sent it, over `http` or `https`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub(crate) peer: SocketAddr,
    pub(crate) scheme: &'static str,
}

/// How an exchange relates to others: the exchange a replay sends again, the exchange one
/// made on behalf of (a bulk request fanned out), the reconciliation run a repair restores
/// the intent for, what made synthetic traffic (`verify`, `probe`); and the IdP profile it
/// must use, when the one it is made for already took it (a fanned-out operation runs the
/// rules its bulk request began with; a replay runs those it compared with the original's).
/// Only an exchange with no link at all comes from the listener: the others are the proxy's
/// own, and none of them can be asked for over the network.
#[derive(Debug, Clone, Default)]
pub(crate) struct Link {
    pub(crate) replay_of: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) reconcile_of: Option<String>,
    pub(crate) synthetic: Option<String>,
    pub(crate) profile: Option<Arc<Profile>>,
}

/// An exchange over: the response for the caller, the exchange that records it (an earlier
/// one, for a refusal counted into that one's record), and its outcome.
pub(crate) struct Exchanged {
    pub(crate) response: Response<Full<Bytes>>,
    pub(crate) id: String,
    pub(crate) outcome: String,
}

impl Proxy {
    /// One exchange, under its own id and span; `link` names the exchange a replay sends
    /// again, or the one a fanned-out bulk operation belongs to. Its requests to the
    /// application wait in pacing queues with `patience`: its caller's, or for a bulk
    /// operation its bulk request's.
    pub(crate) async fn run_exchange<B>(
        &self,
        request: Request<B>,
        origin: Origin,
        link: Link,
        patience: &mut Patience,
    ) -> Exchanged
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let id = uuid::Uuid::now_v7().to_string();
        let span = tracing::info_span!(
            "exchange", id = %id, method = %request.method(), path = %request.uri().path(),
            replay_of = link.replay_of.as_deref(), parent = link.parent_id.as_deref()
        );
        async {
            let mut exchanged = self.exchange(&id, started, request, origin, link, patience).await;
            if let Ok(value) = HeaderValue::from_str(&exchanged.id) {
                exchanged.response.headers_mut().insert(EXCHANGE_ID_HEADER, value);
            }
            // The record is the access log: a line per exchange costs every exchange a
            // formatted write to stderr, so it is there only for debugging.
            tracing::debug!(
                status = exchanged.response.status().as_u16(),
                outcome = %exchanged.outcome,
                elapsed_ms = crate::clock::elapsed_ms(started),
                "Exchange completed."
            );
            exchanged
        }
        .instrument(span)
        .await
    }

    /// The phases of an exchange, in order; each early return finishes it.
    async fn exchange<B>(
        &self,
        id: &str,
        started: Instant,
        request: Request<B>,
        origin: Origin,
        mut link: Link,
        patience: &mut Patience,
    ) -> Exchanged
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let pinned = link.profile.take();
        let mut recording = self.recording(id, started, &parts, origin, link, patience);

        // Admit: a route and its profile, the IdP's token, the body within its limits, an
        // exchange slot.
        let Admitted {
            route,
            profile,
            parts,
            rest,
            body,
            json,
            changes,
            mut slots,
        } = match self
            .admit(&mut recording.new, parts, body, origin.peer, recording.patience, pinned)
            .await
        {
            Ok(admitted) => admitted,
            Err(error) => return self.finish_refused(recording, error).await,
        };

        // Normalise: classified, then the rules of the route's IdP profile applied.
        let admitted = normalise::Received {
            route,
            profile,
            parts: &parts,
            rest: &rest,
            body,
            json,
            changes,
        };
        let mut normalised = match self.normalise(&mut recording.new, admitted, recording.patience).await {
            Ok(normalised) => normalised,
            Err(error) => return self.finish_error(recording, error, None, Vec::new()).await,
        };

        // Record in flight: a write is in the store before it can reach the application.
        if let Err(error) = self.record_in_flight(&mut recording).await {
            return self.finish_error(recording, error, None, Vec::new()).await;
        }

        // Forward: as normalised, or one operation at a time for an application without `/Bulk`.
        if normalised.fans_out() {
            return self
                .finish_fanned_out(recording, route, &normalised, &parts.headers, origin)
                .await;
        }
        let room = slots.buffers.as_mut();
        let forwarded = match self
            .forward(route, &mut normalised, &parts, origin, room, recording.patience)
            .await
        {
            Ok(forwarded) => forwarded,
            Err((error, sent)) => return self.finish_error(recording, error, sent, normalised.changes).await,
        };

        // Respond: the application's answer checked, normalised for the IdP, and recorded.
        let (completion, response) = self
            .respond(&mut recording, route, normalised, forwarded, &parts.headers)
            .await;
        self.finish(recording, completion, response).await
    }
}
