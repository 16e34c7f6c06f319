//! The terminal: raw mode that is always undone, and the one owner of stdout while it lasts.
//!
//! [`RawGuard`] switches raw mode on and restores the terminal when dropped; a panic hook
//! installed with it restores the terminal before the panic message is printed, so no path
//! leaves a shell without echo. [`Screen`] prints incoming lines *above* the input line and
//! then redraws the prompt and the half-typed line with absolute columns, everything queued
//! and flushed once, so nothing the user is typing is ever clobbered.

use std::borrow::Cow;
use std::io::{self, Stdout, Write};
use std::sync::Once;

use crossterm::cursor::{MoveToColumn, RestorePosition, SavePosition};
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use crossterm::style::{Color, Print, ResetColor, SetForegroundColor};
use crossterm::terminal::{self, Clear, ClearType};
use crossterm::{execute, queue};

use crate::input::LineEditor;

/// What a printed line is, so the user can tell them apart at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// What this user sent.
    Own,
    /// A message from another user (`B SENT ...`, `B BCST ...`, a structured broadcast).
    Peer,
    /// A server notice (`* ...`).
    Notice,
    /// An error reply from the server, or a local refusal.
    Error,
    /// Any other reply, or the client's own explanations.
    Plain,
}

impl Kind {
    /// The colour used for this kind; `None` keeps the terminal's own.
    fn colour(self) -> Option<Color> {
        match self {
            Kind::Own => Some(Color::Cyan),
            Kind::Peer => Some(Color::Green),
            Kind::Notice => Some(Color::Yellow),
            Kind::Error => Some(Color::Red),
            Kind::Plain => None,
        }
    }
}

/// Whether `c` is an invisible format character that changes how the text around it is
/// shown: bidi controls (U+202E reverses what follows), zero-width characters, and the
/// other characters of Unicode's "format" category a terminal would obey or hide.
pub(crate) fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{070F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Makes received text safe to print: control characters (escape sequences from a hostile
/// peer) become `?`, and invisible format characters are shown as `<U+XXXX>` rather than
/// obeyed, so `evil\u{202E}gnp.exe` reads as it was sent. A zero-width joiner inside an
/// emoji sequence (`👩‍💻`) is kept: there it only joins two pictures.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_format(c)) {
        return Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_control() {
            out.push('?');
        } else if c == '\u{200D}' && joins_emoji(&chars, i) {
            out.push(c);
        } else if is_format(c) {
            out.push_str(&format!("<U+{:04X}>", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether the joiner at `i` sits between two pictographic characters.
fn joins_emoji(chars: &[char], i: usize) -> bool {
    let pictographic = |c: Option<&char>| {
        c.is_some_and(|&c| matches!(u32::from(c), 0x1F000..=0x1FAFF | 0x2600..=0x27BF))
    };
    let before = chars[..i]
        .iter()
        .rev()
        .find(|&&c| !matches!(u32::from(c), 0xFE0E..=0xFE0F | 0x1F3FB..=0x1F3FF));
    pictographic(before) && pictographic(chars.get(i + 1))
}

/// Raw mode for as long as this value lives; dropping it restores the terminal.
#[derive(Debug)]
pub struct RawGuard {
    /// Keeps the guard constructible only through [`RawGuard::enable`].
    _private: (),
}

impl RawGuard {
    /// Installs the restoring panic hook (once) and switches raw mode on.
    pub fn enable() -> io::Result<RawGuard> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        terminal::enable_raw_mode()?;
        // A paste arrives as one event, not as typed lines (where the terminal can).
        let _ = execute!(io::stdout(), EnableBracketedPaste);
        Ok(RawGuard { _private: () })
    }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Clears the input line and leaves raw mode; safe to call more than once.
fn restore() {
    let mut out = io::stdout();
    let _ = execute!(out, MoveToColumn(0), Clear(ClearType::CurrentLine));
    let _ = execute!(out, DisableBracketedPaste);
    let _ = terminal::disable_raw_mode();
}

/// Draws on the terminal: lines scroll up above the input line, which stays at the bottom.
#[derive(Debug)]
pub struct Screen {
    /// The only writer to the terminal.
    out: Stdout,
    /// Terminal width in columns, for fitting the input line on one row.
    width: u16,
    /// Shown before the input line.
    prompt: String,
}

impl Screen {
    /// A screen for the current terminal size.
    pub fn for_terminal() -> Screen {
        Screen {
            out: io::stdout(),
            width: terminal::size().map(|(w, _)| w).unwrap_or(80),
            prompt: String::new(),
        }
    }

    /// Records a new width after the window was resized.
    pub fn resize(&mut self, width: u16) {
        self.width = width;
    }

    /// Changes the prompt (the caller redraws).
    pub fn set_prompt(&mut self, prompt: &str) {
        self.prompt = prompt.to_owned();
    }

    /// A submitted line as it should stay in the scrollback: after the prompt it answered.
    pub fn echo(&self, line: &str) -> String {
        format!("{}{line}", self.prompt)
    }

    /// Prints `text` above the input line, then redraws the input line intact.
    pub fn print_above(&mut self, kind: Kind, text: &str, editor: &LineEditor) {
        let text = sanitize(text);
        let _ = queue!(self.out, MoveToColumn(0), Clear(ClearType::CurrentLine));
        let _ = match kind.colour() {
            Some(c) => queue!(
                self.out,
                SetForegroundColor(c),
                Print(text),
                ResetColor,
                Print("\r\n")
            ),
            None => queue!(self.out, Print(text), Print("\r\n")),
        };
        self.draw_input(editor);
    }

    /// Redraws the prompt and the line with the cursor at its absolute column, one flush.
    pub fn draw_input(&mut self, editor: &LineEditor) {
        let view = editor.view(&self.prompt, self.width);
        let (before, after) = view.text.split_at(view.split);
        // The terminal places the cursor after what it drew: right also where its idea of a
        // character's width differs from Unicode's (emoji with a skin tone, say).
        let _ = queue!(
            self.out,
            MoveToColumn(0),
            Clear(ClearType::CurrentLine),
            Print(before),
            SavePosition,
            Print(after),
            RestorePosition
        );
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(sanitize("plain"), Cow::Borrowed("plain"));
        assert_eq!(sanitize("a\u{1b}[2Jb"), "a?[2Jb");
    }

    #[test]
    fn invisible_characters_are_shown_not_obeyed() {
        assert_eq!(sanitize("evil\u{202E}gnp.exe"), "evil<U+202E>gnp.exe");
        assert_eq!(sanitize("a\u{200B}b\u{2066}c"), "a<U+200B>b<U+2066>c");
        assert_eq!(sanitize("x\u{200D}y"), "x<U+200D>y");
        // A joiner inside an emoji sequence, and a skin tone, are text as people write it.
        assert_eq!(
            sanitize("\u{1F469}\u{200D}\u{1F4BB}"),
            Cow::Borrowed("\u{1F469}\u{200D}\u{1F4BB}")
        );
        assert_eq!(sanitize("👍🏽 日本語"), Cow::Borrowed("👍🏽 日本語"));
    }
}
