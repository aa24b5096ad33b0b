//! A synthetic population and its report v1 lines, built in memory from a seed.
//!
//! Every value is a pure function of `(seed, institution, month, revision)` through a
//! stateless hash, so any single line (a correction, a re-sent duplicate, a line of a later
//! month) can be made on its own, in any order, without generating the rest of the stream.

use std::fmt::Write as _;
use yujing_model::{DISTRICTS, Period, Reason, Sector};

/// The first month of every synthetic stream (month index 0).
pub fn base_period() -> Period {
    Period::new(2020, 1).expect("valid period")
}

/// SplitMix64's finaliser: a good 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in `[0, 1)` keyed by the seed, two integers and a salt.
pub fn unit(seed: u64, a: u64, b: u64, salt: u64) -> f64 {
    let h = mix(seed ^ mix(a ^ mix(b.wrapping_add(0x51ED) ^ mix(salt))));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// One synthetic institution.
#[derive(Debug, Clone, PartialEq)]
pub struct Institution {
    /// Its index in the population; ids are unique per index and sector.
    pub index: usize,
    /// Its sector.
    pub sector: Sector,
    /// Its 区县 code (one of the 38).
    pub district_code: u32,
    /// Exposure in the first month, in yuan.
    pub exposure: f64,
    /// Stress in `[0, 0.45)` when healthy: 0 is the safe end of every indicator, 1 the critical.
    pub base_stress: f64,
    /// Stress added per month from `turn` on (0 for most; about 1 in 8 deteriorate).
    pub slope: f64,
    /// The month index where deterioration starts.
    pub turn: usize,
}

/// The sector mix of a mixed population: 8% banks, 40% microloan, 32% guarantee, 20% P2P.
pub fn mixed_sector(seed: u64, index: usize) -> Sector {
    let u = unit(seed, index as u64, 0, 1);
    match u {
        u if u < 0.08 => Sector::Bank,
        u if u < 0.48 => Sector::Microloan,
        u if u < 0.80 => Sector::Guarantee,
        _ => Sector::P2pResidual,
    }
}

/// Institution `index` of a population whose sector is fixed (all `sector`), or mixed
/// ([`mixed_sector`]) when `sector` is `None`.
pub fn institution(seed: u64, index: usize, sector: Option<Sector>) -> Institution {
    let i = index as u64;
    let sector = sector.unwrap_or_else(|| mixed_sector(seed, index));
    let (lo, hi): (f64, f64) = match sector {
        Sector::Bank => (1.0e10, 5.0e11),
        Sector::Microloan => (5.0e7, 2.0e9),
        Sector::Guarantee => (1.0e8, 5.0e9),
        Sector::P2pResidual => (1.0e7, 3.0e9),
    };
    let exposure = (lo.ln() + unit(seed, i, 0, 2) * (hi.ln() - lo.ln())).exp().round();
    let deteriorates = unit(seed, i, 0, 3) < 0.125;
    Institution {
        index,
        sector,
        district_code: DISTRICTS[(unit(seed, i, 0, 4) * DISTRICTS.len() as f64) as usize].code,
        exposure,
        base_stress: unit(seed, i, 0, 5) * 0.45,
        slope: if deteriorates { 0.04 + unit(seed, i, 0, 6) * 0.06 } else { 0.0 },
        turn: (unit(seed, i, 0, 7) * 12.0) as usize,
    }
}

impl Institution {
    /// Its id, e.g. `CQ-MLC-000042`.
    pub fn id(&self) -> String {
        let tag = match self.sector {
            Sector::Bank => "BNK",
            Sector::Microloan => "MLC",
            Sector::Guarantee => "GUA",
            Sector::P2pResidual => "P2P",
        };
        format!("CQ-{tag}-{:06}", self.index)
    }

    /// Its registered name, in Chinese like the real ones.
    pub fn name(&self) -> String {
        let district = yujing_model::district(self.district_code).map_or("", |d| d.name_zh);
        let kind = match self.sector {
            Sector::Bank => "农村商业银行股份有限公司",
            Sector::Microloan => "小额贷款有限公司",
            Sector::Guarantee => "融资担保有限公司",
            Sector::P2pResidual => "网络借贷信息中介平台",
        };
        format!("重庆{district}第{}{kind}", self.index)
    }

    /// Whether it reports for month index `month` (banks only at quarter ends).
    pub fn reports_in(&self, month: usize) -> bool {
        self.sector != Sector::Bank || period(month).is_quarter_end()
    }

    /// Its stress in a month, for a revision (corrections move the figures a little).
    fn stress(&self, seed: u64, month: usize, revision: u32) -> f64 {
        let noise = unit(seed, self.index as u64, month as u64, 100 + u64::from(revision)) - 0.5;
        let drift = self.slope * month.saturating_sub(self.turn) as f64;
        (self.base_stress + drift + noise * 0.1).clamp(0.0, 1.4)
    }

    /// The metrics of a month in the sector's canonical order, optionally with a flaw.
    pub fn metrics(&self, seed: u64, month: usize, revision: u32, flaw: Option<Flaw>) -> Vec<f64> {
        let s = self.stress(seed, month, revision);
        let e = self.exposure * (1.0 + 0.004 * month as f64);
        let r = |x: f64| x.round();
        let mut v = match self.sector {
            Sector::Bank => {
                let npl = r(e * (0.01 + 0.04 * s));
                vec![e, npl, r(e * (0.02 + 0.08 * s)), r(npl * (1.8 - 0.8 * s)), 0.15 - 0.06 * s]
            }
            Sector::Microloan => {
                let net = r(e * 0.6);
                vec![e, r(e * (0.03 + 0.12 * s)), net, r(net * (0.05 + 0.10 * s)), r(net * (0.5 + 0.5 * s))]
            }
            Sector::Guarantee => {
                let released = r(e * 0.4);
                let payouts = r(released * (0.01 + 0.07 * s));
                let net = r(e / (5.0 + 10.0 * s));
                vec![e, released, payouts, r(payouts * (0.6 - 0.4 * s)), net, r(net * (0.05 + 0.1 * s))]
            }
            Sector::P2pResidual => {
                let progress = ((0.2 + 0.03 * month as f64) * (1.0 - 0.5 * s)).clamp(0.0, 1.0);
                let outstanding = r(self.exposure * (1.0 - progress));
                let lenders = r((self.exposure / 50_000.0).max(1.0));
                vec![
                    outstanding,
                    self.exposure,
                    lenders,
                    r(outstanding * 0.05 * (1.0 - s).max(0.0)),
                    r(lenders * (0.001 + 0.02 * s)),
                ]
            }
        };
        match flaw {
            Some(Flaw::NegativeAmount) => v[0] = -v[0],
            Some(Flaw::Inconsistent) => match self.sector {
                Sector::Bank | Sector::Microloan => v[1] = v[0] * 2.0,
                Sector::Guarantee => v[5] = v[0] * 2.0,
                Sector::P2pResidual => v[0] = v[1] * 2.0,
            },
            _ => {}
        }
        v
    }

    /// The report v1 line of a month and revision (valid unless `flaw` says otherwise).
    pub fn line(&self, seed: u64, month: usize, revision: u32, flaw: Option<Flaw>) -> String {
        let p = period(month);
        let next = p.add_months(1);
        let day = 1 + (unit(seed, self.index as u64, month as u64, 8) * 12.0) as u32 + 3 * (revision - 1);
        let hour = 8 + (unit(seed, self.index as u64, month as u64, 9) * 10.0) as u32;
        let id = self.id();
        let district = match flaw {
            Some(Flaw::UnknownDistrict) => 500_199,
            _ => self.district_code,
        };
        let mut s = String::with_capacity(420);
        s.push('{');
        if flaw == Some(Flaw::UnknownField) {
            s.push_str(r#""npl_ratio":0.05,"#);
        }
        let _ = write!(
            s,
            r#""schema_version":1,"report_id":"{id}/{p}/r{revision}","institution_id":"{id}","institution_name":"{}","sector":"{}","district_code":"{district}","period":"{p}","revision":{revision},"submitted_at":"{:04}-{:02}-{day:02}T{hour:02}:{:02}:00+08:00","metrics":{{"#,
            self.name(),
            self.sector,
            next.year(),
            next.month(),
            (self.index * 7 + month) % 60,
        );
        let values = self.metrics(seed, month, revision, flaw);
        for (k, (m, v)) in self.sector.metrics().iter().zip(values).enumerate() {
            let sep = if k == 0 { "" } else { "," };
            let _ = if *m == yujing_model::Metric::CapitalAdequacyRatio {
                write!(s, r#"{sep}"{m}":{v:.4}"#)
            } else {
                write!(s, r#"{sep}"{m}":{v}"#)
            };
        }
        s.push_str("}}");
        if flaw == Some(Flaw::MalformedJson) {
            s.truncate(s.len() / 2);
        }
        s
    }
}

/// The period of a month index.
pub fn period(month: usize) -> Period {
    base_period().add_months(month as i32)
}

/// A defect planted in a line, and the reason code the engine must give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// The line is cut in half.
    MalformedJson,
    /// A submitted ratio rides along (`deny_unknown_fields`).
    UnknownField,
    /// `district_code` 500199, not one of the 38.
    UnknownDistrict,
    /// The first metric is negative.
    NegativeAmount,
    /// NPLs (or the largest exposure, or the outstanding) above their total.
    Inconsistent,
}

impl Flaw {
    /// Every flaw, in the order [`crate::mixed_lines`] cycles through them.
    pub const ALL: [Flaw; 5] =
        [Flaw::MalformedJson, Flaw::UnknownField, Flaw::UnknownDistrict, Flaw::NegativeAmount, Flaw::Inconsistent];

    /// The reason code a flawed line must be dead-lettered with.
    pub fn reason(self) -> Reason {
        match self {
            Flaw::MalformedJson => Reason::MalformedJson,
            Flaw::UnknownField => Reason::SchemaViolation,
            Flaw::UnknownDistrict => Reason::UnknownDistrict,
            Flaw::NegativeAmount => Reason::NegativeAmount,
            Flaw::Inconsistent => Reason::Inconsistent,
        }
    }
}
