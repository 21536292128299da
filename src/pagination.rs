//! Opaque, tamper-proof page tokens for keyset pagination.
//!
//! A token carries the last row's sort key and an HMAC over that key plus
//! the query it belongs to (caller, list kind, filters). A token edited by a
//! client, or replayed by another caller or with other filters, fails the
//! MAC and is INVALID_ARGUMENT. The MAC key is shared by every replica
//! through the database, so tokens work across replicas and restarts.

use aws_lc_rs::{constant_time, hmac};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::storage::Cursor;

/// Bytes of HMAC-SHA256 kept in a token: 128 bits resist forgery and keep
/// tokens short.
const MAC_LEN: usize = 16;

/// page_size 0 means this many rows.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Larger page sizes are clamped to this.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Resolves a requested page size: 0 → default, above max → max, negative → error.
pub fn page_size(requested: i32) -> Result<u32, String> {
    match u32::try_from(requested) {
        Err(_) => Err("must not be negative".into()),
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(MAX_PAGE_SIZE)),
    }
}

/// Signs and verifies page tokens.
pub struct PageTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(..)")
    }
}

impl PageTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, binding: &[&str], payload: &str) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in binding {
            // Length-prefixing keeps ("ab","c") and ("a","bc") distinct.
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        ctx.update(payload.as_bytes());
        ctx.sign()
    }

    /// A token for the page after `cursor`, valid only for `binding`.
    pub fn encode(&self, binding: &[&str], cursor: &Cursor) -> String {
        let payload = format!("{}\n{}", cursor.work_date, cursor.id);
        let tag = self.mac(binding, &payload);
        let mut bytes = payload.into_bytes();
        bytes.extend_from_slice(&tag.as_ref()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cursor in `token`, if it was issued for `binding`.
    pub fn decode(&self, binding: &[&str], token: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let split = bytes.len().checked_sub(MAC_LEN)?;
        let (payload, tag) = bytes.split_at(split);
        let payload = std::str::from_utf8(payload).ok()?;
        let expected = self.mac(binding, payload);
        constant_time::verify_slices_are_equal(&expected.as_ref()[..MAC_LEN], tag).ok()?;
        let (work_date, id) = payload.split_once('\n')?;
        Some(Cursor {
            work_date: work_date.to_owned(),
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            work_date: "2026-11-27".into(),
            id: "abc".into(),
        }
    }

    #[test]
    fn a_token_round_trips_for_its_own_query_only() {
        let tokens = PageTokens::new(b"secret");
        let token = tokens.encode(&["list", "alice", "", ""], &cursor());
        assert_eq!(
            tokens.decode(&["list", "alice", "", ""], &token),
            Some(cursor())
        );
        assert_eq!(
            tokens.decode(&["list", "bob", "", ""], &token),
            None,
            "foreign caller"
        );
        assert_eq!(
            tokens.decode(&["list", "alice", "x", ""], &token),
            None,
            "other filters"
        );
        assert_eq!(
            PageTokens::new(b"other").decode(&["list", "alice", "", ""], &token),
            None
        );
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let tokens = PageTokens::new(b"secret");
        let token = tokens.encode(&["list", "alice"], &cursor());
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        bytes[0] ^= 1;
        assert_eq!(
            tokens.decode(&["list", "alice"], &URL_SAFE_NO_PAD.encode(bytes)),
            None
        );
        assert_eq!(tokens.decode(&["list", "alice"], "not a token"), None);
        assert_eq!(tokens.decode(&["list", "alice"], ""), None);
    }

    #[test]
    fn page_sizes_default_clamp_and_refuse_negatives() {
        assert_eq!(page_size(0), Ok(100));
        assert_eq!(page_size(50), Ok(50));
        assert_eq!(page_size(5000), Ok(1000));
        assert!(page_size(-1).is_err());
    }
}
