//! Failed-login budgets shared through the database, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baithak_store::Budget;
use baithak_test_support::both_backends;

const MIN: i64 = 60_000;

fn keys(list: &[(&str, Budget)]) -> Vec<(String, Budget)> {
    list.iter().map(|(k, b)| ((*k).to_owned(), *b)).collect()
}

both_backends! {
    fn a_key_is_blocked_after_its_burst_then_earns_failures_back(db) {
        let s = &db.store;
        let login = Budget { burst: 3, period_ms: MIN };
        let t0 = 1_000_000_000;
        let ravi = keys(&[("login:ravi", login)]);
        for i in 0..3 {
            assert_eq!(s.throttle_spend(&ravi, t0 + i).unwrap(), None, "failure {i}");
        }
        assert_eq!(s.throttle_wait(&["login:ravi".into()], t0 + 3).unwrap(), None);
        // The fourth finds the budget spent: blocked until one more would fit.
        let wait = s.throttle_spend(&ravi, t0 + 3).unwrap().unwrap();
        assert_eq!(wait, MIN - 3);
        let blocked = s.throttle_wait(&["login:ravi".into()], t0 + 10).unwrap();
        assert_eq!(blocked, Some(wait - 7));
        // Others are not touched.
        assert_eq!(s.throttle_wait(&["login:sita".into()], t0 + 10).unwrap(), None);
        // A minute on, one failure fits again, and only one.
        let later = t0 + 3 + wait;
        assert_eq!(s.throttle_wait(&["login:ravi".into()], later).unwrap(), None);
        assert_eq!(s.throttle_spend(&ravi, later).unwrap(), None);
        assert!(s.throttle_spend(&ravi, later + 1).unwrap().is_some());

        // Once the whole budget is back the row goes; a key still blocked stays.
        let sita = keys(&[("login:sita", login)]);
        s.throttle_spend(&sita, later).unwrap();
        assert_eq!(s.prune_throttle(later + MIN).unwrap(), 1, "sita's row");
        assert!(s.throttle_wait(&["login:ravi".into()], later + 2).unwrap().is_some());
        assert_eq!(s.prune_throttle(later + 10 * MIN).unwrap(), 1, "ravi's row");
    }
}

both_backends! {
    fn the_longest_wait_of_several_keys_counts(db) {
        let s = &db.store;
        let ip = Budget { burst: 2, period_ms: 30_000 };
        let login = Budget { burst: 100, period_ms: 1_000 };
        let t = 5_000_000;
        for name in ["a", "b"] {
            let k = keys(&[(&format!("login:{name}"), login), ("ip:10.0.0.2", ip)]);
            assert_eq!(s.throttle_spend(&k, t).unwrap(), None);
        }
        let k = keys(&[("login:c", login), ("ip:10.0.0.2", ip)]);
        assert_eq!(s.throttle_spend(&k, t).unwrap(), Some(30_000));
        let asked = ["login:d".to_owned(), "ip:10.0.0.2".to_owned()];
        assert_eq!(s.throttle_wait(&asked, t).unwrap(), Some(30_000));
        let elsewhere = ["login:d".to_owned(), "ip:10.0.0.3".to_owned()];
        assert_eq!(s.throttle_wait(&elsewhere, t).unwrap(), None);
    }
}
