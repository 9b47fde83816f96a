//! Time-driven changes: leases expiring, offers and probation ending,
//! addresses returning to their pools, and old records dropped.

use super::*;

impl Server {
    /// Expires leases, ends offers and probation, and returns addresses to
    /// their pools per `grace_period`, `reuse_expired` and `reuse_after`.
    /// Returns the changes the store must persist (see [`Server::sweep_with`]).
    pub fn sweep(&self, now: UnixTime) -> Vec<LeaseChange> {
        let mut changes = Vec::new();
        self.sweep_with(now, &mut |c| changes.push(c), &mut || {});
        changes
    }

    /// [`Server::sweep`], handing each change to `submit` while its record
    /// is still locked. A client that comes back for the address at that
    /// moment changes the record after, so its change reaches the store
    /// after the expiry, not before it (which would leave the store with
    /// the expiry of a lease the client was just granted). `pause` is called
    /// every 256 addresses with no record locked (see [`LeaseCache::for_each_mut`]).
    pub fn sweep_with(&self, now: UnixTime, submit: &mut dyn FnMut(LeaseChange), pause: &mut dyn FnMut()) {
        let p = &self.policy;
        let mut stale_offers = Vec::new();
        self.cache.for_each_mut(
            |r| {
                let scope = &self.scopes[r.scope as usize];
                let reserved = scope.reservation_at(r.ip).is_some();
                match r.state {
                    LeaseState::Offered if r.end <= now => stale_offers.push(r.ip),
                    LeaseState::Allocated | LeaseState::Reserved
                        if r.end != NEVER && r.end.saturating_add(p.grace_period.0) <= now =>
                    {
                        r.state = LeaseState::Expired;
                        r.updated = now;
                        submit(LeaseChange { kind: ChangeKind::Expired, record: r.clone() });
                    }
                    LeaseState::Abandoned if r.end <= now => {
                        if !reserved {
                            scope.map.release(r.ip);
                            r.holds_address = false;
                        }
                        r.state = LeaseState::Expired;
                        r.updated = now;
                        submit(LeaseChange { kind: ChangeKind::Reclaimed, record: r.clone() });
                    }
                    _ => {}
                }
                let reusable_at = r.end.saturating_add(p.grace_period.0).saturating_add(p.reuse_after.0);
                if r.state == LeaseState::Expired
                    && r.holds_address
                    && !reserved
                    && p.reuse_expired
                    && reusable_at <= now
                {
                    scope.map.release(r.ip);
                    r.holds_address = false;
                }
            },
            &mut *pause,
        );
        for ip in stale_offers {
            if let Some(r) = self.cache.remove_if(ip, |r| r.state == LeaseState::Offered && r.end <= now) {
                self.free_address(&r);
            }
        }
    }

    /// Drops expired and released records last updated before `before`
    /// that no longer hold their address (retention of old leases). Returns
    /// the changes that delete them from the store (see [`Server::purge_with`]).
    pub fn purge(&self, before: UnixTime) -> Vec<LeaseChange> {
        let mut changes = Vec::new();
        self.purge_with(before, &mut |c| changes.push(c), &mut || {});
        changes
    }

    /// [`Server::purge`], handing each change to `submit` before the
    /// address is unlocked: a newcomer may get the address the moment it
    /// is, and its lease must reach the store after the deletion of the old
    /// record, not before it (the deletion would remove the new lease).
    /// `pause` as in [`Server::sweep_with`].
    pub fn purge_with(&self, before: UnixTime, submit: &mut dyn FnMut(LeaseChange), pause: &mut dyn FnMut()) {
        let old = |r: &LeaseRecord| {
            matches!(r.state, LeaseState::Expired | LeaseState::Released) && !r.holds_address && r.updated < before
        };
        let mut candidates = Vec::new();
        self.cache.for_each_pausing(
            |r| {
                if old(r) {
                    candidates.push(r.ip);
                }
            },
            &mut *pause,
        );
        for ip in candidates {
            self.cache.remove_if_and(ip, old, |record| {
                submit(LeaseChange { kind: ChangeKind::Purged, record: record.clone() })
            });
        }
    }
}
