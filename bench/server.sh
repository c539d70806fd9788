# Sourced by the benchmarks: start a throwaway exhibitd in $DIR/server on
# 127.0.0.1:$1 from the release build in $BIN, and enrol an admin, alice
# (evidence unit) and bob (caseworker) in $DIR/{admin,alice,bob}. Sets
# SERVER (its pid) and CA, and defines X USER ARGS... to run exhibit as a
# user. The caller kills $SERVER when done.
bench_server() {
    local port=$1
    "$BIN/exhibitd" init --data "$DIR/server" --listen 127.0.0.1:0 --json >"$DIR/init.json"
    sed -i "s/^listen = .*/listen = \"127.0.0.1:$port\"/" "$DIR/server/exhibitd.toml"
    # TLS over TCP on the same port number (what clients assume without --tcp).
    sed -i "s/^listen_tcp = .*/listen_tcp = \"127.0.0.1:$port\"/" "$DIR/server/exhibitd.toml"
    CA=$DIR/server/ca.pem
    local admin_code a b
    admin_code=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['admin_code'])" "$DIR/init.json")
    "$BIN/exhibitd" serve --config "$DIR/server/exhibitd.toml" >"$DIR/server.log" 2>&1 &
    SERVER=$!
    sleep 1
    kill -0 $SERVER 2>/dev/null || { echo "exhibitd did not start (is port $port taken?):" >&2; cat "$DIR/server.log" >&2; exit 1; }
    # Throwaway keys: no passphrase; codes on stdin, not in the process list.
    echo "$admin_code" | X admin enrol --server "127.0.0.1:$port" --code-file - --ca "$CA" --no-passphrase >/dev/null
    X admin admin org add bench --name bench --kind police >/dev/null
    a=$(X admin admin user add alice --org bench --role evidence-unit)
    b=$(X admin admin user add bob --org bench --role caseworker)
    echo "$a" | X alice enrol --server "127.0.0.1:$port" --code-file - --ca "$CA" --no-passphrase >/dev/null
    echo "$b" | X bob enrol --server "127.0.0.1:$port" --code-file - --ca "$CA" --no-passphrase >/dev/null
}
X() { "$BIN/exhibit" --home "$DIR/$1" "${@:2}"; }
