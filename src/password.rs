//! Passwords: Argon2id hashes (OWASP parameters), keyed fingerprints that let
//! an import tell "this password is the one already stored" without running
//! Argon2, so an unchanged nightly file costs no hashing at all, and the
//! passwords rosterd generates for districts that do not sign in with SSO.

use std::path::Path;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// OWASP's recommended Argon2id parameters: 19 MiB, 2 passes, 1 lane.
pub fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash a password to a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with valid parameters does not fail")
        .to_string()
}

/// The characters a generated password is made of: letters and digits
/// without the look-alikes `0 O 1 l I` (a password is read off paper and
/// typed by a child), and without `= + - @`, which spreadsheet-safe CSV
/// would prefix with a quote. Valid under the import's rules (at least six
/// characters, letters and digits).
pub const GENERATED_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// Length of a generated password: 12 characters of 56 are about 69 bits.
pub const GENERATED_LENGTH: usize = 12;

/// A new password from the operating system's random number generator
/// (`getrandom`), [`GENERATED_LENGTH`] characters of [`GENERATED_ALPHABET`],
/// drawn without bias.
pub fn generate() -> String {
    use rand::TryRng;
    let n = GENERATED_ALPHABET.len();
    // The largest multiple of n under 256: bytes above it are drawn again.
    let limit = (256 / n * n) as u8;
    let mut out = String::with_capacity(GENERATED_LENGTH);
    let mut bytes = [0u8; 32];
    while out.len() < GENERATED_LENGTH {
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random number generator failed");
        for &b in bytes.iter().filter(|&&b| b < limit) {
            if out.len() == GENERATED_LENGTH {
                break;
            }
            out.push(GENERATED_ALPHABET[b as usize % n] as char);
        }
    }
    out
}

/// Check a password against a stored PHC hash.
pub fn verify(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// HMAC-SHA256 of (username, password) under a secret kept outside the database.
/// Equal fingerprints mean the stored hash already matches, so no Argon2 work is
/// needed; without the secret the fingerprint gives no shortcut for guessing.
#[derive(Clone)]
pub struct Fingerprinter {
    key: [u8; 32],
}

impl Fingerprinter {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// Load the secret from `path`, creating it (32 random bytes, mode 0600) if
    /// it does not exist yet.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    anyhow::anyhow!(
                        "{} should hold exactly 32 bytes but holds {}; delete it to create a new one (every password is then re-hashed once)",
                        path.display(),
                        bytes.len()
                    )
                })?;
                Ok(Self::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::fill(&mut key);
                crate::files::write_secret_file(path, &key)?;
                Ok(Self::new(key))
            }
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    pub fn fingerprint(&self, username_key: &str, password: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(username_key.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let h = hash("s3cret!");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("s3cret!", &h));
        assert!(!verify("s3cret?", &h));
        assert_ne!(h, hash("s3cret!"), "salts must differ");
    }

    #[test]
    fn generated_passwords_use_the_alphabet_and_pass_the_import_rules() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let p = generate();
            assert_eq!(p.len(), GENERATED_LENGTH);
            assert!(p.bytes().all(|b| GENERATED_ALPHABET.contains(&b)), "{p}");
            assert!(seen.insert(p), "a repeated password");
        }
        // No look-alikes, nothing a spreadsheet treats as a formula.
        for c in "0O1lI=+-@".bytes() {
            assert!(!GENERATED_ALPHABET.contains(&c), "{}", c as char);
        }
        // Every character is used: 2,000 × 12 draws from 56 leave none out.
        let used: std::collections::HashSet<u8> = seen.iter().flat_map(|p| p.bytes()).collect();
        assert_eq!(used.len(), GENERATED_ALPHABET.len());
    }

    #[test]
    fn fingerprint_depends_on_key_user_and_password() {
        let a = Fingerprinter::new([1; 32]);
        let b = Fingerprinter::new([2; 32]);
        assert_eq!(a.fingerprint("u", "p"), a.fingerprint("u", "p"));
        assert_ne!(a.fingerprint("u", "p"), b.fingerprint("u", "p"));
        assert_ne!(a.fingerprint("u", "p"), a.fingerprint("v", "p"));
        assert_ne!(a.fingerprint("u", "p1"), a.fingerprint("u", "p"));
    }
}
