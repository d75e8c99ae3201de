-- modelwatch registry schema, version 2: a version's known features and the
-- reference data it was created with.
-- features: JSON object name -> "numeric" | "categorical" ('{}' = none declared;
-- the first reference upload then declares them).
-- reference_uri: where reference data was loaded from at creation (NULL if none).
ALTER TABLE versions ADD COLUMN features TEXT NOT NULL DEFAULT '{}';
ALTER TABLE versions ADD COLUMN reference_uri TEXT;
