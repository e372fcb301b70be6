//! App password format, generation and hashing.
//!
//! A password is `xxxxx-xxxxx-xxxxx-xxxxx-xxxxx`: 25 symbols from an
//! alphabet without look-alikes, drawn from the OS CSPRNG. The first group
//! is the public id used to find the one stored record to check; the other
//! four (≈99 bits) are the secret. Only an argon2id PHC string is stored.
//!
//! Users type these on phones, so parsing forgives case, spaces and missing
//! dashes; what is hashed is always the canonical form.

use crate::secret::Secret;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::Rng;

/// Digits and lowercase letters without `0 1 i l o`. That is 31 symbols,
/// not 32: 25 symbols carry 123.9 bits, 99.1 of them secret.
pub const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const GROUPS: usize = 5;
const GROUP_LEN: usize = 5;
/// Length of the canonical form, dashes included.
pub const LEN: usize = GROUPS * GROUP_LEN + GROUPS - 1;

/// The public first group of a password: names its record in the store.
pub type AppPasswordId = String;

/// Draws a new password; the caller re-draws when its id is taken.
pub fn generate() -> Secret<String> {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(LEN);
    for g in 0..GROUPS {
        if g > 0 {
            out.push('-');
        }
        for _ in 0..GROUP_LEN {
            out.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
        }
    }
    Secret::new(out)
}

/// The id of a canonical password.
pub fn id_of(canonical: &Secret<String>) -> AppPasswordId {
    canonical.expose()[..GROUP_LEN].to_string()
}

/// Normalises what a client sent into the canonical form, or `None` when it
/// cannot be a davgate password (then no store read and no hashing happen).
pub fn parse(presented: &str) -> Option<Secret<String>> {
    if presented.len() > 2 * LEN {
        return None;
    }
    let mut symbols = String::with_capacity(LEN);
    for c in presented.chars() {
        match c {
            '-' | ' ' => {}
            c if c.is_ascii() && ALPHABET.contains(&(c.to_ascii_lowercase() as u8)) => {
                if symbols.len() == GROUPS * GROUP_LEN {
                    return None;
                }
                symbols.push(c.to_ascii_lowercase());
            }
            _ => return None,
        }
    }
    if symbols.len() != GROUPS * GROUP_LEN {
        return None;
    }
    let mut canonical = String::with_capacity(LEN);
    for (i, c) in symbols.chars().enumerate() {
        if i > 0 && i % GROUP_LEN == 0 {
            canonical.push('-');
        }
        canonical.push(c);
    }
    Some(Secret::new(canonical))
}

/// Whether `id` has the shape of a password id (for CLI and API arguments).
pub fn is_id(id: &str) -> bool {
    id.len() == GROUP_LEN && id.bytes().all(|b| ALPHABET.contains(&b))
}

/// argon2id with the configured cost.
pub fn hasher(params: &argon2::Params) -> Argon2<'static> {
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params.clone())
}

/// Hashes a canonical password into a PHC string (random salt).
pub fn hash(canonical: &Secret<String>, params: &argon2::Params) -> Secret<String> {
    let phc = hasher(params)
        .hash_password(canonical.expose().as_bytes())
        .expect("argon2 with validated parameters cannot fail");
    Secret::new(phc.to_string())
}

/// Verifies against a PHC string; the cost comes from the string itself, so
/// changing the configured parameters keeps old passwords working.
pub fn verify(canonical: &Secret<String>, phc: &Secret<String>) -> bool {
    Argon2::default().verify_password(canonical.expose().as_bytes(), phc.expose().as_str()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_have_the_documented_shape() {
        for _ in 0..200 {
            let p = generate();
            let s = p.expose();
            assert_eq!(s.len(), LEN);
            for (i, c) in s.chars().enumerate() {
                if i % 6 == 5 {
                    assert_eq!(c, '-');
                } else {
                    assert!(ALPHABET.contains(&(c as u8)), "{c}");
                }
            }
            assert!(is_id(&id_of(&p)));
            assert_eq!(parse(s).unwrap().expose(), s);
        }
    }

    #[test]
    fn parsing_forgives_case_spaces_and_missing_dashes() {
        let p = "abcde-fghjk-mnpqr-stuvw-xyz23";
        assert_eq!(parse("ABCDEfghjkMNPQRstuvwxyz23").unwrap().expose(), p);
        assert_eq!(parse("abcde fghjk mnpqr stuvw xyz23").unwrap().expose(), p);
    }

    #[test]
    fn parsing_refuses_what_cannot_be_a_password() {
        for bad in [
            "",
            "abcde",
            "abcde-fghjk-mnpqr-stuvw-xyz2",
            "abcde-fghjk-mnpqr-stuvw-xyz234",
            "abcde-fghjk-mnpqr-stuvw-xyz2o",
            "abcde-fghjk-mnpqr-stuvw-xyz2\0",
            "ébcde-fghjk-mnpqr-stuvw-xyz23",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        assert!(parse(&"a".repeat(10_000)).is_none());
    }

    #[test]
    fn hash_verifies_only_the_same_password() {
        let params = argon2::Params::new(8192, 1, 1, None).unwrap();
        let p = generate();
        let phc = hash(&p, &params);
        assert!(phc.expose().starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        assert!(verify(&p, &phc));
        assert!(!verify(&generate(), &phc));
    }
}
