-- The services that have stored profiles (profefe's `GET /api/0/services`).
SELECT DISTINCT service FROM profiles ORDER BY service
