-- Restore requests name the site they are for (several sites from one install). Requests
-- stored before have none: they are the first site's.
ALTER TABLE restore_requests ADD COLUMN site TEXT;
