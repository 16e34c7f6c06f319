//! The input line: a pure line-editor state machine (keys in, outcomes out, no I/O).
//!
//! One keystroke at a time (seed 003's getch): printable characters are inserted at the
//! cursor; backspace, delete, left/right, home/end, Ctrl-W (word), Ctrl-U (to the start) and
//! Ctrl-K (to the end) edit; up/down walk the history, keeping the unfinished line as a
//! draft; Enter submits; Esc cancels; Ctrl-C, or Ctrl-D on an empty line, leaves.
//! [`LineEditor::view`] says what to draw and where the cursor goes, scrolling sideways when
//! the line is wider than the terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Most history entries kept.
const HISTORY_CAP: usize = 500;

/// What a keystroke did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing changed; no redraw needed.
    Unchanged,
    /// The line or cursor changed; redraw it.
    Edited,
    /// Enter: the finished line (the editor is now empty).
    Submit(String),
    /// Esc: abandon what is being entered.
    Cancel,
    /// Ctrl-C, or Ctrl-D on an empty line: the user wants to leave.
    Leave,
}

/// What to draw for the input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Prompt and the visible part of the line, exactly one terminal row.
    pub text: String,
    /// Column (from 0) where the cursor belongs.
    pub cursor_col: u16,
}

/// The line being typed, its cursor and the history of submitted lines.
#[derive(Debug, Default)]
pub struct LineEditor {
    /// The line, as characters, so the cursor never splits one.
    buf: Vec<char>,
    /// Cursor position in `buf` (0..=len).
    cursor: usize,
    /// Submitted lines, oldest first.
    history: Vec<String>,
    /// Which history entry is shown while browsing with up/down.
    browsing: Option<usize>,
    /// The unfinished line put aside while browsing the history.
    draft: Vec<char>,
    /// Whether submitted lines are remembered (not for menu answers).
    keep_history: bool,
}

impl LineEditor {
    /// An empty editor; `keep_history` makes up/down recall submitted lines.
    pub fn new(keep_history: bool) -> Self {
        LineEditor {
            keep_history,
            ..LineEditor::default()
        }
    }

    /// The text typed so far.
    pub fn line(&self) -> String {
        self.buf.iter().collect()
    }

    /// Empties the line (after a cancelled form, say).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.cursor = 0;
        self.browsing = None;
    }

    /// Applies one keystroke.
    pub fn key(&mut self, key: KeyEvent) -> Outcome {
        if key.kind == KeyEventKind::Release {
            return Outcome::Unchanged;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char(c) if ctrl => match c.to_ascii_lowercase() {
                'c' => Outcome::Leave,
                'd' if self.buf.is_empty() => Outcome::Leave,
                'd' => self.delete(),
                'a' => self.move_to(0),
                'e' => self.move_to(self.buf.len()),
                'b' => self.move_to(self.cursor.saturating_sub(1)),
                'f' => self.move_to(self.cursor + 1),
                'h' => self.backspace(),
                'u' => self.kill(0, self.cursor),
                'k' => self.kill(self.cursor, self.buf.len()),
                'w' => self.kill(self.word_start(), self.cursor),
                'p' => self.history_up(),
                'n' => self.history_down(),
                'j' | 'm' => self.submit(),
                _ => Outcome::Unchanged,
            },
            KeyCode::Char(_) if alt => Outcome::Unchanged,
            KeyCode::Char(c) => self.insert(c),
            KeyCode::Backspace => self.backspace(),
            KeyCode::Delete => self.delete(),
            KeyCode::Left => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Right => self.move_to(self.cursor + 1),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(self.buf.len()),
            KeyCode::Up => self.history_up(),
            KeyCode::Down => self.history_down(),
            KeyCode::Enter => self.submit(),
            KeyCode::Esc => Outcome::Cancel,
            _ => Outcome::Unchanged,
        }
    }

    /// Inserts pasted or typed text at the cursor.
    pub fn insert_str(&mut self, s: &str) -> Outcome {
        for c in s.chars() {
            self.insert(c);
        }
        Outcome::Edited
    }

    fn insert(&mut self, c: char) -> Outcome {
        self.buf.insert(self.cursor, c);
        self.cursor += 1;
        Outcome::Edited
    }

    fn backspace(&mut self) -> Outcome {
        if self.cursor == 0 {
            return Outcome::Unchanged;
        }
        self.cursor -= 1;
        self.buf.remove(self.cursor);
        Outcome::Edited
    }

    fn delete(&mut self) -> Outcome {
        if self.cursor == self.buf.len() {
            return Outcome::Unchanged;
        }
        self.buf.remove(self.cursor);
        Outcome::Edited
    }

    fn move_to(&mut self, pos: usize) -> Outcome {
        let pos = pos.min(self.buf.len());
        if pos == self.cursor {
            return Outcome::Unchanged;
        }
        self.cursor = pos;
        Outcome::Edited
    }

    /// Removes `buf[from..to]` and leaves the cursor at `from`.
    fn kill(&mut self, from: usize, to: usize) -> Outcome {
        if from >= to {
            return Outcome::Unchanged;
        }
        self.buf.drain(from..to);
        self.cursor = from;
        Outcome::Edited
    }

    /// Where the word before the cursor starts (spaces before the cursor belong to it).
    fn word_start(&self) -> usize {
        let mut i = self.cursor;
        while i > 0 && self.buf[i - 1] == ' ' {
            i -= 1;
        }
        while i > 0 && self.buf[i - 1] != ' ' {
            i -= 1;
        }
        i
    }

    fn show(&mut self, line: Vec<char>) -> Outcome {
        self.buf = line;
        self.cursor = self.buf.len();
        Outcome::Edited
    }

    fn history_up(&mut self) -> Outcome {
        let pos = match self.browsing {
            None if self.history.is_empty() => return Outcome::Unchanged,
            None => {
                self.draft = std::mem::take(&mut self.buf);
                self.history.len() - 1
            }
            Some(0) => return Outcome::Unchanged,
            Some(p) => p - 1,
        };
        self.browsing = Some(pos);
        self.show(self.history[pos].chars().collect())
    }

    fn history_down(&mut self) -> Outcome {
        match self.browsing {
            None => Outcome::Unchanged,
            Some(p) if p + 1 < self.history.len() => {
                self.browsing = Some(p + 1);
                self.show(self.history[p + 1].chars().collect())
            }
            Some(_) => {
                self.browsing = None;
                let draft = std::mem::take(&mut self.draft);
                self.show(draft)
            }
        }
    }

    fn submit(&mut self) -> Outcome {
        let line = self.line();
        let repeat = self.history.last() == Some(&line);
        if self.keep_history && !line.trim().is_empty() && !repeat {
            if self.history.len() == HISTORY_CAP {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        self.clear();
        self.draft.clear();
        Outcome::Submit(line)
    }

    /// The row to draw for `prompt` and the line in a terminal `width` columns wide: the
    /// line scrolls sideways so the cursor stays visible, and the last column stays free.
    pub fn view(&self, prompt: &str, width: u16) -> View {
        let width = usize::from(width.max(4));
        let mut prompt: Vec<char> = prompt.chars().collect();
        if prompt.len() + 2 > width {
            prompt.truncate(width / 2);
        }
        let room = width - 1 - prompt.len();
        let start = self.cursor.saturating_sub(room);
        let end = self.buf.len().min(start + room);
        let visible = self.buf[start..end]
            .iter()
            .map(|&c| if c.is_control() { '?' } else { c });
        let text = prompt.iter().copied().chain(visible).collect();
        let col = prompt.len() + self.cursor - start;
        View {
            text,
            cursor_col: u16::try_from(col).unwrap_or(u16::MAX),
        }
    }
}

#[cfg(test)]
mod tests;
