//! Each sector-period's changes of base score, in institution order, kept between settles.
//!
//! A batch scored in part against a period's own cross-section needs the baseline of every
//! change there: the mean and standard deviation of some 10,000 changes, taken in
//! institution order (statrs sums floats, so the order is part of the result). Looking each
//! held score up again was most of a live batch's scoring. A [`Column`] keeps the changes
//! the last baseline was taken from; the next one walks the ledger's rows beside it and
//! looks up only the institutions it does not hold. Every held score's new change reaches the
//! columns through [`OwnDeltas::set`], so a column never holds a change the scores do not;
//! in debug builds the engine checks each column it takes against that walk.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use yujing_model::{InstitutionScore, Period, Sector};

/// The most changes the columns hold together (32 bytes each: 4 MiB); the least recently used
/// column goes first.
const MAX_ROWS: usize = 1 << 17;

/// One sector-period's changes, in the ledger's institution order.
#[derive(Debug, Default)]
struct Column {
    ids: Vec<Arc<str>>,
    deltas: Vec<Option<f64>>,
    used: u64,
}

/// The columns of the sector-periods whose own baseline was taken in part lately.
#[derive(Debug)]
pub(super) struct OwnDeltas {
    periods: HashMap<Period, [Option<Column>; 4]>,
    rows: usize,
    clock: u64,
}

fn slot(sector: Sector) -> usize {
    Sector::ALL.iter().position(|s| *s == sector).unwrap_or(0)
}

/// The column of `rows` ([`OwnDeltas::take`]), matching each fresh score to its row with
/// `same`, and whether every fresh score found its row.
fn walk(
    rows: &[&Arc<str>],
    fresh: &[InstitutionScore],
    old: &Column,
    held: &impl Fn(&str) -> Option<f64>,
    same: impl Fn(&Arc<str>, &Arc<str>) -> bool,
) -> (Column, bool) {
    let mut fresh = fresh.iter().peekable();
    let mut at = 0;
    let mut column = Column { ids: Vec::with_capacity(rows.len()), deltas: Vec::with_capacity(rows.len()), used: 0 };
    for &id in rows {
        let delta = match fresh.next_if(|s| same(&s.institution_id, id)) {
            Some(s) => s.trend_delta.get(),
            None => {
                while old.ids.get(at).is_some_and(|o| !Arc::ptr_eq(o, id) && **o < **id) {
                    at += 1;
                }
                match old.ids.get(at) {
                    Some(o) if Arc::ptr_eq(o, id) || **o == **id => {
                        at += 1;
                        old.deltas[at - 1]
                    }
                    _ => held(id),
                }
            }
        };
        column.ids.push(Arc::clone(id));
        column.deltas.push(delta);
    }
    let all = fresh.peek().is_none();
    (column, all)
}

impl OwnDeltas {
    pub(super) fn new() -> OwnDeltas {
        OwnDeltas { periods: HashMap::new(), rows: 0, clock: 0 }
    }

    /// The changes of a sector-period's `rows` (the ledger's institution ids, in order):
    /// a `fresh` score's (in the same order) first, then the column's, then `held`'s.
    /// Keeps them as the sector-period's column.
    pub(super) fn take<'a>(
        &mut self,
        sector: Sector,
        period: Period,
        rows: impl Iterator<Item = &'a Arc<str>>,
        fresh: &[InstitutionScore],
        held: impl Fn(&str) -> Option<f64>,
    ) -> &[Option<f64>] {
        let old = self.periods.get_mut(&period).and_then(|c| c[slot(sector)].take()).unwrap_or_default();
        self.rows -= old.ids.len();
        let rows: Vec<&Arc<str>> = rows.collect();
        // A fresh score carries the id of the report it was scored from, the row's own: found
        // by address, no row's id is read. Should one not be, they are matched by content.
        let mut column = match walk(&rows, fresh, &old, &held, Arc::ptr_eq) {
            (column, true) => column,
            _ => walk(&rows, fresh, &old, &held, |a, b| a == b).0,
        };
        self.clock += 1;
        column.used = self.clock;
        self.rows += column.ids.len();
        self.evict(period, sector);
        let place = &mut self.periods.entry(period).or_default()[slot(sector)];
        &place.insert(column).deltas
    }

    /// Notes a held score's new change: each column of the period holding the institution
    /// takes it.
    pub(super) fn set(&mut self, period: Period, id: &str, delta: Option<f64>) {
        let Some(columns) = self.periods.get_mut(&period) else { return };
        for c in columns.iter_mut().flatten() {
            if let Ok(i) = c.ids.binary_search_by(|o| (**o).cmp(id)) {
                c.deltas[i] = delta;
            }
        }
    }

    /// Forgets every column.
    pub(super) fn clear(&mut self) {
        self.periods.clear();
        self.rows = 0;
    }

    /// Drops the least recently used columns (other than the one being kept) until the
    /// columns hold at most [`MAX_ROWS`] changes.
    fn evict(&mut self, keep_period: Period, keep_sector: Sector) {
        while self.rows > MAX_ROWS {
            let oldest = self
                .periods
                .iter()
                .flat_map(|(p, cs)| cs.iter().enumerate().filter_map(move |(i, c)| Some((c.as_ref()?.used, *p, i))))
                .filter(|&(_, p, i)| (p, i) != (keep_period, slot(keep_sector)))
                .min();
            let Some((_, p, i)) = oldest else { return };
            if let Some(columns) = self.periods.get_mut(&p) {
                if let Some(c) = columns[i].take() {
                    self.rows -= c.ids.len();
                }
                if columns.iter().all(Option::is_none) {
                    self.periods.remove(&p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    fn score(id: &Arc<str>, delta: Option<f64>) -> InstitutionScore {
        InstitutionScore {
            institution_id: id.clone(),
            period: Period::new(2024, 3).unwrap(),
            sector: Sector::Microloan,
            district_code: 500103,
            indicators: Box::new([]),
            base_score: 10.0,
            trend_delta: delta.into(),
            trend_points: 0.0,
            score: 10.0,
            grade: yujing_model::Grade::Normal,
            exposure: 1.0,
        }
    }

    #[test]
    fn a_column_gives_the_fresh_change_then_its_own_then_the_held_one() {
        let p = Period::new(2024, 3).unwrap();
        let mut d = OwnDeltas::new();
        let rows = ids(&["a", "b", "c"]);
        let first = d.take(Sector::Microloan, p, rows.iter(), &[], |id| Some(id.len() as f64));
        assert_eq!(first, &[Some(1.0); 3]);
        // `b` fresh; `a` and `c` from the column, not from `held`; a new `bb` from `held`.
        let rows = ids(&["a", "b", "bb", "c"]);
        let fresh = [score(&rows[1], Some(5.0))];
        let second = d.take(Sector::Microloan, p, rows.iter(), &fresh, |_| Some(9.0));
        assert_eq!(second, &[Some(1.0), Some(5.0), Some(9.0), Some(1.0)]);
        // A held score's new change reaches the column; a removed row leaves it.
        d.set(p, "c", None);
        let rows = ids(&["a", "c"]);
        let third = d.take(Sector::Microloan, p, rows.iter(), &[], |_| Some(7.0));
        assert_eq!(third, &[Some(1.0), None]);
        assert_eq!(d.rows, 2);
    }

    #[test]
    fn a_fresh_score_with_its_own_copy_of_the_id_is_found_by_content() {
        let p = Period::new(2024, 3).unwrap();
        let mut d = OwnDeltas::new();
        let rows = ids(&["a", "b", "c"]);
        d.take(Sector::Guarantee, p, rows.iter(), &[], |_| Some(1.0));
        // The same ids, other allocations: no row has the fresh scores' addresses.
        let copies = ids(&["a", "c"]);
        let fresh = [score(&copies[0], Some(2.0)), score(&copies[1], None)];
        let got = d.take(Sector::Guarantee, p, rows.iter(), &fresh, |_| Some(9.0));
        assert_eq!(got, &[Some(2.0), Some(1.0), None]);
    }

    #[test]
    fn the_columns_stay_under_their_bound_dropping_the_least_recently_used() {
        let mut d = OwnDeltas::new();
        let rows: Vec<Arc<str>> = (0..MAX_ROWS / 2 + 1).map(|i| Arc::from(format!("{i:08}"))).collect();
        let (p1, p2, p3) =
            (Period::new(2024, 1).unwrap(), Period::new(2024, 2).unwrap(), Period::new(2024, 3).unwrap());
        d.take(Sector::Bank, p1, rows.iter(), &[], |_| None);
        d.take(Sector::Bank, p2, rows.iter(), &[], |_| None);
        assert_eq!(d.rows, rows.len(), "two halves overflow: the first column went");
        assert!(!d.periods.contains_key(&p1));
        d.take(Sector::Guarantee, p3, rows[..10].iter(), &[], |_| None);
        assert_eq!(d.rows, rows.len() + 10);
        d.clear();
        assert_eq!(d.rows, 0);
    }
}
