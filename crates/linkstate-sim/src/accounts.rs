//! The accounts of a simulated Item: Plaid's five sandbox accounts, with balances derived from
//! the item id so that a new Item always shows the same numbers, drifting a little on each
//! fresh balance request.

use rand::RngExt;

use super::ids;
use super::money::{cents, money};
use linkstate_wire::plaid::{AccountBalance, AccountBase};

/// The shape of one sandbox account.
struct Template {
    name: &'static str,
    official_name: &'static str,
    r#type: &'static str,
    subtype: &'static str,
}

const TEMPLATES: &[Template] = &[
    template(
        "Plaid Checking",
        "Plaid Gold Standard 0% Interest Checking",
        "depository",
        "checking",
    ),
    template(
        "Plaid Saving",
        "Plaid Silver Standard 0.1% Interest Saving",
        "depository",
        "savings",
    ),
    template(
        "Plaid CD",
        "Plaid Bronze Standard 0.2% Interest CD",
        "depository",
        "cd",
    ),
    template(
        "Plaid Credit Card",
        "Plaid Diamond 12.5% APR Interest Credit Card",
        "credit",
        "credit card",
    ),
    template(
        "Plaid Money Market",
        "Plaid Platinum Standard 1.85% Interest Money Market",
        "depository",
        "money market",
    ),
];

const fn template(
    name: &'static str,
    official_name: &'static str,
    r#type: &'static str,
    subtype: &'static str,
) -> Template {
    Template {
        name,
        official_name,
        r#type,
        subtype,
    }
}

/// How many accounts a new Item has.
pub const SANDBOX_ACCOUNTS: usize = TEMPLATES.len();

/// The shape of the accounts shared later (an Akoya consent gaining an account).
const EXTRA: Template = template(
    "Plaid Extra Saving",
    "Plaid Silver Standard 0.1% Interest Saving",
    "depository",
    "savings",
);

/// The accounts of the Item `item_id`, a login of its own; the same id always gives the same
/// accounts.
#[cfg(test)]
pub fn generate(item_id: &str) -> Vec<AccountBase> {
    generate_for_login(item_id, item_id)
}

/// The accounts of the Item `item_id` made by the login `login`: Plaid's five sandbox shapes,
/// with masks of that login, so that two logins show different accounts and two Items of one
/// login (a customer who linked the same bank twice) show the same ones.
pub fn generate_for_login(item_id: &str, login: &str) -> Vec<AccountBase> {
    let base = ids::derived_u64(login) % 10_000;
    TEMPLATES
        .iter()
        .enumerate()
        .map(|(n, template)| {
            let mask = format!("{:04}", (base + n as u64 * 1_999) % 10_000);
            account(item_id, template, &mask)
        })
        .collect()
}

/// The Item's `n`th account beyond the first five: a savings account, as stable as the others,
/// its mask counting up from 5000 so each looks different (and wrapping to stay four digits).
pub fn extra(item_id: &str, n: usize) -> AccountBase {
    let mask = format!("{:04}", 5000 + n % 5000);
    account(item_id, &EXTRA, &mask)
}

fn account(item_id: &str, template: &Template, mask: &str) -> AccountBase {
    let seed = format!("{item_id}:{mask}");
    AccountBase {
        account_id: ids::derived_id(&seed),
        balances: balances(&seed, template),
        mask: Some(mask.to_owned()),
        name: template.name.to_owned(),
        official_name: Some(template.official_name.to_owned()),
        r#type: template.r#type.to_owned(),
        subtype: Some(template.subtype.to_owned()),
        holder_category: Some("personal".to_owned()),
    }
}

/// Plausible balances in cents: checking moves, a CD has no available balance, a card owes.
fn balances(seed: &str, template: &Template) -> AccountBalance {
    let roll = ids::derived_u64(seed);
    let (available, current, limit) = match template.subtype {
        "checking" => {
            let current = 10_000 + (roll % 500_000) as i64;
            (Some(current - (roll >> 20) as i64 % 5_000), current, None)
        }
        "cd" => (None, 100_000 + (roll % 2_000_000) as i64, None),
        "credit card" => {
            let limit = 200_000;
            let owed = 1_000 + (roll % 150_000) as i64;
            (Some(limit - owed), owed, Some(limit))
        }
        _ => {
            let current = 20_000 + (roll % 5_000_000) as i64;
            (Some(current), current, None)
        }
    };
    AccountBalance {
        available: available.map(money),
        current: Some(money(current)),
        limit: limit.map(money),
        iso_currency_code: Some("USD".to_owned()),
        unofficial_currency_code: None,
        last_updated_datetime: None,
    }
}

/// Moves each balance by up to a few dollars, as a live balance check would see it.
/// A CD does not move; a card's available credit follows what it owes.
pub fn drift(accounts: &mut [AccountBase]) {
    let mut rng = rand::rng();
    for account in accounts {
        if account.subtype.as_deref() == Some("cd") {
            continue;
        }
        let balances = &mut account.balances;
        let Some(current) = balances.current.as_ref().map(cents) else {
            continue;
        };
        // Never below one dollar, so a balance stays a plausible positive number.
        let moved = (current + rng.random_range(-500..=500)).max(100);
        let delta = moved - current;
        balances.current = Some(money(moved));
        let available = balances.available.as_ref().map(cents);
        balances.available = match (account.r#type.as_str(), available) {
            ("credit", Some(available)) => Some(money(available - delta)),
            (_, Some(available)) => Some(money(available + delta)),
            (_, None) => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use linkstate_wire::plaid::decimal_string;

    #[test]
    fn same_item_same_accounts() {
        let first = serde_json::to_value(generate("item-a")).unwrap();
        assert_eq!(first, serde_json::to_value(generate("item-a")).unwrap());
        assert_ne!(first, serde_json::to_value(generate("item-b")).unwrap());
    }

    #[test]
    fn sandbox_masks_and_currency() {
        let accounts = generate("item-a");
        let masks: BTreeSet<_> = accounts.iter().map(|a| a.mask.clone().unwrap()).collect();
        assert_eq!(masks.len(), SANDBOX_ACCOUNTS, "five different masks");
        assert!(
            masks
                .iter()
                .all(|m| m.len() == 4 && m.bytes().all(|b| b.is_ascii_digit()))
        );
        let twin = generate_for_login("item-b", "item-a");
        let shape = |a: &AccountBase| (a.mask.clone(), a.name.clone(), a.subtype.clone());
        assert_eq!(
            twin.iter().map(shape).collect::<Vec<_>>(),
            accounts.iter().map(shape).collect::<Vec<_>>(),
            "a second Item of one login shows the same accounts"
        );
        assert_ne!(twin[0].account_id, accounts[0].account_id);
        assert!(
            accounts
                .iter()
                .all(|a| a.balances.iso_currency_code.as_deref() == Some("USD"))
        );
        assert!(
            accounts[2].balances.available.is_none(),
            "a CD has no available balance"
        );
        assert!(accounts[3].balances.limit.is_some(), "a card has a limit");
    }

    #[test]
    fn extra_accounts_are_new_savings_accounts() {
        let first = extra("item-a", 0);
        assert_eq!(first.subtype.as_deref(), Some("savings"));
        assert_eq!(first.mask.as_deref(), Some("5000"));
        let again = extra("item-a", 0);
        assert_eq!(
            serde_json::to_value(&first).unwrap(),
            serde_json::to_value(&again).unwrap(),
            "stable"
        );
        let second = extra("item-a", 1);
        assert_eq!(second.mask.as_deref(), Some("5001"));
        assert_ne!(first.account_id, second.account_id);
        assert!(
            generate("item-a")
                .iter()
                .all(|account| account.account_id != first.account_id)
        );
    }

    #[test]
    fn amounts_have_at_most_two_decimals() {
        for account in generate("item-c") {
            let current = decimal_string(account.balances.current.as_ref().unwrap());
            let decimals = current.split('.').nth(1).map_or(0, str::len);
            assert!(decimals <= 2, "{current}");
        }
    }

    #[test]
    fn drift_moves_balances_a_little() {
        let before = generate("item-d");
        let mut after = before.clone();
        drift(&mut after);
        for (old, new) in before.iter().zip(&after) {
            let moved = cents(new.balances.current.as_ref().unwrap())
                - cents(old.balances.current.as_ref().unwrap());
            assert!(moved.abs() <= 500, "{moved}");
            if let (Some(limit), Some(available)) = (&new.balances.limit, &new.balances.available) {
                let owed = cents(new.balances.current.as_ref().unwrap());
                assert_eq!(
                    cents(limit) - owed,
                    cents(available),
                    "a card's credit follows"
                );
            }
        }
        assert_eq!(
            before[2].balances.current, after[2].balances.current,
            "a CD does not move"
        );
    }
}
