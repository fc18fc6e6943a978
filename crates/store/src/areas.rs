//! The area tree: lookups, scoped subtree listing and the transactional CSV import.

use crate::audit::{AuditConn, AuditEvent};
use crate::db::{Store, impl_both, with_conn};
use crate::error::{Result, StoreError};
use crate::schema::areas;
use crate::time::now_utc;
use baithak_domain::import::{ExistingArea, ImportError, ImportOp, ImportRow, plan_import};
use baithak_domain::{AreaCode, AreaId, AreaKind, AreaPath, UserId};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = areas, treat_none_as_default_value = false)]
struct AreaRow {
    id: String,
    code: String,
    name: String,
    kind: String,
    parent_id: Option<String>,
    path: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A stored area, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub id: AreaId,
    pub code: String,
    pub name: String,
    pub kind: AreaKind,
    pub parent_id: Option<AreaId>,
    pub path: AreaPath,
}

/// What never changes about an area once it exists: what it is and where it sits in
/// the tree. Imports only add areas or rename them and nothing deletes one, so these
/// facts can be kept in memory by every replica without going stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaPlace {
    pub id: AreaId,
    pub kind: AreaKind,
    pub path: AreaPath,
}

impl From<&Area> for AreaPlace {
    fn from(a: &Area) -> Self {
        AreaPlace {
            id: a.id,
            kind: a.kind,
            path: a.path.clone(),
        }
    }
}

/// The places of areas this process has looked up. Every push and feedback checks its
/// area's place, which would otherwise be a query each time (two for a meeting).
#[derive(Debug, Default)]
pub(crate) struct AreaPlaces(RwLock<HashMap<AreaId, AreaPlace>>);

/// Far above any organisation's tree (a state has tens of thousands of booths); past
/// it lookups still work, they just are not remembered.
const MAX_CACHED_PLACES: usize = 200_000;

impl AreaPlaces {
    fn get(&self, id: AreaId) -> Option<AreaPlace> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&id).cloned()
    }

    fn remember(&self, place: &AreaPlace) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() < MAX_CACHED_PLACES {
            map.insert(place.id, place.clone());
        }
    }

    /// The place of area `id`, from memory or through `c` (`NotFound` when there is
    /// no such area; an unknown id is not remembered, as it may be created later).
    pub(crate) fn lookup<C: AreaConn>(&self, c: &mut C, id: AreaId) -> Result<AreaPlace> {
        if let Some(place) = self.get(id) {
            return Ok(place);
        }
        let place = AreaPlace::from(&c.area_by_id(id)?);
        self.remember(&place);
        Ok(place)
    }
}

fn corrupt(what: &str, id: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} of area {id}"))
}

impl TryFrom<AreaRow> for Area {
    type Error = StoreError;
    fn try_from(r: AreaRow) -> Result<Self> {
        Ok(Area {
            id: r.id.parse().map_err(|_| corrupt("id", &r.id))?,
            kind: r.kind.parse().map_err(|_| corrupt("kind", &r.id))?,
            parent_id: r
                .parent_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt("parent", &r.id))?,
            path: AreaPath::parse(&r.path).map_err(|_| corrupt("path", &r.id))?,
            code: r.code,
            name: r.name,
        })
    }
}

fn parse_all(rows: Vec<AreaRow>) -> Result<Vec<Area>> {
    rows.into_iter().map(Area::try_from).collect()
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: u64,
    pub renamed: u64,
    pub unchanged: u64,
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    #[error(transparent)]
    Row(#[from] ImportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for ImportFailure {
    fn from(e: diesel::result::Error) -> Self {
        ImportFailure::Store(e.into())
    }
}

/// Parameter lists are chunked below both backends' bind limits.
const CHUNK: usize = 500;

pub(crate) trait AreaConn {
    fn area_by_id(&mut self, id: AreaId) -> Result<Area>;
    fn areas_by_codes(&mut self, codes: &[String]) -> Result<Vec<Area>>;
}

impl_both!(AreaConn {
    fn area_by_id(&mut self, id: AreaId) -> Result<Area> {
        let row: AreaRow = areas::table
            .find(id.to_string())
            .select(AreaRow::as_select())
            .first(self)?;
        row.try_into()
    }

    fn areas_by_codes(&mut self, codes: &[String]) -> Result<Vec<Area>> {
        let mut out = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(CHUNK) {
            let rows: Vec<AreaRow> = areas::table
                .filter(areas::code.eq_any(chunk))
                .select(AreaRow::as_select())
                .load(self)?;
            out.extend(parse_all(rows)?);
        }
        Ok(out)
    }
});

/// The body of an import transaction, expanded once per backend.
macro_rules! import_tx {
    ($c:ident, $rows:expr, $codes:expr, $scope:expr, $actor:expr, $progress:expr) => {{
        let now = now_utc();
        let mut existing = HashMap::new();
        for a in $c.areas_by_codes($codes)? {
            let code = AreaCode::parse("code", &a.code)
                .map_err(|_| StoreError::Corrupt(format!("code of area {}", a.id)))?;
            existing.insert(
                code,
                ExistingArea {
                    id: a.id,
                    name: a.name,
                    kind: a.kind,
                    parent_id: a.parent_id,
                    path: a.path,
                },
            );
        }
        let plan = plan_import($rows, &existing, $scope)?;
        let mut done = 0u64;
        for op in &plan.ops {
            match op {
                ImportOp::Create {
                    id,
                    code,
                    name,
                    kind,
                    parent_id,
                    path,
                } => {
                    diesel::insert_into(areas::table)
                        .values(&AreaRow {
                            id: id.to_string(),
                            code: code.as_str().to_owned(),
                            name: name.clone(),
                            kind: kind.as_str().to_owned(),
                            parent_id: parent_id.map(|p| p.to_string()),
                            path: path.as_str().to_owned(),
                            created_at: now,
                            updated_at: now,
                        })
                        .execute($c)?;
                }
                ImportOp::Rename { id, name } => {
                    diesel::update(areas::table.find(id.to_string()))
                        .set((areas::name.eq(name), areas::updated_at.eq(now)))
                        .execute($c)?;
                }
            }
            done += 1;
            if done % 256 == 0 {
                ($progress)(done);
            }
        }
        ($progress)($rows.len() as u64);
        if plan.created + plan.renamed > 0 {
            $c.append_audit(
                &AuditEvent::new(
                    $actor,
                    "areas.import",
                    "area",
                    "*",
                    serde_json::json!({
                        "created": plan.created,
                        "renamed": plan.renamed,
                        "unchanged": plan.unchanged,
                    }),
                ),
                now,
            )?;
        }
        Ok(ImportSummary {
            created: plan.created,
            renamed: plan.renamed,
            unchanged: plan.unchanged,
        })
    }};
}

impl Store {
    pub fn area(&self, id: AreaId) -> Result<Area> {
        with_conn!(self, |c| c.area_by_id(id))
    }

    /// The area's kind and path, which is all scope checks need; remembered after the
    /// first lookup (see [`AreaPlace`]).
    pub fn area_place(&self, id: AreaId) -> Result<AreaPlace> {
        // Checked before `with_conn!` so a remembered area takes no pooled connection.
        if let Some(place) = self.area_places.get(id) {
            return Ok(place);
        }
        with_conn!(self, |c| self.area_places.lookup(c, id))
    }

    pub fn area_by_code(&self, code: &str) -> Result<Area> {
        with_conn!(self, |c| c
            .areas_by_codes(&[code.to_owned()])?
            .into_iter()
            .next()
            .ok_or(StoreError::NotFound))
    }

    pub fn areas_by_ids(&self, ids: &[AreaId]) -> Result<Vec<Area>> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        with_conn!(self, |c| {
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(CHUNK) {
                let rows: Vec<AreaRow> = areas::table
                    .filter(areas::id.eq_any(chunk))
                    .select(AreaRow::as_select())
                    .load(c)?;
                out.extend(parse_all(rows)?);
            }
            Ok(out)
        })
    }

    /// Areas in `scope`'s subtree (itself included) in tree order, keyset-paged by path:
    /// one index range scan whatever the size of the tree.
    pub fn areas_in_subtree(
        &self,
        scope: &AreaPath,
        code: Option<&str>,
        after_path: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Area>> {
        let upper = scope.subtree_upper_bound();
        with_conn!(self, |c| {
            let mut q = areas::table
                .filter(areas::path.ge(scope.as_str()))
                .filter(areas::path.lt(upper.as_str()))
                .into_boxed();
            if let Some(code) = code {
                q = q.filter(areas::code.eq(code));
            }
            if let Some(after) = after_path {
                q = q.filter(areas::path.gt(after));
            }
            let rows = q
                .order(areas::path.asc())
                .limit(limit)
                .select(AreaRow::as_select())
                .load(c)?;
            parse_all(rows)
        })
    }

    /// Imports rows in one write transaction: all of it or none. `scope` limits an
    /// import made through the API to the caller's subtree (the command line passes
    /// `None`). `progress` is told how many rows are done, for a progress bar.
    pub fn import_areas(
        &self,
        rows: &[ImportRow],
        scope: Option<&AreaPath>,
        actor: Option<UserId>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ImportSummary, ImportFailure> {
        let mut codes: Vec<String> = rows
            .iter()
            .flat_map(|r| std::iter::once(&r.code).chain(r.parent_code.as_ref()))
            .map(|c| c.as_str().to_owned())
            .collect();
        codes.sort();
        codes.dedup();
        let res: Result<ImportSummary, ImportFailure> = match self.conn()? {
            crate::db::Conn::Sqlite(mut c) => {
                c.immediate_transaction(|c| import_tx!(c, rows, &codes, scope, actor, progress))
            }
            crate::db::Conn::Pg(mut pooled) => {
                let c: &mut diesel::PgConnection = &mut pooled;
                c.transaction(|c| import_tx!(c, rows, &codes, scope, actor, progress))
            }
        };
        res
    }
}
