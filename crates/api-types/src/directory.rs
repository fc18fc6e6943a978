//! Areas and users: the organisation's directory.

use baithak_domain::{AreaKind, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AreaItem {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    #[schema(value_type = String, example = "constituency")]
    pub kind: AreaKind,
    pub parent_id: Option<Uuid>,
    /// True for an area above the caller's own: shown so an app can say where its user
    /// stands, not part of the caller's scope.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ancestor: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AreaPage {
    pub items: Vec<AreaItem>,
    pub next_cursor: Option<String>,
}

/// What an area import did. Counts are of rows in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    pub created: u64,
    pub renamed: u64,
    pub unchanged: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserItem {
    pub id: Uuid,
    pub login: String,
    pub name: String,
    #[schema(value_type = String, example = "incharge")]
    pub role: Role,
    pub area_id: Uuid,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserItem>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub login: String,
    pub name: String,
    #[schema(value_type = String, example = "incharge")]
    pub role: String,
    pub area_id: Uuid,
    pub password: String,
}

/// Fields left out stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}
