//! A small element tree over quick-xml, with the position of every element.
//!
//! Owns: turning text into [`Element`]s and byte offsets into 1-based line:column (columns count
//! characters, so a Chinese node name does not shift the column). The parser reads this tree, never
//! quick-xml events, so positions are computed here once.

use std::ops::Range;

use quick_xml::escape::EscapeError;
use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Child>,
    /// Where the start tag's `<` is.
    pub pos: Pos,
    /// Byte range of the raw content between the start and end tags (empty for `<x/>`).
    pub inner: Range<usize>,
    /// Byte range of the start tag itself, `<` to `>` (what `upgrade` rewrites in place).
    pub tag: Range<usize>,
}

#[derive(Clone, Debug)]
pub(crate) enum Child {
    Element(Element),
    /// Unescaped character data.
    Text(String),
    /// A CDATA section's content (kept apart so the editor writes it back in the same form).
    CData(String),
    /// A comment's text: the parser skips it, the editor keeps it beside its node.
    Comment(String),
}

/// Malformed XML, at the position of the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct XmlError {
    pub pos: Pos,
    pub message: String,
}

impl XmlError {
    /// The diagnostic of this error in `file`.
    pub fn diagnostic(self, file: &std::path::Path) -> super::Diagnostic {
        super::Diagnostic {
            severity: super::Severity::Error,
            file: file.to_path_buf(),
            line: self.pos.line,
            col: self.pos.col,
            element: "xml".to_string(),
            message: self.message,
        }
    }
}

/// Start offsets of every line, to turn byte offsets into positions.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// The byte offset where a 1-based line starts (the end of the text past the last line).
    pub fn offset_of_line(&self, line: u32) -> usize {
        let i = line.saturating_sub(1) as usize;
        self.starts.get(i).copied().unwrap_or(self.text.len())
    }

    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        // Clamp to a char boundary: quick-xml offsets always are, but a bad one must not panic.
        let mut end = offset;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let col = self.text[start..end].chars().count() + 1;
        Pos {
            line: line as u32 + 1,
            col: col as u32,
        }
    }
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        attr_value(&self.attrs, name)
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Child::Element(e) => Some(e),
            _ => None,
        })
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    pub fn children_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Element> + 's {
        self.elements().filter(move |e| e.name == name)
    }

    /// The element's own character data (text and CDATA), nested elements skipped.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.children {
            if let Child::Text(t) | Child::CData(t) = c {
                out.push_str(t);
            }
        }
        out
    }
}

/// The value of attribute `name` in a list of attributes.
pub(crate) fn attr_value<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Deepest element nesting a document may have. The tree is built without recursion, but dropping,
/// cloning and walking it recurse, so a 40,000-deep document would overflow a thread's stack and
/// abort the whole process; real definitions nest fewer than ten levels.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most elements a document may hold (a 1,000-node workflow has about 10,000).
pub(crate) const MAX_ELEMENTS: usize = 100_000;

/// Refuses a document nested deeper than [`MAX_DEPTH`] or holding more than [`MAX_ELEMENTS`]
/// elements, at the element that crosses the limit. Streams over the text without building
/// anything, so it is safe on any input; malformed XML passes (the parser reports it).
pub(crate) fn check_limits(text: &str) -> Result<(), XmlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let (mut depth, mut count) = (0usize, 0usize);
    loop {
        let before = reader.buffer_position() as usize;
        let opened = match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                true
            }
            Ok(Event::Empty(_)) => true,
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                false
            }
            Ok(Event::Eof) | Err(_) => return Ok(()),
            Ok(_) => false,
        };
        if !opened {
            continue;
        }
        count += 1;
        let message = if depth > MAX_DEPTH {
            format!("document too deep: elements nested more than {MAX_DEPTH} levels (a definition needs fewer than ten)")
        } else if count > MAX_ELEMENTS {
            format!("document too large: more than {MAX_ELEMENTS} elements")
        } else {
            continue;
        };
        return Err(XmlError {
            pos: LineIndex::new(text).pos(before),
            message,
        });
    }
}

/// Parses a whole document into its root element (refusing documents over the limits first).
pub(crate) fn parse(text: &str) -> Result<Element, XmlError> {
    parse_document(text).map(|(_, root)| root)
}

/// Parses a whole document: the comments before its root element, and the root (refusing documents
/// over the limits first).
pub(crate) fn parse_document(text: &str) -> Result<(Vec<String>, Element), XmlError> {
    check_limits(text)?;
    let lines = LineIndex::new(text);
    let err = |offset: usize, message: String| XmlError {
        pos: lines.pos(offset),
        message,
    };
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut prolog = Vec::new();
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            err(
                reader.error_position() as usize,
                format!("malformed xml: {e}"),
            )
        })?;
        let done = match event {
            Event::Start(start) => {
                let mut el = element(&start, before, &lines)?;
                let after = reader.buffer_position() as usize;
                el.inner = after..after;
                el.tag = before..after;
                stack.push(el);
                None
            }
            Event::Empty(start) => {
                let mut el = element(&start, before, &lines)?;
                el.tag = before..reader.buffer_position() as usize;
                Some(el)
            }
            Event::End(_) => {
                // quick-xml has checked that the names match.
                let mut el = stack
                    .pop()
                    .ok_or_else(|| err(before, "malformed xml: unexpected end tag".into()))?;
                el.inner.end = before;
                Some(el)
            }
            Event::Text(t) => {
                let value = t.unescape().map_err(|e| escape_error(e, before, &lines))?;
                match stack.last_mut() {
                    Some(top) => top.children.push(Child::Text(value.into_owned())),
                    None if value.trim().is_empty() => {}
                    None => {
                        return Err(err(
                            before,
                            "malformed xml: text outside the root element".into(),
                        ))
                    }
                }
                None
            }
            Event::CData(c) => {
                let value = c
                    .decode()
                    .map_err(|e| err(before, format!("malformed xml: {e}")))?;
                match stack.last_mut() {
                    Some(top) => top.children.push(Child::CData(value.into_owned())),
                    None => {
                        return Err(err(
                            before,
                            "malformed xml: CDATA outside the root element".into(),
                        ))
                    }
                }
                None
            }
            Event::Eof => break,
            Event::Comment(c) => {
                let value = String::from_utf8_lossy(&c).into_owned();
                match stack.last_mut() {
                    Some(top) => top.children.push(Child::Comment(value)),
                    None if root.is_none() => prolog.push(value),
                    None => {} // after the root: nothing to attach it to
                }
                None
            }
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => None,
        };
        if let Some(el) = done {
            match stack.last_mut() {
                Some(parent) => parent.children.push(Child::Element(el)),
                None if root.is_none() => root = Some(el),
                None => {
                    return Err(XmlError {
                        pos: el.pos,
                        message: format!("malformed xml: a second root element <{}>", el.name),
                    })
                }
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError {
            pos: open.pos,
            message: format!("malformed xml: element <{}> is never closed", open.name),
        });
    }
    let root = root.ok_or_else(|| err(0, "malformed xml: no root element".into()))?;
    Ok((prolog, root))
}

fn element(
    start: &BytesStart<'_>,
    offset: usize,
    lines: &LineIndex<'_>,
) -> Result<Element, XmlError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| {
            // Attribute error offsets count from just after the tag's `<`.
            let (at, what) = match e {
                AttrError::ExpectedEq(p) => (p, "attribute name not followed by `=`"),
                AttrError::ExpectedValue(p) => (p, "attribute without a value"),
                AttrError::UnquotedValue(p) => (p, "attribute value not in quotes"),
                AttrError::ExpectedQuote(p, _) => (p, "attribute value without its closing quote"),
                AttrError::Duplicated(p, _) => (p, "duplicate attribute"),
            };
            XmlError {
                pos: lines.pos(offset + 1 + at),
                message: format!("malformed xml: {what} in <{name}>"),
            }
        })?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr.unescape_value().map_err(|e| XmlError {
            pos: lines.pos(offset),
            message: match e {
                quick_xml::Error::Escape(e) => {
                    format!("in attribute `{key}` of <{name}>: {}", escape_message(&e))
                }
                other => format!("malformed xml: in attribute `{key}` of <{name}>: {other}"),
            },
        })?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        pos: lines.pos(offset),
        inner: 0..0,
        tag: 0..0,
    })
}

fn escape_error(e: quick_xml::Error, text_start: usize, lines: &LineIndex<'_>) -> XmlError {
    match e {
        quick_xml::Error::Escape(esc) => {
            let at = match &esc {
                // The range of an unknown entity is its name, after the `&`.
                EscapeError::UnrecognizedEntity(r, _) => r.start.saturating_sub(1),
                EscapeError::UnterminatedEntity(r) => r.start,
                EscapeError::InvalidCharRef(_) => 0,
            };
            XmlError {
                pos: lines.pos(text_start + at),
                message: escape_message(&esc),
            }
        }
        other => XmlError {
            pos: lines.pos(text_start),
            message: format!("malformed xml: {other}"),
        },
    }
}

fn escape_message(e: &EscapeError) -> String {
    match e {
        EscapeError::UnrecognizedEntity(_, name) => format!(
            "unknown entity `&{name};`: XML knows only &lt; &gt; &amp; &quot; &apos; and numeric references (or use CDATA)"
        ),
        EscapeError::UnterminatedEntity(_) => "`&` not followed by an entity: write &amp; (or use CDATA)".to_string(),
        EscapeError::InvalidCharRef(e) => format!("bad character reference: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "<a>\n  <b x = \"1\"/>\n\t<名字 y='2'>t</名字><c/>\n</a>";
        let root = parse(text).unwrap();
        assert_eq!(root.pos, Pos { line: 1, col: 1 });
        let kids: Vec<_> = root.elements().collect();
        assert_eq!(
            (kids[0].name.as_str(), kids[0].pos),
            ("b", Pos { line: 2, col: 3 })
        );
        assert_eq!(kids[0].attr("x"), Some("1"));
        assert_eq!(
            (kids[1].name.as_str(), kids[1].pos),
            ("名字", Pos { line: 3, col: 2 })
        );
        // Columns count characters: `<c/>` is the 18th character, not the 24th byte.
        assert_eq!(kids[2].pos, Pos { line: 3, col: 18 });
        assert_eq!(kids[1].text(), "t");
    }

    #[test]
    fn text_and_cdata_are_unescaped_and_joined() {
        let root = parse("<a>x &lt; y <![CDATA[ <&> ]]> z</a>").unwrap();
        assert_eq!(root.text(), "x < y  <&>  z");
    }

    #[test]
    fn inner_range_is_the_raw_content() {
        let text = "<r><email>\n <table><tr><td>1</td></tr></table>\n</email></r>";
        let root = parse(text).unwrap();
        let email = root.child("email").unwrap();
        assert_eq!(
            &text[email.inner.clone()],
            "\n <table><tr><td>1</td></tr></table>\n"
        );
        assert_eq!(&text[email.tag.clone()], "<email>");
        let td = root.child("email").unwrap().child("table").unwrap();
        assert_eq!(&text[td.tag.clone()], "<table>");
        let empty = "<r>\n  <a x = \"1\" />\n</r>";
        let a = parse(empty).unwrap();
        assert_eq!(&empty[a.child("a").unwrap().tag.clone()], "<a x = \"1\" />");
    }

    #[test]
    fn malformed_documents_report_where() {
        let cases = [
            ("<a>\n  <b>\n</a>", 3, "malformed xml"),
            ("<a>\n<b x=\"1\" x=\"2\"/></a>", 2, "duplicate"),
            ("<a>\n  <b>", 2, "element <b> is never closed"),
            ("<a/>\n<b/>", 2, "a second root element <b>"),
            (
                "<a>\n\n  fish &nbsp; chips</a>",
                3,
                "unknown entity `&nbsp;`",
            ),
            ("<a x=\"&bad;\"/>", 1, "unknown entity `&bad;`"),
            ("", 1, "no root element"),
            ("<a>\n<b\n</a>", 3, "malformed xml"),
        ];
        for (text, line, msg) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.pos.line, line, "{text:?}: {}", e.message);
            assert!(e.message.contains(msg), "{text:?}: {}", e.message);
        }
        let e = parse("<a>\n  fish &nbsp; chips</a>").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, col: 8 });
        let e = parse("<a x=\"1\" x=\"2\"/>").unwrap_err();
        assert_eq!(e.pos, Pos { line: 1, col: 10 }, "{}", e.message);
    }

    #[test]
    fn deep_or_huge_documents_are_refused_where_they_cross_the_limit() {
        let deep = format!("<a>\n{}{}</a>", "<b>".repeat(40_000), "</b>".repeat(40_000));
        let e = parse(&deep).unwrap_err();
        // the 64th <b> is the 65th level
        assert_eq!(
            e.pos,
            Pos {
                line: 2,
                col: 63 * 3 + 1
            },
            "{}",
            e.message
        );
        assert!(
            e.message.contains("nested more than 64 levels"),
            "{}",
            e.message
        );
        let wide = format!("<a>{}</a>", "\n<b/>".repeat(MAX_ELEMENTS));
        let e = parse(&wide).unwrap_err();
        assert_eq!(e.pos.line, MAX_ELEMENTS as u32 + 1, "{}", e.message);
        assert!(
            e.message.contains("more than 100000 elements"),
            "{}",
            e.message
        );
        let fine = format!("<a>{}{}</a>", "<b>".repeat(63), "</b>".repeat(63));
        parse(&fine).unwrap();
    }
}
