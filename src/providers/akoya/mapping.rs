//! Akoya's answers in linkstate's terms.

use std::collections::HashMap;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate};

use super::{AccountInfo, AkoyaError, AkoyaErrorKind, Balance, Customer, Transaction, Wrapped};
use crate::domain::connection_state::AggregationFailure;
use crate::domain::financial_account::{AccountOwner, ProviderAccount};
use crate::domain::transactions::{ProviderTransaction, TransactionStatus};

/// Whether Akoya's account status means the account is still there (Meld: ACTIVE), or
/// closed or paid off (INACTIVE). An absent status counts as open.
pub fn is_open(info: &AccountInfo) -> bool {
    !matches!(
        info.status.as_deref(),
        Some("CLOSED" | "PAID" | "PENDINGCLOSE")
    )
}

/// Whether an account's amounts follow the liability convention (a card, a loan).
pub fn is_liability(account: &Wrapped<AccountInfo>) -> bool {
    match account.value.balance_type.as_deref() {
        Some(kind) => kind.eq_ignore_ascii_case("LIABILITY"),
        None => matches!(account.kind.as_str(), "locAccount" | "loanAccount"),
    }
}

/// An Akoya account, with its balance when Akoya gave one, as a provider-neutral account:
/// name = nickname, else productName (Meld's mapping); subtype = accountType.
pub fn account(account: &Wrapped<AccountInfo>, balance: Option<&Balance>) -> ProviderAccount {
    let info = &account.value;
    let name = info
        .nickname
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| info.product_name.clone())
        .or_else(|| info.account_type.clone())
        .unwrap_or_else(|| "Account".to_owned());
    let amount = |value: Option<&super::Amount>| value.map(|a| a.0.clone());
    ProviderAccount {
        provider_account_id: info.account_id.clone(),
        name,
        official_name: info.product_name.clone(),
        mask: info.account_number_display.as_deref().and_then(mask),
        account_type: Some(account_type(&account.kind).to_owned()),
        subtype: info.account_type.clone(),
        // A loan has a principal balance and no current one; a line of credit has available
        // credit where a deposit has an available balance.
        current_balance: balance.and_then(|b| {
            amount(b.current_balance.as_ref()).or_else(|| amount(b.principal_balance.as_ref()))
        }),
        available_balance: balance.and_then(|b| {
            amount(b.available_balance.as_ref()).or_else(|| amount(b.available_credit.as_ref()))
        }),
        currency: info
            .currency
            .as_ref()
            .and_then(|c| c.currency_code.clone())
            .or_else(|| balance?.currency.as_ref()?.currency_code.clone()),
    }
}

/// The accounts with their balances, matched by account id.
pub fn accounts(
    infos: &[Wrapped<AccountInfo>],
    balances: &[Wrapped<Balance>],
) -> Vec<ProviderAccount> {
    let by_id: HashMap<&str, &Balance> = balances
        .iter()
        .map(|b| (b.value.account_id.as_str(), &b.value))
        .collect();
    infos
        .iter()
        .map(|info| account(info, by_id.get(info.value.account_id.as_str()).copied()))
        .collect()
}

/// Meld's account type for Akoya's wrapper.
fn account_type(kind: &str) -> &str {
    match kind {
        "depositAccount" => "depository",
        "locAccount" => "credit",
        "loanAccount" => "loan",
        "investmentAccount" => "investment",
        "insuranceAccount" => "insurance",
        "annuityAccount" => "annuity",
        other => other,
    }
}

/// The last four digits of a display number such as `xxx4321` or `****-4321`.
fn mask(display: &str) -> Option<String> {
    let digits: Vec<char> = display.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| digits[digits.len().saturating_sub(4)..].iter().collect())
}

/// The consenting customer as the owner of the accounts it holds (all of them when Akoya
/// does not say which).
pub fn owners(customer: &Customer, accounts: &[String]) -> Vec<(String, Vec<AccountOwner>)> {
    let name = customer.name.as_ref().map(|n| {
        [&n.first, &n.middle, &n.last]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let owner = AccountOwner {
        names: name.into_iter().filter(|n| !n.is_empty()).collect(),
        emails: customer.email.clone().unwrap_or_default(),
        phone_numbers: customer.telephones.clone().unwrap_or_default(),
    };
    let held = customer.accounts.as_deref().unwrap_or(accounts);
    held.iter()
        .map(|account| (account.clone(), vec![owner.clone()]))
        .collect()
}

/// An Akoya transaction in linkstate's convention: positive is money out of the account (as
/// Plaid's, and Akoya's own for an asset account). `debitCreditMemo` decides the direction;
/// without it the amount is read as signed by the account's convention. None for a
/// transaction without a readable date.
pub fn transaction(tx: &Transaction, liability: bool) -> Option<ProviderTransaction> {
    let magnitude = tx.amount.0.abs();
    let amount = match tx.debit_credit_memo.as_deref() {
        Some(memo) if memo.eq_ignore_ascii_case("DEBIT") => magnitude,
        Some(memo) if memo.eq_ignore_ascii_case("CREDIT") => -magnitude,
        // A liability's DEBIT is "-" in Akoya's text: money out is then negative.
        _ if liability => -tx.amount.0.clone(),
        _ => tx.amount.0.clone(),
    };
    let posted =
        matches!(tx.status.as_deref(), Some("POSTED") | None) && tx.posted_timestamp.is_some();
    let transaction_date = tx
        .transaction_timestamp
        .as_deref()
        .or(tx.posted_timestamp.as_deref())
        .and_then(day)?;
    let posted_date = posted
        .then(|| tx.posted_timestamp.as_deref().and_then(day))
        .flatten();
    Some(ProviderTransaction {
        provider_transaction_id: tx.transaction_id.clone(),
        provider_account_id: tx.account_id.clone(),
        amount: normalized(amount),
        currency: tx.currency.as_ref().and_then(|c| c.currency_code.clone()),
        description: tx
            .description
            .clone()
            .unwrap_or_else(|| tx.transaction_type.clone().unwrap_or_default()),
        status: if posted_date.is_some() {
            TransactionStatus::Posted
        } else {
            TransactionStatus::Pending
        },
        transaction_date,
        posted_date,
    })
}

/// Amounts compare by value, but an unchanged transaction must also read back unchanged: two
/// decimals, as money is stored.
fn normalized(amount: BigDecimal) -> BigDecimal {
    if amount.fractional_digit_count() < 2 {
        amount.with_scale(2)
    } else {
        amount
    }
}

/// The UTC day of an RFC 3339 timestamp, or of a plain date.
fn day(text: &str) -> Option<NaiveDate> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.to_utc().date_naive())
        .ok()
        .or_else(|| NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok())
}

/// What an Akoya failure means for the connection: a refused consent needs the customer
/// (RECONNECT_REQUIRED / TOKEN_EXPIRED); outages and throttling are Akoya's (DEGRADED).
pub fn failure(error: &AkoyaError) -> AggregationFailure {
    match error.kind() {
        AkoyaErrorKind::ConsentRefused => AggregationFailure::TokenExpired,
        AkoyaErrorKind::Unavailable if error.http_status() == Some(503) => {
            AggregationFailure::InstitutionUnavailable
        }
        AkoyaErrorKind::Unavailable | AkoyaErrorKind::RateLimited => {
            AggregationFailure::ProviderUnavailable
        }
        AkoyaErrorKind::NotConfigured
        | AkoyaErrorKind::ClientRefused
        | AkoyaErrorKind::Refused
        | AkoyaErrorKind::Unexpected => AggregationFailure::Unforeseen,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::providers::akoya::{Amount, Currency};

    fn deposit(nickname: Option<&str>) -> Wrapped<AccountInfo> {
        Wrapped {
            kind: "depositAccount".into(),
            value: AccountInfo {
                account_id: "a1".into(),
                account_type: Some("CHECKING".into()),
                account_number_display: Some("xxx4321".into()),
                product_name: Some("Premier Checking".into()),
                nickname: nickname.map(str::to_owned),
                status: Some("OPEN".into()),
                currency: Some(Currency {
                    currency_code: Some("USD".into()),
                }),
                ..AccountInfo::default()
            },
        }
    }

    fn amount(text: &str) -> Amount {
        Amount(BigDecimal::from_str(text).unwrap())
    }

    #[test]
    fn accounts_follow_melds_mapping() {
        let balance = Balance {
            account_id: "a1".into(),
            current_balance: Some(amount("1234.56")),
            available_balance: Some(amount("1200.5")),
            ..Balance::default()
        };
        let mapped = account(&deposit(Some("Bills")), Some(&balance));
        assert_eq!(mapped.name, "Bills");
        assert_eq!(mapped.subtype.as_deref(), Some("CHECKING"));
        assert_eq!(mapped.account_type.as_deref(), Some("depository"));
        assert_eq!(mapped.mask.as_deref(), Some("4321"));
        assert_eq!(mapped.current_balance.unwrap().to_string(), "1234.56");
        assert_eq!(account(&deposit(None), None).name, "Premier Checking");
    }

    #[test]
    fn closed_and_paid_accounts_are_inactive() {
        let mut info = deposit(None).value;
        assert!(is_open(&info));
        for status in ["CLOSED", "PAID", "PENDINGCLOSE"] {
            info.status = Some(status.into());
            assert!(!is_open(&info), "{status}");
        }
    }

    fn tx(amount_text: &str, memo: Option<&str>, status: &str) -> Transaction {
        Transaction {
            account_id: "a1".into(),
            transaction_id: "t1".into(),
            amount: amount(amount_text),
            debit_credit_memo: memo.map(str::to_owned),
            status: Some(status.into()),
            description: Some("Coffee".into()),
            transaction_timestamp: Some("2026-11-20T14:15:22Z".into()),
            posted_timestamp: (status == "POSTED").then(|| "2026-11-21T02:00:00Z".into()),
            ..Transaction::default()
        }
    }

    #[test]
    fn debits_are_money_out_whatever_the_sign_sent() {
        let debit = transaction(&tx("4.25", Some("DEBIT"), "POSTED"), false).unwrap();
        assert_eq!(debit.amount.to_string(), "4.25");
        let credit = transaction(&tx("0.29", Some("CREDIT"), "POSTED"), false).unwrap();
        assert_eq!(credit.amount.to_string(), "-0.29");
        let signed_credit = transaction(&tx("-0.29", Some("CREDIT"), "POSTED"), false).unwrap();
        assert_eq!(signed_credit.amount.to_string(), "-0.29");
        // No memo: a liability's debit is "-" in Akoya's convention.
        let liability = transaction(&tx("-10", None, "POSTED"), true).unwrap();
        assert_eq!(liability.amount.to_string(), "10.00");
    }

    #[test]
    fn pending_has_no_posted_date_and_dates_are_utc_days() {
        let pending = transaction(&tx("1", Some("DEBIT"), "PENDING"), false).unwrap();
        assert_eq!(pending.status, TransactionStatus::Pending);
        assert_eq!(pending.posted_date, None);
        let posted = transaction(&tx("1", Some("DEBIT"), "POSTED"), false).unwrap();
        assert_eq!(posted.transaction_date.to_string(), "2026-11-20");
        assert_eq!(posted.posted_date.unwrap().to_string(), "2026-11-21");
    }

    #[test]
    fn refused_consents_need_the_customer() {
        let refused = AkoyaError::Api {
            http_status: 401,
            error: super::super::FdxError {
                code: 602,
                message: None,
                debug_message: None,
            },
        };
        assert_eq!(failure(&refused), AggregationFailure::TokenExpired);
        assert_eq!(
            failure(&AkoyaError::Timeout),
            AggregationFailure::ProviderUnavailable
        );
    }

    #[test]
    fn owners_hold_every_account_unless_akoya_says_which() {
        let customer = Customer {
            name: Some(super::super::Name {
                first: Some("Ada".into()),
                middle: None,
                last: Some("Lovelace".into()),
            }),
            email: Some(vec!["ada@example.com".into()]),
            ..Customer::default()
        };
        let owned = owners(&customer, &["a1".into(), "a2".into()]);
        assert_eq!(owned.len(), 2);
        assert_eq!(owned[0].1[0].names, ["Ada Lovelace"]);
    }
}
