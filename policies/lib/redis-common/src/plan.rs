//! The order of a rolling replacement, as a pure function of the cluster's
//! state: replicas first, then each master hands over to a replica already
//! on the upgraded pool and is replaced as a replica. Deciding one action at
//! a time from what the cluster is now makes a run that stopped resumable,
//! and lets the pattern follow a failover the cluster made on its own.

/// One member as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub ordinal: u32,
    /// Its cluster node id.
    pub id: String,
    /// `None` for a master; a replica's master id.
    pub master_id: Option<String>,
    /// Its Pod runs on the upgraded pool.
    pub upgraded: bool,
}

impl Member {
    pub fn is_master(&self) -> bool {
        self.master_id.is_none()
    }
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Replace a replica's Pod so it comes back on the upgraded pool.
    Replace { member: String },
    /// `CLUSTER FAILOVER` on `replica`, which then serves `master`'s slots.
    Failover { master: String, replica: String },
}

impl std::fmt::Display for Action {
    /// The action as its step is named: `replace <member>`, `failover <master> -> <replica>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Replace { member } => write!(f, "replace {member}"),
            Action::Failover { master, replica } => write!(f, "failover {master} -> {replica}"),
        }
    }
}

/// Where a rotation stands, read from the cluster: what is done (members,
/// and masters, already on the upgraded pool) and the action that comes
/// next. `members` are those that answered; `silent` names those that did
/// not (a Pod an interrupted step evicted may still be coming back), so the
/// next action holds once they answer again.
pub fn progress(members: &[Member], silent: &[String]) -> String {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|m| m.ordinal);
    let names = |pick: &dyn Fn(&Member) -> bool| sorted.iter().filter(|m| pick(m)).map(|m| m.name.as_str()).collect::<Vec<_>>();
    let moved = names(&|m| m.upgraded);
    let moved_masters = names(&|m| m.upgraded && m.is_master());
    let masters = sorted.iter().filter(|m| m.is_master()).count();
    let list = |names: &[&str]| if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) };
    let mut text = format!(
        "done: {} of {} members on the upgraded pool{}, {} of {masters} masters serving from there{}",
        moved.len(),
        members.len() + silent.len(),
        list(&moved),
        moved_masters.len(),
        list(&moved_masters)
    );
    if !silent.is_empty() {
        text.push_str(&format!("; not answering yet: {} (the interrupted step's Pod may still be coming back)", silent.join(", ")));
    }
    let when = if silent.is_empty() { "next" } else { "next, once they answer" };
    match next(members) {
        Ok(Some(action)) => text.push_str(&format!("; {when}: {action}")),
        Ok(None) => text.push_str(&format!("; {when}: nothing left to move, put back the update strategy")),
        Err(why) => text.push_str(&format!("; {when}: no step can be taken ({why})")),
    }
    text
}

/// The next action, `None` when every member runs on the upgraded pool.
pub fn next(members: &[Member]) -> Result<Option<Action>, String> {
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|m| m.ordinal);
    if let Some(replica) = sorted.iter().find(|m| !m.is_master() && !m.upgraded) {
        return Ok(Some(Action::Replace { member: replica.name.clone() }));
    }
    let Some(master) = sorted.iter().find(|m| m.is_master() && !m.upgraded) else {
        return Ok(None);
    };
    match sorted.iter().find(|m| m.master_id.as_deref() == Some(master.id.as_str()) && m.upgraded) {
        Some(replica) => Ok(Some(Action::Failover { master: master.name.clone(), replica: replica.name.clone() })),
        None => Err(format!("master {} has no replica on the upgraded pool to hand its slots to", master.name)),
    }
}

/// The state after `action` succeeds, for a dry run's simulation.
pub fn apply(members: &mut [Member], action: &Action) {
    match action {
        Action::Replace { member } => {
            if let Some(m) = members.iter_mut().find(|m| &m.name == member) {
                m.upgraded = true;
            }
        }
        Action::Failover { master, replica } => {
            let (Some(old), Some(new)) =
                (members.iter().find(|m| &m.name == master).map(|m| m.id.clone()), members.iter().find(|m| &m.name == replica).map(|m| m.id.clone()))
            else {
                return;
            };
            for m in members.iter_mut() {
                if m.id == new {
                    m.master_id = None;
                } else if m.id == old || m.master_id.as_deref() == Some(old.as_str()) {
                    m.master_id = Some(new.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Vec<Member> {
        (0..6)
            .map(|i| Member {
                name: format!("redis-cluster-{i}"),
                ordinal: i,
                id: format!("id{i}"),
                master_id: (i >= 3).then(|| format!("id{}", (i + 1) % 3)),
                upgraded: false,
            })
            .collect()
    }

    #[test]
    fn replicas_first_then_each_master_hands_over() {
        let mut members = cluster();
        let mut actions = Vec::new();
        while let Some(action) = next(&members).unwrap() {
            apply(&mut members, &action);
            actions.push(action);
            assert!(actions.len() <= 9, "{actions:?}");
        }
        let replace = |i: u32| Action::Replace { member: format!("redis-cluster-{i}") };
        let failover = |m: u32, r: u32| Action::Failover { master: format!("redis-cluster-{m}"), replica: format!("redis-cluster-{r}") };
        // Member 3 replicates 1, 4 replicates 2, 5 replicates 0.
        assert_eq!(actions, vec![replace(3), replace(4), replace(5), failover(0, 5), replace(0), failover(1, 3), replace(1), failover(2, 4), replace(2)]);
        assert!(members.iter().all(|m| m.upgraded));
        assert_eq!(members.iter().filter(|m| m.is_master()).count(), 3);
        let masters: Vec<&str> = members.iter().filter(|m| m.is_master()).map(|m| m.name.as_str()).collect();
        assert_eq!(masters, ["redis-cluster-3", "redis-cluster-4", "redis-cluster-5"]);
    }

    #[test]
    fn a_resumed_run_skips_what_is_done_and_follows_the_clusters_own_failover() {
        let mut members = cluster();
        for m in members.iter_mut().filter(|m| m.ordinal >= 3) {
            m.upgraded = true;
        }
        // The cluster failed master 1 over to its replica 3 by itself.
        apply(&mut members, &Action::Failover { master: "redis-cluster-1".into(), replica: "redis-cluster-3".into() });
        // Member 1, now a replica on the old pool, goes first; it is not failed over again.
        assert_eq!(next(&members).unwrap(), Some(Action::Replace { member: "redis-cluster-1".into() }));
        apply(&mut members, &Action::Failover { master: "redis-cluster-0".into(), replica: "redis-cluster-5".into() });
        // Two demoted masters on the old pool: replaced in ordinal order.
        assert_eq!(next(&members).unwrap(), Some(Action::Replace { member: "redis-cluster-0".into() }));
        apply(&mut members, &Action::Replace { member: "redis-cluster-0".into() });
        apply(&mut members, &Action::Replace { member: "redis-cluster-1".into() });
        assert_eq!(next(&members).unwrap(), Some(Action::Failover { master: "redis-cluster-2".into(), replica: "redis-cluster-4".into() }));
    }

    #[test]
    fn progress_says_what_is_done_and_what_comes_next() {
        let mut members = cluster();
        assert_eq!(progress(&members, &[]), "done: 0 of 6 members on the upgraded pool, 0 of 3 masters serving from there; next: replace redis-cluster-3");
        for m in members.iter_mut().filter(|m| m.ordinal >= 3) {
            m.upgraded = true;
        }
        apply(&mut members, &Action::Failover { master: "redis-cluster-0".into(), replica: "redis-cluster-5".into() });
        assert_eq!(
            progress(&members, &[]),
            "done: 3 of 6 members on the upgraded pool (redis-cluster-3, redis-cluster-4, redis-cluster-5), 1 of 3 masters serving from there (redis-cluster-5); next: replace redis-cluster-0"
        );
        // Killed right after evicting redis-cluster-0: it is not there to ask.
        members.retain(|m| m.ordinal != 0);
        assert_eq!(
            progress(&members, &["redis-cluster-0".to_string()]),
            "done: 3 of 6 members on the upgraded pool (redis-cluster-3, redis-cluster-4, redis-cluster-5), 1 of 3 masters serving from there (redis-cluster-5); \
             not answering yet: redis-cluster-0 (the interrupted step's Pod may still be coming back); next, once they answer: failover redis-cluster-1 -> redis-cluster-3"
        );
        members.iter_mut().for_each(|m| m.upgraded = true);
        assert!(progress(&members, &[]).ends_with("; next: nothing left to move, put back the update strategy"));
        let mut stuck = cluster();
        stuck.truncate(5);
        stuck.iter_mut().filter(|m| m.ordinal >= 3).for_each(|m| m.upgraded = true);
        assert!(
            progress(&stuck, &[]).ends_with("; next: no step can be taken (master redis-cluster-0 has no replica on the upgraded pool to hand its slots to)")
        );
    }

    #[test]
    fn actions_read_as_their_steps_are_named() {
        assert_eq!(Action::Replace { member: "redis-cluster-4".into() }.to_string(), "replace redis-cluster-4");
        assert_eq!(
            Action::Failover { master: "redis-cluster-0".into(), replica: "redis-cluster-5".into() }.to_string(),
            "failover redis-cluster-0 -> redis-cluster-5"
        );
    }

    #[test]
    fn a_master_without_an_upgraded_replica_stops_the_plan() {
        let mut members = cluster();
        members.truncate(5);
        for m in members.iter_mut().filter(|m| m.ordinal >= 3) {
            m.upgraded = true;
        }
        assert_eq!(next(&members).unwrap_err(), "master redis-cluster-0 has no replica on the upgraded pool to hand its slots to");
        let mut done = cluster();
        done.iter_mut().for_each(|m| m.upgraded = true);
        assert_eq!(next(&done).unwrap(), None);
    }
}
