DROP TABLE audit_head;
DROP TABLE audit_log;
DROP TABLE refresh_tokens;
DROP TABLE device_sessions;
DROP TABLE users;
DROP TABLE areas;
