//! Finish: the one way out of an exchange. It decides how the exchange is recorded — waited
//! for (durable mode, and every replay: the next replay run decides from its record, and one
//! lost would be sent twice) or written behind (async mode) —, withholds an application's
//! answer that could not be recorded, counts the exchange, and releases its response.

use super::forward::Sent;
use super::{ExchangeError, Exchanged, Recording};
use crate::clock::elapsed_ms;
use crate::recorder::{RecordError, RecordMode};
use crate::{redact, refusals, Proxy};
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use scimtrail_analysis::classify;
use scimtrail_store::{Completion, NewExchange, Write};
use serde_json::{json, Value};
use std::sync::Arc;

/// How an exchange's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordedAs {
    /// Queued; the exchange goes on (async mode).
    Behind,
    /// Committed before the exchange goes on (durable mode).
    Waited,
    /// A replay's: committed and synced (`durability = "power"`), whatever the mode and level.
    Replay,
}

impl Proxy {
    /// Records the end of an exchange and releases its response: durably, only once
    /// recorded, unless `on_store_failure = "serve_unrecorded"`.
    pub(super) async fn finish(
        &self,
        recording: Recording<'_>,
        completion: Completion,
        response: Response<Full<Bytes>>,
    ) -> Exchanged {
        // Every exchange is recorded with how long its requests waited in a pacing queue.
        let completion = Completion {
            paced_ms: recording.paced_ms(),
            ..completion
        };
        let Recording {
            new,
            started,
            in_flight,
            ..
        } = recording;
        self.alerts
            .consider(self.route_named(new.route.as_deref()), &new, &completion);
        let how = self.recorded_as(&new);
        let fail_closed = self.fail_closed(&new);
        let read = classify::is_read(&new.method, &new.operation);
        let (id, route, idp) = (new.id.clone(), new.route.clone(), new.idp.clone());
        let (method, lifecycle) = (new.method.clone(), new.lifecycle.clone());
        let mut outcome = completion.outcome.clone();
        let mut response = response;
        // The application answered: what it said is released only as recorded.
        let answered = completion.upstream_status.is_some();
        let write = match in_flight {
            true => Write::Finish(Box::new(completion)),
            false => Write::Whole(Box::new(new), Box::new(completion)),
        };
        if let Err(error) = self.record(how, write).await {
            if answered && fail_closed {
                let withheld = ExchangeError::answer_not_recorded(read, &error);
                withheld.log();
                outcome = withheld.outcome().to_owned();
                response = withheld.response(&id);
            } else {
                tracing::error!(%error, "The exchange could not be recorded; its response is released anyway.");
            }
        }
        let (route, idp) = (route.as_deref().unwrap_or("-"), idp.as_deref().unwrap_or("-"));
        self.metrics.exchange(route, idp, &method, &outcome, started.elapsed());
        if let Some(lifecycle) = &lifecycle {
            self.metrics.lifecycle(route, idp, lifecycle, &outcome);
        }
        Exchanged { response, id, outcome }
    }

    /// Finishes an exchange the proxy answers itself: `sent` is what went to the application,
    /// if anything did, with the rules' `changes`.
    pub(super) async fn finish_error(
        &self,
        recording: Recording<'_>,
        error: ExchangeError,
        sent: Option<Sent>,
        changes: Vec<Value>,
    ) -> Exchanged {
        error.log();
        let new = &recording.new;
        let response = error.response(&new.id);
        // A refusal may quote what the IdP sent (a filter): recorded without what is never stored.
        let redaction = self.redaction_for(&new.path);
        let mut told = error.caller_error(&new.id).to_json();
        if let Some(detail) = told.get_mut("detail") {
            if let Some(text) = detail.as_str().map(|t| redact::free_text(t, redaction)) {
                *detail = Value::String(text);
            }
        }
        let (forwarded_headers, forwarded_body) = sent.map_or((None, None), |sent| (Some(sent.headers), sent.body));
        let completion = Completion {
            id: new.id.clone(),
            duration_ms: elapsed_ms(recording.started),
            forwarded_headers,
            forwarded_body,
            changes: Value::Array(changes),
            upstream_status: None,
            status: error.status(),
            response_headers: self.redactor.headers(response.headers()),
            response_body: Some(told.to_string()),
            outcome: error.outcome().to_owned(),
            findings: json!([]),
            bulk_operations: None,
            error: Some(redact::free_text(&error.recorded(), redaction)),
            resource_id: None,
            user_name: None,
            paced_ms: None,
        };
        self.finish(recording, completion, response).await
    }

    /// Finishes a refusal at admission, from anyone who reaches the listener: recorded
    /// bounded, and identical ones within a second counted into one record (`refusals.rs`),
    /// answered naming it. A replay's or a fanned-out operation's is recorded whole, as the
    /// evidence of what was replayed.
    pub(super) async fn finish_refused(&self, mut recording: Recording<'_>, error: ExchangeError) -> Exchanged {
        let new = &mut recording.new;
        if new.replay_of.is_some() || new.parent_id.is_some() {
            return self.finish_error(recording, error, None, Vec::new()).await;
        }
        refusals::bound(new);
        let key = refusals::Key {
            client: new.client.clone().unwrap_or_default(),
            route: new.route.clone(),
            status: error.status(),
        };
        match self.repeats.see(&key, &new.id) {
            refusals::Seen::Repeat(first) => {
                let (route, idp) = (new.route.as_deref().unwrap_or("-"), new.idp.as_deref().unwrap_or("-"));
                self.metrics
                    .exchange(route, idp, &new.method, error.outcome(), recording.started.elapsed());
                return Exchanged {
                    response: error.response(&first),
                    id: first,
                    outcome: error.outcome().to_owned(),
                };
            }
            refusals::Seen::First => {
                let recorder = self.recorder.clone();
                refusals::close_later(Arc::clone(&self.repeats), key, move |id, count| {
                    recorder.write_behind(Write::Repeats(id, count));
                });
            }
            refusals::Seen::Uncounted => {}
        }
        self.finish_error(recording, error, None, Vec::new()).await
    }

    /// How the exchange `new` is recorded: waited for in durable mode, and always for a replay
    /// (the next replay run decides from its record: one lost would be sent twice); written
    /// behind in async mode. The one place that decides.
    pub(super) fn recorded_as(&self, new: &NewExchange) -> RecordedAs {
        if new.replay_of.is_some() {
            RecordedAs::Replay
        } else if self.recorder.mode() == RecordMode::Durable {
            RecordedAs::Waited
        } else {
            RecordedAs::Behind
        }
    }

    /// Records `write` as `how` says.
    pub(super) async fn record(&self, how: RecordedAs, write: Write) -> Result<(), RecordError> {
        match how {
            RecordedAs::Waited => self.recorder.write(write).await,
            RecordedAs::Replay => self.recorder.write_power(write).await,
            RecordedAs::Behind => {
                self.recorder.write_behind(write);
                Ok(())
            }
        }
    }

    /// Whether an exchange that cannot be recorded is refused: as configured, and always for
    /// a replay.
    pub(super) fn fail_closed(&self, new: &NewExchange) -> bool {
        self.config.fail_closed || new.replay_of.is_some()
    }
}
