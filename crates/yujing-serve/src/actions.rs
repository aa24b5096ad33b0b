//! People's actions on alerts, sent from the API to the pipeline task that owns the alert
//! book. The pipeline applies each request between batches, makes it durable, publishes a
//! new snapshot and then replies, so a client reads its own write.

use crate::auth::Caller;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use yujing_model::Alert;

/// What a person does to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum AlertAction {
    /// Takes the alert.
    Acknowledge,
    /// Gives it to someone.
    Assign {
        /// To whom.
        assignee: String,
    },
    /// Closes it, saying why.
    Resolve {
        /// Why (required).
        note: String,
    },
}

impl AlertAction {
    /// `acknowledge`, `assign` or `resolve`.
    pub fn verb(&self) -> &'static str {
        match self {
            AlertAction::Acknowledge => "acknowledge",
            AlertAction::Assign { .. } => "assign",
            AlertAction::Resolve { .. } => "resolve",
        }
    }

    /// The assignee or the note.
    pub fn detail(&self) -> Option<&str> {
        match self {
            AlertAction::Acknowledge => None,
            AlertAction::Assign { assignee } => Some(assignee),
            AlertAction::Resolve { note } => Some(note),
        }
    }
}

/// Why the pipeline refused an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// No such alert.
    #[error("no alert {0}")]
    NotFound(String),
    /// The alert's state does not allow it (say, acknowledging a resolved alert).
    #[error("{0}")]
    Conflict(String),
    /// The request says something invalid (say, a blank note).
    #[error("{0}")]
    Invalid(String),
    /// The pipeline could not apply it now (say, the store is unavailable).
    #[error("{0}")]
    Unavailable(String),
    /// Not applied here: another instance holds the alert, and the action was handed to it
    /// (on `yujing.alert-actions`, keyed by this district); it shows once that instance has
    /// applied and published it. The API answers 202 Accepted.
    #[error("forwarded to the instance holding district {0}")]
    Forwarded(String),
}

/// One action for the pipeline to apply, with where to send the outcome.
#[derive(Debug)]
pub struct ActionRequest {
    /// The alert.
    pub alert_id: String,
    /// Who asks (already authorised for this alert).
    pub caller: Caller,
    /// What to do.
    pub action: AlertAction,
    /// The alert after the action, or why not.
    pub reply: oneshot::Sender<Result<Alert, ActionError>>,
}

/// The API's end of the action channel.
pub type ActionSender = mpsc::Sender<ActionRequest>;

/// The pipeline's end of the action channel.
pub type ActionReceiver = mpsc::Receiver<ActionRequest>;

/// A bounded channel of action requests.
pub fn action_channel(capacity: usize) -> (ActionSender, ActionReceiver) {
    mpsc::channel(capacity.max(1))
}
