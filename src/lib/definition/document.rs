//! A definition file as the visual editor sees it: a tree of elements, text, CDATA and comments in
//! file order, and the one printer that writes such a tree back as canonical XML.
//!
//! The editor edits this tree rather than the typed model, so attributes and children it has no input
//! for, legacy shapes and comments all survive an edit; a node's comments stay while the node does.
//! The printer is canonical: an XML declaration, two-space indentation, `name` first and then a fixed
//! order per element for the attributes (others after, as given), text written inline exactly as it
//! is (a command's or script's whitespace is its meaning), CDATA where it was CDATA.

use serde::{Deserialize, Serialize};

use super::parser::schema;
use super::xml::{self, Child};

/// A whole file: the comments before the root element, and the root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    #[serde(default)]
    pub prolog: Vec<String>,
    pub root: Element,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Element {
    pub name: String,
    /// In the order they are printed after canonical sorting: `[["name", "a"], ...]`.
    #[serde(default)]
    pub attrs: Vec<(String, String)>,
    #[serde(default)]
    pub children: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Item {
    Element(Element),
    Text {
        text: String,
        #[serde(default)]
        cdata: bool,
    },
    Comment {
        comment: String,
    },
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        xml::attr_value(&self.attrs, name)
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Item::Element(e) => Some(e),
            _ => None,
        })
    }
}

/// Element names that are nodes of the graph when they sit directly under the root.
pub const NODE_ELEMENTS: [&str; 6] = ["start", "end", "kill", "fork", "join", "action"];

/// Reads a file into the editor's tree. Whitespace-only text (indentation) is dropped: the printer
/// makes its own.
pub fn parse(text: &str) -> Result<Document, String> {
    let (prolog, root) = xml::parse_document(text)
        .map_err(|e| format!("{}:{}: {}", e.pos.line, e.pos.col, e.message))?;
    Ok(Document {
        prolog,
        root: convert(root),
    })
}

fn convert(el: xml::Element) -> Element {
    let children = el
        .children
        .into_iter()
        .filter_map(|c| match c {
            Child::Element(e) => Some(Item::Element(convert(e))),
            Child::Text(t) if t.trim().is_empty() => None,
            Child::Text(text) => Some(Item::Text { text, cdata: false }),
            Child::CData(text) => Some(Item::Text { text, cdata: true }),
            Child::Comment(comment) => Some(Item::Comment { comment }),
        })
        .collect();
    Element {
        name: el.name,
        attrs: el.attrs,
        children,
    }
}

/// Where one element directly under the root landed in the printed text (1-based lines, inclusive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    pub element: String,
    /// Its `name` attribute, if any (a node's name).
    pub name: Option<String>,
    pub first_line: u32,
    pub last_line: u32,
}

/// The printed file and where each top-level element went.
#[derive(Clone, Debug, PartialEq)]
pub struct Printed {
    pub xml: String,
    pub spans: Vec<Span>,
}

impl Printed {
    /// The top-level element a line belongs to (comments before an element count as its own).
    pub fn span_at(&self, line: u32) -> Option<&Span> {
        self.spans
            .iter()
            .find(|s| s.first_line <= line && line <= s.last_line)
    }
}

/// Attribute order per element, after `name` (the parser's own lists where it has one); attributes
/// not listed follow in their given order.
fn attr_order(element: &str) -> &'static [&'static str] {
    match element {
        "work-flow" | "workflow" => schema::WORKFLOW.attrs,
        "coordinator" => &[
            "is-enabled",
            "start-time",
            "end-time",
            "timezone",
            "dir",
            "desc",
        ],
        "action" => schema::ACTION.attrs,
        "file" => &["file-link", "min-num", "min-each-size"],
        "source" | "min" | "max" | "target" => &[
            "type",
            "db-link",
            "file-link",
            "table",
            "path",
            "delimited",
            "is-pre-truncate",
            "task-num",
        ],
        "metadata" => &["db-link", "table", "from"],
        "param" => &["value"],
        _ => &[],
    }
}

fn sorted_attrs(el: &Element) -> Vec<&(String, String)> {
    let order = attr_order(&el.name);
    let rank = |k: &str| {
        if k == "name" {
            0
        } else {
            order
                .iter()
                .position(|o| *o == k)
                .map_or(usize::MAX, |p| p + 1)
        }
    };
    let mut attrs: Vec<&(String, String)> = el.attrs.iter().collect();
    attrs.sort_by_key(|(k, _)| rank(k)); // stable: unlisted ones keep their order
    attrs
}

/// A name the XML grammar accepts (ASCII subset: the format uses nothing else).
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}

/// `<name attr="v" ...` without its closing `>`.
fn start_tag(el: &Element) -> Result<String, String> {
    if !valid_name(&el.name) {
        return Err(format!("`{}` is not a valid element name", el.name));
    }
    let mut s = format!("<{}", el.name);
    for (k, v) in sorted_attrs(el) {
        if !valid_name(k) {
            return Err(format!(
                "`{k}` is not a valid attribute name (in <{}>)",
                el.name
            ));
        }
        s.push(' ');
        s.push_str(k);
        s.push_str("=\"");
        escape_attr(v, &mut s);
        s.push('"');
    }
    Ok(s)
}

struct Printer {
    out: String,
    line: u32,
}

impl Printer {
    fn push(&mut self, s: &str) {
        self.line += s.matches('\n').count() as u32;
        self.out.push_str(s);
    }

    fn comment(&mut self, depth: usize, text: &str) -> Result<(), String> {
        if text.contains("--") || text.ends_with('-') {
            return Err(format!(
                "a comment may not contain `--` or end with `-`: `{text}`"
            ));
        }
        self.push(&format!("{}<!--{text}-->\n", "  ".repeat(depth)));
        Ok(())
    }

    fn element(&mut self, depth: usize, el: &Element) -> Result<(), String> {
        let mut s = format!("{}{}", "  ".repeat(depth), start_tag(el)?);
        if el.children.is_empty() {
            s.push_str("/>\n");
            self.push(&s);
            return Ok(());
        }
        s.push('>');
        let text_only = el.children.iter().all(|c| matches!(c, Item::Text { .. }));
        if text_only {
            // written exactly as it is: a command's or script's whitespace is part of it
            for c in &el.children {
                if let Item::Text { text, cdata } = c {
                    if *cdata {
                        s.push_str("<![CDATA[");
                        s.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
                        s.push_str("]]>");
                    } else {
                        escape_text(text, &mut s);
                    }
                }
            }
            s.push_str(&format!("</{}>\n", el.name));
            self.push(&s);
            return Ok(());
        }
        s.push('\n');
        self.push(&s);
        for c in &el.children {
            match c {
                Item::Element(e) => self.element(depth + 1, e)?,
                Item::Comment { comment } => self.comment(depth + 1, comment)?,
                Item::Text { text, cdata } => {
                    let mut t = "  ".repeat(depth + 1);
                    if *cdata {
                        t.push_str(&format!(
                            "<![CDATA[{}]]>",
                            text.replace("]]>", "]]]]><![CDATA[>")
                        ));
                    } else {
                        escape_text(text.trim(), &mut t);
                    }
                    t.push('\n');
                    self.push(&t);
                }
            }
        }
        self.push(&format!("{}</{}>\n", "  ".repeat(depth), el.name));
        Ok(())
    }
}

/// Writes the canonical XML of a document; refuses a tree that would not be well-formed XML.
pub fn print(doc: &Document) -> Result<Printed, String> {
    let mut p = Printer {
        out: String::new(),
        line: 1,
    };
    p.push("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    for c in &doc.prolog {
        p.comment(0, c)?;
    }
    let root = &doc.root;
    let root_line = p.line;
    p.push(&format!("{}>\n", start_tag(root)?));
    let mut spans = vec![Span {
        element: root.name.clone(),
        name: root.attr("name").map(str::to_string),
        first_line: root_line,
        last_line: p.line - 1,
    }];
    let mut pending_from: Option<u32> = None;
    for c in &root.children {
        match c {
            Item::Comment { comment } => {
                pending_from.get_or_insert(p.line);
                p.comment(1, comment)?;
            }
            Item::Element(e) => {
                let first = pending_from.take().unwrap_or(p.line);
                p.element(1, e)?;
                spans.push(Span {
                    element: e.name.clone(),
                    name: e.attr("name").map(str::to_string),
                    first_line: first,
                    last_line: p.line - 1,
                });
            }
            Item::Text { .. } => {
                return Err(format!(
                    "text directly inside <{}> is not part of the format",
                    root.name
                ));
            }
        }
    }
    let close_line = p.line;
    p.push(&format!("</{}>\n", root.name));
    spans.push(Span {
        element: root.name.clone(),
        name: root.attr("name").map(str::to_string),
        first_line: close_line,
        last_line: close_line,
    });
    Ok(Printed { xml: p.out, spans })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{load_sources, SourceFile};

    const ORIGINAL: &str = r#"<work-flow name="wf" dir="/x" creator="Kent"
    desc="demo">
  <!-- the schedule -->
  <coordinator is-enabled="true">
      <depend-list cron="*/20 * * * *"></depend-list>
  </coordinator>
  <start name="start" to="a" />
  <!-- say hello -->
  <action retry-times="2" name="a" desc = "hi &amp; bye">
      <shell><command>echo "a &lt; b"</command></shell>
      <ok to="s"/>
      <error to="k"/>
  </action>
  <action name="s">
      <script>
          <code><![CDATA[
            echo one
              echo two
          ]]></code>
      </script>
      <ok to="end"/>
  </action>
  <kill name="k"><message>failed</message></kill>
  <end name="end"/>
</work-flow>
"#;

    fn model(text: &str) -> crate::definition::Workflow {
        let set = load_sources(vec![SourceFile {
            path: "wf.xml".into(),
            text: text.to_string(),
        }])
        .unwrap_or_else(|d| panic!("{d:?}"));
        let mut w = set.workflows[0].workflow.clone();
        w.nodes.iter_mut().for_each(|n| n.line = 0); // the printer moves lines, not meaning
        w
    }

    #[test]
    fn printing_keeps_the_meaning_comments_and_text() {
        let doc = parse(ORIGINAL).unwrap();
        let printed = print(&doc).unwrap();
        assert_eq!(model(&printed.xml), model(ORIGINAL), "{}", printed.xml);
        let xml = &printed.xml;
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<work-flow name=\"wf\" creator=\"Kent\" desc=\"demo\" dir=\"/x\">\n"), "{xml}");
        assert!(xml.contains("  <!-- say hello -->\n  <action name=\"a\" retry-times=\"2\" desc=\"hi &amp; bye\">\n"), "{xml}");
        assert!(
            xml.contains("<command>echo \"a &lt; b\"</command>"),
            "{xml}"
        );
        assert!(xml.contains("<code><![CDATA[\n            echo one\n              echo two\n          ]]></code>"), "{xml}");
        assert!(
            xml.contains("    <depend-list cron=\"*/20 * * * *\"/>\n"),
            "{xml}"
        );
        // printing is a fixed point: the canonical form of the canonical form is itself
        assert_eq!(print(&parse(xml).unwrap()).unwrap().xml, *xml);
    }

    #[test]
    fn spans_point_lines_at_their_nodes() {
        let printed = print(&parse(ORIGINAL).unwrap()).unwrap();
        let line_of = |needle: &str| {
            printed
                .xml
                .lines()
                .position(|l| l.contains(needle))
                .unwrap() as u32
                + 1
        };
        let at = |needle: &str| {
            printed
                .span_at(line_of(needle))
                .and_then(|s| s.name.clone())
        };
        assert_eq!(at("<command>").as_deref(), Some("a"));
        assert_eq!(
            at("say hello").as_deref(),
            Some("a"),
            "a comment belongs to the node after it"
        );
        assert_eq!(at("echo two").as_deref(), Some("s"));
        assert_eq!(at("<message>").as_deref(), Some("k"));
        assert_eq!(
            printed.span_at(line_of("depend-list")).unwrap().element,
            "coordinator"
        );
    }

    /// Every workflow file of the repository's examples and fixtures, and of the original project's
    /// corpus where the shared fixtures sit beside the repository.
    fn corpus() -> Vec<std::path::PathBuf> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in [
            root.join("xmlconfig"),
            root.join("tests/fixtures/valid"),
            root.join("../shared/fixtures/akkaflow-original/v2.12.1"),
        ] {
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "xml") {
                        files.push(p);
                    }
                }
            }
        }
        files
    }

    #[test]
    fn every_example_and_fixture_survives_a_round_trip() {
        let mut seen = 0;
        for path in corpus() {
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.contains("<work-flow") {
                continue;
            }
            let printed = print(&parse(&text).unwrap()).unwrap();
            let one = |text: String| {
                load_sources(vec![SourceFile {
                    path: path.clone(),
                    text,
                }])
                .map(|s| {
                    let mut w = s.workflows[0].workflow.clone();
                    w.nodes.iter_mut().for_each(|n| n.line = 0);
                    w
                })
                .map_err(|d| d.len())
            };
            match (one(text), one(printed.xml.clone())) {
                (Ok(b), Ok(a)) => assert_eq!(a, b, "{}", path.display()),
                // a file that needs others (a sub-workflow, a link) fails the same way alone
                (Err(b), Err(a)) => assert_eq!(a, b, "{}", path.display()),
                (b, a) => panic!("{}: before {b:?} after {a:?}", path.display()),
            }
            seen += 1;
        }
        assert!(seen >= 5, "only {seen} workflow files found");
    }

    #[test]
    fn bad_trees_are_refused_not_printed() {
        let mut doc = parse(ORIGINAL).unwrap();
        doc.root.attrs.push(("bad name".into(), "x".into()));
        assert!(print(&doc).unwrap_err().contains("bad name"));
        let mut doc = parse(ORIGINAL).unwrap();
        doc.prolog.push("a -- b".into());
        assert!(print(&doc).is_err());
    }
}
