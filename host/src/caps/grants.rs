//! The decision made on every host call: requested by the component, and
//! allowed by the operator when it mutates.

use super::{Capability, VERBS, calls};

/// The answer for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The call may go ahead.
    Granted,
    /// The component's manifest does not request this capability.
    NotRequested,
    /// A mutating capability the operator has not allowed.
    NotAllowed,
}

/// What one component was granted for one run.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    requested: Vec<Capability>,
    allowed: Vec<Capability>,
    /// Allowances that hold on some fleet members only (`--allow CAP@MEMBER`):
    /// member name pattern (a trailing `*` matches any rest) → capability.
    /// They join `allowed` for a component run on a matching member.
    on_members: std::sync::Arc<Vec<(String, Capability)>>,
    /// Components that may never mutate (gates) get reads only, whatever the
    /// operator allowed.
    read_only: bool,
}

impl Grants {
    /// Grants for a component that requested `requested`, run by an operator
    /// who allowed `allowed` (on top of reads, which are allowed by default).
    pub fn new(requested: Vec<Capability>, allowed: Vec<Capability>) -> Self {
        Grants { requested, allowed, on_members: Default::default(), read_only: false }
    }

    /// The same grants, with allowances that hold on matching fleet members
    /// only (member name pattern → capability).
    pub fn with_member_allowances(mut self, on_members: Vec<(String, Capability)>) -> Self {
        self.on_members = std::sync::Arc::new(on_members);
        self
    }

    /// These grants for a component run on fleet member `member`: the
    /// run-wide allowances and those given for that member. A component
    /// on a member reaches no other member, so nothing member-scoped is left.
    pub fn on_member(&self, member: &str) -> Self {
        let matching = |pattern: &str| pattern.strip_suffix('*').map_or(pattern == member, |prefix| member.starts_with(prefix));
        let mut allowed = self.allowed.clone();
        allowed.extend(self.on_members.iter().filter(|(pattern, _)| matching(pattern)).map(|(_, cap)| cap.clone()));
        Grants { requested: self.requested.clone(), allowed, on_members: Default::default(), read_only: self.read_only }
    }

    /// Grants for a gate: its own requests, reads only.
    pub fn read_only(requested: Vec<Capability>) -> Self {
        Grants { requested, allowed: Vec::new(), on_members: Default::default(), read_only: true }
    }

    /// Grants for a pattern another pattern runs through a slot: what its
    /// own manifest requests, within what the operator allowed the run
    /// (`parent`'s allowances; a gate's read-only grants stay read-only).
    /// The parent's requests do not widen or narrow the child's: each
    /// manifest speaks for its own component, and the operator's allowances
    /// bound every mutation of the run.
    pub fn within(requested: Vec<Capability>, parent: &Grants) -> Self {
        Grants { requested, allowed: parent.allowed.clone(), on_members: parent.on_members.clone(), read_only: parent.read_only }
    }

    /// Decide whether a call needing `interface:verb:scope` may go ahead.
    ///
    /// Called on every host call, so it allocates nothing.
    pub fn decide(&self, interface: &str, verb: &str, scope: &str) -> Decision {
        let covered = |patterns: &[Capability]| patterns.iter().any(|p| p.matches_parts(interface, verb, Some(scope)));
        if !covered(&self.requested) {
            return Decision::NotRequested;
        }
        let mutating = calls::is_mutating(interface, verb);
        if !mutating || (!self.read_only && covered(&self.allowed)) { Decision::Granted } else { Decision::NotAllowed }
    }

    /// The requests, each with what the operator's allowances make of it.
    pub fn summary(&self) -> Vec<(Capability, GrantState)> {
        self.requested
            .iter()
            .map(|request| {
                let state = if !request.is_mutating() {
                    GrantState::Granted
                } else if self.read_only {
                    GrantState::ReadsOnly
                } else if self.allowed.iter().any(|a| a.covers(request)) {
                    GrantState::Granted
                } else if self.allowed.iter().any(|a| request.covers(a) || a.overlaps(request)) {
                    GrantState::Partly
                } else if VERBS.iter().any(|v| !v.mutating && request.matches_parts(v.interface, v.verb, None)) {
                    GrantState::ReadsOnly
                } else {
                    GrantState::NeedsAllow
                };
                (request.clone(), state)
            })
            .collect()
    }
}

/// How much of one request the operator's allowances cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantState {
    /// Fully granted.
    Granted,
    /// Only part of the scope was allowed.
    Partly,
    /// Only the reads within a wildcard request are granted.
    ReadsOnly,
    /// A mutation that needs `--allow`.
    NeedsAllow,
}

impl GrantState {
    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            GrantState::Granted => "granted",
            GrantState::Partly => "partly allowed",
            GrantState::ReadsOnly => "reads only",
            GrantState::NeedsAllow => "needs --allow",
        }
    }
}

impl Capability {
    /// [`Capability::matches`] on borrowed parts, for the per-call check.
    pub(crate) fn matches_parts(&self, interface: &str, verb: &str, scope: Option<&str>) -> bool {
        let segment = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        segment(&self.interface, interface)
            && segment(&self.verb, verb)
            && match (&self.scope, scope) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(pattern), Some(value)) => match pattern.strip_suffix('*') {
                    Some(prefix) => value.starts_with(prefix),
                    None => pattern == value,
                },
            }
    }

    /// Whether every call this pattern matches is also matched by `self`.
    pub fn covers(&self, other: &Capability) -> bool {
        self.matches_parts(&other.interface, &other.verb, other.scope.as_deref())
    }

    /// Whether some call could match both patterns.
    pub fn overlaps(&self, other: &Capability) -> bool {
        let segment = |a: &str, b: &str| a == "*" || b == "*" || a == b;
        segment(&self.interface, &other.interface) && segment(&self.verb, &other.verb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<Capability> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn reads_are_granted_when_requested() {
        let grants = Grants::new(caps(&["kube:list:v1/Pod"]), vec![]);
        assert_eq!(grants.decide("kube", "list", "v1/Pod"), Decision::Granted);
        assert_eq!(grants.decide("kube", "list", "v1/Node"), Decision::NotRequested);
        assert_eq!(grants.decide("kube", "get", "v1/Pod"), Decision::NotRequested);
    }

    #[test]
    fn mutations_need_request_and_allowance() {
        let requested = caps(&["kube:patch:apps/v1/StatefulSet", "kube:get"]);
        let none = Grants::new(requested.clone(), vec![]);
        assert_eq!(none.decide("kube", "patch", "apps/v1/StatefulSet"), Decision::NotAllowed);
        let allowed = Grants::new(requested.clone(), caps(&["kube:patch"]));
        assert_eq!(allowed.decide("kube", "patch", "apps/v1/StatefulSet"), Decision::Granted);
        assert_eq!(allowed.decide("kube", "patch", "v1/Service"), Decision::NotRequested, "the allowance cannot widen the request");
        let everything = Grants::new(requested, caps(&["*:*"]));
        assert_eq!(everything.decide("kube", "delete", "v1/Pod"), Decision::NotRequested);
    }

    #[test]
    fn read_only_grants_never_mutate() {
        let grants = Grants::read_only(caps(&["kube:*"]));
        assert_eq!(grants.decide("kube", "get", "v1/Pod"), Decision::Granted);
        assert_eq!(grants.decide("kube", "delete", "v1/Pod"), Decision::NotAllowed);
    }

    #[test]
    fn a_sub_pattern_gets_its_own_requests_within_the_operators_allowances() {
        let parent = Grants::new(caps(&["patterns:run:db", "kube:get"]), caps(&["kube:delete:v1/Pod"]));
        let child = Grants::within(caps(&["kube:delete:v1/Pod", "kube:patch:apps/v1/StatefulSet", "kube:get"]), &parent);
        assert_eq!(child.decide("kube", "delete", "v1/Pod"), Decision::Granted, "requested by the child and allowed by the operator");
        assert_eq!(child.decide("kube", "patch", "apps/v1/StatefulSet"), Decision::NotAllowed, "requested, but the operator did not allow it");
        assert_eq!(child.decide("kube", "get", "v1/Pod"), Decision::Granted);
        assert_eq!(child.decide("patterns", "run", "db"), Decision::NotRequested, "the parent's requests are not the child's");
        let read_only = Grants::within(caps(&["kube:delete"]), &Grants::read_only(caps(&["kube:get"])));
        assert_eq!(read_only.decide("kube", "delete", "v1/Pod"), Decision::NotAllowed);
    }

    #[test]
    fn summary_says_what_each_request_became() {
        let grants = Grants::new(
            caps(&["kube:get", "kube:patch", "kube:delete:v1/Pod", "kube:*", "postgres:execute"]),
            caps(&["kube:patch:apps/v1/StatefulSet", "kube:delete"]),
        );
        let states: Vec<_> = grants.summary().into_iter().map(|(c, s)| (c.to_string(), s)).collect();
        assert_eq!(
            states,
            vec![
                ("kube:get".into(), GrantState::Granted),
                ("kube:patch".into(), GrantState::Partly),
                ("kube:delete:v1/Pod".into(), GrantState::Granted),
                ("kube:*".into(), GrantState::Partly),
                ("postgres:execute".into(), GrantState::NeedsAllow),
            ]
        );
    }
}
