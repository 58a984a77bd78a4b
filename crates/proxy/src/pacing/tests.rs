//! The pacing's arithmetic on a table of states, and its queue on tokio's paused clock: time
//! moves only when every task waits, so each wait is exact and no test waits for real.

use super::*;
use std::sync::Arc;
use tokio::sync::Semaphore;

const MS: Duration = Duration::from_millis(1);

fn pacing(rate: Option<u32>, in_flight: Option<u32>) -> Pacing {
    Pacing {
        max_requests_per_second: rate,
        max_in_flight: in_flight,
        max_queued: 100,
        max_wait: Duration::from_secs(50),
        max_pause: Duration::from_secs(5),
    }
}

/// How long `patience`'s requests have waited, all of them.
fn paced_ms(patience: &Patience) -> Option<i64> {
    patience.paced_ms_since(Mark {
        waited: Duration::ZERO,
        turns: 0,
    })
}

fn pacer(pacing: Pacing) -> Arc<Pacer> {
    Arc::new(Pacer::new("app", pacing, Arc::new(Metrics::default())))
}

#[test]
fn the_limits_are_said_in_words() {
    for (rate, in_flight, said) in [
        (
            Some(100),
            Some(8),
            "at most 100 requests per second and 8 in flight, per instance",
        ),
        (Some(1), None, "at most 1 request per second, per instance"),
        (None, Some(4), "at most 4 in flight, per instance"),
    ] {
        assert_eq!(pacing(rate, in_flight).limits(), said);
    }
}

#[test]
fn the_longest_wait_keeps_the_timeout_and_the_wait_under_55_s() {
    for (timeout, longest) in [
        (30, Some(24)),
        (1, Some(53)),
        (53, Some(1)),
        (54, None),
        (55, None),
        (90, None),
    ] {
        assert_eq!(
            Pacing::longest_wait(Duration::from_secs(timeout)),
            longest.map(Duration::from_secs),
            "{timeout} s"
        );
    }
    assert_eq!(
        Pacing::longest_wait(Duration::from_millis(30_500)),
        Some(Duration::from_secs(24))
    );
}

/// One state of a route, and what its queue's first request does at `now` (milliseconds
/// from a common start).
struct Case {
    what: &'static str,
    rate: Option<u32>,
    in_flight: Option<u32>,
    in_progress: usize,
    frees_at: &'static [u64],
    next_send: u64,
    paused_until: Option<u64>,
    now: u64,
    expect: Option<u64>,
    after_an_answer: bool,
}

const CASE: Case = Case {
    what: "",
    rate: Some(2),
    in_flight: None,
    in_progress: 0,
    frees_at: &[],
    next_send: 0,
    paused_until: None,
    now: 0,
    expect: None,
    after_an_answer: false,
};

#[test]
fn the_state_says_when_the_next_request_may_go() {
    let cases = [
        Case {
            what: "nothing sent yet",
            ..CASE
        },
        Case {
            what: "sends are spaced 1/N s apart",
            in_progress: 1,
            next_send: 500,
            now: 100,
            expect: Some(500),
            ..CASE
        },
        Case {
            what: "spaced, and the space is over",
            in_progress: 1,
            next_send: 500,
            now: 500,
            ..CASE
        },
        Case {
            what: "every place held by a request in progress",
            in_progress: 2,
            now: 900,
            after_an_answer: true,
            ..CASE
        },
        Case {
            what: "a place frees one second after its answer",
            in_progress: 1,
            frees_at: &[1300],
            next_send: 600,
            now: 700,
            expect: Some(1300),
            ..CASE
        },
        Case {
            what: "places freed already are forgotten",
            in_progress: 1,
            frees_at: &[650],
            next_send: 600,
            now: 700,
            ..CASE
        },
        Case {
            what: "the earliest of the places that must free",
            rate: Some(3),
            frees_at: &[1100, 1200, 1400],
            next_send: 500,
            now: 700,
            expect: Some(1100),
            ..CASE
        },
        Case {
            what: "two must free: the second",
            rate: Some(3),
            in_progress: 1,
            frees_at: &[1100, 1200, 1400],
            next_send: 500,
            now: 700,
            expect: Some(1200),
            ..CASE
        },
        Case {
            what: "a pause holds everything",
            paused_until: Some(3000),
            now: 10,
            expect: Some(3000),
            ..CASE
        },
        Case {
            what: "a pause over is forgotten",
            paused_until: Some(3000),
            next_send: 2900,
            now: 3000,
            ..CASE
        },
        Case {
            what: "in flight: at the bound",
            rate: None,
            in_flight: Some(2),
            in_progress: 2,
            after_an_answer: true,
            ..CASE
        },
        Case {
            what: "in flight: below it, no rate to wait for",
            rate: None,
            in_flight: Some(2),
            in_progress: 1,
            next_send: 9000,
            ..CASE
        },
    ];
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    for case in cases {
        let pacing = pacing(case.rate, case.in_flight);
        let limits = Pacer::new("app", pacing, Arc::new(Metrics::default())).limits;
        let mut state = State {
            in_progress: case.in_progress,
            frees_at: case.frees_at.iter().map(|ms| at(*ms)).collect(),
            next_send: at(case.next_send),
            paused_until: case.paused_until.map(at),
            queued: 0,
        };
        let expected = match (case.after_an_answer, case.expect) {
            (true, _) => Next::AfterAnAnswer,
            (false, Some(ms)) => Next::At(at(ms)),
            (false, None) => Next::Go,
        };
        assert_eq!(state.next(at(case.now), limits), expected, "{}", case.what);
    }
}

/// What the application would see of `sends` (each with its answer), checked against a rate
/// of `rate`: no more than `rate` in any one-second window, spaced 1/rate s apart, and every
/// send `rate` places after another one second after that one's answer.
fn check_window(sends: &[(Instant, Instant)], rate: usize) {
    for (index, (sent, _)) in sends.iter().enumerate() {
        let within = sends
            .iter()
            .filter(|(other, _)| *other >= *sent && *other < *sent + Duration::from_secs(1))
            .count();
        assert!(within <= rate, "{within} sends in the second from send {index}");
        if let Some((next, _)) = sends.get(index + 1) {
            assert!(
                *next - *sent >= Duration::from_secs(1) / rate as u32,
                "send {index} and the next"
            );
        }
        if let Some((later, _)) = sends.get(index + rate) {
            let (_, answered) = sends[index];
            assert!(
                *later >= answered + Duration::from_secs(1),
                "send {} too soon",
                index + rate
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_second_sees_more_requests_than_the_rate_and_they_go_in_arrival_order() {
    let pacer = pacer(pacing(Some(10), None));
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for index in 0..45_usize {
        let (pacer, log) = (Arc::clone(&pacer), Arc::clone(&log));
        tasks.push(tokio::spawn(async move {
            let mut patience = Patience::unattended();
            let turn = pacer.turn(&mut patience).await.unwrap();
            let sent = Instant::now();
            // The application takes 30 ms to answer.
            tokio::time::sleep(30 * MS).await;
            let answered = Instant::now();
            drop(turn);
            log.lock().unwrap().push((index, sent, answered));
            paced_ms(&patience)
        }));
    }
    let mut waits = Vec::new();
    for task in tasks {
        waits.push(task.await.unwrap().unwrap());
    }
    let mut log = log.lock().unwrap().clone();
    log.sort_by_key(|(_, sent, _)| *sent);
    let order: Vec<usize> = log.iter().map(|(index, ..)| *index).collect();
    assert_eq!(order, (0..45).collect::<Vec<_>>(), "first come, first served");
    let sends: Vec<(Instant, Instant)> = log.iter().map(|(_, sent, answered)| (*sent, *answered)).collect();
    check_window(&sends, 10);
    // The first went at once; the last waited its place: 44 sends spaced, each window a
    // second after the answer ten places before it.
    assert_eq!(waits[0], 0);
    assert!(waits[44] >= 4000, "{}", waits[44]);
    assert_eq!(pacer.queued(), 0);
    let metrics = pacer.metrics.render();
    assert!(
        metrics.contains("scimtrail_pacing_paced_total{route=\"app\"} 44"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scimtrail_pacing_wait_seconds_count{route=\"app\"} 44"),
        "{metrics}"
    );
    assert!(
        metrics.contains("scimtrail_pacing_queue_depth{route=\"app\"} 0"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn in_flight_bounds_the_requests_awaiting_their_answers() {
    let pacer = pacer(pacing(None, Some(2)));
    let (mut one, mut two) = (Patience::unattended(), Patience::unattended());
    let first = pacer.turn(&mut one).await.unwrap();
    let _second = pacer.turn(&mut two).await.unwrap();
    let waiting = {
        let pacer = Arc::clone(&pacer);
        tokio::spawn(async move {
            let mut patience = Patience::unattended();
            let _turn = pacer.turn(&mut patience).await.unwrap();
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!waiting.is_finished(), "a third waits while two are in flight");
    assert_eq!(pacer.queued(), 1);
    let answered = Instant::now();
    drop(first);
    assert_eq!(waiting.await.unwrap(), answered, "and goes as soon as one is answered");
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_and_says_when_to_come_back() {
    let pacer = pacer(Pacing {
        max_queued: 2,
        ..pacing(Some(1), None)
    });
    let mut first = Patience::unattended();
    let answered_later = pacer.turn(&mut first).await.unwrap();
    let mut queued = Vec::new();
    for _ in 0..2 {
        let pacer = Arc::clone(&pacer);
        queued.push(tokio::spawn(async move {
            let mut patience = Patience::unattended();
            pacer.turn(&mut patience).await.map(|_| ())
        }));
    }
    tokio::task::yield_now().await;
    assert_eq!(pacer.queued(), 2);
    let arrived = Instant::now();
    let mut patience = Patience::unattended();
    let refused = pacer.turn(&mut patience).await.err().unwrap();
    assert_eq!(Instant::now(), arrived, "refused without waiting");
    assert_eq!(refused.why, Why::QueueFull);
    assert_eq!(refused.retry_after, 3, "two ahead and itself, one a second");
    assert_eq!(
        refused.detail,
        "the pacing queue of route app is full (max_queued = 2; at most 1 request per second, per instance); nothing was sent"
    );
    assert_eq!(paced_ms(&patience), Some(0));
    drop(answered_later);
    for task in queued {
        task.await.unwrap().unwrap();
    }
    let metrics = pacer.metrics.render();
    assert!(
        metrics.contains("scimtrail_pacing_refused_total{route=\"app\",reason=\"queue_full\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_have_its_turn_within_its_patience_is_refused() {
    let pacer = pacer(Pacing {
        max_wait: Duration::from_secs(1),
        ..pacing(Some(1), None)
    });
    let start = Instant::now();
    let mut first = Patience::unattended();
    drop(pacer.turn(&mut first).await.unwrap());
    // Its turn comes one second on: just within its patience.
    let second = {
        let pacer = Arc::clone(&pacer);
        tokio::spawn(async move {
            let mut patience = Patience::unattended();
            let _turn = pacer.turn(&mut patience).await.unwrap();
            Instant::now()
        })
    };
    tokio::task::yield_now().await;
    // Behind it, two seconds on: refused as it arrives, not once its patience is spent.
    let mut third = Patience::unattended();
    let refused = pacer.turn(&mut third).await.err().unwrap();
    assert_eq!((refused.why, Instant::now()), (Why::WaitBound, start));
    assert!(
        refused
            .detail
            .starts_with("the pacing queue of route app could not send the request within 1 s (max_wait_secs"),
        "{}",
        refused.detail
    );
    assert_eq!(refused.retry_after, 2);
    assert_eq!(second.await.unwrap(), start + Duration::from_secs(1));

    // A request in the queue whose turn does not come in time leaves it when its patience ends.
    let pacer = self::pacer(Pacing {
        max_wait: Duration::from_secs(1),
        ..pacing(None, Some(1))
    });
    let mut holder = Patience::unattended();
    let _held = pacer.turn(&mut holder).await.unwrap();
    let arrived = Instant::now();
    let mut late = Patience::unattended();
    let refused = pacer.turn(&mut late).await.err().unwrap();
    assert_eq!(
        (refused.why, Instant::now() - arrived),
        (Why::WaitBound, Duration::from_secs(1))
    );
    assert_eq!(paced_ms(&late), Some(1000));
    assert_eq!(pacer.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_applications_429_pauses_the_route_for_its_retry_after_within_the_cap() {
    let in_three_seconds = time::OffsetDateTime::from_unix_timestamp(crate::clock::now_ms() / 1000 + 3)
        .unwrap()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap()
        .replace("+0000", "GMT");
    // (Retry-After, the shortest and longest pause): a date is read against the wall clock,
    // whose second has begun already.
    for (retry_after, shortest, longest) in [
        (Some("2".to_owned()), 2000, 2000),
        (Some(in_three_seconds), 2000, 3000),
        (None, 1000, 1000),
        (Some("soon".to_owned()), 1000, 1000),
        (Some("600".to_owned()), 5000, 5000),
        (Some("0".to_owned()), 0, 0),
    ] {
        let pacer = pacer(pacing(None, Some(10)));
        let value = retry_after.as_deref().map(|v| HeaderValue::from_str(v).unwrap());
        let paused = Instant::now();
        pacer.pause(value.as_ref());
        let mut patience = Patience::unattended();
        let _turn = pacer.turn(&mut patience).await.unwrap();
        let pause = (Instant::now() - paused).as_millis();
        assert!((shortest..=longest).contains(&pause), "{retry_after:?}: {pause} ms");
        let pauses = usize::from(shortest > 0);
        let metrics = pacer.metrics.render();
        assert_eq!(
            metrics.contains(&format!("scimtrail_pacing_pauses_total{{route=\"app\"}} {pauses}")),
            pauses > 0,
            "{retry_after:?}: {metrics}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_pause_refuses_at_once_what_it_would_keep_past_its_patience() {
    let pacer = pacer(Pacing {
        max_wait: Duration::from_secs(2),
        ..pacing(None, Some(1))
    });
    let mut holder = Patience::unattended();
    let _held = pacer.turn(&mut holder).await.unwrap();
    // Two wait: the first for an answer, the second behind it.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let pacer = Arc::clone(&pacer);
        waiting.push(tokio::spawn(async move {
            let mut patience = Patience::unattended();
            let refused = pacer.turn(&mut patience).await.err();
            (refused, Instant::now())
        }));
    }
    tokio::time::sleep(100 * MS).await;
    let paused = Instant::now();
    pacer.pause(Some(&HeaderValue::from_static("10")));
    for task in waiting {
        let (refused, at) = task.await.unwrap();
        let refused = refused.unwrap();
        assert_eq!((refused.why, at), (Why::WaitBound, paused));
        assert_eq!(refused.retry_after, 5, "the pause, as capped");
        assert!(
            refused.detail.contains("the route is paused for 5 s more"),
            "{}",
            refused.detail
        );
    }
    // And one arriving while it lasts is refused as it arrives.
    let mut arriving = Patience::unattended();
    let refused = pacer.turn(&mut arriving).await.err().unwrap();
    assert_eq!((refused.why, Instant::now()), (Why::WaitBound, paused));
}

#[tokio::test(start_paused = true)]
async fn a_request_whose_client_left_leaves_the_queue_unsent() {
    let pacer = pacer(pacing(Some(1), None));
    let start = Instant::now();
    let mut first = Patience::unattended();
    drop(pacer.turn(&mut first).await.unwrap());
    let (present, caller) = CallerGone::pair();
    let leaving = {
        let pacer = Arc::clone(&pacer);
        tokio::spawn(async move {
            let mut patience = Patience::new(caller);
            let refused = pacer.turn(&mut patience).await.err();
            (refused, Instant::now(), paced_ms(&patience))
        })
    };
    tokio::time::sleep(300 * MS).await;
    assert_eq!(pacer.queued(), 1);
    drop(present);
    let (refused, left, waited) = leaving.await.unwrap();
    assert_eq!((refused.unwrap().why, left), (Why::ClientGone, start + 300 * MS));
    assert_eq!(waited, Some(300));
    assert_eq!(pacer.queued(), 0);
    // Its place goes to the next, at the time the rate allows.
    let mut next = Patience::unattended();
    let _turn = pacer.turn(&mut next).await.unwrap();
    assert_eq!(Instant::now(), start + Duration::from_secs(1));
    // A client gone before its request would queue is refused as it arrives.
    let (present, caller) = CallerGone::pair();
    drop(present);
    let mut gone = Patience::new(caller);
    let refused = pacer.turn(&mut gone).await.err().unwrap();
    assert_eq!(refused.why, Why::ClientGone);
    let metrics = pacer.metrics.render();
    assert!(
        metrics.contains("scimtrail_pacing_refused_total{route=\"app\",reason=\"client_gone\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_gives_its_exchange_slot_back_while_it_waits() {
    let slots = Arc::new(Semaphore::new(1));
    let pacer = pacer(pacing(Some(1), None));
    let mut first = Patience::unattended();
    drop(pacer.turn(&mut first).await.unwrap());
    let waiting = {
        let (pacer, slots) = (Arc::clone(&pacer), Arc::clone(&slots));
        tokio::spawn(async move {
            let mut patience = Patience::unattended();
            patience.hold(Arc::clone(&slots).acquire_owned().await.unwrap());
            let turn = pacer.turn(&mut patience).await.map(|_| ());
            (turn, patience.slot.is_some(), slots.available_permits())
        })
    };
    tokio::time::sleep(500 * MS).await;
    assert_eq!(slots.available_permits(), 1, "free for another exchange while it waits");
    let (turn, holds, available) = waiting.await.unwrap();
    assert!(turn.is_ok());
    assert_eq!((holds, available), (true, 0), "and held again when its turn comes");

    // Refused after its wait, it holds one again too: its exchange goes on to answer.
    let pacer = self::pacer(Pacing {
        max_wait: Duration::from_secs(1),
        ..pacing(None, Some(1))
    });
    let mut holder = Patience::unattended();
    let _held = pacer.turn(&mut holder).await.unwrap();
    let mut patience = Patience::unattended();
    patience.hold(Arc::clone(&slots).acquire_owned().await.unwrap());
    let refused = pacer.turn(&mut patience).await.err().unwrap();
    assert_eq!(refused.why, Why::WaitBound);
    assert_eq!((patience.slot.is_some(), slots.available_permits()), (true, 0));
}

#[test]
fn an_exchange_without_paced_requests_records_no_wait() {
    let patience = Patience::unattended();
    assert_eq!(patience.paced_ms_since(patience.mark()), None);
}
