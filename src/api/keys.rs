//! API keys: `bkp_<16 hex id>_<64 hex secret>`. Only the id and a SHA-256
//! of the secret are stored; a presented key is found by its id and its
//! secret's hash compared in constant time. A key never appears in logs,
//! errors or metrics (its id may).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::ApiKeyRow;

/// The scopes of a key that may write (create, cancel).
pub const READ_WRITE: &str = "read write";
/// The scopes of a read-only key.
pub const READ: &str = "read";

/// A new key: the row to store and the key to print once.
pub struct NewKey {
    /// What is stored.
    pub row: ApiKeyRow,
    /// The key itself: shown once, never stored.
    pub key: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("row", &self.row)
            .field("key", &"[redacted]")
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Makes a key named `name` (1 to 100 characters, checked by the caller).
pub fn make(name: &str, read_only: bool, now_ms: i64) -> NewKey {
    let id: [u8; 8] = rand::random();
    let secret: [u8; 32] = rand::random();
    let (id, secret) = (hex(&id), hex(&secret));
    NewKey {
        row: ApiKeyRow {
            id: format!("key_{id}"),
            name: name.to_string(),
            scopes: if read_only { READ } else { READ_WRITE }.into(),
            key_hash: hash(&secret),
            created_ms: now_ms,
            revoked_ms: None,
        },
        key: format!("bkp_{id}_{secret}"),
    }
}

/// The stored id a presented key names, and its secret; `None` when it
/// is not shaped like a key.
pub fn parse(key: &str) -> Option<(String, &str)> {
    let rest = key.strip_prefix("bkp_")?;
    let (id, secret) = rest.split_once('_')?;
    let hexy = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexy(id, 16) && hexy(secret, 64)).then(|| (format!("key_{id}"), secret))
}

/// Whether `secret` is the one `row` was made with (constant time).
pub fn matches(row: &ApiKeyRow, secret: &str) -> bool {
    bool::from(hash(secret).as_bytes().ct_eq(row.key_hash.as_bytes()))
}

/// Whether the key's scopes allow writing.
pub fn can_write(row: &ApiKeyRow) -> bool {
    row.scopes.split(' ').any(|s| s == "write")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_by_its_id_and_matched_by_its_secret_only() {
        let k = make("shop", false, 1);
        let (id, secret) = parse(&k.key).expect("a key parses");
        assert_eq!(id, k.row.id);
        assert!(matches(&k.row, secret));
        assert!(!matches(&k.row, &"0".repeat(64)));
        assert!(can_write(&k.row));
        assert!(!can_write(&make("ro", true, 1).row));
        assert!(!k.row.key_hash.contains(secret), "only a hash is stored");
        assert!(!format!("{k:?}").contains(secret), "Debug hides the key");
        for bad in [
            "",
            "bkp_",
            "bkp_12_34",
            "Bearer x",
            &k.key[..k.key.len() - 1],
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
