//! What the management commands print: aligned tables for people, the server's JSON for
//! scripts.

use std::fmt;
use std::fmt::Write as _;

/// A table printed with columns aligned, two spaces apart, under an upper-case header.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row; missing cells print empty, extra cells are a bug.
    pub fn row<S: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let cells: Vec<String> = cells.into_iter().map(|c| printable(c.as_ref())).collect();
        debug_assert!(cells.len() <= self.header.len(), "row wider than the header");
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str("  ");
                }
                let _ = write!(line, "{cell:<w$}");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Server-provided text (descriptions, names) with control characters escaped, so that a
/// value cannot move the cursor, clear the screen or break the table's lines.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The server's JSON, pretty-printed, for `--json`.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialize")
    );
}

/// `a, b, c`, or `-` for nothing.
pub fn list_or_dash<S: fmt::Display>(items: &[S]) -> String {
    if items.is_empty() {
        return "-".into();
    }
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_space() {
        let mut t = Table::new(&["NAME", "VISIBILITY", "ROLE"]);
        t.row(["library", "public", ""]);
        t.row(["team-long-name", "private", "project_admin"]);
        t.row(["ünï", "private"]);
        assert_eq!(
            t.render(),
            "NAME            VISIBILITY  ROLE\n\
             library         public\n\
             team-long-name  private     project_admin\n\
             ünï             private\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(Table::new(&["USER", "ROLE"]).render(), "USER  ROLE\n");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut t = Table::new(&["DESCRIPTION", "X"]);
        t.row(["evil\x1b[2J\nline", "y"]);
        assert_eq!(t.render(), "DESCRIPTION          X\nevil\\u{1b}[2J\\nline  y\n");
        assert_eq!(printable("plain"), "plain");
    }

    #[test]
    fn lists() {
        assert_eq!(list_or_dash(&["pull", "push"]), "pull,push");
        assert_eq!(list_or_dash::<&str>(&[]), "-");
    }
}
