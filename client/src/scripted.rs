//! Scripted mode (stdin is not a terminal): one command per stdin line, every server
//! message printed to stdout as one line, flushed at once.
//!
//! Lines are checked like typed ones ([`Composer`] with the script policy); a refused line
//! is reported on stderr with its line number and nothing is sent for it. A server that
//! does not answer the first command that wants an answer within a few seconds, or closes
//! without a word, is reported as probably not the chat port. `* PING` is
//! answered; what is an event is decided by the protocol crate's [`Classifier`]. At the end of stdin the socket's write side is half-closed and the server's
//! remaining replies are still printed until it closes; that, our own QUIT/EXIT followed by
//! the server's close, or a `* QUIT` notice, ends the run with success. The server closing
//! or failing otherwise is an error.

use std::time::Instant;

use futures::{pin_mut, select, FutureExt, StreamExt};
use protocol::frame::Framing;
use protocol::{Classifier, Command, Incoming};

use crate::chat::ANSWER_TIMEOUT;
use crate::conn::{self, ConnError, Writer};
use crate::ui::{err_line, out_line, stdin_lines, StdinLine};
use crate::validate::{Composer, Policy, Step};

/// What ended the loop's current turn.
enum Turn {
    /// The server has not answered our first question in time.
    NoAnswer,
    /// A line from stdin, or `None` at its end.
    Stdin(Option<StdinLine>),
    /// A message from the server, or `None` when it closed.
    Server(Result<Option<String>, ConnError>),
}

/// Runs the scripted client against `host:port` until the conversation ends; with a
/// `name`, joins with it before the first stdin line.
pub async fn run(host: &str, port: u16, name: Option<&str>) -> Result<(), ConnError> {
    let (mut reader, mut writer) = conn::connect(host, port, Framing::Framed).await?;
    let mut lines = stdin_lines();
    let mut composer = Composer::new(Policy::Script);
    let mut classifier = Classifier::new();
    // Until the server says anything, the answer to the first command that wants one is
    // awaited only ANSWER_TIMEOUT (from when it was sent).
    let mut asked: Option<Instant> = None;
    let mut heard = false;
    if let Some(name) = name {
        let sent = send_line(&mut composer, &mut writer, 0, &format!("JOIN {name}")).await?;
        asked = asked.or(sent.asks.then(Instant::now));
    }
    let mut line_no = 0usize;
    // Whether we still read stdin; false after its end or after our QUIT/EXIT.
    let mut reading = true;
    loop {
        let wait = asked
            .filter(|_| !heard)
            .map(|at| ANSWER_TIMEOUT.saturating_sub(at.elapsed()));
        let server = async {
            match wait {
                Some(wait) => match async_std::future::timeout(wait, reader.next()).await {
                    Ok(msg) => Turn::Server(msg),
                    Err(_) => Turn::NoAnswer,
                },
                None => Turn::Server(reader.next().await),
            }
        };
        let turn = if reading {
            let server = server.fuse();
            let stdin = lines.next().fuse();
            pin_mut!(server, stdin);
            select! {
                turn = server => turn,
                line = stdin => Turn::Stdin(line),
            }
        } else {
            server.await
        };
        let no_answer = || ConnError::NoAnswer {
            addr: format!("{host}:{port}"),
            door: "chat",
        };
        match turn {
            Turn::NoAnswer => return Err(no_answer()),
            // Closed without a word (as the strict mailbox door does): the wrong port?
            Turn::Server(Ok(None) | Err(_)) if asked.is_some() && !heard => return Err(no_answer()),
            Turn::Stdin(None) => {
                reading = false;
                writer.finish();
            }
            Turn::Stdin(Some(StdinLine::NotUtf8)) => {
                line_no += 1;
                err_line(&format!(
                    "line {line_no}: not sent: the line is not UTF-8 text"
                ));
            }
            Turn::Stdin(Some(StdinLine::Text(line))) => {
                line_no += 1;
                // `/signup <name>`, `/auth <name>`: the password comes from CHAT_PASSWORD.
                let line = match crate::secret::script_line(&line) {
                    None => line,
                    Some(Ok(command)) => command,
                    Some(Err(why)) => {
                        err_line(&format!("line {line_no}: not sent: {why}"));
                        continue;
                    }
                };
                let sent = send_line(&mut composer, &mut writer, line_no, &line).await?;
                asked = asked.or(sent.asks.then(Instant::now));
                if sent.quit {
                    reading = false;
                    writer.finish();
                }
            }
            Turn::Server(Ok(Some(msg))) => {
                heard = true;
                out_line(&msg);
                match classifier.classify(&msg) {
                    // After our half-close there is no answering; the server will close.
                    Incoming::Ping => drop(writer.send(&["PONG"]).await),
                    Incoming::Quit(_) => return Ok(()),
                    _ => {}
                }
            }
            Turn::Server(Ok(None)) if !reading => return Ok(()),
            Turn::Server(Ok(None)) => return Err(ConnError::Closed),
            Turn::Server(Err(e)) => return Err(e),
        }
    }
}

/// What [`send_line`] sent.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    /// QUIT/EXIT: the server will close.
    quit: bool,
    /// A command the server answers (all but MSG, BCST and PONG).
    asks: bool,
}

/// Checks and sends one stdin line.
async fn send_line(
    composer: &mut Composer,
    writer: &mut Writer,
    line_no: usize,
    line: &str,
) -> Result<Sent, ConnError> {
    match composer.feed(line) {
        Step::Send { messages, quit } => {
            writer.send(&messages).await?;
            let asks = messages.first().is_some_and(|m| {
                !matches!(
                    Command::parse(m),
                    Ok(Command::Msg { .. } | Command::Bcst(_) | Command::Pong)
                )
            });
            Ok(Sent { quit, asks })
        }
        Step::Refused(reason) => {
            err_line(&format!("line {line_no}: not sent: {reason}"));
            Ok(Sent::default())
        }
        Step::Skipped => {
            err_line(&format!(
                "line {line_no}: not sent: it belongs to the refused command before it"
            ));
            Ok(Sent::default())
        }
        // Retry only happens with the interactive policy; the others need no action.
        Step::Nothing | Step::Need(_) | Step::Retry { .. } => Ok(Sent::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_std::net::TcpListener;
    use async_std::prelude::*;
    use async_std::task;

    /// A refused line leaves nothing on the wire; valid ones go out framed, follow-ups held.
    #[test]
    fn only_checked_lines_reach_the_wire() {
        task::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = task::spawn(async move {
                let (stream, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                (&stream).read_to_end(&mut got).await.unwrap();
                got
            });
            let (mut reader, mut writer) = conn::connect("127.0.0.1", port, Framing::Framed)
                .await
                .unwrap();
            let mut c = Composer::new(Policy::Script);
            let script = [
                "NAME A",
                "MSG B",
                "COMPOSE bad name",
                "text",
                "COMPOSE b",
                "hi",
                "EXIT",
            ];
            let mut quit = false;
            for (i, line) in script.iter().enumerate() {
                quit = send_line(&mut c, &mut writer, i + 1, line)
                    .await
                    .unwrap()
                    .quit;
            }
            assert!(quit);
            writer.finish();
            let mut want = Vec::new();
            for m in ["NAME A", "COMPOSE b", "hi", "EXIT"] {
                protocol::frame::put_str(Framing::Framed, &mut want, m);
            }
            assert_eq!(server.await, want);
            assert!(reader.next().await.unwrap().is_none());
        });
    }
}
