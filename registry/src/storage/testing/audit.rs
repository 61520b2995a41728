//! The [`AuditLog`] contracts.

use super::Factory;
use crate::storage::{ActorKind, AuditAction, AuditEvent, AuditLog, AuditPage, AuditQuery, Purged};

const DAY: u64 = 86_400;

/// An event of a user.
pub fn event(time: u64, actor: &str, action: AuditAction, project: Option<&str>) -> AuditEvent {
    AuditEvent {
        time,
        actor: actor.into(),
        actor_kind: ActorKind::User,
        action,
        project: project.map(str::to_owned),
        repository: None,
        reference: None,
        digest: None,
        target: None,
        client: "127.0.0.1".into(),
        result: crate::storage::Outcome::Success,
        detail: None,
    }
}

fn q(limit: usize) -> AuditQuery {
    AuditQuery {
        limit,
        ..Default::default()
    }
}

/// Two events a day for five days, appended in two batches; returns them oldest first.
async fn fill<S: AuditLog + ?Sized>(log: &S) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    for t in 0..10u64 {
        let action = if t % 2 == 0 {
            AuditAction::Push
        } else {
            AuditAction::Pull
        };
        let actor = if t < 5 { "amy" } else { "bob" };
        let time = 1_000 * DAY + t / 2 * DAY + t;
        events.push(event(time, actor, action, Some(if t % 3 == 0 { "p" } else { "q" })));
    }
    log.append(events[..3].to_vec()).await.unwrap();
    log.append(events[3..].to_vec()).await.unwrap();
    log.flush().await.unwrap();
    events
}

/// All pages of a query, following `next`.
async fn all_pages<S: AuditLog + ?Sized>(log: &S, q: &AuditQuery, scan_limit: usize) -> Vec<(u64, AuditEvent)> {
    let mut out: Vec<(u64, AuditEvent)> = Vec::new();
    let mut q = q.clone();
    for _ in 0..100 {
        let page = log.query(&q, scan_limit).await.unwrap();
        out.extend(page.events);
        match page.next {
            Some(n) => q.before = Some(n),
            None => return out,
        }
    }
    panic!("pages never end");
}

/// The times of the events one page of `f` holds.
async fn times_of<S: AuditLog + ?Sized>(log: &S, f: &AuditQuery) -> Vec<u64> {
    let page = log.query(f, 1000).await.unwrap();
    page.events.iter().map(|(_, e)| e.time).collect()
}

/// Queries answer newest first with ids decreasing, in pages chained by `next`; filters
/// narrow together; a scan that stops early says where to go on.
pub async fn pages_and_filters<S: AuditLog + ?Sized>(new: &impl Factory<S>) {
    let log = new.make().await;
    assert_eq!(
        log.query(&q(10), 1000).await.unwrap(),
        AuditPage {
            events: vec![],
            next: None
        }
    );
    let events = fill(&*log).await;
    let time = |i: usize| events[i].time;

    // Newest first, ids decreasing, pages chained by `next`.
    let all = log.query(&q(100), 1000).await.unwrap();
    assert_eq!(all.next, None);
    let times: Vec<u64> = all.events.iter().map(|(_, e)| e.time).collect();
    assert_eq!(times, (0..10).rev().map(time).collect::<Vec<_>>());
    assert!(all.events.windows(2).all(|w| w[0].0 > w[1].0));
    let first = log.query(&q(4), 1000).await.unwrap();
    assert_eq!(first.events.len(), 4);
    let second = log
        .query(
            &AuditQuery {
                before: first.next,
                ..q(4)
            },
            1000,
        )
        .await
        .unwrap();
    assert_eq!(second.events[0].1.time, time(5));
    assert_eq!(all_pages(&*log, &q(3), 1000).await, all.events);

    // Filters narrow together.
    let f = AuditQuery {
        actor: Some("bob".into()),
        action: Some(AuditAction::Push),
        ..q(100)
    };
    let times = times_of(&*log, &f).await;
    assert_eq!(times, [time(8), time(6)]);
    let f = AuditQuery {
        project: Some("p".into()),
        since: Some(time(3)),
        until: Some(time(9)),
        ..q(100)
    };
    let times = times_of(&*log, &f).await;
    assert_eq!(times, [time(6), time(3)]);

    // A scan that stops early says where to go on; the pages together hold every match.
    let f = AuditQuery {
        actor: Some("amy".into()),
        ..q(100)
    };
    let pages = all_pages(&*log, &f, 1).await;
    assert_eq!(
        pages.iter().map(|(_, e)| e.time).collect::<Vec<_>>(),
        (0..5).rev().map(time).collect::<Vec<_>>()
    );
}

/// Retention drops old events, never newer ones nor those at the cut.
pub async fn purge_before_drops_oldest<S: AuditLog + ?Sized>(new: &impl Factory<S>) {
    let log = new.make().await;
    let events = fill(&*log).await;
    let time = |i: usize| events[i].time;
    let purged = log.purge_before(time(6)).await.unwrap();
    assert!((1..=6).contains(&purged), "{purged}");
    let left = log.query(&q(100), 1000).await.unwrap();
    assert_eq!(left.events.len(), 10 - purged);
    assert_eq!(left.events[0].1.time, time(9));
    assert!(
        left.events.iter().any(|(_, e)| e.time == time(6)),
        "events at the cut are kept"
    );
}

/// A size cap drops the oldest events (the newest stays: it is in the unit being
/// written) and reports what it dropped; a log under its cap loses nothing.
pub async fn purge_to_size_drops_oldest<S: AuditLog + ?Sized>(new: &impl Factory<S>) {
    let log = new.make().await;
    fill(&*log).await;
    let all = log.query(&q(100), 1000).await.unwrap().events;
    assert_eq!(log.purge_to_size(u64::MAX).await.unwrap(), Purged::default());
    assert_eq!(log.query(&q(100), 1000).await.unwrap().events, all);

    let purged = log.purge_to_size(0).await.unwrap();
    assert!(
        (1..all.len()).contains(&purged.events),
        "five days of events span more than one unit: {purged:?}"
    );
    assert!(purged.bytes > 0, "{purged:?}");
    let left = log.query(&q(100), 1000).await.unwrap().events;
    assert_eq!(left, all[..all.len() - purged.events], "the newest are kept");
}
