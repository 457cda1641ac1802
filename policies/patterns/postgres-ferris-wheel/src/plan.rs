//! Which step comes next, decided from the cluster as it is (so a run that
//! stopped half way resumes where it stood), and the same decisions
//! replayed on a simulated cluster for a dry run's plan.
//!
//! StatefulSet ordinals decide the shape: scaling up adds `<set>-<target>`,
//! scaling down removes the highest ordinals first. So the rotation adds one
//! member on the upgraded pool, switches the primary over to it, replaces
//! every old-pool member in place (a deleted Pod comes back with the same
//! volume on a Node the pinned nodeSelector allows), and, because the added
//! member goes away again when the set scales back, switches the primary to
//! a lower ordinal first, using the scale-down itself to stop it.

use serde::{Deserialize, Serialize};

/// What the planner needs to know about the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Every member Pod: its ordinal and whether its Node is in the upgraded pool.
    pub members: Vec<(u32, bool)>,
    pub primary: u32,
    /// The StatefulSet's replicas now.
    pub replicas: u32,
    /// The replicas it must end with.
    pub target: u32,
}

/// Whom to switch over to.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// This member (the one just added).
    Member(u32),
    /// The most advanced synchronous standby on the upgraded pool.
    BestUpgraded,
    /// The most advanced synchronous standby with an ordinal below this.
    BestBelow(u32),
}

/// How the old primary's server is stopped before the new one is promoted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// Delete its Pod: it comes back, as a standby of the new primary.
    DeletePod,
    /// Scale the StatefulSet down to this, which deletes it (it has the highest ordinal).
    ScaleDown(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Scale the StatefulSet up to this many replicas (one more on the upgraded pool).
    ScaleUp(u32),
    Switchover {
        to: Target,
        stop: Stop,
    },
    /// Replace this standby's Pod, so it comes back on the upgraded pool.
    Move(u32),
    ScaleDown(u32),
}

impl Snapshot {
    fn upgraded(&self, ordinal: u32) -> bool {
        self.members.iter().any(|(o, up)| *o == ordinal && *up)
    }
}

/// The next action, or `None` when every member runs on the upgraded pool
/// and the set has its target size.
pub fn next(s: &Snapshot) -> Option<Action> {
    let primary_old = !s.upgraded(s.primary);
    // Members that scaling back removes need not move.
    let old_standbys: Vec<u32> = s.members.iter().filter(|(o, up)| !up && *o != s.primary && *o < s.target).map(|(o, _)| *o).collect();
    if primary_old || !old_standbys.is_empty() {
        if s.replicas <= s.target {
            return Some(Action::ScaleUp(s.target + 1));
        }
        if primary_old {
            let added = s.replicas - 1;
            let to = if added != s.primary && s.upgraded(added) { Target::Member(added) } else { Target::BestUpgraded };
            return Some(Action::Switchover { to, stop: Stop::DeletePod });
        }
        return old_standbys.iter().max().map(|o| Action::Move(*o));
    }
    if s.replicas > s.target {
        if s.primary >= s.target {
            let highest = s.members.iter().map(|(o, _)| *o).max().unwrap_or(s.primary);
            let stop = if s.primary == highest && s.replicas == s.target + 1 { Stop::ScaleDown(s.target) } else { Stop::DeletePod };
            return Some(Action::Switchover { to: Target::BestBelow(s.target), stop });
        }
        return Some(Action::ScaleDown(s.target));
    }
    None
}

/// The member a simulated switchover picks: the same preference as a real
/// one when every standby is equally advanced.
pub fn simulated_choice(s: &Snapshot, to: &Target) -> Option<u32> {
    let standbys = s.members.iter().filter(|(o, up)| *up && *o != s.primary).map(|(o, _)| *o);
    match to {
        Target::Member(o) => Some(*o),
        Target::BestUpgraded => standbys.max(),
        Target::BestBelow(n) => standbys.filter(|o| o < n).min(),
    }
}

/// The cluster after `action` succeeded, with `chosen` the new primary of a switchover.
pub fn apply(s: &mut Snapshot, action: &Action, chosen: Option<u32>) {
    let shrink = |s: &mut Snapshot, n: u32| {
        s.members.retain(|(o, _)| *o < n);
        s.replicas = n;
    };
    match action {
        Action::ScaleUp(n) => {
            for o in s.replicas..*n {
                s.members.push((o, true));
            }
            s.replicas = *n;
        }
        Action::Switchover { stop, .. } => {
            let old = s.primary;
            if let Some(new) = chosen {
                s.primary = new;
            }
            match stop {
                Stop::DeletePod => s.members.iter_mut().filter(|(o, _)| *o == old).for_each(|m| m.1 = true),
                Stop::ScaleDown(n) => shrink(s, *n),
            }
        }
        Action::Move(o) => s.members.iter_mut().filter(|(m, _)| m == o).for_each(|m| m.1 = true),
        Action::ScaleDown(n) => shrink(s, *n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut s: Snapshot) -> (Vec<Action>, Snapshot) {
        let mut actions = Vec::new();
        while let Some(action) = next(&s) {
            assert!(actions.len() < 20, "no end: {actions:?}");
            let chosen = match &action {
                Action::Switchover { to, .. } => simulated_choice(&s, to),
                _ => None,
            };
            apply(&mut s, &action, chosen);
            actions.push(action);
        }
        (actions, s)
    }

    #[test]
    fn the_seed_rotation() {
        let start = Snapshot { members: vec![(0, false), (1, false), (2, false)], primary: 0, replicas: 3, target: 3 };
        let (actions, end) = run(start);
        assert_eq!(
            actions,
            vec![
                Action::ScaleUp(4),
                Action::Switchover { to: Target::Member(3), stop: Stop::DeletePod },
                Action::Move(2),
                Action::Move(1),
                Action::Switchover { to: Target::BestBelow(3), stop: Stop::ScaleDown(3) },
            ]
        );
        assert_eq!(end, Snapshot { members: vec![(0, true), (1, true), (2, true)], primary: 0, replicas: 3, target: 3 });
    }

    #[test]
    fn resumes_after_the_first_switchover() {
        let s = Snapshot { members: vec![(0, true), (1, false), (2, false), (3, true)], primary: 3, replicas: 4, target: 3 };
        assert_eq!(next(&s), Some(Action::Move(2)));
        let (actions, end) = run(s);
        assert_eq!(actions.len(), 3);
        assert_eq!(end.replicas, 3);
        assert!(end.members.iter().all(|(_, up)| *up));
    }

    #[test]
    fn a_standby_primary_needs_no_switchover_but_keeps_a_spare() {
        let s = Snapshot { members: vec![(0, true), (1, false), (2, true)], primary: 0, replicas: 3, target: 3 };
        let (actions, end) = run(s);
        assert_eq!(actions, vec![Action::ScaleUp(4), Action::Move(1), Action::ScaleDown(3)]);
        assert_eq!(end.primary, 0);
    }

    #[test]
    fn nothing_to_do() {
        let s = Snapshot { members: vec![(0, true), (1, true), (2, true)], primary: 1, replicas: 3, target: 3 };
        assert_eq!(next(&s), None);
    }

    #[test]
    fn an_added_member_that_landed_on_the_old_pool_is_not_chosen() {
        let s = Snapshot { members: vec![(0, false), (1, true), (2, false), (3, false)], primary: 0, replicas: 4, target: 3 };
        assert_eq!(next(&s), Some(Action::Switchover { to: Target::BestUpgraded, stop: Stop::DeletePod }));
        assert_eq!(simulated_choice(&s, &Target::BestUpgraded), Some(1));
    }

    #[test]
    fn a_primary_above_the_target_that_is_not_the_highest_is_deleted_not_scaled() {
        let s = Snapshot { members: vec![(0, true), (1, true), (2, true), (3, true), (4, true)], primary: 3, replicas: 5, target: 3 };
        assert_eq!(next(&s), Some(Action::Switchover { to: Target::BestBelow(3), stop: Stop::DeletePod }));
    }
}
