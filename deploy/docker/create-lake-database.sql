-- The DuckLake's catalog, beside Dagster's database in the same PostgreSQL
-- (docker-compose.docker-launcher.yml mounts this into /docker-entrypoint-initdb.d).
CREATE DATABASE lake;
