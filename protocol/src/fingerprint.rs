//! How a certificate's SHA-256 fingerprint is written: the server logs it, the client pins
//! and remembers it, people copy it from one to the other. Upper-case hex pairs joined by
//! colons (`AB:CD:…`), as ssh and browsers show them. (The hashing itself is the caller's.)

/// A digest in the written form.
pub fn format(digest: &[u8]) -> String {
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A SHA-256 fingerprint as a person typed it (any case, with or without colons, an
/// optional `SHA256:` prefix) in the written form; `None` unless it is 32 bytes of hex.
pub fn parse(typed: &str) -> Option<String> {
    let typed = typed.trim();
    let typed = typed
        .strip_prefix("SHA256:")
        .or_else(|| typed.strip_prefix("sha256:"))
        .unwrap_or(typed);
    let hex: String = typed.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[2 * i..2 * i + 2]).collect();
    Some(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_typed() {
        let canonical = format(&[0xab; 32]);
        assert!(canonical.starts_with("AB:AB:"), "{canonical}");
        assert_eq!(canonical.len(), 32 * 3 - 1);
        assert_eq!(parse(&canonical).as_deref(), Some(&*canonical));
        let bare = canonical.replace(':', "").to_lowercase();
        assert_eq!(parse(&bare).as_deref(), Some(&*canonical));
        assert_eq!(
            parse(&format!("SHA256:{bare}")).as_deref(),
            Some(&*canonical)
        );
        assert_eq!(parse("AB:CD"), None);
        assert_eq!(parse(&"zz".repeat(32)), None);
    }
}
