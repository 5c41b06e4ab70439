-- Sweep: what each plan item needs to be applied exactly, warnings sent, and keeps.

-- The access groups of the product the user was in when planned (JSON [{id, name}]),
-- when the user joined the org, and what apply did with the item.
ALTER TABLE plan_items ADD COLUMN access_groups TEXT NOT NULL DEFAULT '[]';
ALTER TABLE plan_items ADD COLUMN added_to_org BIGINT;
ALTER TABLE plan_items ADD COLUMN outcome TEXT;
CREATE INDEX plan_items_by_state ON plan_items (plan_id, state, id);

-- One warning per account, product, site and plan: apply never warns twice.
CREATE TABLE sweep_warnings (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  TEXT NOT NULL,
    product     TEXT NOT NULL,
    site        TEXT NOT NULL,
    plan_id     TEXT NOT NULL,
    email       TEXT,
    warned_at   BIGINT NOT NULL,
    remove_after BIGINT NOT NULL,
    UNIQUE (account_id, product, site, plan_id)
);
CREATE INDEX sweep_warnings_by_account ON sweep_warnings (account_id, product, site, warned_at);

-- "Keep my access": the restore side writes a row; plan and apply keep the user's product
-- until `until_at`.
CREATE TABLE keeps (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  TEXT NOT NULL,
    product     TEXT NOT NULL,
    site        TEXT NOT NULL,
    until_at    BIGINT NOT NULL,
    source      TEXT NOT NULL,               -- link | admin | ...
    created_at  BIGINT NOT NULL
);
CREATE INDEX keeps_by_account ON keeps (account_id, product, site, until_at);
