//! Cypher safety: identifiers that may be spliced into statements, and the read-only check of
//! user queries.
//!
//! Values always travel as parameters. Labels and relationship types cannot be parameters in
//! Cypher, so they must match [`identifier`] (letters, digits, `_`, starting with a letter);
//! nothing else is ever interpolated into a statement.

use crate::GraphError;

/// Longest label, relationship type or property name accepted.
pub const MAX_IDENTIFIER: usize = 64;

/// Validates a label, relationship type or property name.
pub fn identifier<'a>(what: &str, s: &'a str) -> Result<&'a str, GraphError> {
    let mut chars = s.chars();
    let ok = s.len() <= MAX_IDENTIFIER
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s)
    } else {
        Err(GraphError::Invalid(format!(
            "{what} {s:?} must be 1-{MAX_IDENTIFIER} letters, digits or '_', starting with a letter"
        )))
    }
}

/// Clauses that change the graph or the database; a query containing one is refused.
const WRITE_KEYWORDS: [&str; 18] = [
    "CREATE",
    "MERGE",
    "DELETE",
    "DETACH",
    "SET",
    "REMOVE",
    "DROP",
    "LOAD",
    "FOREACH",
    "ALTER",
    "GRANT",
    "DENY",
    "REVOKE",
    "RENAME",
    "START",
    "STOP",
    "TERMINATE",
    "ENABLE",
];

/// Procedures a read-only query may `CALL`.
const READ_PROCEDURES: [&str; 4] = [
    "db.labels",
    "db.relationshipTypes",
    "db.propertyKeys",
    "db.schema.visualization",
];

/// One word of a query outside literals and comments, and whether it followed a `.` or `$`.
struct Word {
    text: String,
    qualified: bool,
}

/// Splits a query into words, skipping string literals, backtick-quoted names and comments.
fn words(q: &str) -> Result<Vec<Word>, GraphError> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let unterminated = |what: &str| GraphError::Invalid(format!("unterminated {what} in query"));
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                let quote = c;
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(unterminated("literal")),
                        Some(b'\\') if quote != b'`' => i += 2,
                        Some(&x) if x == quote => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = q[i + 2..]
                    .find("*/")
                    .ok_or_else(|| unterminated("comment"))?;
                i += 2 + end + 2;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.')
                {
                    i += 1;
                }
                let before = q[..start].trim_end().chars().last();
                out.push(Word {
                    text: q[start..i].to_owned(),
                    qualified: matches!(before, Some('.') | Some('$')),
                });
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

/// Refuses queries that could write: any write clause, or a `CALL` of a procedure outside the
/// read-only allow-list. Conservative on purpose (a property *named* like a clause in a map
/// literal is refused too); the provider additionally runs queries in a transaction it rolls
/// back, so a write that slipped through would not persist.
pub fn ensure_read_only(q: &str) -> Result<(), GraphError> {
    let words = words(q)?;
    for (n, w) in words.iter().enumerate() {
        if w.qualified {
            continue;
        }
        let upper = w.text.to_ascii_uppercase();
        if WRITE_KEYWORDS.contains(&upper.as_str()) {
            return Err(GraphError::Invalid(format!(
                "query is not read-only: {upper} is not allowed here"
            )));
        }
        if upper == "CALL" {
            match words.get(n + 1) {
                Some(next) if READ_PROCEDURES.contains(&next.text.as_str()) => {}
                Some(next) if next.text.contains('.') => {
                    return Err(GraphError::Invalid(format!(
                        "query is not read-only: procedure {} is not allowed (allowed: {})",
                        next.text,
                        READ_PROCEDURES.join(", ")
                    )))
                }
                // `CALL { … }` subqueries: their clauses are checked like the rest.
                _ => {}
            }
        }
    }
    Ok(())
}

/// The column names of a query's last `RETURN`, in the order it lists them (an alias after
/// `AS`, else the expression's text, as Neo4j names columns); `None` for `RETURN *`, a query
/// without `RETURN`, or text this scanner does not understand. Used to give rows their columns
/// in `RETURN` order, which the Bolt client does not keep.
pub fn return_columns(q: &str) -> Option<Vec<String>> {
    // Top-level (depth 0, outside literals and comments) byte ranges of words, and of commas.
    let b = q.as_bytes();
    let (mut depth, mut i) = (0i32, 0usize);
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut commas: Vec<usize> = Vec::new();
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' && q != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = q[i + 2..].find("*/")? + i + 4,
            b'(' | b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth -= 1;
                i += 1;
            }
            b',' if depth == 0 => {
                commas.push(i);
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let prev = q[..start].chars().last();
                if depth == 0 && !matches!(prev, Some('.') | Some('$')) {
                    words.push((start, i));
                }
            }
            _ => i += 1,
        }
    }
    let is = |(s, e): (usize, usize), w: &str| q[s..e].eq_ignore_ascii_case(w);
    let ret = words.iter().rposition(|&w| is(w, "RETURN"))?;
    let mut start = words[ret].1;
    if let Some(&next) = words.get(ret + 1) {
        if is(next, "DISTINCT") {
            start = next.1;
        }
    }
    let end = words[ret + 1..]
        .iter()
        .find(|&&w| ["ORDER", "SKIP", "LIMIT", "UNION"].iter().any(|k| is(w, k)))
        .map_or(q.trim_end().trim_end_matches(';').len(), |w| w.0);
    let mut bounds = vec![start];
    bounds.extend(commas.iter().copied().filter(|&c| c > start && c < end));
    bounds.push(end);
    let mut columns = Vec::new();
    for pair in bounds.windows(2) {
        let (from, to) = (pair[0] + usize::from(pair[0] != start), pair[1]);
        let alias = words
            .iter()
            .rposition(|&w| w.0 >= from && w.1 <= to && is(w, "AS"))
            .map(|n| q[words[n].1..to].trim().trim_matches('`').to_string());
        let item = alias.unwrap_or_else(|| q[from..to].trim().to_string());
        if item.is_empty() || item == "*" {
            return None;
        }
        columns.push(item);
    }
    Some(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_cannot_carry_cypher() {
        for ok in ["Entity", "TAGGED", "out_paths", "a1"] {
            assert!(identifier("label", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "Tag) DETACH DELETE (n",
            "a-b",
            "a b",
            "`x`",
            "x:y",
            &"a".repeat(65),
        ] {
            assert!(identifier("label", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_are_refused_wherever_they_hide() {
        for bad in [
            "MATCH (n) DETACH DELETE n",
            "match (n) set n.x = 1 return n",
            "CREATE (n:X)",
            "MATCH (n) RETURN n UNION MATCH (m) MERGE (m)-[:R]->(m) RETURN m",
            "CALL { CREATE (n) } RETURN 1",
            "CALL apoc.periodic.iterate('MATCH (n) RETURN n', 'DELETE n', {})",
            "LOAD CSV FROM 'file:///x' AS row RETURN row",
            "UNWIND [1] AS x FOREACH (i IN [1] | CREATE ())",
            "DROP CONSTRAINT c",
            "MATCH (n) /* ok */ REMOVE n.x",
        ] {
            assert!(ensure_read_only(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_pass_even_when_literals_and_properties_look_like_writes() {
        for ok in [
            "MATCH (n:Entity) RETURN n.key",
            "MATCH (n) WHERE n.name = 'CREATE (x)' RETURN n",
            "MATCH (n) WHERE n.set = $delete RETURN n // DELETE everything",
            "MATCH (n)-[r]->(m) RETURN type(r), count(*) ORDER BY count(*) DESC LIMIT 5",
            "CALL db.labels()",
            "MATCH (e:Event)-[:CAUSED_BY]->(c:Command {key: $cmd}) RETURN e.key",
            "MATCH (`weird label`) RETURN 1",
        ] {
            assert!(ensure_read_only(ok).is_ok(), "{ok}");
        }
        assert!(ensure_read_only("MATCH (n) WHERE n.x = 'unterminated RETURN n").is_err());
    }

    #[test]
    fn return_columns_are_listed_in_return_order() {
        assert_eq!(
            return_columns("MATCH (n) RETURN n.key AS key, labels(n) AS labels").unwrap(),
            ["key", "labels"]
        );
        assert_eq!(
            return_columns("MATCH (d:Document) RETURN d.title AS z, d.key AS a ORDER BY a LIMIT 3")
                .unwrap(),
            ["z", "a"]
        );
        assert_eq!(
            return_columns("MATCH (n) RETURN DISTINCT n.key, count(*) AS `n, with comma`").unwrap(),
            ["n.key", "n, with comma"]
        );
        assert_eq!(
            return_columns("MATCH (n) WITH n, {a: 1, b: 2} AS m RETURN m.b AS b, [1, 2] AS l;")
                .unwrap(),
            ["b", "l"]
        );
        assert_eq!(
            return_columns("MATCH (n) WHERE n.note = 'RETURN x' RETURN n.ascii AS y").unwrap(),
            ["y"]
        );
        assert_eq!(return_columns("MATCH (n) RETURN *"), None);
        assert_eq!(return_columns("CALL db.labels()"), None);
    }
}
