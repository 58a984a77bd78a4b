//! Pacing toward rate-limited applications: a route's `[route.target] max_requests_per_second`
//! and `max_in_flight`, and its `[route.pacing]` queue. Per instance: each proxy paces what it
//! sends, so N instances in front of one application send up to N times the limits.
//!
//! Every request to a paced route's application takes a [`Turn`] here first, in
//! `Upstream::send_within` — the one place every request to an application goes through: the
//! IdP's request forwarded, R16's parts and R4's pages, the reads of stateful rules, R6 and
//! read-back, each operation of a bulk request fanned out, replays and their checks. The
//! application's limit counts every request it receives, so none of them bypasses pacing.
//!
//! - **Rate.** At most `max_requests_per_second` requests in any one-second window *as the
//!   application sees them*: a request holds one of that many places from when it is sent until
//!   one second after its answer (or failure). A request arrives after it is sent and before it
//!   is answered, so two arrivals that many places apart are more than a second apart, whatever
//!   the network's delays. Sends are also spaced evenly (one every 1/N s), so that a burst
//!   reaches the application as a steady flow rather than all at once.
//! - **In flight.** At most `max_in_flight` requests awaiting their answers.
//! - **Queue.** A request that cannot go at once waits in the route's queue, first come first
//!   served, at most `max_queued` of them. While it waits, its exchange gives its exchange slot
//!   (`[listen] max_exchanges`) back, so that a slow application's queue cannot starve the
//!   other routes; it takes one again before it goes on, sent or refused.
//! - **Patience.** A request waits at most until its exchange's start plus `max_wait`, which
//!   with the route's timeout stays under 55 s (R15: IdPs give up at 60 s and send the write
//!   again). One that would wait longer is refused as soon as that is known, not at the end.
//! - **Pause.** An application's 429 pauses the route for its `Retry-After` (seconds or an
//!   HTTP-date, at most `max_pause`; one second without one): queued requests wait, and those
//!   whose patience ends first are refused at once.
//! - **Gone.** A request whose client has gone leaves the queue unsent.
//!
//! A request refused here was not sent: its exchange answers 429 with an integer `Retry-After`
//! (R14) and is recorded `unreachable`, so that a replay may send it if the IdP does not. A
//! route without pacing never gets here: it costs one look at an empty map.

use crate::metrics::Metrics;
use crate::server::CallerGone;
use http::HeaderValue;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::{sleep_until, Instant};

/// What an IdP waits for an answer before it gives up and sends the request again, less the
/// proxy's own margin: a request's wait in a queue plus its route's timeout stay under this.
pub const IDP_PATIENCE: Duration = Duration::from_secs(55);

/// Requests a paced route's queue holds, unless configured.
pub const DEFAULT_MAX_QUEUED: usize = 256;

/// The longest an application's `Retry-After` pauses its route, unless configured.
pub const DEFAULT_MAX_PAUSE: Duration = Duration::from_secs(60);

/// How long an application's 429 without a usable `Retry-After` pauses its route.
pub const PAUSE_WITHOUT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// One place in the rate's window is held this long after its request's answer.
const WINDOW: Duration = Duration::from_secs(1);

/// A route's pacing, as configured (the `app` crate validates it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacing {
    /// At most this many requests in any one second (at least 1); `None`: no rate.
    pub max_requests_per_second: Option<u32>,
    /// At most this many requests awaiting their answers (at least 1); `None`: no bound.
    pub max_in_flight: Option<u32>,
    /// At most this many requests wait in the queue.
    pub max_queued: usize,
    /// The longest a request may wait, counted from its exchange's start.
    pub max_wait: Duration,
    /// The longest an application's `Retry-After` pauses the route.
    pub max_pause: Duration,
}

impl Pacing {
    /// The longest wait that keeps `timeout` and the wait under [`IDP_PATIENCE`], in whole
    /// seconds: the default `max_wait`. `None` when `timeout` leaves no time to wait.
    pub fn longest_wait(timeout: Duration) -> Option<Duration> {
        let left = IDP_PATIENCE.checked_sub(timeout)?;
        let seconds = left.as_secs().saturating_sub(u64::from(left.subsec_nanos() == 0));
        (seconds > 0).then(|| Duration::from_secs(seconds))
    }

    /// What this pacing holds requests to, in words (`check-config`, a refusal's detail):
    /// `at most 100 requests per second and 8 in flight, per instance`.
    pub fn limits(&self) -> String {
        let rate = self.max_requests_per_second.map(|n| match n {
            1 => "1 request per second".to_owned(),
            n => format!("{n} requests per second"),
        });
        let in_flight = self.max_in_flight.map(|n| format!("{n} in flight"));
        let limits: Vec<String> = rate.into_iter().chain(in_flight).collect();
        format!("at most {}, per instance", limits.join(" and "))
    }
}

/// Why a request was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The queue held `max_queued` requests already.
    QueueFull,
    /// Its turn would come, or did not come, within its exchange's patience.
    WaitBound,
    /// Its client went away while it waited.
    ClientGone,
}

impl Why {
    /// The label in `/metrics`.
    fn label(self) -> &'static str {
        match self {
            Why::QueueFull => "queue_full",
            Why::WaitBound => "queue_timeout",
            Why::ClientGone => "client_gone",
        }
    }
}

/// A request the pacing did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) why: Why,
    /// In how many whole seconds the route may take a request again (at least 1).
    pub(crate) retry_after: u64,
    /// What and where, for the caller: the route and the bound it met.
    pub(crate) detail: String,
}

/// What the requests of one exchange bring to the queues they wait in: when the exchange's
/// caller began to wait (its patience runs from there), whether it still waits, the exchange
/// slot given back while a request waits, and how long they have waited. A bulk request's
/// operations, fanned out, share their request's; a read-back shares its write's.
pub(crate) struct Patience {
    since: Instant,
    caller: CallerGone,
    slot: Option<OwnedSemaphorePermit>,
    waited: Duration,
    turns: u32,
}

/// Where an exchange's [`Patience`] stood when the exchange began, so that its own wait can
/// be told from its parent's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    waited: Duration,
    turns: u32,
}

impl Patience {
    /// For a request a client waits on, from now.
    pub(crate) fn new(caller: CallerGone) -> Patience {
        Patience {
            since: Instant::now(),
            caller,
            slot: None,
            waited: Duration::ZERO,
            turns: 0,
        }
    }

    /// For what no client waits on: a replay and its checks.
    pub(crate) fn unattended() -> Patience {
        Patience::new(CallerGone::never())
    }

    /// Its client, to wait on while the exchange waits for anything else.
    pub(crate) fn caller(&mut self) -> &mut CallerGone {
        &mut self.caller
    }

    /// Holds the exchange's slot until the exchange ends (given back while it queues).
    pub(crate) fn hold(&mut self, slot: OwnedSemaphorePermit) {
        self.slot = Some(slot);
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            waited: self.waited,
            turns: self.turns,
        }
    }

    /// How long the requests made since `mark` waited in queues, in milliseconds (as an
    /// exchange records it); `None` when none of them went through a paced route.
    pub(crate) fn paced_ms_since(&self, mark: Mark) -> Option<i64> {
        let waited = self.waited.saturating_sub(mark.waited);
        (self.turns > mark.turns).then(|| crate::clock::ms(waited))
    }
}

/// The state of one route's pacing, behind a lock never held across an await.
#[derive(Debug)]
struct State {
    /// Requests sent and not answered yet.
    in_progress: usize,
    /// When the places of the requests answered within the last second free: one second
    /// after each answer, oldest first.
    frees_at: VecDeque<Instant>,
    /// The earliest the next request may be sent (sends spaced evenly).
    next_send: Instant,
    /// An application's 429 holds every request until then.
    paused_until: Option<Instant>,
    /// Requests in the queue.
    queued: usize,
}

/// What the queue's first request does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// It is sent now.
    Go,
    /// Nothing changes before then.
    At(Instant),
    /// It waits for an answer: every place a request may hold is held by one in progress.
    AfterAnAnswer,
}

/// The limits, as the state reads them.
#[derive(Debug, Clone, Copy)]
struct Limits {
    rate: Option<usize>,
    interval: Option<Duration>,
    in_flight: Option<usize>,
}

impl State {
    fn new(now: Instant) -> State {
        State {
            in_progress: 0,
            frees_at: VecDeque::new(),
            next_send: now,
            paused_until: None,
            queued: 0,
        }
    }

    /// Whether a request may be sent at `now`, and if not, until when it waits.
    fn next(&mut self, now: Instant, limits: Limits) -> Next {
        while self.frees_at.front().is_some_and(|at| *at <= now) {
            self.frees_at.pop_front();
        }
        match self.paused_until {
            Some(until) if until > now => return Next::At(until),
            Some(_) => self.paused_until = None,
            None => {}
        }
        if limits.in_flight.is_some_and(|max| self.in_progress >= max) {
            return Next::AfterAnAnswer;
        }
        if let Some(rate) = limits.rate {
            if self.in_progress >= rate {
                return Next::AfterAnAnswer;
            }
            // Fewer than `rate` in progress: enough answered places free in time.
            let held = self.in_progress + self.frees_at.len();
            if let Some(frees) = held.checked_sub(rate).and_then(|index| self.frees_at.get(index)) {
                return Next::At(*frees);
            }
            if self.next_send > now {
                return Next::At(self.next_send);
            }
        }
        Next::Go
    }

    /// A request is sent at `now`.
    fn send(&mut self, now: Instant, limits: Limits) {
        self.in_progress += 1;
        if let Some(interval) = limits.interval {
            self.next_send = now + interval;
        }
    }

    /// A request sent is answered (or failed) at `now`.
    fn answered(&mut self, now: Instant, limits: Limits) {
        self.in_progress = self.in_progress.saturating_sub(1);
        if limits.rate.is_some() {
            self.frees_at.push_back(now + WINDOW);
        }
    }

    /// The earliest a request arriving at `now` could be sent: after the pause, the next send,
    /// and one interval for each request ahead of it. The rate's window and the in-flight bound
    /// can only make it later.
    fn earliest(&self, now: Instant, limits: Limits) -> Instant {
        let start = now
            .max(self.paused_until.unwrap_or(now))
            .max(if limits.interval.is_some() { self.next_send } else { now });
        let ahead = u32::try_from(self.queued).unwrap_or(u32::MAX);
        start
            + limits
                .interval
                .map_or(Duration::ZERO, |interval| interval.saturating_mul(ahead))
    }
}

/// One route's pacing: its state, its queue, and what it reports to `/metrics`.
pub(crate) struct Pacer {
    route: String,
    pacing: Pacing,
    limits: Limits,
    state: Mutex<State>,
    /// Wakes the queue's first request when a request is answered.
    answered: Notify,
    /// Wakes every queued request when the route is paused.
    paused: Notify,
    /// The queue: its lock is held by the first request, and taken in the order requests
    /// asked for it (tokio's mutex is fair).
    queue: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

/// A request's turn: held from when it is sent until its answer (or failure) is whole.
pub(crate) struct Turn<'a> {
    pacer: &'a Pacer,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.pacer.state().answered(Instant::now(), self.pacer.limits);
        self.pacer.answered.notify_one();
    }
}

/// A request in the queue, counted out when it leaves, whichever way.
struct InLine<'a>(&'a Pacer);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let queued = {
            let mut state = self.0.state();
            state.queued = state.queued.saturating_sub(1);
            state.queued
        };
        self.0.metrics.pacing_queue_depth(&self.0.route, queued);
    }
}

impl Pacer {
    pub(crate) fn new(route: &str, pacing: Pacing, metrics: Arc<Metrics>) -> Pacer {
        let rate = pacing
            .max_requests_per_second
            .map(|n| usize::try_from(n.max(1)).unwrap_or(usize::MAX));
        let interval = pacing.max_requests_per_second.map(|n| WINDOW / n.max(1));
        let in_flight = pacing
            .max_in_flight
            .map(|n| usize::try_from(n.max(1)).unwrap_or(usize::MAX));
        metrics.pacing_queue_depth(route, 0);
        Pacer {
            route: route.to_owned(),
            pacing,
            limits: Limits {
                rate,
                interval,
                in_flight,
            },
            state: Mutex::new(State::new(Instant::now())),
            answered: Notify::new(),
            paused: Notify::new(),
            queue: tokio::sync::Mutex::new(()),
            metrics,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few counters, each change one statement: a panic elsewhere cannot
        // leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The request's turn to be sent: at once when nothing waits and the limits allow,
    /// else after its wait in the queue (the exchange's slot given back meanwhile).
    pub(crate) async fn turn(&self, patience: &mut Patience) -> Result<Turn<'_>, Refused> {
        patience.turns = patience.turns.saturating_add(1);
        let now = Instant::now();
        let deadline = patience.since + self.pacing.max_wait;
        {
            let mut state = self.state();
            if state.queued == 0 && state.next(now, self.limits) == Next::Go {
                state.send(now, self.limits);
                return Ok(Turn { pacer: self });
            }
            let refused = if patience.caller.is_gone() {
                Some(Why::ClientGone)
            } else if state.queued >= self.pacing.max_queued {
                Some(Why::QueueFull)
            } else if state.earliest(now, self.limits) > deadline {
                Some(Why::WaitBound)
            } else {
                None
            };
            if let Some(why) = refused {
                drop(state);
                return Err(self.refuse(why, None));
            }
            state.queued += 1;
            self.metrics.pacing_queue_depth(&self.route, state.queued);
        }
        let started = Instant::now();
        let in_line = InLine(self);
        // Its exchange slot goes back while it waits, for exchanges of other routes.
        let slot = patience.slot.take().map(|slot| Arc::clone(slot.semaphore()));
        let waited = tokio::select! {
            turn = self.wait_turn(deadline) => turn,
            () = patience.caller.wait() => Err(Why::ClientGone),
        };
        drop(in_line);
        // Sent or refused, the exchange goes on (to its answer, or its next request) with an
        // exchange slot again, so that no more exchanges run than `max_exchanges` (the
        // semaphore is never closed).
        if let Some(semaphore) = slot {
            patience.slot = semaphore.acquire_owned().await.ok();
        }
        let wait = started.elapsed();
        patience.waited += wait;
        match waited {
            Ok(turn) => {
                self.metrics.pacing_paced(&self.route, wait);
                Ok(turn)
            }
            Err(why) => Err(self.refuse(why, Some(wait))),
        }
    }

    /// Waits to be first in the queue, then for the limits to allow a send.
    async fn wait_turn(&self, deadline: Instant) -> Result<Turn<'_>, Why> {
        let first = self.queue.lock();
        tokio::pin!(first);
        let _first = loop {
            let paused = self.paused.notified();
            tokio::pin!(paused);
            paused.as_mut().enable();
            if self.state().paused_until.is_some_and(|until| until > deadline) {
                return Err(Why::WaitBound);
            }
            tokio::select! {
                first = &mut first => break first,
                () = &mut paused => {}
                () = sleep_until(deadline) => return Err(Why::WaitBound),
            }
        };
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let paused = self.paused.notified();
            tokio::pin!(paused);
            paused.as_mut().enable();
            let next = {
                let mut state = self.state();
                let now = Instant::now();
                let next = state.next(now, self.limits);
                if next == Next::Go {
                    state.send(now, self.limits);
                    return Ok(Turn { pacer: self });
                }
                next
            };
            // Wakes when its turn may come, a request is answered, or a pause may move its turn
            // past its patience.
            let wake = match next {
                Next::At(at) => at,
                Next::Go | Next::AfterAnAnswer => deadline,
            };
            if wake > deadline || Instant::now() >= deadline {
                return Err(Why::WaitBound);
            }
            tokio::select! {
                () = sleep_until(wake) => {}
                () = &mut answered => {}
                () = &mut paused => {}
            }
        }
    }

    /// An application's 429: the route pauses for its `Retry-After`, within `max_pause`.
    pub(crate) fn pause(&self, retry_after: Option<&HeaderValue>) {
        let seconds = retry_after
            .and_then(|value| value.to_str().ok())
            .and_then(|value| scimtrail_rules::retry_after_seconds(value, crate::clock::now_ms() / 1000));
        let pause = seconds
            .map_or(PAUSE_WITHOUT_RETRY_AFTER, Duration::from_secs)
            .min(self.pacing.max_pause);
        if pause.is_zero() {
            return;
        }
        let until = Instant::now() + pause;
        {
            let mut state = self.state();
            state.paused_until = Some(state.paused_until.map_or(until, |paused| paused.max(until)));
        }
        self.metrics.pacing_pause(&self.route);
        tracing::info!(route = %self.route, pause_secs = pause.as_secs_f64(), "The application answered 429: the route is paused.");
        self.paused.notify_waiters();
    }

    /// A request refused for `why`, after waiting in the queue for `waited` (`None`: refused
    /// as it arrived): counted, and told when to come back.
    fn refuse(&self, why: Why, waited: Option<Duration>) -> Refused {
        self.metrics.pacing_refused(&self.route, why.label(), waited);
        let now = Instant::now();
        let (retry_after, paused_for) = {
            let state = self.state();
            let paused_for = state
                .paused_until
                .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
            let queue = self.limits.interval.map_or(Duration::ZERO, |interval| {
                interval.saturating_mul(u32::try_from(state.queued + 1).unwrap_or(u32::MAX))
            });
            (paused_for.max(queue), paused_for)
        };
        // Whole seconds, at least one (R14: Okta reads only an integer).
        let retry_after = whole_seconds(retry_after).max(1);
        let route = &self.route;
        let limits = self.pacing.limits();
        let paused = match paused_for.is_zero() {
            true => String::new(),
            false => format!(
                "; the application answered 429 and the route is paused for {} s more",
                whole_seconds(paused_for)
            ),
        };
        let detail = match why {
            Why::QueueFull => format!(
                "the pacing queue of route {route} is full (max_queued = {}; {limits}){paused}; nothing was sent",
                self.pacing.max_queued
            ),
            Why::WaitBound => format!(
                "the pacing queue of route {route} could not send the request within {} s (max_wait_secs, which with the route's timeout keeps the answer within what the IdP waits; {limits}){paused}; nothing was sent",
                self.pacing.max_wait.as_secs()
            ),
            Why::ClientGone => format!(
                "the client went away while its request waited in the pacing queue of route {route}; nothing was sent"
            ),
        };
        Refused {
            why,
            retry_after,
            detail,
        }
    }

    /// Requests in the queue now.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.state().queued
    }
}

/// `duration` in whole seconds, rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests;
