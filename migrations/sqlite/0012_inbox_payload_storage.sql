-- PostgreSQL's migration 0012 changes how it compresses and places inbox payloads; SQLite
-- stores them as written. Kept so that both stores count the same migrations.
SELECT 1;
