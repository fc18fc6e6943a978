//! Roles and what each may do with users.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Incharge,
    Coordinator,
    Hq,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Incharge, Role::Coordinator, Role::Hq, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Incharge => "incharge",
            Role::Coordinator => "coordinator",
            Role::Hq => "hq",
            Role::Admin => "admin",
        }
    }

    /// May this role list and read user accounts (within its scope)?
    pub fn can_read_users(self) -> bool {
        matches!(self, Role::Admin | Role::Hq | Role::Coordinator)
    }

    /// May an actor of this role create or edit an account that has (or will have)
    /// `target`? Admins manage every role; coordinators only their in-charges
    /// (DESIGN.md: "coordinators may create in-charges in their division").
    pub fn can_manage(self, target: Role) -> bool {
        match self {
            Role::Admin => true,
            Role::Coordinator => target == Role::Incharge,
            Role::Hq | Role::Incharge => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected incharge, coordinator, hq or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
        assert!("Admin".parse::<Role>().is_err());
    }

    #[test]
    fn management_rules() {
        assert!(Role::Admin.can_manage(Role::Hq));
        assert!(Role::Coordinator.can_manage(Role::Incharge));
        assert!(!Role::Coordinator.can_manage(Role::Coordinator));
        assert!(!Role::Coordinator.can_manage(Role::Admin));
        assert!(!Role::Hq.can_manage(Role::Incharge));
        assert!(!Role::Incharge.can_manage(Role::Incharge));
        assert!(!Role::Incharge.can_read_users());
    }
}
