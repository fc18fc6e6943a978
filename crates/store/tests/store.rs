//! Store behaviour, each test on SQLite and on PostgreSQL with a fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baithak_domain::import::parse_area_csv;
use baithak_domain::{AreaPath, Role, UserId};
use baithak_store::areas::ImportFailure;
use baithak_store::{NewSession, NewUser, RotateOutcome, Store, StoreError, UserPatch, now_utc};
use baithak_test_support::both_backends;
use chrono::Duration;
use diesel::prelude::*;

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

fn session(
    store: &Store,
    user: UserId,
    device: &str,
    hash: &str,
) -> baithak_store::SessionPrincipal {
    store
        .create_session(
            &NewSession {
                user_id: user,
                device_id: device.into(),
                device_name: Some("Redmi 9A".into()),
                refresh_hash: hash.into(),
                refresh_ttl: Duration::days(60),
            },
            now_utc(),
        )
        .unwrap()
}

both_backends!(fn migrations_are_idempotent(db) {
    assert!(db.store.migrate().unwrap().is_empty());
    db.store.ping().unwrap();
    assert!(db.store.is_empty().unwrap());
});

both_backends!(fn import_builds_a_scoped_tree(db) {
    let s = &db.store;
    seed(s);
    assert!(!s.is_empty().unwrap());
    let up = s.area_by_code("UP").unwrap();
    assert_eq!(up.name, "उत्तर प्रदेश");
    let lko = s.area_by_code("LKO").unwrap();
    let in_lko: Vec<_> = s
        .areas_in_subtree(&lko.path, None, None, 100)
        .unwrap()
        .into_iter()
        .map(|a| a.code)
        .collect();
    assert_eq!(in_lko, ["LKO", "LKO-S", "LKO-A1", "LKO-B1"]);
    // Paging by path walks the whole tree exactly once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.areas_in_subtree(&up.path, None, after.as_deref(), 2).unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|a| a.path.as_str().to_owned());
        seen.extend(page.into_iter().map(|a| a.code));
    }
    assert_eq!(seen.len(), 7);
    let only = s.areas_in_subtree(&up.path, Some("KNP-S"), None, 10).unwrap();
    assert_eq!(only.len(), 1);
    assert!(s.areas_in_subtree(&lko.path, Some("KNP-S"), None, 10).unwrap().is_empty());
    let booth = s.area_by_code("LKO-B1").unwrap();
    let anc = s.areas_by_ids(&booth.path.ancestors()).unwrap();
    assert_eq!(anc.len(), 4);
});

both_backends!(fn reimport_is_idempotent_and_a_bad_row_imports_nothing(db) {
    let s = &db.store;
    seed(s);
    let rows = parse_area_csv(TREE.as_bytes()).unwrap();
    let again = s.import_areas(&rows, None, None, &|_| {}).unwrap();
    assert_eq!((again.created, again.renamed, again.unchanged), (0, 0, 7));
    let bad = parse_area_csv(
        "code,name,kind,parent_code\nNEW1,New,constituency,KNP\nNEW2,Bad,division,NOWHERE\n".as_bytes(),
    )
    .unwrap();
    match s.import_areas(&bad, None, None, &|_| {}) {
        Err(ImportFailure::Row(e)) => assert_eq!(e.line, 3),
        other => panic!("expected a row error, got {other:?}"),
    }
    assert!(matches!(s.area_by_code("NEW1"), Err(StoreError::NotFound)));
    // Scoped import: a coordinator's admin cannot add outside the subtree.
    let lko = s.area_by_code("LKO").unwrap();
    let outside = parse_area_csv("code,name,kind,parent_code\nX,X,constituency,KNP\n".as_bytes()).unwrap();
    assert!(s.import_areas(&outside, Some(&lko.path), None, &|_| {}).is_err());
});

both_backends!(fn area_places_match_the_tree_and_survive_renames(db) {
    let s = &db.store;
    seed(s);
    let seat = s.area_by_code("LKO-S").unwrap();
    for _ in 0..2 {
        // The first call reads the database, the second is answered from memory.
        let place = s.area_place(seat.id).unwrap();
        assert_eq!((place.id, place.kind, &place.path), (seat.id, seat.kind, &seat.path));
    }
    assert!(matches!(
        s.area_place(baithak_domain::AreaId(uuid::Uuid::now_v7())),
        Err(StoreError::NotFound)
    ));
    let renamed = parse_area_csv(
        "code,name,kind,parent_code\nLKO-S,Lucknow Central,constituency,LKO\nNEW1,New,constituency,KNP\n"
            .as_bytes(),
    )
    .unwrap();
    let summary = s.import_areas(&renamed, None, None, &|_| {}).unwrap();
    assert_eq!((summary.created, summary.renamed), (1, 1));
    assert_eq!(s.area(seat.id).unwrap().name, "Lucknow Central");
    assert_eq!(s.area_place(seat.id).unwrap().path, seat.path);
    // An area added after others were remembered is found like any other.
    let new = s.area_by_code("NEW1").unwrap();
    let place = s.area_place(new.id).unwrap();
    assert_eq!((place.kind, place.path), (new.kind, new.path));
});

both_backends!(fn users_are_unique_scoped_and_updatable(db) {
    let s = &db.store;
    seed(s);
    let coord = add_user(s, "coord.lko", Role::Coordinator, "LKO");
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    add_user(s, "ic2", Role::Incharge, "KNP-S");
    let dup = s.create_user(
        &NewUser { login: "ic1".into(), name: "x".into(), role: Role::Incharge, area_id: coord.area_id, password_hash: "h".into() },
        None,
    );
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let missing_area = s.create_user(
        &NewUser { login: "ic9".into(), name: "x".into(), role: Role::Incharge, area_id: baithak_domain::AreaId::new(), password_hash: "h".into() },
        None,
    );
    assert!(matches!(missing_area, Err(StoreError::Invalid(_))), "{missing_area:?}");

    let in_lko = s.users_in_subtree(&coord.area_path, None, 10).unwrap();
    assert_eq!(in_lko.iter().map(|u| u.login.as_str()).collect::<Vec<_>>(), ["coord.lko", "ic1"]);
    let page1 = s.users_in_subtree(&AreaPath::parse(s.area_by_code("UP").unwrap().path.as_str()).unwrap(), None, 2).unwrap();
    let page2 = s.users_in_subtree(&s.area_by_code("UP").unwrap().path, Some(page1[1].id), 2).unwrap();
    assert_eq!(page1.len() + page2.len(), 3);

    let (found, hash) = s.user_by_login("ic1").unwrap();
    assert_eq!((found.id, hash.as_str()), (ic.id, "hash"));
    let moved = s
        .update_user(ic.id, &UserPatch { name: Some("रवि".into()), area_id: Some(s.area_by_code("LKO-A1").unwrap().id), ..Default::default() }, Some(coord.id))
        .unwrap();
    assert_eq!(moved.name, "रवि");
    assert_eq!(moved.area_path, s.area_by_code("LKO-A1").unwrap().path);
    assert!(matches!(s.update_user(UserId::new(), &UserPatch::default(), None), Err(StoreError::NotFound)));
});

both_backends!(fn refresh_tokens_rotate_and_reuse_revokes(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let p = session(s, ic.id, "dev-1", "h1");
    assert_eq!(s.live_session(p.session_id, ic.id).unwrap().map(|x| x.role), Some(Role::Incharge));
    let ttl = Duration::days(60);
    // A device that was offline for 30 days can still refresh.
    let later = now_utc() + Duration::days(30);
    assert!(matches!(s.rotate_refresh("h1", "h2", ttl, later).unwrap(), RotateOutcome::Rotated(_)));
    assert!(matches!(s.rotate_refresh("h2", "h3", ttl, later).unwrap(), RotateOutcome::Rotated(_)));
    assert_eq!(s.rotate_refresh("nope", "h9", ttl, later).unwrap(), RotateOutcome::Invalid);
    // Replaying a spent token revokes the whole session, newest token included.
    assert_eq!(s.rotate_refresh("h1", "h4", ttl, later).unwrap(), RotateOutcome::Reused);
    assert_eq!(s.rotate_refresh("h3", "h5", ttl, later).unwrap(), RotateOutcome::Invalid);
    assert!(s.live_session(p.session_id, ic.id).unwrap().is_none());

    // Past the idle window the token is dead.
    let p2 = session(s, ic.id, "dev-2", "k1");
    assert_eq!(s.rotate_refresh("k1", "k2", ttl, now_utc() + Duration::days(61)).unwrap(), RotateOutcome::Invalid);
    // Logout and deactivation end sessions.
    let p3 = session(s, ic.id, "dev-3", "m1");
    s.revoke_session(p3.session_id, "logout", Some(ic.id), now_utc()).unwrap();
    assert!(s.live_session(p3.session_id, ic.id).unwrap().is_none());
    assert_eq!(s.rotate_refresh("m1", "m2", ttl, now_utc()).unwrap(), RotateOutcome::Invalid);
    let p4 = session(s, ic.id, "dev-4", "n1");
    s.update_user(ic.id, &UserPatch { active: Some(false), ..Default::default() }, None).unwrap();
    assert!(s.live_session(p4.session_id, ic.id).unwrap().is_none());
    assert_eq!(s.rotate_refresh("n1", "n2", ttl, now_utc()).unwrap(), RotateOutcome::Invalid);
    let _ = p2;
});

both_backends!(fn a_second_login_on_one_device_replaces_the_session(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    let a = session(s, ic.id, "dev-1", "a1");
    let b = session(s, ic.id, "dev-1", "b1");
    assert!(s.live_session(a.session_id, ic.id).unwrap().is_none());
    assert!(s.live_session(b.session_id, ic.id).unwrap().is_some());
});

both_backends!(fn audit_chain_verifies_and_detects_tampering(db) {
    let s = &db.store;
    seed(s);
    let ic = add_user(s, "ic1", Role::Incharge, "LKO-B1");
    session(s, ic.id, "dev-1", "a1");
    let v = s.audit_verify().unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 3);
    let page = s.audit_page(0, 10).unwrap();
    assert_eq!(page.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["areas.import", "user.create", "session.login"]);
    assert_eq!(page[1].prev_hash, page[0].hash);
    assert_eq!(page.last().unwrap().hash, v.head_hash);

    // Rewrite history behind the store's back.
    let sql = "UPDATE audit_log SET detail = '{\"login\":\"mallory\"}' WHERE seq = 2";
    match db.kind() {
        baithak_test_support::Kind::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://");
            diesel::sql_query(sql).execute(&mut SqliteConnection::establish(path).unwrap()).unwrap();
        }
        baithak_test_support::Kind::Postgres => {
            diesel::sql_query(sql).execute(&mut PgConnection::establish(&db.url).unwrap()).unwrap();
        }
    };
    let v = s.audit_verify().unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_bad_seq, Some(2));
});

both_backends!(fn concurrent_logins_and_updates_never_hit_a_lock(db) {
    let s = db.store.clone();
    seed(&s);
    let users: Vec<_> = (0..16).map(|i| add_user(&s, &format!("ic{i}"), Role::Incharge, "LKO-B1")).collect();
    let handles: Vec<_> = users
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let s = s.clone();
            std::thread::spawn(move || {
                for round in 0..5 {
                    session(&s, u.id, &format!("dev-{i}"), &format!("t-{i}-{round}"));
                    s.update_user(u.id, &UserPatch { name: Some(format!("n{round}")), ..Default::default() }, None)?;
                    s.rotate_refresh(&format!("t-{i}-{round}"), &format!("r-{i}-{round}"), Duration::days(1), now_utc())?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert!(s.audit_verify().unwrap().ok);
});

/// The pool does not test connections on checkout (a round trip per store call), so a
/// connection the server ended must fail as retryable (503), not as a 500, and must
/// not be handed out again.
#[test]
fn a_lost_postgres_connection_is_retryable_and_replaced() {
    let db = baithak_test_support::TestDb::postgres();
    let store = Store::open(
        &db.url,
        &baithak_store::StoreOptions {
            max_connections: 1,
            ..Default::default()
        },
    )
    .unwrap();
    store.ping().unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = PgConnection::establish(&baithak_test_support::pg_admin_url()).unwrap();
    let ended = diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut admin)
    .unwrap();
    assert!(ended >= 1, "the store's connection was open");
    match store.ping() {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable on the lost connection, got {other:?}"),
    }
    store.ping().unwrap();
}

/// Encrypting a loopback connection protects nothing and costs PostgreSQL CPU on every
/// statement, so the store asks for a plain one when its URL names a loopback host and
/// no `sslmode`; an explicit `sslmode` still wins. Checked in `pg_stat_ssl` when the
/// server offers TLS (Debian's default, and this project's machines).
#[test]
fn a_loopback_postgres_connection_skips_tls_unless_asked() {
    #[derive(QueryableByName)]
    struct Flag {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        on: bool,
    }
    let encrypted = |admin: &mut PgConnection, name: &str| -> Vec<bool> {
        diesel::sql_query(format!(
            "SELECT s.ssl AS on FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{name}' AND a.pid <> pg_backend_pid()"
        ))
        .load::<Flag>(admin)
        .unwrap()
        .into_iter()
        .map(|f| f.on)
        .collect()
    };
    let db = baithak_test_support::TestDb::postgres();
    let admin_url = baithak_test_support::pg_admin_url();
    let mut admin = PgConnection::establish(&admin_url).unwrap();
    let server_has_tls = diesel::sql_query("SELECT current_setting('ssl') = 'on' AS on")
        .get_result::<Flag>(&mut admin)
        .unwrap()
        .on;
    if !server_has_tls || !db.url.contains("127.0.0.1") || db.url.contains("sslmode") {
        eprintln!("skipped: the test server has no TLS or its URL is not a plain loopback one");
        return;
    }
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let opts = baithak_store::StoreOptions {
        max_connections: 1,
        ..Default::default()
    };

    let plain = Store::open(&db.url, &opts).unwrap();
    plain.ping().unwrap();
    let before = encrypted(&mut admin, &name);
    assert!(
        before.iter().any(|on| !on),
        "a plain connection: {before:?}"
    );
    assert!(
        before.iter().all(|on| !on),
        "no store connection is encrypted: {before:?}"
    );

    let asked = Store::open(&format!("{}?sslmode=require", db.url), &opts).unwrap();
    asked.ping().unwrap();
    let after = encrypted(&mut admin, &name);
    assert!(
        after.iter().any(|on| *on),
        "sslmode=require is honoured: {after:?}"
    );
    drop((plain, asked));
}
