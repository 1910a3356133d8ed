//! One scrape: the counters as they stand, and what is a state rather than an
//! event read now: connections and logins from the server, the outbox's
//! backlog and every district's last upload, last applied import, missed
//! windows, held imports and pause from the store (through the endpoint's
//! own reader connection), and the readiness checks.

use chrono::{DateTime, Utc};

use super::Ops;
use crate::domain::tenant::Tenant;
use crate::metrics::{DistrictGauges, MAX_WINDOWS_MISSED, Snapshot};
use crate::store::DistrictActivity;

impl Ops {
    /// Everything in the text format (blocking: it reads the store).
    pub fn scrape(&self) -> Vec<u8> {
        let live = self.shared.live();
        let (outbox_messages, outbox_oldest_age) = self.outbox_backlog().unwrap_or_else(|e| {
            tracing::error!(error = %e, "metrics: cannot read the outbox");
            (0, 0.0)
        });
        let districts = self
            .districts()
            .map_err(|e| tracing::error!(error = %format!("{e:#}"), "metrics: cannot read the districts"))
            .ok();
        let checks = self
            .readiness()
            .checks
            .into_iter()
            .map(|(check, r)| (check, r.is_ok()))
            .collect();
        self.shared.metrics.render(&Snapshot {
            connections: live.connections as u64,
            sessions: live.sessions.into(),
            logins_in_progress: live.logging_in.into(),
            logins_waiting: live.waiting.into(),
            outbox_messages,
            outbox_oldest_age,
            checks,
            districts,
        })
    }

    /// Undelivered outbox copies, and the seconds the oldest has waited.
    pub(super) fn outbox_backlog(&self) -> anyhow::Result<(u64, f64)> {
        let (count, oldest) = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            crate::store::outbox_backlog(&conn)?
        };
        let now = self.shared.clock.now();
        let age = oldest.as_deref().and_then(parse).map_or(0.0, |at| {
            (now - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        Ok((count.max(0) as u64, age))
    }

    fn districts(&self) -> anyhow::Result<Vec<DistrictGauges>> {
        let (tenants, activity) = {
            let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            // One read transaction: the districts and their activity agree.
            let tx = conn.unchecked_transaction()?;
            let tenants = crate::store::Store::tenants_of(&tx)?;
            let activity = crate::store::district_activity(&tx)?;
            tx.finish()?;
            (tenants, activity)
        };
        let config = self.shared.config();
        let now = self.shared.clock.now();
        let by_id: std::collections::HashMap<i64, DistrictActivity> =
            activity.into_iter().map(|a| (a.tenant_id, a)).collect();
        Ok(tenants
            .iter()
            .map(|t| {
                let a = by_id.get(&t.id);
                district(t, a, &config.schedule, now)
            })
            .collect())
    }
}

/// One district's gauges at `now`.
fn district(
    tenant: &Tenant,
    activity: Option<&DistrictActivity>,
    schedule: &crate::config::ScheduleConfig,
    now: DateTime<Utc>,
) -> DistrictGauges {
    let tz = tenant.timezone_or(schedule.timezone);
    let window = tenant.window_or(schedule.window);
    let paused_on = |at: DateTime<Utc>| {
        let day = at.with_timezone(&tz).date_naive();
        tenant.pause.is_some_and(|p| p.covers(day))
    };
    let stamp = |t: &Option<String>| t.as_deref().and_then(parse);
    let last_applied = activity.and_then(|a| stamp(&a.last_applied));
    // Windows that opened and closed since the last applied import (the
    // one it ran in does not count), skipping, as the "nothing received"
    // note does, a night the district was paused on (at its close, or at
    // the close before).
    let windows_missed = last_applied.filter(|_| !tenant.disabled).map(|applied| {
        let first_after = window.next_opening(tz, applied);
        let mut missed = 0;
        let mut close = window.last_close(tz, now);
        // Bounded: a year of nights at most, however long the pause.
        for _ in 0..400 {
            if close <= first_after || missed >= MAX_WINDOWS_MISSED {
                break;
            }
            let before = window.last_close(tz, close - chrono::Duration::seconds(1));
            if !paused_on(close) && !paused_on(before) {
                missed += 1;
            }
            close = before;
        }
        missed
    });
    let seconds = |at: DateTime<Utc>| at.timestamp_millis() as f64 / 1000.0;
    DistrictGauges {
        subdomain: tenant.subdomain.clone(),
        last_upload: activity.and_then(|a| stamp(&a.last_upload)).map(seconds),
        last_applied_import: last_applied.map(seconds),
        windows_missed,
        held_imports: activity.map_or(0, |a| u32::try_from(a.held).unwrap_or(u32::MAX)),
        held_since: activity.and_then(|a| stamp(&a.held_since)).map(seconds),
        paused: paused_on(now),
    }
}

/// A time as the store keeps it.
fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|d| d.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(pause: Option<(&str, &str)>) -> Tenant {
        Tenant {
            id: 1,
            subdomain: "lincoln".into(),
            admin_name: "A".into(),
            admin_email: "a@example.org".into(),
            timezone: Some("America/Denver".into()),
            sso: false,
            generate_passwords: false,
            window: None,
            disabled: false,
            created_at: "2026-01-01T00:00:00Z".into(),
            absent: Default::default(),
            hold_update_percent: None,
            hold_deactivate_percent: None,
            pause: pause.map(|(from, until)| crate::domain::safety::Pause {
                from: from.parse().unwrap(),
                until: until.parse().unwrap(),
                additions_only: false,
            }),
        }
    }

    fn applied_at(at: &str) -> DistrictActivity {
        DistrictActivity {
            tenant_id: 1,
            last_upload: Some(at.into()),
            last_applied: Some(at.into()),
            held: 0,
            held_since: None,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn missed_windows_count_the_nights_closed_since_the_last_applied_import() {
        let schedule = crate::config::ScheduleConfig::default();
        // Imported at 20:00 Denver (03:00Z) on the night of 16 to 17 November.
        let a = applied_at("2026-11-17T03:00:00Z");
        let t = tenant(None);
        // Before that night's window closes (06:00 Denver = 13:00Z): nothing missed.
        let g = district(&t, Some(&a), &schedule, at("2026-11-17T12:59:00Z"));
        assert_eq!(g.windows_missed, Some(0));
        // The window it ran in closed: that night was not missed.
        let g = district(&t, Some(&a), &schedule, at("2026-11-17T13:00:00Z"));
        assert_eq!(g.windows_missed, Some(0));
        // The next two nights closed without one.
        let g = district(&t, Some(&a), &schedule, at("2026-11-19T13:00:00Z"));
        assert_eq!(g.windows_missed, Some(2));
        assert_eq!(
            g.last_applied_import,
            Some(at("2026-11-17T03:00:00Z").timestamp() as f64)
        );
        // A long silence stops counting at the cap.
        let g = district(&t, Some(&a), &schedule, at("2027-11-19T13:00:00Z"));
        assert_eq!(g.windows_missed, Some(MAX_WINDOWS_MISSED));
        // Never applied: nothing to count from.
        let g = district(&t, None, &schedule, at("2026-11-19T13:00:00Z"));
        assert_eq!((g.windows_missed, g.last_upload), (None, None));
    }

    #[test]
    fn paused_nights_are_not_missed() {
        let schedule = crate::config::ScheduleConfig::default();
        let a = applied_at("2026-11-17T03:00:00Z");
        // Paused over the nights of the 17th to the 19th (closing 18th-20th).
        let t = tenant(Some(("2026-11-18", "2026-11-19")));
        let g = district(&t, Some(&a), &schedule, at("2026-11-20T14:00:00Z"));
        assert_eq!(g.windows_missed, Some(0));
        assert!(!g.paused);
        let g = district(&t, Some(&a), &schedule, at("2026-11-19T14:00:00Z"));
        assert!(g.paused);
        // The nights after the pause count again: the one closing on the
        // 20th began paused, those closing on the 21st and 22nd did not.
        let g = district(&t, Some(&a), &schedule, at("2026-11-22T14:00:00Z"));
        assert_eq!(g.windows_missed, Some(2));
    }
}
