//! Loading stored leases back into a running core (used by recovery).

use super::*;

/// What became of a stored lease offered to [`Server::restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// In the cache, holding its address as its state says.
    Loaded,
    /// Not kept: offers are never persisted, so a stored one is stale.
    Skipped,
    /// A bound lease on an address now reserved for another client: the
    /// reservation wins and the lease is released (persist the change).
    Displaced(LeaseChange),
    /// On an address no pool or reservation of the config has any more:
    /// not loaded (left in the store).
    OutsidePools,
}

impl Server {
    /// Puts a stored lease into the cache and claims its address bit when
    /// its state holds the address. Safe to call from several threads.
    pub fn restore(&self, r: LeaseRecord, now: UnixTime) -> Restored {
        self.restore_as(r, now, false)
    }

    /// [`Server::restore`]; `live` records come from a running server (on
    /// reload), whose offers still wait for their REQUESTs.
    fn restore_as(&self, mut r: LeaseRecord, now: UnixTime, live: bool) -> Restored {
        let Some(scope) = self.scopes.get(r.scope as usize) else { return Restored::Skipped };
        if r.state == LeaseState::Offered && !live {
            return Restored::Skipped;
        }
        if !self.cache.covers(r.ip) {
            return Restored::OutsidePools;
        }
        let reuse_at = r.end.saturating_add(self.policy.grace_period.0).saturating_add(self.policy.reuse_after.0);
        let wants_address = match r.state {
            LeaseState::Allocated | LeaseState::Reserved | LeaseState::Abandoned | LeaseState::Offered => true,
            LeaseState::Expired => !self.policy.reuse_expired || now < reuse_at,
            LeaseState::Released => false,
        };
        let mut displaced = None;
        r.holds_address = match scope.reservation_at(r.ip) {
            Some(res) if res.mac.is_some_and(|m| m != r.hw.bytes()) && r.state.is_bound() => {
                r.state = LeaseState::Released;
                r.end = now;
                r.updated = now;
                displaced = Some(LeaseChange { kind: ChangeKind::Released, record: r.clone() });
                false
            }
            // The reservation's bit was claimed when the config was compiled.
            Some(_) => wants_address,
            None => {
                // Its reservation is gone: a plain lease until it ends.
                if r.state == LeaseState::Reserved {
                    r.state = LeaseState::Allocated;
                }
                wants_address && scope.map.claim(r.ip)
            }
        };
        // Cannot fail: `covers` was checked above.
        self.cache.insert_recovered(r);
        displaced.map_or(Restored::Loaded, Restored::Displaced)
    }

    /// After every lease is restored: index clients and, with
    /// `validate_on_recover`, resolve clients holding two bound leases per
    /// `conflict_resolution` (`replace` keeps the newer, `deny` the older,
    /// `warn` both). Returns the changes to persist and the number of
    /// conflicts found.
    pub fn finish_restore(&self, now: UnixTime) -> (Vec<LeaseChange>, usize) {
        let conflicts = self.cache.index_clients();
        if !self.validate_on_recover {
            if !conflicts.is_empty() {
                tracing::warn!(
                    count = conflicts.len(),
                    "clients hold two leases; left as they are (validate_on_recover = false)"
                );
            }
            return (Vec::new(), conflicts.len());
        }
        let mut changes = Vec::new();
        for &(older, newer) in &conflicts {
            let loser = match self.policy.conflict_resolution {
                ConflictResolution::Replace => older,
                ConflictResolution::Deny => newer,
                ConflictResolution::Warn => {
                    tracing::warn!(%older, %newer, "a client holds two leases; kept both (conflict_resolution = \"warn\")");
                    continue;
                }
            };
            if let Some(mut r) = self.cache.get_mut(loser) {
                self.free_address(&r);
                r.holds_address = false;
                r.state = LeaseState::Released;
                r.end = now;
                r.updated = now;
                tracing::warn!(released = %loser, kept = %if loser == older { newer } else { older }, "a client held two leases; released one");
                changes.push(LeaseChange { kind: ChangeKind::Released, record: r.clone() });
            }
        }
        if self.policy.conflict_resolution != ConflictResolution::Warn {
            // The client index must name the lease that was kept.
            self.cache.index_clients();
        }
        (changes, conflicts.len())
    }
}

/// What a reload did with the leases of the server it replaced.
#[derive(Debug, Default)]
pub struct TakeOver {
    /// Leases now in the new server's cache.
    pub loaded: usize,
    /// Leases of scopes that are gone, or on addresses no pool or
    /// reservation holds any more: out of the cache, kept in the store.
    pub dropped: usize,
    /// Changes to persist (leases displaced by new reservations, conflicts).
    pub changes: Vec<LeaseChange>,
}

impl Server {
    /// Takes over the leases of `old`, the server this one replaces on
    /// reload. Scopes are matched by name and pools by address, so a config
    /// may add, remove or reorder them. Offers waiting for their REQUESTs
    /// are carried over too.
    pub fn take_over(&self, old: &Server, now: UnixTime) -> TakeOver {
        let scope_of: Vec<Option<usize>> =
            old.scopes.iter().map(|s| self.scopes.iter().position(|n| n.name == s.name)).collect();
        let mut report = TakeOver::default();
        old.cache.for_each(|r| {
            let Some(scope) = scope_of.get(r.scope as usize).copied().flatten() else {
                report.dropped += 1;
                return;
            };
            let mut r = r.clone();
            r.scope = scope as u16;
            r.pool = self.scopes[scope].pool_of(r.ip).map_or(NO_POOL, |p| p as u16);
            match self.restore_as(r, now, true) {
                Restored::Loaded => report.loaded += 1,
                Restored::Displaced(change) => {
                    report.loaded += 1;
                    report.changes.push(change);
                }
                Restored::OutsidePools => report.dropped += 1,
                Restored::Skipped => {}
            }
        });
        report.changes.extend(self.finish_restore(now).0);
        report
    }
}
