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
}
