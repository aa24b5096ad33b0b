//! Aggregates: districts, regions and the city, per sector and for all sectors together.
//!
//! Ratios are recomputed from sums, as official statistics are (Σnpl / Σloans, not the mean
//! of ratios); scores are exposure-weighted means of institution scores.
//!
//! An [`Aggregation`] holds what the aggregates are made of: exact integer sums and each
//! aggregate's top contributors. It is taken in full with polars ([`Aggregation::of`]), and a
//! live batch brings it up to date row by row ([`Aggregation::update`]) instead of taking a
//! whole period again; both give the same aggregates.

use crate::Result;
use crate::config::ScoreConfig;
use chrono::{DateTime, FixedOffset};
use foldhash::{HashMap, HashMapExt};
use polars::prelude::*;
use std::cmp::Ordering;
use std::sync::Arc;
use yujing_model::{
    AggregateScore, CITY_CODE, CITY_NAME, Contributor, Grade, InstitutionScore, Level, Metric, Period, Region, Report,
    Sector, SectorScope, district,
};

/// How many top contributors an aggregate lists.
pub const TOP_CONTRIBUTORS: usize = 5;

/// How many of its best members a running aggregation holds in order for each aggregate:
/// the listed ones and a reserve. A listed contributor that falls back or leaves is
/// replaced from the reserve; the aggregation is taken again in full only once an
/// aggregate's reserve is used up. With the five alone, every correction that moved one of
/// a district's top five below the sixth made the live path aggregate the whole period
/// again (17 times in a 35 s latency run, 50 to 90 ms each).
const HELD_CONTRIBUTORS: usize = 4 * TOP_CONTRIBUTORS;

/// Sum columns: (name, metric per sector that feeds it).
fn sum_inputs(r: &Report) -> [f64; 6] {
    use Metric::*;
    let m = &r.metrics;
    match r.sector {
        Sector::Bank => [m.value(NplBalance), m.value(TotalLoans), 0.0, 0.0, 0.0, 0.0],
        Sector::Microloan => [m.value(NplBalance), m.value(LoanBalance), 0.0, 0.0, 0.0, 0.0],
        Sector::Guarantee => [0.0, 0.0, m.value(PayoutsYtd), m.value(ReleasedYtd), 0.0, 0.0],
        Sector::P2pResidual => [0.0, 0.0, 0.0, 0.0, m.value(ComplaintsInPeriod), m.value(LendersUnpaid)],
    }
}

const SUMS: [&str; 6] = ["npl", "loans", "payouts", "released", "complaints", "lenders"];

/// The integer sums behind one aggregate. Every field is an exact integer sum, so adding
/// groups together gives what summing their rows would, in any order.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    institutions: i64,
    /// Σ exposure in fen.
    exposure: i64,
    /// Σ round(score × exposure in yuan).
    weighted: i64,
    /// Σ score in millionths of a point.
    score_sum: i64,
    grades: [i64; 5],
    sums: [i64; 6],
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.institutions += o.institutions;
        self.exposure += o.exposure;
        self.weighted += o.weighted;
        self.score_sum += o.score_sum;
        for k in 0..5 {
            self.grades[k] += o.grades[k];
        }
        for k in 0..6 {
            self.sums[k] += o.sums[k];
        }
    }

    fn sub(&mut self, o: &Sums) {
        self.institutions -= o.institutions;
        self.exposure -= o.exposure;
        self.weighted -= o.weighted;
        self.score_sum -= o.score_sum;
        for k in 0..5 {
            self.grades[k] -= o.grades[k];
        }
        for k in 0..6 {
            self.sums[k] -= o.sums[k];
        }
    }

    /// One row's sums, as the polars pass takes them.
    fn of((s, r): Row) -> Sums {
        let mut grades = [0; 5];
        grades[Grade::ALL.iter().position(|g| *g == s.grade).unwrap_or(0)] = 1;
        Sums {
            institutions: 1,
            exposure: fen(s.exposure),
            weighted: (s.score * s.exposure).round() as i64,
            score_sum: millionths(s.score),
            grades,
            sums: sum_inputs(r).map(fen),
        }
    }
}

/// An amount in fen.
fn fen(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

/// A score in millionths of a point.
fn millionths(v: f64) -> i64 {
    (v * 1e6).round() as i64
}

/// An institution's score with its winning report: one row of an aggregation.
pub type Row<'a> = (&'a InstitutionScore, &'a Report);

/// Computes every aggregate of the given institution scores (each with its winning report),
/// for every period present: district, region and city, each per sector and for `all`.
/// Output is ordered by period, level, entity and sector.
pub fn aggregate(config: &ScoreConfig, rows: &[Row]) -> Result<Vec<AggregateScore>> {
    Ok(Aggregation::of(rows)?.aggregates(config))
}

/// What the aggregates of a set of rows are made of: each aggregate's exact integer sums,
/// its top contributors and its latest winning submission.
///
/// Taken in full with [`Aggregation::of`] (one polars pass) and kept up to date a row at a
/// time with [`Aggregation::update`]: the aggregates are the same either way.
///
/// ```
/// use yujing_model::{decode, DecodeLimits, Sector};
/// use yujing_score::{Aggregation, ScoreConfig, score_sector};
/// let line = |npl: u32| format!(r#"{{"schema_version":1,"report_id":"m/2025-09/r{npl}","institution_id":"CQ-MLC-0042",
///   "institution_name":"某小额贷款有限公司","sector":"microloan","district_code":"500103","period":"2025-09",
///   "revision":{npl},"submitted_at":"2025-10-12T09:30:00+08:00","metrics":{{"loan_balance":100,
///   "npl_balance":{npl},"net_assets":100,"largest_borrower_balance":15,"borrowings":100}}}}"#);
/// let config = ScoreConfig::default();
/// let (a, b) = (decode(line(5).as_bytes(), &DecodeLimits::default()).unwrap(), decode(line(9).as_bytes(), &DecodeLimits::default()).unwrap());
/// let periods = std::collections::BTreeSet::from([a.period]);
/// let (sa, sb) = (score_sector(&config, Sector::Microloan, &periods, &[&a]).unwrap(), score_sector(&config, Sector::Microloan, &periods, &[&b]).unwrap());
/// // Kept up to date when a correction replaces the report, or taken again in full.
/// let mut running = Aggregation::of(&[(&sa[0], &a)]).unwrap();
/// assert!(running.update(Some((&sa[0], &a)), Some((&sb[0], &b))));
/// assert_eq!(running.aggregates(&config), Aggregation::of(&[(&sb[0], &b)]).unwrap().aggregates(&config));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Aggregation {
    groups: HashMap<MemberKey, Agg>,
}

/// One aggregate's running state.
#[derive(Debug, Clone, Default)]
struct Agg {
    sums: Sums,
    /// The best members in order, best first: at least `min(TOP_CONTRIBUTORS, members)` of
    /// them and at most [`HELD_CONTRIBUTORS`]; every member not held ranks below every one
    /// held. The first [`TOP_CONTRIBUTORS`] are the ones listed.
    top: Vec<Member>,
    /// The latest submission of its winning reports.
    latest: Option<DateTime<FixedOffset>>,
}

/// A contributor as its aggregate ranks it.
#[derive(Debug, Clone)]
struct Member {
    id: Arc<str>,
    score: f64,
    exposure: f64,
    /// The score in millionths of a point and the exposure in fen, as the sums take them:
    /// members rank by their product, exactly (by the score alone in an aggregate without
    /// exposure), then by id.
    score_m: i64,
    exposure_fen: i64,
}

impl Member {
    fn of(s: &InstitutionScore) -> Member {
        Member {
            id: s.institution_id.clone(),
            score: s.score,
            exposure: s.exposure,
            score_m: millionths(s.score),
            exposure_fen: fen(s.exposure),
        }
    }

    fn rank(&self, weighted: bool) -> i128 {
        rank(self.score_m, self.exposure_fen, weighted)
    }
}

/// A contribution's rank: exposure × score, or the score alone in an aggregate without
/// exposure.
fn rank(score_m: i64, exposure_fen: i64, weighted: bool) -> i128 {
    if weighted { i128::from(exposure_fen) * i128::from(score_m) } else { i128::from(score_m) }
}

/// The order of two members in an aggregate (`weighted`: it holds exposure): the larger
/// contribution first, then by id.
fn member_order(a: &Member, b: &Member, weighted: bool) -> Ordering {
    b.rank(weighted).cmp(&a.rank(weighted)).then_with(|| a.id.cmp(&b.id))
}

impl Agg {
    fn weighted(&self) -> bool {
        self.sums.exposure > 0
    }

    /// Lists an institution's score if it ranks among the top ones (checked before its
    /// member is made: most rows of a full pass are not listed).
    fn offer_score(&mut self, s: &InstitutionScore) {
        let w = self.weighted();
        if self.top.len() == HELD_CONTRIBUTORS
            && let Some(last) = self.top.last()
        {
            match rank(millionths(s.score), fen(s.exposure), w).cmp(&last.rank(w)) {
                Ordering::Less => return,
                Ordering::Equal if *s.institution_id >= *last.id => return,
                _ => {}
            }
        }
        self.offer(Member::of(s));
    }

    /// Holds a member if it ranks among the best ones held.
    fn offer(&mut self, m: Member) {
        let w = self.weighted();
        if self.top.len() == HELD_CONTRIBUTORS
            && self.top.last().is_some_and(|last| member_order(&m, last, w) != Ordering::Less)
        {
            return;
        }
        let at = self.top.partition_point(|x| member_order(x, &m, w) == Ordering::Less);
        self.top.insert(at, m);
        self.top.truncate(HELD_CONTRIBUTORS);
    }
}

/// The aggregates a row of a period, district and sector counts in: its district, region
/// and the city, each for its sector and for all sectors.
fn member_keys(period: Period, code: u32, sector: Sector) -> [MemberKey; 6] {
    let region = district(code).map_or(Region::MainUrban, |d| d.region);
    let at = |level, code, region, scope| (period, level, code, region, scope);
    let (one, all) = (SectorScope::One(sector), SectorScope::All);
    [
        at(Level::District, code, None, one),
        at(Level::District, code, None, all),
        at(Level::Region, 0, Some(region), one),
        at(Level::Region, 0, Some(region), all),
        at(Level::City, 0, None, one),
        at(Level::City, 0, None, all),
    ]
}

fn row_keys((s, _): Row) -> [MemberKey; 6] {
    member_keys(s.period, s.district_code, s.sector)
}

impl Aggregation {
    /// Takes the aggregation of a set of rows (several periods are taken apart) in one polars
    /// pass at the finest grain (period, district and sector), then every level from those.
    pub fn of(rows: &[Row]) -> Result<Aggregation> {
        let mut groups: HashMap<MemberKey, Agg> = HashMap::new();
        if rows.is_empty() {
            return Ok(Aggregation { groups });
        }
        // Sums are taken over integers (amounts in fen, score × exposure in yuan-points,
        // scores in millionths): integer addition is exact and associative, so the aggregates
        // are bit-identical whatever order or partitioning polars sums in, a region's or the
        // city's sums are its districts' added up, and a row's sums can be taken out again.
        // Each row's sums as `update` takes them, so that both ways add the same integers.
        let sums: Vec<Sums> = rows.iter().map(|row| Sums::of(*row)).collect();
        let int = |f: fn(&Sums) -> i64| sums.iter().map(f).collect::<Vec<i64>>();
        let mut cols = vec![
            Column::new(
                "group".into(),
                rows.iter().map(|(s, _)| group_key(s.period, s.district_code, s.sector)).collect::<Vec<i64>>(),
            ),
            Column::new("score".into(), int(|s| s.score_sum)),
            Column::new("exposure".into(), int(|s| s.exposure)),
            Column::new("weighted".into(), int(|s| s.weighted)),
            Column::new("grade".into(), rows.iter().map(|(s, _)| s.grade as u32).collect::<Vec<u32>>()),
        ];
        for (k, name) in SUMS.iter().enumerate() {
            cols.push(Column::new((*name).into(), sums.iter().map(|s| s.sums[k]).collect::<Vec<i64>>()));
        }
        let df = DataFrame::new(rows.len(), cols)?;

        let mut aggs = vec![
            len().cast(DataType::Int64).alias("institutions"),
            col("exposure").sum().alias("exposure"),
            col("weighted").sum().alias("weighted"),
            col("score").sum().alias("score_sum"),
        ];
        for g in Grade::ALL {
            aggs.push(col("grade").eq(lit(g as u32)).sum().cast(DataType::Int64).alias(format!("g{}", g as u32)));
        }
        for name in SUMS {
            aggs.push(col(name).sum().alias(name));
        }
        // One integer key: polars groups by a single primitive column far faster than by
        // three, which it would encode row by row.
        let g = df.lazy().group_by([col("group")]).agg(aggs).collect()?;
        for ((period, code, sector), sums) in read_groups(&g)? {
            for key in member_keys(period, code, sector) {
                groups.entry(key).or_default().sums.add(&sums);
            }
        }
        // With every sum known, one walk lists the top contributors and the latest submissions.
        for row in rows {
            for key in row_keys(*row) {
                let Some(a) = groups.get_mut(&key) else { continue };
                a.offer_score(row.0);
                a.latest = a.latest.max(Some(row.1.submitted_at));
            }
        }
        Ok(Aggregation { groups })
    }

    /// Replaces one institution's row (`old`: the one counted, none if it had none; `new`:
    /// its row now, none if it has none). Returns `false` when the aggregation can no longer
    /// be kept a row at a time and must be taken again in full: so many held contributors
    /// fell back or left that who is listed is not known, the latest submission was taken
    /// out, or an aggregate gained or lost all its exposure (which ranks its members
    /// differently). After `false` the aggregation is not to be used.
    pub fn update(&mut self, old: Option<Row>, new: Option<Row>) -> bool {
        let old_keys = old.map(row_keys);
        let new_keys = new.map(row_keys);
        // Each row's sums once, for the six aggregates it counts in.
        let (old_sums, new_sums) = (old.map(Sums::of), new.map(Sums::of));
        let mut keys: Vec<MemberKey> = Vec::with_capacity(12);
        for k in old_keys.iter().chain(new_keys.iter()).flatten() {
            if !keys.contains(k) {
                keys.push(*k);
            }
        }
        for key in keys {
            let old = old.filter(|_| old_keys.is_some_and(|ks| ks.contains(&key)));
            let new = new.filter(|_| new_keys.is_some_and(|ks| ks.contains(&key)));
            let a = self.groups.entry(key).or_default();
            let (members_before, weighted_before) = (a.sums.institutions, a.weighted());
            if old.is_some() && members_before == 0 {
                return false;
            }
            if let (Some(_), Some(sums)) = (old, &old_sums) {
                a.sums.sub(sums);
            }
            if let (Some(_), Some(sums)) = (new, &new_sums) {
                a.sums.add(sums);
            }
            if a.sums.institutions == 0 {
                self.groups.remove(&key);
                continue;
            }
            let weighted = a.weighted();
            if members_before > 0 && weighted != weighted_before {
                return false;
            }
            if let Some((_, r)) = old
                && a.latest == Some(r.submitted_at)
                && new.is_none_or(|(_, n)| n.submitted_at < r.submitted_at)
            {
                return false;
            }
            if let Some((_, r)) = new {
                a.latest = a.latest.max(Some(r.submitted_at));
            }
            // A held member taken out leaves the others held in order, and every member not
            // held still ranks below them all.
            if let Some((s, _)) = old
                && let Some(i) = a.top.iter().position(|m| m.id == s.institution_id)
            {
                a.top.remove(i);
            }
            // The new one is held if it ranks above the last held, or if every other member
            // is held; otherwise it ranks below them all, as a member not held must.
            let members = usize::try_from(a.sums.institutions).unwrap_or(0);
            if let Some((s, _)) = new {
                let m = Member::of(s);
                let others_unheld = members > a.top.len() + 1;
                if !others_unheld || a.top.last().is_some_and(|last| member_order(&m, last, weighted) == Ordering::Less)
                {
                    a.offer(m);
                }
            }
            // Fewer held than listed while some are not held: who comes next is not known.
            if a.top.len() < TOP_CONTRIBUTORS.min(members) {
                return false;
            }
        }
        true
    }

    /// Every aggregate, ordered by period, level, entity and sector.
    pub fn aggregates(&self, config: &ScoreConfig) -> Vec<AggregateScore> {
        let mut out: Vec<AggregateScore> = self
            .groups
            .iter()
            .map(|(key, a)| {
                let mut agg = aggregate_of(config, *key, &a.sums);
                agg.top = a
                    .top
                    .iter()
                    .take(TOP_CONTRIBUTORS)
                    .map(|m| {
                        let weight = if agg.exposure > 0.0 {
                            m.exposure / agg.exposure
                        } else {
                            1.0 / f64::from(agg.institutions.max(1))
                        };
                        Contributor { institution_id: m.id.to_string(), score: m.score, points: weight * m.score }
                    })
                    .collect();
                agg
            })
            .collect();
        out.sort_by(|a, b| {
            (a.period, a.level, &a.entity_id, a.sector).cmp(&(b.period, b.level, &b.entity_id, b.sector))
        });
        out
    }

    /// Each district aggregate's latest winning submission and its sums of NPLs, loans,
    /// payouts and guarantees released, in fen.
    pub fn districts(&self) -> impl Iterator<Item = DistrictTotals> + '_ {
        self.groups.iter().filter(|(k, _)| k.1 == Level::District).filter_map(|(k, a)| {
            Some(DistrictTotals {
                period: k.0,
                district_code: k.2,
                scope: k.4,
                latest: a.latest?,
                npl: a.sums.sums[0],
                loans: a.sums.sums[1],
                payouts: a.sums.sums[2],
                released: a.sums.sums[3],
            })
        })
    }
}

/// What [`Aggregation::districts`] gives of one district aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistrictTotals {
    /// The period.
    pub period: Period,
    /// The district.
    pub district_code: u32,
    /// One sector or all.
    pub scope: SectorScope,
    /// The latest submission of its winning reports.
    pub latest: DateTime<FixedOffset>,
    /// Σ NPLs of banks and microloan companies, in fen.
    pub npl: i64,
    /// Σ loans of banks and microloan companies, in fen.
    pub loans: i64,
    /// Σ payouts this year of guarantee companies, in fen.
    pub payouts: i64,
    /// Σ guarantees released this year, in fen.
    pub released: i64,
}

/// The finest group: period, district code and sector.
type GroupKey = (Period, u32, Sector);

/// The finest group as one integer: the period's index times 2³², then the district code
/// (under 2²⁹) times 8, then the sector.
fn group_key(period: Period, district_code: u32, sector: Sector) -> i64 {
    (i64::from(period.index()) << 32) | (i64::from(district_code) << 3) | sector as i64
}

/// The group a [`group_key`] stands for.
fn from_group_key(key: i64) -> Option<GroupKey> {
    let period = Period::from_index(i32::try_from(key >> 32).ok()?);
    let rest = key & 0xffff_ffff;
    let sector = Sector::ALL.into_iter().find(|x| *x as i64 == rest & 7)?;
    Some((period, u32::try_from(rest >> 3).ok()?, sector))
}

/// The sums of each (period, district, sector) group polars computed.
fn read_groups(g: &DataFrame) -> Result<Vec<(GroupKey, Sums)>> {
    let group = g.column("group")?.i64()?;
    let int = |name: &str| -> Result<Vec<i64>> { Ok(g.column(name)?.i64()?.iter().map(|v| v.unwrap_or(0)).collect()) };
    let (count, exposure, weighted, score_sum) =
        (int("institutions")?, int("exposure")?, int("weighted")?, int("score_sum")?);
    let grades: Vec<Vec<i64>> = Grade::ALL.iter().map(|gr| int(&format!("g{}", *gr as u32))).collect::<Result<_>>()?;
    let sums: Vec<Vec<i64>> = SUMS.iter().map(|s| int(s)).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(g.height());
    for i in 0..g.height() {
        let Some((p, d, sector)) = group.get(i).and_then(from_group_key) else {
            return Err(crate::Error::Input(format!("aggregate group {i} has no period, district or sector")));
        };
        let s = Sums {
            institutions: count[i],
            exposure: exposure[i],
            weighted: weighted[i],
            score_sum: score_sum[i],
            grades: std::array::from_fn(|k| grades[k][i]),
            sums: std::array::from_fn(|k| sums[k][i]),
        };
        out.push(((p, d, sector), s));
    }
    Ok(out)
}

/// The aggregate of one group from its sums.
fn aggregate_of(config: &ScoreConfig, (period, level, code, region, scope): MemberKey, s: &Sums) -> AggregateScore {
    let entity_id = match level {
        Level::District => code.to_string(),
        Level::Region => region.unwrap_or(Region::MainUrban).id().to_string(),
        _ => CITY_CODE.to_string(),
    };
    let f = |v: i64| v as f64;
    let (count, exposure, weighted, score_sum) = (f(s.institutions), f(s.exposure), f(s.weighted), f(s.score_sum));
    let sums: [f64; 6] = s.sums.map(f);
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    // exposure is in fen, weighted in yuan-points, score_sum in millionths of a point.
    let score = if exposure > 0.0 { weighted / (exposure / 100.0) } else { score_sum / 1e6 / count.max(1.0) };
    let has = |x: Sector| matches!(scope, SectorScope::All) || scope == SectorScope::One(x);
    let lending = has(Sector::Bank) || has(Sector::Microloan);
    AggregateScore {
        level,
        entity_name: entity_name(level, &entity_id),
        entity_id,
        sector: scope,
        period,
        score,
        grade: config.grades.grade(score),
        institutions: s.institutions as u32,
        grade_counts: s.grades.map(|g| g as u32),
        exposure: exposure / 100.0,
        npl_ratio: if lending { ratio(sums[0], sums[1]) } else { None },
        payout_rate: if has(Sector::Guarantee) { ratio(sums[2], sums[3]) } else { None },
        p2p_complaints: has(Sector::P2pResidual).then_some(sums[4] / 100.0),
        p2p_lenders_unpaid: has(Sector::P2pResidual).then_some(sums[5] / 100.0),
        top: Vec::new(),
    }
}

/// The Chinese name of a district, region or the city.
pub fn entity_name(level: Level, id: &str) -> String {
    match level {
        Level::District => id.parse().ok().and_then(district).map_or_else(|| id.to_string(), |d| d.name_zh.to_string()),
        Level::Region => Region::from_id(id).map_or_else(|| id.to_string(), |r| r.name_zh().to_string()),
        Level::City => CITY_NAME.to_string(),
        Level::Institution => id.to_string(),
    }
}

/// The member key of an aggregate: period, level, entity and scope, without allocating
/// (a district by its code, a region by itself, the city as neither).
type MemberKey = (Period, Level, u32, Option<Region>, SectorScope);

#[cfg(test)]
mod tests;
