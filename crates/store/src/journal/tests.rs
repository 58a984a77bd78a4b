//! The journal on its own: frames, merging, recovery after a crash.

use super::*;
use crate::model::Snapshot;
use crate::{ExchangeQuery, Store};
use serde_json::json;

fn begin(id: &str) -> Write {
    Write::Begin(Box::new(NewExchange {
        id: id.to_owned(),
        received_at_ms: 1_700_000_000_000,
        instance: "journal-test".into(),
        route: Some("app".into()),
        idp: Some("okta".into()),
        method: "PATCH".into(),
        path: format!("/Users/{id}"),
        query: None,
        resource_type: Some("Users".into()),
        resource_id: Some(id.to_owned()),
        user_name: None,
        operation: "patch".into(),
        lifecycle: Some("deactivate".into()),
        request_headers: json!([["authorization", "Bearer sha256:1a2b3c4d"]]),
        request_body: Some(r#"{"Operations":[{"op":"replace","path":"active","value":false}]}"#.into()),
        replay_of: None,
        parent_id: None,
        client: None,
        rules_version: Some("7995c55a6bdf7e9c".into()),
        reconcile_of: None,
        synthetic: None,
    }))
}

fn finish(id: &str, outcome: &str) -> Write {
    Write::Finish(Box::new(Completion {
        id: id.to_owned(),
        duration_ms: 2,
        forwarded_headers: Some(json!([])),
        forwarded_body: None,
        changes: json!([]),
        upstream_status: Some(200),
        status: 200,
        response_headers: json!([]),
        response_body: Some(r#"{"id":"x"}"#.into()),
        outcome: outcome.to_owned(),
        findings: json!([]),
        bulk_operations: None,
        error: None,
        resource_id: None,
        user_name: Some("bjensen".into()),
        paced_ms: None,
    }))
}

fn kind(write: &Write) -> String {
    match write {
        Write::Begin(new) => format!("begin {}", new.id),
        Write::Finish(done) => format!("finish {}", done.id),
        Write::Whole(new, _) => format!("whole {}", new.id),
        Write::Snapshot(_) => "snapshot".into(),
        Write::Shape(..) => "shape".into(),
        Write::Repeats(id, count) => format!("repeats {id} {count}"),
        Write::Names(names) => format!("names {}", names.len()),
    }
}

fn numbered(writes: Vec<Write>) -> Vec<(u64, Write)> {
    (1..).zip(writes).collect()
}

#[test]
fn frames_round_trip_and_reading_stops_at_a_torn_or_damaged_frame() {
    let writes = vec![begin("a"), finish("a", "ok"), begin("b")];
    let mut bytes = Vec::new();
    for (seq, write) in (7..).zip(&writes) {
        encode_frame(&mut bytes, seq, write).unwrap();
    }
    assert_eq!(decode_frames(&bytes, 7), (writes.clone(), None));
    // Followed by zeros (a spare written over) or by an older frame (a recycled segment): the
    // end, not damage.
    let mut zeros = bytes.clone();
    zeros.extend_from_slice(&[0; 100]);
    assert_eq!(decode_frames(&zeros, 7), (writes.clone(), None));
    let mut recycled = bytes.clone();
    encode_frame(&mut recycled, 3, &writes[0]).unwrap();
    recycled.extend_from_slice(&bytes);
    assert_eq!(decode_frames(&recycled, 7), (writes.clone(), None));
    // A segment read from the wrong number finds nothing of its own.
    assert_eq!(decode_frames(&bytes, 8).0, vec![]);
    // Cut anywhere inside the last frame (a crash mid-append): the first two survive.
    let last_start = {
        let mut two = Vec::new();
        encode_frame(&mut two, 7, &writes[0]).unwrap();
        encode_frame(&mut two, 8, &writes[1]).unwrap();
        two.len()
    };
    for cut in last_start + 1..bytes.len() {
        let (read, torn) = decode_frames(&bytes[..cut], 7);
        assert_eq!(read, writes[..2], "cut at {cut}");
        assert!(torn.is_some(), "cut at {cut}");
    }
    // A flipped byte in the second frame's payload: only the first survives.
    let mut damaged = bytes.clone();
    damaged[last_start - 3] ^= 0x20;
    let (read, torn) = decode_frames(&damaged, 7);
    assert_eq!(read, writes[..1]);
    assert!(matches!(torn, Some(Stop::Torn(reason)) if reason.contains("damaged")));
    // A whole frame, checksum right, that is not a record: never taken for a torn end.
    let mut undecodable = bytes[..last_start].to_vec();
    undecodable.extend_from_slice(&raw_frame(9, b"{\"Begin\": 42}"));
    let (read, stop) = decode_frames(&undecodable, 7);
    assert_eq!(read, writes[..2]);
    assert!(matches!(stop, Some(Stop::Undecodable(reason)) if reason.contains("frame 9")));
}

/// A frame around `payload`, whatever it holds.
fn raw_frame(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut digest = CRC.digest();
    digest.update(&seq.to_le_bytes());
    digest.update(payload);
    let mut frame = u32::try_from(payload.len()).unwrap().to_le_bytes().to_vec();
    frame.extend_from_slice(&digest.finalize().to_le_bytes());
    frame.extend_from_slice(&seq.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn merge_joins_each_begin_with_its_completion_at_the_begins_place() {
    let snapshot = Write::Snapshot(Box::new(Snapshot {
        route: "app".into(),
        resource_type: "Users".into(),
        resource_id: "a".into(),
        body: None,
        updated_at_ms: 1,
    }));
    // (case, begins held from the last round, records, hold, applied, held now)
    type Case<'a> = (
        &'a str,
        Vec<(u64, NewExchange)>,
        Vec<Write>,
        bool,
        Vec<&'a str>,
        Vec<&'a str>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "both here: one whole record, in the begin's place",
            vec![],
            vec![
                begin("a"),
                begin("b"),
                finish("b", "ok"),
                snapshot.clone(),
                finish("a", "failed"),
            ],
            true,
            vec!["whole a", "whole b", "snapshot"],
            vec![],
        ),
        (
            "a begin alone is held for one round when allowed",
            vec![],
            vec![begin("a"), begin("b"), finish("b", "ok")],
            true,
            vec!["whole b"],
            vec!["a"],
        ),
        (
            "and applied as in flight when not",
            vec![],
            vec![begin("a")],
            false,
            vec!["begin a"],
            vec![],
        ),
        (
            "a held begin joins its completion in the next round",
            vec![(1, unbox_begin(begin("a")))],
            vec![finish("a", "ok"), begin("c")],
            true,
            vec!["whole a"],
            vec!["c"],
        ),
        (
            "a held begin is not held twice",
            vec![(1, unbox_begin(begin("a")))],
            vec![begin("c"), finish("c", "ok")],
            true,
            vec!["begin a", "whole c"],
            vec![],
        ),
        (
            "a completion whose begin was applied earlier stays an update",
            vec![],
            vec![finish("z", "ok")],
            true,
            vec!["finish z"],
            vec![],
        ),
    ];
    for (name, carried, records, hold, expected, expected_held) in cases {
        let (out, held) = merge(carried, numbered(records), hold);
        assert_eq!(out.iter().map(kind).collect::<Vec<_>>(), expected, "{name}");
        assert_eq!(
            held.iter().map(|(_, n)| n.id.as_str()).collect::<Vec<_>>(),
            expected_held,
            "{name}"
        );
    }
}

fn unbox_begin(write: Write) -> NewExchange {
    match write {
        Write::Begin(new) => *new,
        _ => unreachable!("a begin"),
    }
}

async fn fresh_file() -> (String, PathBuf) {
    let file = std::env::temp_dir().join(format!("scimtrail-journal-test-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", file.display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (url, file)
}

/// Writes `writes` as the segment beginning at `first_seq` (creating the journal's
/// directory), as an appender would have; returns its bytes.
fn journal_segment(file: &Path, first_seq: u64, writes: Vec<Write>) -> Vec<u8> {
    let dir = directory(file);
    fs::create_dir_all(&dir).unwrap();
    let mut segment = Vec::new();
    for (seq, write) in (first_seq..).zip(writes) {
        encode_frame(&mut segment, seq, &write).unwrap();
    }
    fs::write(segment_path(&dir, first_seq), &segment).unwrap();
    segment
}

/// Whether the journal's directory holds nothing but its lock and format files.
fn only_the_lock_is_left(dir: &Path) -> bool {
    fs::read_dir(dir)
        .unwrap()
        .all(|entry| ["lock", "format"].contains(&entry.unwrap().file_name().to_str().unwrap()))
}

async fn outcome(store: &Store, id: &str) -> String {
    store.get(id).await.unwrap().outcome().to_owned()
}

/// What a killed process leaves: segments that were appended but never applied. The next
/// store to open the database applies them, whatever point the crash came at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_left_by_a_dead_process_is_applied_by_the_next_open() {
    let (url, file) = fresh_file().await;
    let dir = directory(&file);
    // Two segments, as a rotation leaves them; the second ends in a torn frame.
    let first = journal_segment(&file, 1, vec![begin("u1"), finish("u1", "ok"), begin("u2")]);
    let second = journal_segment(&file, 4, vec![begin("u3"), finish("u3", "failed"), finish("u2", "ok")]);
    let torn = second.len() - 5;
    fs::write(segment_path(&dir, 4), &second[..torn]).unwrap();

    let store = Store::connect(&url).await.unwrap();
    assert_eq!(outcome(&store, "u1").await, "ok");
    assert_eq!(outcome(&store, "u3").await, "failed");
    // Its completion was torn off: in flight, as the crash left it.
    assert_eq!(outcome(&store, "u2").await, "in_flight");
    assert!(segment_files(&dir).unwrap().is_empty(), "applied segments are deleted");

    // Applying twice changes nothing (a crash after the commit, before the delete).
    fs::write(segment_path(&dir, 1), &first).unwrap();
    let again = Store::connect(&url).await.unwrap();
    assert_eq!(outcome(&again, "u1").await, "ok");
    assert_eq!(outcome(&again, "u2").await, "in_flight");
    let u1 = again.get("u1").await.unwrap();
    assert_eq!(u1.begun.user_name.as_deref(), Some("bjensen"));
    assert_eq!(
        u1.begun.rules_version.as_deref(),
        Some("7995c55a6bdf7e9c"),
        "begin and completion joined"
    );
    assert_eq!(
        again.get("u2").await.unwrap().begun.rules_version.as_deref(),
        Some("7995c55a6bdf7e9c"),
        "in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_recovered_at_process_durability_is_in_the_database_file_before_its_segments_go() {
    // Journaled at `power` (acknowledged as synced), recovered by a run at `process`,
    // whose commits survive a power cut only once checkpointed. The segments, the records'
    // other copy, used to be deleted while the records were still only in the WAL.
    let (url, file) = fresh_file().await;
    let dir = directory(&file);
    journal_segment(&file, 1, vec![begin("n1"), finish("n1", "ok")]);

    let store = Store::connect_with(&url, Durability::Process).await.unwrap();
    assert!(segment_files(&dir).unwrap().is_empty(), "applied segments are deleted");
    let wal = fs::metadata(file.with_extension("db-wal")).map_or(0, |wal| wal.len());
    assert_eq!(wal, 0, "the recovered records were copied out of the WAL and synced");
    assert_eq!(outcome(&store, "n1").await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_the_schema_cannot_take_yet_is_applied_after_the_migrations() {
    // An upgrade after a crash: the new binary's records need its migrations. Recovery at
    // connect used to fail, and with it every start, so the migrations never ran.
    let file = std::env::temp_dir().join(format!("scimtrail-journal-test-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", file.display());
    let dir = directory(&file);
    journal_segment(&file, 1, vec![begin("m1"), finish("m1", "ok")]);

    let store = Store::connect(&url).await.expect("connects although the journal waits");
    assert_eq!(segment_files(&dir).unwrap().len(), 1, "kept until the schema takes it");
    store.migrate().await.unwrap();
    assert_eq!(outcome(&store, "m1").await, "ok");
    assert!(segment_files(&dir).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_damaged_before_the_last_is_kept_aside_and_what_follows_is_applied() {
    let (url, file) = fresh_file().await;
    let dir = directory(&file);
    let mut first = journal_segment(&file, 1, vec![begin("d1"), finish("d1", "ok"), begin("d2")]);
    // Bit rot in the last frame of a segment that is not the journal's end.
    let last = first.len() - 3;
    first[last] ^= 0x20;
    fs::write(segment_path(&dir, 1), &first).unwrap();
    journal_segment(&file, 4, vec![begin("d3"), finish("d3", "ok")]);

    let store = Store::connect(&url).await.unwrap();
    assert_eq!(outcome(&store, "d1").await, "ok");
    assert_eq!(outcome(&store, "d3").await, "ok");
    assert!(store.get("d2").await.is_err(), "the damaged record is not invented");
    assert!(segment_files(&dir).unwrap().is_empty());
    // The damaged segment is evidence: kept, under a name no later start applies.
    let kept: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains("1.log.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(&kept[0]).unwrap(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_nested_deeper_than_serde_jsons_limit_is_recovered_and_read_back() {
    // A rule's change wraps the value it changed a few levels down; a PATCH value near
    // serde_json's 128-level limit made a record that encoded but never decoded, and the
    // journal's reader took it for a torn end.
    let (url, file) = fresh_file().await;
    let deep = (0..100).fold(json!(false), |inner, _| json!({ "value": [inner] }));
    let Write::Finish(mut done) = finish("deep", "ok") else {
        unreachable!()
    };
    done.changes = json!([{ "rule": "N1", "pointer": "/Operations/0", "before": deep, "after": deep }]);
    journal_segment(&file, 1, vec![begin("deep"), Write::Finish(done), begin("after")]);

    let store = Store::connect(&url).await.unwrap();
    let exchange = store.get("deep").await.unwrap();
    assert_eq!(exchange.changes()[0]["before"], deep);
    assert_eq!(
        outcome(&store, "after").await,
        "in_flight",
        "records after it are applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_holds_the_journal_and_reads_its_own_writes() {
    let (url, file) = fresh_file().await;
    let holder = Store::connect(&url).await.unwrap().with_journal().unwrap();
    assert!(holder.journaled());
    // A second store on the same database cannot take it: it writes directly.
    let other = Store::connect(&url).await.unwrap().with_journal().unwrap();
    assert!(!other.journaled());

    for n in 0..300 {
        let id = format!("r{n:03}");
        holder.write_batch(vec![begin(&id)]).await.unwrap();
        holder.write_batch(vec![finish(&id, "ok")]).await.unwrap();
        // Read right after the write: it is there, complete.
        if n % 50 == 0 {
            assert_eq!(outcome(&holder, &id).await, "ok", "{id}");
        }
    }
    other.write_batch(vec![begin("direct")]).await.unwrap();
    let all = ExchangeQuery {
        limit: 1000,
        ..Default::default()
    };
    assert_eq!(holder.list(&all).await.unwrap().items.len(), 301);

    holder.close().await;
    assert!(holder.write_batch(vec![begin("late")]).await.is_err(), "closed");
    assert!(
        segment_files(&directory(&file)).unwrap().is_empty(),
        "a clean close leaves no segment"
    );
    // Released with the holder: the next process takes it.
    drop(holder);
    let next = Store::connect(&url).await.unwrap().with_journal().unwrap();
    assert!(next.journaled());
}

/// Segments rotate as they fill; once the journal is busy a spare is prepared and the applied
/// segments are recycled through it, and every record still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_that_cannot_be_retired_stays_in_line_and_is_retired_later() {
    // A failed retirement used to drop the segment from the journal's list: newer ones were
    // retired before it, and it stayed on disk for the next start to apply over them.
    let (url, file) = fresh_file().await;
    let dir = directory(&file);
    let store = Store::connect(&url).await.unwrap().with_journal().unwrap();
    // Where a retired segment would go, a directory: renaming onto it fails.
    fs::create_dir(spare_path(&dir)).unwrap();
    let body = "x".repeat(64 * 1024);
    let big = |id: String| {
        let Write::Begin(mut new) = begin(&id) else {
            unreachable!()
        };
        new.request_body = Some(body.clone());
        vec![Write::Begin(new), finish(&id, "ok")]
    };
    for n in 0..300 {
        store.write_batch(big(format!("kept{n:03}"))).await.unwrap();
    }
    store.caught_up().await;
    let stuck = segment_files(&dir).unwrap().len();
    assert!(stuck >= 3, "nothing could be retired ({stuck} segments)");

    fs::remove_dir(spare_path(&dir)).unwrap();
    store.write_batch(big("unstuck".into())).await.unwrap();
    store.caught_up().await;
    // Retiring follows the applying that `caught_up` waits for.
    for _ in 0..100 {
        if segment_files(&dir).unwrap().len() <= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        segment_files(&dir).unwrap().len() <= 2,
        "the held segments are retired, in order"
    );
    store.close().await;
    assert!(only_the_lock_is_left(&dir), "no segment was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_rotate_and_applied_ones_are_recycled() {
    let (url, file) = fresh_file().await;
    let dir = directory(&file);
    let store = Store::connect(&url).await.unwrap().with_journal().unwrap();
    // Busy enough for a spare.
    for batch in 0..11 {
        let writes = (0..100)
            .flat_map(|n| {
                let id = format!("small{batch:02}{n:03}");
                [begin(&id), finish(&id, "ok")]
            })
            .collect();
        store.write_batch(writes).await.unwrap();
    }
    store.caught_up().await;
    let body = "x".repeat(64 * 1024);
    let (mut most, mut spare_seen) = (0, false);
    for n in 0..400 {
        let id = format!("big{n:03}");
        let Write::Begin(mut new) = begin(&id) else {
            unreachable!()
        };
        new.request_body = Some(body.clone());
        store
            .write_batch(vec![Write::Begin(new), finish(&id, "ok")])
            .await
            .unwrap();
        most = most.max(segment_files(&dir).unwrap().len());
        spare_seen |= spare_path(&dir).exists();
    }
    // 400 × 64 KiB is three segments' worth; never more than a couple are on disk.
    assert!(most >= 2, "the journal rotated ({most} segments at most)");
    assert!(spare_seen, "a spare segment was prepared");
    store.caught_up().await;
    assert!(segment_files(&dir).unwrap().len() <= 2);
    let all = ExchangeQuery {
        limit: 1000,
        ..Default::default()
    };
    let mut count = 0;
    let mut page = store.list(&all).await.unwrap();
    loop {
        assert!(page.items.iter().all(|e| e.outcome() == "ok"));
        count += page.items.len();
        let Some(cursor) = page.next_cursor else { break };
        page = store
            .list(&ExchangeQuery {
                cursor: Some(cursor),
                ..all.clone()
            })
            .await
            .unwrap();
    }
    assert_eq!(count, 1100 + 400);
    store.close().await;
    assert!(only_the_lock_is_left(&dir), "a clean close leaves only the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_wait_while_unapplied_records_fill_their_bytes_and_go_on_once_applied() {
    // The bound was by count only: 8192 records of up to three bodies of a MiB each.
    let (url, file) = fresh_file().await;
    let store = Store::connect(&url).await.unwrap().with_journal().unwrap();
    let journal = Arc::clone(store.journal().unwrap());
    lock(&journal.applier.queue).max_bytes = 64 * 1024;
    let large = |id: &str| {
        let mut write = begin(id);
        if let Write::Begin(new) = &mut write {
            new.request_body = Some("x".repeat(20 * 1024));
        }
        write
    };
    // SQLite is stalled: another connection holds its write lock, so nothing is applied.
    let blocker = rusqlite::Connection::open(&file).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    for n in 0..3 {
        store
            .write_batch_blocking(vec![large(&format!("b{n}"))], Durability::Power)
            .unwrap();
    }
    assert!(lock(&journal.applier.queue).bytes > 60 * 1024);

    let fourth = {
        let store = store.clone();
        std::thread::spawn(move || store.write_batch_blocking(vec![large("b3")], Durability::Power))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !fourth.is_finished(),
        "a fourth record past the bytes bound waits for room"
    );
    blocker.execute_batch("COMMIT").unwrap();
    fourth.join().unwrap().expect("appended once the others are applied");
    for n in 0..4 {
        assert_eq!(outcome(&store, &format!("b{n}")).await, "in_flight");
    }
    assert!(lock(&journal.applier.queue).bytes <= 64 * 1024);
}

/// A journal says which format it is in: this binary reads its own and format 1's (no format
/// file, no `client`; nor `rules_version`, which format 2 may lack too), and refuses a newer one by name instead of reading it as damage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_in_a_newer_format_is_refused_by_name_and_an_older_one_is_read() {
    let (url, file) = fresh_file().await;
    let dir = directory(&file);
    // Format 1: no format file, records without `client`.
    let mut old_record = serde_json::to_value(begin("u1")).unwrap();
    old_record["Begin"].as_object_mut().unwrap().remove("client");
    old_record["Begin"].as_object_mut().unwrap().remove("rules_version");
    fs::create_dir_all(&dir).unwrap();
    let mut segment = Vec::new();
    segment.extend_from_slice(&raw_frame(1, old_record.to_string().as_bytes()));
    fs::write(segment_path(&dir, 1), &segment).unwrap();
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(outcome(&store, "u1").await, "in_flight");
    assert_eq!(store.get("u1").await.unwrap().begun.rules_version, None);
    drop(store);

    // A journal the store holds says its format.
    let store = Store::connect(&url).await.unwrap().with_journal().unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("format")).unwrap(),
        format!("scimtrail-journal {FORMAT}\n")
    );
    store.close().await;
    drop(store);

    // A newer one is refused, saying what to do; its records stay.
    journal_segment(&file, 1, vec![begin("u2")]);
    fs::write(dir.join("format"), "scimtrail-journal 99\n").unwrap();
    let store = Store::connect(&url).await.unwrap();
    let error = store.migrate().await.unwrap_err().to_string();
    assert!(
        error.contains("format 99") && error.contains("newer scimtrail"),
        "{error}"
    );
    assert!(store.clone().with_journal().is_err());
    assert!(segment_path(&dir, 1).exists(), "its records stay where they are");
}

/// A backup of a live store holds what is journaled and not yet applied: the database's
/// snapshot lacks it, the copied journal has it, and opening the copy applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_store_holds_what_is_journaled_and_not_yet_applied() {
    let (url, file) = fresh_file().await;
    let store = Store::connect(&url).await.unwrap().with_journal().unwrap();
    let applied: Vec<Write> = (0..10).map(|n| begin(&format!("applied-{n}"))).collect();
    store.write_batch(applied).await.unwrap();
    assert_eq!(outcome(&store, "applied-9").await, "in_flight");
    // Another connection holds SQLite's write lock: what comes now stays in the journal.
    let blocker = rusqlite::Connection::open(&file).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let journaled: Vec<Write> = (0..10).map(|n| begin(&format!("journaled-{n}"))).collect();
    store.write_batch(journaled).await.unwrap();

    let target = file.with_extension("backup.db");
    let backup = store.backup_to(&target).await.unwrap();
    blocker.execute_batch("COMMIT").unwrap();
    assert!(backup.segments >= 1 && backup.database_bytes > 0, "{backup:?}");
    assert!(store.backup_to(&target).await.is_err(), "never over an existing file");
    let snapshot = rusqlite::Connection::open(&target).unwrap();
    let in_snapshot: i64 = snapshot
        .query_row("SELECT COUNT(*) FROM exchanges", [], |row| row.get(0))
        .unwrap();
    assert_eq!(in_snapshot, 10, "the database alone lacks what was only journaled");
    drop(snapshot);

    let copy = Store::connect(&format!("sqlite://{}", target.display())).await.unwrap();
    copy.migrate().await.unwrap();
    for n in 0..10 {
        assert_eq!(outcome(&copy, &format!("applied-{n}")).await, "in_flight");
        assert_eq!(outcome(&copy, &format!("journaled-{n}")).await, "in_flight");
    }
    store.close().await;
}

/// A store at `process` durability whose syncer waits an hour: here nothing but an append at
/// `power`, a rotation or the close syncs, so what each step leaves unsynced is certain.
async fn process_store_syncing_hourly() -> (Store, Arc<Journal>, PathBuf) {
    let (url, file) = fresh_file().await;
    let store = Store::connect_with(&url, Durability::Process)
        .await
        .unwrap()
        .with_sync_interval(Duration::from_secs(3600))
        .with_journal()
        .unwrap();
    let journal = Arc::clone(store.journal().unwrap());
    (store, journal, file)
}

fn syncs(journal: &Journal) -> u64 {
    journal.syncer.syncs.load(Ordering::Acquire)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_batch_returns_synced_and_a_process_batch_returns_before_its_sync() {
    let (store, journal, _) = process_store_syncing_hourly().await;
    assert_eq!(store.durability(), Durability::Process);
    // (the batch, its level, then: syncs so far, records journaled and not synced). The
    // recorder wakes a batch's waiters when the append returns: a `power` batch's only once
    // it is synced, with whatever `process` batches came before it.
    let steps: [(Vec<Write>, Durability, u64, u64); 5] = [
        (vec![begin("p1"), begin("p2")], Durability::Process, 0, 2),
        (vec![finish("p1", "ok")], Durability::Process, 0, 3),
        (vec![begin("w1")], Durability::Power, 1, 0),
        (vec![finish("w1", "ok"), finish("p2", "ok")], Durability::Process, 1, 2),
        (vec![begin("w2"), finish("w2", "ok")], Durability::Power, 2, 0),
    ];
    for (index, (writes, durability, synced, unsynced)) in steps.into_iter().enumerate() {
        let writer = store.clone();
        tokio::task::spawn_blocking(move || writer.write_batch_blocking(writes, durability))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (syncs(&journal), store.unsynced_records()),
            (synced, unsynced),
            "after step {index} ({durability})"
        );
    }
    // `write_batch` commits at the store's level.
    store.write_batch(vec![begin("p3")]).await.unwrap();
    assert_eq!((syncs(&journal), store.unsynced_records()), (2, 1));
    // The close syncs what is left.
    store.close().await;
    assert_eq!((syncs(&journal), store.unsynced_records()), (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_batches_are_synced_by_the_syncer_within_the_interval() {
    let (store, journal, _) = process_store_syncing_hourly().await;
    store.write_batch(vec![begin("q0")]).await.unwrap();
    assert_eq!(store.unsynced_records(), 1, "an hour is not up");
    // The syncer, waiting out the hour, takes the new interval at once.
    let store = store.with_sync_interval(Duration::from_millis(10));
    for round in 1..=3 {
        if round > 1 {
            store
                .write_batch(vec![begin(&format!("q{round}")), begin(&format!("r{round}"))])
                .await
                .unwrap();
        }
        // Generous: the machine may be busy; the point is that nothing else syncs here.
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.unsynced_records() > 0 {
            assert!(Instant::now() < deadline, "round {round}: never synced");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(syncs(&journal), round, "round {round}: one sync by the syncer");
    }
    store.close().await;
    assert_eq!(syncs(&journal), 3, "nothing was left to sync at the close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_syncs_the_segment_it_leaves() {
    let (store, journal, file) = process_store_syncing_hourly().await;
    let dir = directory(&file);
    let body = "x".repeat(1 << 20);
    let mut rotated = false;
    for n in 1..=9_u64 {
        let Write::Begin(mut new) = begin(&format!("big{n}")) else {
            unreachable!()
        };
        new.request_body = Some(body.clone());
        store.write_batch(vec![Write::Begin(new)]).await.unwrap();
        let segments = lock(&journal.segments.on_disk).len();
        if segments > 1 && !rotated {
            rotated = true;
            // The syncer's note must name the current segment: the one left is synced.
            assert_eq!((syncs(&journal), store.unsynced_records()), (1, 0), "append {n}");
        } else if !rotated {
            assert_eq!((syncs(&journal), store.unsynced_records()), (0, n), "append {n}");
        }
    }
    assert!(rotated, "9 MiB fill a segment");
    store.close().await;
    assert_eq!(store.unsynced_records(), 0);
    assert!(only_the_lock_is_left(&dir));
}

#[test]
fn a_batch_is_as_durable_as_its_most_durable_write() {
    use Durability::{Power, Process};
    let cases: [(&[Durability], Durability); 5] = [
        (&[], Process),
        (&[Process], Process),
        (&[Power], Power),
        (&[Process, Process, Power, Process], Power),
        (&[Power, Process], Power),
    ];
    for (levels, batch) in cases {
        assert_eq!(Durability::of_batch(levels.iter().copied()), batch, "{levels:?}");
    }
}
