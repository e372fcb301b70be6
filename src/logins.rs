//! Sign-in secrets for the self-service page: the login password
//! (argon2id), the TOTP second factor (RFC 6238) and its recovery codes.
//!
//! These never authenticate a DAV request: only app passwords do. A code is
//! accepted once (the last used time step is stored), and a recovery code
//! is consumed by its use.

use crate::accounts::{AccountError, AccountResult, Accounts};
use crate::password;
use crate::secret::Secret;
use crate::store::model::{Event, EventKind, Login, Totp, unix_now};
use rand::Rng;
use std::sync::Arc;

/// Shortest and longest login password, in characters.
pub const MIN_LOGIN_CHARS: usize = 10;
pub const MAX_LOGIN_CHARS: usize = 256;
/// Recovery codes handed out when TOTP is enabled.
pub const RECOVERY_CODES: usize = 10;

/// What a correct user name and login password lead to.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Wrong user, wrong password, or no login password set: one answer for all.
    Refused,
    Accepted,
    /// Right password; a TOTP or recovery code must follow.
    NeedsSecondFactor,
}

/// A TOTP secret offered to the user, not yet confirmed by a code.
pub struct TotpOffer {
    /// Base32, for typing into an authenticator by hand.
    pub secret: Secret<String>,
    /// The `otpauth://` URL a QR code carries.
    pub url: Secret<String>,
}

/// Sign-in checks waiting for a hashing slot beyond this are refused, so a
/// flood cannot queue unbounded memory (each check allocates the argon2
/// memory cost).
const MAX_WAITING_HASHES: usize = 64;

pub struct Logins {
    accounts: Arc<Accounts>,
    /// Bounds concurrent argon2 runs for sign-in (the gateway has its own pool).
    hash_slots: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    /// Serialises read-modify-write of login records: a code is accepted
    /// once, and a password change is never undone by a concurrent write.
    writes: tokio::sync::Mutex<()>,
    hash_params: argon2::Params,
    /// Verified when the user is unknown, so timing does not tell who
    /// exists; made on first use (a CLI run never needs it).
    decoy: std::sync::OnceLock<Secret<String>>,
    issuer: String,
}

fn totp_for(secret_base32: &str, user: &str, issuer: &str) -> Option<totp_rs::Totp> {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).ok()?;
    totp_rs::Builder::new()
        .with_secret(secret)
        // A colon would split the otpauth label.
        .with_account_name(user.replace(':', "_"))
        .with_issuer(Some(issuer.replace(':', "_")))
        .build()
        .ok()
}

fn recovery_hash(code: &str) -> String {
    let normalised: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    blake3::hash(normalised.as_bytes()).to_hex().to_string()
}

/// `xxxxx-xxxxx`: 50 random bits from the app-password alphabet.
fn recovery_code() -> Secret<String> {
    const ALPHABET: &[u8] = password::ALPHABET;
    let mut rng = rand::rng();
    let mut code = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            code.push('-');
        }
        code.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    Secret::new(code)
}

impl Logins {
    pub fn new(accounts: Arc<Accounts>, hash_params: argon2::Params, issuer: &str) -> Self {
        let slots = std::thread::available_parallelism().map(|n| n.get() / 2).unwrap_or(1).max(1);
        Self {
            accounts,
            hash_slots: tokio::sync::Semaphore::new(slots),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            writes: tokio::sync::Mutex::new(()),
            hash_params,
            decoy: std::sync::OnceLock::new(),
            issuer: issuer.to_string(),
        }
    }

    /// Runs one argon2 job on a bounded number of threads.
    async fn hashing<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> AccountResult<T> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_HASHES {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(AccountError::Busy);
        }
        let permit = self.hash_slots.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|_| AccountError::Busy)?;
        tokio::task::spawn_blocking(job).await.map_err(|e| AccountError::Invalid(format!("hashing failed: {e}")))
    }

    fn event(user: &str, kind: EventKind, actor: &str, detail: Option<String>) -> [Event; 1] {
        [Event { at: unix_now(), user: user.into(), kind, password_id: None, actor: actor.into(), detail }]
    }

    /// Writes `login` with the event it causes, in one store transaction.
    async fn put(&self, login: &Login, event: [Event; 1]) -> AccountResult<()> {
        Ok(self.accounts.store().put_login(login, &event).await?)
    }

    async fn login(&self, user: &str) -> AccountResult<Login> {
        Ok(self
            .accounts
            .store()
            .get_login(user)
            .await?
            .unwrap_or_else(|| Login { user: user.into(), ..Login::default() }))
    }

    pub async fn has_password(&self, user: &str) -> AccountResult<bool> {
        Ok(self.login(user).await?.password_hash.is_some())
    }

    pub async fn has_totp(&self, user: &str) -> AccountResult<bool> {
        Ok(self.login(user).await?.totp.is_some())
    }

    /// When the login password last changed (Unix seconds; 0 if never):
    /// sessions signed in before then are over.
    pub async fn changed_at(&self, user: &str) -> AccountResult<u64> {
        Ok(self.login(user).await?.changed)
    }

    /// Sets the login password. With `[policy] revoke_on_password_change`
    /// every app password of the user is revoked too; returns how many.
    pub async fn set_password(&self, user: &str, new: &Secret<String>, actor: &str) -> AccountResult<usize> {
        let chars = new.expose().chars().count();
        if !(MIN_LOGIN_CHARS..=MAX_LOGIN_CHARS).contains(&chars) {
            return Err(AccountError::Invalid(format!(
                "a login password is {MIN_LOGIN_CHARS} to {MAX_LOGIN_CHARS} characters"
            )));
        }
        self.accounts.user(user).await?;
        let params = self.hash_params.clone();
        let secret = new.clone();
        let hash = self.hashing(move || password::hash(&secret, &params)).await?;
        // App passwords go first: should the change then fail, they are
        // revoked and the old login password stays, never the reverse.
        let revoked = match self.accounts.policy().revoke_on_password_change {
            true => self.accounts.revoke_all(user, actor).await?,
            false => 0,
        };
        let _w = self.writes.lock().await;
        let mut login = self.login(user).await?;
        login.password_hash = Some(hash);
        login.changed = unix_now();
        self.put(&login, Self::event(user, EventKind::LoginPasswordChanged, actor, None)).await?;
        Ok(revoked)
    }

    /// Checks a user name and login password. Unknown users, disabled users
    /// and users without a login password cost the same hash as a real one.
    pub async fn check_password(&self, user: &str, presented: &Secret<String>) -> AccountResult<PasswordCheck> {
        let account = self.accounts.store().get_user(user).await?;
        let login = match &account {
            Some(_) => self.accounts.store().get_login(user).await?,
            None => None,
        };
        let hash = match login.as_ref().and_then(|l| l.password_hash.clone()) {
            Some(h) => h,
            None => self.decoy.get_or_init(|| password::hash(&password::generate(), &self.hash_params)).clone(),
        };
        let presented = presented.clone();
        let matched = self.hashing(move || password::verify(&presented, &hash)).await?;
        let active = account.is_some_and(|a| a.state == crate::store::model::UserState::Active);
        let Some(login) = login.filter(|l| matched && active && l.password_hash.is_some()) else {
            return Ok(PasswordCheck::Refused);
        };
        Ok(if login.totp.is_some() { PasswordCheck::NeedsSecondFactor } else { PasswordCheck::Accepted })
    }

    /// Checks a TOTP code (accepted once) or a recovery code (consumed).
    pub async fn check_second_factor(&self, user: &str, code: &str) -> AccountResult<bool> {
        let _w = self.writes.lock().await;
        let mut login = self.login(user).await?;
        let Some(totp) = login.totp.as_mut() else { return Ok(false) };
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            let Some(checker) = totp_for(totp.secret.expose(), user, &self.issuer) else { return Ok(false) };
            match checker.check(&digits, unix_now()) {
                Some(step) if step > totp.last_step => {
                    totp.last_step = step;
                    self.accounts.store().put_login(&login, &[]).await?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        } else {
            let wanted = recovery_hash(code);
            let Some(at) = totp.recovery.iter().position(|h| h.ct_eq(&wanted)) else { return Ok(false) };
            totp.recovery.remove(at);
            let left = totp.recovery.len();
            let detail = format!("recovery code used, {left} left");
            self.put(&login, Self::event(user, EventKind::SignedIn, "user", Some(detail))).await?;
            Ok(true)
        }
    }

    /// A fresh secret to enrol; nothing is stored until it is confirmed.
    pub fn offer_totp(&self, user: &str) -> TotpOffer {
        let secret = Secret::new(totp_rs::Secret::generate().to_base32());
        TotpOffer { url: self.otpauth_url(user, &secret), secret }
    }

    /// The `otpauth://` URL of an offered secret, for its QR code.
    pub fn otpauth_url(&self, user: &str, secret: &Secret<String>) -> Secret<String> {
        Secret::new(totp_for(secret.expose(), user, &self.issuer).and_then(|t| t.to_url().ok()).unwrap_or_default())
    }

    /// Enables TOTP once `code` proves the authenticator has `secret`.
    /// Returns the recovery codes, shown once.
    pub async fn enable_totp(
        &self,
        user: &str,
        secret: &Secret<String>,
        code: &str,
    ) -> AccountResult<Vec<Secret<String>>> {
        let checker = totp_for(secret.expose(), user, &self.issuer)
            .ok_or_else(|| AccountError::Invalid("the TOTP secret is not valid base32".into()))?;
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let step = checker
            .check(&code, unix_now())
            .ok_or_else(|| AccountError::Invalid("that code is not right; check the time on your phone".into()))?;
        let codes: Vec<Secret<String>> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let _w = self.writes.lock().await;
        let mut login = self.login(user).await?;
        login.totp = Some(Totp {
            secret: secret.clone(),
            recovery: codes.iter().map(|c| Secret::new(recovery_hash(c.expose()))).collect(),
            last_step: step,
        });
        self.put(&login, Self::event(user, EventKind::TotpEnabled, "user", None)).await?;
        Ok(codes)
    }

    pub async fn disable_totp(&self, user: &str, actor: &str) -> AccountResult<bool> {
        let _w = self.writes.lock().await;
        let mut login = self.login(user).await?;
        if login.totp.take().is_none() {
            return Ok(false);
        }
        self.put(&login, Self::event(user, EventKind::TotpDisabled, actor, None)).await?;
        Ok(true)
    }

    /// Records a sign-in (or a failed one) in the user's history.
    pub async fn record_sign_in(&self, user: &str, ok: bool, detail: String) -> AccountResult<()> {
        let kind = if ok { EventKind::SignedIn } else { EventKind::SignInFailed };
        let [event] = Self::event(user, kind, "user", Some(detail));
        Ok(self.accounts.store().append_event(&event).await?)
    }

    /// The TOTP code for `secret` at Unix time `at`, as an authenticator
    /// app would show it (tests play the phone with this).
    pub fn code_at(secret_base32: &str, at: u64) -> Option<String> {
        let totp = totp_for(secret_base32, "x", "x")?;
        Some(totp.generate(at).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_match_however_typed() {
        let code = recovery_code();
        let typed = code.expose().to_uppercase().replace('-', " ");
        assert_eq!(recovery_hash(&typed), recovery_hash(code.expose()));
        assert_ne!(recovery_hash("abcde-fghjk"), recovery_hash("abcde-fghjm"));
        assert_eq!(code.expose().len(), 11);
    }

    #[test]
    fn totp_codes_come_from_the_secret() {
        let secret = totp_rs::Secret::generate().to_base32();
        let code = Logins::code_at(&secret, unix_now()).unwrap();
        let checker = totp_for(&secret, "al:ice", "davgate").unwrap();
        assert!(checker.check(&code, unix_now()).is_some());
        assert!(checker.to_url().unwrap().starts_with("otpauth://totp/"));
    }
}
