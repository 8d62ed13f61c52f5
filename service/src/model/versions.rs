//! The order of model versions: the greatest valid version serves unless a pin says otherwise.

use std::cmp::Ordering;

/// Orders versions so that `1.10` > `1.9` and `2026.11.24-2` > `2026.11.24-1`: runs of digits
/// compare as numbers, everything else as text.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&d| d == b'0').count();
    &digits[zeros.min(digits.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_order_naturally() {
        assert_eq!(natural_cmp("1.10", "1.9"), Greater);
        assert_eq!(natural_cmp("2", "10"), Less);
        assert_eq!(natural_cmp("2026.11.24-2", "2026.11.24-1"), Greater);
        assert_eq!(natural_cmp("007", "7"), Equal);
        assert_eq!(natural_cmp("1.0", "1.0-rc1"), Less);
        assert_eq!(natural_cmp("v2", "v10"), Less);
    }
}
