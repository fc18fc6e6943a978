//! Settings that are more than a flag: the token-signing secret.

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::SecretSlice;
use std::io::Write;
use std::path::Path;

const SECRET_FILE: &str = "jwt-secret";

/// `BAITHAK_JWT_SECRET` when set (every replica must share it), otherwise a secret
/// generated once and kept in the data dir, readable only by its owner.
pub fn jwt_secret(data_dir: &Path) -> Result<SecretSlice<u8>> {
    if let Ok(s) = std::env::var("BAITHAK_JWT_SECRET") {
        if s.len() < 32 {
            bail!("BAITHAK_JWT_SECRET must be at least 32 bytes");
        }
        return Ok(SecretSlice::from(s.into_bytes()));
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = STANDARD
                .decode(text.trim())
                .with_context(|| format!("{} is not base64", path.display()))?;
            if bytes.len() < 32 {
                bail!("{} holds fewer than 32 bytes", path.display());
            }
            return Ok(SecretSlice::from(bytes));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut bytes = vec![0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(mut f) => {
            f.write_all(STANDARD.encode(&bytes).as_bytes())?;
            f.sync_all()?;
            Ok(SecretSlice::from(bytes))
        }
        // Another process won the race: use what it wrote.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => jwt_secret(data_dir),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}
