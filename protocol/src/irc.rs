//! IRC lines, without I/O: a received line split into tags, source, command and parameters
//! (RFC 1459/2812 as the Modern IRC documents describe them), and the writer every line the
//! IRC door sends goes through.
//!
//! The writer is the one place that decides where a parameter ends: middle parameters are
//! single words the door has validated (nicks, channel names, numbers), and the last one is
//! always written after ` :`. Any CR, LF or NUL is turned into a space on the way out, so no
//! text can end a line early and start a second one with a forged source.

/// Longest IRC line without tags, CR LF included (RFC 1459).
pub const MAX_LINE: usize = 512;
/// Longest tag section a client may send (IRCv3 message-tags), the `@` and space included.
pub const MAX_CLIENT_TAGS: usize = 4096;
/// Most parameters in one message.
pub const MAX_PARAMS: usize = 15;

/// One received IRC message; the `&str`s borrow from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The tag section without the `@`, if any.
    pub tags: Option<&'a str>,
    /// The source without the `:`, if any (clients normally send none).
    pub source: Option<&'a str>,
    /// The command or numeric, as sent (the door compares it without regard to case).
    pub command: &'a str,
    /// The parameters; the last one may contain spaces.
    pub params: Vec<&'a str>,
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// Nothing but spaces (or tags and a source).
    Empty,
    /// The part without tags is longer than [`MAX_LINE`].
    TooLong,
    /// The tag section is longer than [`MAX_CLIENT_TAGS`].
    TagsTooLong,
}

impl<'a> Message<'a> {
    /// Splits one line (without its CR LF).
    pub fn parse(line: &'a str) -> Result<Message<'a>, LineError> {
        let mut rest = line;
        let mut tags = None;
        if let Some(after) = rest.strip_prefix('@') {
            let (t, r) = after.split_once(' ').unwrap_or((after, ""));
            if t.len() + 2 > MAX_CLIENT_TAGS {
                return Err(LineError::TagsTooLong);
            }
            tags = Some(t);
            rest = r;
        }
        // 510 bytes of message plus the CR LF the reader already removed.
        if rest.len() > MAX_LINE - 2 {
            return Err(LineError::TooLong);
        }
        rest = rest.trim_start_matches(' ');
        let mut source = None;
        if let Some(after) = rest.strip_prefix(':') {
            let (s, r) = after.split_once(' ').unwrap_or((after, ""));
            source = Some(s);
            rest = r.trim_start_matches(' ');
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(LineError::Empty);
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if params.len() == MAX_PARAMS - 1 {
                params.push(rest.strip_prefix(':').unwrap_or(rest));
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing);
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p);
            rest = r;
        }
        Ok(Message {
            tags,
            source,
            command,
            params,
        })
    }

    /// Parameter `i`, if sent.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied()
    }

    /// The value of a client tag, if sent (unescaped values are returned as sent).
    pub fn tag(&self, key: &str) -> Option<&'a str> {
        self.tags?.split(';').find_map(|t| match t.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if t == key => Some(""),
            _ => None,
        })
    }
}

/// Appends `s`, turning CR, LF and NUL into spaces.
fn put_safe(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        out.extend(s.bytes().map(|b| match b {
            b'\r' | b'\n' | 0 => b' ',
            b => b,
        }));
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// Appends a middle parameter: one word, never empty, never starting with `:`.
fn put_middle(out: &mut Vec<u8>, s: &str) {
    out.push(b' ');
    if s.is_empty() || s.starts_with(':') {
        out.push(b'*');
    }
    let start = out.len();
    put_safe(out, s);
    for b in &mut out[start..] {
        if *b == b' ' {
            *b = b'_';
        }
    }
}

/// Appends one IRC line: `[@tags ][:source ]COMMAND middle... [:trailing]\r\n`.
pub fn put_line(
    out: &mut Vec<u8>,
    tags: Option<&str>,
    source: &str,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) {
    if let Some(tags) = tags {
        out.push(b'@');
        put_safe(out, tags);
        out.push(b' ');
    }
    if !source.is_empty() {
        out.push(b':');
        put_safe(out, source);
        out.push(b' ');
    }
    put_safe(out, command);
    for m in middle {
        put_middle(out, m);
    }
    if let Some(t) = trailing {
        out.extend_from_slice(b" :");
        put_safe(out, t);
    }
    out.extend_from_slice(b"\r\n");
}

/// Escapes a tag value (IRCv3 message-tags): `;` `\` space CR LF.
pub fn escape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_clients_send() {
        let m = Message::parse("PRIVMSG #lobby :hello there").unwrap();
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#lobby", "hello there"]);
        let m = Message::parse("@+typing=active;msgid=1 :me!u@h JOIN #a,#b key").unwrap();
        assert_eq!(m.tags, Some("+typing=active;msgid=1"));
        assert_eq!(m.tag("+typing"), Some("active"));
        assert_eq!(m.source, Some("me!u@h"));
        assert_eq!(m.params, ["#a,#b", "key"]);
        let m = Message::parse("USER guest 0 * :Real Name").unwrap();
        assert_eq!(m.params, ["guest", "0", "*", "Real Name"]);
        let m = Message::parse("CAP LS 302").unwrap();
        assert_eq!(m.params, ["LS", "302"]);
        let m = Message::parse("PRIVMSG bob :").unwrap();
        assert_eq!(m.params, ["bob", ""]);
        assert_eq!(Message::parse("   "), Err(LineError::Empty));
        assert_eq!(
            Message::parse(&format!("PRIVMSG #a :{}", "x".repeat(600))),
            Err(LineError::TooLong)
        );
        let many = format!("X {}", "a ".repeat(40));
        assert_eq!(Message::parse(&many).unwrap().params.len(), MAX_PARAMS);
    }

    #[test]
    fn written_lines_cannot_be_split() {
        let mut out = Vec::new();
        put_line(
            &mut out,
            Some("time=2026-01-01T00:00:00.000Z"),
            "a!a@h",
            "PRIVMSG",
            &["#lobby"],
            Some("hi\r\n:evil!e@h PRIVMSG #lobby :owned"),
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("\r\n").count(), 1);
        assert!(text.ends_with("\r\n"));
        let mut out = Vec::new();
        put_line(&mut out, None, "srv", "001", &["", ":x y"], Some("t"));
        assert_eq!(out, b":srv 001 * *:x_y :t\r\n");
    }

    #[test]
    fn tag_escaping() {
        assert_eq!(escape_tag("a b;c\\"), "a\\sb\\:c\\\\");
    }
}
