//! Feedback read-back, the audit log and assignment changes through the API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use actix_web::test::{TestRequest, init_service};
use baithak_test_support::Kind;
use serde_json::json;
use support::world;
use uuid::Uuid;

async fn flow(kind: Kind) {
    let mut w = world(kind);
    let app = init_service(baithak_api::app(w.state.clone())).await;
    login_all!(app, w);
    let seat = w.area("LKO-PC");
    let day = support::yesterday_ist();
    let fb = |subject: &str, rating: u8| {
        json!({"id": Uuid::now_v7(), "type": "feedback.create", "data": {
            "id": Uuid::now_v7(), "constituency_id": seat, "subject": subject, "rating": rating,
            "text": "जनता खुश है", "collected_at": format!("{day}T10:00:00+05:30"), "respondents": 5}})
    };
    let (_, r) = call!(
        app,
        w.push("ravi", vec![fb("नेता A", 4), fb("नेता A", 2), fb("नेता B", 5)])
    );
    assert!(
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "applied"),
        "{r}"
    );
    let (_, r) = call!(app, w.push("sita", vec![fb("नेता A", 3)]));
    assert_eq!(r["results"][0]["status"], "applied");

    let (_, mine) = call!(app, w.get("ravi", "/v1/feedback"));
    assert_eq!(mine["items"].as_array().unwrap().len(), 3);
    let (_, all) = call!(
        app,
        w.get("coord", &format!("/v1/feedback?constituency_id={seat}"))
    );
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    assert_eq!(all["items"][0]["text"], "जनता खुश है");
    let (_, none) = call!(app, w.get("amit", "/v1/feedback"));
    assert!(none["items"].as_array().unwrap().is_empty());
    let (st, sum) = call!(
        app,
        w.get(
            "coord",
            &format!("/v1/feedback/summary?constituency_id={seat}")
        )
    );
    assert_eq!(st, 200, "{sum}");
    let a = &sum["subjects"][0];
    assert_eq!(
        (
            a["subject"].as_str(),
            a["count"].as_i64(),
            a["respondents"].as_i64()
        ),
        (Some("नेता A"), Some(3), Some(15))
    );
    assert!((a["mean_rating"].as_f64().unwrap() - 3.0).abs() < 1e-9);
    let knp = w.area("KNP-PC");
    let (st, _) = call!(
        app,
        w.get(
            "coord",
            &format!("/v1/feedback/summary?constituency_id={knp}")
        )
    );
    assert_eq!(st, 404);

    // A coordinator moves an in-charge: the phone hears of it.
    let ravi = w.user("ravi");
    let a2 = w.area("LKO-A2");
    let (st, _) = call!(
        app,
        TestRequest::patch()
            .uri(&format!("/v1/users/{}", ravi.id))
            .insert_header(w.auth("coord"))
            .set_json(json!({"area_id": a2}))
    );
    assert_eq!(st, 200);
    let (_, feed) = call!(app, w.get("ravi", "/v1/sync/pull"));
    let moved = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "assignment.changed")
        .unwrap();
    assert_eq!(moved["data"]["area_id"], a2.as_str());

    // Audit: HQ reads the chain and verifies it; others may not.
    let (st, _) = call!(app, w.get("coord", "/v1/audit"));
    assert_eq!(st, 403);
    let (st, page) = call!(app, w.get("hq.audit", "/v1/audit?limit=1000"));
    assert_eq!(st, 200);
    let actions: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"user.update"), "{actions:?}");
    let (_, v) = call!(app, w.get("hq.audit", "/v1/audit/verify"));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["entries"].as_i64().unwrap() as usize, actions.len());
}

#[actix_rt::test]
async fn feedback_audit_and_assignments_sqlite() {
    flow(Kind::Sqlite).await;
}

#[actix_rt::test]
async fn feedback_audit_and_assignments_postgres() {
    flow(Kind::Postgres).await;
}
