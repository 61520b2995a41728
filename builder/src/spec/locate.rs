//! Where a YAML error is: the field path at a line and column, recovered from the text.

use super::SpecError;

/// Turns a serde-saphyr error into [`SpecError::Parse`] with the field path at its location.
pub(super) fn parse_error(e: &serde_saphyr::Error, text: &str, file: &str) -> SpecError {
    let (line, column) = e
        .location()
        .map(|l| {
            (
                usize::try_from(l.line()).unwrap_or(0),
                usize::try_from(l.column()).unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    let mut message = e.without_snippet().to_string();
    let suffix = format!(" at line {line}, column {column}");
    if let Some(m) = message.strip_suffix(&suffix) {
        message = m.to_owned();
    }
    let mut path = field_path_at(text, line, column);
    let named = |prefix: &str| {
        let rest = message.split_once(prefix)?.1;
        Some(rest.split('`').next()?.to_owned())
    };
    if let Some(name) = named("unknown field `") {
        if path.last() != Some(&Seg::Key(name.clone())) {
            path.push(Seg::Key(name));
        }
    } else if let Some(name) = named("missing field `") {
        // serde reports a missing field at the start of its mapping: the first key there.
        if matches!(path.last(), Some(Seg::Key(_))) {
            path.pop();
        }
        path.push(Seg::Key(name));
    }
    SpecError::Parse {
        file: file.to_owned(),
        line,
        column,
        field: format_path(&path),
        message,
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

pub(super) fn format_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        out.push_str("(document)");
    }
    out
}

/// The block-structure entries that open a line: `- ` markers (`None`) and a mapping key
/// (`Some`), each with its 0-based character column.
pub(super) fn line_entries(line: &str) -> Vec<(usize, Option<String>)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '#' {
            break;
        }
        if chars[i] == '-' && chars.get(i + 1).is_none_or(|c| *c == ' ') {
            out.push((i, None));
            i += 1;
            continue;
        }
        if let Some(key) = mapping_key(&chars[i..]) {
            out.push((i, Some(key)));
        }
        break;
    }
    out
}

/// The key of `key: value` / `"key": value` at the start of `s`, if it is one.
pub(super) fn mapping_key(s: &[char]) -> Option<String> {
    let is_end = |j: usize| s.get(j).is_none_or(|c| *c == ' ' || *c == '\t');
    match s.first()? {
        q @ ('"' | '\'') => {
            let close = s[1..].iter().position(|c| c == q)? + 1;
            (s.get(close + 1) == Some(&':') && is_end(close + 2)).then(|| s[1..close].iter().collect())
        }
        '[' | '{' | '|' | '>' | '&' | '*' | '!' | '%' | '@' | '`' => None,
        _ => {
            for j in 0..s.len() {
                if s[j] == '#' && j > 0 && s[j - 1] == ' ' {
                    return None;
                }
                if s[j] == ':' && is_end(j + 1) {
                    return Some(s[..j].iter().collect::<String>().trim_end().to_owned());
                }
            }
            None
        }
    }
}

/// The field path of the node at a 1-based line and column, recovered from the text: the
/// entries of that line up to the column, then, going up, each enclosing line (the nearest
/// one above that starts left of the current outermost entry, or at the same column with a
/// key when the current one is a `- ` item), with sequence indices counted from the sibling
/// `- ` markers passed on the way. Exact for block style; inside flow collections it stops
/// at the enclosing block key. Best effort, for error messages only.
pub(super) fn field_path_at(text: &str, line: usize, column: usize) -> Vec<Seg> {
    let lines: Vec<&str> = text.lines().collect();
    if line == 0 || line > lines.len() {
        return Vec::new();
    }
    let pos = column.saturating_sub(1);
    let mut row = line - 1;
    let mut group: Vec<(usize, Option<String>)> = line_entries(lines[row])
        .into_iter()
        .filter(|(c, _)| *c <= pos)
        .collect();
    if group.is_empty() {
        // A continuation line: its parent is the nearest line above starting left of it.
        let indent = lines[row].chars().take_while(|c| *c == ' ').count();
        group.push((indent, Some(String::new())));
    }
    let mut rev: Vec<Seg> = Vec::new();
    loop {
        let (c0, first) = group[0].clone();
        // Walk up to the parent, counting sibling `- ` markers at c0.
        let mut siblings = 0;
        let mut parent = None;
        let mut r = row;
        while r > 0 {
            r -= 1;
            let entries = line_entries(lines[r]);
            let Some((c, kind)) = entries.first() else { continue };
            if *c < c0 || (*c == c0 && first.is_none() && kind.is_some()) {
                parent = Some((r, entries));
                break;
            }
            if *c == c0 && kind.is_none() && first.is_none() {
                siblings += 1;
            }
        }
        for (i, (_, kind)) in group.iter().enumerate().rev() {
            match kind {
                Some(k) if k.is_empty() => {}
                Some(k) => rev.push(Seg::Key(k.clone())),
                None => rev.push(Seg::Index(if i == 0 { siblings } else { 0 })),
            }
        }
        let Some((r, entries)) = parent else { break };
        row = r;
        group = entries
            .into_iter()
            .filter(|(c, k)| *c < c0 || (*c == c0 && k.is_some() && first.is_none()))
            .collect();
    }
    rev.reverse();
    rev
}
