-- Who asked, as Atlassian reports the account: where the reply email goes and how it greets.
ALTER TABLE restore_requests ADD COLUMN email TEXT;
ALTER TABLE restore_requests ADD COLUMN display_name TEXT;
