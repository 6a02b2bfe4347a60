//! The account and routing numbers of a simulated Item (`/auth/get`), shaped like the sandbox's:
//! the account number ends with the mask, the routing number is the institution's.

use super::ids;
use super::institutions::InstitutionSeed;
use linkstate_wire::Secret;
use linkstate_wire::plaid::{AccountBase, AuthGetNumbers, NumbersAch};

/// The wire routing number the Plaid sandbox answers.
const WIRE_ROUTING: &str = "021000021";

/// ACH numbers for every depository account; other networks stay empty, as for US banks.
pub fn numbers(institution: &InstitutionSeed, accounts: &[AccountBase]) -> AuthGetNumbers {
    let routing = institution
        .routing_numbers
        .first()
        .copied()
        .unwrap_or(WIRE_ROUTING);
    let ach = accounts
        .iter()
        .filter(|account| account.r#type == "depository")
        .map(|account| NumbersAch {
            account_id: account.account_id.clone(),
            account: Secret::new(account_number(account)),
            routing: Secret::new(routing),
            wire_routing: Some(Secret::new(WIRE_ROUTING)),
            is_tokenized_account_number: Some(false),
        })
        .collect();
    AuthGetNumbers {
        ach,
        ..AuthGetNumbers::default()
    }
}

/// Twelve digits derived from the account id, then the mask.
fn account_number(account: &AccountBase) -> String {
    let digits = ids::derived_u64(&account.account_id) % 1_000_000_000_000;
    format!("{digits:012}{}", account.mask.as_deref().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{accounts, institutions};

    #[test]
    fn depository_accounts_have_ach_numbers() {
        let accounts = accounts::generate("item-a");
        let institution = institutions::find("ins_109508").unwrap();
        let numbers = numbers(institution, &accounts);
        assert_eq!(numbers.ach.len(), 4, "all but the credit card");
        let checking = &numbers.ach[0];
        assert_eq!(checking.account_id, accounts[0].account_id);
        assert_eq!(checking.routing.expose(), "011401533");
        assert_eq!(checking.account.expose().len(), 16);
        assert!(
            checking
                .account
                .expose()
                .ends_with(accounts[0].mask.as_deref().unwrap())
        );
        assert!(numbers.eft.is_empty() && numbers.bacs.is_empty());
    }
}
