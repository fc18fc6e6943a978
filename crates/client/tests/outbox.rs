//! The outbox survives a restart and settles mutations by the server's results.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baithak_api_types::{
    Change, FeedbackData, MeetingData, MutationResult, MutationStatus, TokenUser,
};
use baithak_client::outbox::PhotoFile;
use baithak_client::{MutationState, Outbox, Session, TokenStore};
use chrono::{DateTime, FixedOffset, Utc};
use uuid::Uuid;

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn meeting() -> MeetingData {
    MeetingData {
        id: Uuid::nil(),
        kind: "small_meeting".into(),
        occurred_at: at("2026-11-23T10:05:00+05:30"),
        ended_at: None,
        area_id: Uuid::now_v7(),
        location: None,
        attendee_count: 14,
        topic: "बूथ समिति बैठक".into(),
        notes: String::new(),
        photos: vec![],
        base_version: None,
    }
}

fn feedback() -> FeedbackData {
    FeedbackData {
        id: Uuid::nil(),
        constituency_id: Uuid::now_v7(),
        subject: "श्री राम".into(),
        rating: 4,
        text: String::new(),
        collected_at: at("2026-11-23T18:00:00+05:30"),
        respondents: 6,
    }
}

fn photo(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PhotoFile {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    PhotoFile::from_path(path).unwrap()
}

fn result(id: Uuid, status: MutationStatus) -> MutationResult {
    MutationResult {
        id,
        status,
        entity_id: None,
        version: None,
        code: None,
        message: None,
        errors: vec![],
        missing: vec![],
    }
}

#[test]
fn recorded_work_and_state_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let p1 = photo(dir.path(), "a.jpg", b"\xFF\xD8\xFFone");
    let p2 = photo(dir.path(), "b.jpg", b"\xFF\xD8\xFFtwo");

    let (device_id, m, f) = {
        let ob = Outbox::open(&path).unwrap();
        let m = ob
            .record_meeting(meeting(), &[p1.clone(), p2.clone()])
            .unwrap();
        let f = ob.record_feedback(feedback()).unwrap();
        assert_eq!(m.entity_id.get_version_num(), 7, "client ids are UUIDv7");
        assert_eq!(m.mutation_id.get_version_num(), 7);
        assert!(m.mutation_id < f.mutation_id, "time-ordered");
        (ob.device_id().unwrap(), m, f)
    };

    let ob = Outbox::open(&path).unwrap();
    assert_eq!(
        ob.device_id().unwrap(),
        device_id,
        "one id per installation"
    );
    let c = ob.counts().unwrap();
    assert_eq!((c.pending, c.photos_pending), (2, 2));
    let photos = ob.photos_to_upload().unwrap();
    assert_eq!(
        photos.iter().map(|p| p.sha256.as_str()).collect::<Vec<_>>(),
        [p1.sha256.as_str(), p2.sha256.as_str()]
    );
    // The meeting waits for its photos; the feedback does not.
    let ready = ob.pushable(500).unwrap();
    assert_eq!(
        ready.iter().map(|m| m.id).collect::<Vec<_>>(),
        [f.mutation_id]
    );
    ob.mark_photo_uploaded(&p1.sha256).unwrap();
    ob.mark_photo_uploaded(&p2.sha256).unwrap();
    let ready = ob.pushable(500).unwrap();
    assert_eq!(
        ready.iter().map(|m| m.id).collect::<Vec<_>>(),
        [m.mutation_id, f.mutation_id],
        "recorded order"
    );
    let body: serde_json::Value = serde_json::from_str(&ready[0].body).unwrap();
    assert_eq!(body["type"], "meeting.upsert");
    assert_eq!(body["id"], m.mutation_id.to_string());
    assert_eq!(body["data"]["id"], m.entity_id.to_string());
    assert_eq!(body["data"]["topic"], "बूथ समिति बैठक");
    assert_eq!(body["data"]["photos"][1], p2.sha256);
    assert_eq!(ready[0].photos, vec![p1.sha256.clone(), p2.sha256.clone()]);

    // Settle: the meeting applied, the feedback rejected.
    let mut applied = result(m.mutation_id, MutationStatus::Applied);
    applied.entity_id = Some(m.entity_id);
    applied.version = Some(1);
    let mut rejected = result(f.mutation_id, MutationStatus::Rejected);
    rejected.code = Some("forbidden_area".into());
    rejected.message = Some("not yours".into());
    let settled = ob
        .apply_results(&[m.mutation_id, f.mutation_id], &[applied, rejected])
        .unwrap();
    assert_eq!(settled.done, [m.mutation_id]);
    assert_eq!(settled.rejected, [f.mutation_id]);
    ob.save_pull(
        &[Change {
            seq: 7,
            kind: "meeting.reviewed".into(),
            data: serde_json::json!({"id": m.entity_id}),
        }],
        "Nw",
    )
    .unwrap();
    drop(ob);

    let ob = Outbox::open(&path).unwrap();
    assert_eq!(
        ob.mutation_state(m.mutation_id).unwrap(),
        Some(MutationState::Done {
            entity_id: Some(m.entity_id),
            version: Some(1)
        })
    );
    assert_eq!(ob.meeting_version(m.entity_id).unwrap(), Some(1));
    let rej = ob.rejected().unwrap();
    assert_eq!(rej.len(), 1);
    assert_eq!(
        (rej[0].code.as_str(), rej[0].message.as_str()),
        ("forbidden_area", "not yours")
    );
    assert!(
        ob.pushable(500).unwrap().is_empty(),
        "a rejection is not retried"
    );
    assert_eq!(ob.cursor().unwrap().as_deref(), Some("Nw"));
    assert_eq!(ob.changes(0, 10).unwrap()[0].kind, "meeting.reviewed");
    assert_eq!(ob.done_mutations().unwrap().len(), 1);
    let c = ob.counts().unwrap();
    assert_eq!(
        (c.pending, c.done, c.rejected, c.photos_uploaded),
        (0, 1, 1, 2)
    );
}

#[test]
fn missing_media_sends_photos_again_and_unknown_photos_reject() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path().join("o.db")).unwrap();
    let p = photo(dir.path(), "a.jpg", b"\xFF\xD8\xFFa");
    let m = ob
        .record_meeting(meeting(), std::slice::from_ref(&p))
        .unwrap();
    let mut other = meeting();
    other.photos = vec!["ab".repeat(32)]; // a hash this device never had
    let m2 = ob.record_meeting(other, &[]).unwrap();
    ob.mark_photo_uploaded(&p.sha256).unwrap();
    assert_eq!(ob.pushable(10).unwrap().len(), 2);

    let mut r1 = result(m.mutation_id, MutationStatus::MissingMedia);
    r1.missing = vec![p.sha256.clone()];
    let mut r2 = result(m2.mutation_id, MutationStatus::MissingMedia);
    r2.missing = vec!["ab".repeat(32)];
    let s = ob
        .apply_results(&[m.mutation_id, m2.mutation_id], &[r1, r2])
        .unwrap();
    assert_eq!(s.missing_media, [m.mutation_id]);
    assert_eq!(s.rejected, [m2.mutation_id], "it could never be sent");
    assert_eq!(ob.photos_to_upload().unwrap().len(), 1, "uploaded again");
    assert!(ob.pushable(10).unwrap().is_empty(), "after the upload");
    assert!(matches!(
        ob.mutation_state(m.mutation_id).unwrap(),
        Some(MutationState::Pending { push_attempts: 1 })
    ));

    // A photo the server refuses for good takes its meeting with it.
    assert_eq!(
        ob.fail_photo(&p.sha256, "invalid_image", "undecodable")
            .unwrap(),
        1
    );
    assert!(ob.photos_to_upload().unwrap().is_empty());
    assert!(matches!(
        ob.mutation_state(m.mutation_id).unwrap(),
        Some(MutationState::Rejected { code, .. }) if code == "invalid_image"
    ));
}

#[test]
fn a_duplicate_answer_settles_and_a_stale_result_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::open(dir.path().join("o.db")).unwrap();
    let f = ob.record_feedback(feedback()).unwrap();
    let s = ob
        .apply_results(
            &[f.mutation_id],
            &[result(f.mutation_id, MutationStatus::Duplicate)],
        )
        .unwrap();
    assert_eq!(s.done, [f.mutation_id]);
    // A late answer of an earlier try cannot undo it.
    let s = ob
        .apply_results(
            &[f.mutation_id],
            &[result(f.mutation_id, MutationStatus::Rejected)],
        )
        .unwrap();
    assert!(s.rejected.is_empty());
    assert!(matches!(
        ob.mutation_state(f.mutation_id).unwrap(),
        Some(MutationState::Done { .. })
    ));
    // Results for mutations not sent are ignored.
    let stray = Uuid::now_v7();
    let s = ob
        .apply_results(&[f.mutation_id], &[result(stray, MutationStatus::Applied)])
        .unwrap();
    assert!(s.done.is_empty());
}

#[test]
fn the_session_and_an_interrupted_refresh_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let session = Session {
        access_token: "a".into(),
        access_expires_at: Utc::now(),
        refresh_token: "r".into(),
        user: TokenUser {
            id: Uuid::now_v7(),
            name: "x".into(),
            role: serde_json::from_str("\"incharge\"").unwrap(),
            area_id: Uuid::now_v7(),
        },
    };
    {
        let ob = Outbox::open(&path).unwrap();
        assert!(ob.load().unwrap().0.is_none());
        ob.save(Some(&session)).unwrap();
        ob.set_refresh_pending(true).unwrap();
    }
    let ob = Outbox::open(&path).unwrap();
    let (loaded, pending) = ob.load().unwrap();
    assert_eq!(loaded.unwrap().refresh_token, "r");
    assert!(pending, "a refresh in flight at a crash is remembered");
    // A client opened on it does not present the possibly spent token.
    let client = baithak_client::ApiClient::with_token_store(
        Default::default(),
        "dev",
        std::sync::Arc::new(ob.clone()),
    )
    .unwrap();
    assert!(client.session().is_none());
    ob.save(None).unwrap();
    assert!(!ob.load().unwrap().1);
}
