//! Sources of reports: read inputs, decode and validate them, and dead-letter what is bad.
//!
//! A source yields [`Input`]s — the raw bytes of one report and where they came from. The
//! [`Decoder`] turns each into a validated [`Report`] or a
//! [`DeadLetter`]; nothing is ever dropped silently.
//!
//! ```
//! use yujing_ingest::{Decoder, FileSourceConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("r.jsonl");
//! std::fs::write(&path, "not json\n").unwrap();
//! let mut source = FileSourceConfig { paths: vec![path], ..Default::default() }.build().unwrap();
//! let decoder = Decoder::default();
//! let batch = source.next_batch().unwrap().unwrap();
//! let decoded = decoder.decode(&batch[0]);
//! assert_eq!(decoded.unwrap_err().reason.as_str(), "malformed_json");
//! ```

pub mod file;
pub mod kafka;

pub use file::{FileSource, FileSourceConfig};
pub use kafka::{KafkaProducerConfig, KafkaSink, KafkaSource, KafkaSourceConfig};

use yujing_model::{DeadLetter, DecodeLimits, Position, Report, decode};

/// Errors of the sources.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A Kafka client could not be created or a Kafka operation failed.
    #[error("kafka: {what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// A message could not be delivered, even after retrying.
    #[error("kafka: delivery to {topic} failed after {attempts} attempt(s): {source}")]
    Delivery {
        /// The topic.
        topic: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last delivery error.
        source: rdkafka::error::KafkaError,
    },
    /// A Kafka setting or topic is not usable as given.
    #[error("kafka: {0}")]
    KafkaSetup(String),
}

impl Error {
    /// Whether a failed delivery can never succeed for this record as it is (too large,
    /// invalid), so retrying is pointless. Broker outages, missing topics and refused
    /// permissions are not: an operator can fix those, and the record can then go out.
    pub fn is_permanent(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode as C;
        match self {
            Error::Delivery { source, .. } => matches!(
                source.rdkafka_error_code(),
                Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidRecord | C::InvalidArgument)
            ),
            _ => false,
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The raw bytes of one report and where they came from.
#[derive(Debug, Clone)]
pub struct Input {
    /// The bytes (one JSONL line without its newline, or one message value).
    pub bytes: Vec<u8>,
    /// Where they came from.
    pub position: Position,
    /// The true length when `bytes` was cut short because the input was far too large.
    pub truncated_from: Option<usize>,
}

/// Decodes inputs into reports or dead letters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoder {
    /// The limits applied.
    pub limits: DecodeLimits,
}

impl Decoder {
    /// Decodes one input.
    pub fn decode(&self, input: &Input) -> std::result::Result<Report, Box<DeadLetter>> {
        let result = match input.truncated_from {
            Some(len) => Err(yujing_model::Rejection::new(
                yujing_model::Reason::TooLarge,
                format!(
                    "{len} bytes is over the limit of {} bytes (original cut to its first {} bytes here)",
                    self.limits.max_report_bytes,
                    input.bytes.len()
                ),
            )),
            None => decode(&input.bytes, &self.limits),
        };
        result.map_err(|rej| Box::new(DeadLetter::new(rej, input.position.clone(), &input.bytes)))
    }
}
