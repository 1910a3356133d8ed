//! The front door: which connections may start logging in, and in what order.
//!
//! Each address may have `max_pending_logins_per_address` connections logging
//! in at once. Further connections from that address wait their turn, first
//! come first served, until the login grace runs out, instead of being
//! refused: a hosted SIS exports every district it hosts from a few shared
//! addresses at the same minute, and each of those logins must succeed. Only
//! the queues are bounded (per address and in total), so a flood from one
//! address costs others nothing but the queue it fills itself. Failed logins
//! are counted here too, one per connection that ended without logging in,
//! and ban the address past the limit.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::config::ServerConfig;

/// How often, at most, refusals of one address are logged at warn.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Addresses remembered for their failures or bans, at most; past it, entries
/// that no longer matter are dropped first.
const MAX_REMEMBERED: usize = 100_000;

/// The limits the door applies, read from the configuration at each decision
/// so that a reload applies at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub logging_in_per_address: u32,
    pub queued_per_address: u32,
    pub queued_total: u32,
    pub failures_before_ban: u32,
    pub failure_window: Duration,
    pub ban: Duration,
}

impl Limits {
    pub fn from_config(s: &ServerConfig) -> Self {
        Self {
            logging_in_per_address: s.max_pending_logins_per_address,
            queued_per_address: s.max_queued_logins_per_address,
            queued_total: s.max_queued_logins,
            failures_before_ban: s.auth_failures_before_ban,
            failure_window: Duration::from_secs(s.auth_failure_window_seconds),
            ban: Duration::from_secs(s.ban_seconds),
        }
    }
}

/// Why a connection was turned away at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Banned,
    /// The address's queue, or the queue of all addresses, is full.
    QueueFull,
}

#[derive(Default)]
pub struct FrontDoor {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    addresses: HashMap<IpAddr, Address>,
    queued: u32,
}

#[derive(Default)]
struct Address {
    /// Connections holding a login slot.
    logging_in: u32,
    /// Waiters in arrival order; some may have given up (closed receivers).
    queue: VecDeque<oneshot::Sender<LoginSlot>>,
    /// Waiters that have not given up.
    queued: u32,
    failures: VecDeque<Instant>,
    banned_until: Option<Instant>,
    /// Refusals since the last warning about this address.
    refused: u64,
    warned_at: Option<Instant>,
}

impl Address {
    fn forgettable(&self, now: Instant, window: Duration) -> bool {
        self.logging_in == 0
            && self.queued == 0
            && self.banned_until.is_none_or(|u| u <= now)
            && self
                .failures
                .back()
                .is_none_or(|at| now.duration_since(*at) >= window)
            && self
                .warned_at
                .is_none_or(|w| now.duration_since(w) >= WARN_EVERY)
    }
}

/// Whether a connection may log in now or must wait.
pub enum Admission {
    Now(LoginSlot),
    Queued(Waiting),
}

/// The right to be logging in, counted against the address until released
/// (at a successful login) or dropped (the connection ended).
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
        if a.banned_until.is_some_and(|u| u > now) {
            return Err(Refusal::Banned);
        }
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
                    %ip,
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

    /// Is `ip` banned for failed logins?
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.lock()
            .addresses
            .get(&ip)
            .and_then(|a| a.banned_until)
            .is_some_and(|u| u > now)
    }

    /// Count one connection from `ip` that ended without logging in; ban the
    /// address once it has `failures_before_ban` within the window. Returns
    /// whether this failure started a ban.
    pub fn record_failure(&self, ip: IpAddr, limits: Limits) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        if state.addresses.len() > MAX_REMEMBERED {
            state
                .addresses
                .retain(|_, a| !a.forgettable(now, limits.failure_window));
        }
        let a = state.addresses.entry(ip).or_default();
        if a.banned_until.is_some_and(|u| u <= now) {
            a.banned_until = None;
        }
        while a
            .failures
            .front()
            .is_some_and(|at| now.duration_since(*at) >= limits.failure_window)
        {
            a.failures.pop_front();
        }
        a.failures.push_back(now);
        while a.failures.len() > limits.failures_before_ban as usize {
            a.failures.pop_front();
        }
        if a.failures.len() as u32 >= limits.failures_before_ban && a.banned_until.is_none() {
            a.banned_until = Some(now + limits.ban);
            a.failures.clear();
            return true;
        }
        false
    }

    /// Addresses with connections logging in or waiting, for tests and
    /// `status`: (logging in, waiting), summed over all addresses.
    pub fn load(&self) -> (u32, u32) {
        let state = self.lock();
        let logging_in = state.addresses.values().map(|a| a.logging_in).sum();
        (logging_in, state.queued)
    }

    /// Forget addresses with nothing left to remember (called now and then,
    /// so that one-off addresses do not pile up).
    pub fn tidy(&self, limits: Limits) {
        let now = Instant::now();
        self.lock()
            .addresses
            .retain(|_, a| !a.forgettable(now, limits.failure_window));
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
            failures_before_ban: 3,
            failure_window: Duration::from_secs(60),
            ban: Duration::from_secs(60),
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
    fn full_queues_refuse_and_bans_refuse_before_anything() {
        let door = FrontDoor::new();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let l = limits(1, 1);
        let _slot = now_slot(door.admit(ip, l));
        let _wait = queued(door.admit(ip, l));
        assert_eq!(door.admit(ip, l).err(), Some(Refusal::QueueFull));
        let other: IpAddr = "10.0.0.9".parse().unwrap();
        assert!(!door.record_failure(other, l));
        assert!(!door.record_failure(other, l));
        assert!(door.record_failure(other, l), "the third failure bans");
        assert!(door.is_banned(other));
        assert_eq!(door.admit(other, l).err(), Some(Refusal::Banned));
    }
}
