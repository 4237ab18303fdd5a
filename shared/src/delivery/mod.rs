//! Delivery: the one place notifications leave ecr-warden, each exactly once per event and destination.
//!
//! A function's path decides *what* to say and returns it as a [`Report`]; [`crate::handler::Base::report`]
//! carries every report out (claim, publish, park, flush, release). No other code claims, publishes, parks or
//! flushes.
//!
//! # Reports
//!
//! | report | when a path gives it | what is done |
//! |---|---|---|
//! | [`Report::Silent`] | nothing to say, and nothing an earlier attempt can have left (a skip at the door, a dry run that changed nothing) | nothing: no AWS call |
//! | [`Report::Settle`] | nothing new to say, but this may be the retry of an attempt that changed something and died or failed before it said so | flush: send what earlier attempts of this event parked or claimed and left unsent (one Query) |
//! | [`Report::Tell`] | something to say; nothing was changed by this invocation (a finding, a refusal, a dry run) | claim, publish, mark sent |
//! | [`Report::TellChanged`] | something to say about changes this invocation made | as `Tell`; if it cannot be sent, it is parked for the retry (which finds the changes made and would otherwise stay silent) before the error is returned |
//! | [`Report::Owed`] | changes were made but the invocation fails before it can say so | parked for the retry |
//! | [`Report::Recovered`] | the change was found made by an earlier delivery of this event, whose notification may have been lost with the answer | flush; if nothing was left unsent, tell it (claimed, so a replay stays silent) |
//! | [`Report::Standing`] | a standing finding (a dry-run plan, refused or drifted policies) that stays until someone acts | told only when its fingerprint changes, and weekly; forgotten again if the telling fails, so the retry tells |
//! | [`Report::Cleared`] | a standing finding is gone (the sweep or audit found nothing of its kind) | its fingerprint is forgotten (best effort), so its return is told at once |
//!
//! # Claims: the protocol (ledger items in [`crate::aws::claims`])
//!
//! | state found for `NOTIFY#<event id>` / `<claim key>` | what the claimant does |
//! |---|---|
//! | none | writes `pending` with the message and its request id (one writer wins), publishes, marks `sent` |
//! | `sent` | nothing: it was sent |
//! | `pending`, its own request id (Lambda retries an invocation under the same id) | takes it over and publishes the stored message: its earlier attempt died between claim and `sent` |
//! | `pending`, another request, older than any invocation lives (16 min) | takes it over the same way: the holder is dead |
//! | `pending`, another live request (a concurrent duplicate delivery) | nothing: the holder sends it, or its retry does |
//!
//! What a retry sees, by where the first attempt stopped:
//!
//! | the first attempt stopped | the retry |
//! |---|---|
//! | before the claim | decides again; a change already made makes it `Settle` or `Recovered`: the news is told once |
//! | after the claim, before the publish (killed, timed out) | takes the `pending` claim over and publishes the stored message |
//! | the publish failed | the claim was given back, the news parked (`TellChanged`): the retry's flush sends it |
//! | after the publish, before `sent` (killed) | takes the claim over and publishes again: one message twice, since SNS cannot tell a repeated publish from a new one |
//! | after `sent` | finds it sent: silent |
//!
//! Claims and parked messages live 15 days, longer than a failed event waits in the failure queue (14 days).
//!
//! # Claim keys
//!
//! A claim key is what "the same notification" means. Kinds that answer one question about an event share a
//! claim ([`Claim::Shared`]: scan-gate's `demoted` and `gate-failed`), so a replay that decides differently
//! because the first delivery changed the image stays silent. At a routed topic the key gains `@<topic>`.

use crate::notify::Notification;
use crate::policy::Route;

#[cfg(feature = "aws")]
mod carry;

/// Under which key a notification is sent at most once per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The notification's own kind.
    OwnKind,
    /// A key several kinds share because they answer one question about the event.
    Shared(String),
    /// One per repository the event covers (`<kind>@<repository>`), and per run when given
    /// (`<kind>@<repository>#<run>`: a retention run's deletions).
    PerRepository { repository: String, run: Option<String> },
    /// The news of an invocation cut short (`<kind>:interrupted`): its own claim, so the retry's own report of
    /// the same kind does not shadow it.
    Interrupted,
}

impl Claim {
    /// The claim key of a notification of `kind` at the default topic.
    pub fn key(&self, kind: &str) -> String {
        match self {
            Claim::OwnKind => kind.to_owned(),
            Claim::Shared(key) => key.clone(),
            Claim::PerRepository { repository, run: None } => format!("{kind}@{repository}"),
            Claim::PerRepository { repository, run: Some(run) } => format!("{kind}@{repository}#{run}"),
            Claim::Interrupted => format!("{kind}:interrupted"),
        }
    }
}

/// A notification and the claim it is sent under.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub notification: Notification,
    pub claim: Claim,
}

impl Said {
    /// Claimed under the notification's own kind.
    pub fn once(notification: Notification) -> Self {
        Self { notification, claim: Claim::OwnKind }
    }

    pub fn under(notification: Notification, claim: Claim) -> Self {
        Self { notification, claim }
    }

    /// The claim key at the default topic.
    pub fn key(&self) -> String {
        self.claim.key(&self.notification.kind)
    }
}

/// What a path has to say once its work is done (see the module's table).
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Silent,
    Settle,
    Tell(Said),
    TellChanged(Said),
    Owed(Said),
    Recovered(Said),
    /// A standing finding, named by `pk` / `sk` in the ledger, told when `fingerprint` changes (and weekly).
    Standing {
        said: Said,
        pk: String,
        sk: String,
        fingerprint: String,
    },
    /// The standing finding named by `pk` / `sk` is gone: nothing to tell, its fingerprint forgotten.
    Cleared {
        pk: String,
        sk: String,
    },
}

impl Report {
    /// The report of a notification about an outcome: `TellChanged` when this invocation `changed` something
    /// (its news must survive a failed publish), `Tell` otherwise.
    pub fn about(said: Said, changed: bool) -> Self {
        if changed { Report::TellChanged(said) } else { Report::Tell(said) }
    }

    /// The report of a path that found nothing left to do: `Recovered` with the news when it found the change
    /// made by an earlier delivery of this event, `Settle` otherwise.
    pub fn nothing_left(recovered: Option<Said>) -> Self {
        recovered.map_or(Report::Settle, Report::Recovered)
    }

    /// The notification this report tells, if any.
    pub fn said(&self) -> Option<&Said> {
        match self {
            Report::Silent | Report::Settle | Report::Cleared { .. } => None,
            Report::Tell(said)
            | Report::TellChanged(said)
            | Report::Owed(said)
            | Report::Recovered(said)
            | Report::Standing { said, .. } => Some(said),
        }
    }

    /// The steps carrying this report out, in order: the protocol as data (and the table test's subject).
    pub fn steps(&self) -> &'static [Step] {
        match self {
            Report::Silent => &[],
            Report::Settle => &[Step::Flush],
            Report::Tell(_) => &[Step::Send],
            Report::TellChanged(_) => &[Step::Send, Step::ParkIfUnsent],
            Report::Owed(_) => &[Step::Park],
            Report::Recovered(_) => &[Step::Flush, Step::SendUnlessFlushed],
            Report::Standing { .. } => &[Step::NoteStanding, Step::Send, Step::ForgetIfUnsent],
            Report::Cleared { .. } => &[Step::Forget],
        }
    }
}

/// One step of carrying a report out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send what earlier attempts of this event parked or claimed and left unsent.
    Flush,
    /// Claim, publish, mark sent, at every destination (a failed publish gives its claim back).
    Send,
    /// Only if `Flush` sent nothing: `Send`.
    SendUnlessFlushed,
    /// Keep the notification for the retry.
    Park,
    /// If `Send` failed: `Park`.
    ParkIfUnsent,
    /// Record the standing finding's fingerprint; stop here if it was told already (unchanged, within a week).
    NoteStanding,
    /// If `Send` failed: forget the fingerprint, so the retry tells.
    ForgetIfUnsent,
    /// Forget the fingerprint of a standing finding that is gone.
    Forget,
}

/// Whether a route takes a notification: its kinds, minimum severity and classes.
pub fn accepts(route: &Route, notification: &Notification) -> bool {
    (route.kinds.is_empty() || route.kinds.contains(&notification.kind))
        && route.min_severity.is_none_or(|min| notification.severity >= min)
        && (route.classes.is_empty() || notification.class.as_ref().is_some_and(|c| route.classes.contains(c)))
}

#[cfg(test)]
mod tests;
