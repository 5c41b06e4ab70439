-- A session is bound to the admin entry it was made for: the SHA-256 of the entry's name
-- and password hash. Removing or changing the entry in [[admin.users]] ends its sessions;
-- sessions made before this column (NULL) end too.
ALTER TABLE admin_sessions ADD COLUMN entry_sha256 TEXT;
