#!/bin/bash
# First start: create the data directory, then the MYSQL_DATABASE and MYSQL_USER on a server that
# listens on no network, so nothing connects before the user exists. Then run the server in front;
# arguments are passed to mariadbd (e.g. --wait-timeout=28800).
set -euo pipefail
if [ ! -d /var/lib/mysql/mysql ]; then
    chown mysql:mysql /var/lib/mysql
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
    mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock &
    pid=$!
    for _ in $(seq 1 60); do
        mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break
        sleep 1
    done
    mariadb --socket=/run/mysqld/init.sock <<SQL
CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;
CREATE USER IF NOT EXISTS '${MYSQL_USER}'@'%' IDENTIFIED BY '${MYSQL_PASSWORD}';
GRANT ALL ON \`${MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
FLUSH PRIVILEGES;
SQL
    kill "$pid"
    wait "$pid" || true
fi
exec mariadbd --user=mysql --bind-address=0.0.0.0 "$@"
