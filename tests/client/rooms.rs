//! Rooms in the interactive client (a tmux pane): `/join #room` enters a room and makes it
//! current (the prompt shows it), typed lines go there, messages are tagged with their
//! room, what was said before is shown as history, and `/part` goes back to the lobby.

use chat_tests::Server;

use crate::pane::Pane;

#[test]
fn join_a_room_see_its_history_talk_there_and_part() {
    let s = Server::start(&[]);
    let mut b = s.line();
    b.join("B");
    b.send("ENTER #dev");
    b.expect("ENTERED #dev");
    b.send("SAY #dev said before you came");
    let Some(p) = Pane::start(s.addr, &["--name", "alice"]) else {
        return;
    };
    p.wait_for("HELLO alice");
    p.wait_input("alice>", "alice> ".len());
    b.expect("* alice joined");
    p.enter("/join #dev");
    p.wait_for("[#dev] (history, ");
    p.wait_for(" UTC) B: said before you came");
    p.wait_input("alice #dev>", "alice #dev> ".len());
    b.expect("* alice entered #dev");
    p.enter("hello dev");
    b.expect("alice SAY #dev hello dev");
    b.send("SAY #dev hi alice");
    p.wait_for("[#dev] B: hi alice");
    // B made #dev, so only B sets its topic; /topic names the current room.
    p.enter("/topic release friday");
    p.wait_for("Not Operator: #dev");
    b.send("TOPIC #dev release friday");
    b.expect("B TOPIC #dev release friday");
    p.wait_for("[#dev] B set the topic: release friday");
    p.enter("/part");
    b.expect("* alice left #dev");
    p.wait_input("alice>", "alice> ".len());
    p.enter("lobby again");
    b.expect("alice BCST lobby again");
    p.enter("/part");
    p.wait_for("you are only in #lobby");
    b.expect_nothing_pending();
}
