//! Area import: parsing the `code,name,kind,parent_code` CSV and planning what an
//! import changes, as pure functions. The store fetches the existing areas the file
//! names, asks [`plan_import`] what to do, and applies the plan in one transaction.

use crate::area::{AreaKind, AreaPath};
use crate::ids::AreaId;
use crate::validate::{AreaCode, display_name};
use std::collections::{HashMap, HashSet};
use std::io::Read;

/// One data row of the file; `line` is the 1-based line number in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub line: u64,
    pub code: AreaCode,
    pub name: String,
    pub kind: AreaKind,
    pub parent_code: Option<AreaCode>,
}

/// Why a file imports nothing: the line (0 for the file as a whole) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: u64,
    pub message: String,
}

fn err(line: u64, message: impl Into<String>) -> ImportError {
    ImportError {
        line,
        message: message.into(),
    }
}

const HEADER: [&str; 4] = ["code", "name", "kind", "parent_code"];

/// Parses the whole file; the first bad line fails it.
pub fn parse_area_csv(input: impl Read) -> Result<Vec<ImportRow>, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(input);
    let headers = rdr
        .headers()
        .map_err(|e| err(1, format!("unreadable header: {e}")))?;
    if headers.iter().collect::<Vec<_>>() != HEADER {
        return Err(err(
            1,
            format!("header must be exactly {}", HEADER.join(",")),
        ));
    }
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            err(line, format!("malformed CSV: {e}"))
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let field = |i: usize| rec.get(i).unwrap_or("");
        let code = AreaCode::parse("code", field(0)).map_err(|e| err(line, e.to_string()))?;
        let name = display_name("name", field(1)).map_err(|e| err(line, e.to_string()))?;
        let kind = field(2)
            .parse::<AreaKind>()
            .map_err(|e| err(line, e.to_string()))?;
        let parent_code = match field(3) {
            "" => None,
            p => Some(AreaCode::parse("parent_code", p).map_err(|e| err(line, e.to_string()))?),
        };
        if parent_code.as_ref() == Some(&code) {
            return Err(err(line, "an area cannot be its own parent"));
        }
        if !seen.insert(code.clone()) {
            return Err(err(line, format!("code {code} appears twice in the file")));
        }
        rows.push(ImportRow {
            line,
            code,
            name,
            kind,
            parent_code,
        });
    }
    Ok(rows)
}

/// An area that is already stored, as far as planning needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingArea {
    pub id: AreaId,
    pub name: String,
    pub kind: AreaKind,
    pub parent_id: Option<AreaId>,
    pub path: AreaPath,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOp {
    Create {
        id: AreaId,
        code: AreaCode,
        name: String,
        kind: AreaKind,
        parent_id: Option<AreaId>,
        path: AreaPath,
    },
    Rename {
        id: AreaId,
        name: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPlan {
    /// Creations ordered parents first, then renames.
    pub ops: Vec<ImportOp>,
    pub created: u64,
    pub renamed: u64,
    pub unchanged: u64,
}

/// Decides what importing `rows` changes, given the stored areas whose codes the file
/// mentions (as codes or parent codes). Rows may come in any order; an existing area
/// keeps its id and only its name may change (moving an area would silently re-scope
/// every user and record under it, so it is refused). With `scope`, every area touched
/// must lie inside it and new roots are refused.
pub fn plan_import(
    rows: &[ImportRow],
    existing: &HashMap<AreaCode, ExistingArea>,
    scope: Option<&AreaPath>,
) -> Result<ImportPlan, ImportError> {
    let mut plan = ImportPlan::default();
    // Resolved areas by code: (id, kind, path), starting from what is stored.
    let mut known: HashMap<&AreaCode, (AreaId, AreaKind, AreaPath)> = existing
        .iter()
        .map(|(c, a)| (c, (a.id, a.kind, a.path.clone())))
        .collect();
    let in_file: HashSet<&AreaCode> = rows.iter().map(|r| &r.code).collect();
    let mut pending: Vec<&ImportRow> = Vec::new();
    let mut renames = Vec::new();

    for row in rows {
        match existing.get(&row.code) {
            Some(ex) => {
                let parent_matches = match (&row.parent_code, ex.parent_id) {
                    (None, None) => true,
                    (Some(pc), Some(pid)) => known.get(pc).is_some_and(|(id, _, _)| *id == pid),
                    _ => false,
                };
                if ex.kind != row.kind || !parent_matches {
                    return Err(err(
                        row.line,
                        format!(
                            "area {} already exists with another kind or parent; moving areas is not supported",
                            row.code
                        ),
                    ));
                }
                if let Some(s) = scope
                    && !s.contains(&ex.path)
                {
                    return Err(err(
                        row.line,
                        format!("area {} is outside your scope", row.code),
                    ));
                }
                if ex.name != row.name {
                    renames.push(ImportOp::Rename {
                        id: ex.id,
                        name: row.name.clone(),
                    });
                    plan.renamed += 1;
                } else {
                    plan.unchanged += 1;
                }
            }
            None => pending.push(row),
        }
    }

    // Create in waves: each wave places the rows whose parent is now known, so a file
    // may list children before parents.
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for row in pending {
            let parent = match &row.parent_code {
                None => None,
                Some(pc) => match known.get(pc) {
                    Some(p) => Some(p.clone()),
                    None if in_file.contains(pc) => {
                        rest.push(row);
                        continue;
                    }
                    None => {
                        return Err(err(row.line, format!("unknown parent_code {pc}")));
                    }
                },
            };
            let id = AreaId::new();
            let path = match &parent {
                None => {
                    if scope.is_some() {
                        return Err(err(
                            row.line,
                            "a new top-level area can only be created from the command line",
                        ));
                    }
                    AreaPath::root(id)
                }
                Some((_, pkind, ppath)) => {
                    if !pkind.may_contain(row.kind) {
                        return Err(err(
                            row.line,
                            format!("a {} cannot contain a {}", pkind, row.kind),
                        ));
                    }
                    if let Some(s) = scope
                        && !s.contains(ppath)
                    {
                        return Err(err(
                            row.line,
                            format!(
                                "parent {} is outside your scope",
                                row.parent_code.as_ref().map(|c| c.as_str()).unwrap_or("")
                            ),
                        ));
                    }
                    ppath.child(id)
                }
            };
            known.insert(&row.code, (id, row.kind, path.clone()));
            plan.ops.push(ImportOp::Create {
                id,
                code: row.code.clone(),
                name: row.name.clone(),
                kind: row.kind,
                parent_id: parent.map(|(pid, _, _)| pid),
                path,
            });
            plan.created += 1;
        }
        if rest.len() == before {
            // Nothing could be placed: the remaining rows form a cycle.
            let line = rest.iter().map(|r| r.line).min().unwrap_or(0);
            return Err(err(line, "parent_code forms a cycle"));
        }
        pending = rest;
    }
    plan.ops.extend(renames);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<ImportRow>, ImportError> {
        parse_area_csv(s.as_bytes())
    }

    #[test]
    fn parses_and_names_bad_lines() {
        let rows =
            parse("code,name,kind,parent_code\nUP,उत्तर प्रदेश,state,\nLKO,Lucknow,division,UP\n")
                .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "उत्तर प्रदेश");
        assert_eq!(rows[1].line, 3);
        assert_eq!(
            parse("code,name,kind,parent_code\nUP,U,state,\nX,Y,village,UP\n")
                .unwrap_err()
                .line,
            3
        );
        assert_eq!(parse("code,name,kind\nUP,U,state\n").unwrap_err().line, 1);
        assert_eq!(
            parse("code,name,kind,parent_code\nUP,U,state,\nUP,U,state,\n")
                .unwrap_err()
                .line,
            3
        );
        assert_eq!(
            parse("code,name,kind,parent_code\nUP,U,state,\nA,B,division\n")
                .unwrap_err()
                .line,
            3
        );
    }

    #[test]
    fn plans_out_of_order_files_and_checks_kinds() {
        let rows = parse(
            "code,name,kind,parent_code\nB1,Booth,booth,C1\nC1,Seat,constituency,UP\nUP,State,state,\n",
        )
        .unwrap();
        let plan = plan_import(&rows, &HashMap::new(), None).unwrap();
        assert_eq!(plan.created, 3);
        let paths: Vec<_> = plan
            .ops
            .iter()
            .map(|op| match op {
                ImportOp::Create { path, .. } => path.ids().len(),
                ImportOp::Rename { .. } => 0,
            })
            .collect();
        assert_eq!(paths, vec![1, 2, 3]);

        let bad = parse(
            "code,name,kind,parent_code\nUP,State,state,\nD,Div,division,B\nB,Booth,booth,UP\n",
        )
        .unwrap();
        let e = plan_import(&bad, &HashMap::new(), None).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("booth cannot contain a division"), "{e}");

        let unknown = parse("code,name,kind,parent_code\nD,Div,division,NOPE\n").unwrap();
        assert_eq!(
            plan_import(&unknown, &HashMap::new(), None)
                .unwrap_err()
                .line,
            2
        );

        let cycle = parse("code,name,kind,parent_code\nA,A,division,B\nB,B,division,A\n").unwrap();
        assert!(
            plan_import(&cycle, &HashMap::new(), None)
                .unwrap_err()
                .message
                .contains("cycle")
        );
    }

    #[test]
    fn reimport_is_idempotent_and_renames_only() {
        let rows =
            parse("code,name,kind,parent_code\nUP,State,state,\nD,Div,division,UP\n").unwrap();
        let first = plan_import(&rows, &HashMap::new(), None).unwrap();
        let mut existing = HashMap::new();
        for op in &first.ops {
            if let ImportOp::Create {
                id,
                code,
                name,
                kind,
                parent_id,
                path,
            } = op
            {
                existing.insert(
                    code.clone(),
                    ExistingArea {
                        id: *id,
                        name: name.clone(),
                        kind: *kind,
                        parent_id: *parent_id,
                        path: path.clone(),
                    },
                );
            }
        }
        let again = plan_import(&rows, &existing, None).unwrap();
        assert_eq!((again.created, again.renamed, again.unchanged), (0, 0, 2));
        assert!(again.ops.is_empty());

        let renamed = parse("code,name,kind,parent_code\nD,Division Two,division,UP\n").unwrap();
        let plan = plan_import(&renamed, &existing, None).unwrap();
        assert_eq!(plan.renamed, 1);

        let moved = parse("code,name,kind,parent_code\nD,Div,division,\n").unwrap();
        assert!(plan_import(&moved, &existing, None).is_err());

        // Scoped to D: D's own subtree may grow, a new root may not appear.
        let d_path = existing[&AreaCode::parse("c", "D").unwrap()].path.clone();
        let child = parse("code,name,kind,parent_code\nS,Seat,constituency,D\n").unwrap();
        assert_eq!(
            plan_import(&child, &existing, Some(&d_path))
                .unwrap()
                .created,
            1
        );
        let root = parse("code,name,kind,parent_code\nMP,MP,state,\n").unwrap();
        assert!(plan_import(&root, &existing, Some(&d_path)).is_err());
        let above = parse("code,name,kind,parent_code\nD2,Div2,division,UP\n").unwrap();
        assert!(plan_import(&above, &existing, Some(&d_path)).is_err());
    }
}
