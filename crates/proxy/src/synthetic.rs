//! Synthetic exchanges: requests scimtrail makes itself through a route, in process
//! (`scimtrail verify`), through the route's whole exchange path — its rules, its
//! credentials, its pacing — and recorded like any other, marked synthetic with what made
//! them: not the IdP's intent, never alerted, left out of listings unless asked for.
//!
//! **Invariant:** only the proxy's own code can make one. The mark is the exchange's
//! [`Link`], which nothing a client sends sets; a request from the listener never has one,
//! whatever its headers say.

use crate::exchange::{Link, Origin};
use crate::pacing::Patience;
use crate::Proxy;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;

/// Where synthetic exchanges come from, for `X-Forwarded-For`: the proxy itself.
const SYNTHETIC_PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// What a synthetic exchange got.
#[derive(Debug, Clone)]
pub struct SyntheticAnswer {
    /// The status returned (as the IdP would have had it).
    pub status: u16,
    /// The body returned.
    pub body: Bytes,
    /// The exchange that records it.
    pub exchange_id: String,
    /// Its outcome (`ok`, `failed`, `partial`, …).
    pub outcome: String,
}

impl Proxy {
    /// Sends one request through the route that serves `target` (a path with the route's
    /// prefix, and its query), recorded as synthetic traffic made by `made_by`.
    pub(crate) async fn send_synthetic(
        &self,
        made_by: &str,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<SyntheticAnswer, String> {
        let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| format!("{method:?} is not a method"))?;
        let mut builder = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder.body(Full::new(body)).map_err(|e| format!("{target}: {e}"))?;
        let mut patience = Patience::unattended();
        let exchanged = self
            .run_exchange(
                request,
                Origin {
                    peer: SocketAddr::from(SYNTHETIC_PEER),
                    scheme: "http",
                },
                Link {
                    synthetic: Some(made_by.to_owned()),
                    ..Link::default()
                },
                &mut patience,
            )
            .await;
        let status = exchanged.response.status().as_u16();
        let body = exchanged
            .response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        Ok(SyntheticAnswer {
            status,
            body,
            exchange_id: exchanged.id,
            outcome: exchanged.outcome,
        })
    }
}
