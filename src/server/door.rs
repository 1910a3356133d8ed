//! The front door: which connections may log in, in what order, and how failed
//! logins slow whoever makes them.
//!
//! Until a connection names a district (its first authentication request) it
//! counts against its address: each address may have
//! `max_pending_logins_per_address` connections handshaking at once, and
//! further ones wait their turn, first come first served, within the login
//! grace. Only the queues are bounded (per address and in total), so a flood
//! from one address costs others nothing but the queue it fills itself.
//!
//! From its first authentication request on, a connection counts against what
//! it named ([`Bucket`]): that district from that address, or, for a name no
//! district has, its address's unnamed logins. Its address slot passes to the
//! next waiter at once. A hosted SIS exports every district it hosts from a few
//! shared addresses at the same minute, so one district's failing, lingering
//! or over-eager clients must never hold up another district's logins there:
//! what a bucket holds (connections not logged in, failures, a throttle) is its
//! own.
//!
//! `failures_before_throttle` connections of a bucket that end without logging
//! in, within the window, throttle it: for the throttle's length its refusals
//! are answered one at a time, [`PACE`] apart (each connection's refusal waits
//! its turn, within the login grace). A valid key is never delayed, so a
//! district's own job gets in at once even from a throttled address; what
//! slows is guessing. Nothing is refused outright for its address alone.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::config::ServerConfig;

/// How often, at most, refusals of one address are logged at warn.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Addresses (and address-district pairs) remembered, at most; past it,
/// entries that no longer matter are dropped first.
const MAX_REMEMBERED: usize = 100_000;

/// A throttled bucket answers one refusal per this long.
pub const PACE: Duration = Duration::from_secs(1);

/// Connections of one address that named someone and have not logged in, at
/// most, as a multiple of `max_pending_logins_per_address`: room for a few
/// districts' failing clients beside every other district's logins.
pub const NAMED_PER_ADDRESS: u32 = 4;

/// What a throttle remembers of what was tried (key fingerprints, or the
/// usernames of an address's unnamed logins), at most.
const TRIED_KEPT: usize = 8;

/// The limits the door applies, read from the configuration at each decision
/// so that a reload applies at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub logging_in_per_address: u32,
    pub queued_per_address: u32,
    pub queued_total: u32,
    /// Connections of one bucket that named it and have not logged in.
    pub pending_per_bucket: u32,
    /// The same over all buckets of one address, so that one address
    /// naming many districts still holds a bounded share of the server.
    pub pending_per_address: u32,
    pub failures_before_throttle: u32,
    pub failure_window: Duration,
    pub throttle: Duration,
}

impl Limits {
    pub fn from_config(s: &ServerConfig) -> Self {
        Self {
            logging_in_per_address: s.max_pending_logins_per_address,
            queued_per_address: s.max_queued_logins_per_address,
            queued_total: s.max_queued_logins,
            pending_per_bucket: s.max_pending_logins_per_address,
            pending_per_address: s
                .max_pending_logins_per_address
                .saturating_mul(NAMED_PER_ADDRESS),
            failures_before_throttle: s.auth_failures_before_ban,
            failure_window: Duration::from_secs(s.auth_failure_window_seconds),
            throttle: Duration::from_secs(s.ban_seconds),
        }
    }
}

/// Why a connection was turned away at once, before any SSH work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address's queue, or the queue of all addresses, is full.
    QueueFull,
}

/// What a connection's logins count against once it has named a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// A registered district (its id), from one address.
    District(IpAddr, i64),
    /// Names that are no district's, from one address.
    Unnamed(IpAddr),
}

impl Bucket {
    pub fn ip(&self) -> IpAddr {
        match *self {
            Self::District(ip, _) | Self::Unnamed(ip) => ip,
        }
    }

    pub fn tenant_id(&self) -> Option<i64> {
        match *self {
            Self::District(_, id) => Some(id),
            Self::Unnamed(_) => None,
        }
    }
}

/// A bucket's throttle, as support sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// When it began and ends.
    pub since: Instant,
    pub until: Instant,
    /// Failed connections: those that began it, and any since.
    pub failures: u32,
    /// Key fingerprints (district) or usernames (unnamed) refused, first few.
    pub tried: Vec<String>,
}

/// A failure that began a throttle, or counted while one lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub throttle: Throttle,
    /// This failure began it (warn then; afterwards only the count grows).
    pub began: bool,
}

#[derive(Default)]
pub struct FrontDoor {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    addresses: HashMap<IpAddr, Address>,
    buckets: HashMap<Bucket, Named>,
    queued: u32,
}

/// An address's connections that have not named anyone yet.
#[derive(Default)]
struct Address {
    /// Connections holding a login slot.
    logging_in: u32,
    /// Waiters in arrival order; some may have given up (closed receivers).
    queue: VecDeque<oneshot::Sender<LoginSlot>>,
    /// Waiters that have not given up.
    queued: u32,
    /// Connections that named someone and have not logged in, over all the
    /// address's buckets.
    named: u32,
    /// Refusals since the last warning about this address.
    refused: u64,
    warned_at: Option<Instant>,
}

impl Address {
    fn forgettable(&self, now: Instant) -> bool {
        self.logging_in == 0
            && self.queued == 0
            && self.named == 0
            && self
                .warned_at
                .is_none_or(|w| now.duration_since(w) >= WARN_EVERY)
    }
}

/// What one bucket holds.
#[derive(Default)]
struct Named {
    /// Connections that named this bucket and have not logged in:
    /// authenticating, refused and left open, or waiting for a paced refusal.
    pending: u32,
    failures: VecDeque<Instant>,
    /// What its failing connections tried in the current window.
    tried: Vec<String>,
    throttle: Option<Throttle>,
    /// When its next paced refusal may be answered.
    next_refusal: Option<Instant>,
}

impl Named {
    fn throttled(&self, now: Instant) -> bool {
        self.throttle.as_ref().is_some_and(|t| t.until > now)
    }

    fn forgettable(&self, now: Instant, window: Duration) -> bool {
        self.pending == 0
            && !self.throttled(now)
            && self
                .failures
                .back()
                .is_none_or(|at| now.duration_since(*at) >= window)
    }
}

/// Which limit a connection naming someone met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Its bucket's: `pending_per_bucket`.
    Bucket,
    /// Its address's, over all buckets: `pending_per_address`.
    Address,
}

/// When a refusal may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// At once: nothing it counts against is throttled.
    Now,
    /// At this time, its turn in the throttle's pace (reserved).
    At(Instant),
    /// Not before the connection's deadline, or further ahead than a full
    /// bucket's worth of turns: nothing is reserved, and the connection is
    /// closed after one [`PACE`], so that a refusal is never quicker
    /// throttled than not.
    TooLate,
}

/// Whether a connection may log in now or must wait.
pub enum Admission {
    Now(LoginSlot),
    Queued(Waiting),
}

/// The right to be handshaking, counted against the address until released
/// (at the connection's first authentication request) or dropped (the
/// connection ended).
pub struct LoginSlot {
    door: Option<Arc<FrontDoor>>,
    ip: IpAddr,
}

impl LoginSlot {
    /// Give the slot back: the next waiting connection of the address gets it.
    pub fn release(&mut self) {
        if let Some(door) = self.door.take() {
            door.hand_on(self.ip);
        }
    }
}

impl Drop for LoginSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// A connection waiting for a login slot of its address.
pub struct Waiting {
    door: Arc<FrontDoor>,
    ip: IpAddr,
    slot: oneshot::Receiver<LoginSlot>,
}

impl Waiting {
    /// The slot, once this connection's turn comes; `None` if `deadline`
    /// passes first.
    pub async fn until(mut self, deadline: tokio::time::Instant) -> Option<LoginSlot> {
        tokio::time::timeout_at(deadline, &mut self.slot)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for Waiting {
    /// No longer waiting (served or given up). A slot handed over just as the
    /// wait ended is dropped with the receiver and so passed on again.
    fn drop(&mut self) {
        let mut state = self.door.lock();
        state.queued = state.queued.saturating_sub(1);
        if let Some(a) = state.addresses.get_mut(&self.ip) {
            a.queued = a.queued.saturating_sub(1);
        }
    }
}

/// A connection counted against its bucket until it logs in or ends.
pub struct Pending {
    door: Option<Arc<FrontDoor>>,
    bucket: Bucket,
}

impl Pending {
    pub fn bucket(&self) -> Bucket {
        self.bucket
    }

    /// The connection logged in: it no longer counts.
    pub fn release(&mut self) {
        if let Some(door) = self.door.take() {
            let mut state = door.lock();
            if let Some(b) = state.buckets.get_mut(&self.bucket) {
                b.pending = b.pending.saturating_sub(1);
            }
            if let Some(a) = state.addresses.get_mut(&self.bucket.ip()) {
                a.named = a.named.saturating_sub(1);
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.release();
    }
}

impl FrontDoor {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decide on a new connection from `ip`, before any SSH work is done.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: Limits) -> Result<Admission, Refusal> {
        let now = Instant::now();
        let mut state = self.lock();
        let total_queued = state.queued;
        let a = state.addresses.entry(ip).or_default();
        if a.logging_in < limits.logging_in_per_address && a.queued == 0 {
            a.logging_in += 1;
            return Ok(Admission::Now(LoginSlot {
                door: Some(self.clone()),
                ip,
            }));
        }
        if a.queued >= limits.queued_per_address || total_queued >= limits.queued_total {
            a.refused += 1;
            if a.warned_at
                .is_none_or(|w| now.duration_since(w) >= WARN_EVERY)
            {
                tracing::warn!(
                    address = %ip,
                    refused = a.refused,
                    waiting_from_address = a.queued,
                    waiting_in_all = total_queued,
                    "connections refused: too many are already waiting to log in (server.max_queued_logins_per_address, server.max_queued_logins)"
                );
                a.refused = 0;
                a.warned_at = Some(now);
            }
            return Err(Refusal::QueueFull);
        }
        // Waiters that gave up are skipped when slots are handed on; drop them
        // here too, so a queue that is never served stays as long as its
        // live waiters.
        if a.queue.len() > 2 * a.queued as usize + 16 {
            a.queue.retain(|w| !w.is_closed());
        }
        let (tx, rx) = oneshot::channel();
        a.queue.push_back(tx);
        a.queued += 1;
        state.queued += 1;
        Ok(Admission::Queued(Waiting {
            door: self.clone(),
            ip,
            slot: rx,
        }))
    }

    /// A login slot of `ip` was given back: pass it to the first waiter still
    /// waiting, else count it free.
    fn hand_on(self: Arc<Self>, ip: IpAddr) {
        let mut state = self.lock();
        let Some(a) = state.addresses.get_mut(&ip) else {
            return;
        };
        while let Some(waiter) = a.queue.pop_front() {
            let slot = LoginSlot {
                door: Some(self.clone()),
                ip,
            };
            match waiter.send(slot) {
                Ok(()) => return,
                // That waiter gave up; its slot must not release again.
                Err(mut unsent) => unsent.door = None,
            }
        }
        a.logging_in = a.logging_in.saturating_sub(1);
    }

    /// Count a connection against `bucket`, which it named, until it logs in
    /// or ends; `Err` if the bucket, or its address over all its buckets,
    /// already has as many as allowed (logged at warn, at most every 10 s
    /// per address).
    pub fn name(self: &Arc<Self>, bucket: Bucket, limits: Limits) -> Result<Pending, Full> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.buckets.len() > MAX_REMEMBERED {
            state
                .buckets
                .retain(|_, b| !b.forgettable(now, limits.failure_window));
        }
        let pending = state.buckets.get(&bucket).map_or(0, |b| b.pending);
        let ip = bucket.ip();
        let a = state.addresses.entry(ip).or_default();
        let full = if pending >= limits.pending_per_bucket {
            Some(Full::Bucket)
        } else if a.named >= limits.pending_per_address {
            Some(Full::Address)
        } else {
            None
        };
        if let Some(full) = full {
            a.refused += 1;
            if a.warned_at
                .is_none_or(|w| now.duration_since(w) >= WARN_EVERY)
            {
                let (whose, max) = match (full, bucket) {
                    (Full::Address, _) => ("this address", limits.pending_per_address),
                    (Full::Bucket, Bucket::District(..)) => {
                        ("this district from this address", limits.pending_per_bucket)
                    }
                    (Full::Bucket, Bucket::Unnamed(_)) => (
                        "names that are no district's from this address",
                        limits.pending_per_bucket,
                    ),
                };
                tracing::warn!(
                    address = %ip,
                    district_id = bucket.tenant_id(),
                    closed = a.refused,
                    max,
                    "connections closed at their first authentication request: {whose} already has as many connections not logged in as allowed (server.max_pending_logins_per_address)"
                );
                a.refused = 0;
                a.warned_at = Some(now);
            }
            return Err(full);
        }
        a.named += 1;
        state.buckets.entry(bucket).or_default().pending += 1;
        Ok(Pending {
            door: Some(self.clone()),
            bucket,
        })
    }

    /// When a refusal for `bucket`, on a connection that must have logged in
    /// by `deadline`, may be answered. A district's bucket is paced while it
    /// or its address's unnamed logins are throttled, so that from a
    /// throttled address every refusal takes as long, whichever name it was
    /// for. A turn is reserved only if it is usable: before the deadline and
    /// at most `pending_per_bucket` turns ahead, so the pace never drifts
    /// beyond what the connections waiting for it can use.
    pub fn refusal_turn(&self, bucket: Bucket, deadline: Instant, limits: Limits) -> Turn {
        let now = Instant::now();
        let mut state = self.lock();
        let unnamed = Bucket::Unnamed(bucket.ip());
        let Some(pacer) = [bucket, unnamed].into_iter().find(|k| {
            state
                .buckets
                .get(k)
                .is_some_and(|b: &Named| b.throttled(now))
        }) else {
            return Turn::Now;
        };
        let Some(b) = state.buckets.get_mut(&pacer) else {
            return Turn::Now;
        };
        let turn = b.next_refusal.map_or(now, |t| t.max(now));
        let lead = PACE * limits.pending_per_bucket.max(1);
        if turn >= deadline || turn > now + lead {
            return Turn::TooLate;
        }
        b.next_refusal = Some(turn + PACE);
        Turn::At(turn)
    }

    /// Count one connection of `bucket` that ended without logging in, with
    /// what it tried. Past `failures_before_throttle` within the window the
    /// bucket is throttled: returned with `began` set the first time, and
    /// again (its count grown) for each failure while it lasts.
    pub fn record_failure(
        &self,
        bucket: Bucket,
        tried: &[String],
        limits: Limits,
    ) -> Option<Throttled> {
        let now = Instant::now();
        let mut state = self.lock();
        let b = state.buckets.entry(bucket).or_default();
        if b.throttled(now) {
            let t = b.throttle.as_mut()?;
            t.failures = t.failures.saturating_add(1);
            remember(&mut t.tried, tried);
            return Some(Throttled {
                throttle: t.clone(),
                began: false,
            });
        }
        b.throttle = None;
        while b
            .failures
            .front()
            .is_some_and(|at| now.duration_since(*at) >= limits.failure_window)
        {
            b.failures.pop_front();
        }
        if b.failures.is_empty() {
            b.tried.clear();
        }
        b.failures.push_back(now);
        remember(&mut b.tried, tried);
        while b.failures.len() > limits.failures_before_throttle.max(1) as usize {
            b.failures.pop_front();
        }
        if (b.failures.len() as u32) < limits.failures_before_throttle {
            return None;
        }
        let throttle = Throttle {
            since: now,
            until: now + limits.throttle,
            failures: b.failures.len() as u32,
            tried: std::mem::take(&mut b.tried),
        };
        b.failures.clear();
        b.next_refusal = None;
        b.throttle = Some(throttle.clone());
        Some(Throttled {
            throttle,
            began: true,
        })
    }

    /// `bucket`'s throttle, while it lasts.
    pub fn throttle(&self, bucket: Bucket) -> Option<Throttle> {
        let now = Instant::now();
        self.lock()
            .buckets
            .get(&bucket)
            .filter(|b| b.throttled(now))
            .and_then(|b| b.throttle.clone())
    }

    /// Connections logging in or waiting, for tests and `status`: (handshaking
    /// or named and not logged in, waiting), summed over all addresses.
    pub fn load(&self) -> (u32, u32) {
        let state = self.lock();
        let handshaking: u32 = state.addresses.values().map(|a| a.logging_in).sum();
        let named: u32 = state.buckets.values().map(|b| b.pending).sum();
        (handshaking + named, state.queued)
    }

    /// Forget addresses and buckets with nothing left to remember (called now
    /// and then, so that one-off addresses do not pile up).
    pub fn tidy(&self, limits: Limits) {
        let now = Instant::now();
        let mut state = self.lock();
        state.addresses.retain(|_, a| !a.forgettable(now));
        state
            .buckets
            .retain(|_, b| !b.forgettable(now, limits.failure_window));
    }
}

/// Add what a failing connection tried to `kept`, each once, the first
/// [`TRIED_KEPT`] only.
fn remember(kept: &mut Vec<String>, tried: &[String]) {
    for what in tried {
        if kept.len() < TRIED_KEPT && !kept.contains(what) {
            kept.push(what.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(logging_in: u32, queued: u32) -> Limits {
        Limits {
            logging_in_per_address: logging_in,
            queued_per_address: queued,
            queued_total: 1000,
            pending_per_bucket: 2,
            pending_per_address: 5,
            failures_before_throttle: 3,
            failure_window: Duration::from_secs(60),
            throttle: Duration::from_secs(60),
        }
    }

    fn now_slot(a: Result<Admission, Refusal>) -> LoginSlot {
        match a {
            Ok(Admission::Now(s)) => s,
            _ => panic!("expected a slot at once"),
        }
    }

    fn queued(a: Result<Admission, Refusal>) -> Waiting {
        match a {
            Ok(Admission::Queued(w)) => w,
            _ => panic!("expected to wait"),
        }
    }

    #[tokio::test]
    async fn over_the_limit_waits_in_order_and_gets_the_next_slot() {
        let door = FrontDoor::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let l = limits(2, 10);
        let mut a = now_slot(door.admit(ip, l));
        let _b = now_slot(door.admit(ip, l));
        let first = queued(door.admit(ip, l));
        let second = queued(door.admit(ip, l));
        assert_eq!(door.load(), (2, 2));
        let soon = tokio::time::Instant::now() + Duration::from_secs(5);
        a.release();
        let got = first.until(soon).await;
        assert!(got.is_some(), "the first waiter is served first");
        assert_eq!(door.load(), (2, 1));
        drop(got);
        assert!(second.until(soon).await.is_some());
        // Another address is never held up by this one.
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        now_slot(door.admit(other, l));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_its_turn_to_the_next() {
        let door = FrontDoor::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let l = limits(1, 10);
        let mut held = now_slot(door.admit(ip, l));
        let quitter = queued(door.admit(ip, l));
        let patient = queued(door.admit(ip, l));
        let past = tokio::time::Instant::now();
        assert!(quitter.until(past).await.is_none());
        held.release();
        let soon = tokio::time::Instant::now() + Duration::from_secs(5);
        let slot = patient.until(soon).await;
        assert!(slot.is_some());
        drop(slot);
        assert_eq!(door.load(), (0, 0), "every slot and place came back");
    }

    #[test]
    fn full_queues_refuse() {
        let door = FrontDoor::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let l = limits(1, 1);
        let _slot = now_slot(door.admit(ip, l));
        let _wait = queued(door.admit(ip, l));
        assert_eq!(door.admit(ip, l).err(), Some(Refusal::QueueFull));
    }

    #[test]
    fn buckets_are_bounded_each_on_their_own_and_freed() {
        let door = FrontDoor::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let l = limits(1, 1);
        let alpha = Bucket::District(ip, 1);
        let mut a1 = door.name(alpha, l).expect("first");
        let _a2 = door.name(alpha, l).expect("second");
        assert_eq!(
            door.name(alpha, l).err(),
            Some(Full::Bucket),
            "alpha is at its limit"
        );
        let _b = door
            .name(Bucket::District(ip, 2), l)
            .expect("another district from the same address is not");
        let _u = door.name(Bucket::Unnamed(ip), l).expect("nor unnamed");
        assert_eq!(door.load(), (4, 0));
        a1.release();
        let _a3 = door.name(alpha, l).expect("a login frees its place");
        // The address as a whole holds at most five, whatever it names.
        let _c = door.name(Bucket::District(ip, 3), l).expect("fifth");
        assert_eq!(
            door.name(Bucket::District(ip, 4), l).err(),
            Some(Full::Address)
        );
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(door.name(Bucket::District(other, 4), l).is_ok());
    }

    #[test]
    fn failures_throttle_their_own_bucket_only_and_are_counted_on() {
        let door = FrontDoor::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let l = limits(1, 1);
        let alpha = Bucket::District(ip, 1);
        let beta = Bucket::District(ip, 2);
        let keys = |k: &str| vec![k.to_owned()];
        assert_eq!(door.record_failure(alpha, &keys("SHA256:a"), l), None);
        assert_eq!(door.record_failure(alpha, &keys("SHA256:b"), l), None);
        let began = door
            .record_failure(alpha, &keys("SHA256:a"), l)
            .expect("the third failure throttles");
        assert!(began.began);
        assert_eq!(began.throttle.failures, 3);
        assert_eq!(began.throttle.tried, ["SHA256:a", "SHA256:b"]);
        let grown = door.record_failure(alpha, &keys("SHA256:c"), l).unwrap();
        assert!(!grown.began);
        assert_eq!(grown.throttle.failures, 4);
        assert_eq!(grown.throttle.tried.len(), 3);
        assert!(door.throttle(alpha).is_some());
        assert!(door.throttle(beta).is_none(), "beta is not throttled");
        // Alpha's refusals are paced, a second apart; beta's are not.
        let far = Instant::now() + Duration::from_secs(30);
        let Turn::At(first) = door.refusal_turn(alpha, far, l) else {
            panic!("not paced")
        };
        let Turn::At(second) = door.refusal_turn(alpha, far, l) else {
            panic!("not paced")
        };
        assert_eq!(second.duration_since(first), PACE);
        assert_eq!(door.refusal_turn(beta, far, l), Turn::Now);
        assert_eq!(door.refusal_turn(Bucket::Unnamed(ip), far, l), Turn::Now);
        // The pace reserves no turn a connection could not use: none past
        // its deadline, none more than a full bucket's worth ahead.
        let Turn::At(third) = door.refusal_turn(alpha, far, l) else {
            panic!("two turns ahead is within a bucket of two")
        };
        assert_eq!(door.refusal_turn(alpha, far, l), Turn::TooLate);
        assert_eq!(door.refusal_turn(alpha, third, l), Turn::TooLate);
        assert_eq!(
            door.refusal_turn(alpha, far, l),
            Turn::TooLate,
            "nothing reserved"
        );
    }

    #[test]
    fn an_address_throttled_for_unknown_names_paces_every_refusal_from_it() {
        let door = FrontDoor::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let l = limits(1, 1);
        let unnamed = Bucket::Unnamed(ip);
        for name in ["a", "b", "c"] {
            door.record_failure(unnamed, &[name.to_owned()], l);
        }
        assert!(door.throttle(unnamed).is_some());
        // A registered district's refusal from there takes its turn too, so
        // the pace does not tell which names are districts'...
        let far = Instant::now() + Duration::from_secs(30);
        let Turn::At(t1) = door.refusal_turn(Bucket::District(ip, 7), far, l) else {
            panic!("not paced")
        };
        let Turn::At(t2) = door.refusal_turn(unnamed, far, l) else {
            panic!("not paced")
        };
        assert_eq!(t2.duration_since(t1), PACE);
        // ...and another address is not slowed at all.
        assert_eq!(door.refusal_turn(Bucket::Unnamed(other), far, l), Turn::Now);
        assert_eq!(
            door.refusal_turn(Bucket::District(other, 7), far, l),
            Turn::Now
        );
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let door = FrontDoor::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let l = Limits {
            failure_window: Duration::ZERO,
            ..limits(1, 1)
        };
        for _ in 0..10 {
            assert_eq!(door.record_failure(Bucket::Unnamed(ip), &[], l), None);
        }
        door.tidy(l);
        assert!(door.lock().buckets.is_empty(), "nothing left to remember");
    }
}
