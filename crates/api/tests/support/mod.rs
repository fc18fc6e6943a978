//! A migrated database with an area tree and one user per role, the app in process,
//! and request helpers. Shared by the in-process API tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use actix_web::test::TestRequest;
use baithak_api::{ApiConfig, AppState};
use baithak_domain::import::parse_area_csv;
use baithak_domain::{Role, UserId};
use baithak_media::BlobStore;
use baithak_store::{NewMedia, NewUser, Store};
use baithak_test_support::{Kind, TestDb};
use secrecy::SecretSlice;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

pub const TREE: &str = "code,name,kind,parent_code
UP,UP,state,
LKO,Lucknow,division,UP
LKO-PC,Lucknow seat,constituency,LKO
LKO-A1,Assembly 1,assembly,LKO-PC
LKO-A2,Assembly 2,assembly,LKO-PC
KNP,Kanpur,division,UP
KNP-PC,Kanpur seat,constituency,KNP
";
pub const PW: &str = "correct horse battery";
pub const USERS: [(&str, Role, &str); 5] = [
    ("ravi", Role::Incharge, "LKO-A1"),
    ("sita", Role::Incharge, "LKO-A2"),
    ("amit", Role::Incharge, "KNP-PC"),
    ("coord", Role::Coordinator, "LKO"),
    ("hq.audit", Role::Hq, "UP"),
];

pub struct World {
    pub db: TestDb,
    pub state: Arc<AppState>,
    pub tokens: HashMap<&'static str, String>,
}

pub fn world(kind: Kind) -> World {
    let db = TestDb::new(kind);
    let rows = parse_area_csv(TREE.as_bytes()).unwrap();
    db.store.import_areas(&rows, None, None, &|_| {}).unwrap();
    let hash = baithak_api::auth::hash_password(PW).unwrap();
    for (login, role, area) in USERS {
        let area = db.store.area_by_code(area).unwrap();
        db.store
            .create_user(
                &NewUser {
                    login: login.into(),
                    name: login.into(),
                    role,
                    area_id: area.id,
                    password_hash: hash.clone(),
                },
                None,
            )
            .unwrap();
    }
    let blobs = BlobStore::local(db.dir().join("photos")).unwrap();
    let state = AppState::new(
        db.store.clone(),
        blobs,
        db.dir().join("work"),
        &SecretSlice::from(vec![7u8; 32]),
        ApiConfig::default(),
    )
    .unwrap();
    World {
        db,
        state,
        tokens: HashMap::new(),
    }
}

impl World {
    pub fn user(&self, login: &str) -> baithak_store::User {
        self.db.store.user_by_login(login).unwrap().0
    }

    pub fn area(&self, code: &str) -> String {
        self.db.store.area_by_code(code).unwrap().id.to_string()
    }

    pub fn auth(&self, who: &str) -> (&'static str, String) {
        ("authorization", format!("Bearer {}", self.tokens[who]))
    }

    pub fn push(&self, who: &str, muts: Vec<Value>) -> TestRequest {
        TestRequest::post()
            .uri("/v1/sync/push")
            .insert_header(self.auth(who))
            .set_json(json!({"device_id": format!("dev-{who}"), "mutations": muts}))
    }

    pub fn get(&self, who: &str, uri: &str) -> TestRequest {
        TestRequest::get().uri(uri).insert_header(self.auth(who))
    }
}

pub fn login_request(login: &str) -> TestRequest {
    TestRequest::post()
        .uri("/v1/auth/login")
        .set_json(json!({"login": login, "password": PW, "device_id": format!("dev-{login}")}))
}

pub fn sha(n: u32) -> String {
    format!("{n:064x}")
}

/// Records a photo directly, with a chosen pHash.
pub fn photo(store: &Store, n: u32, phash: u64, owner: UserId) -> String {
    let s = sha(n);
    store
        .record_media(&NewMedia {
            sha256: s.clone(),
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
            uploaded_by: owner,
        })
        .unwrap();
    s
}

pub fn meeting(mid: &str, at: &str, area: &str, photos: Vec<&str>) -> Value {
    json!({"id": Uuid::now_v7(), "type": "meeting.upsert", "data": {
        "id": mid, "kind": "small_meeting", "occurred_at": at, "area_id": area,
        "location": {"lat": 26.85, "lon": 80.95, "accuracy_m": 12},
        "attendee_count": 14, "topic": "बिजली", "notes": "", "photos": photos}})
}

/// Yesterday in IST: inside the grace window and never in the future.
pub fn yesterday_ist() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::minutes(330)).date_naive() - chrono::Duration::days(1)
}

/// Calls the service and returns the status and JSON body (Null when empty).
#[macro_export]
macro_rules! call {
    ($app:expr, $req:expr) => {{
        let res = actix_web::test::call_service(&$app, $req.to_request()).await;
        let status = res.status().as_u16();
        let body = actix_web::test::read_body(res).await;
        let v: serde_json::Value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (status, v)
    }};
}

/// Logs every user in (one token each).
#[macro_export]
macro_rules! login_all {
    ($app:expr, $w:expr) => {{
        for (login, _, _) in support::USERS {
            let (st, body) = call!($app, support::login_request(login));
            assert_eq!(st, 200, "{body}");
            $w.tokens
                .insert(login, body["access_token"].as_str().unwrap().to_owned());
        }
    }};
}
