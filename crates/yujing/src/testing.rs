//! Helpers shared by the crate's unit tests.

use yujing_ingest::Input;
use yujing_model::Position;

/// Lines `from..to` of the 2020 sample (`fixtures/sample/reports-2020.jsonl`) as inputs,
/// each at its line number.
pub fn sample_inputs(from: usize, to: usize) -> Vec<Input> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/sample/reports-2020.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    (text.lines().enumerate().skip(from).take(to - from))
        .map(|(i, l)| Input {
            bytes: l.as_bytes().to_vec(),
            position: Position::line("t", i as u64 + 1),
            truncated_from: None,
        })
        .collect()
}
