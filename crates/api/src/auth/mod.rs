//! Authentication: passwords, access tokens, refresh tokens, login rate limits and the
//! `AuthUser` extractor every protected handler takes.

mod extract;
mod limiter;
mod password;
mod tokens;

pub use extract::AuthUser;
pub use limiter::{LoginLimiter, LoginLimits};
pub use password::{Passwords, hash_blocking as hash_password};
pub use tokens::{AccessClaims, JwtKeys, new_refresh_token, refresh_hash};
