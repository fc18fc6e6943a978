//! Seeded history (`Store::seed_history`, for benchmarks and load tests) is what the
//! quota evaluation itself would have stored: recomputing every day from the facts
//! changes nothing, and a meeting pushed afterwards continues the `record_seq`
//! sequence and counts. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baithak_api::quota::{days_touched_by_meeting, load_policy, recompute_all, reevaluate_days};
use baithak_domain::import::parse_area_csv;
use baithak_domain::quota::local_day;
use baithak_domain::{Policy, UserId};
use baithak_store::seed::{SeedSpec, seed_photo};
use baithak_store::{LedgerWrite, MeetingFilter, MeetingWrite, NewMedia, UpsertOutcome, now_utc};
use baithak_test_support::both_backends;
use chrono::{Duration, Utc};
use uuid::Uuid;

const TREE: &str = "code,name,kind,parent_code
UP,UP,state,
LKO,Lucknow,division,UP
LKO-A1,Assembly 1,assembly,LKO
LKO-A2,Assembly 2,assembly,LKO
";

both_backends!(
    fn seeded_history_is_what_evaluation_stores(db) {
        let rows = parse_area_csv(TREE.as_bytes()).unwrap();
        db.store.import_areas(&rows, None, None, &|_| {}).unwrap();
        let areas = vec![
            db.store.area_by_code("LKO-A1").unwrap().id,
            db.store.area_by_code("LKO-A2").unwrap().id,
        ];
        let yesterday = local_day(Utc::now(), Policy::default().timezone) - Duration::days(1);
        let spec = SeedSpec {
            incharges: 3,
            areas,
            days: 4,
            last_day: yesterday,
            meetings_per_day: 5,
            photos_per_meeting: 2,
            login_prefix: "ic".into(),
            password_hash: "not a real hash".into(),
            first_photo: 0,
            rng_seed: 1,
        };
        let first = db.store.seed_history(&spec).unwrap();
        assert_eq!(
            (first.meetings, first.photos, first.quota_days),
            (60, 120, 12)
        );
        assert_eq!(first.last_record_seq, 60);
        assert_eq!(first.next_photo, 120);
        let ids: Vec<UserId> = first.incharges.iter().map(|i| i.id).collect();
        let days = db
            .store
            .quota_days(&ids, &(yesterday - Duration::days(3)).to_string(), &yesterday.to_string())
            .unwrap();
        assert_eq!(days.len(), 12);
        assert!(
            days.iter()
                .all(|d| (d.counted, d.submitted, d.status.as_str(), d.target_met, d.is_final)
                    == (5, 5, "met", true, false))
        );
        let meetings = db
            .store
            .meetings_in_scope(None, &MeetingFilter::default(), None, 1000)
            .unwrap();
        assert_eq!(meetings.len(), 60);
        assert!(meetings.iter().all(|m| m.counted && m.flags == "[]" && m.photos.len() == 2));
        let mut seqs: Vec<i64> = meetings.iter().map(|m| m.record_seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=60).collect::<Vec<_>>());

        // A second seeding continues the sequence and the photo numbering.
        let second = db
            .store
            .seed_history(&SeedSpec {
                login_prefix: "more".into(),
                first_photo: first.next_photo,
                ..spec
            })
            .unwrap();
        assert_eq!(second.last_record_seq, 120);

        // Recomputing every day from the stored facts changes nothing.
        let head = db.store.feed_head().unwrap();
        let n = db
            .store
            .sync_tx(|tx| recompute_all(tx, Utc::now()))
            .unwrap();
        assert_eq!(n, 24);
        assert_eq!(db.store.feed_head().unwrap(), head, "no verdict or day changed");

        // A meeting pushed afterwards takes the next record_seq and counts.
        let who = first.incharges[0].clone();
        let (sha, phash) = seed_photo(second.next_photo).unwrap();
        db.store
            .record_media(&NewMedia {
                sha256: sha.clone(),
                media_type: "image/jpeg".into(),
                bytes: 1000,
                width: 640,
                height: 480,
                taken_at: None,
                taken_at_local: None,
                gps_lat: None,
                gps_lon: None,
                orientation: 1,
                phash,
                uploaded_by: who.id,
            })
            .unwrap();
        let occurred = yesterday
            .and_hms_opt(15, 30, 0)
            .unwrap()
            .and_utc(); // 21:00 IST, after the seeded day
        let write = MeetingWrite {
            id: Uuid::now_v7(),
            incharge_id: who.id,
            area_id: who.area_id,
            kind: "small_meeting".into(),
            occurred_at: occurred.naive_utc(),
            occurred_offset_minutes: 330,
            ended_at: None,
            local_day: yesterday.to_string(),
            received_at: now_utc(),
            lat: Some(26.85),
            lon: Some(80.95),
            accuracy_m: Some(10.0),
            attendee_count: 12,
            topic: "पानी".into(),
            notes: String::new(),
            photos: vec![sha.clone()],
            expected_version: None,
        };
        let ledger = LedgerWrite {
            device_id: "phone".into(),
            mutation_id: Uuid::now_v7(),
            user_id: who.id,
            content_hash: "h".into(),
        };
        let photos = vec![sha];
        let out = db
            .store
            .upsert_meeting(&write, &ledger, |tx, applied| {
                let policy = load_policy(tx)?;
                let touched = days_touched_by_meeting(tx, &policy, applied, &photos)?;
                reevaluate_days(tx, &policy, touched.days, touched.search, Utc::now())?;
                Ok(String::new())
            })
            .unwrap();
        let UpsertOutcome::Applied { applied, .. } = out else {
            panic!("not applied: {out:?}");
        };
        assert_eq!(applied.record_seq, 121);
        let m = db.store.meeting(write.id).unwrap();
        assert!(m.counted, "{}", m.flags);
        let day = db
            .store
            .quota_days(&[who.id], &yesterday.to_string(), &yesterday.to_string())
            .unwrap();
        assert_eq!((day[0].counted, day[0].submitted), (6, 6));
    }
);
