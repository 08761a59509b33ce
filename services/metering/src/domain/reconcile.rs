//! Reconciliation with a peer platform (T/CEC 102 check_charge_orders): our billable orders of a
//! period and their totals, and each of the peer's orders we dispute, with the reason.

use rust_decimal::Decimal;

/// An order as one side has it: (order id, energy kWh, total money).
pub type Line<'a> = (&'a str, Decimal, Decimal);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 不存在: we have no billable order of that id in the period.
    NotFound,
    /// 金额错.
    MoneyDiffers,
    /// 电量错.
    EnergyDiffers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute<'a> {
    pub order_id: &'a str,
    pub reason: Reason,
    /// Ours, when we have it.
    pub ours: Option<(Decimal, Decimal)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation<'a> {
    pub order_count: usize,
    pub energy_kwh: Decimal,
    pub total_money: Decimal,
    pub disputes: Vec<Dispute<'a>>,
    /// The peer's figures of the disputed orders.
    pub dispute_energy_kwh: Decimal,
    pub dispute_money: Decimal,
}

/// Compares the peer's orders with ours; energy is compared before money, as a wrong reading
/// explains a wrong amount.
pub fn reconcile<'a>(ours: &[Line<'_>], theirs: &[Line<'a>]) -> Reconciliation<'a> {
    let mut disputes = Vec::new();
    let (mut dispute_energy_kwh, mut dispute_money) = (Decimal::ZERO, Decimal::ZERO);
    for (id, energy, money) in theirs {
        let mine = ours.iter().find(|(o, _, _)| o == id);
        let reason = match mine {
            None => Some(Reason::NotFound),
            Some((_, e, _)) if e != energy => Some(Reason::EnergyDiffers),
            Some((_, _, m)) if m != money => Some(Reason::MoneyDiffers),
            Some(_) => None,
        };
        if let Some(reason) = reason {
            dispute_energy_kwh += *energy;
            dispute_money += *money;
            disputes.push(Dispute {
                order_id: id,
                reason,
                ours: mine.map(|(_, e, m)| (*e, *m)),
            });
        }
    }
    Reconciliation {
        order_count: ours.len(),
        energy_kwh: ours.iter().map(|(_, e, _)| *e).sum(),
        total_money: ours.iter().map(|(_, _, m)| *m).sum(),
        disputes,
        dispute_energy_kwh,
        dispute_money,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn settle_1_reconciliation_names_each_disputed_order_and_its_reason() {
        let ours = [
            ("A", d("10.000"), d("18.00")),
            ("B", d("5.000"), d("9.00")),
            ("C", d("7.500"), d("12.10")),
        ];
        let theirs = [
            ("A", d("10.000"), d("18.00")),
            ("B", d("5.000"), d("9.50")),
            ("C", d("7.400"), d("12.10")),
            ("Z", d("1.000"), d("2.00")),
        ];
        let r = reconcile(&ours, &theirs);
        assert_eq!(
            (r.order_count, r.energy_kwh, r.total_money),
            (3, d("22.500"), d("39.10"))
        );
        let reasons: Vec<(&str, Reason)> =
            r.disputes.iter().map(|x| (x.order_id, x.reason)).collect();
        assert_eq!(
            reasons,
            [
                ("B", Reason::MoneyDiffers),
                ("C", Reason::EnergyDiffers),
                ("Z", Reason::NotFound)
            ]
        );
        assert_eq!(r.dispute_money, d("23.60"));
        assert_eq!(r.disputes[2].ours, None);
    }
}
