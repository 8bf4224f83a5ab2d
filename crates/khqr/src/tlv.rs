//! Tag-length-value reading and writing, with lengths in UTF-16 code units.
//! The reader advances at least four units per field, so it always ends;
//! every inconsistency is an error naming the tag, never a panic.

use super::tags::{self, units};
use super::{Field, KhqrError};

/// Appends `tag`, the two-digit length of `value` and `value`.
pub fn write(out: &mut String, tag: &str, value: &str) {
    out.push_str(tag);
    out.push_str(&format!("{:02}", units(value)));
    out.push_str(value);
}

fn two_digits(u: &[u16]) -> Option<(String, usize)> {
    let digit = |c: u16| (u16::from(b'0')..=u16::from(b'9')).contains(&c);
    match u {
        [a, b] if digit(*a) && digit(*b) => {
            let n = usize::from(*a - u16::from(b'0')) * 10 + usize::from(*b - u16::from(b'0'));
            Some((String::from_utf16_lossy(u), n))
        }
        _ => None,
    }
}

/// Splits `s` into fields. `parent` is the template's tag for sub-fields
/// (used in messages, e.g. `62.01`), `None` at the top level.
pub fn read(s: &str, parent: Option<&'static str>) -> Result<Vec<Field>, KhqrError> {
    let u: Vec<u16> = s.encode_utf16().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let path = |tag: &str| match parent {
        Some(p) => format!("{p}.{tag}"),
        None => tag.to_string(),
    };
    let name = |tag: &str| match parent {
        Some(p) => tags::sub_name(p, tag),
        None => tags::name(tag),
    };
    while i < u.len() {
        let rest = u.len() - i;
        let Some((tag, _)) = u.get(i..i + 2).and_then(two_digits) else {
            return Err(KhqrError::Malformed {
                tag: parent.map_or("?".into(), |p| format!("{p}.?")),
                name: parent.map_or("", tags::name),
                reason: format!(
                    "expected a two-digit tag at code unit {i}, found {:?}",
                    String::from_utf16_lossy(&u[i..(i + 2).min(u.len())])
                ),
            });
        };
        let Some((_, len)) = u.get(i + 2..i + 4).and_then(two_digits) else {
            return Err(KhqrError::Malformed {
                tag: path(&tag),
                name: name(&tag),
                reason: format!(
                    "expected a two-digit length, found {:?}",
                    String::from_utf16_lossy(&u[(i + 2).min(u.len())..(i + 4).min(u.len())])
                ),
            });
        };
        if len > rest - 4 {
            return Err(KhqrError::Malformed {
                tag: path(&tag),
                name: name(&tag),
                reason: format!(
                    "length {len} runs past the end ({} code units left)",
                    rest - 4
                ),
            });
        }
        let value =
            String::from_utf16(&u[i + 4..i + 4 + len]).map_err(|_| KhqrError::Malformed {
                tag: path(&tag),
                name: name(&tag),
                reason: format!("length {len} cuts a character in two"),
            })?;
        if out.iter().any(|f: &Field| f.tag == tag) {
            return Err(KhqrError::Malformed {
                tag: path(&tag),
                name: name(&tag),
                reason: "appears twice".into(),
            });
        }
        out.push(Field { tag, value });
        i += 4 + len;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic on a bad fixture
mod tests {
    use super::*;

    #[test]
    fn lengths_count_utf16_code_units() {
        let mut s = String::new();
        write(&mut s, "59", "ហាង🍰");
        assert_eq!(s, "5905ហាង🍰");
        let f = read(&s, None).unwrap();
        assert_eq!(f[0].value, "ហាង🍰");
    }

    #[test]
    fn a_length_that_splits_a_surrogate_pair_is_refused() {
        assert!(read("5901🍰", None).is_err());
    }

    #[test]
    fn short_and_overlong_fields_are_refused() {
        for s in ["5", "59", "590", "5902a", "59x1a", "0102120102"] {
            assert!(read(s, None).is_err(), "{s:?}");
        }
    }
}
