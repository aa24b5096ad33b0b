//! Dead letters: inputs that could not be accepted, kept with the reason and where they came from.

use crate::report::{Reason, Rejection};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Where an input came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The file path or `kafka:TOPIC` (shared by every input read from it).
    pub source: Arc<str>,
    /// 1-based line number, for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Partition, for Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Offset, for Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

impl Position {
    /// A line of a file.
    pub fn line(source: impl Into<Arc<str>>, line: u64) -> Position {
        Position { source: source.into(), line: Some(line), partition: None, offset: None }
    }
}

/// A rejected input with its original bytes, its position and the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The reason code.
    pub reason: Reason,
    /// What exactly is wrong.
    pub detail: String,
    /// Where it came from.
    pub position: Position,
    /// The original input as text (lossy when it was not UTF-8; see `original_hex`).
    pub original: String,
    /// The original bytes in hex, present only when they were not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_hex: Option<String>,
}

impl DeadLetter {
    /// A dead letter for `bytes` found at `position`.
    pub fn new(rejection: Rejection, position: Position, bytes: &[u8]) -> DeadLetter {
        let (original, original_hex) = match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_owned(), None),
            Err(_) => {
                let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
                (String::from_utf8_lossy(bytes).into_owned(), Some(hex))
            }
        };
        DeadLetter { reason: rejection.reason, detail: rejection.detail, position, original, original_hex }
    }
}
