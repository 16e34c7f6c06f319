//! Scripted mode (stdin is not a terminal): one command per stdin line, every server
//! message printed to stdout as one line, flushed at once.
//!
//! Lines are checked like typed ones ([`Composer`] with the script policy); a refused line
//! is reported on stderr with its line number and nothing is sent for it. `* PING` is
//! answered. At the end of stdin the socket's write side is half-closed and the server's
//! remaining replies are still printed until it closes; that, our own QUIT/EXIT followed by
//! the server's close, or a `* QUIT` notice, ends the run with success. The server closing
//! or failing otherwise is an error.

use futures::{pin_mut, select, FutureExt, StreamExt};
use protocol::frame::Framing;

use crate::conn::{self, ConnError, Writer};
use crate::ui::{err_line, out_line, stdin_lines, StdinLine};
use crate::validate::{Composer, Policy, Step};

/// What ended the loop's current turn.
enum Turn {
    /// A line from stdin, or `None` at its end.
    Stdin(Option<StdinLine>),
    /// A message from the server, or `None` when it closed.
    Server(Result<Option<String>, ConnError>),
}

/// Runs the scripted client against `host:port` until the conversation ends.
pub async fn run(host: &str, port: u16) -> Result<(), ConnError> {
    let (mut reader, mut writer) = conn::connect(host, port, Framing::Framed).await?;
    let mut lines = stdin_lines();
    let mut composer = Composer::new(Policy::Script);
    let mut line_no = 0usize;
    // Whether we still read stdin; false after its end or after our QUIT/EXIT.
    let mut reading = true;
    loop {
        let turn = if reading {
            let server = reader.next().fuse();
            let stdin = lines.next().fuse();
            pin_mut!(server, stdin);
            select! {
                msg = server => Turn::Server(msg),
                line = stdin => Turn::Stdin(line),
            }
        } else {
            Turn::Server(reader.next().await)
        };
        match turn {
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
                if send_line(&mut composer, &mut writer, line_no, &line).await? {
                    reading = false;
                    writer.finish();
                }
            }
            Turn::Server(Ok(Some(msg))) => {
                out_line(&msg);
                if msg == "* PING" {
                    // After our half-close there is no answering; the server will close.
                    let _ = writer.send(&["PONG"]).await;
                }
                if msg.starts_with("* QUIT") {
                    return Ok(());
                }
            }
            Turn::Server(Ok(None)) if !reading => return Ok(()),
            Turn::Server(Ok(None)) => return Err(ConnError::Closed),
            Turn::Server(Err(e)) => return Err(e),
        }
    }
}

/// Checks and sends one stdin line; `Ok(true)` when it was QUIT/EXIT.
async fn send_line(
    composer: &mut Composer,
    writer: &mut Writer,
    line_no: usize,
    line: &str,
) -> Result<bool, ConnError> {
    match composer.feed(line) {
        Step::Send { messages, quit } => {
            writer.send(&messages).await?;
            Ok(quit)
        }
        Step::Refused(reason) => {
            err_line(&format!("line {line_no}: not sent: {reason}"));
            Ok(false)
        }
        Step::Skipped => {
            err_line(&format!(
                "line {line_no}: not sent: it belongs to the refused command before it"
            ));
            Ok(false)
        }
        // Retry only happens with the interactive policy; the others need no action.
        Step::Nothing | Step::Need(_) | Step::Retry { .. } => Ok(false),
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
                quit = send_line(&mut c, &mut writer, i + 1, line).await.unwrap();
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
