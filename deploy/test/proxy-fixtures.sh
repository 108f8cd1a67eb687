#!/usr/bin/env bash
# Regenerates the proxy fixture lines of lib/normalize/tests/data/proxy-*.log from the real
# daemons (issue 12): Debian 12's squid, nginx and apache2, each run privately on loopback.
#
#  1. a local origin: a python3 http.server on 127.0.0.1:31180 (GET files, 404s, POST answered
#     200) and an `openssl s_server -www` TLS origin on 127.0.0.1:31443;
#  2. squid on 127.0.0.1:31280 (own config, logs and pid under $TMP, no disk cache, shared-memory
#     names under its own service name) writing the same requests twice: `access_log ... combined`
#     and `access_log ... squid` (the native format). squid runs with TZ=Europe/Berlin so the
#     combined stamps carry an offset. Its rules: `http_access deny` for dstdomain
#     .blocked.example.test, CONNECT only to port 31443/31444, proxy_auth (basic_ncsa_auth over an
#     htpasswd file, user alice) for dstdomain private.example.test; a `hosts_file` names the origin
#     origin.example.test (squid resolves through it; /etc/hosts is not touched);
#  3. nginx on 127.0.0.1:31281 as a forward proxy (`resolver` + `proxy_pass
#     http://$http_host$request_uri`, default `combined` access log; an `upstream` block names
#     origin.example.test; `auth_basic` on /private/; a 403 for host blocked.example.test);
#  4. Apache on 127.0.0.1:31282 with mod_proxy, mod_proxy_http and mod_proxy_connect
#     (`ProxyRequests On`, `AllowCONNECT 31443`, Debian's `combined` LogFormat copied from
#     /etc/apache2/apache2.conf, proxy Basic auth on http://127.0.0.1:31180/private/, `Require all
#     denied` for http://blocked.example.test/), TZ=America/New_York;
#  5. curl through each proxy: plain GETs (absolute URIs, with a query, a referer, a browser UA),
#     a repeat (squid's memory cache), a 404, a POST, HEAD, a denied domain, CONNECT to the TLS
#     origin (https_proxy), CONNECT to a port the proxy refuses, CONNECT to a closed port, the
#     private site without credentials, with a wrong password and as alice, an unresolvable
#     host (`.invalid`), and two hostile requests (a User-Agent ending like squid's `%Ss:%Sh` pair,
#     a raw request target holding a quote and a fake status);
#  6. stops everything and copies the four access logs and `dpkg-query -W` versions to OUT
#     (default target/proxy-fixtures/).
#
# Needs root (apt-get; the daemons drop to proxy/www-data) and loopback TCP ports 31180, 31280,
# 31281, 31282, 31443 free. Does not start the packages' system services (they are stopped and
# disabled if the install started them) and binds nothing else. Not part of CI: the fixtures are
# its committed output (copy OUT/proxy-*.log to lib/normalize/tests/data/, then regenerate
# accuracy.jsonl with gen_accuracy.py, re-bless the golden test and update the timestamps the
# tests in lib/normalize/tests/proxy.rs name).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-target/proxy-fixtures}
tmp=/tmp/proxy-fixtures
die() { echo "FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
DEBIAN_FRONTEND=noninteractive apt-get install -y squid nginx apache2 apache2-utils curl openssl python3 >/dev/null
# apache2 and nginx start on port 80 when installed where services may start: not here.
for s in squid nginx apache2 apache-htcacheclean; do
  systemctl disable --now "$s" >/dev/null 2>&1 || true
  service "$s" stop >/dev/null 2>&1 || true
done

rm -rf "$tmp"
mkdir -p "$tmp/www/private" "$tmp/nginx"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  [ -f "$tmp/apache2.pid" ] && kill "$(cat "$tmp/apache2.pid")" 2>/dev/null || true
  [ -f "$tmp/squid.pid" ] && kill "$(cat "$tmp/squid.pid")" 2>/dev/null || true
  sleep 2
  rm -rf "$tmp"
}
trap cleanup EXIT
wait_port() {
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  die "nothing listens on 127.0.0.1:$1"
}

# --- origins ---------------------------------------------------------------------------------
printf '<html><body>plant floor status</body></html>\n' >"$tmp/www/index.html"
printf 'shift report\n' >"$tmp/www/report.txt"
printf 'payroll\n' >"$tmp/www/private/index.html"
cat >"$tmp/origin.py" <<'EOF'
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.rfile.read(n)
        body = b"stored\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
h = functools.partial(H, directory=sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", 31180), h).serve_forever()
EOF
/usr/bin/python3 "$tmp/origin.py" "$tmp/www" 2>"$tmp/origin.log" &
pids+=($!)
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=origin.example.test \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
openssl s_server -quiet -www -accept 127.0.0.1:31443 -cert "$tmp/tls.crt" -key "$tmp/tls.key" \
  </dev/null >/dev/null 2>&1 &
pids+=($!)
wait_port 31180
wait_port 31443

htpasswd -bc "$tmp/passwd" alice 'Wr1te-only' 2>/dev/null

# --- squid -----------------------------------------------------------------------------------
printf '127.0.0.1 origin.example.test private.example.test\n' >"$tmp/hosts"
cat >"$tmp/squid.conf" <<EOF
http_port 127.0.0.1:31280
pid_filename $tmp/squid.pid
cache_log $tmp/squid-cache.log
coredump_dir $tmp
hosts_file $tmp/hosts
access_log stdio:$tmp/squid-combined.log combined
access_log stdio:$tmp/squid-native.log squid
logfile_rotate 0
pinger_enable off
shutdown_lifetime 1 seconds
dns_timeout 5 seconds
cache_mem 8 MB
auth_param basic program /usr/lib/squid/basic_ncsa_auth $tmp/passwd
auth_param basic realm plant proxy
acl authed proxy_auth REQUIRED
acl private_site dstdomain private.example.test
acl blocked dstdomain .blocked.example.test
acl SSL_ports port 31443 31444
acl CONNECT method CONNECT
acl localnet src 127.0.0.0/8
http_access deny blocked
http_access deny CONNECT !SSL_ports
http_access deny private_site !authed
http_access allow localnet
http_access deny all
EOF
chown -R proxy:proxy "$tmp"
chmod 755 "$tmp"
TZ=Europe/Berlin squid -n proxyfixtures -N -f "$tmp/squid.conf" 2>"$tmp/squid.stderr" &
pids+=($!)
wait_port 31280

# --- nginx -----------------------------------------------------------------------------------
ns=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)
cat >"$tmp/nginx.conf" <<EOF
user www-data;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 64; }
http {
  access_log $tmp/nginx-access.log combined;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  upstream origin.example.test { server 127.0.0.1:31180; }
  server {
    listen 127.0.0.1:31281;
    resolver ${ns:-127.0.0.1} valid=30s;
    resolver_timeout 5s;
    if (\$host = blocked.example.test) { return 403; }
    location / { proxy_pass http://\$http_host\$request_uri; }
    location /private/ {
      auth_basic "plant proxy";
      auth_basic_user_file $tmp/passwd;
      proxy_pass http://\$http_host\$request_uri;
    }
  }
}
EOF
nginx -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_port 31281

# --- Apache ----------------------------------------------------------------------------------
combined=$(grep -m1 -E '^LogFormat .* combined$' /etc/apache2/apache2.conf) || die "no combined LogFormat"
mods=/usr/lib/apache2/modules
cat >"$tmp/apache2.conf" <<EOF
ServerRoot /etc/apache2
ServerName proxy-fixtures.localhost
DefaultRuntimeDir $tmp
PidFile $tmp/apache2.pid
Mutex file:$tmp default
Listen 127.0.0.1:31282
User www-data
Group www-data
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_host_module $mods/mod_authz_host.so
LoadModule authz_user_module $mods/mod_authz_user.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authn_file_module $mods/mod_authn_file.so
LoadModule auth_basic_module $mods/mod_auth_basic.so
LoadModule proxy_module $mods/mod_proxy.so
LoadModule proxy_http_module $mods/mod_proxy_http.so
LoadModule proxy_connect_module $mods/mod_proxy_connect.so
ErrorLog $tmp/apache2-error.log
$combined
CustomLog $tmp/apache2-access.log combined
ProxyRequests On
AllowCONNECT 31443 31444
<Proxy "*">
  Require ip 127.0.0.1
</Proxy>
<Proxy "http://blocked.example.test/*">
  Require all denied
</Proxy>
<Proxy "http://127.0.0.1:31180/private/*">
  AuthType Basic
  AuthName "plant proxy"
  AuthBasicProvider file
  AuthUserFile $tmp/passwd
  Require valid-user
</Proxy>
EOF
TZ=America/New_York apache2 -f "$tmp/apache2.conf" -DFOREGROUND &
pids+=($!)
wait_port 31282

# --- traffic ---------------------------------------------------------------------------------
ua='Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0'
# c PROXY ARGS...: one request through PROXY; the status does not matter (denials are wanted).
c() {
  local p=$1
  shift
  curl -s -o /dev/null --max-time 20 --proxy "http://127.0.0.1:$p" "$@" || true
  sleep 0.3
}
for p in 31280 31281 31282; do
  host=origin.example.test:31180
  [ "$p" = 31282 ] && host=localhost:31180 # Apache resolves through the system: no private names
  [ "$p" = 31281 ] && host=origin.example.test # nginx: the upstream block's name
  c "$p" "http://$host/"
  c "$p" "http://$host/index.html"
  c "$p" "http://$host/index.html"
  c "$p" -A "$ua" -e "http://intranet.example.test/start" "http://127.0.0.1:31180/report.txt?shift=night&line=3"
  c "$p" "http://127.0.0.1:31180/missing.php"
  c "$p" -X POST -d 'temp=71.5&unit=F' "http://127.0.0.1:31180/api/readings"
  c "$p" -I "http://127.0.0.1:31180/report.txt"
  c "$p" "http://www.blocked.example.test/"
  c "$p" "http://blocked.example.test/"
  c "$p" -k "https://${host%%:*}:31443/"
  c "$p" -k "https://127.0.0.1:31443/"
  c "$p" -p "http://127.0.0.1:31180/"
  c "$p" -k "https://127.0.0.1:31444/"
  c "$p" "http://no-such-host.invalid/"
done
# The private site: no credentials, a wrong password, alice.
for cred in "" "alice:guess" "alice:Wr1te-only"; do
  c 31280 ${cred:+--proxy-user "$cred"} "http://private.example.test:31180/private/"
  c 31281 ${cred:+--user "$cred"} "http://127.0.0.1:31180/private/"
  c 31282 ${cred:+--proxy-user "$cred"} "http://127.0.0.1:31180/private/"
done
c 31280 --proxy-user 'alice:Wr1te-only' -k "https://private.example.test:31443/"
# Hostile clients: a User-Agent that ends like squid's `%Ss:%Sh` pair and carries quotes, and a
# raw request whose target holds a quote and a fake status (how each daemon escapes them).
for p in 31280 31281 31282; do
  c "$p" -A 'x" 200 1 "-" "y TCP_DENIED:HIER_NONE' "http://127.0.0.1:31180/index.html"
  printf 'GET http://127.0.0.1:31180/a"b" 200 9 "-" "-" TCP_MISS:HIER_DIRECT HTTP/1.1\r\nHost: 127.0.0.1:31180\r\nConnection: close\r\n\r\n' |
    timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p; cat >&3; cat <&3 >/dev/null" || true
  sleep 0.3
done

sleep 1
kill "$(cat "$tmp/nginx.pid")"
kill "$(cat "$tmp/apache2.pid")"
kill "$(cat "$tmp/squid.pid")"
sleep 3
mkdir -p "$out"
cp "$tmp/squid-combined.log" "$out/proxy-squid-combined.log"
cp "$tmp/squid-native.log" "$out/proxy-squid-native.log"
cp "$tmp/nginx-access.log" "$out/proxy-nginx-forward.log"
cp "$tmp/apache2-access.log" "$out/proxy-apache-forward.log"
dpkg-query -W squid nginx apache2 curl openssl >"$out/versions.txt"
date -u +%FT%TZ >>"$out/versions.txt"
echo "written to $out:"
wc -l "$out"/*
