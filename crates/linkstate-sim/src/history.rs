//! Generated transactions: an Item's two-year history and the later news (new transactions,
//! corrections, pending ones posting), all drawn from dice seeded with the item id.

use chrono::{Days, NaiveDate};

use super::dice::Dice;
use super::ids;
use super::merchants::{self, Kind, Merchant};
use super::money::{cents, money};
use super::owners::{self, City};
use linkstate_wire::plaid::{
    AccountBase, Location, PaymentMeta, PersonalFinanceCategory, Transaction,
};

/// How many transactions a new Item has, over all its accounts.
pub const DEFAULT_TRANSACTIONS: usize = 400;
/// How far back an Item's history goes, as Plaid's (up to two years).
const HISTORY_DAYS: u64 = 730;
/// Transactions this recent may still be pending.
const PENDING_DAYS: u64 = 3;

/// Makes one Item's transactions; the same item id always gives the same sequence.
#[derive(Debug, Clone)]
pub struct Generator {
    dice: Dice,
    /// The accounts that have transactions, with the merchants that appear on each.
    accounts: Vec<Book>,
    city: &'static City,
}

/// One account the generator writes to.
#[derive(Debug, Clone)]
struct Book {
    account_id: String,
    kind: Kind,
    merchants: Vec<&'static Merchant>,
}

impl Generator {
    /// The generator of the Item `item_id` with these accounts.
    pub fn new(item_id: &str, accounts: &[AccountBase]) -> Self {
        let accounts = accounts
            .iter()
            .filter_map(|account| {
                let kind = Kind::of(account.subtype.as_deref())?;
                Some(Book {
                    account_id: account.account_id.clone(),
                    kind,
                    merchants: merchants::for_kind(kind),
                })
            })
            .collect();
        Self {
            dice: Dice::new(ids::derived_u64(&format!("{item_id}:transactions"))),
            accounts,
            city: owners::home_city(item_id),
        }
    }

    /// `count` transactions over the two years up to `today`, oldest first; the last few days'
    /// are often still pending.
    pub fn history(&mut self, count: usize, today: NaiveDate) -> Vec<Transaction> {
        let mut transactions: Vec<Transaction> = (0..count)
            .filter_map(|_| {
                let days_ago = self.dice.below(HISTORY_DAYS);
                let pending = days_ago < PENDING_DAYS && self.dice.chance(50);
                self.transaction(today - Days::new(days_ago), pending)
            })
            .collect();
        transactions.sort_by_key(|transaction| transaction.date);
        transactions
    }

    /// A transaction of the last few days, as a later update brings it; often pending.
    pub fn fresh(&mut self, today: NaiveDate) -> Option<Transaction> {
        let days_ago = self.dice.below(PENDING_DAYS);
        let pending = self.dice.chance(40);
        self.transaction(today - Days::new(days_ago), pending)
    }

    /// Changes a transaction as an institution's update would: a pending one posts (restaurants
    /// add the tip), a posted one gets a corrected amount or description.
    pub fn change(&mut self, transaction: &mut Transaction, today: NaiveDate) {
        if transaction.pending {
            transaction.pending = false;
            transaction.authorized_date = Some(transaction.date);
            transaction.date = today.max(transaction.date);
            if tips(transaction) {
                let amount = cents(&transaction.amount);
                let tip = amount * self.dice.between(15, 22) / 100;
                transaction.amount = money(amount + tip);
            }
        } else if self.dice.chance(50) {
            let amount = cents(&transaction.amount);
            let magnitude = amount.abs();
            let mut corrected =
                (magnitude + self.dice.between(-magnitude / 5, magnitude / 5)).max(1);
            if corrected == magnitude {
                corrected += 1;
            }
            transaction.amount = money(if amount < 0 { -corrected } else { corrected });
        } else {
            let base = match transaction.name.split_once(" REF ") {
                Some((base, _)) => base.to_owned(),
                None => transaction.name.clone(),
            };
            transaction.name = format!("{base} REF {:06}", self.dice.below(1_000_000));
        }
    }

    /// One transaction on `date`, on an account picked by weight; `None` if the Item has no
    /// account with transactions.
    fn transaction(&mut self, date: NaiveDate, pending: bool) -> Option<Transaction> {
        if self.accounts.is_empty() {
            return None;
        }
        let account = self
            .dice
            .weighted(&self.accounts, |a| a.kind.weight())
            .clone();
        let merchant = *self.dice.weighted(&account.merchants, |m| m.weight);
        let (low, high) = merchant.cents;
        let in_store = merchant.channel == "in store";
        let authorized_date = if pending {
            date
        } else {
            date - Days::new(self.dice.below(3))
        };
        let datetime = (!pending && self.dice.chance(50)).then(|| {
            let seconds = self.dice.below(24 * 60 * 60) as u32;
            let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)
                .expect("a second of the day");
            date.and_time(time).and_utc()
        });
        let location = if in_store {
            Location {
                city: Some(self.city.name.to_owned()),
                region: Some(self.city.region.to_owned()),
                postal_code: Some(self.city.postal_code.to_owned()),
                country: Some("US".to_owned()),
                store_number: Some(self.dice.between(100, 9999).to_string()),
                ..Location::default()
            }
        } else {
            Location::default()
        };
        Some(Transaction {
            transaction_id: self.dice.id(),
            account_id: account.account_id,
            amount: money(self.dice.between(low, high)),
            iso_currency_code: Some("USD".to_owned()),
            unofficial_currency_code: None,
            name: merchant.description.to_owned(),
            merchant_name: merchant.merchant_name.map(str::to_owned),
            merchant_entity_id: None,
            original_description: None,
            pending,
            pending_transaction_id: None,
            account_owner: None,
            date,
            authorized_date: Some(authorized_date),
            datetime,
            authorized_datetime: None,
            payment_channel: merchant.channel.to_owned(),
            location,
            payment_meta: PaymentMeta::default(),
            personal_finance_category: Some(PersonalFinanceCategory {
                primary: merchant.category.0.to_owned(),
                detailed: merchant.category.1.to_owned(),
                confidence_level: Some("VERY_HIGH".to_owned()),
            }),
            transaction_code: None,
            check_number: None,
            logo_url: None,
            website: merchant.website.map(str::to_owned),
        })
    }
}

/// Whether the final amount may add a tip: restaurants, bars and coffee shops, not groceries.
fn tips(transaction: &Transaction) -> bool {
    transaction
        .personal_finance_category
        .as_ref()
        .is_some_and(|c| c.primary == "FOOD_AND_DRINK" && c.detailed != "FOOD_AND_DRINK_GROCERIES")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::accounts;
    use linkstate_wire::plaid::decimal_string;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 6, 30).unwrap()
    }

    fn history(item_id: &str, count: usize) -> Vec<Transaction> {
        Generator::new(item_id, &accounts::generate(item_id)).history(count, today())
    }

    #[test]
    fn same_item_same_history() {
        let first = serde_json::to_value(history("item-a", 50)).unwrap();
        assert_eq!(first, serde_json::to_value(history("item-a", 50)).unwrap());
        assert_ne!(first, serde_json::to_value(history("item-b", 50)).unwrap());
    }

    #[test]
    fn a_history_spans_two_years_on_the_accounts_with_transactions() {
        let accounts = accounts::generate("item-c");
        let transactions = history("item-c", DEFAULT_TRANSACTIONS);
        assert_eq!(transactions.len(), DEFAULT_TRANSACTIONS);
        assert!(
            transactions.windows(2).all(|w| w[0].date <= w[1].date),
            "oldest first"
        );
        let oldest = transactions[0].date;
        assert!(oldest < today() - Days::new(600) && oldest >= today() - Days::new(HISTORY_DAYS));
        let cd = &accounts[2].account_id;
        assert!(
            transactions.iter().all(|t| &t.account_id != cd),
            "a CD has none"
        );
        let ids: HashSet<_> = transactions.iter().map(|t| &t.transaction_id).collect();
        assert_eq!(ids.len(), transactions.len());
        for transaction in &transactions {
            let amount = decimal_string(&transaction.amount);
            assert!(
                amount.split('.').nth(1).is_none_or(|d| d.len() <= 2),
                "{amount}"
            );
            assert_ne!(cents(&transaction.amount), 0);
            if transaction.pending {
                assert!(transaction.date >= today() - Days::new(PENDING_DAYS));
            }
        }
    }

    #[test]
    fn ten_thousand_transactions_come_quickly() {
        let started = std::time::Instant::now();
        let transactions = history("item-big", 10_000);
        assert_eq!(transactions.len(), 10_000);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn changes_post_pending_and_correct_posted() {
        let mut generator = Generator::new("item-d", &accounts::generate("item-d"));
        let mut pending = generator.fresh(today()).unwrap();
        pending.pending = true;
        let before = pending.clone();
        generator.change(&mut pending, today());
        assert!(!pending.pending);
        assert_eq!(pending.authorized_date, Some(before.date));
        assert_eq!(pending.transaction_id, before.transaction_id);

        for _ in 0..20 {
            let mut posted = pending.clone();
            generator.change(&mut posted, today());
            let amount_changed = posted.amount != pending.amount;
            let name_changed = posted.name != pending.name;
            assert!(amount_changed ^ name_changed, "exactly one thing changes");
            assert_eq!(
                cents(&posted.amount).signum(),
                cents(&pending.amount).signum()
            );
        }
    }
}
