//! Publishing reports: keyed by institution, partitioned by district, optionally rate
//! limited (`yujing produce`).

use super::sink::KafkaSink;
use crate::{Error, Result};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use std::borrow::Cow;
use std::time::Duration;
use tokio::time::Instant;

/// The most messages awaiting delivery at once in [`produce_reports`].
const IN_FLIGHT: usize = 10_000;

/// The 32-bit FNV-1a hash: stable across builds, platforms and languages.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The partition of a district's reports: FNV-1a of the district code modulo the topic's
/// partition count, so all of a district's reports land on one partition (DESIGN §8).
///
/// ```
/// use yujing_ingest::kafka::district_partition;
/// assert_eq!(district_partition("500103", 3), district_partition("500103", 3));
/// assert!((0..3).contains(&district_partition("500243", 3)));
/// ```
pub fn district_partition(district_code: &str, partitions: i32) -> i32 {
    let n = u32::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(fnv1a32(district_code.as_bytes()) % n).unwrap_or(0)
}

/// The two fields the producer needs, read leniently.
#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow, default)]
    institution_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    district_code: Option<Cow<'a, str>>,
}

/// The key and partition of one line: the institution and its district's partition, or
/// no key and the partitioner's choice for a line that is not a report.
fn route(line: &[u8], partitions: i32) -> (String, Option<i32>) {
    match serde_json::from_slice::<Keys<'_>>(line) {
        Ok(k) => (
            k.institution_id.map(Cow::into_owned).unwrap_or_default(),
            k.district_code.map(|d| district_partition(&d, partitions)),
        ),
        Err(_) => (String::new(), None),
    }
}

/// A token bucket: `rate` tokens a second, holding at most a tenth of a second's worth.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `rate` tokens a second (`rate` ≥ 1).
    pub fn new(rate: u32, now: Instant) -> TokenBucket {
        let rate = f64::from(rate.max(1));
        let capacity = (rate / 10.0).max(1.0);
        TokenBucket { rate, capacity, tokens: capacity, last: now }
    }

    /// Takes one token at `now` and returns how long to wait before using it (zero when
    /// one was available). Tokens taken ahead are owed, so the long-run rate holds.
    pub fn take(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }
}

/// Publishes `lines` (JSONL reports) to `topic`: key = the report's `institution_id`,
/// partition = [`district_partition`] of its `district_code` over the topic's partition
/// count. A line that is not a report is still published, without a key, for the consumer
/// to dead-letter. With `rate`, at most that many messages a second. `progress` is called
/// with the number delivered so far after each delivery. Returns how many were delivered.
///
/// Up to 10 000 messages are in flight at once; each is retried by the sink. On the first
/// message that cannot be delivered, no further line is read, those in flight are awaited,
/// and that error is returned. (A message retried by the sink may land after later ones of
/// its partition; the ledger's revision rule does not depend on arrival order.)
pub async fn produce_reports(
    sink: &KafkaSink,
    topic: &str,
    lines: impl Iterator<Item = Vec<u8>>,
    rate: Option<u32>,
    progress: impl Fn(u64),
) -> Result<u64> {
    let partitions = sink.partition_count(topic).await?;
    let mut bucket = rate.map(|r| TokenBucket::new(r, Instant::now()));
    let mut in_flight = FuturesUnordered::new();
    let mut delivered = 0u64;
    let mut failure: Option<Error> = None;
    let mut settle = |r: Result<()>, failure: &mut Option<Error>| match r {
        Ok(()) => {
            delivered += 1;
            progress(delivered);
        }
        Err(e) => {
            if failure.is_none() {
                *failure = Some(e);
            }
        }
    };
    let mut lines = lines.fuse();
    loop {
        while failure.is_none() && in_flight.len() < IN_FLIGHT {
            let Some(line) = lines.next() else { break };
            if let Some(b) = bucket.as_mut() {
                let wait = b.take(Instant::now());
                if !wait.is_zero() {
                    // Keep the deliveries moving while waiting for the token.
                    let sleep = tokio::time::sleep(wait);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            () = &mut sleep => break,
                            Some(r) = in_flight.next(), if !in_flight.is_empty() => {
                                settle(r, &mut failure);
                            }
                        }
                    }
                }
            }
            let (key, partition) = route(&line, partitions);
            in_flight.push(async move { sink.send_to(topic, partition, &key, &line, &[]).await.map(|_| ()) });
            // Poll once so the new message is handed to the client now; settle whatever
            // finished meanwhile.
            while let Some(Some(r)) = in_flight.next().now_or_never() {
                settle(r, &mut failure);
            }
        }
        match in_flight.next().await {
            Some(r) => settle(r, &mut failure),
            None => break,
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(delivered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn districts_spread_over_partitions_and_stay_put() {
        let codes: Vec<String> = yujing_model::DISTRICTS.iter().map(|d| d.code.to_string()).collect();
        let mut used = std::collections::BTreeSet::new();
        for c in &codes {
            let p = district_partition(c, 3);
            assert_eq!(p, district_partition(c, 3));
            used.insert(p);
        }
        assert_eq!(used.len(), 3, "38 districts use all 3 partitions");
        assert_eq!(district_partition("500103", 0), 0);
    }

    #[test]
    fn lines_are_routed_by_institution_and_district() {
        let line = br#"{"institution_id":"CQ-MLC-0042","district_code":"500103","x":[1,{"y":2}]}"#;
        assert_eq!(route(line, 3), ("CQ-MLC-0042".into(), Some(district_partition("500103", 3))));
        assert_eq!(route(b"{not json", 3), (String::new(), None));
        assert_eq!(route(b"[1,2]", 3), (String::new(), None));
        assert_eq!(route(br#"{"a":1}"#, 3), (String::new(), None));
    }

    #[test]
    fn the_bucket_holds_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, t0);
        // A burst of a tenth of a second's worth, then one token every 10 ms.
        let waits: Vec<_> = (0..12).map(|_| b.take(t0)).collect();
        assert!(waits[..10].iter().all(|w| w.is_zero()));
        assert_eq!(waits[10].as_micros(), 10_000);
        assert_eq!(waits[11].as_micros(), 20_000);
        // A second later the debt is paid and the bucket is full again.
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.take(t1).is_zero());
        let mut total = Duration::ZERO;
        for _ in 0..1000 {
            total = b.take(t1);
        }
        let secs = total.as_secs_f64();
        assert!((9.8..10.0).contains(&secs), "1000 tokens at 100/s: {secs}");
    }
}
