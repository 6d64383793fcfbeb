-- The credential git uses to read a private repo: an HTTPS username with a
-- sealed password or token, or a sealed SSH deploy key. One per repo.
CREATE TABLE repo_credentials (
    repo_id  INTEGER PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    value    BLOB NOT NULL,
    created  INTEGER NOT NULL,
    updated  INTEGER NOT NULL
);
