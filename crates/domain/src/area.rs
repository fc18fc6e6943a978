//! The area tree and the one scope rule every object fetch goes through.
//!
//! Each area stores its materialised path, `/<root id>/<child id>/…/<own id>/`, so
//! "is B inside A's subtree" is a prefix test and a subtree is one index range scan.

use crate::ids::AreaId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaKind {
    State,
    Division,
    Constituency,
    Assembly,
    Booth,
}

impl AreaKind {
    pub const ALL: [AreaKind; 5] = [
        AreaKind::State,
        AreaKind::Division,
        AreaKind::Constituency,
        AreaKind::Assembly,
        AreaKind::Booth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AreaKind::State => "state",
            AreaKind::Division => "division",
            AreaKind::Constituency => "constituency",
            AreaKind::Assembly => "assembly",
            AreaKind::Booth => "booth",
        }
    }

    /// Depth in the default hierarchy, state = 0.
    pub fn rank(self) -> u8 {
        match self {
            AreaKind::State => 0,
            AreaKind::Division => 1,
            AreaKind::Constituency => 2,
            AreaKind::Assembly => 3,
            AreaKind::Booth => 4,
        }
    }

    /// A child must be of a finer kind than its parent. Levels may be skipped (an
    /// organisation without assemblies hangs booths under constituencies), but the
    /// order never inverts, so "the constituency containing X" stays well defined.
    pub fn may_contain(self, child: AreaKind) -> bool {
        child.rank() > self.rank()
    }
}

impl fmt::Display for AreaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown area kind {0:?}: expected state, division, constituency, assembly or booth")]
pub struct UnknownAreaKind(pub String);

impl FromStr for AreaKind {
    type Err = UnknownAreaKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AreaKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownAreaKind(s.to_owned()))
    }
}

/// Materialised path of an area: `/<id>/<id>/…/`, root first, the area itself last.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AreaPath(String);

#[derive(Debug, thiserror::Error)]
#[error("malformed area path")]
pub struct MalformedPath;

impl AreaPath {
    pub fn root(id: AreaId) -> Self {
        AreaPath(format!("/{id}/"))
    }

    pub fn child(&self, id: AreaId) -> Self {
        AreaPath(format!("{}{id}/", self.0))
    }

    /// Parses a stored path, checking every segment is a UUID.
    pub fn parse(s: &str) -> Result<Self, MalformedPath> {
        let inner = s
            .strip_prefix('/')
            .and_then(|r| r.strip_suffix('/'))
            .ok_or(MalformedPath)?;
        if inner.is_empty() {
            return Err(MalformedPath);
        }
        for seg in inner.split('/') {
            uuid::Uuid::parse_str(seg).map_err(|_| MalformedPath)?;
        }
        Ok(AreaPath(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Ids from the root down to (and including) the area itself.
    pub fn ids(&self) -> Vec<AreaId> {
        self.0
            .split('/')
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// Strict ancestors, root first.
    pub fn ancestors(&self) -> Vec<AreaId> {
        let mut ids = self.ids();
        ids.pop();
        ids
    }

    pub fn contains(&self, other: &AreaPath) -> bool {
        other.0.starts_with(&self.0)
    }

    /// Upper bound (exclusive) of the subtree's paths in byte order: every path in the
    /// subtree starts with `self` and `/` (0x2F) sorts just before `0` (0x30), so
    /// `[self, self with the trailing / replaced by 0)` is exactly the subtree. The
    /// database column must compare bytewise (PostgreSQL: `COLLATE "C"`).
    pub fn subtree_upper_bound(&self) -> String {
        let mut s = self.0.clone();
        s.pop();
        s.push('0');
        s
    }
}

impl fmt::Display for AreaPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scope rule: a user whose scope is `scope` may see `target` exactly when `target`
/// lies in the subtree rooted at `scope` (the scope area itself included).
pub fn can_see(scope: &AreaPath, target: &AreaPath) -> bool {
    scope.contains(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_and_scope() {
        let (a, b, c, d) = (AreaId::new(), AreaId::new(), AreaId::new(), AreaId::new());
        let pa = AreaPath::root(a);
        let pb = pa.child(b);
        let pc = pb.child(c);
        let pd = pa.child(d);
        assert!(can_see(&pa, &pc));
        assert!(can_see(&pb, &pc));
        assert!(can_see(&pb, &pb));
        assert!(!can_see(&pb, &pd));
        assert!(!can_see(&pc, &pb));
        assert_eq!(pc.ancestors(), vec![a, b]);
        assert_eq!(pc.ids(), vec![a, b, c]);
        assert_eq!(AreaPath::parse(pc.as_str()).unwrap(), pc);
        assert!(AreaPath::parse("/x/").is_err());
        assert!(AreaPath::parse("//").is_err());
        // Every descendant sorts inside [path, upper bound); a sibling does not.
        let ub = pb.subtree_upper_bound();
        assert!(pc.as_str() >= pb.as_str() && pc.as_str() < ub.as_str());
        assert!(!(pd.as_str() >= pb.as_str() && pd.as_str() < ub.as_str()));
    }

    #[test]
    fn kinds_order() {
        assert!(AreaKind::State.may_contain(AreaKind::Division));
        assert!(AreaKind::Constituency.may_contain(AreaKind::Booth));
        assert!(!AreaKind::Booth.may_contain(AreaKind::Booth));
        assert!(!AreaKind::Division.may_contain(AreaKind::State));
        assert_eq!("assembly".parse::<AreaKind>().unwrap(), AreaKind::Assembly);
        assert!("mandal".parse::<AreaKind>().is_err());
    }
}
