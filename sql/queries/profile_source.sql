-- Where one stored profile came from (profefe's `GET /api/0/profiles/{id}` reads it back).
-- Params: id (the profile id).
SELECT source_bucket, source_key
FROM profiles FINAL
WHERE profile_id = {id:UUID}
LIMIT 1
