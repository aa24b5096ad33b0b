//! Dead letters as Kafka messages, for `yujing.reports.dlq`.
//!
//! The message value is the original input, byte for byte, so a fixed report can be
//! re-published as it is; the reason and the source position travel in headers. The DLQ
//! topic must accept messages as large as the source topic does (`max.message.bytes` on the
//! topic, `message.max.bytes` in the producer's `extra`), or a too-large input cannot be
//! dead-lettered and its delivery error is returned instead.

use yujing_model::DeadLetter;

/// The dead-letter topic by default.
pub const DEFAULT_DLQ_TOPIC: &str = "yujing.reports.dlq";

/// The header names of a dead letter.
pub mod headers {
    /// The reason code, e.g. `malformed_json`.
    pub const REASON: &str = "yujing.reason";
    /// What exactly is wrong, in words.
    pub const DETAIL: &str = "yujing.detail";
    /// The source: the topic for Kafka (without the `kafka:` prefix), else the file.
    pub const SOURCE_TOPIC: &str = "yujing.source.topic";
    /// The source partition, in decimal (Kafka sources only).
    pub const SOURCE_PARTITION: &str = "yujing.source.partition";
    /// The source offset, in decimal (Kafka sources only).
    pub const SOURCE_OFFSET: &str = "yujing.source.offset";
    /// The source line, in decimal (file sources only).
    pub const SOURCE_LINE: &str = "yujing.source.line";
}

/// One message to produce, with everything owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The key; empty for none.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The partition, or `None` to let the partitioner choose by key.
    pub partition: Option<i32>,
}

impl Record {
    /// The headers as borrowed pairs, as [`KafkaSink::send`](super::KafkaSink::send) takes them.
    pub fn header_refs(&self) -> Vec<(&str, &[u8])> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect()
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
}

/// The DLQ message for `dead`, whose input was `original`: value = the original bytes;
/// headers = reason, detail and source position ([`headers`]); key = the source position as
/// `TOPIC/PARTITION/OFFSET` (or `FILE:LINE`), so redeliveries of one bad message share a key.
///
/// ```
/// use yujing_ingest::kafka::{dead_letter_record, headers};
/// use yujing_ingest::{Decoder, Input};
/// use yujing_model::Position;
/// let input = Input {
///     bytes: b"{oops".to_vec(),
///     position: Position { source: "kafka:yujing.reports".into(), line: None,
///                          partition: Some(2), offset: Some(41) },
///     truncated_from: None,
/// };
/// let dead = Decoder::default().decode(&input).unwrap_err();
/// let record = dead_letter_record(&dead, &input.bytes);
/// assert_eq!(record.key, "yujing.reports/2/41");
/// assert_eq!(record.value, b"{oops");
/// assert_eq!(record.header(headers::REASON), Some(&b"malformed_json"[..]));
/// ```
pub fn dead_letter_record(dead: &DeadLetter, original: &[u8]) -> Record {
    let pos = &dead.position;
    let source = pos.source.strip_prefix("kafka:").unwrap_or(&pos.source);
    let mut hdrs: Vec<(String, Vec<u8>)> = vec![
        (headers::REASON.into(), dead.reason.as_str().into()),
        (headers::DETAIL.into(), dead.detail.clone().into_bytes()),
        (headers::SOURCE_TOPIC.into(), source.into()),
    ];
    let key = match (pos.partition, pos.offset, pos.line) {
        (Some(p), Some(o), _) => {
            hdrs.push((headers::SOURCE_PARTITION.into(), p.to_string().into_bytes()));
            hdrs.push((headers::SOURCE_OFFSET.into(), o.to_string().into_bytes()));
            format!("{source}/{p}/{o}")
        }
        (_, _, Some(line)) => {
            hdrs.push((headers::SOURCE_LINE.into(), line.to_string().into_bytes()));
            format!("{source}:{line}")
        }
        _ => source.to_owned(),
    };
    Record { key, value: original.to_vec(), headers: hdrs, partition: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decoder, Input};
    use yujing_model::Position;

    #[test]
    fn non_utf8_and_file_inputs_keep_their_bytes_and_position() {
        let input =
            Input { bytes: vec![0xff, 0xfe, b'{'], position: Position::line("in.jsonl", 7), truncated_from: None };
        let dead = Decoder::default().decode(&input).unwrap_err();
        let r = dead_letter_record(&dead, &input.bytes);
        assert_eq!(r.value, vec![0xff, 0xfe, b'{']);
        assert_eq!(r.key, "in.jsonl:7");
        assert_eq!(r.header(headers::SOURCE_LINE), Some(&b"7"[..]));
        assert_eq!(r.header(headers::SOURCE_TOPIC), Some(&b"in.jsonl"[..]));
        assert_eq!(r.header(headers::SOURCE_OFFSET), None);
        assert!(!r.header(headers::DETAIL).unwrap().is_empty());
        assert_eq!(r.header_refs().len(), 4);
    }
}
