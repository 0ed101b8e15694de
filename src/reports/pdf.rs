//! Reports as PDF: the report's table (the same rows as its CSV) typeset on landscape A4 in
//! Helvetica, with a title, and on every page a footer naming the seal that covers the
//! figures, so a printed page can be checked with `obole verify --seal`.
//!
//! Invariants: every row of the table is printed, in order, on as many pages as it takes;
//! a cell too long for its column is cut with "…" (the CSV and JSON hold it whole); text is
//! written in WinAnsi (the standard fonts' encoding: Latin letters, "€"), anything else as
//! "?". Layout is integer arithmetic in tenths of a point.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

/// A titled table with a footer line for every page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub title: String,
    /// Lines under the title (the campaign, the instant).
    pub subtitle: Vec<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The seal, on every page.
    pub footer: String,
}

// Landscape A4 and the type, in tenths of a point.
const PAGE_WIDTH: i16 = 8_420;
const PAGE_HEIGHT: i16 = 5_950;
const MARGIN: i16 = 400;
const FONT_SIZE: i16 = 75;
const ROW_HEIGHT: i16 = 110;
const TITLE_SIZE: i16 = 140;
/// Helvetica's digits are 0.556 em (≈ 5/9) wide; other letters average less, so a column sized
/// at this width per character holds its text.
const CHAR_WIDTH: i16 = FONT_SIZE * 5 / 9;
const GUTTER: i16 = 60;

/// The PDF file's bytes.
pub fn render(document: &Document) -> Vec<u8> {
    let widths = column_widths(document);
    let table_top =
        PAGE_HEIGHT - MARGIN - TITLE_SIZE - ROW_HEIGHT * (document.subtitle_lines() + 1);
    let rows_per_page = usize::try_from((table_top - MARGIN - 2 * ROW_HEIGHT) / ROW_HEIGHT - 1)
        .unwrap_or(1)
        .max(1);
    let pages: Vec<&[Vec<String>]> = if document.rows.is_empty() {
        vec![&[]]
    } else {
        document.rows.chunks(rows_per_page).collect()
    };

    let mut ids = Ref::new(1);
    let catalog = ids.bump();
    let tree = ids.bump();
    let regular_id = ids.bump();
    let bold_id = ids.bump();
    let (regular, bold) = (Name(b"F1"), Name(b"F2"));
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.type1_font(regular_id)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold_id)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));

    let mut page_ids = Vec::with_capacity(pages.len());
    for (number, rows) in pages.iter().enumerate() {
        let page_id = ids.bump();
        let content_id = ids.bump();
        page_ids.push(page_id);
        let mut content = Content::new();
        // Coordinates in tenths of a point from here on.
        content.transform([0.1, 0.0, 0.0, 0.1, 0.0, 0.0]);
        let mut y = PAGE_HEIGHT - MARGIN - TITLE_SIZE;
        text(&mut content, bold, TITLE_SIZE, MARGIN, y, &document.title);
        for line in &document.subtitle {
            y -= ROW_HEIGHT + 20;
            text(&mut content, regular, FONT_SIZE + 15, MARGIN, y, line);
        }
        y = table_top;
        table_row(&mut content, bold, &widths, y, &document.columns);
        for row in *rows {
            y -= ROW_HEIGHT;
            table_row(&mut content, regular, &widths, y, row);
        }
        let footer = format!(
            "{}   —   page {} / {}",
            document.footer,
            number + 1,
            pages.len()
        );
        text(
            &mut content,
            regular,
            FONT_SIZE,
            MARGIN,
            MARGIN - ROW_HEIGHT,
            &footer,
        );
        let data = content.finish();

        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(
            0.0,
            0.0,
            (PAGE_WIDTH / 10).into(),
            (PAGE_HEIGHT / 10).into(),
        ));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(regular, regular_id);
        fonts.pair(bold, bold_id);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(content_id, &data);
    }
    let count = i32::try_from(page_ids.len()).unwrap_or(i32::MAX);
    pdf.pages(tree).kids(page_ids).count(count);
    pdf.finish()
}

impl Document {
    fn subtitle_lines(&self) -> i16 {
        i16::try_from(self.subtitle.len()).unwrap_or(4).min(4)
    }
}

/// Each column as wide as its longest cell (at most 40 characters; a long heading is cut
/// rather than widen its column past 10), shrunk together when the table is wider than the
/// page. In characters.
fn column_widths(document: &Document) -> Vec<i16> {
    let mut widths: Vec<i16> = document
        .columns
        .iter()
        .map(|c| char_count(c).clamp(4, 10))
        .collect();
    for row in &document.rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(char_count(cell).min(40));
        }
    }
    let room = (PAGE_WIDTH - 2 * MARGIN) / (CHAR_WIDTH + 1);
    let gutters = i16::try_from(widths.len()).unwrap_or(i16::MAX) * GUTTER / CHAR_WIDTH;
    let total: i16 = widths.iter().sum::<i16>() + gutters;
    if total > room {
        for width in &mut widths {
            let shrunk = i32::from(*width) * i32::from(room - gutters).max(1)
                / i32::from(total - gutters).max(1);
            *width = i16::try_from(shrunk.clamp(3, 40)).unwrap_or(3);
        }
    }
    widths
}

fn char_count(text: &str) -> i16 {
    i16::try_from(text.chars().count()).unwrap_or(i16::MAX)
}

/// One row of cells; numbers (and amounts) are set flush right in their column.
fn table_row(content: &mut Content, font: Name, widths: &[i16], y: i16, cells: &[String]) {
    let mut x = MARGIN;
    for (width, cell) in widths.iter().zip(cells) {
        let shown = fit(cell, *width);
        let numeric = !shown.is_empty()
            && shown
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | ','));
        let span = width * CHAR_WIDTH;
        let start = if numeric {
            x + span - char_count(&shown) * CHAR_WIDTH
        } else {
            x
        };
        text(content, font, FONT_SIZE, start, y, &shown);
        x += span + GUTTER;
    }
}

/// `cell` cut to `width` characters, ending in "…" when cut.
fn fit(cell: &str, width: i16) -> String {
    let width = usize::try_from(width).unwrap_or(0).max(1);
    if cell.chars().count() <= width {
        cell.to_owned()
    } else {
        let mut cut: String = cell.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

fn text(content: &mut Content, font: Name, size: i16, x: i16, y: i16, line: &str) {
    content.begin_text();
    // The writer's lengths are converted from our integers exactly (i16 fits them).
    content.set_font(font, size.into());
    content.set_text_matrix([1.0, 0.0, 0.0, 1.0, x.into(), y.into()]);
    content.show(Str(&win_ansi(line)));
    content.end_text();
}

/// The text in WinAnsiEncoding (Windows-1252): Latin-1 as is, the few others by table.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' | '\u{A0}'..='\u{FF}' => u8::try_from(u32::from(c)).unwrap_or(b'?'),
            '€' => 0x80,
            '‚' => 0x82,
            '„' => 0x84,
            '…' => 0x85,
            '‰' => 0x89,
            'Š' => 0x8A,
            'Œ' => 0x8C,
            'Ž' => 0x8E,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '™' => 0x99,
            'š' => 0x9A,
            'œ' => 0x9C,
            'ž' => 0x9E,
            'Ÿ' => 0x9F,
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_and_the_euro_are_written_in_win_ansi() {
        assert_eq!(win_ansi("é€–ß"), vec![0xE9, 0x80, 0x96, 0xDF]);
        assert_eq!(win_ansi("日"), vec![b'?']);
    }

    #[test]
    fn long_cells_are_cut_and_every_row_gets_a_page() {
        assert_eq!(fit("Jean-Baptiste Poquelin", 8), "Jean-Ba…");
        let document = Document {
            title: "Registre".into(),
            subtitle: vec!["au 31 mars".into()],
            columns: vec!["a".into(), "b".into()],
            rows: (0..500).map(|i| vec![i.to_string(), "x".into()]).collect(),
            footer: "seal 1:abc".into(),
        };
        let bytes = render(&document);
        assert!(bytes.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&bytes);
        let count = text.split("/Count ").nth(1).unwrap();
        let pages: usize = count[..count.find(|c: char| !c.is_ascii_digit()).unwrap()]
            .parse()
            .unwrap();
        assert!(pages >= 500 / 45, "{pages} pages");
    }
}
