//! Amounts in the simulator: whole cents inside, JSON numbers with at most two decimals outside.

use serde_json::Number;

use linkstate_wire::plaid::decimal_string;

/// Cents as a JSON number (`12345` → `123.45`, `1500` → `15`).
pub fn money(cents: i64) -> Number {
    if cents % 100 == 0 {
        return Number::from(cents / 100);
    }
    // Any amount with two decimals prints back exactly from its nearest f64.
    Number::from_f64(cents as f64 / 100.0).expect("a finite amount")
}

/// A JSON amount with at most two decimals, in cents (`-12.5` → `-1250`).
pub fn cents(amount: &Number) -> i64 {
    let text = decimal_string(amount);
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction = format!("{fraction:0<2}");
    let value = whole.parse::<i64>().unwrap_or(0) * 100 + fraction[..2].parse::<i64>().unwrap_or(0);
    if negative { -value } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_prints_two_decimals_at_most() {
        assert_eq!(decimal_string(&money(12345)), "123.45");
        assert_eq!(decimal_string(&money(10)), "0.1");
        assert_eq!(decimal_string(&money(1500)), "15");
        assert_eq!(decimal_string(&money(-420_000)), "-4200");
        assert_eq!(decimal_string(&money(-7)), "-0.07");
    }

    #[test]
    fn cents_reads_money_back() {
        for value in [0, 1, 7, 10, 99, 100, 12345, -1250, -7, 123_456_789] {
            assert_eq!(cents(&money(value)), value, "{value}");
        }
    }
}
