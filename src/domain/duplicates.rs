//! Meld's duplicate connections: two connections of one customer to one institution through
//! one provider that list the same accounts are the same link made twice. The newest one is
//! the active one; every other becomes PARTIALLY_ACTIVE / INACTIVE_DUPLICATE pointing at it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::ids::ConnectionId;

/// What makes two accounts the same account to a customer: Plaid's mask, name and subtype
/// (account ids differ between two Items of one login).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccountShape {
    /// The last digits of the number.
    pub mask: Option<String>,
    /// The institution's name for it.
    pub name: String,
    /// Checking, savings, ...
    pub subtype: Option<String>,
}

/// A connection that may be a duplicate of another: one of the same customer, institution and
/// provider, still linked (not DELETED, EXPIRED or IN_PROGRESS).
#[derive(Clone, Debug, PartialEq)]
pub struct Linked {
    /// The connection.
    pub id: ConnectionId,
    /// When it was made: the newest of a group is the active one.
    pub created_at: DateTime<Utc>,
    /// Its active accounts.
    pub accounts: BTreeSet<AccountShape>,
    /// The connection it is an inactive duplicate of, if it is one.
    pub active_duplicate: Option<ConnectionId>,
}

/// What to change so that a group of duplicates has one active connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The newest connection of the group: it stays (or becomes) the active one.
    pub active: ConnectionId,
    /// The others whose pointer is not yet `active`: each becomes an inactive duplicate of it.
    pub demote: Vec<ConnectionId>,
    /// Whether `active` was itself an inactive duplicate and is active again.
    pub promote_active: bool,
}

/// The group `subject` forms with the `others` that list exactly its accounts, and what to
/// change in it; None when it has no duplicate, or when there is nothing to change. A
/// connection without accounts is nobody's duplicate: there is nothing to compare.
pub fn resolve(subject: &Linked, others: &[Linked]) -> Option<Resolution> {
    if subject.accounts.is_empty() {
        return None;
    }
    let mut group: Vec<&Linked> = others
        .iter()
        .filter(|other| other.id != subject.id && other.accounts == subject.accounts)
        .collect();
    if group.is_empty() {
        return None;
    }
    group.push(subject);
    let active = group
        .iter()
        .max_by_key(|linked| (linked.created_at, linked.id))
        .expect("the group holds the subject");
    let demote: Vec<ConnectionId> = group
        .iter()
        .filter(|linked| linked.id != active.id && linked.active_duplicate != Some(active.id))
        .map(|linked| linked.id)
        .collect();
    let promote_active = active.active_duplicate.is_some();
    if demote.is_empty() && !promote_active {
        return None;
    }
    Some(Resolution {
        active: active.id,
        demote,
        promote_active,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use uuid::Uuid;

    use super::*;

    fn shapes(masks: &[&str]) -> BTreeSet<AccountShape> {
        masks
            .iter()
            .map(|mask| AccountShape {
                mask: Some(mask.to_string()),
                name: format!("Account {mask}"),
                subtype: Some("checking".into()),
            })
            .collect()
    }

    fn linked(n: u128, age_days: i64, masks: &[&str]) -> Linked {
        Linked {
            id: ConnectionId(Uuid::from_u128(n)),
            created_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap()
                - Duration::days(age_days),
            accounts: shapes(masks),
            active_duplicate: None,
        }
    }

    #[test]
    fn the_newest_of_a_pair_is_the_active_one() {
        let old = linked(1, 30, &["0000", "1111"]);
        let new = linked(2, 0, &["1111", "0000"]);
        let resolution = resolve(&new, std::slice::from_ref(&old)).unwrap();
        assert_eq!(resolution.active, new.id);
        assert_eq!(resolution.demote, vec![old.id]);
        assert!(!resolution.promote_active);
        // Seen from the older one, the outcome is the same.
        assert_eq!(resolve(&old, &[new]), Some(resolution));
    }

    #[test]
    fn different_accounts_are_no_duplicates() {
        let old = linked(1, 30, &["0000", "1111"]);
        assert_eq!(
            resolve(&linked(2, 0, &["0000"]), std::slice::from_ref(&old)),
            None
        );
        assert_eq!(
            resolve(&linked(3, 0, &["0000", "1111", "2222"]), &[old]),
            None
        );
    }

    #[test]
    fn a_connection_without_accounts_is_nobodys_duplicate() {
        let empty = linked(2, 0, &[]);
        assert_eq!(resolve(&empty, &[linked(1, 30, &[])]), None);
    }

    #[test]
    fn a_settled_group_needs_nothing() {
        let new = linked(2, 0, &["0000"]);
        let old = Linked {
            active_duplicate: Some(new.id),
            ..linked(1, 30, &["0000"])
        };
        assert_eq!(resolve(&new, std::slice::from_ref(&old)), None);
        assert_eq!(resolve(&old, &[new]), None);
    }

    #[test]
    fn a_third_link_takes_over_and_the_first_is_pointed_at_it() {
        let second = linked(2, 10, &["0000"]);
        let first = Linked {
            active_duplicate: Some(second.id),
            ..linked(1, 30, &["0000"])
        };
        let third = linked(3, 0, &["0000"]);
        let resolution = resolve(&third, &[first.clone(), second.clone()]).unwrap();
        assert_eq!(resolution.active, third.id);
        assert_eq!(
            resolution.demote.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([first.id, second.id])
        );
    }

    #[test]
    fn an_inactive_duplicate_that_is_the_newest_becomes_active_again() {
        let older = linked(1, 30, &["0000"]);
        let newest = Linked {
            active_duplicate: Some(older.id),
            ..linked(2, 0, &["0000"])
        };
        let resolution = resolve(&older, std::slice::from_ref(&newest)).unwrap();
        assert_eq!(resolution.active, newest.id);
        assert_eq!(resolution.demote, vec![older.id]);
        assert!(resolution.promote_active);
    }

    #[test]
    fn a_tie_in_time_is_broken_by_id() {
        let a = linked(1, 0, &["0000"]);
        let b = linked(2, 0, &["0000"]);
        assert_eq!(resolve(&a, std::slice::from_ref(&b)).unwrap().active, b.id);
        assert_eq!(resolve(&b, &[a]).unwrap().active, b.id);
    }
}
