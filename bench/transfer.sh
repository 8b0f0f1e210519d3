#!/usr/bin/env bash
# Transfer throughput: ROWS rows (default 1,000,000) of an `orders` table moved by akkaflow's
# `transfer` next to the same move by the databases' own clients, in the same run, each pair
# alternating which of the two runs first:
#   MariaDB -> PostgreSQL   mariadb -B -N -e "select ..." | psql -c "\copy ... from stdin"
#   PostgreSQL -> MariaDB   psql -c "\copy (select ...) to stdout" | mariadb -e "LOAD DATA LOCAL INFILE '/dev/stdin' ..."
#   MariaDB -> file         mariadb -B -N -e "select ..." > file
#   file -> PostgreSQL      psql -c "\copy ... from file"
# akkaflow's figure is the wall time of `akkaflow workflow run NAME --wait` against a running
# `standalone` (connections, describing the source, creating the typed table, the copy, the
# instance's end); the log's own "copied ... in X s" is printed beside it.
#
# Usage: bench/transfer.sh   (from the repository; builds nothing: run `cargo build --release` first)
# Environment: ROWS, REPEAT (default 2), TASK_NUM (writers per DB target, default 1), AKKAFLOW
# (binary), MYSQL_HOST/PORT/USER/PASSWORD,
# PG_HOST/PORT/USER/PASSWORD. Check `uptime` first: others' load skews every figure.
set -euo pipefail

ROWS=${ROWS:-1000000}
REPEAT=${REPEAT:-2}
TASK_NUM=${TASK_NUM:-1}
BIN=$(realpath "${AKKAFLOW:-target/release/akkaflow}")
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1} MYSQL_PORT=${MYSQL_PORT:-3306}
MYSQL_USER=${MYSQL_USER:-akkaflow} MYSQL_PASSWORD=${MYSQL_PASSWORD:-akkaflow}
PG_HOST=${PG_HOST:-127.0.0.1} PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-akkaflow} PG_PASSWORD=${PG_PASSWORD:-akkaflow}
DB=akkaflow_bench_transfer

my() { mariadb --protocol=tcp -h"$MYSQL_HOST" -P"$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" "$@"; }
pg() { PGPASSWORD=$PG_PASSWORD psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -v ON_ERROR_STOP=1 -qAt "$@"; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

work=$(mktemp -d)
cleanup() {
    [[ -n ${standalone:-} ]] && kill "$standalone" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "# load before: $(uptime)"
echo "# setting up $ROWS rows in MariaDB and PostgreSQL database $DB"
my -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB CHARACTER SET utf8mb4"
pg -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
schema="id BIGINT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(12,2), note VARCHAR(100), created"
my "$DB" -e "CREATE TABLE orders ($schema DATETIME);
  INSERT INTO orders SELECT seq, CONCAT('customer ', seq % 5000), (seq % 100000) / 100,
    IF(seq % 7 = 0, NULL, CONCAT('note ', seq, ' 名字')), TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND
  FROM seq_1_to_$ROWS"
pg -d "$DB" -c "CREATE TABLE orders ($schema TIMESTAMP)" \
    -c "INSERT INTO orders SELECT g, 'customer ' || g % 5000, (g % 100000) / 100.0,
          CASE WHEN g % 7 = 0 THEN NULL ELSE 'note ' || g || ' 名字' END,
          TIMESTAMP '2024-01-01 00:00:00' + g * INTERVAL '1 second'
        FROM generate_series(1, $ROWS) g" \
    -c "CREATE TABLE pipe_orders ($schema TIMESTAMP)" -c "ANALYZE orders"
my "$DB" -e "CREATE TABLE pipe_orders ($schema DATETIME)"

mkdir -p "$work/xmlconfig"
cat > "$work/xmlconfig/db_links.xml" <<EOF
<db-links>
  <link name="my" type="MYSQL" jdbc-url="jdbc:mysql://$MYSQL_HOST:$MYSQL_PORT/$DB" username="$MYSQL_USER" password="$MYSQL_PASSWORD"/>
  <link name="pg" type="POSTGRESQL" jdbc-url="jdbc:postgresql://$PG_HOST:$PG_PORT/$DB" username="$PG_USER" password="$PG_PASSWORD"/>
</db-links>
EOF
flow() {
    cat > "$work/xmlconfig/$1.xml" <<EOF
<work-flow name="$1">
  <start name="start" to="a"/>
  <action name="a"><transfer>$2</transfer><ok to="end"/></action>
  <end name="end"/>
</work-flow>
EOF
}
flow my2pg "<source type=\"DB\" db-link=\"my\">orders</source>
  <target type=\"DB\" db-link=\"pg\" table=\"ak_orders\" task-num=\"$TASK_NUM\"><pre>drop table if exists ak_orders</pre></target>"
flow pg2my "<source type=\"DB\" db-link=\"pg\">orders</source>
  <target type=\"DB\" db-link=\"my\" table=\"ak_orders\" task-num=\"$TASK_NUM\"><pre>drop table if exists ak_orders</pre></target>"
flow my2file "<source type=\"DB\" db-link=\"my\">orders</source>
  <target type=\"FILE\" path=\"$work/ak_orders.tsv\"/>"
flow file2pg "<source type=\"FILE\" path=\"$work/ak_orders.tsv\"/>
  <target type=\"DB\" db-link=\"pg\" table=\"ak_from_file\" task-num=\"$TASK_NUM\"><pre>drop table if exists ak_from_file</pre></target>"

cd "$work"
export AKKAFLOW_DATABASE_URL="sqlite://$work/akkaflow.db"
printf 'transfer_batch_rows = %s\npoll_secs = 0.1\n' "${BATCH_ROWS:-5000}" > akkaflow.toml
"$BIN" sync xmlconfig > /dev/null
"$BIN" standalone --listen 127.0.0.1:0 > standalone.log 2>&1 &
standalone=$!

akkaflow() {
    local s e id
    s=$(now)
    id=$("$BIN" workflow run "$1" --wait 2>/dev/null)
    e=$(now)
    echo "$1 akkaflow $(secs "$s" "$e")" >> "$work/times"
    printf '%-8s akkaflow %6.2f s  (%s)\n' "$1" "$(secs "$s" "$e")" \
        "$("$BIN" logs "$id" | grep -o 'copied [0-9]* rows.* s' | head -1)"
}
pipe() {
    local name=$1 s e
    shift
    s=$(now)
    bash -o pipefail -c "$*"
    e=$(now)
    echo "$name pipe $(secs "$s" "$e")" >> "$work/times"
    printf '%-8s pipe     %6.2f s\n' "$name" "$(secs "$s" "$e")"
}
myq="SELECT id, customer, amount, note, created FROM orders"
# the second run of a pair pays for the server's background work (dirty pages, WAL) left by the
# first, so odd rounds run the pipe first and even rounds akkaflow
pair() {
    local name=$1 reset=$2 cmd=$3
    if ((round % 2)); then
        eval "$reset"
        pipe "$name" "$cmd"
        akkaflow "$name"
    else
        akkaflow "$name"
        eval "$reset"
        pipe "$name" "$cmd"
    fi
}
for round in $(seq "$REPEAT"); do
    echo "# round $round, load: $(uptime | sed 's/.*load average: //')"
    pair my2pg 'pg -d "$DB" -c "TRUNCATE pipe_orders"' \
        "mariadb --protocol=tcp -h$MYSQL_HOST -P$MYSQL_PORT -u$MYSQL_USER -p$MYSQL_PASSWORD $DB -B -N -e '$myq' \
        | PGPASSWORD=$PG_PASSWORD psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d $DB -v ON_ERROR_STOP=1 -qc \"\\copy pipe_orders from stdin with (null 'NULL')\""
    pair pg2my 'my "$DB" -e "TRUNCATE pipe_orders"' \
        "PGPASSWORD=$PG_PASSWORD psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d $DB -qc '\\copy orders to stdout' \
        | mariadb --protocol=tcp -h$MYSQL_HOST -P$MYSQL_PORT -u$MYSQL_USER -p$MYSQL_PASSWORD --local-infile=1 $DB \
          -e \"LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE pipe_orders\""
    pair my2file : \
        "mariadb --protocol=tcp -h$MYSQL_HOST -P$MYSQL_PORT -u$MYSQL_USER -p$MYSQL_PASSWORD $DB -B -N -e '$myq' > $work/pipe_orders.tsv"
    pair file2pg 'pg -d "$DB" -c "TRUNCATE pipe_orders"' \
        "PGPASSWORD=$PG_PASSWORD psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d $DB -v ON_ERROR_STOP=1 -qc \"\\copy pipe_orders from '$work/pipe_orders.tsv' with (null 'NULL')\""
done
echo "# rows: pipe my2pg $(pg -d "$DB" -c 'select count(*) from pipe_orders'), akkaflow $(pg -d "$DB" -c 'select count(*) from ak_orders') / $(pg -d "$DB" -c 'select count(*) from ak_from_file'), pg2my $(my "$DB" -N -e 'select count(*) from ak_orders')"
echo "# akkaflow's created types: $(pg -d "$DB" -c "select string_agg(format_type(atttypid, atttypmod), ', ' order by attnum) from pg_attribute where attrelid = 'ak_orders'::regclass and attnum > 0")"
echo "# ratio of the totals over $REPEAT round(s), akkaflow / pipe (goal <= 1.25):"
awk '{ t[$1 " " $2] += $3; if (!seen[$1]++) order[n++] = $1 }
     END { for (i = 0; i < n; i++) { m = order[i]
           printf "#   %-8s pipe %6.2f s  akkaflow %6.2f s  ratio %.2f\n", m, t[m " pipe"], t[m " akkaflow"], t[m " akkaflow"] / t[m " pipe"] } }' "$work/times"
echo "# load after: $(uptime)"
my -e "DROP DATABASE $DB"
pg -d postgres -c "DROP DATABASE $DB"
