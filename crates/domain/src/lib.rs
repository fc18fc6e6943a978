//! Types and rules of baithak that hold whatever stores or serves them: roles, the area
//! tree and the scope rule, validated values. No I/O lives here, so every rule can be
//! tested in isolation.

pub mod area;
pub mod ids;
pub mod import;
pub mod role;
pub mod validate;

pub use area::{AreaKind, AreaPath, can_see};
pub use ids::{AreaId, DeviceSessionId, UserId, new_v7};
pub use role::Role;
pub use validate::{AreaCode, Login, ValidationError};
