//! Which step comes next, decided from the replica set as it is now (so a
//! run that stopped half way resumes where it stood), and the same
//! decisions walked on a simulated set for a dry run's plan.
//!
//! Secondaries go first, highest ordinal first (the order a StatefulSet's
//! rolling update uses), one at a time; the primary goes last, after one
//! step-down, so there is exactly one election in the whole rotation.

/// One member as the planner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub name: String,
    pub ordinal: u32,
    /// Whether its Pod runs on a Node of the upgraded pool.
    pub upgraded: bool,
}

/// The replica set now.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub members: Vec<Member>,
    pub primary: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Delete this secondary's Pod so it comes back on the upgraded pool.
    Move(String),
    /// Hand the primary role from this member to a caught-up secondary on the upgraded pool.
    StepDown(String),
}

/// The next action, or `None` when every member runs on the upgraded pool.
pub fn next(s: &Snapshot) -> Option<Action> {
    let mut old: Vec<&Member> = s.members.iter().filter(|m| !m.upgraded && m.name != s.primary).collect();
    old.sort_by_key(|m| std::cmp::Reverse(m.ordinal));
    if let Some(m) = old.first() {
        return Some(Action::Move(m.name.clone()));
    }
    let primary = s.members.iter().find(|m| m.name == s.primary)?;
    if primary.upgraded {
        return None;
    }
    Some(Action::StepDown(primary.name.clone()))
}

/// What `action` leaves behind, for a dry run: a moved member is on the
/// upgraded pool; a step-down makes `new_primary` (or the lowest-ordinal
/// member on the upgraded pool) the primary.
pub fn apply(s: &mut Snapshot, action: &Action, new_primary: Option<&str>) {
    match action {
        Action::Move(name) => {
            if let Some(m) = s.members.iter_mut().find(|m| &m.name == name) {
                m.upgraded = true;
            }
        }
        Action::StepDown(from) => {
            let fallback = s.members.iter().filter(|m| m.upgraded && &m.name != from).min_by_key(|m| m.ordinal).map(|m| m.name.clone());
            if let Some(to) = new_primary.map(str::to_string).or(fallback) {
                s.primary = to;
            }
        }
    }
}

/// The whole plan from `s`, walked on a copy: what the run will do, for the log.
pub fn whole(s: &Snapshot) -> Vec<Action> {
    let mut s = s.clone();
    let mut actions = Vec::new();
    while let Some(action) = next(&s) {
        if actions.len() > 2 * s.members.len() + 2 {
            break;
        }
        apply(&mut s, &action, None);
        // After a step-down the old primary is a secondary that still has to move.
        actions.push(action);
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(upgraded: &[bool], primary: u32) -> Snapshot {
        Snapshot {
            members: upgraded.iter().enumerate().map(|(i, up)| Member { name: format!("mongo-{i}"), ordinal: i as u32, upgraded: *up }).collect(),
            primary: format!("mongo-{primary}"),
        }
    }

    #[test]
    fn secondaries_first_highest_ordinal_first_then_one_step_down() {
        let plan = whole(&snapshot(&[false, false, false], 0));
        assert_eq!(
            plan,
            vec![Action::Move("mongo-2".into()), Action::Move("mongo-1".into()), Action::StepDown("mongo-0".into()), Action::Move("mongo-0".into())]
        );
        let plan = whole(&snapshot(&[false, false, false], 1));
        assert_eq!(
            plan,
            vec![Action::Move("mongo-2".into()), Action::Move("mongo-0".into()), Action::StepDown("mongo-1".into()), Action::Move("mongo-1".into())]
        );
    }

    #[test]
    fn resumes_from_where_the_set_stands() {
        // mongo-2 already moved by an earlier run.
        assert_eq!(next(&snapshot(&[false, false, true], 0)), Some(Action::Move("mongo-1".into())));
        // Every secondary moved: the step-down is next.
        assert_eq!(next(&snapshot(&[false, true, true], 0)), Some(Action::StepDown("mongo-0".into())));
        // The primary already stepped down to mongo-1: move mongo-0.
        assert_eq!(next(&snapshot(&[false, true, true], 1)), Some(Action::Move("mongo-0".into())));
        assert_eq!(next(&snapshot(&[true, true, true], 1)), None);
        // A primary already on the upgraded pool needs no step-down.
        assert_eq!(whole(&snapshot(&[true, false, false], 0)), vec![Action::Move("mongo-2".into()), Action::Move("mongo-1".into())]);
    }

    #[test]
    fn a_step_down_hands_over_to_the_chosen_member() {
        let mut s = snapshot(&[false, true, true], 0);
        apply(&mut s, &Action::StepDown("mongo-0".into()), Some("mongo-2"));
        assert_eq!(s.primary, "mongo-2");
        apply(&mut s, &Action::StepDown("mongo-2".into()), None);
        assert_eq!(s.primary, "mongo-1");
    }
}
