//! The input line: a pure line-editor state machine (keys in, outcomes out, no I/O).
//!
//! One keystroke at a time (seed 003's getch): printable characters are inserted at the
//! cursor, which moves by grapheme cluster (what a reader sees as one character: `👍🏽` is
//! two code points, `é` may be two) and is placed by display width (`日` takes two columns); backspace, delete, left/right, home/end, Ctrl-W (word), Ctrl-U (to the start) and
//! Ctrl-K (to the end) edit; up/down walk the history, keeping the unfinished line as a
//! draft; Enter submits; Esc cancels; Ctrl-C, or Ctrl-D on an empty line, leaves.
//! [`LineEditor::view`] says what to draw and where the cursor goes, scrolling sideways when
//! the line is wider than the terminal.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

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
    /// How many bytes of `text` come before the cursor: the screen prints them, saves the
    /// cursor, prints the rest and puts the cursor back, so the terminal's own idea of each
    /// character's width places it.
    pub split: usize,
    /// Column (from 0) where the cursor belongs, by Unicode display widths.
    pub cursor_col: u16,
}

/// The line being typed, its cursor and the history of submitted lines.
#[derive(Debug, Default)]
pub struct LineEditor {
    /// The line.
    buf: String,
    /// Cursor position in `buf`, in bytes, always on a grapheme cluster boundary.
    cursor: usize,
    /// Submitted lines, oldest first.
    history: Vec<String>,
    /// Which history entry is shown while browsing with up/down.
    browsing: Option<usize>,
    /// The unfinished line put aside while browsing the history.
    draft: String,
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
        self.buf.clone()
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
                'b' => self.left(),
                'f' => self.right(),
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
            KeyCode::Left => self.left(),
            KeyCode::Right => self.right(),
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
        self.buf.insert_str(self.cursor, s);
        self.cursor = self.boundary_at_or_after(self.cursor + s.len());
        Outcome::Edited
    }

    /// Inserts one typed character; a combining mark or modifier joins the cluster before.
    fn insert(&mut self, c: char) -> Outcome {
        let mut utf8 = [0u8; 4];
        self.insert_str(c.encode_utf8(&mut utf8))
    }

    /// The grapheme cluster boundary before `pos` (0 at the start).
    fn prev(&self, pos: usize) -> usize {
        self.buf[..pos]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    /// The grapheme cluster boundary after `pos` (the end at the end).
    fn next(&self, pos: usize) -> usize {
        self.buf[pos..]
            .graphemes(true)
            .next()
            .map_or(pos, |g| pos + g.len())
    }

    /// The first cluster boundary at or after byte `pos` (an insertion can merge clusters).
    fn boundary_at_or_after(&self, pos: usize) -> usize {
        let mut at = 0;
        while at < pos && at < self.buf.len() {
            at = self.next(at);
        }
        at
    }

    /// Deletes the grapheme cluster before the cursor.
    fn backspace(&mut self) -> Outcome {
        if self.cursor == 0 {
            return Outcome::Unchanged;
        }
        let from = self.prev(self.cursor);
        self.kill(from, self.cursor)
    }

    /// Deletes the grapheme cluster under the cursor.
    fn delete(&mut self) -> Outcome {
        if self.cursor == self.buf.len() {
            return Outcome::Unchanged;
        }
        let to = self.next(self.cursor);
        self.buf.replace_range(self.cursor..to, "");
        Outcome::Edited
    }

    /// Moves one grapheme cluster left.
    fn left(&mut self) -> Outcome {
        self.move_to(self.prev(self.cursor))
    }

    /// Moves one grapheme cluster right.
    fn right(&mut self) -> Outcome {
        self.move_to(self.next(self.cursor))
    }

    /// Moves the cursor to a cluster boundary.
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
        self.buf.replace_range(from..to, "");
        self.cursor = from;
        Outcome::Edited
    }

    /// Where the word before the cursor starts (spaces before the cursor belong to it).
    fn word_start(&self) -> usize {
        let before = &self.buf[..self.cursor];
        let trimmed = before.trim_end_matches(' ');
        trimmed.rfind(' ').map_or(0, |i| i + 1)
    }

    fn show(&mut self, line: String) -> Outcome {
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
        self.show(self.history[pos].clone())
    }

    fn history_down(&mut self) -> Outcome {
        match self.browsing {
            None => Outcome::Unchanged,
            Some(p) if p + 1 < self.history.len() => {
                self.browsing = Some(p + 1);
                self.show(self.history[p + 1].clone())
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
    /// line scrolls sideways, a whole grapheme cluster at a time, so the cursor stays
    /// visible, and the last column stays free. Columns are display widths (a CJK character
    /// takes two); a cluster that is a control or invisible character is drawn as `?`.
    pub fn view(&self, prompt: &str, width: u16) -> View {
        let width = usize::from(width.max(4));
        let mut prompt = prompt.to_owned();
        while prompt.width() + 2 > width {
            prompt.pop();
        }
        let room = width - 1 - prompt.width();
        // Each cluster as drawn, its width, and whether it is before the cursor.
        let cells: Vec<(&str, usize, bool)> = self
            .buf
            .grapheme_indices(true)
            .map(|(i, g)| {
                let shown = if g.chars().any(invisible) { "?" } else { g };
                (shown, shown.width(), i < self.cursor)
            })
            .collect();
        let at = cells.iter().filter(|c| c.2).count();
        // Scroll so the text before the cursor fits.
        let mut start = at;
        let mut used = 0;
        while start > 0 && used + cells[start - 1].1 <= room {
            start -= 1;
            used += cells[start].1;
        }
        let mut text = prompt.clone();
        for cell in &cells[start..at] {
            text.push_str(cell.0);
        }
        let split = text.len();
        let mut total = used;
        for cell in &cells[at..] {
            if total + cell.1 > room {
                break;
            }
            total += cell.1;
            text.push_str(cell.0);
        }
        let col = prompt.width() + used;
        View {
            text,
            split,
            cursor_col: u16::try_from(col).unwrap_or(u16::MAX),
        }
    }
}

/// Whether `c` would not show as itself on a terminal: a control character, or one of the
/// invisible format characters (bidi controls, zero-width ones).
fn invisible(c: char) -> bool {
    c.is_control() || crate::terminal::is_format(c)
}

#[cfg(test)]
mod tests;
