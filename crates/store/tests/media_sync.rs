//! Photos, uploads, sync mutations, the pull feed and the coordinator reads, each test
//! on SQLite and on PostgreSQL with a fresh database (feed ordering under concurrent
//! commits is PostgreSQL-only: SQLite serialises writers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baithak_domain::import::parse_area_csv;
use baithak_domain::{AreaId, AreaPath, Role, UserId};
use baithak_store::{
    FeedViewer, FeedbackFilter, FeedbackWrite, LedgerWrite, MeetingApplied, MeetingDecision,
    MeetingFilter, MeetingWrite, NewChange, NewMedia, NewReview, NewUpload, NewUser, QuotaDay,
    Store, StoreError, SyncTx, UpsertOutcome, now_utc, phash_distance,
};
use baithak_test_support::{TestDb, both_backends};
use chrono::{Duration, NaiveDate, NaiveDateTime};
use std::collections::BTreeSet;
use std::sync::mpsc;
use uuid::Uuid;

const TREE: &str = "code,name,kind,parent_code
UP,उत्तर प्रदेश,state,
LKO,Lucknow,division,UP
KNP,Kanpur,division,UP
LKO-S,Lucknow seat,constituency,LKO
LKO-A1,Assembly 1,assembly,LKO-S
LKO-B1,Booth 1,booth,LKO-A1
KNP-S,Kanpur seat,constituency,KNP
";

fn seed(store: &Store) {
    let rows = parse_area_csv(TREE.as_bytes()).unwrap();
    store.import_areas(&rows, None, None, &|_| {}).unwrap();
}

fn add_user(store: &Store, login: &str, role: Role, area: &str) -> baithak_store::User {
    let area = store.area_by_code(area).unwrap();
    store
        .create_user(
            &NewUser {
                login: login.into(),
                name: format!("User {login}"),
                role,
                area_id: area.id,
                password_hash: "hash".into(),
            },
            None,
        )
        .unwrap()
}

fn area(store: &Store, code: &str) -> (AreaId, AreaPath) {
    let a = store.area_by_code(code).unwrap();
    (a.id, a.path)
}

fn sha(n: u64) -> String {
    format!("{n:064x}")
}

/// A fixed, well-mixed 64-bit hash to flip bits of.
const BASE: u64 = 0x9e37_79b9_7f4a_7c15;

/// `base` with the lowest `per_band[k]` bits of band `k` flipped.
fn flipped(base: u64, per_band: [u32; 4]) -> u64 {
    let mut h = base;
    for (k, n) in per_band.iter().enumerate() {
        for bit in 0..*n {
            h ^= 1u64 << (16 * k as u32 + bit);
        }
    }
    h
}

fn media(sha256: &str, phash: u64, by: UserId) -> NewMedia {
    NewMedia {
        sha256: sha256.to_owned(),
        media_type: "image/jpeg".into(),
        bytes: 157_000,
        width: 640,
        height: 480,
        taken_at: Some(at(2026, 11, 23, 4, 30)),
        taken_at_local: None,
        gps_lat: Some(26.85),
        gps_lon: Some(80.95),
        orientation: 1,
        phash,
        uploaded_by: by,
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, 0)
        .unwrap()
}

fn meeting(incharge: UserId, area_id: AreaId, photos: &[String]) -> MeetingWrite {
    MeetingWrite {
        id: Uuid::now_v7(),
        incharge_id: incharge,
        area_id,
        kind: "small_meeting".into(),
        occurred_at: at(2026, 11, 23, 4, 35),
        occurred_offset_minutes: 330,
        ended_at: None,
        local_day: "2026-11-23".into(),
        received_at: now_utc(),
        lat: Some(26.85),
        lon: Some(80.95),
        accuracy_m: Some(12.0),
        attendee_count: 14,
        topic: "बूथ समिति".into(),
        notes: "".into(),
        photos: photos.to_vec(),
        expected_version: None,
    }
}

fn ledger(user: UserId, hash: &str) -> LedgerWrite {
    LedgerWrite {
        device_id: "dev-1".into(),
        mutation_id: Uuid::now_v7(),
        user_id: user,
        content_hash: hash.into(),
    }
}

fn result_json(_: &mut dyn SyncTx, a: &MeetingApplied) -> Result<String, StoreError> {
    Ok(
        serde_json::json!({"status": "applied", "entity_id": a.meeting_id, "version": a.version})
            .to_string(),
    )
}

fn applied(out: UpsertOutcome<MeetingApplied>) -> (MeetingApplied, String) {
    match out {
        UpsertOutcome::Applied { applied, result } => (applied, result),
        other => panic!("expected Applied, got {other:?}"),
    }
}

fn upsert(s: &Store, w: &MeetingWrite, l: &LedgerWrite) -> UpsertOutcome<MeetingApplied> {
    s.upsert_meeting(w, l, result_json).unwrap()
}

fn audit_len(s: &Store) -> usize {
    s.audit_page(0, 10_000).unwrap().len()
}

both_backends!(fn record_media_is_idempotent_and_race_free(db) {
    let s = db.store.clone();
    seed(&s);
    let ic = add_user(&s, "ic1", Role::Incharge, "LKO-B1");
    let other = add_user(&s, "ic2", Role::Incharge, "KNP-S");
    let (rec, created) = s.record_media(&media(&sha(1), BASE, ic.id)).unwrap();
    assert!(created);
    assert_eq!(rec.phash, BASE);
    assert_eq!(rec.taken_at, Some(at(2026, 11, 23, 4, 30)));
    let (again, created) = s.record_media(&media(&sha(1), BASE, other.id)).unwrap();
    assert!(!created);
    assert_eq!(again.uploaded_by, ic.id, "the first uploader stays");
    assert_eq!(s.media(&sha(1)).unwrap(), Some(rec));
    assert_eq!(s.media(&sha(2)).unwrap(), None);
    // High bit set: stored as a negative i64, read back as the same u64.
    let high = u64::MAX - 5;
    assert_eq!(s.record_media(&media(&sha(3), high, ic.id)).unwrap().0.phash, high);
    let bad = s.record_media(&media("ABC", BASE, ic.id));
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");

    let before = audit_len(&s);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || s.record_media(&media(&sha(99), BASE ^ 0xff, ic.id)))
        })
        .collect();
    let created: usize = handles
        .into_iter()
        .map(|h| usize::from(h.join().unwrap().unwrap().1))
        .sum();
    assert_eq!(created, 1);
    assert_eq!(audit_len(&s), before + 1, "one media.upload entry");
    assert!(s.audit_verify().unwrap().ok);
});

both_backends!(fn missing_media_keeps_input_order(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    s.record_media(&media(&sha(1), BASE, ic.id)).unwrap();
    s.record_media(&media(&sha(3), BASE, ic.id)).unwrap();
    let asked = [sha(4), sha(1), sha(2), sha(3), sha(4)];
    assert_eq!(s.missing_media(&asked).unwrap(), [sha(4), sha(2)]);
    assert!(s.missing_media(&[sha(1)]).unwrap().is_empty());
    assert!(s.missing_media(&[]).unwrap().is_empty());
});

both_backends!(fn media_near_finds_within_distance_through_the_bands(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let cases: [(u64, [u32; 4]); 8] = [
        (10, [0, 0, 0, 0]),  // the probe itself
        (11, [3, 3, 2, 2]),  // 10, spread over all four bands
        (12, [3, 3, 3, 2]),  // 11
        (13, [10, 0, 0, 0]), // 10, all in one band
        (14, [1, 1, 1, 1]),  // 4
        (15, [4, 4, 4, 4]),  // 16
        (16, [2, 3, 3, 3]),  // 11
        (17, [0, 0, 0, 9]),  // 9
    ];
    for (n, flips) in cases {
        let h = flipped(BASE, flips);
        assert_eq!(phash_distance(BASE, h), flips.iter().sum::<u32>());
        s.record_media(&media(&sha(n), h, ic.id)).unwrap();
    }
    let near = s.media_near(BASE, 10, Some(&sha(10))).unwrap();
    assert_eq!(
        near,
        vec![(sha(14), 4), (sha(17), 9), (sha(11), 10), (sha(13), 10)]
    );
    let with_self = s.media_near(BASE, 10, None).unwrap();
    assert_eq!(with_self[0], (sha(10), 0));
    assert_eq!(s.media_near(BASE, 0, None).unwrap(), vec![(sha(10), 0)]);
    let wide = s.media_near(BASE, 16, None).unwrap();
    assert_eq!(wide.len(), 8);
    assert!(matches!(s.media_near(BASE, 33, None), Err(StoreError::Invalid(_))));

    // Against a brute-force scan of random hashes, at a radius that is chunked.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut all = Vec::new();
    for n in 0..300u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Keep half of them close to BASE so there is something to find.
        let h = if n % 2 == 0 { x } else { BASE ^ (x & x >> 3 & x >> 7 & x >> 11) };
        s.record_media(&media(&sha(1000 + n), h, ic.id)).unwrap();
        all.push((sha(1000 + n), h));
    }
    for d in [6, 13, 24] {
        let got: BTreeSet<String> = s
            .media_near(BASE, d, None)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .filter(|s| s.as_str() >= sha(1000).as_str())
            .collect();
        let want: BTreeSet<String> = all
            .iter()
            .filter(|(_, h)| phash_distance(BASE, *h) <= d)
            .map(|(s, _)| s.clone())
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "distance {d}");
    }
});

both_backends!(fn media_visibility_follows_uploader_meetings_and_scope(db) {
    let s = &db.store;
    seed(s);
    let ic1 = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let ic2 = add_user(s, "ic2", Role::Incharge, "LKO-B1");
    let coord = add_user(s, "coord", Role::Coordinator, "LKO");
    let knp = add_user(s, "coord.knp", Role::Coordinator, "KNP");
    s.record_media(&media(&sha(1), BASE, ic1.id)).unwrap();
    assert!(s.media_visible(&sha(1), ic1.id, None).unwrap());
    assert!(!s.media_visible(&sha(1), ic2.id, None).unwrap());
    assert!(!s.media_visible(&sha(1), coord.id, Some(&coord.area_path)).unwrap());
    // ic2 uses the photo in a meeting: now ic2 and the coordinator see it.
    let (b1, _) = area(s, "LKO-B1");
    applied(upsert(s, &meeting(ic2.id, b1, &[sha(1)]), &ledger(ic2.id, "h")));
    assert!(s.media_visible(&sha(1), ic2.id, None).unwrap());
    assert!(s.media_visible(&sha(1), coord.id, Some(&coord.area_path)).unwrap());
    assert!(!s.media_visible(&sha(1), knp.id, Some(&knp.area_path)).unwrap());
    assert!(!s.media_visible(&sha(2), ic1.id, None).unwrap());
});

both_backends!(fn uploads_advance_by_compare_and_set_and_expire(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let other = add_user(s, "ic2", Role::Incharge, "LKO-B1");
    let now = now_utc();
    let up = s
        .create_upload(&NewUpload { user_id: ic.id, sha256: sha(7), length: 1000, expires_at: now + Duration::hours(24) })
        .unwrap();
    assert_eq!((up.received, up.length), (0, 1000));
    assert_eq!(s.upload(up.id, ic.id).unwrap(), up);
    assert!(matches!(s.upload(up.id, other.id), Err(StoreError::NotFound)));
    assert!(matches!(s.upload(Uuid::now_v7(), ic.id), Err(StoreError::NotFound)));

    let step = s.advance_upload(up.id, ic.id, 0, 400, now).unwrap();
    assert_eq!(step.received, 400);
    // A replayed first chunk: the offset moved on.
    match s.advance_upload(up.id, ic.id, 0, 400, now) {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("400"), "{msg}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(s.advance_upload(up.id, other.id, 400, 500, now), Err(StoreError::NotFound)));
    assert!(matches!(s.advance_upload(up.id, ic.id, 400, 1001, now), Err(StoreError::Invalid(_))));
    assert!(matches!(s.advance_upload(up.id, ic.id, 400, 300, now), Err(StoreError::Invalid(_))));
    let done = s.advance_upload(up.id, ic.id, 400, 1000, now).unwrap();
    assert!(done.is_complete());
    // Recording the finished upload's photo forgets the upload in the same commit.
    let (rec, created) = s.record_uploaded_media(&media(&sha(7), BASE, ic.id), up.id).unwrap();
    assert!(created);
    assert_eq!(rec.sha256, sha(7));
    assert!(matches!(s.upload(up.id, ic.id), Err(StoreError::NotFound)));
    // A photo that fails to record leaves its upload for the client's retry.
    let kept = s
        .create_upload(&NewUpload { user_id: ic.id, sha256: sha(9), length: 10, expires_at: now + Duration::hours(24) })
        .unwrap();
    // (An uploader the database does not know fails inside the transaction.)
    assert!(s.record_uploaded_media(&media(&sha(9), BASE, UserId::new()), kept.id).is_err());
    assert_eq!(s.upload(kept.id, ic.id).unwrap(), kept);
    assert!(s.media(&sha(9)).unwrap().is_none());
    s.delete_upload(kept.id).unwrap();

    let stale = s
        .create_upload(&NewUpload { user_id: ic.id, sha256: sha(8), length: 10, expires_at: now - Duration::minutes(1) })
        .unwrap();
    assert!(matches!(s.upload(stale.id, ic.id), Err(StoreError::NotFound)));
    assert!(matches!(s.advance_upload(stale.id, ic.id, 0, 5, now), Err(StoreError::NotFound)));
    let expired = s.expired_uploads(now, 10).unwrap();
    assert_eq!(expired.iter().map(|u| u.id).collect::<Vec<_>>(), [stale.id]);
    s.delete_upload(stale.id).unwrap();
    s.delete_upload(stale.id).unwrap();
    assert!(s.expired_uploads(now + Duration::days(2), 10).unwrap().is_empty());
    assert!(matches!(
        s.create_upload(&NewUpload { user_id: ic.id, sha256: "x".into(), length: 1, expires_at: now }),
        Err(StoreError::Invalid(_))
    ));
});

both_backends!(fn upsert_meeting_applies_once_and_guards_edits(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let intruder = add_user(s, "ic2", Role::Incharge, "LKO-B1");
    let coord = add_user(s, "coord", Role::Coordinator, "LKO");
    let (b1, b1_path) = area(s, "LKO-B1");
    let (a1, _) = area(s, "LKO-A1");

    // Photos not uploaded yet: nothing is written, not even the ledger.
    let w = meeting(ic.id, b1, &[sha(1), sha(2)]);
    let l = ledger(ic.id, "hash-1");
    let audit_before = audit_len(s);
    assert_eq!(upsert(s, &w, &l), UpsertOutcome::MissingMedia(vec![sha(1), sha(2)]));
    assert!(matches!(s.meeting(w.id), Err(StoreError::NotFound)));
    assert_eq!(s.ledger_get("dev-1", l.mutation_id).unwrap(), None);
    assert_eq!(audit_len(s), audit_before);

    s.record_media(&media(&sha(1), BASE, ic.id)).unwrap();
    s.record_media(&media(&sha(2), !BASE, ic.id)).unwrap();
    let (a, result) = applied(upsert(s, &w, &l));
    assert!(a.created && a.changed);
    assert_eq!((a.version, a.record_seq), (1, 1), "the refused push used no record_seq");
    assert_eq!(a.area_path, b1_path);
    let stored = s.meeting(w.id).unwrap();
    assert_eq!(stored.photos, [sha(1), sha(2)]);
    assert_eq!(stored.topic, "बूथ समिति");
    assert_eq!(stored.occurred_at, w.occurred_at);
    assert_eq!((stored.counted, stored.flags.as_str(), stored.version), (false, "[]", 1));
    let entry = s.ledger_get("dev-1", l.mutation_id).unwrap().unwrap();
    assert_eq!((entry.content_hash.as_str(), entry.result.as_str(), entry.user_id), ("hash-1", result.as_str(), ic.id));

    // Replays: same content → the stored result; other content or user → conflict.
    assert_eq!(upsert(s, &w, &l), UpsertOutcome::Duplicate(result.clone()));
    let mut other_hash = l.clone();
    other_hash.content_hash = "hash-2".into();
    assert_eq!(upsert(s, &w, &other_hash), UpsertOutcome::Conflict);
    let mut other_user = l.clone();
    other_user.user_id = intruder.id;
    assert_eq!(upsert(s, &w, &other_user), UpsertOutcome::Conflict);

    // An edit under a new mutation id bumps the version and moves the day.
    let mut edit = w.clone();
    edit.photos = vec![sha(2)];
    edit.area_id = a1;
    edit.occurred_at = at(2026, 11, 23, 20, 0);
    edit.local_day = "2026-11-24".into();
    edit.expected_version = Some(1);
    let (e, _) = applied(upsert(s, &edit, &ledger(ic.id, "hash-3")));
    assert!(!e.created && e.changed);
    assert_eq!((e.version, e.record_seq), (2, 1));
    assert_eq!(e.previous_local_day.as_deref(), Some("2026-11-23"));
    assert_eq!(e.previous_photos, [sha(1), sha(2)]);
    let stored = s.meeting(w.id).unwrap();
    assert_eq!((stored.version, stored.photos.clone(), stored.local_day.as_str()), (2, vec![sha(2)], "2026-11-24"));
    assert_eq!(stored.received_at, w.received_at, "an edit keeps the first receipt time");
    // The same content again changes nothing.
    edit.expected_version = None;
    let (same, _) = applied(upsert(s, &edit, &ledger(ic.id, "hash-4")));
    assert!(!same.changed);
    assert_eq!(same.version, 2);
    // A stale version is refused.
    edit.expected_version = Some(1);
    edit.topic = "changed".into();
    assert_eq!(
        upsert(s, &edit, &ledger(ic.id, "hash-5")),
        UpsertOutcome::VersionConflict { current_version: 2, decided: false }
    );
    // Another in-charge cannot edit it, even with photos missing.
    let mut hijack = edit.clone();
    hijack.incharge_id = intruder.id;
    hijack.photos = vec![sha(50)];
    assert_eq!(upsert(s, &hijack, &ledger(intruder.id, "hash-6")), UpsertOutcome::Forbidden);

    // A failing hook rolls everything back.
    let mut fresh = meeting(ic.id, b1, &[sha(1)]);
    fresh.topic = "rolled back".into();
    let lf = ledger(ic.id, "hash-7");
    let err = s.upsert_meeting(&fresh, &lf, |_, _| Err(StoreError::Invalid("boom".into())));
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    assert!(matches!(s.meeting(fresh.id), Err(StoreError::NotFound)));
    assert_eq!(s.ledger_get("dev-1", lf.mutation_id).unwrap(), None);
    // Unknown area.
    let nowhere = meeting(ic.id, AreaId::new(), &[]);
    assert!(matches!(s.upsert_meeting(&nowhere, &ledger(ic.id, "h"), result_json), Err(StoreError::Invalid(_))));

    // After a decision the author can no longer edit.
    let decided = s
        .decide_meeting(
            &MeetingDecision {
                meeting_id: w.id,
                decision: "rejected".into(),
                reason: "blurred photo".into(),
                actor: coord.id,
                scope: Some(coord.area_path.clone()),
                now: now_utc(),
            },
            |_, m| {
                assert_eq!(m.decision.as_deref(), Some("rejected"));
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(decided.decided_by, Some(coord.id));
    edit.expected_version = Some(2);
    assert_eq!(
        upsert(s, &edit, &ledger(ic.id, "hash-8")),
        UpsertOutcome::VersionConflict { current_version: 2, decided: true }
    );
    let actions: Vec<String> = s.audit_page(0, 1000).unwrap().into_iter().map(|e| e.action).collect();
    let tail: Vec<&str> = actions.iter().rev().take(4).rev().map(String::as_str).collect();
    assert_eq!(tail, ["media.upload", "meeting.create", "meeting.edit", "meeting.review"]);
    assert!(s.audit_verify().unwrap().ok);
});

both_backends!(fn concurrent_retries_of_one_mutation_apply_once(db) {
    let s = db.store.clone();
    seed(&s);
    let ic = add_user(&s, "ic1", Role::Incharge, "LKO-B1");
    let (b1, _) = area(&s, "LKO-B1");
    s.record_media(&media(&sha(1), BASE, ic.id)).unwrap();
    let w = meeting(ic.id, b1, &[sha(1)]);
    let l = ledger(ic.id, "h");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (s, w, l) = (s.clone(), w.clone(), l.clone());
            std::thread::spawn(move || s.upsert_meeting(&w, &l, result_json))
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect();
    let applied_n = outcomes.iter().filter(|o| matches!(o, UpsertOutcome::Applied { .. })).count();
    let dup_n = outcomes.iter().filter(|o| matches!(o, UpsertOutcome::Duplicate(_))).count();
    assert_eq!((applied_n, dup_n), (1, 7), "{outcomes:?}");
    assert_eq!(s.meeting(w.id).unwrap().version, 1);
});

both_backends!(fn the_hook_evaluates_in_the_same_transaction(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let coord = add_user(s, "coord", Role::Coordinator, "LKO");
    let (b1, b1_path) = area(s, "LKO-B1");
    s.record_media(&media(&sha(1), BASE, ic.id)).unwrap();
    s.record_media(&media(&sha(2), flipped(BASE, [2, 2, 1, 1]), ic.id)).unwrap();

    // A toy evaluation: a meeting counts unless an earlier meeting used a photo.
    let evaluate = |tx: &mut dyn SyncTx, a: &MeetingApplied| -> Result<String, StoreError> {
        let day = tx.day_meetings(a.incharge_id, &a.local_day)?;
        let mut counted = 0;
        for dm in &day {
            let photos: Vec<(String, u64)> =
                dm.media.iter().map(|m| (m.sha256.clone(), m.phash)).collect();
            let dups = tx.earlier_photo_uses(dm.meeting.id, dm.meeting.record_seq, &photos, 10)?;
            let ok = dups.is_empty() && !photos.is_empty();
            let flags = if ok {
                "[]".to_owned()
            } else {
                serde_json::json!([{"code": "duplicate_photo", "related_meeting_id": dups.first().map(|d| d.other_meeting_id)}]).to_string()
            };
            if tx.set_meeting_evaluation(dm.meeting.id, ok, &flags)? && !ok {
                tx.append_change(&NewChange {
                    kind: "meeting.flagged".into(),
                    user_id: Some(a.incharge_id),
                    area_path: Some(dm.meeting.area_path.clone()),
                    entity_id: dm.meeting.id.to_string(),
                    data: flags.clone(),
                })?;
            }
            counted += i32::from(ok);
        }
        let q = QuotaDay {
            incharge_id: a.incharge_id,
            day: a.local_day.clone(),
            counted,
            submitted: day.len() as i32,
            status: (if counted >= 4 { "met" } else if counted > 0 { "short" } else { "none" }).into(),
            target_met: counted >= 5,
            is_final: false,
            updated_at: now_utc(),
        };
        if tx.put_quota_day(&q)? {
            tx.append_change(&NewChange {
                kind: "quota.day".into(),
                user_id: Some(a.incharge_id),
                area_path: Some(a.area_path.clone()),
                entity_id: format!("{}:{}", a.incharge_id, a.local_day),
                data: serde_json::json!({"counted": counted}).to_string(),
            })?;
        }
        Ok(serde_json::json!({"counted": counted}).to_string())
    };

    let m1 = meeting(ic.id, b1, &[sha(1)]);
    let (_, r1) = applied(s.upsert_meeting(&m1, &ledger(ic.id, "1"), evaluate).unwrap());
    assert_eq!(r1, r#"{"counted":1}"#);
    let mut m2 = meeting(ic.id, b1, &[sha(2)]);
    m2.occurred_at += Duration::hours(1);
    let (_, r2) = applied(s.upsert_meeting(&m2, &ledger(ic.id, "2"), evaluate).unwrap());
    assert_eq!(r2, r#"{"counted":1}"#, "the second photo is a near copy");
    let first = s.meeting(m1.id).unwrap();
    let second = s.meeting(m2.id).unwrap();
    assert!(first.counted && !second.counted);
    assert!(second.flags.contains(&m1.id.to_string()), "{}", second.flags);
    let days = s.quota_days(&[ic.id], "2026-11-01", "2026-11-30").unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!((days[0].counted, days[0].submitted, days[0].status.as_str()), (1, 2, "short"));
    let cells: Vec<baithak_store::QuotaCell> = days.iter().cloned().map(Into::into).collect();
    assert_eq!(s.quota_days_in_scope(&coord.area_path, "2026-11-23", "2026-11-23").unwrap(), cells);
    assert!(s.quota_days_in_scope(&area(s, "KNP").1, "2026-11-01", "2026-11-30").unwrap().is_empty());
    let feed = s
        .changes_after(0, &FeedViewer { user_id: ic.id, role_sees_scope: false, scope_path: b1_path.clone() }, 100)
        .unwrap();
    let kinds: Vec<&str> = feed.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["quota.day", "meeting.flagged", "quota.day"]);
    assert!(feed.windows(2).all(|w| w[0].seq < w[1].seq));
    // Unchanged facts are not written again.
    assert!(!s.sync_tx(|tx| tx.put_quota_day(&days[0])).unwrap());
    let mut moved = days[0].clone();
    moved.is_final = true;
    assert!(s.sync_tx(|tx| tx.put_quota_day(&moved)).unwrap());
    assert!(s.quota_days(&[ic.id], "2026-11-23", "2026-11-23").unwrap()[0].is_final);
    let pairs = s.sync_tx(|tx| tx.meeting_days(None, "2026-11-01", "2026-11-30")).unwrap();
    assert_eq!(pairs, [(ic.id, "2026-11-23".to_owned())]);
    let around = s
        .sync_tx(|tx| tx.meetings_between(ic.id, at(2026, 11, 23, 0, 0), at(2026, 11, 23, 5, 0)))
        .unwrap();
    assert_eq!(around.len(), 1);
    assert_eq!(around[0].media[0].sha256, sha(1));
});

both_backends!(fn a_days_meetings_come_with_their_photos_in_order(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let other = add_user(s, "ic2", Role::Incharge, "LKO-B1");
    let (b1, _) = area(s, "LKO-B1");
    for n in 1..=5 {
        s.record_media(&media(&sha(n), BASE ^ n, ic.id)).unwrap();
    }
    // Photo positions that are not the SHA-256 order, and a photo two meetings share.
    let mut first = meeting(ic.id, b1, &[sha(3), sha(1), sha(2)]);
    first.occurred_at += Duration::hours(2);
    let second = meeting(ic.id, b1, &[sha(2)]);
    let mut next_day = meeting(ic.id, b1, &[sha(4)]);
    next_day.occurred_at += Duration::days(1);
    next_day.local_day = "2026-11-24".into();
    let someone_else = meeting(other.id, b1, &[sha(5)]);
    for (i, w) in [&first, &second, &next_day, &someone_else].into_iter().enumerate() {
        applied(upsert(s, w, &ledger(w.incharge_id, &i.to_string())));
    }

    let day = s.sync_tx(|tx| tx.day_meetings(ic.id, "2026-11-23")).unwrap();
    let ids: Vec<Uuid> = day.iter().map(|d| d.meeting.id).collect();
    assert_eq!(ids, [second.id, first.id], "by occurred_at");
    for dm in &day {
        let facts: Vec<&str> = dm.media.iter().map(|m| m.sha256.as_str()).collect();
        assert_eq!(facts, dm.meeting.photos, "facts line up with the photos");
    }
    assert_eq!(day[1].meeting.photos, [sha(3), sha(1), sha(2)]);
    assert_eq!(day[1].media[0].phash, BASE ^ 3);
    assert_eq!(day[0].meeting.photos, [sha(2)]);

    let around = s
        .sync_tx(|tx| tx.meetings_between(ic.id, at(2026, 11, 23, 0, 0), at(2026, 11, 24, 0, 0)))
        .unwrap();
    let around: Vec<(Uuid, usize)> = around.iter().map(|d| (d.meeting.id, d.media.len())).collect();
    assert_eq!(around, [(second.id, 1), (first.id, 3)]);
});

both_backends!(fn earlier_and_later_photo_uses_exact_and_near(db) {
    let s = &db.store;
    seed(s);
    let ic1 = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let ic2 = add_user(s, "ic2", Role::Incharge, "KNP-S");
    let (b1, _) = area(s, "LKO-B1");
    let (knp, _) = area(s, "KNP-S");
    let p1 = BASE;
    let p3 = flipped(BASE, [2, 2, 1, 1]); // 6 from p1
    let p4 = flipped(BASE, [8, 8, 7, 7]); // 30 from p1
    s.record_media(&media(&sha(1), p1, ic1.id)).unwrap();
    s.record_media(&media(&sha(3), p3, ic2.id)).unwrap();
    s.record_media(&media(&sha(4), p4, ic2.id)).unwrap();
    let (m1, _) = applied(upsert(s, &meeting(ic1.id, b1, &[sha(1)]), &ledger(ic1.id, "1")));
    let (m2, _) = applied(upsert(s, &meeting(ic2.id, knp, &[sha(1)]), &ledger(ic2.id, "2")));
    let (m3, _) = applied(upsert(s, &meeting(ic2.id, knp, &[sha(3)]), &ledger(ic2.id, "3")));
    let (m4, _) = applied(upsert(s, &meeting(ic2.id, knp, &[sha(4)]), &ledger(ic2.id, "4")));
    assert!(m1.record_seq < m2.record_seq && m2.record_seq < m3.record_seq);

    let uses = |m: &MeetingApplied, photos: Vec<(String, u64)>, later: bool| {
        s.sync_tx(|tx| {
            if later {
                tx.later_photo_uses(m.meeting_id, m.record_seq, &photos, 10)
            } else {
                tx.earlier_photo_uses(m.meeting_id, m.record_seq, &photos, 10)
            }
        })
        .unwrap()
        .into_iter()
        .map(|u| (u.sha256, u.other_meeting_id, u.other_sha256, u.distance))
        .collect::<Vec<_>>()
    };
    assert!(uses(&m1, vec![(sha(1), p1)], false).is_empty());
    assert_eq!(uses(&m2, vec![(sha(1), p1)], false), [(sha(1), m1.meeting_id, sha(1), 0)]);
    assert_eq!(
        uses(&m3, vec![(sha(3), p3)], false),
        [(sha(3), m1.meeting_id, sha(1), 6), (sha(3), m2.meeting_id, sha(1), 6)]
    );
    assert!(uses(&m4, vec![(sha(4), p4)], false).is_empty());
    assert_eq!(
        uses(&m1, vec![(sha(1), p1)], true),
        [(sha(1), m2.meeting_id, sha(1), 0), (sha(1), m3.meeting_id, sha(3), 6)]
    );
    // Exact re-use is found even with the near search off.
    let exact = s
        .sync_tx(|tx| tx.earlier_photo_uses(m2.meeting_id, m2.record_seq, &[(sha(1), p1)], 0))
        .unwrap();
    assert_eq!(exact.len(), 1);
    assert_eq!((exact[0].other_incharge_id, exact[0].other_decision.clone()), (ic1.id, None));
    let wide = s.sync_tx(|tx| tx.earlier_photo_uses(m4.meeting_id, m4.record_seq, &[(sha(4), p4)], 33));
    assert!(matches!(wide, Err(StoreError::Invalid(_))));
});

both_backends!(fn many_copies_of_one_photo_are_each_found_once(db) {
    // Copies that differ only in bytes share one pHash, so every band lists each copy:
    // each earlier copy must come back exactly once, earliest first, and a near copy
    // (another pHash) with it.
    let s = &db.store;
    seed(s);
    let ic1 = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let (b1, _) = area(s, "LKO-B1");
    let near = flipped(BASE, [1, 1, 1, 0]);
    let mut applied_meetings = Vec::new();
    for n in 0..12u64 {
        let phash = if n == 5 { near } else { BASE };
        s.record_media(&media(&sha(100 + n), phash, ic1.id)).unwrap();
        let (m, _) = applied(upsert(s, &meeting(ic1.id, b1, &[sha(100 + n)]), &ledger(ic1.id, &n.to_string())));
        applied_meetings.push(m);
    }
    let last = applied_meetings.last().unwrap();
    let uses = s
        .sync_tx(|tx| tx.earlier_photo_uses(last.meeting_id, last.record_seq, &[(sha(111), BASE)], 10))
        .unwrap();
    let found: Vec<(Uuid, String, u32)> =
        uses.into_iter().map(|u| (u.other_meeting_id, u.other_sha256, u.distance)).collect();
    let expected: Vec<(Uuid, String, u32)> = (0..11u64)
        .map(|n| (applied_meetings[n as usize].meeting_id, sha(100 + n), if n == 5 { 3 } else { 0 }))
        .collect();
    assert_eq!(found, expected);
});

/// A photo's earlier uses as `(other meeting, distance)`, searched through the photo
/// index (`indexed`: the transaction takes the meeting lock, which catches the index up)
/// or through the database's band indexes.
fn earlier_uses(
    s: &Store,
    m: &MeetingApplied,
    photo: (String, u64),
    indexed: bool,
) -> Vec<(Uuid, u32)> {
    s.sync_tx(|tx| {
        if indexed {
            tx.lock_meeting_writes()?;
        }
        tx.earlier_photo_uses(m.meeting_id, m.record_seq, &[photo], 10)
    })
    .unwrap()
    .into_iter()
    .map(|u| (u.other_meeting_id, u.distance))
    .collect()
}

both_backends!(fn the_photo_index_sees_other_processes_edits_and_rollbacks(db) {
    let a = &db.store;
    seed(a);
    // A second process on the same database: its own photo index.
    let b = Store::open(&db.url, &baithak_store::StoreOptions::default()).unwrap();
    let ic1 = add_user(a, "ic1", Role::Incharge, "LKO-B1");
    let (b1, _) = area(a, "LKO-B1");
    let check = |m: &MeetingApplied, photo: (String, u64), expected: Vec<(Uuid, u32)>| {
        assert_eq!(earlier_uses(&b, m, photo.clone(), true), expected);
        assert_eq!(earlier_uses(&b, m, photo, false), expected);
    };
    // B's index is loaded while nothing is stored.
    b.sync_tx(|tx| tx.lock_meeting_writes()).unwrap();

    // A meeting the other process writes.
    a.record_media(&media(&sha(1), BASE, ic1.id)).unwrap();
    let (m1, _) = applied(upsert(a, &meeting(ic1.id, b1, &[sha(1)]), &ledger(ic1.id, "1")));
    let near1 = flipped(BASE, [1, 1, 1, 0]);
    b.record_media(&media(&sha(2), near1, ic1.id)).unwrap();
    let (m2, _) = applied(upsert(&b, &meeting(ic1.id, b1, &[sha(2)]), &ledger(ic1.id, "2")));
    check(&m2, (sha(2), near1), vec![(m1.meeting_id, 3)]);

    // An edit by the other process that adds a photo to an older meeting.
    let other = !BASE;
    a.record_media(&media(&sha(3), other, ic1.id)).unwrap();
    let mut edit = meeting(ic1.id, b1, &[sha(1), sha(3)]);
    edit.id = m1.meeting_id;
    edit.expected_version = Some(1);
    applied(upsert(a, &edit, &ledger(ic1.id, "3")));
    let near3 = flipped(other, [0, 2, 0, 2]);
    b.record_media(&media(&sha(4), near3, ic1.id)).unwrap();
    let (m4, _) = applied(upsert(&b, &meeting(ic1.id, b1, &[sha(4)]), &ledger(ic1.id, "4")));
    check(&m4, (sha(4), near3), vec![(m1.meeting_id, 4)]);

    // A transaction of B writes a photo use and rolls back; the number it drew goes
    // to the other process's next meeting, which B must still see.
    let third = BASE.rotate_left(29);
    b.record_media(&media(&sha(5), BASE.rotate_left(7), ic1.id)).unwrap();
    let failed = b.upsert_meeting(&meeting(ic1.id, b1, &[sha(5)]), &ledger(ic1.id, "5"), |_, _| {
        Err(StoreError::Invalid("the hook failed".into()))
    });
    assert!(matches!(failed, Err(StoreError::Invalid(_))));
    a.record_media(&media(&sha(6), third, ic1.id)).unwrap();
    let (m6, _) = applied(upsert(a, &meeting(ic1.id, b1, &[sha(6)]), &ledger(ic1.id, "6")));
    assert_eq!(m6.record_seq, m4.record_seq + 1, "the rolled-back number is handed out again");
    let near6 = flipped(third, [2, 2, 2, 2]);
    b.record_media(&media(&sha(7), near6, ic1.id)).unwrap();
    let (m7, _) = applied(upsert(&b, &meeting(ic1.id, b1, &[sha(7)]), &ledger(ic1.id, "7")));
    check(&m7, (sha(7), near6), vec![(m6.meeting_id, 8)]);
});

both_backends!(fn the_photo_index_and_the_band_walk_agree(db) {
    let s = &db.store;
    seed(s);
    let ic1 = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let (b1, _) = area(s, "LKO-B1");
    // pHashes 0 to 16 bits away from BASE, spread over the bands by a fixed LCG, so
    // that some pairs are within the distance and some just beyond.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut written = Vec::new();
    for n in 0..48u64 {
        let mut h = BASE;
        for _ in 0..next() % 17 {
            h ^= 1 << (next() % 64);
        }
        s.record_media(&media(&sha(200 + n), h, ic1.id)).unwrap();
        let (m, _) = applied(upsert(s, &meeting(ic1.id, b1, &[sha(200 + n)]), &ledger(ic1.id, &n.to_string())));
        written.push((m, h));
    }
    let mut matched = 0;
    for (n, (m, h)) in written.iter().enumerate() {
        let walked = earlier_uses(s, m, (sha(200 + n as u64), *h), false);
        assert_eq!(earlier_uses(s, m, (sha(200 + n as u64), *h), true), walked, "meeting {n}");
        matched += walked.len();
        let later = |indexed: bool| {
            s.sync_tx(|tx| {
                if indexed {
                    tx.lock_meeting_writes()?;
                }
                tx.later_photo_uses(m.meeting_id, m.record_seq, &[(sha(200 + n as u64), *h)], 10)
            })
            .unwrap()
        };
        assert_eq!(later(true), later(false), "meeting {n}");
    }
    // Not vacuous: many pairs are near, and not every pair is.
    assert!(matched > 48 && matched < 48 * 47 / 2, "{matched} near pairs");
});

both_backends!(fn changes_are_scoped_to_the_viewer(db) {
    let s = &db.store;
    seed(s);
    let ic1 = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let ic2 = add_user(s, "ic2", Role::Incharge, "KNP-S");
    let coord = add_user(s, "coord", Role::Coordinator, "LKO");
    let hq = add_user(s, "hq", Role::Hq, "UP");
    let change = |kind: &str, user: Option<&baithak_store::User>| NewChange {
        kind: kind.into(),
        user_id: user.map(|u| u.id),
        area_path: user.map(|u| u.area_path.clone()),
        entity_id: "x".into(),
        data: "{}".into(),
    };
    assert_eq!(s.feed_head().unwrap(), 0);
    let c1 = s.append_change(&change("quota.day", Some(&ic1))).unwrap();
    let c2 = s.append_change(&change("quota.day", Some(&ic2))).unwrap();
    let c3 = s.append_change(&change("policy.changed", None)).unwrap();
    let c4 = s.append_change(&change("meeting.reviewed", Some(&ic1))).unwrap();
    let c5 = s.append_change(&change("assignment.changed", Some(&coord))).unwrap();
    assert_eq!([c1, c2, c3, c4, c5], [1, 2, 3, 4, 5]);
    assert_eq!(s.feed_head().unwrap(), 5);
    let viewer = |u: &baithak_store::User| FeedViewer {
        user_id: u.id,
        role_sees_scope: u.role != Role::Incharge,
        scope_path: u.area_path.clone(),
    };
    let seqs = |u: &baithak_store::User, after: i64, limit: i64| -> Vec<i64> {
        s.changes_after(after, &viewer(u), limit).unwrap().into_iter().map(|c| c.seq).collect()
    };
    assert_eq!(seqs(&ic1, 0, 100), [1, 3, 4]);
    assert_eq!(seqs(&ic2, 0, 100), [2, 3]);
    assert_eq!(seqs(&coord, 0, 100), [1, 3, 4, 5]);
    assert_eq!(seqs(&hq, 0, 100), [1, 2, 3, 4, 5]);
    assert_eq!(seqs(&ic1, 3, 100), [4]);
    assert_eq!(seqs(&hq, 1, 2), [2, 3]);
    // An in-charge never sees another's changes, even when inside its area.
    let ic3 = add_user(s, "ic3", Role::Incharge, "LKO-S");
    assert_eq!(seqs(&ic3, 0, 100), [3]);
    let rec = s.changes_after(0, &viewer(&ic1), 1).unwrap().remove(0);
    assert_eq!((rec.kind.as_str(), rec.user_id, rec.area_path.as_deref()), ("quota.day", Some(ic1.id), Some(ic1.area_path.as_str())));
});

both_backends!(fn feedback_is_created_once(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let (seat, seat_path) = area(s, "LKO-S");
    let fb = |subject: &str, rating: i32| FeedbackWrite {
        id: Uuid::now_v7(),
        incharge_id: ic.id,
        constituency_id: seat,
        subject: subject.into(),
        rating,
        text: "अच्छे नेता".into(),
        collected_at: at(2026, 11, 23, 6, 0),
        respondents: 6,
        received_at: now_utc(),
    };
    let ok = |_: &mut dyn SyncTx, a: &baithak_store::FeedbackApplied| -> Result<String, StoreError> {
        Ok(format!("{{\"id\":\"{}\"}}", a.feedback_id))
    };
    let w = fb("Ram", 4);
    let l = ledger(ic.id, "f1");
    let first = s.create_feedback(&w, &l, ok).unwrap();
    let UpsertOutcome::Applied { applied, result } = first else { panic!("{first:?}") };
    assert!(applied.created);
    assert_eq!(applied.constituency_path, seat_path);
    assert_eq!(s.create_feedback(&w, &l, ok).unwrap(), UpsertOutcome::Duplicate(result.clone()));
    assert_eq!(s.ledger_get("dev-1", l.mutation_id).unwrap().unwrap().result, result);
    let mut l2 = l.clone();
    l2.content_hash = "other".into();
    assert_eq!(s.create_feedback(&w, &l2, ok).unwrap(), UpsertOutcome::Conflict);
    // The same record under a new mutation id: applied, not created again.
    match s.create_feedback(&w, &ledger(ic.id, "f1"), ok).unwrap() {
        UpsertOutcome::Applied { applied, .. } => assert!(!applied.created),
        other => panic!("{other:?}"),
    }
    // The same id with other content is refused and leaves no ledger row.
    let mut clash = w.clone();
    clash.rating = 1;
    let lc = ledger(ic.id, "f9");
    assert_eq!(s.create_feedback(&clash, &lc, ok).unwrap(), UpsertOutcome::Conflict);
    assert_eq!(s.ledger_get("dev-1", lc.mutation_id).unwrap(), None);
    let mut nowhere = fb("Ram", 3);
    nowhere.constituency_id = AreaId::new();
    assert!(matches!(s.create_feedback(&nowhere, &ledger(ic.id, "x"), ok), Err(StoreError::Invalid(_))));

    s.create_feedback(&fb("Ram", 2), &ledger(ic.id, "f2"), ok).unwrap();
    s.create_feedback(&fb("श्याम", 5), &ledger(ic.id, "f3"), ok).unwrap();
    let summary = s.feedback_summary(seat).unwrap();
    assert_eq!(summary.len(), 2);
    let ram = summary.iter().find(|x| x.subject == "Ram").unwrap();
    assert_eq!((ram.count, ram.respondents, ram.rating_sum), (2, 12, 6));
    let lko = s.area_by_code("LKO").unwrap();
    let listed = s
        .feedback_list(&FeedbackFilter { scope: Some(lko.path.clone()), subject: Some("Ram".into()), ..Default::default() }, None, 10)
        .unwrap();
    assert_eq!(listed.len(), 2);
    let page2 = s
        .feedback_list(&FeedbackFilter { scope: Some(lko.path), ..Default::default() }, Some(listed[0].id), 10)
        .unwrap();
    assert_eq!(page2.len(), 2);
    let knp = s.area_by_code("KNP").unwrap();
    assert!(s.feedback_list(&FeedbackFilter { scope: Some(knp.path), ..Default::default() }, None, 10).unwrap().is_empty());
    assert_eq!(s.feedback(w.id).unwrap().text, "अच्छे नेता");
});

both_backends!(fn coordinators_list_decide_and_review_in_scope(db) {
    let s = &db.store;
    seed(s);
    let ic1 = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let ic2 = add_user(s, "ic2", Role::Incharge, "KNP-S");
    let coord = add_user(s, "coord", Role::Coordinator, "LKO");
    let knp_coord = add_user(s, "coord.knp", Role::Coordinator, "KNP");
    let (b1, _) = area(s, "LKO-B1");
    let (knp, _) = area(s, "KNP-S");
    s.record_media(&media(&sha(1), BASE, ic1.id)).unwrap();
    let mut ids = Vec::new();
    for (i, day) in ["2026-11-21", "2026-11-22", "2026-11-23"].iter().enumerate() {
        let mut w = meeting(ic1.id, b1, &[sha(1)]);
        w.local_day = (*day).into();
        w.occurred_at = at(2026, 11, 21 + i as u32, 5, 0);
        applied(upsert(s, &w, &ledger(ic1.id, day)));
        ids.push(w.id);
    }
    let mut other = meeting(ic2.id, knp, &[]);
    other.local_day = "2026-11-22".into();
    applied(upsert(s, &other, &ledger(ic2.id, "o")));

    let lko = coord.area_path.clone();
    let list = |f: &MeetingFilter, scope: Option<&AreaPath>| -> Vec<Uuid> {
        s.meetings_in_scope(scope, f, None, 100).unwrap().into_iter().map(|m| m.id).collect()
    };
    assert_eq!(list(&MeetingFilter::default(), Some(&lko)), ids);
    assert_eq!(list(&MeetingFilter::default(), None).len(), 4);
    let range = MeetingFilter { from_day: Some("2026-11-22".into()), to_day: Some("2026-11-22".into()), ..Default::default() };
    assert_eq!(list(&range, Some(&lko)), [ids[1]]);
    assert_eq!(list(&range, None).len(), 2);
    let mine = MeetingFilter { incharge_id: Some(ic2.id), ..Default::default() };
    assert_eq!(list(&mine, None), [other.id]);
    assert!(list(&mine, Some(&lko)).is_empty());
    let booth = MeetingFilter { area: Some(area(s, "LKO-A1").1), ..Default::default() };
    assert_eq!(list(&booth, Some(&lko)).len(), 3);
    let newest = MeetingFilter { newest_first: true, ..Default::default() };
    assert_eq!(list(&newest, Some(&lko)), [ids[2], ids[1], ids[0]]);
    // Keyset paging, both directions.
    let p1 = s.meetings_in_scope(Some(&lko), &MeetingFilter::default(), None, 2).unwrap();
    let p2 = s.meetings_in_scope(Some(&lko), &MeetingFilter::default(), Some(&p1[1].cursor()), 2).unwrap();
    assert_eq!(p1.iter().chain(&p2).map(|m| m.id).collect::<Vec<_>>(), ids);
    let n1 = s.meetings_in_scope(Some(&lko), &newest, None, 1).unwrap();
    let n2 = s.meetings_in_scope(Some(&lko), &newest, Some(&n1[0].cursor()), 5).unwrap();
    assert_eq!(n2.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[1], ids[0]]);

    // Evaluation results and decisions filter.
    s.sync_tx(|tx| {
        tx.set_meeting_evaluation(ids[0], true, "[]")?;
        tx.set_meeting_evaluation(ids[1], false, r#"[{"code":"too_close"}]"#)?;
        Ok(())
    })
    .unwrap();
    let counted = MeetingFilter { counted: Some(true), ..Default::default() };
    assert_eq!(list(&counted, Some(&lko)), [ids[0]]);
    let flagged = MeetingFilter { flag: Some("too_close".into()), ..Default::default() };
    assert_eq!(list(&flagged, None), [ids[1]]);
    let wildcard = MeetingFilter { flag: Some("too%".into()), ..Default::default() };
    assert!(list(&wildcard, None).is_empty());
    let decision = |id: Uuid, who: &baithak_store::User, d: &str| {
        s.decide_meeting(
            &MeetingDecision {
                meeting_id: id,
                decision: d.into(),
                reason: "checked".into(),
                actor: who.id,
                scope: Some(who.area_path.clone()),
                now: now_utc(),
            },
            |tx, m| {
                tx.append_change(&NewChange {
                    kind: "meeting.reviewed".into(),
                    user_id: Some(m.incharge_id),
                    area_path: Some(m.area_path.clone()),
                    entity_id: m.id.to_string(),
                    data: "{}".into(),
                })?;
                Ok(())
            },
        )
    };
    assert!(matches!(decision(ids[0], &knp_coord, "accepted"), Err(StoreError::NotFound)));
    assert!(matches!(decision(Uuid::now_v7(), &coord, "accepted"), Err(StoreError::NotFound)));
    decision(ids[0], &coord, "accepted").unwrap();
    let undecided = MeetingFilter { decision: Some(None), ..Default::default() };
    assert_eq!(list(&undecided, Some(&lko)), [ids[1], ids[2]]);
    let accepted = MeetingFilter { decision: Some(Some("accepted".into())), ..Default::default() };
    assert_eq!(list(&accepted, None), [ids[0]]);
    let feed = s
        .changes_after(0, &FeedViewer { user_id: ic1.id, role_sees_scope: false, scope_path: ic1.area_path.clone() }, 10)
        .unwrap();
    assert_eq!(feed.len(), 1);

    // Reviews.
    let review = |who: &baithak_store::User, action: &str| NewReview {
        incharge_id: who.id,
        reviewer_id: coord.id,
        period_from: "2026-11-17".into(),
        period_to: "2026-11-23".into(),
        notes: "ठीक".into(),
        action: action.into(),
        snapshot: r#"{"met":3}"#.into(),
    };
    let r1 = s.create_review(&review(&ic1, "ok")).unwrap();
    let r2 = s.create_review(&review(&ic1, "warn")).unwrap();
    let r3 = s.create_review(&review(&ic2, "activate")).unwrap();
    assert_eq!(r1.area_path, ic1.area_path.as_str());
    assert!(matches!(
        s.create_review(&NewReview { incharge_id: UserId::new(), ..review(&ic1, "ok") }),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.reviews_of(ic1.id, 10).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [r2.id, r1.id]);
    let ic3 = add_user(s, "ic3", Role::Incharge, "LKO-B1");
    let latest = s.latest_reviews(&[ic1.id, ic2.id, ic3.id]).unwrap();
    let mut want = vec![(ic1.id, r2.id), (ic2.id, r3.id)];
    want.sort();
    assert_eq!(latest.iter().map(|r| (r.incharge_id, r.id)).collect::<Vec<_>>(), want);
    assert_eq!(s.reviews_in_scope(&lko, None, 10).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [r2.id, r1.id]);
    assert_eq!(s.reviews_in_scope(&lko, Some(r2.id), 10).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [r1.id]);
    let counted_at = s.last_counted_at(&[ic1.id, ic2.id]).unwrap();
    assert_eq!(counted_at, [(ic1.id, at(2026, 11, 21, 5, 0))]);
});

both_backends!(fn policy_versions_guard_concurrent_changes(db) {
    let s = &db.store;
    seed(s);
    let hq = add_user(s, "hq", Role::Hq, "UP");
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    assert_eq!(s.policy().unwrap(), None);
    let announce = |tx: &mut dyn SyncTx, p: &baithak_store::PolicyRecord| {
        tx.append_change(&NewChange {
            kind: "policy.changed".into(),
            user_id: None,
            area_path: None,
            entity_id: p.version.to_string(),
            data: p.body.clone(),
        })
        .map(|_| ())
    };
    let p1 = s.put_policy(r#"{"min_per_day":4}"#, Some(0), Some(hq.id), announce).unwrap();
    assert_eq!((p1.version, p1.updated_by), (1, Some(hq.id)));
    assert!(matches!(s.put_policy("{}", Some(0), Some(hq.id), |_, _| Ok(())), Err(StoreError::Conflict(_))));
    let p2 = s.put_policy(r#"{"min_per_day":3}"#, Some(1), Some(hq.id), announce).unwrap();
    assert_eq!(p2.version, 2);
    assert_eq!(s.policy().unwrap(), Some(p2.clone()));
    let p3 = s.put_policy(r#"{"min_per_day":5}"#, None, None, |_, _| Ok(())).unwrap();
    assert_eq!(p3.version, 3);
    // A failing hook keeps the old policy.
    assert!(s.put_policy("{}", Some(3), None, |_, _| Err(StoreError::Invalid("no".into()))).is_err());
    assert_eq!(s.policy().unwrap().map(|p| p.version), Some(3));
    let seen = s
        .changes_after(0, &FeedViewer { user_id: ic.id, role_sees_scope: false, scope_path: ic.area_path.clone() }, 10)
        .unwrap();
    assert_eq!(seen.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), ["policy.changed", "policy.changed"]);
    assert!(s.audit_verify().unwrap().ok);
});

both_backends!(fn the_ledger_is_pruned_by_age(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let (b1, _) = area(s, "LKO-B1");
    let l = ledger(ic.id, "h");
    applied(upsert(s, &meeting(ic.id, b1, &[]), &l));
    assert_eq!(s.prune_ledger(now_utc() - Duration::days(90)).unwrap(), 0);
    assert!(s.ledger_get("dev-1", l.mutation_id).unwrap().is_some());
    assert_eq!(s.prune_ledger(now_utc() + Duration::seconds(1)).unwrap(), 1);
    assert_eq!(s.ledger_get("dev-1", l.mutation_id).unwrap(), None);
});

fn feed_change(kind: &str) -> NewChange {
    NewChange {
        kind: kind.into(),
        user_id: None,
        area_path: None,
        entity_id: kind.into(),
        data: "{}".into(),
    }
}

/// PostgreSQL only: a change whose transaction is still open holds the feed, so a
/// later transaction cannot publish a higher `seq` first (which a reader would skip
/// past forever once the earlier one committed).
#[test]
fn feed_seq_follows_commit_order_on_postgres() {
    let db = TestDb::postgres();
    let s = db.store.clone();
    seed(&s);
    let hq = add_user(&s, "hq", Role::Hq, "UP");
    let viewer = FeedViewer {
        user_id: hq.id,
        role_sees_scope: true,
        scope_path: hq.area_path.clone(),
    };

    let (appended_tx, appended_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let sa = s.clone();
    let a = std::thread::spawn(move || {
        sa.sync_tx(|tx| {
            let seq = tx.append_change(&feed_change("A"))?;
            appended_tx.send(seq).unwrap();
            go_rx.recv().unwrap();
            Ok(seq)
        })
    });
    let seq_a_inside = appended_rx.recv().unwrap();

    let (b_done_tx, b_done_rx) = mpsc::channel();
    let sb = s.clone();
    let b = std::thread::spawn(move || {
        let r = sb.sync_tx(|tx| tx.append_change(&feed_change("B")));
        b_done_tx.send(()).unwrap();
        r
    });
    // B is blocked while A is open, and a reader sees neither.
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(
        b_done_rx.try_recv().is_err(),
        "B committed while A held the feed"
    );
    assert!(s.changes_after(0, &viewer, 100).unwrap().is_empty());

    go_tx.send(()).unwrap();
    let seq_a = a.join().unwrap().unwrap();
    let seq_b = b.join().unwrap().unwrap();
    assert_eq!(seq_a, seq_a_inside);
    assert!(seq_b > seq_a, "B got {seq_b}, A {seq_a}");
    let all = s.changes_after(0, &viewer, 100).unwrap();
    assert_eq!(
        all.iter()
            .map(|c| (c.seq, c.kind.as_str()))
            .collect::<Vec<_>>(),
        [(seq_a, "A"), (seq_b, "B")]
    );
}

/// PostgreSQL only: writers that hold their transaction open for a while after
/// appending, and a reader polling with a cursor throughout. Every page the reader
/// gets must continue exactly where its cursor stopped — a gap would be a change that
/// commits later with a smaller seq, which the reader would never fetch.
#[test]
fn a_polling_reader_never_sees_a_gap_on_postgres() {
    let db = TestDb::postgres();
    let s = db.store.clone();
    seed(&s);
    let hq = add_user(&s, "hq", Role::Hq, "UP");
    let viewer = FeedViewer {
        user_id: hq.id,
        role_sees_scope: true,
        scope_path: hq.area_path.clone(),
    };
    const WRITERS: u64 = 6;
    const EACH: u64 = 20;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, viewer, done) = (s.clone(), viewer.clone(), done.clone());
        std::thread::spawn(move || {
            let mut cursor = 0i64;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = s.changes_after(cursor, &viewer, 1000).unwrap();
                for c in &page {
                    assert_eq!(c.seq, cursor + 1, "gap after {cursor}: got {}", c.seq);
                    cursor = c.seq;
                    seen.push(c.seq);
                }
                if finished && page.is_empty() {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    s.sync_tx(|tx| {
                        tx.append_change(&feed_change(&format!("w{w}-{i}")))?;
                        // Hold the transaction open after appending.
                        std::thread::sleep(std::time::Duration::from_micros(
                            (w * 7 + i * 13) % 3000,
                        ));
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.join().unwrap();
    assert_eq!(seen, (1..=(WRITERS * EACH) as i64).collect::<Vec<_>>());
}
