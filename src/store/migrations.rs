//! The schema, as numbered migrations applied at start-up: entry `i` brings
//! a database from `user_version = i` to `i + 1`. The text is verbatim what
//! shipped; a change is a new entry, never an edit.

/// Schema changes, in order. Entry `i` brings the database from
/// `user_version = i` to `i + 1`; never edit one that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: tenants, keys, schools, users, import runs and their problems, uploads.
    r#"
    CREATE TABLE tenants (
        id          INTEGER PRIMARY KEY,
        subdomain   TEXT NOT NULL UNIQUE,
        admin_name  TEXT NOT NULL,
        admin_email TEXT NOT NULL,
        timezone    TEXT,
        sso         INTEGER NOT NULL DEFAULT 0,
        window      TEXT,
        disabled    INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE tenant_columns (
        tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
        header_key TEXT NOT NULL,
        header     TEXT NOT NULL,
        field      TEXT NOT NULL,
        PRIMARY KEY (tenant_id, header_key)
    );
    CREATE TABLE ssh_keys (
        id          INTEGER PRIMARY KEY,
        tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
        fingerprint TEXT NOT NULL,
        kind        TEXT NOT NULL,
        bits        INTEGER NOT NULL,
        public_key  TEXT NOT NULL,
        comment     TEXT NOT NULL,
        added_at    TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE UNIQUE INDEX ssh_keys_active ON ssh_keys(fingerprint) WHERE revoked_at IS NULL;
    CREATE INDEX ssh_keys_tenant ON ssh_keys(tenant_id);
    CREATE TABLE schools (
        id        INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        name      TEXT NOT NULL,
        name_key  TEXT NOT NULL,
        nces_id   TEXT,
        state_id  TEXT,
        UNIQUE (tenant_id, name_key),
        UNIQUE (tenant_id, nces_id),
        UNIQUE (tenant_id, state_id)
    );
    CREATE TABLE users (
        id              INTEGER PRIMARY KEY,
        tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
        username        TEXT NOT NULL,
        username_key    TEXT NOT NULL UNIQUE,
        email           TEXT,
        first_name      TEXT,
        last_name       TEXT,
        school_id       INTEGER REFERENCES schools(id),
        graduation_year INTEGER,
        access_type     TEXT,
        password_hash   TEXT,
        password_fp     BLOB,
        created_at      INTEGER NOT NULL, -- Unix seconds: users are many, keep rows small
        updated_at      INTEGER NOT NULL
    );
    CREATE INDEX users_tenant ON users(tenant_id);
    CREATE TABLE uploads (
        id              INTEGER PRIMARY KEY,
        tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
        received_at     TEXT NOT NULL,
        size            INTEGER NOT NULL,
        sha256          TEXT NOT NULL,
        remote_addr     TEXT,
        key_fingerprint TEXT,
        path            TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'pending'
    );
    CREATE INDEX uploads_tenant ON uploads(tenant_id, state);
    CREATE TABLE import_runs (
        id                 INTEGER PRIMARY KEY,
        tenant_id          INTEGER NOT NULL REFERENCES tenants(id),
        kind               TEXT NOT NULL,
        source             TEXT NOT NULL,
        file_name          TEXT NOT NULL,
        size               INTEGER NOT NULL,
        sha256             TEXT NOT NULL,
        upload_id          INTEGER REFERENCES uploads(id),
        started_at         TEXT NOT NULL,
        finished_at        TEXT NOT NULL,
        outcome            TEXT NOT NULL,
        reason             TEXT,
        rows               INTEGER NOT NULL,
        created            INTEGER NOT NULL,
        updated            INTEGER NOT NULL,
        unchanged          INTEGER NOT NULL,
        skipped            INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        warnings           INTEGER NOT NULL,
        problems_truncated INTEGER NOT NULL DEFAULT 0,
        encoding           TEXT
    );
    CREATE INDEX import_runs_tenant ON import_runs(tenant_id, id);
    CREATE TABLE import_problems (
        run_id   INTEGER NOT NULL REFERENCES import_runs(id),
        seq      INTEGER NOT NULL,
        line     INTEGER,
        column   TEXT NOT NULL,
        value    TEXT NOT NULL,
        severity TEXT NOT NULL,
        message  TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    "#,
    // 2: the nightly pipeline. An upload goes pending -> importing -> imported
    // (or superseded by a newer one); its archived copy, passwords blanked, is
    // kept until the retention period ends. The outbox holds every email until
    // it is delivered; `dedupe_key` makes queueing the same email twice a no-op.
    r#"
    ALTER TABLE uploads ADD COLUMN run_id INTEGER REFERENCES import_runs(id);
    ALTER TABLE uploads ADD COLUMN archive TEXT;
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        tenant_id       INTEGER REFERENCES tenants(id),
        dedupe_key      TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        subject         TEXT NOT NULL,
        message         BLOB NOT NULL,
        created_at      TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'queued',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error      TEXT,
        sent_at         TEXT,
        delivered_to    TEXT
    );
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    "#,
    // 3: groups and their members (the manual groups import). A group is
    // named uniquely within its tenant; an owner's default group is marked
    // and keyed by its owner, so its name never clashes with a named group.
    r#"
    CREATE TABLE groups (
        id         INTEGER PRIMARY KEY,
        tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
        name       TEXT NOT NULL,
        name_key   TEXT NOT NULL,
        owner_id   INTEGER REFERENCES users(id),
        is_default INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant_id, name_key)
    );
    CREATE UNIQUE INDEX groups_default ON groups(owner_id) WHERE is_default;
    CREATE TABLE group_members (
        group_id INTEGER NOT NULL REFERENCES groups(id),
        user_id  INTEGER NOT NULL REFERENCES users(id),
        PRIMARY KEY (group_id, user_id)
    ) WITHOUT ROWID;
    "#,
    // 4: which file a pending upload is (device and inode of `users.csv`), so
    // a file published just before a crash, over an older pending one, is not
    // mistaken for it.
    r#"
    ALTER TABLE uploads ADD COLUMN file_id TEXT;
    "#,
    // 5: an upload's import attempts (counted when it is taken for import,
    // so an attempt the daemon did not survive counts too), and why it
    // failed when it ends in state `failed` instead of `imported`.
    r#"
    ALTER TABLE uploads ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE uploads ADD COLUMN failure TEXT;
    "#,
    // 6: connections that ended without a login, so support can answer "why
    // did the district's job fail to connect last night?". A district's
    // refused logins, or (tenant_id NULL) failures before any district was
    // named: algorithm negotiation, unknown usernames. The newest few of each
    // are kept (see `record_connection_failure`).
    r#"
    CREATE TABLE connection_failures (
        id        INTEGER PRIMARY KEY,
        tenant_id INTEGER REFERENCES tenants(id),
        at        TEXT NOT NULL,
        address   TEXT NOT NULL,
        username  TEXT,
        reason    TEXT NOT NULL
    );
    CREATE INDEX connection_failures_tenant ON connection_failures(tenant_id, id);
    "#,
    // 7: where a district may connect from: per key (an authorized_keys
    // `from="…"` pattern list, or `key add --from`) and per district
    // (`tenant set --allow-from`), both OpenSSH address pattern lists; NULL
    // is anywhere.
    r#"
    ALTER TABLE ssh_keys ADD COLUMN from_patterns TEXT;
    ALTER TABLE tenants ADD COLUMN allow_from TEXT;
    "#,
    // 8: data safety. Every applied users import journals, per user, what it
    // did: a user it created names it (`users.created_run`); its changes
    // (`updated`, `reactivated`, `deactivated`, an undo's `restored`), each
    // with the previous values of the fields it touched (passwords as their
    // hash only), are stored a batch per `user_changes` row (`entries`, a
    // JSON array, see `import::journal`), so a run can be listed and undone. Users are deactivated, never
    // deleted. A held import's upload waits in state `held` until support
    // approves it (`approved` survives a restart) or discards it; a run's
    // `resolution` says what became of it. Per-district settings: what
    // happens to users a complete file omits (`absent`), hold thresholds
    // (NULL: the config's), and a pause.
    r#"
    ALTER TABLE users ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE users ADD COLUMN created_run INTEGER;
    CREATE TABLE user_changes (
        run_id  INTEGER NOT NULL REFERENCES import_runs(id),
        seq     INTEGER NOT NULL,
        entries TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    ALTER TABLE import_runs ADD COLUMN deactivated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE import_runs ADD COLUMN reactivated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE import_runs ADD COLUMN kept_back INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE import_runs ADD COLUMN resolution TEXT;
    ALTER TABLE import_runs ADD COLUMN undoes INTEGER REFERENCES import_runs(id);
    ALTER TABLE import_runs ADD COLUMN held_changes TEXT;
    ALTER TABLE uploads ADD COLUMN approved INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tenants ADD COLUMN absent TEXT NOT NULL DEFAULT 'keep';
    ALTER TABLE tenants ADD COLUMN hold_update_percent INTEGER;
    ALTER TABLE tenants ADD COLUMN hold_deactivate_percent INTEGER;
    ALTER TABLE tenants ADD COLUMN pause_from TEXT;
    ALTER TABLE tenants ADD COLUMN pause_until TEXT;
    ALTER TABLE tenants ADD COLUMN pause_additions_only INTEGER NOT NULL DEFAULT 0;
    "#,
    // 9: login throttles, so support can tell a district why its job's
    // logins are slow: a district's from one address (tenant_id set), or an
    // address's logins naming no district (tenant_id NULL). One row per
    // district and address, the newest throttle (see `record_login_throttle`).
    r#"
    CREATE TABLE login_throttles (
        id             INTEGER PRIMARY KEY,
        tenant_id      INTEGER REFERENCES tenants(id),
        address        TEXT NOT NULL,
        failures       INTEGER NOT NULL,
        window_seconds INTEGER NOT NULL,
        tried          TEXT NOT NULL,
        since          TEXT NOT NULL,
        until          TEXT NOT NULL
    );
    CREATE INDEX login_throttles_tenant ON login_throttles(tenant_id, until);
    "#,
    // 10: uploads refused for their name (`users_20261205.csv`, a file in a
    // folder), so support can answer "we uploaded it, why nothing?". The
    // newest few per district (see `record_refused_upload`).
    r#"
    CREATE TABLE refused_uploads (
        id        INTEGER PRIMARY KEY,
        tenant_id INTEGER NOT NULL REFERENCES tenants(id),
        at        TEXT NOT NULL,
        address   TEXT NOT NULL,
        name      TEXT NOT NULL,
        action    TEXT NOT NULL
    );
    CREATE INDEX refused_uploads_tenant ON refused_uploads(tenant_id, id);
    "#,
    // 11: a district's mail may go to several addresses (`tenants.admin_email`
    // holds them as `a@x.org, b@y.org`; one address reads as a list of one).
    // The outbox keeps one copy of a message per address, delivered and
    // retried on its own, so what makes a queued message unique is its key
    // and its address, not its key alone. The table is rebuilt (SQLite cannot
    // drop a column's UNIQUE), keeping every row and its id.
    r#"
    CREATE TABLE outbox_by_recipient (
        id              INTEGER PRIMARY KEY,
        tenant_id       INTEGER REFERENCES tenants(id),
        dedupe_key      TEXT NOT NULL,
        kind            TEXT NOT NULL,
        recipient       TEXT NOT NULL,
        subject         TEXT NOT NULL,
        message         BLOB NOT NULL,
        created_at      TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'queued',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error      TEXT,
        sent_at         TEXT,
        delivered_to    TEXT
    );
    INSERT INTO outbox_by_recipient (id, tenant_id, dedupe_key, kind, recipient, subject, message,
        created_at, state, attempts, next_attempt_at, last_error, sent_at, delivered_to)
    SELECT id, tenant_id, dedupe_key, kind, recipient, subject, message,
        created_at, state, attempts, next_attempt_at, last_error, sent_at, delivered_to
    FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_by_recipient RENAME TO outbox;
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    CREATE UNIQUE INDEX outbox_dedupe ON outbox(dedupe_key, recipient COLLATE NOCASE);
    "#,
    // 12: of the changes an additions-only pause kept back, how many were
    // deactivations full sync would have made.
    r#"
    ALTER TABLE import_runs ADD COLUMN deactivations_kept_back INTEGER NOT NULL DEFAULT 0;
    "#,
    // 13: whose row each problem is about (the row's Username, First and
    // Last Name as written), so the administrator can tell which student to
    // fix without the file. Empty for whole-file problems and older runs.
    r#"
    ALTER TABLE import_problems ADD COLUMN username TEXT NOT NULL DEFAULT '';
    ALTER TABLE import_problems ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE import_problems ADD COLUMN last_name TEXT NOT NULL DEFAULT '';
    "#,
    // 14: the highest id a removed row had, per table, so a new row never
    // takes a removed one's id (what AUTOINCREMENT does, without rebuilding
    // the table): a journaled change naming a removed school must not name
    // a new one.
    r#"
    CREATE TABLE id_floors (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    "#,
    // 15: generated passwords. A district may opt in to a generated password
    // for every user an import creates without one; a run counts them; and
    // an outbox copy that carries them (`new-passwords.csv`) keeps, in
    // `after_delivery`, the message as it is to be kept once delivered (the
    // same message without the passwords), which replaces `message` the
    // moment the server accepts it.
    r#"
    ALTER TABLE tenants ADD COLUMN generate_passwords INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE import_runs ADD COLUMN passwords_generated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN after_delivery BLOB;
    "#,
    // 16: a row the readiness check writes (the store takes a write), and
    // each district's newest upload found without reading its others (a
    // metrics scrape asks for every district's).
    r#"
    CREATE TABLE readiness_probe (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at TEXT NOT NULL
    );
    CREATE INDEX uploads_tenant_received ON uploads(tenant_id, received_at);
    "#,
];
