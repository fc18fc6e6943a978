//! Failed-login budgets kept in the database, so that every replica spends and sees
//! the same budget (a limiter in process memory would multiply the limit by the
//! number of replicas behind the load balancer).
//!
//! Each key (a login, a client address) holds a GCRA "theoretical arrival time": a
//! failure moves it one `period` past the later of itself and now. `burst` failures
//! fit at once; the next finds the budget spent, is refused, and blocks the key until
//! one more failure would fit again (`blocked_until_ms`). Only failures spend, so a
//! user who types the right password is never slowed down.

use diesel::prelude::*;

use crate::db::{Store, with_conn, write_tx};
use crate::error::Result;
use crate::schema::login_throttle;

/// How many failures a key may have at once, and how fast it earns one back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub burst: u32,
    pub period_ms: i64,
}

impl Budget {
    fn tolerance_ms(self) -> i64 {
        self.period_ms
            .saturating_mul(i64::from(self.burst.max(1) - 1))
    }
}

impl Store {
    /// Milliseconds until the most blocked of `keys` may try again, or `None` when
    /// none is blocked at `now_ms`.
    pub fn throttle_wait(&self, keys: &[String], now_ms: i64) -> Result<Option<i64>> {
        with_conn!(self, |c| {
            let until: Option<i64> = login_throttle::table
                .filter(login_throttle::key.eq_any(keys))
                .select(diesel::dsl::max(login_throttle::blocked_until_ms))
                .first(c)?;
            Ok(until.filter(|u| *u > now_ms).map(|u| u - now_ms))
        })
    }

    /// Spends one failure from each key's budget. Returns the longest wait for a key
    /// whose budget was already spent (that key is now blocked), or `None`.
    pub fn throttle_spend(&self, keys: &[(String, Budget)], now_ms: i64) -> Result<Option<i64>> {
        write_tx!(self, |c| {
            let mut wait = None;
            for (key, budget) in keys {
                // Creates the row or takes its lock, and reads it: two replicas
                // counting failures of one key queue here instead of losing one.
                let tat: i64 = diesel::insert_into(login_throttle::table)
                    .values((
                        login_throttle::key.eq(key),
                        login_throttle::tat_ms.eq(now_ms),
                        login_throttle::blocked_until_ms.eq(0),
                    ))
                    .on_conflict(login_throttle::key)
                    .do_update()
                    .set(login_throttle::tat_ms.eq(login_throttle::tat_ms))
                    .returning(login_throttle::tat_ms)
                    .get_result(c)?;
                if tat - now_ms > budget.tolerance_ms() {
                    let until = tat - budget.tolerance_ms();
                    diesel::update(login_throttle::table.find(key))
                        .set(login_throttle::blocked_until_ms.eq(until))
                        .execute(c)?;
                    wait = wait.max(Some(until - now_ms));
                } else {
                    let next = tat.max(now_ms).saturating_add(budget.period_ms);
                    diesel::update(login_throttle::table.find(key))
                        .set(login_throttle::tat_ms.eq(next))
                        .execute(c)?;
                }
            }
            Ok(wait)
        })
    }

    /// Forgets keys whose budget is whole again at `now_ms` (nothing to remember, and
    /// a spray of distinct logins or addresses must not grow the table for good).
    pub fn prune_throttle(&self, now_ms: i64) -> Result<usize> {
        with_conn!(self, |c| Ok(diesel::delete(
            login_throttle::table.filter(login_throttle::tat_ms.le(now_ms))
        )
        .execute(c)?))
    }
}
