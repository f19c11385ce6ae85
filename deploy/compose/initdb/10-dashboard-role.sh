#!/bin/sh
# Runs once, when the postgres container initialises its data folder: creates the read-only
# dashboard role (migration 004 then grants it SELECT on the views) and Grafana's login in it.
set -eu
password=$(cat "$CAP_GRAFANA_DB_PASSWORD_FILE")
psql -v ON_ERROR_STOP=1 -v pw="$password" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE cap_dashboard NOLOGIN;
CREATE ROLE grafana LOGIN PASSWORD :'pw' IN ROLE cap_dashboard;
SQL
