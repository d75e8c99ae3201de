-- Tokens that expire: RFC 3339 time after which the token is refused
-- (NULL: it works until revoked).
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
