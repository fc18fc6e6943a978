//! Access JWTs (HS256, short-lived) and opaque refresh tokens.

use crate::error::ApiError;
use baithak_domain::{DeviceSessionId, Role, UserId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const ISSUER: &str = "baithak";
const AUDIENCE: &str = "baithak-api";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: UserId,
    pub role: Role,
    /// The device session; checked against the database on every request so that a
    /// logout or deactivation takes effect before the token expires.
    pub sid: DeviceSessionId,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
}

/// The signing secret and the validation rules, built once.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: chrono::Duration,
}

impl JwtKeys {
    pub fn new(secret: &SecretSlice<u8>, access_ttl: chrono::Duration) -> Self {
        // Pinned algorithm: a token claiming `none` or RS256 is refused outright.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 30;
        validation.validate_exp = true;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose_secret()),
            decoding: DecodingKey::from_secret(secret.expose_secret()),
            validation,
            access_ttl,
        }
    }

    pub fn issue(
        &self,
        user: UserId,
        role: Role,
        sid: DeviceSessionId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, ApiError> {
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user,
            role,
            sid,
            iat: now.timestamp(),
            exp: (now + self.access_ttl).timestamp(),
            jti: baithak_domain::new_v7().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        match jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation) {
            Ok(data) => {
                if data.claims.iat > data.claims.exp || data.claims.jti.is_empty() {
                    return Err(ApiError::Unauthorized("invalid_token"));
                }
                Ok(data.claims)
            }
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                Err(ApiError::Unauthorized("token_expired"))
            }
            Err(_) => Err(ApiError::Unauthorized("invalid_token")),
        }
    }
}

/// 32 random bytes, URL-safe base64: unguessable, and useless to anyone who reads the
/// database, which keeps only [`refresh_hash`] of it.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fast hash is right here (unlike passwords): the token has 256 bits of entropy.
pub fn refresh_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    fn keys(secret: &[u8]) -> JwtKeys {
        JwtKeys::new(&SecretSlice::from(secret.to_vec()), Duration::minutes(15))
    }

    #[test]
    fn round_trip_and_tampering() {
        let k = keys(b"0123456789abcdef0123456789abcdef");
        let (u, s) = (UserId::new(), DeviceSessionId::new());
        let t = k.issue(u, Role::Coordinator, s, Utc::now()).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!((c.sub, c.sid, c.role), (u, s, Role::Coordinator));

        let other = keys(b"another secret of thirty-two byt");
        assert!(matches!(
            other.verify(&t),
            Err(ApiError::Unauthorized("invalid_token"))
        ));

        let expired = k
            .issue(u, Role::Incharge, s, Utc::now() - Duration::hours(1))
            .unwrap();
        assert!(matches!(
            k.verify(&expired),
            Err(ApiError::Unauthorized("token_expired"))
        ));
    }

    #[test]
    fn refuses_other_algorithms_and_claims() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let k = keys(secret);
        let now = Utc::now().timestamp();
        let mut claims = serde_json::json!({
            "iss": "baithak", "aud": "baithak-api", "sub": UserId::new(), "role": "hq",
            "sid": DeviceSessionId::new(), "exp": now + 600, "iat": now, "jti": "x"
        });
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert!(k.verify(&hs384).is_err());
        claims["aud"] = "someone-else".into();
        let wrong_aud = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap();
        assert!(k.verify(&wrong_aud).is_err());
        // An unsigned token with alg "none".
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert!(k.verify(&unsigned).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(refresh_hash(&a).len(), 64);
        assert_ne!(refresh_hash(&a), refresh_hash(&b));
    }
}
