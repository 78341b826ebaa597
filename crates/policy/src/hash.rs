//! Password hashes in the formats Unix systems use: sha512-crypt `$6$`,
//! sha256-crypt `$5$`, yescrypt `$y$`, bcrypt `$2a$/$2b$/$2y$`, argon2 (PHC
//! `$argon2id$...`). Verification is CPU-heavy by design; callers run it off
//! their async threads.

use std::fmt;
use std::str::FromStr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

/// A recognised, syntactically valid password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    alg: HashAlgorithm,
    text: String,
}

/// Supported hash algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// `$6$`.
    Sha512Crypt,
    /// `$5$`.
    Sha256Crypt,
    /// `$y$`.
    Yescrypt,
    /// `$2a$`, `$2b$`, `$2y$`.
    Bcrypt,
    /// `$argon2id$`, `$argon2i$`, `$argon2d$`.
    Argon2,
}

impl FromStr for HashAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "sha512-crypt" | "sha512" => HashAlgorithm::Sha512Crypt,
            "sha256-crypt" | "sha256" => HashAlgorithm::Sha256Crypt,
            "yescrypt" => HashAlgorithm::Yescrypt,
            "bcrypt" => HashAlgorithm::Bcrypt,
            "argon2" | "argon2id" => HashAlgorithm::Argon2,
            other => {
                return Err(format!(
                    "unknown algorithm {other:?}; one of sha512-crypt, sha256-crypt, yescrypt, bcrypt, argon2id"
                ));
            }
        })
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({:?}, <redacted>)", self.alg)
    }
}

impl PasswordHash {
    /// Recognise and check a hash string. The error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let alg = if text.starts_with("$6$") {
            HashAlgorithm::Sha512Crypt
        } else if text.starts_with("$5$") {
            HashAlgorithm::Sha256Crypt
        } else if text.starts_with("$y$") {
            HashAlgorithm::Yescrypt
        } else if text.starts_with("$2a$") || text.starts_with("$2b$") || text.starts_with("$2y$") {
            HashAlgorithm::Bcrypt
        } else if text.starts_with("$argon2") {
            HashAlgorithm::Argon2
        } else {
            return Err("not a supported password hash (expected $6$, $5$, $y$, $2b$ or \
                $argon2id$...); make one with `tacvs hash-password`; clear-text passwords are \
                not accepted"
                .into());
        };
        let ok = match alg {
            HashAlgorithm::Sha512Crypt | HashAlgorithm::Sha256Crypt => text.split('$').count() >= 4,
            HashAlgorithm::Yescrypt => yescrypt::PasswordHashRef::new(text).is_ok(),
            HashAlgorithm::Bcrypt => text.len() == 60,
            HashAlgorithm::Argon2 => argon2::PasswordHash::new(text).is_ok(),
        };
        if !ok {
            return Err(format!(
                "malformed {alg:?} hash; make a new one with `tacvs hash-password`"
            ));
        }
        Ok(PasswordHash { alg, text: text.to_owned() })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    /// Check a password (slow on purpose: run it off the async threads).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self.alg {
            HashAlgorithm::Sha512Crypt | HashAlgorithm::Sha256Crypt => {
                use sha_crypt::password_hash::PasswordVerifier;
                match sha_crypt::PasswordHashRef::new(&self.text) {
                    Ok(h) => sha_crypt::ShaCrypt::default().verify_password(password, h).is_ok(),
                    Err(_) => false,
                }
            }
            HashAlgorithm::Yescrypt => {
                use yescrypt::PasswordVerifier;
                match yescrypt::PasswordHashRef::new(&self.text) {
                    Ok(h) => yescrypt::Yescrypt::default().verify_password(password, h).is_ok(),
                    Err(_) => false,
                }
            }
            HashAlgorithm::Bcrypt => bcrypt::verify(password, &self.text).unwrap_or(false),
            HashAlgorithm::Argon2 => match argon2::PasswordHash::new(&self.text) {
                Ok(h) => Argon2::default().verify_password(password, &h).is_ok(),
                Err(_) => false,
            },
        }
    }

    /// What the cost of verifying depends on, besides the algorithm: the rounds,
    /// cost or parameter field as written (`"5000"` for sha-crypt without one).
    pub fn cost(&self) -> String {
        let field = self.text.split('$').nth(2).unwrap_or("");
        match self.alg {
            HashAlgorithm::Sha512Crypt | HashAlgorithm::Sha256Crypt => field
                .strip_prefix("rounds=")
                .and_then(|r| r.parse::<u32>().ok())
                .unwrap_or(sha_crypt::Params::RECOMMENDED_ROUNDS)
                .to_string(),
            HashAlgorithm::Yescrypt | HashAlgorithm::Bcrypt => field.to_owned(),
            // `$argon2id$v=19$m=…,t=…,p=…$salt$hash`: version and parameters.
            HashAlgorithm::Argon2 => {
                let parts: Vec<&str> = self.text.split('$').collect();
                parts[2..parts.len().saturating_sub(2).max(2)].join("$")
            }
        }
    }

    /// A hash of a random password nobody knows, with this hash's algorithm and
    /// cost: verifying anything against it takes as long as verifying against
    /// `self`, and never succeeds. Stands in for users that do not exist (or have
    /// no password), so "no such user" and "wrong password" take the same time.
    pub fn decoy(&self) -> PasswordHash {
        self.try_decoy().unwrap_or_else(|_| self.clone())
    }

    fn try_decoy(&self) -> Result<PasswordHash, String> {
        use argon2::password_hash::{CustomizedPasswordHasher as _, PasswordHasher as _};
        let err = |e: &dyn fmt::Display| format!("decoy: {e}");
        let secret: [u8; 16] = rand::random();
        let pw: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let salt: [u8; 12] = rand::random();
        let field = self.text.split('$').nth(2).unwrap_or("");
        let text = match self.alg {
            HashAlgorithm::Sha512Crypt | HashAlgorithm::Sha256Crypt => {
                let params = field.parse::<sha_crypt::Params>().unwrap_or_default();
                let alg = if self.alg == HashAlgorithm::Sha512Crypt {
                    sha_crypt::Algorithm::Sha512Crypt
                } else {
                    sha_crypt::Algorithm::Sha256Crypt
                };
                sha_crypt::ShaCrypt::new(alg, params)
                    .hash_password_with_salt(pw.as_bytes(), &salt)
                    .map_err(|e| err(&e))?
                    .to_string()
            }
            HashAlgorithm::Yescrypt => {
                let params: yescrypt::Params = field.parse().map_err(|e| err(&e))?;
                yescrypt::Yescrypt::from(params)
                    .hash_password_with_salt(pw.as_bytes(), &salt)
                    .map_err(|e| err(&e))?
                    .to_string()
            }
            HashAlgorithm::Bcrypt => {
                let cost: u32 = field.parse().map_err(|e| err(&e))?;
                bcrypt::hash(&pw, cost).map_err(|e| err(&e))?
            }
            HashAlgorithm::Argon2 => {
                let h = argon2::PasswordHash::new(&self.text).map_err(|e| err(&e))?;
                let params = argon2::Params::try_from(&h).map_err(|e| err(&e))?;
                Argon2::default()
                    .hash_password_customized(
                        pw.as_bytes(),
                        &salt,
                        Some(h.algorithm.as_str()),
                        h.version,
                        params,
                    )
                    .map_err(|e| err(&e))?
                    .to_string()
            }
        };
        PasswordHash::parse(&text)
    }

    /// Hash a password with a fresh random salt and an explicit cost: rounds for
    /// sha-crypt (1,000 to 999,999,999), the cost for bcrypt (4 to 31). Other
    /// algorithms take their recommended parameters.
    pub fn create_with_cost(
        alg: HashAlgorithm,
        password: &[u8],
        cost: u32,
    ) -> Result<String, String> {
        use sha_crypt::password_hash::PasswordHasher;
        let err = |e: &dyn fmt::Display| format!("hashing failed: {e}");
        match alg {
            HashAlgorithm::Sha512Crypt | HashAlgorithm::Sha256Crypt => {
                let params = sha_crypt::Params::new(cost).map_err(|e| err(&e))?;
                let a = if alg == HashAlgorithm::Sha512Crypt {
                    sha_crypt::Algorithm::Sha512Crypt
                } else {
                    sha_crypt::Algorithm::Sha256Crypt
                };
                let salt: [u8; 12] = rand::random();
                sha_crypt::ShaCrypt::new(a, params)
                    .hash_password_with_salt(password, &salt)
                    .map(|p| p.to_string())
                    .map_err(|e| err(&e))
            }
            HashAlgorithm::Bcrypt => bcrypt::hash(password, cost).map_err(|e| err(&e)),
            _ => Self::create(alg, password),
        }
    }

    /// Hash a password with a fresh random salt and the algorithm's recommended cost.
    pub fn create(alg: HashAlgorithm, password: &[u8]) -> Result<String, String> {
        let err = |e: &dyn fmt::Display| format!("hashing failed: {e}");
        match alg {
            HashAlgorithm::Sha512Crypt | HashAlgorithm::Sha256Crypt => {
                use sha_crypt::password_hash::PasswordHasher;
                let h = if alg == HashAlgorithm::Sha512Crypt {
                    sha_crypt::ShaCrypt::SHA512
                } else {
                    sha_crypt::ShaCrypt::SHA256
                };
                // SHA-crypt uses at most 16 salt characters. The crate's default salt
                // encodes to 22, which libc's crypt() would truncate, printing a
                // different string; 12 random bytes encode to exactly 16.
                let salt: [u8; 12] = rand::random();
                h.hash_password_with_salt(password, &salt)
                    .map(|p| p.to_string())
                    .map_err(|e| err(&e))
            }
            HashAlgorithm::Yescrypt => {
                use yescrypt::PasswordHasher;
                yescrypt::Yescrypt::default()
                    .hash_password(password)
                    .map(|p| p.to_string())
                    .map_err(|e| err(&e))
            }
            HashAlgorithm::Bcrypt => {
                bcrypt::hash(password, bcrypt::DEFAULT_COST).map_err(|e| err(&e))
            }
            HashAlgorithm::Argon2 => Argon2::default()
                .hash_password(password)
                .map(|p| p.to_string())
                .map_err(|e| err(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_roundtrips() {
        for alg in [
            HashAlgorithm::Sha512Crypt,
            HashAlgorithm::Sha256Crypt,
            HashAlgorithm::Yescrypt,
            HashAlgorithm::Bcrypt,
            HashAlgorithm::Argon2,
        ] {
            let text = PasswordHash::create(alg, b"s3cret").unwrap();
            let h = PasswordHash::parse(&text).unwrap();
            assert_eq!(h.algorithm(), alg);
            assert!(h.verify(b"s3cret"), "{alg:?}");
            assert!(!h.verify(b"s3cret!"), "{alg:?}");
            assert!(!format!("{h:?}").contains(&text));
            if matches!(alg, HashAlgorithm::Sha512Crypt | HashAlgorithm::Sha256Crypt) {
                assert_eq!(
                    text.split('$').nth(3).map(str::len),
                    Some(16),
                    "salt is 16 chars: {text}"
                );
            }
        }
    }

    #[test]
    fn a_decoy_has_the_algorithm_and_cost_of_its_model_and_matches_nothing() {
        let models = [
            "$6$rounds=7000$saltsaltsalt$x".to_owned(),
            "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA".to_owned(),
            "$y$j9T$kfaeI5dhAkLCqpmjnEigU1$KAffl26ThRkzq7e7k4kyZWSMfiLowEaTLXfdgeGGS85".to_owned(),
            PasswordHash::create_with_cost(HashAlgorithm::Bcrypt, b"pw", 4).unwrap(),
            PasswordHash::create(HashAlgorithm::Argon2, b"pw").unwrap(),
        ];
        for text in &models {
            let model = PasswordHash::parse(text).unwrap();
            let decoy = model.try_decoy().expect(text);
            assert_eq!(decoy.algorithm(), model.algorithm(), "{text}");
            assert_eq!(decoy.cost(), model.cost(), "{text}");
            assert_ne!(decoy.text, model.text);
            assert!(!decoy.verify(b"pw") && !decoy.verify(b""), "{text}");
        }
        assert_eq!(PasswordHash::parse(&models[0]).unwrap().cost(), "7000");
        assert_eq!(PasswordHash::parse(&models[1]).unwrap().cost(), "5000");
    }

    #[test]
    fn known_hashes_from_other_tools() {
        // `openssl passwd -6 -salt saltsalt secret` and `openssl passwd -5 -salt saltsalt secret`.
        let h6 = PasswordHash::parse("$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1")
            .unwrap();
        assert!(h6.verify(b"secret"));
        assert!(!h6.verify(b"Secret"));
        let h5 =
            PasswordHash::parse("$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA").unwrap();
        assert!(h5.verify(b"secret"));
        // yescrypt made by libxcrypt's crypt() (Debian's system hash).
        let y = PasswordHash::parse(
            "$y$j9T$kfaeI5dhAkLCqpmjnEigU1$KAffl26ThRkzq7e7k4kyZWSMfiLowEaTLXfdgeGGS85",
        )
        .unwrap();
        assert!(y.verify(b"bob-pass"));
        assert!(!y.verify(b"alice-pass"));
        assert!(PasswordHash::parse("alice-pass").unwrap_err().contains("hash-password"));
        assert!(PasswordHash::parse("$6$").is_err());
    }
}
