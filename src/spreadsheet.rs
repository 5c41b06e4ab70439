//! The one CSV writer of every file reseat hands out (a plan's `--out`, the audit export, the
//! identity-provider export of seats still billed): each cell is written so that a spreadsheet
//! shows it as text and never runs it as a formula. Cells come from people and upstream data
//! (names, emails, site names, reasons quoting them), so every cell is neutralised, following
//! OWASP's CSV-injection guidance: a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage
//! return gets a `'` in front.

use std::borrow::Cow;
use std::io::Write;

/// A cell a spreadsheet will not run as a formula.
pub fn safe_cell(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A CSV writer whose every cell is [`safe_cell`].
pub struct CsvWriter<W: Write> {
    inner: csv::Writer<W>,
}

impl CsvWriter<Vec<u8>> {
    /// A writer into memory (an HTTP body).
    pub fn in_memory() -> Self {
        CsvWriter::new(Vec::new())
    }
}

impl CsvWriter<std::fs::File> {
    /// A writer into a new file.
    pub fn create(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(CsvWriter::new(std::fs::File::create(path)?))
    }
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> Self {
        CsvWriter {
            inner: csv::Writer::from_writer(out),
        }
    }

    /// Writes one row.
    pub fn row<T: AsRef<str>>(
        &mut self,
        cells: impl IntoIterator<Item = T>,
    ) -> Result<(), csv::Error> {
        for cell in cells {
            self.inner
                .write_field(safe_cell(cell.as_ref()).as_bytes())?;
        }
        self.inner.write_record(None::<&[u8]>)
    }

    /// Flushes and hands back the output.
    pub fn into_inner(self) -> std::io::Result<W> {
        self.inner.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn no_cell_starts_a_formula() {
        let mut writer = CsvWriter::in_memory();
        writer.row(["id", "name"]).unwrap();
        for name in [
            "=HYPERLINK(\"https://evil.example\",\"x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tTab",
            "\rCR",
            "Doe, Jane",
            "a=b",
        ] {
            writer.row(["a1", name]).unwrap();
        }
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let cells: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
        assert_eq!(
            cells,
            [
                "'=HYPERLINK(\"https://evil.example\",\"x\")",
                "'+1",
                "'-2+3",
                "'@SUM(A1)",
                "'\tTab",
                "'\rCR",
                "Doe, Jane",
                "a=b",
            ]
        );
    }
}
