//! `basic_auth_users`: Basic credentials checked against bcrypt hashes, as exporter-toolkit's
//! `handler.go` and `cache.go` do: an unknown user costs as much as a wrong password, bcrypt
//! runs on a few blocking threads only, and a pair that passed is remembered while it is used.
//! Under a flood of wrong passwords, the checks waiting for bcrypt are bounded (past the bound:
//! [`Auth::Busy`], a 429) and a remembered pair skips the queue, so the scraper with the right
//! password is not kept waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::header::HeaderValue;
use sha2::{Digest, Sha256};

/// bcrypt checks that may run at once, on tokio's blocking pool: a flood of wrong passwords
/// queues here instead of taking every core or any of the runtime's worker threads.
const BCRYPT_SLOTS: usize = 2;
/// bcrypt checks that may wait for a slot; one more is refused at once ([`Auth::Busy`]). With
/// cost-10 hashes (about 50 ms each) the last in the queue waits about 0.2 s.
const BCRYPT_QUEUE: usize = 8;
/// How long a (user, password) pair that passed bcrypt is accepted without bcrypt again since
/// it was last used (the window slides on each use).
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Pairs remembered at most; the oldest goes first.
const VERIFIED_MAX: usize = 256;
/// Salt and checksum of a well-formed bcrypt hash (exporter-toolkit's dummy): an unknown user
/// is checked against it, at the configured cost, so that it takes as long as a wrong password.
const DUMMY_SALT_AND_CHECKSUM: &str = "QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// The `BCRYPT_SLOTS` bcrypt checks that may run at once, and the count of checks waiting for
/// or holding one. One set serves every configuration a `LiveWebConfig` loads, so a reload
/// does not open more slots.
#[derive(Clone)]
pub(super) struct BcryptSlots(Arc<tokio::sync::Semaphore>, Arc<AtomicUsize>);

impl BcryptSlots {
    pub(super) fn new() -> Self {
        BcryptSlots(
            Arc::new(tokio::sync::Semaphore::new(BCRYPT_SLOTS)),
            Arc::new(AtomicUsize::new(0)),
        )
    }

    /// A place among the checks running or waiting, if there is one left.
    fn enter(&self) -> Option<Queued> {
        let counter = self.1.clone();
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < BCRYPT_SLOTS + BCRYPT_QUEUE).then_some(n + 1)
            })
            .ok()?;
        Some(Queued(counter))
    }
}

/// A place among the bcrypt checks running or waiting, given back when dropped.
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What Basic credentials are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No users are configured, or the credentials match.
    Allowed,
    /// Missing or wrong credentials (401).
    Denied,
    /// Too many bcrypt checks are waiting already: not checked (429).
    Busy,
}

/// The configured users and what checking them needs.
pub(super) struct BasicAuth {
    /// user name -> bcrypt hash
    users: HashMap<String, String>,
    /// No password matches it; its cost is the highest of the configured hashes.
    dummy_hash: String,
    bcrypt_slots: BcryptSlots,
    verified: Mutex<Verified>,
    /// The cost of each bcrypt check run, in order: what the tests count instead of timing.
    #[cfg(test)]
    checked_costs: Mutex<Vec<u32>>,
}

impl BasicAuth {
    /// Checks every hash (in user name order, so the error is always about the same user) and
    /// makes the dummy hash at the highest of their costs.
    pub(super) fn new(
        users: HashMap<String, String>,
        bcrypt_slots: BcryptSlots,
    ) -> Result<Self, String> {
        let mut sorted: Vec<(&String, &String)> = users.iter().collect();
        sorted.sort();
        let mut cost = 0;
        for (user, hash) in sorted {
            let this = bcrypt_cost(hash).map_err(|reason| {
                format!(
                    "basic_auth_users.{user}: not a bcrypt hash ({reason}; expected 60 characters like $2y$10$...)"
                )
            })?;
            cost = cost.max(this);
        }
        Ok(BasicAuth::with_cost(users, cost, bcrypt_slots))
    }

    fn with_cost(users: HashMap<String, String>, cost: u32, bcrypt_slots: BcryptSlots) -> Self {
        BasicAuth {
            users,
            dummy_hash: format!("$2y${cost:02}${DUMMY_SALT_AND_CHECKSUM}"),
            bcrypt_slots,
            verified: Mutex::new(Verified::default()),
            #[cfg(test)]
            checked_costs: Mutex::default(),
        }
    }

    /// The configured user names (for `Debug`; never the hashes).
    pub(super) fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Whether no users are configured or the Basic credentials match a bcrypt hash.
    ///
    /// An unknown user is checked against the dummy hash, so the answer takes as long as for a
    /// wrong password and does not tell which users exist. bcrypt runs on the blocking pool,
    /// at most `BCRYPT_SLOTS` at once with at most `BCRYPT_QUEUE` waiting (past that:
    /// [`Auth::Busy`]); a pair that passed is remembered until unused for `VERIFIED_FOR`, and
    /// needs no bcrypt slot then.
    pub(super) async fn authorized(&self, header: Option<&HeaderValue>) -> Auth {
        if self.users.is_empty() {
            return Auth::Allowed;
        }
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return Auth::Denied;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(password.as_bytes())
            .chain_update([0u8])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if known && self.verified().contains(&digest, Instant::now()) {
            return Auth::Allowed;
        }
        let Some(queued) = self.bcrypt_slots.enter() else {
            return Auth::Busy;
        };
        let Ok(slot) = self.bcrypt_slots.0.clone().acquire_owned().await else {
            return Auth::Denied;
        };
        #[cfg(test)]
        self.checked_costs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(bcrypt_cost(&hash).unwrap_or(0));
        // The slot moves into the blocking task: a client that hangs up mid-check does not
        // free it before bcrypt has finished.
        let matched = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _queued = queued;
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if matched && known {
            self.verified().insert(digest, Instant::now());
            Auth::Allowed
        } else {
            Auth::Denied
        }
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The cost of a well-formed bcrypt hash, or why it is not one.
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e: bcrypt::BcryptError| {
        let reason = e.to_string();
        reason
            .strip_prefix("Invalid hash: ")
            .unwrap_or(&reason)
            .to_string()
    })?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("cost {cost} is outside 04..31"));
    }
    Ok(cost)
}

/// Digests of (user, password, hash) that passed bcrypt, with when they did.
#[derive(Default)]
struct Verified {
    at: HashMap<[u8; 32], Instant>,
}

impl Verified {
    /// Whether `digest` passed and was used within `VERIFIED_FOR`; a hit counts as a use.
    fn contains(&mut self, digest: &[u8; 32], now: Instant) -> bool {
        match self.at.get_mut(digest) {
            Some(at) if now.saturating_duration_since(*at) < VERIFIED_FOR => {
                *at = now;
                true
            }
            Some(_) => {
                self.at.remove(digest);
                false
            }
            None => false,
        }
    }

    fn insert(&mut self, digest: [u8; 32], now: Instant) {
        if self.at.len() >= VERIFIED_MAX && !self.at.contains_key(&digest) {
            self.at
                .retain(|_, at| now.saturating_duration_since(*at) < VERIFIED_FOR);
            if self.at.len() >= VERIFIED_MAX {
                let oldest = self.at.iter().min_by_key(|(_, at)| **at).map(|(d, _)| *d);
                if let Some(oldest) = oldest {
                    self.at.remove(&oldest);
                }
            }
        }
        self.at.insert(digest, now);
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(header: &HeaderValue) -> Option<(String, String)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth_with_user(user: &str, password: &str) -> BasicAuth {
        let hash = bcrypt::hash(password, 4).unwrap();
        BasicAuth::with_cost(
            HashMap::from([(user.to_string(), hash)]),
            4,
            BcryptSlots::new(),
        )
    }

    impl BasicAuth {
        async fn allowed(&self, header: Option<&HeaderValue>) -> bool {
            self.authorized(header).await == Auth::Allowed
        }
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[tokio::test]
    async fn basic_auth_accepts_only_the_right_password() {
        let web = auth_with_user("prometheus", "s3cret");
        assert!(web.allowed(Some(&basic("prometheus", "s3cret"))).await);
        // Second time from the cache.
        assert!(web.allowed(Some(&basic("prometheus", "s3cret"))).await);
        assert!(!web.allowed(Some(&basic("prometheus", "wrong"))).await);
        assert!(!web.allowed(Some(&basic("other", "s3cret"))).await);
        assert!(!web.allowed(None).await);
        assert!(
            !web.allowed(Some(&HeaderValue::from_static("Bearer x")))
                .await
        );
        assert!(
            !web.allowed(Some(&HeaderValue::from_static("Basic !!!")))
                .await
        );
    }

    /// The bcrypt checks run since the last call, by cost.
    fn checks(auth: &BasicAuth) -> Vec<u32> {
        std::mem::take(&mut *auth.checked_costs.lock().unwrap())
    }

    /// An unknown user costs what a wrong password costs: exactly one bcrypt check at the
    /// configured cost (the highest of the hashes), so the time of the answer does not tell
    /// which users exist. Counted rather than timed.
    #[tokio::test]
    async fn an_unknown_user_costs_one_bcrypt_check_at_the_configured_cost_as_a_wrong_password_does(
    ) {
        let users = HashMap::from([
            ("cheap".to_string(), bcrypt::hash("x", 4).unwrap()),
            ("prometheus".to_string(), bcrypt::hash("s3cret", 6).unwrap()),
        ]);
        let auth = BasicAuth::new(users, BcryptSlots::new()).unwrap();
        assert!(!auth.allowed(Some(&basic("nobody", "s3cret"))).await);
        assert_eq!(checks(&auth), [6], "an unknown user");
        assert!(!auth.allowed(Some(&basic("prometheus", "wrong"))).await);
        assert_eq!(checks(&auth), [6], "a wrong password");
        // Neither is remembered: every try costs a check again.
        assert!(!auth.allowed(Some(&basic("nobody", "s3cret"))).await);
        assert!(!auth.allowed(Some(&basic("prometheus", "wrong"))).await);
        assert_eq!(checks(&auth), [6, 6]);
        // The right password is checked once, then remembered.
        assert!(auth.allowed(Some(&basic("prometheus", "s3cret"))).await);
        assert!(auth.allowed(Some(&basic("prometheus", "s3cret"))).await);
        assert_eq!(checks(&auth), [6]);
    }

    /// A flood of wrong passwords holds every bcrypt slot; a pair that passed before is let in
    /// without one: its check completes without waiting at all.
    #[tokio::test]
    async fn a_remembered_pair_needs_no_bcrypt_slot_while_a_flood_holds_them_all() {
        use futures_util::FutureExt as _;
        let web = auth_with_user("prometheus", "s3cret");
        assert!(web.allowed(Some(&basic("prometheus", "s3cret"))).await);
        let slots = web.bcrypt_slots.0.clone();
        let held = slots.acquire_many(BCRYPT_SLOTS as u32).await.unwrap();
        assert_eq!(slots.available_permits(), 0);
        assert_eq!(
            web.allowed(Some(&basic("prometheus", "s3cret")))
                .now_or_never(),
            Some(true),
            "remembered: answered at once"
        );
        assert_eq!(
            web.allowed(Some(&basic("prometheus", "guess")))
                .now_or_never(),
            None,
            "a guess waits for a slot"
        );
        drop(held);
        assert_eq!(checks(&web), [4]);
    }

    /// Past `BCRYPT_QUEUE` waiting checks a guess is refused at once, not queued; a remembered
    /// pair is still let in.
    #[tokio::test]
    async fn checks_past_the_queue_bound_are_refused_at_once() {
        use futures_util::FutureExt as _;
        let web = std::sync::Arc::new(auth_with_user("prometheus", "s3cret"));
        assert!(web.allowed(Some(&basic("prometheus", "s3cret"))).await);
        let held = web
            .bcrypt_slots
            .0
            .clone()
            .acquire_many_owned(BCRYPT_SLOTS as u32)
            .await
            .unwrap();
        // Stand-ins for the checks running: they hold a place without a slot.
        let running: Vec<Queued> = (0..BCRYPT_SLOTS)
            .map(|_| web.bcrypt_slots.enter().unwrap())
            .collect();
        let mut waiting = Vec::new();
        for i in 0..BCRYPT_QUEUE {
            let web = web.clone();
            waiting.push(tokio::spawn(async move {
                web.authorized(Some(&basic("prometheus", &format!("guess-{i}"))))
                    .await
            }));
        }
        wait_until(|| web.bcrypt_slots.1.load(Ordering::Acquire) == BCRYPT_SLOTS + BCRYPT_QUEUE)
            .await;
        assert_eq!(
            web.authorized(Some(&basic("prometheus", "one-more")))
                .now_or_never(),
            Some(Auth::Busy),
            "refused at once"
        );
        assert_eq!(
            web.authorized(Some(&basic("prometheus", "s3cret")))
                .now_or_never(),
            Some(Auth::Allowed),
            "the remembered pair skips the queue"
        );
        drop(running);
        drop(held);
        for w in waiting {
            assert_eq!(w.await.unwrap(), Auth::Denied);
        }
        assert_eq!(web.bcrypt_slots.1.load(Ordering::Acquire), 0);
    }

    async fn wait_until(check: impl Fn() -> bool) {
        for _ in 0..1000 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn no_users_lets_everyone_in() {
        let auth = BasicAuth::new(HashMap::new(), BcryptSlots::new()).unwrap();
        assert!(auth.allowed(None).await);
    }

    #[test]
    fn credentials_are_split_at_the_first_colon_and_the_scheme_is_any_case() {
        let header = |s: &str| HeaderValue::from_str(s).unwrap();
        let token = base64::engine::general_purpose::STANDARD.encode("u:p:w");
        assert_eq!(
            basic_credentials(&header(&format!("basic {token}"))),
            Some(("u".into(), "p:w".into()))
        );
        let no_colon = base64::engine::general_purpose::STANDARD.encode("user");
        assert_eq!(
            basic_credentials(&header(&format!("Basic {no_colon}"))),
            None
        );
        assert_eq!(basic_credentials(&header("Basic")), None);
    }

    #[test]
    fn the_dummy_hash_is_well_formed_at_every_cost_and_matches_nothing() {
        for cost in [4, 10, 31] {
            let web = BasicAuth::with_cost(HashMap::new(), cost, BcryptSlots::new());
            assert_eq!(bcrypt_cost(&web.dummy_hash), Ok(cost), "{}", web.dummy_hash);
        }
        let web = BasicAuth::with_cost(HashMap::new(), 4, BcryptSlots::new());
        for password in ["", "password", "prometheus"] {
            assert_eq!(bcrypt::verify(password, &web.dummy_hash).ok(), Some(false));
        }
    }

    #[test]
    fn the_dummy_hash_costs_as_much_as_the_dearest_configured_hash() {
        let users = HashMap::from([
            ("a".to_string(), bcrypt::hash("x", 4).unwrap()),
            ("b".to_string(), bcrypt::hash("x", 5).unwrap()),
        ]);
        let auth = BasicAuth::new(users, BcryptSlots::new()).unwrap();
        assert_eq!(bcrypt_cost(&auth.dummy_hash), Ok(5));
    }

    #[test]
    fn the_first_bad_hash_in_user_order_is_named_without_echoing_it() {
        let users = HashMap::from([
            ("b".to_string(), "also-plain".to_string()),
            ("a".to_string(), "plain".to_string()),
        ]);
        let e = BasicAuth::new(users, BcryptSlots::new()).err().unwrap();
        assert!(
            e.starts_with("basic_auth_users.a: not a bcrypt hash ("),
            "{e}"
        );
        assert!(!e.contains("plain"), "{e}");
    }

    #[test]
    fn malformed_hashes_are_named() {
        let good = bcrypt::hash("x", 4).unwrap();
        assert_eq!(bcrypt_cost(&good), Ok(4));
        let cost_99 = format!("$2b$99${}", &good[7..]);
        let cost_03 = format!("$2b$03${}", &good[7..]);
        let not_2 = format!("$3b$10${}", &good[7..]);
        for bad in [
            "",
            "$2",
            "plain",
            cost_99.as_str(),
            cost_03.as_str(),
            not_2.as_str(),
            &good[..59],
            "$2y$10$ééééééééééééééééééééééééééé",
        ] {
            assert!(bcrypt_cost(bad).is_err(), "{bad:?} passed");
        }
        assert_eq!(
            bcrypt_cost(&cost_99).unwrap_err(),
            "cost 99 is outside 04..31"
        );
    }

    #[test]
    fn verified_pairs_expire_and_the_oldest_goes_first() {
        let key = |i: usize| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k
        };
        let mut v = Verified::default();
        let t0 = Instant::now();
        v.insert(key(1), t0);
        assert!(v.contains(&key(1), t0 + Duration::from_secs(59)));
        // The window slides on use: 59 s after the last use, not the first.
        assert!(v.contains(&key(1), t0 + Duration::from_secs(118)));
        assert!(!v.contains(&key(1), t0 + Duration::from_secs(118) + VERIFIED_FOR));
        assert!(v.at.is_empty(), "an expired pair is dropped when seen");
        for i in 0..VERIFIED_MAX {
            v.insert(key(i), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(v.at.len(), VERIFIED_MAX);
        let later = t0 + Duration::from_secs(1);
        let new = key(VERIFIED_MAX);
        v.insert(new, later);
        assert_eq!(v.at.len(), VERIFIED_MAX);
        assert!(!v.contains(&key(0), later), "the oldest went");
        assert!(v.contains(&new, later));
        assert!(v.contains(&key(1), later));
        // Everything expired: room is made by dropping the expired ones.
        v.insert(key(VERIFIED_MAX + 1), later + VERIFIED_FOR);
        assert_eq!(v.at.len(), 1);
    }
}
