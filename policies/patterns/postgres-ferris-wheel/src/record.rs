//! The switchover in flight, as the annotation keeps it between step
//! boundaries: a run killed half way leaves it behind, and the next run
//! reads it, says what it found, and carries the switchover on from there.
//!
//! The record says what the pattern set out to do; the cluster says how far
//! it got. [`Switch::resume_phase`] weighs the two, trusting the cluster
//! wherever the record may lag by one step (a kill between an action and
//! the patch that records it).

use serde::{Deserialize, Serialize};

use crate::plan::Stop;

/// How far a switchover got. Each phase is recorded when its step begins
/// (fenced, stopped: the rollback must assume the action may have happened)
/// or once its action succeeded (promoted, service re-pointed, writes
/// verified: a re-run must not repeat it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Slots on the new member; the other standbys re-pointed to cascade from it.
    #[default]
    Prepared,
    /// The old primary refuses writes.
    Fenced,
    /// The old primary has standby settings and was asked to stop.
    Stopped,
    /// The new member left recovery.
    Promoted,
    /// The Service selects the new member.
    ServiceRepointed,
    /// The new primary committed a write; the old one still has to rejoin (or be removed).
    WritesVerified,
}

/// One switchover in flight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Switch {
    /// The primary it switches away from.
    pub from: String,
    /// The member it promotes.
    pub to: String,
    /// How `from` stops.
    pub stop: Stop,
    /// The standbys re-pointed (or about to be) to stream from `to`.
    #[serde(default)]
    pub cascaded: Vec<String>,
    pub phase: Phase,
    /// When the fence went up (RFC 3339), once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_at: Option<String>,
}

/// What the cluster says of the two members of a switchover.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Seen {
    /// `from` answers and is not in recovery.
    pub from_primary: bool,
    /// ... and refuses writes (default_transaction_read_only).
    pub from_fenced: bool,
    /// `to` answers and is not in recovery.
    pub to_primary: bool,
    /// The Service selects `to`.
    pub service_on_to: bool,
}

impl Switch {
    /// The switchover as its record says, in words, for the first line of a resumed run.
    pub fn describe(&self, service: &str) -> String {
        let fenced = |s: &Switch| format!("fenced {} at {}", s.from, s.fenced_at.as_deref().unwrap_or("an unrecorded time"));
        let phase = match self.phase {
            Phase::Prepared => {
                format!("prepared {} ({} re-pointed to it)", self.to, if self.cascaded.is_empty() { "no standby".into() } else { self.cascaded.join(", ") })
            }
            Phase::Fenced => fenced(self),
            Phase::Stopped => format!("{} and stopped it", fenced(self)),
            Phase::Promoted => format!("{}, stopped it and promoted {}", fenced(self), self.to),
            Phase::ServiceRepointed => format!("promoted {} and re-pointed Service {service} to it", self.to),
            Phase::WritesVerified => format!("{} is the primary and committed a write; {} has yet to rejoin", self.to, self.from),
        };
        format!("{phase}, switching over from {} to {}", self.from, self.to)
    }

    /// The phase to carry on from, given what the cluster shows, or why the
    /// switchover can neither be completed nor trusted (the caller rolls back).
    pub fn resume_phase(&self, seen: Seen) -> Result<Phase, String> {
        let Switch { from, to, .. } = self;
        if seen.to_primary && seen.from_primary && !seen.from_fenced {
            return Err(format!("{from} and {to} are both writable primaries"));
        }
        if seen.to_primary {
            let phase = self.phase.max(Phase::Promoted);
            // The Service patch may have been lost with the run.
            return Ok(if phase >= Phase::ServiceRepointed && !seen.service_on_to { Phase::Promoted } else { phase });
        }
        if self.phase >= Phase::Promoted {
            return Err(format!("{to} was promoted but is not a primary now"));
        }
        if seen.from_primary {
            // Asked to stop but still running (killed before the Pod went), or
            // never fenced: go back to the last phase the cluster bears out.
            return Ok(self.phase.min(if seen.from_fenced { Phase::Fenced } else { Phase::Prepared }));
        }
        if self.phase < Phase::Stopped {
            return Err(format!(
                "{from} is no longer a running primary although this pattern never stopped it, so nothing shows that {to} replayed all of its WAL"
            ));
        }
        // Stopped after the catch-up was confirmed: promoting `to` loses nothing.
        Ok(Phase::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn switch(phase: Phase) -> Switch {
        Switch {
            from: "pg-0".into(),
            to: "pg-3".into(),
            stop: Stop::DeletePod,
            cascaded: vec!["pg-1".into(), "pg-2".into()],
            phase,
            fenced_at: (phase >= Phase::Fenced).then(|| "2026-12-02T18:00:00Z".into()),
        }
    }

    #[test]
    fn the_record_round_trips_through_the_annotation() {
        let s = Switch { stop: Stop::ScaleDown(3), ..switch(Phase::Stopped) };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"from":"pg-0","to":"pg-3","stop":{"scale-down":3},"cascaded":["pg-1","pg-2"],"phase":"stopped","fencedAt":"2026-12-02T18:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<Switch>(&text).unwrap(), s);
    }

    #[test]
    fn a_resumed_run_says_where_it_stood() {
        assert_eq!(switch(Phase::Fenced).describe("svc"), "fenced pg-0 at 2026-12-02T18:00:00Z, switching over from pg-0 to pg-3");
        assert!(switch(Phase::Prepared).describe("svc").starts_with("prepared pg-3 (pg-1, pg-2 re-pointed to it)"));
    }

    #[test]
    fn the_cluster_decides_where_a_resumed_switchover_goes_on() {
        let old_primary_fenced = Seen { from_primary: true, from_fenced: true, ..Seen::default() };
        let old_primary_open = Seen { from_primary: true, ..Seen::default() };
        let both_standbys = Seen::default();
        let promoted = Seen { to_primary: true, ..Seen::default() };
        // Fenced and killed: catch up and stop.
        assert_eq!(switch(Phase::Fenced).resume_phase(old_primary_fenced), Ok(Phase::Fenced));
        // Recorded as stopped, but the Pod was never deleted: stop again.
        assert_eq!(switch(Phase::Stopped).resume_phase(old_primary_fenced), Ok(Phase::Fenced));
        // The fence did not hold: fence again.
        assert_eq!(switch(Phase::Fenced).resume_phase(old_primary_open), Ok(Phase::Prepared));
        // Stopped, nobody promoted yet: promote.
        assert_eq!(switch(Phase::Stopped).resume_phase(both_standbys), Ok(Phase::Stopped));
        // Promoted before the record said so.
        assert_eq!(switch(Phase::Stopped).resume_phase(promoted), Ok(Phase::Promoted));
        // Service recorded as re-pointed but it is not: re-point.
        assert_eq!(switch(Phase::ServiceRepointed).resume_phase(promoted), Ok(Phase::Promoted));
        assert_eq!(switch(Phase::WritesVerified).resume_phase(Seen { service_on_to: true, ..promoted }), Ok(Phase::WritesVerified));
        // The old primary went away by itself before the stop: roll back.
        assert!(switch(Phase::Fenced).resume_phase(both_standbys).unwrap_err().contains("never stopped it"));
        assert!(switch(Phase::Promoted).resume_phase(both_standbys).is_err());
        assert!(switch(Phase::Prepared).resume_phase(Seen { from_primary: true, to_primary: true, ..Seen::default() }).is_err());
    }
}
