//! The store as an outbox: dead letters and alert transitions are committed with their
//! batch, then delivered to Kafka and marked; what can never be delivered is marked so and
//! kept, so nothing is lost and one bad record cannot hold up the others.

use super::{Store, sql};
use crate::Result;
use rusqlite::params;

/// A dead letter waiting in the store for the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeadLetter {
    /// Its sequence number (assigned by the store; 0 before it is written).
    pub seq: i64,
    /// The dead letter v1 as JSON.
    pub record: String,
    /// The original input, byte for byte.
    pub original: Vec<u8>,
}

/// What became of a record of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Not yet delivered.
    Pending = 0,
    /// Delivered.
    Published = 1,
    /// Refused for good (say, larger than the topic accepts): kept in the store, not retried.
    Undeliverable = 2,
}

impl Store {
    /// Dead letters not yet delivered after `after_seq` (0: all of them), oldest first, at
    /// most `limit`.
    pub fn pending_dead_letters(&self, after_seq: i64, limit: usize) -> Result<Vec<StoredDeadLetter>> {
        let e = |err| sql(err, &self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, record, original FROM dead_letters WHERE state = 0 AND seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(e)?;
        let rows = stmt
            .query_map(params![after_seq, limit as i64], |r| {
                Ok(StoredDeadLetter { seq: r.get(0)?, record: r.get(1)?, original: r.get(2)? })
            })
            .map_err(e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Records what became of the dead letters `seqs`.
    pub fn mark_dead_letters(&mut self, seqs: &[i64], delivery: Delivery) -> Result<()> {
        self.mark("dead_letters", "state", seqs, delivery)
    }

    /// Records what became of the audit records `seqs` (transitions on the alerts topic).
    pub fn mark_audit(&mut self, seqs: &[i64], delivery: Delivery) -> Result<()> {
        // The records themselves stay as written: a mark moves a record between the queue
        // of those waiting and the list of those refused for good.
        let path = self.path.clone();
        let e = |err| sql(err, &path);
        const QUEUE: &str = "INSERT OR IGNORE INTO audit_pending (seq) VALUES (?1)";
        const UNQUEUE: &str = "DELETE FROM audit_pending WHERE seq = ?1";
        const REFUSE: &str = "INSERT OR IGNORE INTO audit_undeliverable (seq) VALUES (?1)";
        const UNREFUSE: &str = "DELETE FROM audit_undeliverable WHERE seq = ?1";
        let (queue, refuse) = match delivery {
            Delivery::Pending => (QUEUE, UNREFUSE),
            Delivery::Published => (UNQUEUE, UNREFUSE),
            Delivery::Undeliverable => (UNQUEUE, REFUSE),
        };
        let tx = self.conn.transaction().map_err(e)?;
        {
            let (mut queue, mut refuse) = (tx.prepare_cached(queue).map_err(e)?, tx.prepare_cached(refuse).map_err(e)?);
            for seq in seqs {
                queue.execute([seq]).map_err(e)?;
                refuse.execute([seq]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// The number of audit records in each [`Delivery`] state: (pending, published,
    /// undeliverable).
    pub fn audit_counts(&self) -> Result<(i64, i64, i64)> {
        let e = |err| sql(err, &self.path);
        let count = |table: &str| -> Result<i64> {
            self.conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).map_err(e)
        };
        let (all, pending, refused) = (count("audit")?, count("audit_pending")?, count("audit_undeliverable")?);
        Ok((pending, all - pending - refused, refused))
    }

    /// The number of dead letters in each [`Delivery`] state: (pending, published, undeliverable).
    pub fn dead_letter_counts(&self) -> Result<(i64, i64, i64)> {
        let e = |err| sql(err, &self.path);
        let mut counts = [0i64; 3];
        let mut stmt = self.conn.prepare("SELECT state, count(*) FROM dead_letters GROUP BY state").map_err(e)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).map_err(e)?;
        for row in rows {
            let (state, n) = row.map_err(e)?;
            if let Some(c) = usize::try_from(state).ok().and_then(|s| counts.get_mut(s)) {
                *c = n;
            }
        }
        Ok((counts[0], counts[1], counts[2]))
    }

    fn mark(&mut self, table: &str, column: &str, seqs: &[i64], delivery: Delivery) -> Result<()> {
        let path = self.path.clone();
        let e = |err| sql(err, &path);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut stmt = tx.prepare(&format!("UPDATE {table} SET {column} = ?1 WHERE seq = ?2")).map_err(e)?;
            for seq in seqs {
                stmt.execute(params![delivery as i64, seq]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::{BatchWrite, StoreConfig};

    fn letter(n: u8) -> StoredDeadLetter {
        StoredDeadLetter { seq: 0, record: format!("{{\"n\":{n}}}"), original: vec![n, 0xff] }
    }

    #[test]
    fn dead_letters_wait_in_the_store_until_marked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StoreConfig::at(dir.path().join("s.db")).build().unwrap();
        let batch = BatchWrite { dead_letters: vec![letter(1), letter(2), letter(3)], ..Default::default() };
        s.commit(&batch).unwrap();
        let pending = s.pending_dead_letters(0, 10).unwrap();
        assert_eq!(pending.len(), 3);
        assert_eq!(pending[1].original, vec![2, 0xff], "the original bytes come back as they were");
        let after = s.pending_dead_letters(pending[0].seq, 10).unwrap();
        assert_eq!(after.iter().map(|d| d.seq).collect::<Vec<_>>(), [pending[1].seq, pending[2].seq]);
        assert_eq!(s.pending_dead_letters(0, 2).unwrap().len(), 2, "at most the limit");
        s.mark_dead_letters(&[pending[0].seq], Delivery::Published).unwrap();
        s.mark_dead_letters(&[pending[1].seq], Delivery::Undeliverable).unwrap();
        let left = s.pending_dead_letters(0, 10).unwrap();
        assert_eq!(left.iter().map(|d| d.record.as_str()).collect::<Vec<_>>(), ["{\"n\":3}"]);
        assert_eq!(s.dead_letter_counts().unwrap(), (1, 1, 1));
        drop(s);
        // Still there after a reopen.
        let s = StoreConfig::at(dir.path().join("s.db")).build().unwrap();
        assert_eq!(s.pending_dead_letters(0, 10).unwrap().len(), 1);
    }
}
