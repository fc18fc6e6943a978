//! The simulated field devices of the end-to-end sync tests: the server set up for
//! them, their lossy network, and what must hold when they are done.

use super::Server;
use baithak_client::sim::{FaultConfig, PhotoSource, Report, SimConfig};
use secrecy::SecretString;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

const ADMIN_PW: &str = "correct horse battery";

/// Areas and an admin, who creates the devices' in-charges.
pub fn setup(s: &Server) {
    s.import_areas();
    s.add_user("admin", "admin", "UP", ADMIN_PW);
}

/// 20 in-charges who were offline for 3 days, syncing with `server` through a network
/// that drops a fifth of the answers and duplicates a tenth of the requests.
pub fn lossy_config(server: &str, work_dir: &Path, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(server.to_owned());
    cfg.admin = Some(("admin".into(), SecretString::from(ADMIN_PW)));
    cfg.area_code = Some("LKO-AC1".into());
    cfg.incharges = 20;
    cfg.days = 3;
    cfg.photos = PhotoSource::Generate {
        width: 480,
        height: 360,
    };
    cfg.faults = FaultConfig {
        drop_response: 0.2,
        duplicate: 0.1,
        ..FaultConfig::default()
    };
    // Small thresholds so that both upload paths, and resuming, are exercised.
    cfg.resumable_threshold = 48 * 1024;
    cfg.chunk_size = 16 * 1024;
    cfg.max_chunk_size = 32 * 1024;
    cfg.work_dir = work_dir.to_path_buf();
    cfg.seed = seed;
    // A healthy server on a 2-core machine finishes in about a minute; one that stops
    // answering should fail the test, not hang it.
    cfg.request_timeout = Duration::from_secs(30);
    cfg
}

/// The devices' report once `sim` is done (within a bound, so a server that stops
/// answering fails the test instead of hanging it), printed for the test log.
pub async fn finish(sim: impl Future<Output = anyhow::Result<Report>>, what: &str) -> Report {
    // Generous: a test binary runs its simulations side by side on the machine's two
    // cores (sync_sim's four took 274 s in all in CI), and this machine kind has run a
    // third slower for hours at a time.
    let report = tokio::time::timeout(Duration::from_secs(900), sim)
        .await
        .expect("the simulation finished in time")
        .expect("the simulation ran");
    eprintln!(
        "{what}: {}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    report
}

/// Every meeting and feedback the devices recorded is on the server exactly once, with
/// its photos, and nothing is left pending or was rejected.
pub fn assert_exactly_once(report: &Report) {
    let v = &report.verification;
    assert_eq!(report.devices, 20);
    // 20 devices x 3 days x 3..=6 meetings.
    assert!(
        (180..=360).contains(&report.meetings),
        "{} meetings",
        report.meetings
    );
    assert!(report.proxy.dropped_responses > 0 && report.proxy.duplicated > 0);
    assert_eq!(
        v.pending, 0,
        "nothing may stay pending: {:?}",
        report.sync_errors
    );
    assert!(v.rejected.is_empty(), "rejected: {:#?}", v.rejected);
    assert_eq!(
        v.replay_checked,
        report.meetings + report.feedback,
        "every recorded mutation was settled"
    );
    assert_eq!(
        v.replay_duplicate, v.replay_checked,
        "replaying every mutation must answer duplicate: {:#?}",
        v.replay_unexpected
    );
    // Meeting ids are made by the devices and are the server's keys, so a replay that
    // answers `duplicate` for every mutation already shows each is stored once; the
    // listing, where the server has it, shows it directly.
    match &v.list {
        Some(list) => {
            assert!(list.missing.is_empty(), "missing: {:?}", list.missing);
            assert!(list.duplicated.is_empty(), "doubled: {:?}", list.duplicated);
            assert!(
                list.unexpected.is_empty(),
                "unexpected: {:?}",
                list.unexpected
            );
            assert!(
                list.photo_mismatches.is_empty(),
                "photos differ: {:?}",
                list.photo_mismatches
            );
            assert_eq!(list.found_once, report.meetings);
        }
        None => eprintln!("note: verified by replay only: {:?}", v.problems),
    }
    assert!(v.ok, "{v:#?}");
}
