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

use crossterm::cursor::MoveToColumn;
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

/// Beginnings of the server's error replies (PROTOCOL.md).
const ERROR_REPLIES: &[&str] = &[
    "Unknown Message",
    "Unknown Recipient",
    "Unregistered User",
    "Too Many Users",
    "Name Taken",
    "Already Joined",
    "Usage:",
    "Invalid ",
    "Not Registered",
    "Sender Mismatch",
    "Shutdown Refused",
    "ALREADY REGISTERED",
    "MESSAGE FAILED",
    "READ ERROR",
];

/// Tells what kind of line the server sent.
pub fn classify(line: &str) -> Kind {
    if let Some(rest) = line.strip_prefix("* ") {
        return if rest.starts_with("ERROR") {
            Kind::Error
        } else {
            Kind::Notice
        };
    }
    if ERROR_REPLIES.iter().any(|p| line.starts_with(p)) {
        return Kind::Error;
    }
    let mut words = line.splitn(3, ' ');
    let sender = words.next().unwrap_or("");
    let verb = words.next().unwrap_or("");
    let has_text = words.next().is_some_and(|t| !t.is_empty());
    if matches!(verb, "SENT" | "BCST") && has_text && protocol::Name::new(sender).is_ok() {
        return Kind::Peer;
    }
    Kind::Plain
}

/// Replaces control characters (escape sequences from a hostile peer) with `?`.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
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
        let _ = queue!(
            self.out,
            MoveToColumn(0),
            Clear(ClearType::CurrentLine),
            Print(view.text),
            MoveToColumn(view.cursor_col)
        );
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(classify("A SENT HELLO"), Kind::Peer);
        assert_eq!(classify("bob BCST hi all"), Kind::Peer);
        assert_eq!(classify("* B joined"), Kind::Notice);
        assert_eq!(classify("* ERROR send queue full"), Kind::Error);
        assert_eq!(classify("Unknown Recipient"), Kind::Error);
        assert_eq!(classify("Usage: MSG <name> <text>"), Kind::Error);
        assert_eq!(classify("HELLO A"), Kind::Plain);
        assert_eq!(classify("USERS 2"), Kind::Plain);
        assert_eq!(classify("a b SENT x"), Kind::Plain);
        assert_eq!(classify("MESSAGE SENT"), Kind::Plain);
    }

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(sanitize("plain"), Cow::Borrowed("plain"));
        assert_eq!(sanitize("a\u{1b}[2Jb"), "a?[2Jb");
    }
}
