//! What each district holds at once, counted across all of its connections:
//! sessions, open SFTP handles and bytes of uploads in progress. A district's
//! clients, however many connections, channels and subsystems they open, can
//! take only their district's share, never what other districts need.
//! Every count is held by a guard that gives it back when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub struct Ledger {
    tenants: Mutex<HashMap<i64, Load>>,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub sessions: u32,
    pub handles: u32,
    /// Bytes written to uploads not yet closed.
    pub bytes: u64,
}

impl Ledger {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Load>> {
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What `tenant` holds now.
    pub fn load(&self, tenant: i64) -> Load {
        self.lock().get(&tenant).copied().unwrap_or_default()
    }

    fn change(&self, tenant: i64, f: impl FnOnce(&mut Load)) {
        let mut m = self.lock();
        if let Some(load) = m.get_mut(&tenant) {
            f(load);
            if *load == Load::default() {
                m.remove(&tenant);
            }
        }
    }

    /// Sessions held over all districts.
    pub fn sessions(&self) -> u32 {
        self.lock().values().map(|l| l.sessions).sum()
    }

    /// A session slot for `tenant`, if it has fewer than `max`.
    pub fn session(self: &Arc<Self>, tenant: i64, max: u32) -> Option<SessionSlot> {
        let mut m = self.lock();
        let load = m.entry(tenant).or_default();
        if load.sessions >= max {
            return None;
        }
        load.sessions += 1;
        Some(SessionSlot {
            ledger: self.clone(),
            tenant,
        })
    }

    /// An SFTP handle for `tenant`, if it has fewer than `max` open.
    pub fn handle(self: &Arc<Self>, tenant: i64, max: u32) -> Option<HandleSlot> {
        let mut m = self.lock();
        let load = m.entry(tenant).or_default();
        if load.handles >= max {
            return None;
        }
        load.handles += 1;
        Some(HandleSlot {
            ledger: self.clone(),
            tenant,
            bytes: 0,
        })
    }
}

/// One session of a district.
pub struct SessionSlot {
    ledger: Arc<Ledger>,
    tenant: i64,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.ledger
            .change(self.tenant, |l| l.sessions = l.sessions.saturating_sub(1));
    }
}

/// One open handle of a district, and the bytes its upload has reserved.
pub struct HandleSlot {
    ledger: Arc<Ledger>,
    tenant: i64,
    bytes: u64,
}

impl HandleSlot {
    /// Grow this handle's reservation to `end` bytes, if the district's uploads
    /// in progress stay within `max` bytes in all. A reservation never shrinks
    /// while the handle is open.
    pub fn reserve_to(&mut self, end: u64, max: u64) -> bool {
        if end <= self.bytes {
            return true;
        }
        let more = end - self.bytes;
        let mut m = self.ledger.lock();
        let load = m.entry(self.tenant).or_default();
        if load.bytes.saturating_add(more) > max {
            return false;
        }
        load.bytes += more;
        self.bytes = end;
        true
    }
}

impl Drop for HandleSlot {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.ledger.change(self.tenant, |l| {
            l.handles = l.handles.saturating_sub(1);
            l.bytes = l.bytes.saturating_sub(bytes);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_tenant_and_come_back() {
        let ledger = Ledger::new();
        let a = ledger.session(1, 2).unwrap();
        let _b = ledger.session(1, 2).unwrap();
        assert!(ledger.session(1, 2).is_none());
        assert!(
            ledger.session(2, 2).is_some(),
            "another tenant is not held up"
        );
        drop(a);
        assert!(ledger.session(1, 2).is_some());

        let mut h1 = ledger.handle(7, 2).unwrap();
        let mut h2 = ledger.handle(7, 2).unwrap();
        assert!(ledger.handle(7, 2).is_none());
        assert!(h1.reserve_to(600, 1000));
        assert!(
            h1.reserve_to(500, 1000),
            "a write behind the end costs nothing"
        );
        assert!(!h2.reserve_to(401, 1000), "the tenant's budget is shared");
        assert!(h2.reserve_to(400, 1000));
        assert_eq!(
            ledger.load(7),
            Load {
                sessions: 0,
                handles: 2,
                bytes: 1000
            }
        );
        drop(h1);
        drop(h2);
        assert_eq!(ledger.load(7), Load::default());
    }
}
