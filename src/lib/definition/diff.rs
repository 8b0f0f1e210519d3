//! A unified diff of two versions of a definition file, as `diff -u` prints it (three lines of
//! context), for `workflow diff`, the API and the UI.

use similar::TextDiff;

/// The changes from `old` to `new`, labelled `a/NAME@vOLD` and `b/NAME@vNEW`; empty when equal.
pub fn unified(name: &str, old: (i64, &str), new: (i64, &str)) -> String {
    TextDiff::from_lines(old.1, new.1)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("a/{name}@v{}", old.0),
            &format!("b/{name}@v{}", new.0),
        )
        .to_string()
}

/// The diff between versions `from` and `to` among `versions` (number, source); `Err` names the
/// first of the two that is not there.
pub fn between(name: &str, versions: &[(i64, &str)], from: i64, to: i64) -> Result<String, i64> {
    let source = |v: i64| {
        versions
            .iter()
            .find(|(n, _)| *n == v)
            .map(|(_, s)| *s)
            .ok_or(v)
    };
    Ok(unified(name, (from, source(from)?), (to, source(to)?)))
}

/// For each version (number, content hash; oldest first), the oldest earlier version with the
/// same content: a rollback to it, or a file put back as it was.
pub fn same_as(versions: &[(i64, &str)]) -> Vec<Option<i64>> {
    versions
        .iter()
        .enumerate()
        .map(|(i, (_, hash))| {
            versions[..i]
                .iter()
                .find(|(_, h)| h == hash)
                .map(|(v, _)| *v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_shows_as_removed_and_added_with_its_context() {
        let old = "<work-flow name=\"w\">\n  <a/>\n  <b cmd=\"one\"/>\n</work-flow>\n";
        let new = "<work-flow name=\"w\">\n  <a/>\n  <b cmd=\"two\"/>\n</work-flow>\n";
        assert_eq!(
            unified("w", (1, old), (2, new)),
            "--- a/w@v1\n+++ b/w@v2\n@@ -1,4 +1,4 @@\n <work-flow name=\"w\">\n   <a/>\n-  <b cmd=\"one\"/>\n+  <b cmd=\"two\"/>\n </work-flow>\n"
        );
        assert_eq!(unified("w", (1, old), (1, old)), "");
    }

    #[test]
    fn a_version_names_its_oldest_twin() {
        let v = [(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a"), (6, "c")];
        assert_eq!(same_as(&v), [None, None, Some(1), Some(2), Some(1), None]);
    }
}
