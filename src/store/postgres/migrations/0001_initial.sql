-- Records are the model types as JSON (as in the sled store); the columns
-- beside them exist only to find, order and filter rows.
CREATE TABLE users (
    name   text PRIMARY KEY,
    record jsonb NOT NULL
);

-- Removed with their user, also when another instance adds a password
-- while the user is being removed.
CREATE TABLE passwords (
    id              text PRIMARY KEY,
    user_name       text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created         bigint NOT NULL,
    expires         bigint,
    revoked         boolean NOT NULL,
    expiry_recorded boolean NOT NULL,
    record          jsonb NOT NULL
);
CREATE INDEX passwords_by_user ON passwords (user_name, created, id);
-- The expiry sweep reads only what it has not recorded yet.
CREATE INDEX passwords_to_sweep ON passwords (expires)
    WHERE expires IS NOT NULL AND NOT revoked AND NOT expiry_recorded;

-- Apart from passwords, so an activity flush never overwrites a revocation;
-- removed with its password.
CREATE TABLE activity (
    password_id text PRIMARY KEY REFERENCES passwords (id) ON DELETE CASCADE,
    at          bigint NOT NULL,
    record      jsonb NOT NULL
);

CREATE TABLE events (
    seq       bigserial PRIMARY KEY,
    user_name text NOT NULL,
    at        bigint NOT NULL,
    kind      text NOT NULL,
    record    jsonb NOT NULL
);
CREATE INDEX events_by_user ON events (user_name, seq);

CREATE TABLE logins (
    user_name text PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE,
    record    jsonb NOT NULL
);

CREATE TABLE admin_tokens (
    id     text PRIMARY KEY,
    record jsonb NOT NULL
);
