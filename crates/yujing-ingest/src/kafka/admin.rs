//! Topic administration: partition counts from metadata, topic creation.

use super::{client_config, kafka_err};
use crate::{Error, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::FromClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a metadata or admin request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The number of partitions of `topic`, from the brokers' metadata. Blocks for up to
/// 10 s; from async code, prefer [`KafkaSink::partition_count`](super::KafkaSink::partition_count)
/// or wrap it in `spawn_blocking`. A missing topic is an error (it is not created).
pub fn topic_partitions(brokers: &str, topic: &str) -> Result<i32> {
    let config = client_config(brokers, &[], &BTreeMap::new(), &[])?;
    let client: BaseConsumer = BaseConsumer::from_config(&config).map_err(kafka_err("create a metadata client"))?;
    partitions_from(client.client(), topic, TIMEOUT)
}

/// The partition count of `topic` as seen by `client`.
pub(crate) fn partitions_from<C: ClientContext>(client: &Client<C>, topic: &str, timeout: Duration) -> Result<i32> {
    let metadata =
        client.fetch_metadata(Some(topic), timeout).map_err(kafka_err(format!("fetch the metadata of {topic}")))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(Error::KafkaSetup(format!("topic {topic} is not in the brokers' metadata")));
    };
    if let Some(err) = t.error() {
        return Err(Error::KafkaSetup(format!("topic {topic}: {}", RDKafkaErrorCode::from(err))));
    }
    match i32::try_from(t.partitions().len()) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::KafkaSetup(format!("topic {topic} has no partitions"))),
    }
}

/// Creates the topics that do not exist yet, each `(name, partitions)`, with the brokers'
/// default replication factor and settings. Topics that already exist are left as they
/// are (a different partition count is logged, not changed).
pub async fn ensure_topics(brokers: &str, topics: &[(&str, i32)]) -> Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    let config = client_config(brokers, &[], &BTreeMap::new(), &[])?;
    let admin: AdminClient<DefaultClientContext> =
        AdminClient::from_config(&config).map_err(kafka_err("create an admin client"))?;
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(-1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT * 2));
    let results = admin.create_topics(&new, &options).await.map_err(kafka_err("create topics"))?;
    let mut failed = Vec::new();
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "topic exists");
            }
            Err((name, code)) => failed.push(format!("{name}: {code}")),
        }
    }
    if !failed.is_empty() {
        return Err(Error::KafkaSetup(format!(
            "cannot create topics ({}); create them with the broker's own tools",
            failed.join("; ")
        )));
    }
    for (name, partitions) in topics {
        let client = admin.inner();
        match partitions_from(client, name, TIMEOUT) {
            Ok(n) if n != *partitions => tracing::warn!(
                topic = name,
                has = n,
                wanted = partitions,
                "topic exists with another partition count; left as it is"
            ),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
