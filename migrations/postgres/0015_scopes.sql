-- Delegated admin scopes. A restore request names the site it is for (NULL on requests made
-- before this column: read as the configured site), so a credential scoped to sites sees
-- and decides only its own; every audit entry names the role its actor acted with (NULL
-- for reseat itself and the channels, and for entries made before this column).
ALTER TABLE restore_requests ADD COLUMN site TEXT;
ALTER TABLE audit_log ADD COLUMN role TEXT;
