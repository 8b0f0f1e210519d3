//! Delimited files as transfers read and write them: one record per line, fields split by the
//! `delimited` string (any string, default tab), CSV-style quoting where a value needs it.
//!
//! - A value holding the delimiter, `"`, a line break, or nothing at all is written in double
//!   quotes with each `"` doubled; any other value is written as it is, so files without such
//!   values look exactly as before quoting existed.
//! - NULL is written `\N` (the spelling of PostgreSQL's COPY and MySQL's LOAD DATA); a value that is
//!   literally `\N` is quoted. On reading, an unquoted `\N` and an unquoted empty field are NULL (the
//!   latter is how files without a marker spell it), and `""` is the empty string.
//! - Text is UTF-8 both ways; a line that is not is an error naming it. Binary values are hex.
//!
//! Hand-written rather than the `csv` crate: a delimiter here may be several characters (`---` is
//! in use), which `csv` cannot split on, and a NULL must differ from an empty string, which `csv`
//! cannot tell apart (it does not report whether a field was quoted).

use std::path::PathBuf;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::db::TextRow;

/// NULL in a file.
pub(crate) const NULL_MARKER: &str = "\\N";

/// Appends one record, line end included.
pub(crate) fn write_record<'a>(
    out: &mut String,
    row: impl IntoIterator<Item = Option<&'a str>>,
    delimiter: &str,
) {
    for (i, v) in row.into_iter().enumerate() {
        if i > 0 {
            out.push_str(delimiter);
        }
        match v {
            None => out.push_str(NULL_MARKER),
            Some(v) => {
                let quote = v.is_empty()
                    || v == NULL_MARKER
                    || v.contains(delimiter)
                    || v.contains(['"', '\n', '\r']);
                if quote {
                    out.push('"');
                    out.push_str(&v.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(v);
                }
            }
        }
    }
    out.push('\n');
}

/// Reads records from a delimited file; a quoted value may span lines.
pub(crate) struct RecordReader<R> {
    path: PathBuf,
    input: R,
    delimiter: String,
    /// The physical line the last record started on.
    pub line_no: u64,
    lines_read: u64,
    buf: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> RecordReader<R> {
    pub(crate) fn new(path: PathBuf, input: R, delimiter: String) -> Self {
        RecordReader {
            path,
            input,
            delimiter,
            line_no: 0,
            lines_read: 0,
            buf: Vec::new(),
        }
    }

    /// Reads one physical line into `buf` (appending); false at the end of the file.
    async fn read_line(&mut self) -> Result<bool, String> {
        let n = self
            .input
            .read_until(b'\n', &mut self.buf)
            .await
            .map_err(|e| format!("reading `{}`: {e}", self.path.display()))?;
        if n > 0 {
            self.lines_read += 1;
        }
        Ok(n > 0)
    }

    pub(crate) async fn next(&mut self) -> Result<Option<TextRow>, String> {
        self.buf.clear();
        if !self.read_line().await? {
            return Ok(None);
        }
        self.line_no = self.lines_read;
        loop {
            let text = std::str::from_utf8(&self.buf).map_err(|e| {
                format!(
                    "line {} of `{}` is not UTF-8 (at byte {})",
                    self.lines_read,
                    self.path.display(),
                    e.valid_up_to()
                )
            })?;
            match parse_record(text, &self.delimiter) {
                Ok(Some(row)) => return Ok(Some(row)),
                // a quoted value goes on: take the next line too
                Ok(None) => {
                    if !self.read_line().await? {
                        return Err(format!(
                            "line {} of `{}`: a quoted value is not closed before the end of the file",
                            self.line_no,
                            self.path.display()
                        ));
                    }
                }
                Err(why) => {
                    return Err(format!(
                        "line {} of `{}`: {why}",
                        self.line_no,
                        self.path.display()
                    ))
                }
            }
        }
    }
}

/// Splits one record (its line end included or not); `Ok(None)` when a quoted value is still open.
pub(crate) fn parse_record(text: &str, delimiter: &str) -> Result<Option<TextRow>, String> {
    let unquoted = |f: &str| (!f.is_empty() && f != NULL_MARKER).then(|| f.to_string());
    if !text.contains('"') {
        let line = text.trim_end_matches(['\n', '\r']);
        return Ok(Some(line.split(delimiter).map(unquoted).collect()));
    }
    let mut row = Vec::new();
    let mut rest = text;
    loop {
        if let Some(body) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut tail = body;
            loop {
                let Some(q) = tail.find('"') else {
                    return Ok(None);
                };
                value.push_str(&tail[..q]);
                tail = &tail[q + 1..];
                if let Some(t) = tail.strip_prefix('"') {
                    value.push('"');
                    tail = t;
                } else {
                    break;
                }
            }
            row.push(Some(value));
            if let Some(t) = tail.strip_prefix(delimiter) {
                rest = t;
                continue;
            }
            if tail.trim_end_matches(['\n', '\r']).is_empty() {
                return Ok(Some(row));
            }
            return Err(format!(
                "field {}: a quoted value must be followed by the delimiter or the line end",
                row.len()
            ));
        }
        let end_of_line = rest.trim_end_matches(['\n', '\r']);
        match end_of_line.find(delimiter) {
            Some(d) => {
                row.push(unquoted(&rest[..d]));
                rest = &rest[d + delimiter.len()..];
            }
            None => {
                row.push(unquoted(end_of_line));
                return Ok(Some(row));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn plain_lines_split_on_any_delimiter() {
        let p = |l: &str, d: &str| parse_record(l, d).unwrap().unwrap();
        assert_eq!(p("a\tb\tc\n", "\t"), vec![s("a"), s("b"), s("c")]);
        assert_eq!(p("a---b", "---"), vec![s("a"), s("b")]);
        assert_eq!(p("a--b", "---"), vec![s("a--b")]);
        assert_eq!(p("a,,c\r\n", ","), vec![s("a"), None, s("c")]);
        assert_eq!(p("\\N,x", ","), vec![None, s("x")]);
        assert_eq!(p("", ","), vec![None]);
        assert_eq!(p("x,", ","), vec![s("x"), None]);
    }

    #[test]
    fn every_value_round_trips_through_a_record() {
        let values = [
            s("plain"),
            None,
            s(""),
            s("\\N"),
            s("a,b"),
            s("two\nlines"),
            s("cr\r\nlf"),
            s("say \"hi\""),
            s("\""),
            s("名字 ü"),
            s("ends with delimiter,"),
            s("---"),
        ];
        for delimiter in [",", "\t", "---", "|"] {
            let mut out = String::new();
            write_record(&mut out, values.iter().map(Option::as_deref), delimiter);
            assert!(out.ends_with('\n'));
            assert_eq!(
                parse_record(&out, delimiter).unwrap().unwrap(),
                values,
                "{delimiter:?}: {out}"
            );
            // read line by line, as the reader does: open quotes take the next line
            let mut acc = String::new();
            let mut got = None;
            for line in out.split_inclusive('\n') {
                acc.push_str(line);
                if let Some(row) = parse_record(&acc, delimiter).unwrap() {
                    got = Some(row);
                    break;
                }
            }
            assert_eq!(got.unwrap(), values, "{delimiter:?}");
        }
    }

    #[test]
    fn plain_values_are_written_unquoted_and_bad_quotes_are_named() {
        let mut out = String::new();
        write_record(&mut out, [Some("a"), None, Some("c d")], "\t");
        assert_eq!(out, "a\t\\N\tc d\n");
        assert!(parse_record("\"a\"b,c", ",")
            .unwrap_err()
            .contains("field 1"));
        assert_eq!(parse_record("\"open,x\n", ",").unwrap(), None);
    }

    #[tokio::test]
    async fn the_reader_names_the_line_of_a_record() {
        let data = b"h1,h2\n\"a\nb\",x\nbad\xff,y\n".to_vec();
        let mut r = RecordReader::new("f.csv".into(), &data[..], ",".into());
        assert_eq!(r.next().await.unwrap().unwrap(), vec![s("h1"), s("h2")]);
        assert_eq!(r.next().await.unwrap().unwrap(), vec![s("a\nb"), s("x")]);
        assert_eq!(r.line_no, 2);
        let e = r.next().await.unwrap_err();
        assert!(e.contains("line 4 of `f.csv` is not UTF-8"), "{e}");
    }
}
