//! The four supervised sectors and the metrics each reports.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A supervised sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sector {
    /// Banks (supervised centrally; the bureau coordinates).
    Bank,
    /// Microloan companies (小额贷款公司).
    Microloan,
    /// Financing guarantee companies (融资担保公司).
    Guarantee,
    /// Closed P2P lending platforms being wound down (网贷机构存量风险).
    P2pResidual,
}

impl Sector {
    /// All sectors, in display order.
    pub const ALL: [Sector; 4] = [Sector::Bank, Sector::Microloan, Sector::Guarantee, Sector::P2pResidual];

    /// The wire name (`bank`, `microloan`, `guarantee`, `p2p_residual`).
    pub fn as_str(self) -> &'static str {
        match self {
            Sector::Bank => "bank",
            Sector::Microloan => "microloan",
            Sector::Guarantee => "guarantee",
            Sector::P2pResidual => "p2p_residual",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Sector> {
        Sector::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Sector::Bank => "银行",
            Sector::Microloan => "小额贷款公司",
            Sector::Guarantee => "融资担保公司",
            Sector::P2pResidual => "网贷存量风险",
        }
    }

    /// A dense index 0..4.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metrics a report of this sector must carry, in their canonical order.
    pub fn metrics(self) -> &'static [Metric] {
        use Metric::*;
        match self {
            Sector::Bank => &[TotalLoans, NplBalance, SpecialMentionBalance, LoanLossProvision, CapitalAdequacyRatio],
            Sector::Microloan => &[LoanBalance, NplBalance, NetAssets, LargestBorrowerBalance, Borrowings],
            Sector::Guarantee => {
                &[OutstandingGuarantees, ReleasedYtd, PayoutsYtd, RecoveriesYtd, NetAssets, LargestClientExposure]
            }
            Sector::P2pResidual => {
                &[OutstandingPrincipal, PrincipalAtExit, LendersUnpaid, RepaidInPeriod, ComplaintsInPeriod]
            }
        }
    }

    /// Months between two expected reports: 3 for banks (quarterly), 1 for the rest.
    pub fn cadence_months(self) -> i32 {
        match self {
            Sector::Bank => 3,
            _ => 1,
        }
    }

    /// The metric that measures an institution's exposure, used to weight aggregates.
    pub fn exposure_metric(self) -> Metric {
        match self {
            Sector::Bank => Metric::TotalLoans,
            Sector::Microloan => Metric::LoanBalance,
            Sector::Guarantee => Metric::OutstandingGuarantees,
            Sector::P2pResidual => Metric::OutstandingPrincipal,
        }
    }
}

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most metrics any sector reports.
pub const MAX_METRICS: usize = 6;

/// A reported metric. Amounts are in yuan; `capital_adequacy_ratio` is a fraction;
/// `lenders_unpaid` and `complaints_in_period` are counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Metric {
    TotalLoans,
    NplBalance,
    SpecialMentionBalance,
    LoanLossProvision,
    CapitalAdequacyRatio,
    LoanBalance,
    NetAssets,
    LargestBorrowerBalance,
    Borrowings,
    OutstandingGuarantees,
    ReleasedYtd,
    PayoutsYtd,
    RecoveriesYtd,
    LargestClientExposure,
    OutstandingPrincipal,
    PrincipalAtExit,
    LendersUnpaid,
    RepaidInPeriod,
    ComplaintsInPeriod,
}

impl Metric {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        use Metric::*;
        match self {
            TotalLoans => "total_loans",
            NplBalance => "npl_balance",
            SpecialMentionBalance => "special_mention_balance",
            LoanLossProvision => "loan_loss_provision",
            CapitalAdequacyRatio => "capital_adequacy_ratio",
            LoanBalance => "loan_balance",
            NetAssets => "net_assets",
            LargestBorrowerBalance => "largest_borrower_balance",
            Borrowings => "borrowings",
            OutstandingGuarantees => "outstanding_guarantees",
            ReleasedYtd => "released_ytd",
            PayoutsYtd => "payouts_ytd",
            RecoveriesYtd => "recoveries_ytd",
            LargestClientExposure => "largest_client_exposure",
            OutstandingPrincipal => "outstanding_principal",
            PrincipalAtExit => "principal_at_exit",
            LendersUnpaid => "lenders_unpaid",
            RepaidInPeriod => "repaid_in_period",
            ComplaintsInPeriod => "complaints_in_period",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sector, or all sectors together, as aggregates and district alerts use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SectorScope {
    /// One sector.
    One(Sector),
    /// Every sector together.
    All,
}

impl SectorScope {
    /// The wire name: a sector's name or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            SectorScope::One(s) => s.as_str(),
            SectorScope::All => "all",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<SectorScope> {
        if s == "all" { Some(SectorScope::All) } else { Sector::parse(s).map(SectorScope::One) }
    }

    /// The four sectors and `all`.
    pub const EVERY: [SectorScope; 5] = [
        SectorScope::One(Sector::Bank),
        SectorScope::One(Sector::Microloan),
        SectorScope::One(Sector::Guarantee),
        SectorScope::One(Sector::P2pResidual),
        SectorScope::All,
    ];
}

impl Serialize for SectorScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SectorScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SectorScope::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown sector {s:?}")))
    }
}

impl fmt::Display for SectorScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_serde_round_trips() {
        for s in SectorScope::EVERY {
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(j, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<SectorScope>(&j).unwrap(), s);
        }
        assert!(Sector::ALL.iter().all(|s| s.metrics().len() <= MAX_METRICS));
    }
}
