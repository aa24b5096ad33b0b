//! The JSONL file source: one report per line, files read in the order given.

use crate::{Error, Input, Result};
use serde::Deserialize;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;
use yujing_model::Position;

/// Configuration of the JSONL file source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Files to read, in order.
    pub paths: Vec<PathBuf>,
    /// Lines per batch handed downstream.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Lines longer than this are kept only up to this many bytes in their dead letter.
    #[serde(default = "default_keep")]
    pub max_kept_bytes: usize,
}

fn default_batch() -> usize {
    4096
}

fn default_keep() -> usize {
    4 * 1024 * 1024
}

impl Default for FileSourceConfig {
    fn default() -> Self {
        FileSourceConfig { paths: Vec::new(), batch_size: default_batch(), max_kept_bytes: default_keep() }
    }
}

impl FileSourceConfig {
    /// Opens the source. Fails when a file cannot be opened, before anything is read.
    pub fn build(self) -> Result<FileSource> {
        let mut total_bytes = 0;
        for p in &self.paths {
            let meta = std::fs::metadata(p).map_err(|source| Error::Read { path: p.clone(), source })?;
            total_bytes += meta.len();
        }
        Ok(FileSource { config: self, next_file: 0, current: None, total_bytes, read_bytes: 0 })
    }
}

struct OpenFile {
    /// Shared by the positions of every line read.
    name: Arc<str>,
    path: PathBuf,
    reader: BufReader<File>,
    line: u64,
}

/// Reads JSONL files line by line, in batches. Blank lines are skipped; a line that is
/// not UTF-8 or too long is still handed on (to be dead-lettered), never dropped.
pub struct FileSource {
    config: FileSourceConfig,
    next_file: usize,
    current: Option<OpenFile>,
    total_bytes: u64,
    read_bytes: u64,
}

impl FileSource {
    /// The total size of the files, for progress.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Bytes read so far.
    pub fn read_bytes(&self) -> u64 {
        self.read_bytes
    }

    /// The next batch of inputs, or `None` at the end of the last file.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Input>>> {
        let mut batch = Vec::with_capacity(self.config.batch_size.min(65536));
        while batch.len() < self.config.batch_size.max(1) {
            if self.current.is_none() {
                let Some(path) = self.config.paths.get(self.next_file).cloned() else {
                    break;
                };
                self.next_file += 1;
                let file = File::open(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
                let name: Arc<str> = path.display().to_string().into();
                self.current = Some(OpenFile { name, path, reader: BufReader::with_capacity(1 << 16, file), line: 0 });
            }
            let keep = self.config.max_kept_bytes;
            let f = self.current.as_mut().expect("a file is open");
            match read_line(&mut f.reader, keep).map_err(|source| Error::Read { path: f.path.clone(), source })? {
                None => self.current = None,
                Some((bytes, len)) => {
                    f.line += 1;
                    self.read_bytes += len as u64 + 1;
                    let mut bytes = bytes;
                    let truncated_from = (len > bytes.len()).then_some(len);
                    if truncated_from.is_none() {
                        bytes.truncate(trim_len(&bytes));
                        if bytes.is_empty() {
                            continue;
                        }
                    }
                    batch.push(Input { bytes, position: Position::line(f.name.clone(), f.line), truncated_from });
                }
            }
        }
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }
}

/// The length without trailing `\r` and whitespace.
fn trim_len(b: &[u8]) -> usize {
    b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(0, |i| i + 1)
}

/// Reads one line (without its newline), keeping at most `keep` bytes. Returns the kept bytes
/// and the line's full length, or `None` at end of file.
fn read_line(r: &mut impl BufRead, keep: usize) -> std::io::Result<Option<(Vec<u8>, usize)>> {
    let mut out = Vec::new();
    let mut len = 0usize;
    let mut any = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(any.then_some((out, len)));
        }
        any = true;
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = keep.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        len += chunk.len();
        let consumed = done.unwrap_or(buf.len());
        r.consume(consumed);
        if done.is_some() {
            return Ok(Some((out, len)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decoder;
    use std::io::Write;
    use yujing_model::Reason;

    fn source(content: &[u8], batch: usize, keep: usize) -> (tempfile::TempDir, FileSource) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        File::create(&path).unwrap().write_all(content).unwrap();
        let cfg = FileSourceConfig { paths: vec![path], batch_size: batch, max_kept_bytes: keep };
        (dir, cfg.build().unwrap())
    }

    fn drain(s: &mut FileSource) -> Vec<Input> {
        let mut all = Vec::new();
        while let Some(b) = s.next_batch().unwrap() {
            assert!(b.len() <= 2);
            all.extend(b);
        }
        all
    }

    #[test]
    fn reads_every_line_with_its_number_and_skips_blank_ones() {
        let (_d, mut s) = source(b"a\r\n\n  \nb\n\xff\xfe\nlast-without-newline", 2, 1024);
        let all = drain(&mut s);
        let got: Vec<_> = all.iter().map(|i| (i.bytes.clone(), i.position.line.unwrap())).collect();
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), 1),
                (b"b".to_vec(), 4),
                (b"\xff\xfe".to_vec(), 5),
                (b"last-without-newline".to_vec(), 6)
            ]
        );
        assert_eq!(s.read_bytes(), s.total_bytes() + 1);
        let dl = Decoder::default().decode(&all[2]).unwrap_err();
        assert_eq!(dl.reason, Reason::MalformedJson);
        assert_eq!(dl.original_hex.as_deref(), Some("fffe"));
    }

    #[test]
    fn a_huge_line_is_cut_and_dead_lettered_as_too_large() {
        let mut content = vec![b'x'; 5000];
        content.extend_from_slice(b"\n{}\n");
        let (_d, mut s) = source(&content, 2, 100);
        let all = drain(&mut s);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].bytes.len(), 100);
        assert_eq!(all[0].truncated_from, Some(5000));
        let dl = Decoder::default().decode(&all[0]).unwrap_err();
        assert_eq!(dl.reason, Reason::TooLarge);
        assert_eq!(Decoder::default().decode(&all[1]).unwrap_err().reason, Reason::SchemaViolation);
    }

    #[test]
    fn a_missing_file_is_an_error_before_reading() {
        let cfg = FileSourceConfig { paths: vec!["/nonexistent/x.jsonl".into()], ..Default::default() };
        assert!(matches!(cfg.build(), Err(Error::Read { .. })));
    }
}
