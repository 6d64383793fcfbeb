-- A local user's password for signing in to the web UI: an Argon2id hash
-- in PHC string form ($argon2id$v=19$m=...,t=...,p=...$salt$hash), or NULL
-- when the user signs in with tokens only.
ALTER TABLE users ADD COLUMN password_hash TEXT;
