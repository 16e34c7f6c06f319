//! Unit tests of the line editor: keystrokes in, line and cursor out.

use super::*;

fn press(ed: &mut LineEditor, code: KeyCode) -> Outcome {
    ed.key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(ed: &mut LineEditor, c: char) -> Outcome {
    ed.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn typed(s: &str) -> LineEditor {
    let mut ed = LineEditor::new(true);
    for c in s.chars() {
        press(&mut ed, KeyCode::Char(c));
    }
    ed
}

fn submit(ed: &mut LineEditor) -> String {
    match press(ed, KeyCode::Enter) {
        Outcome::Submit(line) => line,
        other => panic!("{other:?}"),
    }
}

#[test]
fn typing_and_submitting() {
    let mut ed = typed("MSG B hi");
    assert_eq!(ed.line(), "MSG B hi");
    assert_eq!(submit(&mut ed), "MSG B hi");
    assert_eq!(ed.line(), "");
}

#[test]
fn backspace_delete_and_moving() {
    let mut ed = typed("helo");
    press(&mut ed, KeyCode::Left);
    press(&mut ed, KeyCode::Char('l'));
    assert_eq!(ed.line(), "hello");
    press(&mut ed, KeyCode::Backspace);
    assert_eq!(ed.line(), "helo");
    press(&mut ed, KeyCode::Home);
    press(&mut ed, KeyCode::Delete);
    assert_eq!(ed.line(), "elo");
    assert_eq!(press(&mut ed, KeyCode::Backspace), Outcome::Unchanged);
    press(&mut ed, KeyCode::End);
    press(&mut ed, KeyCode::Char('!'));
    assert_eq!(ed.line(), "elo!");
    assert_eq!(press(&mut ed, KeyCode::Delete), Outcome::Unchanged);
    press(&mut ed, KeyCode::Left);
    press(&mut ed, KeyCode::Left);
    ctrl(&mut ed, 'k');
    assert_eq!(ed.line(), "el");
}

#[test]
fn kill_word_and_line() {
    let mut ed = typed("MSG B hello  ");
    ctrl(&mut ed, 'w');
    assert_eq!(ed.line(), "MSG B ");
    ctrl(&mut ed, 'w');
    assert_eq!(ed.line(), "MSG ");
    let mut ed = typed("abc def");
    press(&mut ed, KeyCode::Left);
    press(&mut ed, KeyCode::Left);
    ctrl(&mut ed, 'u');
    assert_eq!(ed.line(), "ef");
    assert_eq!(ed.view("> ", 80).cursor_col, 2);
}

#[test]
fn history_walks_and_keeps_the_draft() {
    let mut ed = typed("one");
    submit(&mut ed);
    for c in "two".chars() {
        press(&mut ed, KeyCode::Char(c));
    }
    submit(&mut ed);
    for c in "dra".chars() {
        press(&mut ed, KeyCode::Char(c));
    }
    press(&mut ed, KeyCode::Up);
    assert_eq!(ed.line(), "two");
    press(&mut ed, KeyCode::Up);
    assert_eq!(ed.line(), "one");
    assert_eq!(press(&mut ed, KeyCode::Up), Outcome::Unchanged);
    press(&mut ed, KeyCode::Down);
    assert_eq!(ed.line(), "two");
    press(&mut ed, KeyCode::Down);
    assert_eq!(ed.line(), "dra");
    assert_eq!(press(&mut ed, KeyCode::Down), Outcome::Unchanged);
    // Blank lines and repeats are not remembered.
    press(&mut ed, KeyCode::Up);
    submit(&mut ed);
    submit(&mut ed);
    press(&mut ed, KeyCode::Up);
    press(&mut ed, KeyCode::Up);
    assert_eq!(ed.line(), "one");
}

#[test]
fn no_history_when_not_kept() {
    let mut ed = LineEditor::new(false);
    ed.insert_str("answer");
    submit(&mut ed);
    assert_eq!(press(&mut ed, KeyCode::Up), Outcome::Unchanged);
}

#[test]
fn leaving_and_cancelling() {
    let mut ed = LineEditor::new(true);
    assert_eq!(ctrl(&mut ed, 'd'), Outcome::Leave);
    let mut ed = typed("ab");
    press(&mut ed, KeyCode::Home);
    assert_eq!(ctrl(&mut ed, 'd'), Outcome::Edited);
    assert_eq!(ed.line(), "b");
    assert_eq!(ctrl(&mut ed, 'c'), Outcome::Leave);
    assert_eq!(press(&mut ed, KeyCode::Esc), Outcome::Cancel);
    let release = KeyEvent {
        kind: KeyEventKind::Release,
        ..KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE)
    };
    assert_eq!(ed.key(release), Outcome::Unchanged);
    assert_eq!(ed.line(), "b");
}

#[test]
fn view_scrolls_to_keep_the_cursor_visible() {
    let ed = typed("hello");
    assert_eq!(
        ed.view("> ", 80),
        View {
            text: "> hello".into(),
            split: 7,
            cursor_col: 7
        }
    );
    let mut ed = typed("abcdefghijklmnop");
    let v = ed.view("> ", 10);
    assert_eq!((v.text.as_str(), v.cursor_col), ("> jklmnop", 9));
    press(&mut ed, KeyCode::Home);
    let v = ed.view("> ", 10);
    assert_eq!((v.text.as_str(), v.cursor_col), ("> abcdefg", 2));
    ed.insert_str("\t");
    assert!(ed.view("> ", 10).text.starts_with("> ?"));
}

#[test]
fn wide_characters_take_two_columns() {
    let mut ed = typed("日本語");
    assert_eq!(ed.view("> ", 80).cursor_col, 2 + 6);
    press(&mut ed, KeyCode::Left);
    assert_eq!(ed.view("> ", 80).cursor_col, 2 + 4);
    press(&mut ed, KeyCode::Backspace);
    assert_eq!(ed.line(), "日語");
    let v = ed.view("> ", 80);
    assert_eq!((v.cursor_col, &v.text[..v.split]), (4, "> 日"));
    // Scrolling never cuts a wide character in half: 9 columns hold four of them.
    let ed = typed("一二三四五六");
    let v = ed.view("> ", 12);
    assert_eq!((v.text.as_str(), v.cursor_col), ("> 三四五六", 10));
}

#[test]
fn a_cluster_moves_and_deletes_as_one() {
    // Thumbs up with a skin tone: two code points, one thing to the reader.
    let mut ed = typed("👍🏽");
    press(&mut ed, KeyCode::Left);
    assert_eq!(ed.view("", 80).cursor_col, 0);
    press(&mut ed, KeyCode::Char('X'));
    assert_eq!(ed.line(), "X👍🏽");
    press(&mut ed, KeyCode::End);
    press(&mut ed, KeyCode::Backspace);
    assert_eq!(ed.line(), "X");
    // e + combining acute: one cluster, deleted whole from either side.
    let mut ed = typed("ae\u{301}b");
    press(&mut ed, KeyCode::Left);
    press(&mut ed, KeyCode::Backspace);
    assert_eq!(ed.line(), "ab");
    press(&mut ed, KeyCode::Home);
    press(&mut ed, KeyCode::Right);
    ed.insert_str("e\u{301}");
    press(&mut ed, KeyCode::Delete);
    assert_eq!(ed.line(), "ae\u{301}");
    // Invisible characters are drawn as '?', one column each.
    let ed = typed("a\u{202E}b");
    assert_eq!(ed.view("", 80).text, "a?b");
}
