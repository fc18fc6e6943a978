//! End to end: the real binary, its command line and the auth, area and user endpoints,
//! as each role sees them, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use baithak_test_support::Kind;
use common::{AREAS, Server, start, start_replica};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

fn setup(s: &Server) {
    std::fs::create_dir_all(&s.data_dir).unwrap();
    let bad = s.data_dir.join("bad.csv");
    std::fs::write(&bad, format!("{AREAS}BAD,Nowhere,booth,MISSING\n")).unwrap();
    let (ok, _, err) = s.cli(&["areas", "import", bad.to_str().unwrap()], None);
    assert!(!ok);
    assert!(err.contains("line 10"), "bad row must name its line: {err}");
    let good = s.data_dir.join("areas.csv");
    std::fs::write(&good, AREAS).unwrap();
    let (ok, out, err) = s.cli(&["areas", "import", good.to_str().unwrap()], None);
    assert!(ok, "{err}");
    assert!(out.contains("8 created"), "{out}");
    // Idempotent by code.
    let (ok, out, _) = s.cli(&["areas", "import", good.to_str().unwrap()], None);
    assert!(ok && out.contains("8 unchanged"), "{out}");
    s.add_user("admin", "admin", "UP", PW);
}

fn ids(items: &Value, key: &str) -> Vec<String> {
    items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[key].as_str().unwrap().to_owned())
        .collect()
}

async fn area_id(s: &Server, token: &str, code: &str) -> String {
    let (st, page) = s
        .call(
            Method::GET,
            &format!("/v1/areas?code={code}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    page["items"][0]["id"].as_str().unwrap().to_owned()
}

async fn flow(kind: Kind) {
    let s = start(kind, &[]);
    setup(&s);
    let admin = s.token("admin", PW).await;

    // Admin creates a coordinator for Lucknow and an HQ auditor.
    let lko = area_id(&s, &admin, "LKO").await;
    let knp_ac = area_id(&s, &admin, "KNP-AC1").await;
    let up = area_id(&s, &admin, "UP").await;
    let (st, coord) = s
        .call(
            Method::POST,
            "/v1/users",
            Some(&admin),
            Some(json!({
            "login": "coord.lko", "name": "समन्वयक", "role": "coordinator",
            "area_id": lko, "password": PW})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{coord}");
    assert_eq!(coord["name"], "समन्वयक", "Hindi round-trips");
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/users",
            Some(&admin),
            Some(json!({
            "login": "hq.audit", "name": "HQ", "role": "hq", "area_id": up, "password": PW})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, dup) = s
        .call(
            Method::POST,
            "/v1/users",
            Some(&admin),
            Some(json!({
            "login": "HQ.Audit", "name": "HQ again", "role": "hq", "area_id": up, "password": PW})),
        )
        .await;
    assert_eq!(
        (st, dup["code"].as_str()),
        (StatusCode::CONFLICT, Some("login_taken"))
    );

    // The coordinator creates in-charges in its division only, and no other role.
    let coordinator = s.token("coord.lko", PW).await;
    let lko_ac = area_id(&s, &coordinator, "LKO-AC1").await;
    let (st, ravi) = s
        .call(Method::POST, "/v1/users", Some(&coordinator), Some(json!({
            "login": "ravi", "name": "रवि", "role": "incharge", "area_id": lko_ac, "password": PW})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{ravi}");
    let (st, outside) = s
        .call(Method::POST, "/v1/users", Some(&coordinator), Some(json!({
            "login": "amit", "name": "Amit", "role": "incharge", "area_id": knp_ac, "password": PW})))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{outside}");
    assert_eq!(outside["errors"][0]["field"], "area_id");
    let (st, _) = s
        .call(Method::POST, "/v1/users", Some(&coordinator), Some(json!({
            "login": "coord.two", "name": "C2", "role": "coordinator", "area_id": lko_ac, "password": PW})))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .call(Method::POST, "/v1/users", Some(&admin), Some(json!({
            "login": "amit", "name": "Amit", "role": "incharge", "area_id": knp_ac, "password": PW})))
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // Users as each role sees them.
    let (st, all) = s.call(Method::GET, "/v1/users", Some(&admin), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        ids(&all, "login"),
        ["admin", "coord.lko", "hq.audit", "ravi", "amit"]
    );
    let (_, mine) = s
        .call(Method::GET, "/v1/users", Some(&coordinator), None)
        .await;
    assert_eq!(ids(&mine, "login"), ["coord.lko", "ravi"]);
    let (_, page1) = s
        .call(Method::GET, "/v1/users?limit=2", Some(&admin), None)
        .await;
    assert_eq!(ids(&page1, "login"), ["admin", "coord.lko"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = s
        .call(
            Method::GET,
            &format!("/v1/users?limit=2&cursor={cursor}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ids(&page2, "login"), ["hq.audit", "ravi"]);
    let amit_id = all["items"][4]["id"].as_str().unwrap().to_owned();
    let ravi_id = ravi["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/v1/users/{amit_id}"),
            Some(&coordinator),
            None,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "outside the scope reads as absent"
    );
    let (st, _) = s
        .call(Method::GET, "/v1/users/not-a-uuid", Some(&admin), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let incharge = s.token("ravi", PW).await;
    let (st, _) = s
        .call(Method::GET, "/v1/users", Some(&incharge), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, me) = s
        .call(
            Method::GET,
            &format!("/v1/users/{ravi_id}"),
            Some(&incharge),
            None,
        )
        .await;
    assert_eq!((st, me["login"].as_str()), (StatusCode::OK, Some("ravi")));
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/v1/users/{ravi_id}"),
            Some(&incharge),
            Some(json!({"name": "Ravi K"})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/v1/users/{amit_id}"),
            Some(&coordinator),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = s
        .call(
            Method::PATCH,
            &format!("/v1/users/{ravi_id}"),
            Some(&coordinator),
            Some(json!({"name": "रवि कुमार", "nickname": "x"})),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {body}"
    );
    let (st, body) = s
        .call(
            Method::PATCH,
            &format!("/v1/users/{ravi_id}"),
            Some(&coordinator),
            Some(json!({"name": "रवि कुमार"})),
        )
        .await;
    assert_eq!(
        (st, body["name"].as_str()),
        (StatusCode::OK, Some("रवि कुमार"))
    );

    // Areas: own subtree plus ancestors marked as such.
    let (st, areas) = s
        .call(Method::GET, "/v1/areas", Some(&incharge), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let codes: Vec<(String, bool)> = areas["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["code"].as_str().unwrap().to_owned(),
                a["ancestor"] == true,
            )
        })
        .collect();
    let expect: Vec<(String, bool)> = [
        ("UP", true),
        ("LKO", true),
        ("LKO-PC", true),
        ("LKO-AC1", false),
        ("LKO-AC1-B1", false),
    ]
    .iter()
    .map(|(c, a)| ((*c).to_owned(), *a))
    .collect();
    assert_eq!(codes, expect);
    let (_, knp) = s
        .call(
            Method::GET,
            "/v1/areas?code=KNP-AC1",
            Some(&coordinator),
            None,
        )
        .await;
    assert!(knp["items"].as_array().unwrap().is_empty(), "{knp}");

    // Area import over HTTP: admin only, a bad row names its line and changes nothing.
    let res = s
        .http
        .post(s.url("/v1/areas/import"))
        .bearer_auth(&coordinator)
        .header("content-type", "text/csv")
        .body(AREAS)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = s
        .http
        .post(s.url("/v1/areas/import"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body("code,name,kind,parent_code\nLKO-AC2,North,assembly,LKO-PC\nX,Y,planet,LKO\n")
        .send()
        .await
        .unwrap();
    let (st, body) = common::read(res).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "line 3");
    let (_, none) = s
        .call(Method::GET, "/v1/areas?code=LKO-AC2", Some(&admin), None)
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());

    // 401s.
    let (st, body) = s.call(Method::GET, "/v1/areas", None, None).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
    let (st, _) = s
        .call(Method::GET, "/v1/areas", Some("garbage.token.here"), None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, same1) = s
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"login": "ravi", "password": "wrong password", "device_id": "d"})),
        )
        .await;
    let (st2, same2) = s
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"login": "nobody", "password": "wrong password", "device_id": "d"})),
        )
        .await;
    assert_eq!(
        (st, st2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        same1, same2,
        "unknown login and wrong password look the same"
    );

    // Refresh rotates; a spent token revokes the device session.
    let first = s.login("ravi", PW, "phone-1").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (st, second) = s
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{second}");
    assert_eq!(second["user"]["name"], "रवि कुमार");
    let access2 = second["access_token"].as_str().unwrap().to_owned();
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    let (st, _) = s.call(Method::GET, "/v1/areas", Some(&access2), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = s
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("refresh_token_reused"))
    );
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": r2})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the whole session is gone");
    let (st, body) = s.call(Method::GET, "/v1/areas", Some(&access2), None).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_revoked"))
    );

    // Logout ends the session at once; other devices keep theirs.
    let (st, _) = s
        .call(Method::POST, "/v1/auth/logout", Some(&incharge), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s
        .call(Method::GET, "/v1/areas", Some(&incharge), None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = s
        .call(Method::GET, "/v1/areas", Some(&coordinator), None)
        .await;
    assert_eq!(st, StatusCode::OK);

    // Deactivation locks the account out of every device.
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/v1/users/{ravi_id}"),
            Some(&coordinator),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"login": "ravi", "password": PW, "device_id": "d"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Body limits and health.
    let big = json!({"refresh_token": "x".repeat(3 * 1024 * 1024)});
    let (st, body) = s
        .call(Method::POST, "/v1/auth/refresh", None, Some(big))
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let res = s
        .http
        .post(s.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(common::read(res).await.0, StatusCode::BAD_REQUEST);
    let (st, _) = s.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("baithak_http_requests_total{class=\"4xx\"}"),
        "{metrics}"
    );
    let (st, spec) = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(spec["paths"]["/v1/sync/push"].is_object());
    let (st, _) = s.call(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .call(Method::DELETE, "/v1/users", Some(&admin), None)
        .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_sessions_and_scope_sqlite() {
    flow(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_sessions_and_scope_postgres() {
    flow(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_rate_limited() {
    let s = start(Kind::Sqlite, &[]);
    setup(&s);
    let mut last = None;
    for _ in 0..6 {
        let res = s
            .http
            .post(s.url("/v1/auth/login"))
            .json(&json!({"login": "admin", "password": "guess", "device_id": "d"}))
            .send()
            .await
            .unwrap();
        last = Some((res.status(), res.headers().get("retry-after").cloned()));
    }
    let (status, retry) = last.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = retry.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs));
    // Even the right password waits until the budget refills.
    let (st, _) = s
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"login": "admin", "password": PW, "device_id": "d"})),
        )
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
}

/// Two replicas on one database: failures counted on one block the login on the
/// other, so the limit does not grow with the number of replicas.
#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_count_across_replicas() {
    let env = [(
        "BAITHAK_JWT_SECRET",
        "replicas share this secret, 32+ bytes",
    )];
    let a = start(Kind::Postgres, &env);
    setup(&a);
    let b = start_replica(&a, &env);
    let guess = json!({"login": "admin", "password": "guess", "device_id": "d"});
    for (n, s) in [&a, &b, &a, &b, &a].into_iter().enumerate() {
        let (st, body) = s
            .call(Method::POST, "/v1/auth/login", None, Some(guess.clone()))
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "failure {n}: {body}");
    }
    let (st, _) = b
        .call(Method::POST, "/v1/auth/login", None, Some(guess.clone()))
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    let right = json!({"login": "admin", "password": PW, "device_id": "d"});
    for s in [&a, &b] {
        let (st, _) = s
            .call(Method::POST, "/v1/auth/login", None, Some(right.clone()))
            .await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    }
}

/// 16 devices log in at once while an admin edits their accounts, on SQLite: every
/// request must succeed (no "database is locked" surfacing as an error).
#[tokio::test(flavor = "multi_thread")]
async fn parallel_logins_and_updates_on_sqlite() {
    let s = start(Kind::Sqlite, &[]);
    setup(&s);
    let admin = s.token("admin", PW).await;
    let ac = area_id(&s, &admin, "LKO-AC1").await;
    let mut ids = Vec::new();
    for i in 0..16 {
        let (st, u) = s
            .call(
                Method::POST,
                "/v1/users",
                Some(&admin),
                Some(json!({
                "login": format!("field{i}"), "name": format!("Field {i}"),
                "role": "incharge", "area_id": ac, "password": PW})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let s = s.clone();
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let login = s
                .login(&format!("field{i}"), PW, &format!("phone-{i}"))
                .await;
            let refresh = login["refresh_token"].as_str().unwrap().to_owned();
            let (st, body) = s
                .call(
                    Method::PATCH,
                    &format!("/v1/users/{id}"),
                    Some(&admin),
                    Some(json!({"name": format!("Field worker {i}")})),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{body}");
            let (st, body) = s
                .call(
                    Method::POST,
                    "/v1/auth/refresh",
                    None,
                    Some(json!({"refresh_token": refresh})),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{body}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
