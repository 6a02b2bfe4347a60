//! Akoya's data shapes (FDX), made from the simulator's Plaid-shaped accounts, owners and
//! transactions, so an Akoya consent shows the same generated data a Plaid Item does.

use chrono::NaiveDate;
use serde_json::Number;

use linkstate_wire::akoya::{
    AccountInfo, Address, Amount, Balance, Currency, Customer, Name, Transaction, Wrapped,
};
use linkstate_wire::plaid::{self, AccountBase, Owner, decimal_string};

/// A window of days, both ends included: what a transactions call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first day.
    pub start: NaiveDate,
    /// The last day.
    pub end: NaiveDate,
}

impl Window {
    /// Whether `day` falls in the window.
    pub fn contains(&self, day: NaiveDate) -> bool {
        (self.start..=self.end).contains(&day)
    }
}

/// The day an ISO 8601 time names, in UTC: `2026-11-01T00:00:00Z`, an offset time, a time
/// without zone (read as UTC), or a plain date `2026-11-01`.
pub fn day(text: &str) -> Option<NaiveDate> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.to_utc().date_naive())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.date())
        })
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d"))
        .ok()
}

/// The midnight starting `day`, as page links write the window's ends.
pub fn midnight(day: NaiveDate) -> String {
    format!("{day}T00:00:00Z")
}

/// Whether Akoya wraps the account as a line of credit (the card) rather than a deposit.
fn is_credit(account: &AccountBase) -> bool {
    account.r#type == "credit"
}

/// The wrapper key of an account and of its balance.
fn account_kind(account: &AccountBase) -> &'static str {
    if is_credit(account) {
        "locAccount"
    } else {
        "depositAccount"
    }
}

/// The wrapper key of the account's transactions.
pub fn transaction_kind(account: &AccountBase) -> &'static str {
    if is_credit(account) {
        "locTransaction"
    } else {
        "depositTransaction"
    }
}

/// The `accounts-info` entry of an account.
pub fn account_info(account: &AccountBase) -> Wrapped<AccountInfo> {
    let subtype = account.subtype.as_deref();
    let account_type = match subtype {
        Some("checking") => "CHECKING",
        Some("savings") => "SAVINGS",
        Some("cd") => "CD",
        Some("money market") => "MONEYMARKET",
        Some("credit card") => "CREDITCARD",
        _ => "OTHER",
    };
    // Only some customers name their accounts; the checking one shows what a nickname is.
    let nickname = (subtype == Some("checking")).then(|| "Everyday".to_owned());
    let balance_type = if is_credit(account) {
        "LIABILITY"
    } else {
        "ASSET"
    };
    Wrapped {
        kind: account_kind(account).to_owned(),
        value: AccountInfo {
            account_id: account.account_id.clone(),
            account_type: Some(account_type.to_owned()),
            account_number_display: account.mask.as_ref().map(|mask| format!("xxx{mask}")),
            product_name: account.official_name.clone(),
            nickname,
            status: Some("OPEN".to_owned()),
            balance_type: Some(balance_type.to_owned()),
            currency: Some(Currency {
                currency_code: Some("USD".to_owned()),
            }),
            description: None,
        },
    }
}

/// The `balances` entry of an account, taken at `as_of` (RFC 3339): a deposit's current and
/// available balances (a CD has no available one), a card's debt and available credit.
pub fn balance(account: &AccountBase, as_of: &str) -> Wrapped<Balance> {
    let balances = &account.balances;
    let available = balances.available.as_ref().map(amount);
    let (available_balance, available_credit) = if is_credit(account) {
        (None, available)
    } else {
        (available, None)
    };
    Wrapped {
        kind: account_kind(account).to_owned(),
        value: Balance {
            account_id: account.account_id.clone(),
            balance_as_of: Some(as_of.to_owned()),
            current_balance: balances.current.as_ref().map(amount),
            available_balance,
            available_credit,
            principal_balance: None,
            currency: None,
        },
    }
}

/// The customer of `customers/.../current`: the Item's account holder.
pub fn customer(customer_id: &str, owner: &Owner) -> Customer {
    let full = owner.names.first().map_or("", String::as_str);
    let (first, last) = full.split_once(' ').unwrap_or((full, ""));
    let addresses = owner
        .addresses
        .iter()
        .map(|address| Address {
            line1: Some(address.data.street.clone()),
            city: address.data.city.clone(),
            state: address.data.region.clone(),
            postal_code: address.data.postal_code.clone(),
        })
        .collect();
    Customer {
        customer_id: Some(customer_id.to_owned()),
        name: Some(Name {
            first: Some(first.to_owned()),
            middle: None,
            last: Some(last.to_owned()),
        }),
        addresses: Some(addresses),
        telephones: Some(owner.phone_numbers.iter().map(|p| p.data.clone()).collect()),
        email: Some(owner.emails.iter().map(|e| e.data.clone()).collect()),
        // `null` means every account of the consent.
        accounts: None,
    }
}

/// A Plaid-shaped transaction as Akoya lists it, wrapped as `kind`: a positive amount with
/// DEBIT for money out (Plaid's positive amounts) and CREDIT for money in; noon of the day
/// it happened and, once posted, of the day it posted.
pub fn transaction(transaction: &plaid::Transaction, kind: &str) -> Wrapped<Transaction> {
    let text = decimal_string(&transaction.amount);
    let magnitude = decimal(text.trim_start_matches('-'));
    let money_out = !text.starts_with('-') && magnitude != Amount::default();
    let direction = if money_out { "DEBIT" } else { "CREDIT" };
    let happened = transaction.authorized_date.unwrap_or(transaction.date);
    let (status, posted) = if transaction.pending {
        ("PENDING", None)
    } else {
        ("POSTED", Some(noon(transaction.date)))
    };
    Wrapped {
        kind: kind.to_owned(),
        value: Transaction {
            account_id: transaction.account_id.clone(),
            transaction_id: transaction.transaction_id.clone(),
            amount: magnitude,
            debit_credit_memo: Some(direction.to_owned()),
            status: Some(status.to_owned()),
            description: Some(transaction.name.clone()),
            posted_timestamp: posted,
            transaction_timestamp: Some(noon(happened)),
            transaction_type: None,
            currency: None,
        },
    }
}

/// Noon of `day` in UTC, RFC 3339.
fn noon(day: NaiveDate) -> String {
    format!("{day}T12:00:00Z")
}

/// A Plaid amount, digit for digit.
fn amount(number: &Number) -> Amount {
    decimal(&decimal_string(number))
}

/// Decimal text as an exact amount.
fn decimal(text: &str) -> Amount {
    Amount(text.parse().expect("a JSON number reads as a decimal"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts;

    #[test]
    fn accounts_wrap_by_type() {
        let accounts = accounts::generate("item-a");
        let infos: Vec<_> = accounts.iter().map(account_info).collect();
        let kinds: Vec<_> = infos.iter().map(|info| info.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "depositAccount",
                "depositAccount",
                "depositAccount",
                "locAccount",
                "depositAccount"
            ]
        );
        let types: Vec<_> = infos
            .iter()
            .map(|info| info.value.account_type.as_deref().unwrap())
            .collect();
        assert_eq!(
            types,
            ["CHECKING", "SAVINGS", "CD", "CREDITCARD", "MONEYMARKET"]
        );
        let checking = &infos[0].value;
        let display = format!("xxx{}", accounts[0].mask.as_deref().unwrap());
        assert_eq!(checking.account_number_display, Some(display));
        assert_eq!(checking.nickname.as_deref(), Some("Everyday"));
        assert_eq!(checking.product_name, accounts[0].official_name);
        assert_eq!(infos[1].value.nickname, None);
        assert_eq!(infos[3].value.balance_type.as_deref(), Some("LIABILITY"));
        assert_eq!(
            serde_json::to_value(&infos[4]).unwrap()["depositAccount"]["currency"],
            serde_json::json!({"currencyCode": "USD"})
        );
    }

    #[test]
    fn balances_keep_plaids_digits() {
        let accounts = accounts::generate("item-b");
        let as_of = "2026-11-01T10:00:00Z";
        let checking = balance(&accounts[0], as_of).value;
        let plaid = &accounts[0].balances;
        let current = checking.current_balance.unwrap().0.to_plain_string();
        assert_eq!(current, decimal_string(plaid.current.as_ref().unwrap()));
        assert!(checking.available_balance.is_some() && checking.available_credit.is_none());
        assert_eq!(checking.balance_as_of.as_deref(), Some(as_of));

        let cd = balance(&accounts[2], as_of).value;
        assert!(
            cd.available_balance.is_none(),
            "a CD has no available balance"
        );
        let card = balance(&accounts[3], as_of);
        assert_eq!(card.kind, "locAccount");
        let credit = card.value.available_credit.unwrap().0.to_plain_string();
        assert_eq!(
            credit,
            decimal_string(accounts[3].balances.available.as_ref().unwrap())
        );
        assert!(card.value.available_balance.is_none());
    }

    /// A generated transaction, made to say what a test needs.
    fn plaid_transaction(cents: i64, pending: bool) -> plaid::Transaction {
        let date = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let accounts = accounts::generate("item-t");
        let mut generator = crate::history::Generator::new("item-t", &accounts);
        plaid::Transaction {
            amount: crate::money::money(cents),
            name: "Coffee".into(),
            pending,
            date,
            authorized_date: Some(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()),
            ..generator.fresh(date).unwrap()
        }
    }

    #[test]
    fn transactions_carry_a_direction_and_a_positive_amount() {
        let out = transaction(&plaid_transaction(1250, false), "depositTransaction");
        assert_eq!(out.kind, "depositTransaction");
        let out = out.value;
        assert_eq!(out.amount.0.to_plain_string(), "12.5");
        assert_eq!(out.debit_credit_memo.as_deref(), Some("DEBIT"));
        assert_eq!(out.status.as_deref(), Some("POSTED"));
        assert_eq!(out.description.as_deref(), Some("Coffee"));
        assert_eq!(
            out.transaction_timestamp.as_deref(),
            Some("2026-11-01T12:00:00Z")
        );
        assert_eq!(
            out.posted_timestamp.as_deref(),
            Some("2026-11-03T12:00:00Z")
        );

        let back = transaction(&plaid_transaction(-150_000, true), "locTransaction").value;
        assert_eq!(back.amount.0.to_plain_string(), "1500");
        assert_eq!(back.debit_credit_memo.as_deref(), Some("CREDIT"));
        assert_eq!(back.status.as_deref(), Some("PENDING"));
        assert_eq!(back.posted_timestamp, None);
    }

    #[test]
    fn customers_come_from_the_holder() {
        let accounts = accounts::generate("item-c");
        let owner = &crate::owners::owners("item-c", &accounts)[0][0];
        let customer = customer("cust-1", owner);
        let name = customer.name.unwrap();
        assert_eq!(
            format!("{} {}", name.first.unwrap(), name.last.unwrap()),
            owner.names[0]
        );
        let address = &customer.addresses.unwrap()[0];
        assert_eq!(
            address.line1.as_ref(),
            Some(&owner.addresses[0].data.street)
        );
        assert_eq!(customer.telephones.unwrap().len(), 2);
        assert_eq!(customer.email.unwrap(), ["accountholder0@example.com"]);
        assert_eq!(customer.accounts, None);
    }

    #[test]
    fn days_read_from_times_and_dates() {
        let day_one = NaiveDate::from_ymd_opt(2026, 11, 1);
        assert_eq!(day("2026-11-01T00:00:00Z"), day_one);
        assert_eq!(day("2026-11-01T23:30:00.5Z"), day_one);
        assert_eq!(
            day("2026-11-01T20:00:00-05:00"),
            NaiveDate::from_ymd_opt(2026, 11, 2)
        );
        assert_eq!(day("2026-11-01T08:00:00"), day_one);
        assert_eq!(day("2026-11-01"), day_one);
        assert_eq!(day("yesterday"), None);
        let window = Window {
            start: day_one.unwrap(),
            end: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        };
        assert!(window.contains(window.start) && window.contains(window.end));
        assert!(!window.contains(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()));
        assert_eq!(midnight(window.end), "2026-11-30T00:00:00Z");
    }
}
