//! Newtype ids, so a user id can never be passed where an area id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A fresh time-ordered id. v7 keeps B-tree inserts append-only, which DESIGN.md
/// measured at ~5x faster than random v4 keys for batched SQLite writes.
pub fn new_v7() -> Uuid {
    Uuid::now_v7()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(new_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A user (any role).
    UserId
);
id_type!(
    /// A node of the area tree.
    AreaId
);
id_type!(
    /// One device's login session: the family of its rotating refresh tokens.
    DeviceSessionId
);
