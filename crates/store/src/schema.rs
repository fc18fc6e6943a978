//! The portable diesel schema, shared by both backends (types that mean the same on
//! SQLite and PostgreSQL only).

diesel::table! {
    areas (id) {
        id -> Text,
        code -> Text,
        name -> Text,
        kind -> Text,
        parent_id -> Nullable<Text>,
        path -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        login -> Text,
        name -> Text,
        role -> Text,
        area_id -> Text,
        password_hash -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    device_sessions (id) {
        id -> Text,
        user_id -> Text,
        device_id -> Text,
        device_name -> Nullable<Text>,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        refresh_expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        session_id -> Text,
        generation -> BigInt,
        issued_at -> Timestamp,
        rotated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (seq) {
        seq -> BigInt,
        at -> Timestamp,
        actor_id -> Nullable<Text>,
        action -> Text,
        entity_type -> Text,
        entity_id -> Text,
        detail -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::joinable!(users -> areas (area_id));
diesel::joinable!(device_sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> device_sessions (session_id));

diesel::allow_tables_to_appear_in_same_query!(
    areas,
    users,
    device_sessions,
    refresh_tokens,
    audit_log,
    audit_head,
);
