//! Where the user's lines come from and where the client's lines go, in one event loop
//! with the socket (seed 003: select on the socket and on the keyboard, never block on one).
//!
//! With a terminal, [`Ui`] owns raw mode, the key event stream, the line editor and the
//! screen: keys are echoed as typed and printed lines appear above the input line. Without
//! one (tests, pipes, scripts), lines are read from stdin on a thread and each answer is
//! echoed after its prompt, so the transcript on stdout reads like a session.

use std::collections::VecDeque;
use std::io::{self, BufRead, IsTerminal, Write};
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream};
use futures::channel::mpsc;
use futures::{future, pin_mut, select, FutureExt, SinkExt, StreamExt};

use crate::conn::{ConnError, Reader, Writer};
use crate::input::{LineEditor, Outcome};
use crate::terminal::{sanitize, Kind, RawGuard, Screen};

/// Something the user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserInput {
    /// A finished line.
    Line(String),
    /// Esc: abandon the form being filled in.
    Cancel,
    /// Ctrl-C / Ctrl-D at the terminal: leave now.
    Leave,
    /// Standard input ended (no terminal): nothing more will be typed.
    Ended,
}

/// One thing that happened: the server spoke, or the user did.
#[derive(Debug)]
pub enum Event {
    /// A message from the server, `Ok(None)` when it closed the connection.
    Server(Result<Option<String>, ConnError>),
    /// Input from the user.
    User(UserInput),
}

/// One line of standard input.
#[derive(Debug)]
pub enum StdinLine {
    /// A line, without its line end.
    Text(String),
    /// A line that is not UTF-8 (it cannot be valid text).
    NotUtf8,
}

/// Prints one line on stdout and flushes it, so whoever reads the pipe sees it at once; a
/// closed stdout is not worth a panic.
pub fn out_line(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Prints one line on stderr, ignoring a closed stderr.
pub fn err_line(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// Reads stdin on a thread (it blocks) and hands its lines over; closes at end of input.
pub fn stdin_lines() -> mpsc::Receiver<StdinLine> {
    let (mut tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            let line = match String::from_utf8(std::mem::take(&mut buf)) {
                Ok(s) => StdinLine::Text(s),
                Err(_) => StdinLine::NotUtf8,
            };
            if async_std::task::block_on(tx.send(line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The terminal side: raw mode, key events, the input line.
struct Term {
    /// Key and resize events.
    events: EventStream,
    /// The line being typed.
    editor: LineEditor,
    /// Draws lines above the input line.
    screen: Screen,
    /// Restores the terminal when the Ui is dropped (declared last: dropped last).
    _guard: RawGuard,
}

/// The pipe side: lines from stdin.
struct Piped {
    /// Lines from the stdin thread.
    lines: mpsc::Receiver<StdinLine>,
    /// The question being asked, echoed with its answer.
    prompt: String,
    /// Whether stdin has ended.
    ended: bool,
}

/// The user's side of a session.
enum Side {
    /// A person at a terminal.
    Term(Box<Term>),
    /// Answers from a pipe or file.
    Piped(Piped),
}

/// The user interface of one session: terminal or pipe.
pub struct Ui {
    /// Terminal or pipe.
    side: Side,
    /// Lines entered while the session was busy waiting for the server.
    queued: VecDeque<String>,
}

impl Ui {
    /// A terminal UI when stdin is a terminal (raw mode from now on), else a piped one.
    pub fn open(keep_history: bool) -> io::Result<Ui> {
        if !io::stdin().is_terminal() {
            return Ok(Ui::piped());
        }
        let guard = RawGuard::enable()?;
        let mut term = Term {
            events: EventStream::new(),
            editor: LineEditor::new(keep_history),
            screen: Screen::for_terminal(),
            _guard: guard,
        };
        term.screen.draw_input(&term.editor);
        Ok(Ui {
            side: Side::Term(Box::new(term)),
            queued: VecDeque::new(),
        })
    }

    /// A UI reading answers from stdin and printing to stdout.
    pub fn piped() -> Ui {
        Ui {
            side: Side::Piped(Piped {
                lines: stdin_lines(),
                prompt: String::new(),
                ended: false,
            }),
            queued: VecDeque::new(),
        }
    }

    /// Whether a person is typing at a terminal.
    pub fn is_terminal(&self) -> bool {
        matches!(self.side, Side::Term(_))
    }

    /// Shows one line to the user: above the input line on a terminal, else on stdout (all
    /// of it, errors too, so the transcript is complete).
    pub fn say(&mut self, kind: Kind, text: &str) {
        match &mut self.side {
            Side::Term(t) => t.screen.print_above(kind, text, &t.editor),
            Side::Piped(_) => out_line(&sanitize(text)),
        }
    }

    /// Sets the question shown before the input line.
    pub fn set_prompt(&mut self, prompt: &str) {
        match &mut self.side {
            Side::Term(t) => {
                t.screen.set_prompt(prompt);
                t.screen.draw_input(&t.editor);
            }
            Side::Piped(p) => p.prompt = prompt.to_owned(),
        }
    }

    /// Reads a password after `prompt` without echoing it (see [`crate::secret`]); `None`
    /// when the user cancels or input ends. On a pipe: the next line.
    pub async fn read_secret(&mut self, prompt: &str) -> Option<String> {
        match &mut self.side {
            Side::Piped(p) => loop {
                match p.lines.next().await? {
                    StdinLine::Text(line) => return Some(line),
                    StdinLine::NotUtf8 => {}
                }
            },
            Side::Term(t) => {
                t.screen.set_prompt(prompt);
                t.screen.draw_input(&LineEditor::new(false));
                let mut typed = String::new();
                loop {
                    let event = match t.events.next().await {
                        Some(Ok(event)) => event,
                        None | Some(Err(_)) => return None,
                    };
                    if let TermEvent::Key(key) = event {
                        match crate::secret::key(&mut typed, key) {
                            crate::secret::SecretKey::More => {}
                            crate::secret::SecretKey::Done => return Some(typed),
                            crate::secret::SecretKey::Cancel => return None,
                        }
                    }
                }
            }
        }
    }

    /// Waits for the user. With `want_line` false, keys are still echoed and Ctrl-C still
    /// leaves, but finished lines are queued for later (and stdin is not read).
    pub async fn input(&mut self, want_line: bool) -> UserInput {
        if want_line {
            if let Some(line) = self.queued.pop_front() {
                return UserInput::Line(line);
            }
        }
        match &mut self.side {
            Side::Piped(p) => {
                if !want_line {
                    return future::pending().await;
                }
                loop {
                    if p.ended {
                        return UserInput::Ended;
                    }
                    match p.lines.next().await {
                        None => p.ended = true,
                        Some(StdinLine::NotUtf8) => {
                            out_line(&format!("{}(ignored: not UTF-8 text)", p.prompt));
                        }
                        Some(StdinLine::Text(line)) => {
                            out_line(&format!("{}{}", p.prompt, sanitize(&line)));
                            return UserInput::Line(line);
                        }
                    }
                }
            }
            Side::Term(t) => loop {
                let event = match t.events.next().await {
                    Some(Ok(event)) => event,
                    // The terminal is gone: nobody can type any more.
                    None | Some(Err(_)) => return UserInput::Leave,
                };
                match event {
                    TermEvent::Key(key) => match t.editor.key(key) {
                        Outcome::Unchanged => {}
                        Outcome::Edited => t.screen.draw_input(&t.editor),
                        Outcome::Submit(line) => {
                            // What was typed stays in the scrollback, after its prompt.
                            let echo = t.screen.echo(&line);
                            t.screen.print_above(Kind::Own, &echo, &t.editor);
                            if want_line {
                                return UserInput::Line(line);
                            }
                            self.queued.push_back(line);
                        }
                        Outcome::Cancel if want_line => {
                            t.editor.clear();
                            t.screen.draw_input(&t.editor);
                            return UserInput::Cancel;
                        }
                        Outcome::Cancel => {}
                        Outcome::Leave => return UserInput::Leave,
                    },
                    TermEvent::Resize(width, _) => {
                        t.screen.resize(width);
                        t.screen.draw_input(&t.editor);
                    }
                    TermEvent::Paste(text) => {
                        t.editor.insert_str(&one_line(&text));
                        t.screen.draw_input(&t.editor);
                    }
                    _ => {}
                }
            },
        }
    }
}

/// Pasted text as one line: a message is one line on the wire, so a pasted multi-line
/// message becomes one message, its lines joined with spaces (tabs become spaces too).
pub(crate) fn one_line(pasted: &str) -> String {
    // Terminals paste a line end as CR (tmux, xterm) or LF.
    let lines: Vec<&str> = pasted
        .split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines.join(" ").replace('\t', " ")
}

/// A connection and its user: the two sources of events a mode reacts to.
pub struct Session {
    /// Messages from the server.
    pub reader: Reader,
    /// Messages to the server.
    pub writer: Writer,
    /// The user's side.
    pub ui: Ui,
    /// `host:port` as given on the command line, for messages.
    pub addr: String,
}

impl Session {
    /// Waits for whichever comes first: a server message or user input (see [`Ui::input`]).
    pub async fn next_event(&mut self, want_line: bool) -> Event {
        let server = self.reader.next().fuse();
        let user = self.ui.input(want_line).fuse();
        pin_mut!(server, user);
        select! {
            msg = server => Event::Server(msg),
            input = user => Event::User(input),
        }
    }

    /// As [`Session::next_event`], but `None` when nothing happened within `wait`.
    pub(crate) async fn next_event_within(
        &mut self,
        want_line: bool,
        wait: Duration,
    ) -> Option<Event> {
        async_std::future::timeout(wait, self.next_event(want_line))
            .await
            .ok()
    }

    /// Says goodbye: sends `farewell` (QUIT or EXIT), half-closes, and waits briefly for the
    /// server to close, so it reads our last words before the socket goes.
    pub async fn leave(&mut self, farewell: &str) {
        // If the server is already gone there is nobody to say goodbye to.
        let _ = self.writer.send(&[farewell]).await;
        self.writer.finish();
        self.reader.drain(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_message_of_several_lines_is_one_line() {
        assert_eq!(
            one_line("Dear Bob,\r\nlunch at noon?\n\nAlice\n"),
            "Dear Bob, lunch at noon? Alice"
        );
        assert_eq!(one_line("a\tb"), "a b");
        assert_eq!(one_line("one\rtwo\r"), "one two");
    }
}
