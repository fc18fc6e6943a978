//! The sync endpoints in process, on SQLite and PostgreSQL: every push status, the
//! ledger's replay and conflict rules, scope of the pull feed, and the quota state the
//! pushes keep current. Photos are recorded straight into the store here (the upload
//! path has its own tests), so pHashes can be chosen to probe the duplicate rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::test::{TestRequest, init_service};
use baithak_test_support::Kind;
use serde_json::{Value, json};
use support::{meeting, photo, sha, world};
use uuid::Uuid;

async fn run(kind: Kind) {
    let mut w = world(kind);
    let app = init_service(baithak_api::app(w.state.clone())).await;
    login_all!(app, w);
    let ravi = w.user("ravi");
    let sita = w.user("sita");
    let a1 = w.area("LKO-A1");
    let a2 = w.area("LKO-A2");
    let seat = w.area("LKO-PC");
    let knp_seat = w.area("KNP-PC");

    let p1 = photo(&w.db.store, 1, 0x0000_0000_0000_0000, ravi.id);
    let p2 = photo(&w.db.store, 2, 0xFFFF_0000_FFFF_0000, ravi.id);
    let p3 = photo(&w.db.store, 3, 0x0F0F_0F0F_0F0F_0F0F, ravi.id);
    let p4 = photo(&w.db.store, 4, 0x3333_3333_3333_3333, ravi.id);
    // Sita's photo: a near copy (3 bits) of Ravi's p2.
    let near_p2 = photo(&w.db.store, 5, 0xFFFF_0000_FFFF_0007, sita.id);

    let push = |who: &str, muts: Vec<Value>| w.push(who, muts);

    // Yesterday in IST: inside the grace window and never in the future.
    let today = support::yesterday_ist();
    let at = |hm: &str| format!("{today}T{hm}:00+05:30");
    let m1 = Uuid::now_v7().to_string();
    let m2 = Uuid::now_v7().to_string();
    let m3 = Uuid::now_v7().to_string();
    let unknown = sha(999);
    let first = meeting(&m1, &at("00:10"), &a1, vec![&p1]);
    let batch = vec![
        first.clone(),
        json!({"id": Uuid::now_v7(), "type": "meeting.upsert", "data": {"id": "nope"}}),
        meeting(&m2, &at("00:20"), &a1, vec![&unknown, &p2]),
        meeting(
            &Uuid::now_v7().to_string(),
            &at("00:30"),
            &knp_seat,
            vec![&p3],
        ),
        json!({"id": Uuid::now_v7(), "type": "meeting.delete", "data": {}}),
        json!({"type": "meeting.upsert", "data": {}}),
        meeting(&m3, &at("00:40"), &a1, vec![&p2, &p3]),
        json!({"id": Uuid::now_v7(), "type": "feedback.create", "data": {
            "id": Uuid::now_v7(), "constituency_id": seat, "subject": "नेता जी", "rating": 4,
            "text": "अच्छा", "collected_at": at("01:00"), "respondents": 6}}),
        json!({"id": Uuid::now_v7(), "type": "feedback.create", "data": {
            "id": Uuid::now_v7(), "constituency_id": knp_seat, "subject": "x", "rating": 4,
            "text": "", "collected_at": at("01:00"), "respondents": 6}}),
    ];
    let (st, res) = call!(app, push("ravi", batch));
    assert_eq!(st, 200, "{res}");
    let r = res["results"].as_array().unwrap();
    let status: Vec<(&str, Option<&str>)> = r
        .iter()
        .map(|x| (x["status"].as_str().unwrap(), x["code"].as_str()))
        .collect();
    assert_eq!(
        status,
        [
            ("applied", None),
            ("rejected", Some("validation_failed")),
            ("missing_media", None),
            ("rejected", Some("forbidden_area")),
            ("rejected", Some("unknown_type")),
            ("rejected", Some("validation_failed")),
            ("applied", None),
            ("applied", None),
            ("rejected", Some("forbidden_area")),
        ],
        "{res}"
    );
    assert!(res["server_time"].is_string());
    assert_eq!(r[0]["entity_id"], m1.as_str());
    assert_eq!(r[0]["version"], 1);
    assert_eq!(r[2]["missing"], json!([unknown]));
    assert!(
        r[1]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "data.id"),
        "{}",
        r[1]
    );

    // Retry of the same mutation: duplicate with the original result; the same id with
    // other content: idempotency_conflict. Nothing changes either way.
    let (_, again) = call!(app, push("ravi", vec![first.clone()]));
    assert_eq!(again["results"][0]["status"], "duplicate");
    assert_eq!(again["results"][0]["entity_id"], m1.as_str());
    assert_eq!(again["results"][0]["version"], 1);
    let mut tampered = first.clone();
    tampered["data"]["attendee_count"] = json!(99);
    let (_, conflict) = call!(app, push("ravi", vec![tampered]));
    assert_eq!(conflict["results"][0]["code"], "idempotency_conflict");
    assert_eq!(
        w.db.store
            .meeting(Uuid::parse_str(&m1).unwrap())
            .unwrap()
            .attendee_count,
        14
    );

    // The same record id from another in-charge is refused.
    let (_, theirs) = call!(
        app,
        push(
            "sita",
            vec![meeting(&m1, &at("00:10"), &a2, vec![&near_p2])]
        )
    );
    assert_eq!(theirs["results"][0]["code"], "forbidden", "{theirs}");

    // Edits: with the right base version it applies (version 2); stale is refused.
    let mut edit = meeting(&m1, &at("00:10"), &a1, vec![&p1, &p4]);
    edit["data"]["base_version"] = json!(1);
    let (_, e1) = call!(app, push("ravi", vec![edit]));
    assert_eq!(
        (
            e1["results"][0]["status"].as_str(),
            e1["results"][0]["version"].as_i64()
        ),
        (Some("applied"), Some(2)),
        "{e1}"
    );
    let mut stale = meeting(&m1, &at("00:10"), &a1, vec![&p1]);
    stale["data"]["base_version"] = json!(1);
    let (_, e2) = call!(app, push("ravi", vec![stale]));
    assert_eq!(e2["results"][0]["code"], "version_conflict");

    // m3 came 30 minutes after m1: both count. A near copy of p2 used by Sita later
    // is a duplicate of Ravi's m3, across in-charges.
    let (_, s1) = call!(
        app,
        push(
            "sita",
            vec![meeting(
                &Uuid::now_v7().to_string(),
                &at("02:00"),
                &a2,
                vec![&near_p2]
            )]
        )
    );
    assert_eq!(s1["results"][0]["status"], "applied");
    let sita_meeting = Uuid::parse_str(s1["results"][0]["entity_id"].as_str().unwrap()).unwrap();
    let rec = w.db.store.meeting(sita_meeting).unwrap();
    assert!(!rec.counted);
    let flags: Value = serde_json::from_str(&rec.flags).unwrap();
    assert_eq!(flags[0]["code"], "duplicate_photo", "{flags}");
    assert_eq!(flags[0]["related_meeting_id"], m3.as_str());

    // A meeting 5 minutes after m3 is too close and does not count.
    let m4 = Uuid::now_v7().to_string();
    let (_, tc) = call!(
        app,
        push(
            "ravi",
            vec![meeting(
                &m4,
                &at("00:45"),
                &a1,
                vec![&photo(&w.db.store, 6, 0x5555_5555_5555_5555, ravi.id)]
            )]
        )
    );
    assert_eq!(tc["results"][0]["status"], "applied");
    let rec = w.db.store.meeting(Uuid::parse_str(&m4).unwrap()).unwrap();
    assert!(!rec.counted);
    assert!(rec.flags.contains("too_close"), "{}", rec.flags);

    let day = today.format("%Y-%m-%d").to_string();
    let q = w.db.store.quota_days(&[ravi.id], &day, &day).unwrap();
    assert_eq!(
        (q[0].counted, q[0].submitted, q[0].status.as_str()),
        (2, 3, "short")
    );

    // Pull: Ravi sees his own quota and flag changes; Sita none of Ravi's; the
    // coordinator sees both; a second pull from the cursor is empty.
    let pull = |who: &str, cursor: Option<&str>| {
        let uri = match cursor {
            Some(c) => format!("/v1/sync/pull?cursor={c}"),
            None => "/v1/sync/pull".into(),
        };
        w.get(who, &uri)
    };
    let (st, feed) = call!(app, pull("ravi", None));
    assert_eq!(st, 200, "{feed}");
    let changes = feed["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["type"] == "quota.day" && c["data"]["counted"] == 2)
    );
    assert!(changes.iter().all(|c| c["data"]["incharge_id"].is_null()
        || c["data"]["incharge_id"] == ravi.id.to_string().as_str()));
    let ravi_meetings = [m1.as_str(), m3.as_str(), m4.as_str()];
    assert!(
        changes
            .iter()
            .filter(|c| c["type"] == "meeting.flagged")
            .all(|c| ravi_meetings.contains(&c["data"]["meeting_id"].as_str().unwrap()))
    );
    let seqs: Vec<i64> = changes.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let (_, next) = call!(app, pull("ravi", Some(feed["cursor"].as_str().unwrap())));
    assert!(next["changes"].as_array().unwrap().is_empty());
    assert_eq!(next["has_more"], false);

    let (_, sita_feed) = call!(app, pull("sita", None));
    for c in sita_feed["changes"].as_array().unwrap() {
        assert_ne!(
            c["data"]["incharge_id"],
            ravi.id.to_string().as_str(),
            "{c}"
        );
        if let Some(m) = c["data"]["meeting_id"].as_str() {
            assert!(!ravi_meetings.contains(&m), "{c}");
        }
    }
    let (_, coord_feed) = call!(app, pull("coord", None));
    let kinds: Vec<&str> = coord_feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["data"]["incharge_id"].as_str())
        .collect();
    assert!(
        kinds.contains(&ravi.id.to_string().as_str())
            && kinds.contains(&sita.id.to_string().as_str())
    );
    let (_, amit_feed) = call!(app, pull("amit", None));
    assert!(
        amit_feed["changes"].as_array().unwrap().is_empty(),
        "{amit_feed}"
    );

    // Paging by limit.
    let (_, p1) = call!(app, pull("coord", None).uri("/v1/sync/pull?limit=2"));
    assert_eq!(p1["changes"].as_array().unwrap().len(), 2);
    assert_eq!(p1["has_more"], true);

    // Limits and auth.
    let too_many: Vec<Value> = (0..501).map(|_| json!({})).collect();
    let (st, body) = call!(app, push("ravi", too_many));
    assert_eq!(
        (st, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let (st, _) = call!(
        app,
        TestRequest::post()
            .uri("/v1/sync/push")
            .set_json(json!({"device_id": "x", "mutations": []}))
    );
    assert_eq!(st, 401);
    let (st, _) = call!(app, pull("ravi", Some("!!!")));
    assert_eq!(st, 400);
}

#[actix_rt::test]
async fn push_statuses_ledger_scope_and_quota_sqlite() {
    run(Kind::Sqlite).await;
}

#[actix_rt::test]
async fn push_statuses_ledger_scope_and_quota_postgres() {
    run(Kind::Postgres).await;
}
