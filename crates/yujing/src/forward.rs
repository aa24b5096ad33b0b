//! People's actions on alerts another instance holds (DESIGN §8).
//!
//! An instance serves its peers' alerts too ([`crate::peers`]), but only the instance whose
//! engine holds an alert may change it. An action on a peer's alert is therefore published
//! to `yujing.alert-actions`, keyed by the alert's district (so all of a district's actions
//! stay in order), and the API answers 202 Accepted. Every instance reads that topic in full
//! with the peers' topics; the one holding the alert applies the action through the same
//! path as its own API's actions (the alert book, then the action, the alert and its audit
//! record in one store transaction, then `yujing.alerts`), under the person's name and at
//! the time they acted. It is applied once: an action of the same person at the same time
//! already in the book is skipped, so reading the topic again after a restart changes
//! nothing.

use anyhow::Result;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::oneshot;
use yujing_ingest::kafka::{KafkaSink, Record};
use yujing_model::Alert;
use yujing_serve::{ActionError, AlertAction};

/// One action forwarded to the instance that holds the alert (the value of a record on
/// `yujing.alert-actions`; the key is `district_code`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedAction {
    /// The alert.
    pub alert_id: String,
    /// The alert's district (the record's key).
    pub district_code: String,
    /// What the person did.
    pub action: AlertAction,
    /// Who: the token's name on the instance that took the request.
    pub by: String,
    /// The token's role there.
    pub role: String,
    /// When the person acted (the action is recorded at this time).
    pub at: DateTime<FixedOffset>,
}

impl ForwardedAction {
    /// The record for the alert-actions topic.
    pub fn record(&self) -> Result<Record> {
        Ok(Record {
            key: self.district_code.clone(),
            value: serde_json::to_vec(self)?,
            headers: Vec::new(),
            partition: None,
        })
    }
}

/// Publishes actions on peers' alerts to the alert-actions topic.
#[derive(Clone)]
pub struct Forwarder {
    sink: Arc<KafkaSink>,
    topic: String,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder publishing to `topic` through `sink`.
    pub fn new(sink: KafkaSink, topic: String) -> Forwarder {
        Forwarder { sink: Arc::new(sink), topic }
    }

    /// Publishes the action (on a task of its own) and then replies: [`ActionError::Forwarded`]
    /// once the broker has it, [`ActionError::Unavailable`] when it could not be delivered.
    pub fn forward(&self, action: ForwardedAction, reply: oneshot::Sender<Result<Alert, ActionError>>) {
        let (sink, topic) = (self.sink.clone(), self.topic.clone());
        tokio::spawn(async move {
            let outcome = match action.record() {
                Ok(record) => sink.send_record(&topic, &record).await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            let answer = match outcome {
                Ok(_) => {
                    tracing::info!(alert = %action.alert_id, district = %action.district_code, by = %action.by,
                        action = action.action.verb(), "alert action forwarded to the instance holding the alert");
                    Err(ActionError::Forwarded(action.district_code.clone()))
                }
                Err(e) => {
                    tracing::warn!(alert = %action.alert_id, error = %format!("{e:#}"), "an alert action could not be forwarded");
                    Err(ActionError::Unavailable(
                        "the action could not be handed to the instance holding the alert; try again".into(),
                    ))
                }
            };
            let _ = reply.send(answer);
        });
    }
}
