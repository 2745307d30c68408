use std::path::Path;

use pretty_assertions::assert_eq;

use super::apply::apply_changes;
use super::failure::exit;
use super::render::unified_diff;
use super::target::{TargetRange, parse_range, split_range};
use crate::model::edits::FileChange;

fn range(text: &str) -> Result<TargetRange, String> {
    parse_range(text)
}

#[test]
fn targets_split_at_the_first_numeric_colon() {
    assert_eq!(split_range("src/a.rs:12"), Some(("src/a.rs", "12")));
    assert_eq!(split_range("src/a.rs:12:5-14:1"), Some(("src/a.rs", "12:5-14:1")));
    assert_eq!(split_range("dir:x/a.rs:3"), Some(("dir:x/a.rs", "3")));
    assert_eq!(split_range("src/a.rs"), None);
}

#[test]
fn ranges_parse_and_bad_ones_say_why() {
    assert_eq!(range("12").unwrap(), TargetRange { start_line: 12, start_column: None, end: None });
    assert_eq!(
        range("12:5-14:1").unwrap(),
        TargetRange { start_line: 12, start_column: Some(5), end: Some((14, Some(1))) }
    );
    assert_eq!(
        range("3-7").unwrap(),
        TargetRange { start_line: 3, start_column: None, end: Some((7, None)) }
    );
    assert!(range("0").unwrap_err().contains("start at 1"));
    assert!(range("9-3").unwrap_err().contains("ends before"));
    assert!(range("1:2:3").unwrap_err().contains("too many"));
    assert!(range("4-x").unwrap_err().contains("not a line number"));
}

#[test]
fn selections_take_whole_lines_or_exact_characters() {
    let text = "fn a() {}\nlet é = 1;\nlast\n";
    let whole = range("2").unwrap().selection(text).unwrap();
    assert_eq!((whole.start_line, whole.end_line, whole.text.as_str()), (1, 1, "let é = 1;"));
    let lines = range("1-2").unwrap().selection(text).unwrap();
    assert_eq!(lines.text, "fn a() {}\nlet é = 1;");
    let exact = range("2:5-2:6").unwrap().selection(text).unwrap();
    assert_eq!(exact.text, "é");
    let across = range("1:4-3:2").unwrap().selection(text).unwrap();
    assert_eq!(across.text, "a() {}\nlet é = 1;\nl");
    assert!(range("9").unwrap().selection(text).unwrap_err().message.contains("past the end"));
    assert!(range("2:40-3").unwrap().selection(text).unwrap_err().message.contains("column 40"));
}

#[test]
fn the_diff_is_git_style_for_every_kind_of_change() {
    let ws = Path::new("/w");
    let changes = vec![
        FileChange::Modified {
            path: ws.join("a.rs"),
            before: "x\ny\n".into(),
            after: "x\nz\n".into(),
        },
        FileChange::Created { path: ws.join("new.rs"), content: "hi\n".into() },
        FileChange::Deleted { path: ws.join("old.rs"), before: "bye\n".into() },
    ];
    let expected = "\
diff --git a/a.rs b/a.rs
--- a/a.rs
+++ b/a.rs
@@ -1,2 +1,2 @@
 x
-y
+z
diff --git a/new.rs b/new.rs
new file mode 100644
--- /dev/null
+++ b/new.rs
@@ -0,0 +1 @@
+hi
diff --git a/old.rs b/old.rs
deleted file mode 100644
--- a/old.rs
+++ /dev/null
@@ -1 +0,0 @@
-bye
";
    assert_eq!(unified_diff(&changes, ws), expected);
}

#[test]
fn apply_merges_a_disjoint_change_and_refuses_an_overlapping_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.txt");
    let before = "one\ntwo\nthree\nfour\nfive\n";
    let change = FileChange::Modified {
        path: path.clone(),
        before: before.into(),
        after: before.replace("two", "TWO"),
    };
    std::fs::write(&path, before.replace("five", "FIVE")).unwrap();
    apply_changes(std::slice::from_ref(&change)).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\nTWO\nthree\nfour\nFIVE\n");

    std::fs::write(&path, before.replace("two", "deux")).unwrap();
    let err = apply_changes(&[change]).unwrap_err();
    assert_eq!(err.code, exit::NOT_APPLIED);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before.replace("two", "deux"));
}

#[test]
fn nothing_is_written_when_any_change_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let created = dir.path().join("sub/new.txt");
    let existing = dir.path().join("taken.txt");
    std::fs::write(&existing, "someone else's\n").unwrap();
    let changes = vec![
        FileChange::Created { path: created.clone(), content: "new\n".into() },
        FileChange::Created { path: existing, content: "ours\n".into() },
    ];
    assert_eq!(apply_changes(&changes).unwrap_err().code, exit::NOT_APPLIED);
    assert!(!created.exists());
}
