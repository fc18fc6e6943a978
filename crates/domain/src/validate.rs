//! Values checked once at the edge; past it, holding one means it is valid.

use serde::Serialize;
use std::fmt;

/// One field that failed validation, in the shape the problem envelope carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A login name: 3–64 characters of lowercase ASCII letters, digits and `._-@+`
/// (phone numbers and e-mail addresses both fit). Case-folded so `Ravi` and `ravi`
/// cannot be two accounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Login(String);

impl Login {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim().to_ascii_lowercase();
        if !(3..=64).contains(&s.len()) {
            return Err(ValidationError::new(field, "must be 3 to 64 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@+".contains(c))
        {
            return Err(ValidationError::new(
                field,
                "may contain only letters, digits and . _ - @ +",
            ));
        }
        Ok(Login(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An area's stable code as used in CSV files and on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AreaCode(String);

impl AreaCode {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(ValidationError::new(field, "must be 1 to 64 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        {
            return Err(ValidationError::new(
                field,
                "may contain only ASCII letters, digits and . _ - /",
            ));
        }
        Ok(AreaCode(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AreaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human name (person or area): any script, trimmed, 1–200 characters, no control
/// characters. Hindi must round-trip unchanged, so no normalisation beyond trimming.
pub fn display_name(field: &str, raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim();
    let n = s.chars().count();
    if n == 0 || n > 200 {
        return Err(ValidationError::new(field, "must be 1 to 200 characters"));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(s.to_owned())
}

/// Password bounds: long enough to matter, short enough that hashing it is bounded work.
pub fn password(field: &str, raw: &str) -> Result<(), ValidationError> {
    let n = raw.chars().count();
    if n < 8 {
        return Err(ValidationError::new(field, "must be at least 8 characters"));
    }
    if raw.len() > 1024 {
        return Err(ValidationError::new(field, "must be at most 1024 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_rules() {
        assert_eq!(
            Login::parse("login", " Ravi.K ").unwrap().as_str(),
            "ravi.k"
        );
        assert_eq!(
            Login::parse("login", "+919876543210").unwrap().as_str(),
            "+919876543210"
        );
        assert!(Login::parse("login", "ab").is_err());
        assert!(Login::parse("login", "रवि").is_err());
        assert!(Login::parse("login", "a b c").is_err());
    }

    #[test]
    fn names_keep_hindi() {
        assert_eq!(display_name("name", " रवि कुमार ").unwrap(), "रवि कुमार");
        assert!(display_name("name", "  ").is_err());
        assert!(display_name("name", "a\u{0}b").is_err());
    }

    #[test]
    fn codes_and_passwords() {
        assert!(AreaCode::parse("code", "UP-LKO-01").is_ok());
        assert!(AreaCode::parse("code", "a,b").is_err());
        assert!(password("password", "short").is_err());
        assert!(password("password", "long enough").is_ok());
        assert!(password("password", &"x".repeat(2000)).is_err());
    }
}
