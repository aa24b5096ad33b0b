//! The merge of the peers' view into a snapshot: what is added, what wins, what is skipped.

use super::*;
use crate::config::Config;
use crate::engine::Engine;
use crate::outbox::{all_periods, score_records};
use crate::serve::snapshot_parts;
use yujing_alert::RulePack;
use yujing_ingest::Input;
use yujing_model::Position;

/// The first `n` reports of the 2020 sample whose district `keep` accepts.
fn lines(n: usize, keep: impl Fn(u32) -> bool) -> Vec<Input> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/sample/reports-2020.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take(n)
        // The sample's poison lines (not JSON, no district) are nobody's.
        .filter(|l| {
            let v: Option<serde_json::Value> = serde_json::from_str(l).ok();
            v.and_then(|v| v["district_code"].as_str()?.parse().ok()).is_some_and(&keep)
        })
        .enumerate()
        .map(|(i, l)| Input {
            bytes: l.as_bytes().to_vec(),
            position: Position::line("t", i as u64 + 1),
            truncated_from: None,
        })
        .collect()
}

/// An engine over the sample's districts that `keep` accepts: one instance's share.
fn instance(config: &Config, keep: impl Fn(u32) -> bool) -> Engine {
    let mut e = Engine::new(config, RulePack::default_pack());
    e.process(&lines(1500, keep)).unwrap();
    e
}

/// A peer state fed with what `engines` publish on the scores and alerts topics.
fn published(engines: &[&Engine]) -> PeerState {
    let mut state = PeerState::default();
    for e in engines {
        for r in score_records(e, &all_periods(e)) {
            state.apply(Table::Scores, Some(r.key.as_bytes()), Some(&r.value)).unwrap();
        }
        for a in e.alerts() {
            state.apply(Table::Alerts, Some(a.id.as_bytes()), Some(&serde_json::to_vec(a).unwrap())).unwrap();
        }
    }
    state
}

fn even(code: u32) -> bool {
    code.is_multiple_of(2)
}

fn odd(code: u32) -> bool {
    !code.is_multiple_of(2)
}

/// A record as read: its topic, key and value.
type Raw<'a> = (Table, Option<&'a [u8]>, Option<&'a [u8]>);

fn districts(parts: &SnapshotParts) -> std::collections::BTreeSet<String> {
    parts.aggregates.iter().filter(|a| a.level == Level::District).map(|a| a.entity_id.clone()).collect()
}

#[test]
fn a_peers_district_scores_and_alerts_are_added_and_marked() {
    let config = Config::load(None).unwrap();
    let (a, b) = (instance(&config, even), instance(&config, odd));
    let mut parts = snapshot_parts(&a, &config, &[]);
    let own = districts(&parts);
    let peers = published(&[&b]);
    assert!(peers.contributes(&parts));
    peers.merge(&mut parts, &config.score.grades);
    let all = districts(&parts);
    assert!(own.iter().all(|d| even(d.parse().unwrap())));
    assert!(all.len() > own.len() && all.iter().any(|d| odd(d.parse().unwrap())), "{all:?}");
    for x in parts.aggregates.iter().filter(|x| x.level == Level::District) {
        let marked = parts.peer_aggregates.contains(&(x.level, x.entity_id.clone(), x.sector, x.period));
        assert_eq!(marked, !own.contains(&x.entity_id), "{} {} {}", x.entity_id, x.sector, x.period);
    }
    let peer_alerts: Vec<&Alert> =
        parts.alerts.iter().map(|a| &**a).filter(|x| parts.peer_alerts.contains(&x.id)).collect();
    assert_eq!(peer_alerts.len(), b.alerts().count());
    assert!(!peer_alerts.is_empty(), "the odd districts raise alerts in the sample");
    assert!(peer_alerts.iter().all(|x| odd(x.district_code.parse().unwrap())));
}

#[test]
fn one_instance_reading_back_what_it_published_adds_nothing() {
    let config = Config::load(None).unwrap();
    let a = instance(&config, |_| true);
    let mut parts = snapshot_parts(&a, &config, &[]);
    let before = parts.clone();
    let own = published(&[&a]);
    assert!(!own.contributes(&parts));
    own.merge(&mut parts, &config.score.grades);
    assert_eq!((parts.aggregates, parts.alerts), (before.aggregates, before.alerts));
}

#[test]
fn the_engines_own_state_wins_over_a_peers_record_of_the_same_key() {
    let config = Config::load(None).unwrap();
    let a = instance(&config, even);
    let mut parts = snapshot_parts(&a, &config, &[]);
    let before = parts.clone();
    // A peer (say, this district's owner before a rebalance) published other figures for
    // this instance's district and an other state of one of its alerts.
    let mut state = PeerState::default();
    let mine = before.aggregates.iter().find(|x| x.level == Level::District).unwrap();
    let mut stale = mine.clone();
    stale.score = 99.0;
    state.apply(Table::Scores, Some(score_key(&stale).as_bytes()), Some(&serde_json::to_vec(&stale).unwrap())).unwrap();
    let mut alert = Alert::clone(&before.alerts[0]);
    alert.severity = yujing_model::Severity::Red;
    alert.state = AlertState::Resolved;
    state.apply(Table::Alerts, Some(alert.id.as_bytes()), Some(&serde_json::to_vec(&alert).unwrap())).unwrap();
    assert!(!state.contributes(&parts), "a peer's record of what the engine holds adds nothing");
    state.merge(&mut parts, &config.score.grades);
    assert_eq!(parts.aggregates, before.aggregates, "nothing of a peer replaces the engine's own");
    assert_eq!(parts.alerts, before.alerts);
    assert!(parts.peer_aggregates.is_empty() && parts.peer_alerts.is_empty());
}

#[test]
fn a_later_alert_record_replaces_the_earlier_and_a_superseded_or_deleted_one_is_not_shown() {
    let config = Config::load(None).unwrap();
    let b = instance(&config, odd);
    let mut alert = b.alerts().next().unwrap().clone();
    let mut state = PeerState::default();
    let put = |state: &mut PeerState, a: &Alert| {
        state.apply(Table::Alerts, Some(a.id.as_bytes()), Some(&serde_json::to_vec(a).unwrap())).unwrap();
    };
    alert.state = AlertState::Open;
    put(&mut state, &alert);
    alert.state = AlertState::Acknowledged;
    alert.assignee = Some("desk".into());
    put(&mut state, &alert);
    let shown = |state: &PeerState| {
        let mut parts = SnapshotParts::default();
        state.merge(&mut parts, &config.score.grades);
        parts.alerts
    };
    let now = shown(&state);
    assert_eq!(now.len(), 1);
    assert_eq!((now[0].state, now[0].assignee.as_deref()), (AlertState::Acknowledged, Some("desk")));
    alert.state = AlertState::Superseded;
    put(&mut state, &alert);
    assert!(shown(&state).is_empty(), "a superseded alert is not among the current alerts");
    alert.state = AlertState::Open;
    put(&mut state, &alert);
    state.apply(Table::Alerts, Some(alert.id.as_bytes()), None).unwrap();
    assert!(shown(&state).is_empty(), "a tombstone deletes the alert");
    assert_eq!(state.counters(), PeerCounters { applied: 5, malformed: 0 });
}

#[test]
fn a_malformed_peer_record_is_counted_and_skipped_and_the_next_is_applied() {
    let config = Config::load(None).unwrap();
    let b = instance(&config, odd);
    let records = score_records(&b, &all_periods(&b));
    let good = &records[0];
    let region = b.aggregates().find(|x| x.level == Level::Region).unwrap();
    let (region_key, region_value) = (score_key(region), serde_json::to_vec(region).unwrap());
    let mut state = PeerState::default();
    let bad: [Raw<'_>; 6] = [
        (Table::Scores, Some(good.key.as_bytes()), Some(b"not json")),
        (Table::Scores, None, Some(&good.value)),
        (Table::Scores, Some(b"500101:all:2020-01"), Some(&good.value)),
        (Table::Scores, Some(&[0xff, 0xfe]), Some(&good.value)),
        (Table::Alerts, Some(b"yj-x"), Some(b"{\"id\":\"yj-x\"}")),
        (Table::Scores, Some(region_key.as_bytes()), Some(&region_value)),
    ];
    for (table, key, value) in bad {
        assert!(state.apply(table, key, value).is_err());
    }
    state.apply(Table::Scores, Some(good.key.as_bytes()), Some(&good.value)).unwrap();
    assert_eq!(state.counters(), PeerCounters { applied: 1, malformed: 6 });
    let mut parts = SnapshotParts::default();
    state.merge(&mut parts, &config.score.grades);
    assert_eq!(parts.aggregates.iter().filter(|x| x.level == Level::District).count(), 1);
}

/// Regions and the city of the merged view equal one aggregation over every institution's
/// score: the sums the scoring takes them from are integers, and each district's are in its
/// published record.
#[test]
fn merged_regions_and_city_equal_one_aggregation_over_both_instances_institutions() {
    let config = Config::load(None).unwrap();
    let (a, b) = (instance(&config, even), instance(&config, odd));
    let mut parts = snapshot_parts(&a, &config, &[]);
    published(&[&a, &b]).merge(&mut parts, &config.score.grades);
    let mut rows = Vec::new();
    for e in [&a, &b] {
        for s in e.institution_scores() {
            rows.push((s, &**e.ledger().report(&s.institution_id, s.period).unwrap()));
        }
    }
    let want: Vec<AggregateScore> = yujing_score::aggregate(&config.score, &rows)
        .unwrap()
        .into_iter()
        .filter(|x| matches!(x.level, Level::Region | Level::City))
        .collect();
    let mut got: Vec<&AggregateScore> =
        parts.aggregates.iter().filter(|x| matches!(x.level, Level::Region | Level::City)).collect();
    got.sort_by(|x, y| (x.period, x.level, &x.entity_id, x.sector).cmp(&(y.period, y.level, &y.entity_id, y.sector)));
    assert!(!want.is_empty());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        let what = format!("{} {} {} {}", w.level.as_str(), w.entity_id, w.sector, w.period);
        assert!(parts.peer_aggregates.contains(&(g.level, g.entity_id.clone(), g.sector, g.period)), "{what}");
        assert_eq!(
            (g.score, g.grade, g.institutions, g.grade_counts),
            (w.score, w.grade, w.institutions, w.grade_counts),
            "{what}"
        );
        assert_eq!((g.exposure, g.npl_ratio, g.payout_rate), (w.exposure, w.npl_ratio, w.payout_rate), "{what}");
        assert_eq!((g.p2p_complaints, g.p2p_lenders_unpaid), (w.p2p_complaints, w.p2p_lenders_unpaid), "{what}");
        let ids = |x: &AggregateScore| x.top.iter().map(|c| c.institution_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(g), ids(w), "{what}");
    }
}

#[test]
fn an_alert_published_from_this_instances_store_is_not_kept_a_peers_is() {
    let config = Config::load(None).unwrap();
    let a = instance(&config, |_| true);
    let alert = a.alerts().next().expect("the sample raises alerts").clone();
    let topics = Topics {
        scores: "yujing.scores".into(),
        alerts: "yujing.alerts".into(),
        actions: "yujing.alert-actions".into(),
        origin: b"mine".to_vec(),
    };
    let record = |origin: &[u8]| yujing_ingest::kafka::TableRecord {
        topic: "yujing.alerts".into(),
        partition: 0,
        offset: 0,
        key: Some(alert.id.clone().into_bytes()),
        value: Some(serde_json::to_vec(&alert).unwrap()),
        headers: vec![(crate::outbox::ORIGIN_HEADER.into(), origin.to_vec())],
    };
    let mut state = PeerState::default();
    assert_eq!(state.apply_record(&record(b"mine"), &topics), Read::Own);
    assert!(state.alert(&alert.id).is_none());
    assert_eq!(state.apply_record(&record(b"theirs"), &topics), Read::Applied);
    assert_eq!(state.alert(&alert.id), Some(&alert));
}

#[test]
fn the_peers_reader_keeps_the_client_settings_but_waits_its_own_fetch_wait() {
    let mut config = Config::load(None).unwrap();
    config.kafka.client.insert("fetch.wait.max.ms".into(), "10".into());
    config.kafka.client.insert("security.protocol".into(), "SASL_SSL".into());
    let reader = config.peers.reader_config(&config.kafka);
    assert_eq!(reader.extra.get("fetch.wait.max.ms").map(String::as_str), Some("500"));
    assert_eq!(reader.extra.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
    let topics = [&config.kafka.scores_topic, &config.kafka.alerts_topic, &config.kafka.alert_actions_topic];
    assert_eq!(reader.topics.iter().collect::<Vec<_>>(), topics);
}
