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

// Photos, uploads, meetings and sync (migration 2026-11-24-000002_media_sync).

diesel::table! {
    media (sha256) {
        sha256 -> Text,
        media_type -> Text,
        bytes -> BigInt,
        width -> Integer,
        height -> Integer,
        taken_at -> Nullable<Timestamp>,
        taken_at_local -> Nullable<Text>,
        gps_lat -> Nullable<Double>,
        gps_lon -> Nullable<Double>,
        orientation -> Integer,
        phash -> BigInt,
        phash_b0 -> Integer,
        phash_b1 -> Integer,
        phash_b2 -> Integer,
        phash_b3 -> Integer,
        uploaded_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    uploads (id) {
        id -> Text,
        user_id -> Text,
        sha256 -> Text,
        length -> BigInt,
        received -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    meeting_head (id) {
        id -> Integer,
        seq -> BigInt,
    }
}

diesel::table! {
    meetings (id) {
        id -> Text,
        incharge_id -> Text,
        area_id -> Text,
        area_path -> Text,
        kind -> Text,
        occurred_at -> Timestamp,
        occurred_offset_minutes -> Integer,
        ended_at -> Nullable<Timestamp>,
        local_day -> Text,
        received_at -> Timestamp,
        lat -> Nullable<Double>,
        lon -> Nullable<Double>,
        accuracy_m -> Nullable<Double>,
        attendee_count -> Integer,
        topic -> Text,
        notes -> Text,
        version -> BigInt,
        decision -> Nullable<Text>,
        decision_reason -> Nullable<Text>,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        counted -> Bool,
        flags -> Text,
        record_seq -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    meeting_photos (meeting_id, sha256) {
        meeting_id -> Text,
        sha256 -> Text,
        position -> Integer,
        use_seq -> BigInt,
    }
}

diesel::table! {
    feedback (id) {
        id -> Text,
        incharge_id -> Text,
        constituency_id -> Text,
        constituency_path -> Text,
        subject -> Text,
        rating -> Integer,
        text -> Text,
        collected_at -> Timestamp,
        respondents -> Integer,
        received_at -> Timestamp,
    }
}

diesel::table! {
    mutation_ledger (device_id, mutation_id) {
        device_id -> Text,
        mutation_id -> Text,
        user_id -> Text,
        content_hash -> Text,
        result -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    changes (seq) {
        seq -> BigInt,
        kind -> Text,
        user_id -> Nullable<Text>,
        area_path -> Nullable<Text>,
        entity_id -> Text,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    feed_head (id) {
        id -> Integer,
        seq -> BigInt,
    }
}

diesel::table! {
    quota_days (incharge_id, day) {
        incharge_id -> Text,
        day -> Text,
        counted -> Integer,
        submitted -> Integer,
        status -> Text,
        target_met -> Bool,
        is_final -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    policy (id) {
        id -> Integer,
        body -> Text,
        version -> BigInt,
        updated_at -> Timestamp,
        updated_by -> Nullable<Text>,
    }
}

diesel::table! {
    reviews (id) {
        id -> Text,
        incharge_id -> Text,
        reviewer_id -> Text,
        area_path -> Text,
        period_from -> Text,
        period_to -> Text,
        notes -> Text,
        action -> Text,
        snapshot -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    media_uploaders (sha256, user_id) {
        sha256 -> Text,
        user_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(users -> areas (area_id));
diesel::joinable!(device_sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> device_sessions (session_id));
diesel::joinable!(meeting_photos -> meetings (meeting_id));
diesel::joinable!(meeting_photos -> media (sha256));
diesel::joinable!(quota_days -> users (incharge_id));

diesel::table! {
    login_throttle (key) {
        key -> Text,
        tat_ms -> BigInt,
        blocked_until_ms -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    areas,
    users,
    device_sessions,
    refresh_tokens,
    audit_log,
    audit_head,
    media,
    uploads,
    meeting_head,
    meetings,
    meeting_photos,
    feedback,
    mutation_ledger,
    changes,
    feed_head,
    quota_days,
    policy,
    reviews,
    media_uploaders,
    login_throttle,
);
