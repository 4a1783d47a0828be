//! Retention policy: a pure function from (backup times, policy, now) to what to keep and why.
//!
//! A backup is kept when any rule keeps it:
//! - `keep-min`: the newest N complete backups, always (N >= 1), whatever the other rules say;
//! - `keep-days`: every backup younger than N days;
//! - `keep-daily` / `keep-weekly` / `keep-monthly`: the newest backup of each of the last N UTC
//!   days / ISO weeks / months that have a backup (as restic counts: days without a backup do not
//!   use up the count, so a stretch of failed backups never makes the old ones expire faster).
//!
//! With no rule besides `keep-min` configured, nothing is deleted. The caller passes only
//! complete backups (data file and sidecar present) of one database.
//!
//! Clock skew: a backup named after `now` (made while the clock was ahead, or under a clock that
//! is now behind) is kept and never takes a keep-min or calendar slot, so that the backups made
//! since are counted as what they are: the newest.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;

/// How far ahead of now a backup's name may be and still count as made now: names are bumped
/// a second at a time when two runs meet in one second, and clocks drift a little. Beyond this,
/// a backup is "dated in the future" (see the module documentation).
pub const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(5);

/// Whether a backup made at `t` is dated in the future at `now`.
pub fn is_future(t: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    t > now + FUTURE_TOLERANCE
}

/// The retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Keep everything younger than this many days.
    pub keep_days: Option<u32>,
    /// Newest backup of each of the last N days that have one.
    pub keep_daily: u32,
    /// Newest backup of each of the last N ISO weeks that have one.
    pub keep_weekly: u32,
    /// Newest backup of each of the last N months that have one.
    pub keep_monthly: u32,
    /// Always keep the newest N (at least 1).
    pub keep_min: u32,
}

impl Policy {
    /// Whether any deleting rule is configured (otherwise prune keeps everything).
    pub fn is_active(&self) -> bool {
        self.keep_days.is_some()
            || self.keep_daily > 0
            || self.keep_weekly > 0
            || self.keep_monthly > 0
    }
}

/// Why a backup is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// One of the newest `keep-min`.
    KeepMin,
    /// Younger than `keep-days`.
    KeepDays,
    /// Newest of its day.
    KeepDaily,
    /// Newest of its ISO week.
    KeepWeekly,
    /// Newest of its month.
    KeepMonthly,
    /// No deleting rule is configured.
    NoRule,
    /// Named after now: a clock was (or is) wrong; never deleted by retention.
    FutureDated,
    /// Made by the run whose retention this is.
    ThisRun,
}

impl Reason {
    /// The config key, for messages.
    pub fn key(self) -> &'static str {
        match self {
            Reason::KeepMin => "keep-min",
            Reason::KeepDays => "keep-days",
            Reason::KeepDaily => "keep-daily",
            Reason::KeepWeekly => "keep-weekly",
            Reason::KeepMonthly => "keep-monthly",
            Reason::NoRule => "no retention rule configured",
            Reason::FutureDated => "dated in the future (check the clock)",
            Reason::ThisRun => "made by this run",
        }
    }
}

/// For each input backup (same order as given): `Some(reasons)` to keep, `None` to delete.
pub fn decide(
    times: &[DateTime<Utc>],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<Option<BTreeSet<Reason>>> {
    let mut reasons: Vec<BTreeSet<Reason>> = vec![BTreeSet::new(); times.len()];
    if !policy.is_active() {
        for r in &mut reasons {
            r.insert(Reason::NoRule);
        }
        return reasons.into_iter().map(Some).collect();
    }
    // Newest first, future-dated ones left out of every count; ties broken by index so the
    // result does not depend on input order.
    let mut order: Vec<usize> = Vec::new();
    for (i, t) in times.iter().enumerate() {
        if is_future(*t, now) {
            reasons[i].insert(Reason::FutureDated);
        } else {
            order.push(i);
        }
    }
    order.sort_by(|&a, &b| times[b].cmp(&times[a]).then(a.cmp(&b)));
    for &i in order.iter().take(policy.keep_min.max(1) as usize) {
        reasons[i].insert(Reason::KeepMin);
    }
    if let Some(days) = policy.keep_days {
        let limit = chrono::Duration::days(i64::from(days));
        for &i in &order {
            if now - times[i] < limit {
                reasons[i].insert(Reason::KeepDays);
            }
        }
    }
    let mut bucketed = |n: u32, reason: Reason, bucket: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| {
        let mut seen = Vec::new();
        for &i in &order {
            let b = bucket(&times[i]);
            if seen.len() == n as usize {
                break;
            }
            if !seen.contains(&b) {
                seen.push(b);
                reasons[i].insert(reason);
            }
        }
    };
    bucketed(policy.keep_daily, Reason::KeepDaily, &|t| {
        (t.year(), t.ordinal())
    });
    bucketed(policy.keep_weekly, Reason::KeepWeekly, &|t| {
        let w = t.iso_week();
        (w.year(), w.week())
    });
    bucketed(policy.keep_monthly, Reason::KeepMonthly, &|t| {
        (t.year(), t.month())
    });
    reasons
        .into_iter()
        .map(|r| if r.is_empty() { None } else { Some(r) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn no_rule_keeps_everything() {
        let times = [t(2020, 1, 1, 0), t(2021, 1, 1, 0)];
        let d = decide(
            &times,
            &Policy {
                keep_min: 1,
                ..Policy::default()
            },
            t(2026, 1, 1, 0),
        );
        assert!(d.iter().all(Option::is_some));
    }

    #[test]
    fn keep_days_and_min() {
        let now = t(2026, 6, 30, 12);
        let times = [
            t(2026, 6, 1, 2),
            t(2026, 6, 25, 2),
            t(2026, 6, 29, 2),
            t(2026, 6, 30, 2),
        ];
        let p = Policy {
            keep_days: Some(7),
            keep_min: 1,
            ..Policy::default()
        };
        let d = decide(&times, &p, now);
        assert_eq!(d[0], None);
        assert!(d[1].is_some() && d[2].is_some() && d[3].is_some());
        // All too old: keep-min still keeps the newest.
        let d = decide(&times, &p, t(2027, 1, 1, 0));
        assert_eq!(d.iter().filter(|x| x.is_some()).count(), 1);
        assert!(d[3].as_ref().unwrap().contains(&Reason::KeepMin));
    }

    #[test]
    fn gfs_counts_days_that_have_backups() {
        // Two backups a day for 10 days, then a 30-day gap (failing backups), then one.
        let mut times = Vec::new();
        for day in 1..=10 {
            times.push(t(2026, 3, day, 1));
            times.push(t(2026, 3, day, 13));
        }
        times.push(t(2026, 4, 15, 1));
        let p = Policy {
            keep_daily: 3,
            keep_min: 1,
            ..Policy::default()
        };
        let d = decide(&times, &p, t(2026, 4, 15, 2));
        let kept: Vec<DateTime<Utc>> = times
            .iter()
            .zip(&d)
            .filter(|(_, k)| k.is_some())
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            kept,
            vec![t(2026, 3, 9, 13), t(2026, 3, 10, 13), t(2026, 4, 15, 1)]
        );
    }

    #[test]
    fn weekly_and_monthly_over_400_days() {
        let start = t(2025, 1, 1, 2);
        let times: Vec<_> = (0..400)
            .map(|i| start + chrono::Duration::days(i))
            .collect();
        let now = *times.last().unwrap() + chrono::Duration::hours(1);
        let p = Policy {
            keep_days: Some(7),
            keep_daily: 14,
            keep_weekly: 8,
            keep_monthly: 12,
            keep_min: 3,
        };
        let d = decide(&times, &p, now);
        let kept = d.iter().filter(|k| k.is_some()).count();
        // 14 daily (covering the 7 days) + weekly beyond those + monthly beyond those.
        assert!((14..=14 + 8 + 12).contains(&kept), "{kept}");
        let monthly: Vec<_> = d
            .iter()
            .zip(&times)
            .filter(|(k, _)| k.as_ref().is_some_and(|r| r.contains(&Reason::KeepMonthly)))
            .map(|(_, t)| (t.year(), t.month()))
            .collect();
        assert_eq!(monthly.len(), 12);
        // The newest of each month: the last day of each full month.
        assert!(d[0].is_none(), "the oldest backup is not kept");
    }

    fn arb_times() -> impl Strategy<Value = Vec<DateTime<Utc>>> {
        prop::collection::btree_set(0i64..(400 * 24), 0..80).prop_map(|hours| {
            hours
                .into_iter()
                .map(|h| t(2025, 1, 1, 0) + chrono::Duration::hours(h))
                .collect()
        })
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        (
            prop::option::of(0u32..60),
            0u32..20,
            0u32..10,
            0u32..15,
            1u32..6,
        )
            .prop_map(
                |(keep_days, keep_daily, keep_weekly, keep_monthly, keep_min)| Policy {
                    keep_days,
                    keep_daily,
                    keep_weekly,
                    keep_monthly,
                    keep_min,
                },
            )
    }

    /// The defect a clock once ahead caused: 60 daily backups and 3 named in the future, with
    /// keep-daily 1 and keep-min 2, deleted every real backup (the future ones took the slots).
    #[test]
    fn future_dated_backups_take_no_slot_and_stay() {
        let now = t(2026, 3, 1, 12);
        let mut times: Vec<DateTime<Utc>> = (1..=60)
            .map(|d| now - chrono::Duration::days(d) - chrono::Duration::hours(1))
            .collect();
        times.push(now - chrono::Duration::minutes(5)); // this run's
        for d in 1..=3 {
            times.push(now + chrono::Duration::days(30 * d));
        }
        let p = Policy {
            keep_daily: 1,
            keep_min: 2,
            ..Policy::default()
        };
        let d = decide(&times, &p, now);
        // This run's and the one before it (keep-min 2); the future ones are kept as such.
        assert!(d[60].as_ref().unwrap().contains(&Reason::KeepMin));
        assert!(d[0].as_ref().unwrap().contains(&Reason::KeepMin));
        for k in &d[61..] {
            assert_eq!(
                k.as_ref().unwrap().iter().collect::<Vec<_>>(),
                vec![&Reason::FutureDated]
            );
        }
        assert_eq!(d.iter().filter(|k| k.is_some()).count(), 5);
    }

    proptest! {
        #[test]
        fn never_deletes_the_newest_keep_min_nor_a_future_one(
            times in arb_times(), p in arb_policy(), now_h in 0i64..(420 * 24),
        ) {
            let now = t(2025, 1, 1, 0) + chrono::Duration::hours(now_h);
            let d = decide(&times, &p, now);
            let mut newest: Vec<usize> = (0..times.len()).filter(|&i| !is_future(times[i], now)).collect();
            newest.sort_by(|&a, &b| times[b].cmp(&times[a]));
            for &i in newest.iter().take(p.keep_min as usize) {
                prop_assert!(d[i].is_some());
            }
            for (i, t) in times.iter().enumerate() {
                if is_future(*t, now) {
                    prop_assert!(d[i].is_some(), "a future-dated backup was deleted");
                }
            }
        }

        #[test]
        fn idempotent(times in arb_times(), p in arb_policy()) {
            let now = t(2026, 3, 1, 0);
            let d = decide(&times, &p, now);
            let kept: Vec<_> = times.iter().zip(&d).filter(|(_, k)| k.is_some()).map(|(t, _)| *t).collect();
            let again = decide(&kept, &p, now);
            prop_assert!(again.iter().all(Option::is_some));
        }

        #[test]
        fn independent_of_input_order(times in arb_times(), p in arb_policy(), seed in any::<u64>()) {
            let now = t(2026, 3, 1, 0);
            let d = decide(&times, &p, now);
            let mut shuffled: Vec<usize> = (0..times.len()).collect();
            // A deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let st: Vec<_> = shuffled.iter().map(|&i| times[i]).collect();
            let sd = decide(&st, &p, now);
            for (j, &i) in shuffled.iter().enumerate() {
                prop_assert_eq!(&sd[j], &d[i]);
            }
        }

        #[test]
        fn kept_by_any_rule_is_never_deleted(times in arb_times(), p in arb_policy()) {
            let now = t(2026, 3, 1, 0);
            let d = decide(&times, &p, now);
            // Each rule alone (with keep-min 1) keeps a subset of what the combination keeps.
            let singles = [
                Policy { keep_days: p.keep_days, keep_min: 1, ..Policy::default() },
                Policy { keep_daily: p.keep_daily, keep_min: 1, ..Policy::default() },
                Policy { keep_weekly: p.keep_weekly, keep_min: 1, ..Policy::default() },
                Policy { keep_monthly: p.keep_monthly, keep_min: 1, ..Policy::default() },
            ];
            for single in singles.iter().filter(|s| s.is_active()) {
                let ds = decide(&times, single, now);
                for i in 0..times.len() {
                    if ds[i].is_some() {
                        prop_assert!(d[i].is_some(), "kept by {:?} alone but deleted", single);
                    }
                }
            }
        }
    }
}
