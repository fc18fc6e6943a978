//! Quota and compliance through the API, on SQLite and PostgreSQL: day boundaries in
//! the policy timezone, reviews lowering a day, late arrivals, a photo arriving after
//! its meeting, policy changes re-evaluating days, the compliance views, periodic
//! reviews, re-used real photos, and that recomputing from stored facts changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::test::{TestRequest, init_service};
use baithak_media::{IngestLimits, ingest};
use baithak_store::NewMedia;
use baithak_test_support::Kind;
use chrono::Duration;
use serde_json::{Value, json};
use std::io::Cursor;
use support::{meeting, photo, sha, world};
use uuid::Uuid;

const PHOTOS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/testdata/photos"
);

fn status_of(results: &Value) -> Vec<String> {
    results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn quota_flow(kind: Kind) {
    let mut w = world(kind);
    let app = init_service(baithak_api::app(w.state.clone())).await;
    login_all!(app, w);
    let ravi = w.user("ravi");
    let a1 = w.area("LKO-A1");
    let day = support::yesterday_ist();
    let at = |d: chrono::NaiveDate, hm: &str| format!("{d}T{hm}:00+05:30");
    let store = w.db.store.clone();

    // Four meetings 30 minutes apart: the day is met (4), not yet at target (5).
    let ids: Vec<String> = (0..4).map(|_| Uuid::now_v7().to_string()).collect();
    let photos: Vec<String> = (0..4)
        .map(|i| {
            photo(
                &store,
                100 + i,
                0x1111_1111_1111_1111u64.rotate_left(i * 7) ^ (u64::from(i) << 40),
                ravi.id,
            )
        })
        .collect();
    let times = ["10:00", "10:30", "11:00", "11:30"];
    let muts: Vec<Value> = (0..4)
        .map(|i| meeting(&ids[i], &at(day, times[i]), &a1, vec![&photos[i]]))
        .collect();
    let (_, res) = call!(app, w.push("ravi", muts));
    assert_eq!(status_of(&res), ["applied"; 4], "{res}");
    let day_s = day.to_string();
    let q = store.quota_days(&[ravi.id], &day_s, &day_s).unwrap();
    assert_eq!(
        (q[0].counted, q[0].status.as_str(), q[0].target_met),
        (4, "met", false)
    );

    // Day boundary: 23:50 IST is that day whatever offset the device used; 00:10 IST
    // is the next day.
    let late_night = Uuid::now_v7().to_string();
    let utc_form = (day - Duration::days(1)).and_hms_opt(18, 20, 0).unwrap();
    let (_, r) = call!(
        app,
        w.push(
            "ravi",
            vec![meeting(
                &late_night,
                &format!("{}Z", utc_form.format("%Y-%m-%dT%H:%M:%S")),
                &a1,
                vec![&photo(&store, 200, 0xAAAA_0000_5555_FFFF, ravi.id)]
            ),]
        )
    );
    assert_eq!(status_of(&r), ["applied"]);
    let (_, m) = call!(app, w.get("ravi", &format!("/v1/meetings/{late_night}")));
    assert_eq!(
        m["local_day"],
        (day - Duration::days(1)).to_string(),
        "18:20Z is 23:50 IST: {m}"
    );
    let after_midnight = Uuid::now_v7().to_string();
    let (_, _) = call!(
        app,
        w.push(
            "ravi",
            vec![meeting(
                &after_midnight,
                &at(day, "00:10"),
                &a1,
                vec![&photo(&store, 201, 0x0F0F_F0F0_0F0F_F0F0, ravi.id)]
            )]
        )
    );
    let (_, m) = call!(
        app,
        w.get("ravi", &format!("/v1/meetings/{after_midnight}"))
    );
    assert_eq!(m["local_day"], day.to_string());
    let q = store.quota_days(&[ravi.id], &day_s, &day_s).unwrap();
    assert_eq!(
        (q[0].counted, q[0].target_met),
        (5, true),
        "00:10 counts for the day"
    );

    // A coordinator rejects one meeting, with a reason: the day drops to 4; another
    // rejection makes it short. The in-charge's phone learns it through pull.
    let review = |who: &str, id: &str, body: Value| {
        TestRequest::post()
            .uri(&format!("/v1/meetings/{id}/review"))
            .insert_header(w.auth(who))
            .set_json(body)
    };
    let (st, _) = call!(
        app,
        review(
            "coord",
            &ids[1],
            json!({"decision": "rejected", "reason": "  "})
        )
    );
    assert_eq!(st, 400, "a reason is mandatory");
    let (st, _) = call!(
        app,
        review(
            "ravi",
            &ids[1],
            json!({"decision": "rejected", "reason": "x"})
        )
    );
    assert_eq!(st, 403);
    let (st, m) = call!(
        app,
        review(
            "coord",
            &ids[1],
            json!({"decision": "rejected", "reason": "photo is of a wall"})
        )
    );
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["review"]["decision"], "rejected");
    assert_eq!(m["counts"], false);
    assert!(
        m["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "rejected")
    );
    let (_, _) = call!(
        app,
        review(
            "hq.audit",
            &ids[2],
            json!({"decision": "rejected", "reason": "duplicate report"})
        )
    );
    let q = store.quota_days(&[ravi.id], &day_s, &day_s).unwrap();
    assert_eq!((q[0].counted, q[0].status.as_str()), (3, "short"));
    let (_, feed) = call!(app, w.get("ravi", "/v1/sync/pull?limit=1000"));
    let reviewed: Vec<&Value> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "meeting.reviewed")
        .collect();
    assert_eq!(reviewed.len(), 2);
    assert_eq!(reviewed[0]["data"]["reason"], "photo is of a wall");
    // An edit after a decision is refused.
    let (_, e) = call!(
        app,
        w.push(
            "ravi",
            vec![meeting(
                &ids[1],
                &at(day, "10:30"),
                &a1,
                vec![&photos[1], &photos[0]]
            )]
        )
    );
    assert_eq!(e["results"][0]["code"], "version_conflict");

    // Late arrival: a meeting from three days ago changes that past day; one from
    // nine days ago is recorded but flagged late.
    let d3 = day - Duration::days(2);
    let (_, r) = call!(
        app,
        w.push(
            "ravi",
            vec![meeting(
                &Uuid::now_v7().to_string(),
                &at(d3, "09:00"),
                &a1,
                vec![&photo(&store, 300, 0x1234_5678_9ABC_DEF0, ravi.id)]
            )]
        )
    );
    assert_eq!(status_of(&r), ["applied"]);
    let q = store
        .quota_days(&[ravi.id], &d3.to_string(), &d3.to_string())
        .unwrap();
    assert_eq!((q[0].counted, q[0].status.as_str()), (1, "short"));
    let old = Uuid::now_v7().to_string();
    let (_, _) = call!(
        app,
        w.push(
            "ravi",
            vec![meeting(
                &old,
                &at(day - Duration::days(8), "09:00"),
                &a1,
                vec![&photo(&store, 301, 0xFEDC_BA98_7654_3210, ravi.id)]
            )]
        )
    );
    let (_, m) = call!(app, w.get("ravi", &format!("/v1/meetings/{old}")));
    assert_eq!(m["counts"], false);
    assert!(
        m["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "late"),
        "{m}"
    );

    // A photo that arrives after its meeting: first missing_media (nothing stored),
    // then the photo is uploaded and the same push applies and counts.
    let later = Uuid::now_v7().to_string();
    let pending_sha = sha(400);
    let push_later = meeting(&later, &at(d3, "12:00"), &a1, vec![&pending_sha]);
    let (_, r) = call!(app, w.push("ravi", vec![push_later.clone()]));
    assert_eq!(status_of(&r), ["missing_media"]);
    let (st, _) = call!(app, w.get("ravi", &format!("/v1/meetings/{later}")));
    assert_eq!(st, 404);
    photo(&store, 400, 0x0000_FFFF_0000_FFFF, ravi.id);
    let (_, r) = call!(app, w.push("ravi", vec![push_later]));
    assert_eq!(status_of(&r), ["applied"]);
    let q = store
        .quota_days(&[ravi.id], &d3.to_string(), &d3.to_string())
        .unwrap();
    assert_eq!(q[0].counted, 2);

    // Policy: HQ only, guarded by version; min 3 turns the short day into met, and
    // every device hears of the change.
    let (st, pol) = call!(app, w.get("coord", "/v1/policy"));
    assert_eq!((st, pol["version"].as_i64()), (200, Some(0)));
    assert_eq!(pol["min_per_day"], 4);
    let mut edited = pol.clone();
    edited["min_per_day"] = json!(3);
    let put = |who: &str, body: &Value| {
        TestRequest::put()
            .uri("/v1/policy")
            .insert_header(w.auth(who))
            .set_json(body)
    };
    let (st, _) = call!(app, put("coord", &edited));
    assert_eq!(st, 403);
    let mut bad = edited.clone();
    bad["target_per_day"] = json!(2);
    let (st, body) = call!(app, put("hq.audit", &bad));
    assert_eq!(st, 400, "{body}");
    let (st, body) = call!(app, put("hq.audit", &edited));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["version"], 1);
    let q = store.quota_days(&[ravi.id], &day_s, &day_s).unwrap();
    assert_eq!((q[0].counted, q[0].status.as_str()), (3, "met"));
    let (st, body) = call!(app, put("hq.audit", &edited));
    assert_eq!((st, body["code"].as_str()), (409, Some("version_conflict")));
    let (_, feed) = call!(app, w.get("amit", "/v1/sync/pull"));
    assert!(
        feed["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "policy.changed")
    );

    // Compliance views.
    let (st, daily) = call!(
        app,
        w.get("coord", &format!("/v1/compliance/daily?from={d3}&to={day}"))
    );
    assert_eq!(st, 200, "{daily}");
    let rows = daily["incharges"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "ravi and sita, not amit");
    let ravi_row = rows.iter().find(|r| r["name"] == "ravi").unwrap();
    let days: Vec<(String, String)> = ravi_row["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                d["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(days.len(), 3);
    assert_eq!(days[2], (day.to_string(), "met".to_owned()));
    let (st, _) = call!(app, w.get("ravi", "/v1/compliance/daily"));
    assert_eq!(st, 403);
    let knp = w.area("KNP");
    let (st, _) = call!(
        app,
        w.get("coord", &format!("/v1/compliance/daily?area_id={knp}"))
    );
    assert_eq!(st, 404);
    let (st, summary) = call!(
        app,
        w.get(
            "hq.audit",
            &format!("/v1/compliance/summary?from={day}&to={day}")
        )
    );
    assert_eq!(st, 200, "{summary}");
    let ravi_sum = summary["incharges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ravi")
        .unwrap();
    assert_eq!(
        (
            ravi_sum["days_met"].as_u64(),
            ravi_sum["current_streak"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let codes: Vec<&str> = summary["areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["KNP", "LKO"]);
    let (st, inactive) = call!(app, w.get("coord", "/v1/compliance/inactive"));
    assert_eq!(st, 200);
    assert!(
        inactive["items"].as_array().unwrap().is_empty(),
        "new accounts are not inactive: {inactive}"
    );

    // Reviews: everyone starts overdue; a review with its snapshot clears it.
    let (_, overdue) = call!(app, w.get("coord", "/v1/reviews/overdue"));
    assert_eq!(overdue["items"].as_array().unwrap().len(), 2);
    let (st, rev) = call!(
        app,
        TestRequest::post()
            .uri("/v1/reviews")
            .insert_header(w.auth("coord"))
            .set_json(json!({
            "incharge_id": ravi.id, "period_from": d3, "period_to": day,
            "notes": "अच्छा काम", "action": "ok"}))
    );
    assert_eq!(st, 201, "{rev}");
    assert_eq!(rev["snapshot"]["days"].as_array().unwrap().len(), 3);
    assert_eq!(rev["snapshot"]["summary"]["days_met"], 1);
    let (_, overdue) = call!(app, w.get("coord", "/v1/reviews/overdue"));
    let names: Vec<&str> = overdue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sita"]);
    let amit = w.user("amit");
    let (st, _) = call!(
        app,
        TestRequest::post()
            .uri("/v1/reviews")
            .insert_header(w.auth("coord"))
            .set_json(json!({
            "incharge_id": amit.id, "period_from": d3, "period_to": day, "action": "ok"}))
    );
    assert_eq!(st, 404, "outside the coordinator's division");

    // Meetings list with filters.
    let (_, list) = call!(
        app,
        w.get(
            "coord",
            &format!("/v1/meetings?from={day}&to={day}&status=rejected")
        )
    );
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let (_, list) = call!(app, w.get("sita", "/v1/meetings"));
    assert!(list["items"].as_array().unwrap().is_empty());
    let (st, _) = call!(app, w.get("sita", &format!("/v1/meetings/{}", ids[0])));
    assert_eq!(st, 404);

    // Recomputing everything from stored facts changes nothing and publishes nothing.
    let head = store.feed_head().unwrap();
    let n = store
        .sync_tx(|tx| baithak_api::quota::recompute_all(tx, chrono::Utc::now()))
        .unwrap();
    assert!(n >= 4, "{n} days");
    assert_eq!(
        store.feed_head().unwrap(),
        head,
        "incremental state equals a full recompute"
    );
}

#[actix_rt::test]
async fn quota_rules_through_the_api_sqlite() {
    quota_flow(Kind::Sqlite).await;
}

#[actix_rt::test]
async fn quota_rules_through_the_api_postgres() {
    quota_flow(Kind::Postgres).await;
}

/// HQ moves the policy from IST to UTC: a meeting at 03:00 IST belongs to the previous
/// UTC day, so it leaves one open day for another; both days are re-evaluated and
/// published, a full recompute agrees, and moving back restores the original days.
async fn timezone_change(kind: Kind) {
    let mut w = world(kind);
    let app = init_service(baithak_api::app(w.state.clone())).await;
    login_all!(app, w);
    let ravi = w.user("ravi");
    let a1 = w.area("LKO-A1");
    let store = w.db.store.clone();
    let day = support::yesterday_ist() - Duration::days(1);
    let before = day - Duration::days(1);
    let (early, noon) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let p1 = photo(&store, 901, 0x0F0F_0F0F_0F0F_0F0F, ravi.id);
    let p2 = photo(&store, 902, 0x3C3C_A5A5_5A5A_C3C3, ravi.id);
    let (_, res) = call!(
        app,
        w.push(
            "ravi",
            vec![
                meeting(&early, &format!("{day}T03:00:00+05:30"), &a1, vec![&p1]),
                meeting(&noon, &format!("{day}T12:00:00Z"), &a1, vec![&p2]),
            ]
        )
    );
    assert_eq!(status_of(&res), ["applied", "applied"]);
    let submitted = |d: chrono::NaiveDate| {
        store
            .quota_days(&[ravi.id], &d.to_string(), &d.to_string())
            .unwrap()
            .first()
            .map_or(0, |q| q.submitted)
    };
    assert_eq!((submitted(before), submitted(day)), (0, 2));
    let head = store.feed_head().unwrap();

    let (_, pol) = call!(app, w.get("hq.audit", "/v1/policy"));
    let put = |body: &Value| {
        TestRequest::put()
            .uri("/v1/policy")
            .insert_header(w.auth("hq.audit"))
            .set_json(body)
    };
    let mut utc_policy = pol.clone();
    utc_policy["timezone"] = json!("UTC");
    let (st, body) = call!(app, put(&utc_policy));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["timezone"], "UTC");
    let early_id: Uuid = early.parse().unwrap();
    let noon_id: Uuid = noon.parse().unwrap();
    assert_eq!(
        store.meeting(early_id).unwrap().local_day,
        before.to_string()
    );
    assert_eq!(store.meeting(noon_id).unwrap().local_day, day.to_string());
    assert_eq!((submitted(before), submitted(day)), (1, 1));

    // Ravi's phone hears about both days.
    let (_, feed) = call!(app, w.get("ravi", "/v1/sync/pull?limit=1000"));
    assert_eq!(feed["has_more"], false);
    let days: Vec<&str> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "quota.day" && c["seq"].as_i64().unwrap() > head)
        .map(|c| c["data"]["date"].as_str().unwrap())
        .collect();
    assert!(days.contains(&before.to_string().as_str()), "{feed}");
    assert!(days.contains(&day.to_string().as_str()), "{feed}");

    let head = store.feed_head().unwrap();
    store
        .sync_tx(|tx| baithak_api::quota::recompute_all(tx, chrono::Utc::now()))
        .unwrap();
    assert_eq!(store.feed_head().unwrap(), head, "a recompute agrees");

    // Back to IST: the meeting returns to its day.
    let mut ist_policy = pol.clone();
    ist_policy["version"] = body["version"].clone();
    let (st, body) = call!(app, put(&ist_policy));
    assert_eq!(st, 200, "{body}");
    assert_eq!(store.meeting(early_id).unwrap().local_day, day.to_string());
    assert_eq!((submitted(before), submitted(day)), (0, 2));
}

#[actix_rt::test]
async fn timezone_change_regroups_open_days_sqlite() {
    timezone_change(Kind::Sqlite).await;
}

#[actix_rt::test]
async fn timezone_change_regroups_open_days_postgres() {
    timezone_change(Kind::Postgres).await;
}

fn record_real(
    store: &baithak_store::Store,
    bytes: &[u8],
    owner: baithak_domain::UserId,
) -> String {
    let ing = ingest(bytes, &IngestLimits::default()).unwrap();
    let (rec, _) = store
        .record_media(&NewMedia {
            sha256: ing.sha256.to_hex(),
            media_type: ing.media_type.mime().into(),
            bytes: ing.bytes,
            width: ing.width,
            height: ing.height,
            taken_at: None,
            taken_at_local: None,
            gps_lat: ing.exif.gps.map(|g| g.lat),
            gps_lon: ing.exif.gps.map(|g| g.lon),
            orientation: ing.exif.orientation.unwrap_or(1),
            phash: ing.phash,
            uploaded_by: owner,
        })
        .unwrap();
    rec.sha256
}

fn recompressed(bytes: &[u8], quality: u8, scale: Option<u32>) -> Vec<u8> {
    let mut img = image::load_from_memory(bytes).unwrap();
    if let Some(width) = scale {
        img = img.resize(width, width, image::imageops::FilterType::Triangle);
    }
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&img.to_rgb8())
        .unwrap();
    out.into_inner()
}

/// A re-used real photo, recompressed or resized, does not count again, across
/// in-charges; a different photo does.
async fn reused_photos(kind: Kind) {
    let mut w = world(kind);
    let app = init_service(baithak_api::app(w.state.clone())).await;
    login_all!(app, w);
    let store = w.db.store.clone();
    let (ravi, sita) = (w.user("ravi"), w.user("sita"));
    let original = std::fs::read(format!("{PHOTOS}/Nikon_D70.jpg")).unwrap();
    let other = std::fs::read(format!("{PHOTOS}/gps/DSCN0010.jpg")).unwrap();
    let p_orig = record_real(&store, &original, ravi.id);
    let p_recomp = record_real(&store, &recompressed(&original, 60, None), sita.id);
    let p_small = record_real(&store, &recompressed(&original, 85, Some(1000)), ravi.id);
    let p_other = record_real(&store, &other, sita.id);
    assert_ne!(p_orig, p_recomp);

    let day = support::yesterday_ist();
    let at = |hm: &str| format!("{day}T{hm}:00+05:30");
    let (a1, a2) = (w.area("LKO-A1"), w.area("LKO-A2"));
    let first = Uuid::now_v7().to_string();
    let (_, r) = call!(
        app,
        w.push(
            "ravi",
            vec![meeting(&first, &at("09:00"), &a1, vec![&p_orig])]
        )
    );
    assert_eq!(r["results"][0]["status"], "applied");
    let by_sita = Uuid::now_v7().to_string();
    let sita_other = Uuid::now_v7().to_string();
    let (_, _) = call!(
        app,
        w.push(
            "sita",
            vec![
                meeting(&by_sita, &at("10:00"), &a2, vec![&p_recomp]),
                meeting(&sita_other, &at("11:00"), &a2, vec![&p_other]),
            ]
        )
    );
    let again = Uuid::now_v7().to_string();
    let (_, _) = call!(
        app,
        w.push(
            "ravi",
            vec![meeting(&again, &at("12:00"), &a1, vec![&p_small])]
        )
    );

    for (id, dup) in [
        (&first, false),
        (&by_sita, true),
        (&sita_other, false),
        (&again, true),
    ] {
        let (_, m) = call!(app, w.get("hq.audit", &format!("/v1/meetings/{id}")));
        let flagged = m["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "duplicate_photo");
        assert_eq!(flagged.is_some(), dup, "{m}");
        assert_eq!(m["counts"], !dup, "{m}");
        if let Some(f) = flagged {
            assert_eq!(f["related_meeting_id"], first.as_str());
        }
    }

    // Accepting a duplicate keeps its duplicate verdict (a review re-evaluates the day
    // without searching the other meetings' photos again), and the state kept by these
    // partial searches equals a full recompute.
    let (st, m) = call!(
        app,
        TestRequest::post()
            .uri(&format!("/v1/meetings/{by_sita}/review"))
            .insert_header(w.auth("hq.audit"))
            .set_json(json!({"decision": "accepted", "reason": "looked at it"}))
    );
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["counts"], false, "{m}");
    let head = store.feed_head().unwrap();
    store
        .sync_tx(|tx| baithak_api::quota::recompute_all(tx, chrono::Utc::now()))
        .unwrap();
    assert_eq!(
        store.feed_head().unwrap(),
        head,
        "recompute changed nothing"
    );
}

#[actix_rt::test]
async fn reused_real_photos_are_caught_sqlite() {
    reused_photos(Kind::Sqlite).await;
}

#[actix_rt::test]
async fn reused_real_photos_are_caught_postgres() {
    reused_photos(Kind::Postgres).await;
}
