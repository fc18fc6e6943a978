//! `serve --demo`: a small organisation to click through, seeded into an empty
//! database only.

use anyhow::Result;
use baithak_domain::Role;
use baithak_domain::import::parse_area_csv;
use baithak_store::{NewUser, Store};
use rand::Rng;
use rand::distributions::Alphanumeric;

const AREAS: &str = "code,name,kind,parent_code
UP,उत्तर प्रदेश,state,
LKO,Lucknow division,division,UP
KNP,Kanpur division,division,UP
LKO-PC,Lucknow,constituency,LKO
LKO-PC-AC1,Lucknow West,assembly,LKO-PC
LKO-PC-AC2,Lucknow North,assembly,LKO-PC
LKO-PC-AC1-B001,Booth 1 Aminabad,booth,LKO-PC-AC1
LKO-PC-AC1-B002,Booth 2 Nakhas,booth,LKO-PC-AC1
LKO-PC-AC2-B001,Booth 1 Aliganj,booth,LKO-PC-AC2
KNP-PC,Kanpur,constituency,KNP
KNP-PC-AC1,Kanpur Cantt,assembly,KNP-PC
";

const USERS: &[(&str, &str, Role, &str)] = &[
    ("admin", "Demo Admin", Role::Admin, "UP"),
    ("hq.audit", "HQ Auditor", Role::Hq, "UP"),
    ("coord.lko", "Lucknow Coordinator", Role::Coordinator, "LKO"),
    ("ravi", "रवि कुमार", Role::Incharge, "LKO-PC-AC1"),
    ("sita", "सीता देवी", Role::Incharge, "LKO-PC-AC2"),
    ("amit", "Amit Verma", Role::Incharge, "KNP-PC-AC1"),
];

pub fn seed_if_empty(store: &Store) -> Result<()> {
    if !store.is_empty()? {
        println!("demo: database is not empty, nothing seeded");
        return Ok(());
    }
    let rows = parse_area_csv(AREAS.as_bytes())
        .map_err(|e| anyhow::anyhow!("demo areas line {}: {}", e.line, e.message))?;
    store
        .import_areas(&rows, None, None, &|_| {})
        .map_err(|e| anyhow::anyhow!("demo areas: {e}"))?;
    println!("demo organisation seeded; these passwords are shown once:");
    for (login, name, role, area) in USERS {
        let password: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(14)
            .map(char::from)
            .collect();
        let hash =
            baithak_api::auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
        let area = store.area_by_code(area)?;
        store.create_user(
            &NewUser {
                login: (*login).to_owned(),
                name: (*name).to_owned(),
                role: *role,
                area_id: area.id,
                password_hash: hash,
            },
            None,
        )?;
        println!(
            "  {:<12} login {login:<10} password {password}",
            role.as_str()
        );
    }
    Ok(())
}
