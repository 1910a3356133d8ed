//! The floor of a first import with passwords: Argon2id at rosterd's
//! parameters over N passwords on all cores (rayon), with the argon2 crate
//! alone: no CSV, no SQLite, no checks. `bench/password_import.py` times
//! `rosterd import users` of N rows, each with a password, against it.
//!
//! usage: argon2_floor N   (prints the seconds it took)

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rayon::prelude::*;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: argon2_floor N");
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid parameters");
    // The same work as each of rosterd's hashes, or the floor means nothing.
    assert_eq!(
        &params,
        rosterd::password::argon2().params(),
        "rosterd's Argon2 parameters changed: change them here too"
    );
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let started = std::time::Instant::now();
    let hashed = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut salt = [0u8; 16];
            rand::fill(&mut salt);
            let salt = SaltString::encode_b64(&salt).expect("16 bytes");
            argon2
                .hash_password(format!("Pw-{i:07}-x").as_bytes(), &salt)
                .expect("hashing")
                .to_string()
        })
        .filter(|phc| phc.starts_with("$argon2id$"))
        .count();
    assert_eq!(hashed, n);
    println!("{:.3}", started.elapsed().as_secs_f64());
}
