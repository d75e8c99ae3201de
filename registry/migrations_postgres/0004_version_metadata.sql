-- A version's typed metadata (format, signature, input example,
-- environment, model card) as one JSON object; '{}' = none declared.
ALTER TABLE versions ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
