//! bcrypt off the async workers: at most `capture.hash_threads` hashes at once on tokio's
//! blocking threads, the rest waiting in a fair queue, so that a burst of captures waits
//! instead of starving the hook's async work (or spawning hundreds of threads).

use std::sync::Arc;

use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::domain::{Password, PasswordHash};

/// Kratos's bcrypt checks at most 72 bytes: a longer password could never log in.
pub const MAX_PASSWORD_BYTES: usize = 72;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("bcrypt failed: {0}")]
    Failed(String),
}

pub struct Hasher {
    cost: u32,
    slots: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(cost: u32, threads: usize) -> Self {
        Self {
            cost,
            slots: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// A `$2b$` hash of `password` at the configured cost.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        if password.expose().len() > MAX_PASSWORD_BYTES {
            return Err(HashError::TooLong);
        }
        let _slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Failed("the hashing pool is closed".to_owned()))?;
        // The blocking thread needs its own copy; it is wiped when the closure ends. (bcrypt
        // keys with the password and a NUL byte cut to 72 bytes, as Go's bcrypt in Kratos
        // does: a password of exactly 72 bytes checks the same on both sides.)
        let plaintext = Zeroizing::new(password.expose().as_bytes().to_vec());
        let cost = self.cost;
        let hashed = tokio::task::spawn_blocking(move || bcrypt::hash(&*plaintext, cost))
            .await
            .map_err(|error| HashError::Failed(error.to_string()))?;
        hashed
            .map(PasswordHash::new)
            .map_err(|error| HashError::Failed(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(value: &str) -> Password {
        Password::new(Zeroizing::new(value.to_owned()))
    }

    #[tokio::test]
    async fn hashes_verify_and_carry_the_cost() {
        let hasher = Hasher::new(4, 2);
        let hash = hasher.hash(&password("correct horse")).await.unwrap();
        assert!(
            hash.expose().starts_with("$2b$04$"),
            "{}",
            hash.expose().len()
        );
        assert_eq!(hash.expose().len(), 60);
        assert!(bcrypt::verify("correct horse", hash.expose()).unwrap());
        assert!(!bcrypt::verify("correct horsE", hash.expose()).unwrap());
    }

    #[tokio::test]
    async fn passwords_kratos_could_not_check_are_refused() {
        let hasher = Hasher::new(4, 1);
        // 72 bytes pass (and the hash tells the 72nd byte apart); 73 bytes (here: 36
        // two-byte characters and one more byte) do not.
        let longest = "a".repeat(71) + "b";
        let hash = hasher.hash(&password(&longest)).await.unwrap();
        assert!(bcrypt::verify(&longest, hash.expose()).unwrap());
        assert!(!bcrypt::verify("a".repeat(72), hash.expose()).unwrap());
        let long = "é".repeat(36) + "a";
        assert_eq!(long.len(), 73);
        assert!(matches!(
            hasher.hash(&password(&long)).await,
            Err(HashError::TooLong)
        ));
    }
}
