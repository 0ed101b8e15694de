//! CSV as RFC 4180 has it: comma-separated, CRLF line ends, a field quoted when it holds a
//! comma, a quote or a line break, a quote inside doubled.

/// One line of CSV, CRLF-terminated.
pub fn row<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = String::new();
    push_row(&mut line, fields);
    line
}

/// Appends one line of CSV, CRLF-terminated, to `out` (the register writes a million of
/// them: no allocation per field).
pub fn push_row<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_field(out, field.as_ref());
    }
    out.push_str("\r\n");
}

/// A report's closing row: `marker` (`seal` or `#seal`), the seal's sequence and hash, and
/// how many entries were not sealed yet, padded with empty cells to `width` columns.
pub fn seal_cells(
    width: usize,
    marker: &str,
    sequence: i64,
    hash: &str,
    unsealed: i64,
) -> Vec<String> {
    let mut cells = vec![String::new(); width.max(4)];
    cells[0] = marker.to_owned();
    cells[1] = sequence.to_string();
    cells[2] = hash.to_owned();
    cells[3] = format!("{unsealed} unsealed");
    cells
}

/// Text someone typed (a donor's name, an address), made safe for a spreadsheet: a cell that
/// would start with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel or
/// LibreOffice, so it is prefixed with `'` (OWASP's advice against CSV injection).
pub fn text(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

fn push_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(
            super::row(&["a", "b,c", "say \"hi\"", "two\nlines"]),
            "a,\"b,c\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
    }

    #[test]
    fn typed_text_never_starts_a_formula() {
        assert_eq!(super::text("=1+1"), "'=1+1");
        assert_eq!(super::text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(super::text("Jeanne = Marie"), "Jeanne = Marie");
    }
}
