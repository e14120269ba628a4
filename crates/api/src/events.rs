//! ListenEvents: rkt 1.30 declared it and never implemented it. Here the store is watched:
//! every [`POLL`] the pods' states, their apps' markers and statuses, and the stored images
//! are compared with what was seen before, and each change becomes an event. A change that
//! comes and goes between two looks (a pod that starts and exits within one) still gives
//! the events its end implies, in order; events before the stream began are not replayed.

use crate::v1alpha::{Event, EventFilter, EventType, KeyValue};
use pod::{Pods, State};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How often the store is looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// What was seen of one pod.
#[derive(Clone, PartialEq)]
struct PodSeen {
    state: State,
    /// Per app: started, and its exit code once it has one.
    apps: BTreeMap<String, (bool, Option<i32>)>,
}

/// What was seen of the store.
#[derive(Default, Clone)]
pub struct Snapshot {
    pods: BTreeMap<String, PodSeen>,
    /// Image ID to name.
    images: BTreeMap<String, String>,
}

impl Snapshot {
    /// The store under `dir` as it is now. What cannot be read counts as absent.
    pub fn take(dir: &Path) -> Snapshot {
        let mut s = Snapshot::default();
        if let Ok(pods) = Pods::open(dir).and_then(|p| p.list()) {
            for p in pods {
                let apps = p
                    .manifest()
                    .map(|m| {
                        m.apps
                            .iter()
                            .map(|a| {
                                (
                                    a.name.clone(),
                                    (p.app_started(&a.name), p.exit_code(&a.name)),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                s.pods.insert(
                    p.uuid.clone(),
                    PodSeen {
                        state: p.state,
                        apps,
                    },
                );
            }
        }
        if let Ok(images) = image::store::Store::open(dir).and_then(|st| st.list()) {
            for i in images {
                let name = image::store::aci_identifier(&i.name);
                s.images.insert(i.id, name);
            }
        }
        s
    }

    /// The events that lead from `self` to `now`, stamped `time` (seconds since the epoch).
    pub fn changes(&self, now: &Snapshot, time: i64) -> Vec<Event> {
        let mut out = Vec::new();
        let mut ev = |t: EventType, id: &str, from: &str, data: Vec<KeyValue>| {
            out.push(Event {
                r#type: t as i32,
                id: id.to_string(),
                from: from.to_string(),
                time,
                data,
            })
        };
        for (uuid, seen) in &now.pods {
            let before = self.pods.get(uuid);
            // A pod's apps exit before it does: its exit comes after theirs.
            let (exited, begun): (Vec<EventType>, Vec<EventType>) =
                pod_events(before.map(|b| b.state), seen.state)
                    .into_iter()
                    .partition(|t| *t == EventType::PodExited);
            for t in begun {
                ev(t, uuid, uuid, Vec::new());
            }
            for (app, (started, code)) in &seen.apps {
                let (was_started, had_code) = before
                    .and_then(|b| b.apps.get(app))
                    .copied()
                    .unwrap_or((false, None));
                if (*started || code.is_some()) && !was_started && had_code.is_none() {
                    ev(EventType::AppStarted, uuid, app, Vec::new());
                }
                if let (Some(c), None) = (code, had_code) {
                    let data = vec![KeyValue {
                        key: "exit_code".into(),
                        value: c.to_string(),
                    }];
                    ev(EventType::AppExited, uuid, app, data);
                }
            }
            for t in exited {
                ev(t, uuid, uuid, Vec::new());
            }
        }
        for uuid in self.pods.keys().filter(|u| !now.pods.contains_key(*u)) {
            ev(EventType::PodGarbageCollected, uuid, uuid, Vec::new());
        }
        for (id, name) in now
            .images
            .iter()
            .filter(|(id, _)| !self.images.contains_key(*id))
        {
            ev(EventType::ImageImported, id, name, Vec::new());
        }
        for (id, name) in self
            .images
            .iter()
            .filter(|(id, _)| !now.images.contains_key(*id))
        {
            ev(EventType::ImageRemoved, id, name, Vec::new());
        }
        out
    }
}

/// How far along its life a state is, for the events a jump implies.
fn stage(s: State) -> u8 {
    match s {
        State::Embryo | State::Preparing => 0,
        State::Prepared | State::AbortedPrepare | State::Garbage | State::Deleting => 1,
        State::Running => 2,
        State::Exited | State::ExitedGarbage | State::ExitedDeleting => 3,
    }
}

/// The pod events between two states of a pod (`None`: not seen before).
fn pod_events(before: Option<State>, now: State) -> Vec<EventType> {
    if before == Some(now) {
        return Vec::new();
    }
    let from = before.map_or(0, stage);
    let mut out = Vec::new();
    match now {
        State::Prepared if from < 1 => out.push(EventType::PodPrepared),
        State::AbortedPrepare if from < 1 => out.push(EventType::PodPrepareAborted),
        _ => {}
    }
    if stage(now) >= 2 && from < 2 {
        out.push(EventType::PodStarted);
    }
    if stage(now) == 3 && from < 3 {
        out.push(EventType::PodExited);
    }
    out
}

/// Whether an event passes the filter (every condition given).
pub fn matches(e: &Event, f: &EventFilter) -> bool {
    (f.types.is_empty() || f.types.contains(&e.r#type))
        && (f.ids.is_empty() || f.ids.contains(&e.id))
        && (f.names.is_empty() || f.names.contains(&e.from))
        && (f.since_time <= 0 || e.time >= f.since_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app: its name, whether it started, its exit code.
    type AppSeen<'a> = (&'a str, bool, Option<i32>);

    fn snap(pods: &[(&str, State, &[AppSeen])], images: &[&str]) -> Snapshot {
        Snapshot {
            pods: pods
                .iter()
                .map(|(u, s, apps)| {
                    let apps = apps
                        .iter()
                        .map(|(n, st, c)| (n.to_string(), (*st, *c)))
                        .collect();
                    (u.to_string(), PodSeen { state: *s, apps })
                })
                .collect(),
            images: images
                .iter()
                .map(|i| (i.to_string(), format!("name-{i}")))
                .collect(),
        }
    }

    fn types(events: &[Event]) -> Vec<EventType> {
        events.iter().map(|e| e.r#type()).collect()
    }

    #[test]
    fn a_pod_that_ran_between_two_looks_gives_every_event_in_order() {
        let before = snap(&[("p", State::Preparing, &[("a", false, None)])], &[]);
        let now = snap(&[("p", State::Exited, &[("a", true, Some(3))])], &["i"]);
        let e = before.changes(&now, 7);
        assert_eq!(
            types(&e),
            [
                EventType::PodStarted,
                EventType::AppStarted,
                EventType::AppExited,
                EventType::PodExited,
                EventType::ImageImported
            ]
        );
        assert_eq!(e[2].data[0].value, "3");
        assert_eq!(
            (e[2].id.as_str(), e[2].from.as_str(), e[2].time),
            ("p", "a", 7)
        );
        let gone = snap(&[], &[]);
        assert_eq!(
            types(&now.changes(&gone, 8)),
            [EventType::PodGarbageCollected, EventType::ImageRemoved]
        );
        assert!(now.changes(&now, 9).is_empty());
    }

    #[test]
    fn prepared_and_aborted_pods() {
        assert_eq!(pod_events(None, State::Prepared), [EventType::PodPrepared]);
        assert_eq!(
            pod_events(Some(State::Preparing), State::AbortedPrepare),
            [EventType::PodPrepareAborted]
        );
        assert_eq!(
            pod_events(Some(State::Prepared), State::Running),
            [EventType::PodStarted]
        );
        assert!(pod_events(Some(State::Exited), State::ExitedGarbage).is_empty());
    }
}
