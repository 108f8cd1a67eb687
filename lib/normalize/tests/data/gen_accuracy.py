#!/usr/bin/env python3
"""Writes accuracy.jsonl: expected fields for real lines, derived by an INDEPENDENT oracle
(Python regexes written from the log formats' documentation, not from the Rust parser).
Only facts readable directly from a line are expected. Rows whose line no regex here understands
are expected to be claimed by the named dataset only (no field checks) or skipped.
Run: python3 gen_accuracy.py > accuracy.jsonl ; review the diff by reading the lines."""
import json, re, datetime as dt

OBS = "2025-01-01T00:00:00Z"  # year-less syslog stamps therefore resolve to 2024
MON = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
rows = []

def iso(d):
    s = d.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if "." in s:  # RFC 3339 minimal fraction, as jiff prints it
        head, frac = s[:-1].split(".")
        frac = frac.rstrip("0")
        s = head + ("." + frac if frac else "") + "Z"
    return s

def bsd(m):
    t = dt.datetime(2024, MON[m["mon"]], int(m["day"]), *map(int, m["hms"].split(":")), tzinfo=dt.timezone.utc)
    return iso(t)

SYS = re.compile(r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d+) (?P<hms>\d\d:\d\d:\d\d) (?P<host>\S+) (?P<prog>[\w/.-]+)\[(?P<pid>\d+)\]: (?P<msg>.*)$")
SYS_ISO = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\S+) (?P<host>\S+) (?P<prog>[\w/.-]+)\[(?P<pid>\d+)\]: (?P<msg>.*)$")
# rsyslog/syslog-ng file stamps with a space instead of 'T' and a numeric zone (`-0700`), any spaces after
SYS_ISO_SP = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d:?\d\d) +(?P<host>\S+) (?P<prog>[\w/.-]+)\[(?P<pid>\d+)\]: (?P<msg>.*)$")

def add(ds, line, exp, **kw):
    r = {"dataset": ds, "line": line, "expect": exp}
    r.update(kw)
    rows.append(r)

def syslog_head(line):
    m = SYS.match(line)
    if m:
        return m, bsd(m)
    m = SYS_ISO.match(line)
    if m:
        return m, iso(dt.datetime.fromisoformat(m["ts"]))
    m = SYS_ISO_SP.match(line)
    if m:
        return m, iso(dt.datetime.strptime(m["ts"], "%Y-%m-%d %H:%M:%S.%f%z" if "." in m["ts"] else "%Y-%m-%d %H:%M:%S%z"))
    return None, None

def lines(f):
    return [l.rstrip("\n") for l in open(f, encoding="utf-8", errors="replace") if l.strip()]

# --- sshd / pam -----------------------------------------------------------
for line in lines("crowdsec-sshd.log") + lines("lnav-logfile_syslog-3.log") + lines("wazuh-ruletest-sshd-iso.log"):
    m, ts = syslog_head(line)
    if not m or m["prog"] not in ("sshd", "sudo"):
        continue
    msg, e = m["msg"], {"@timestamp": ts, "host.name": m["host"]}
    if m["prog"] == "sudo":
        continue
    if msg.startswith("pam_unix("):
        e["event.outcome"] = "failure" if "authentication failure" in msg else "success"
        u = re.search(r" user=(\S+)", msg)
        if u: e["user.name"] = u[1]
        add("pam", line, e); continue
    a = re.match(r"(Accepted|Failed) \S+ for (?:invalid user )?(\S*) from (\S+) port (\d+)", msg)
    i = re.match(r"Invalid user (\S*) from (\S+) port (\d+)", msg)
    d = re.match(r"(?:Disconnected from|Connection closed by) (?:(?:invalid|authenticating) user (\S+) )?(\d+\.\d+\.\d+\.\d+) port (\d+)", msg)
    # OpenSSH auth.c: "maximum authentication attempts exceeded for %s%.100s from %.200s port %d ssh2"
    x = re.match(r"error: maximum authentication attempts exceeded for (?:invalid user )?(\S*) from (\S+) port (\d+)", msg)
    if x:
        e.update({"event.outcome": "failure", "user.name": x[1], "source.ip": x[2], "source.port": int(x[3])})
    elif a:
        e.update({"event.outcome": "success" if a[1] == "Accepted" else "failure", "user.name": a[2], "source.ip": a[3], "source.port": int(a[4])})
    elif i:
        e.update({"event.outcome": "failure", "source.ip": i[2], "source.port": int(i[3])})
        if i[1]: e["user.name"] = i[1]
    elif d:
        e.update({"event.action": "disconnect", "source.ip": d[2], "source.port": int(d[3])})
        if d[1]: e["user.name"] = d[1]
    add("sshd", line, e)

for line in lines("lnav-logfile_syslog-0.log"):
    m, ts = syslog_head(line)
    if m and m["prog"] == "sudo":
        continue
    s = re.match(r"^(\w{3}) +(\d+) (\S+) (\S+) sudo: (\S+) : .*USER=(\S+) ; COMMAND=(.*)$", line)
    if s:
        add("sudo", line, {"user.name": s[5], "user.effective.name": s[6], "process.command_line": s[7], "event.outcome": "success"})

# --- postfix --------------------------------------------------------------
for f in ("crowdsec-postfix.log", "postfix-ecs-pipeline-mail.log"):
    for line in lines(f):
        m, ts = syslog_head(line)
        if not m or not m["prog"].startswith("postfix"):
            continue
        e, msg = {"@timestamp": ts}, m["msg"]
        fr = re.search(r"(?:^|[ ,])from=<([^>]+)>", msg)
        to = re.search(r"(?:^|[ ,])to=<([^>]+)>", msg)
        if fr: e["email.from.address"] = fr[1]
        if to: e["email.to.address"] = to[1]
        c = re.search(r"(?:RCPT from|connect from|client=|warning:) [^\[ ]*\[([0-9a-fA-F.:]+)\]", msg) or re.search(r"client=[^\[ ]*\[([0-9.]+)\]", msg)
        if c: e["source.ip"] = c[1]
        if "NOQUEUE: reject" in msg or "authentication failed" in msg: e["event.outcome"] = "failure"
        add("postfix", line, e)

# --- squid ----------------------------------------------------------------
# The proxied site: an absolute URL's host (and port), or CONNECT's `host:port` (RFC 9110 authority-form).
def proxy_target(method, url, e):
    u = re.match(r"^([a-z]+)://([^/:?#@]+)(?::(\d+))?", url)
    if u:
        e["url.domain"], e["url.scheme"] = u[2].lower(), u[1]
        if u[3]: e["url.port"] = int(u[3])
    c = re.match(r"^([A-Za-z0-9.-]+):(\d+)$", url) if method == "CONNECT" else None
    if c:
        e["url.domain"], e["url.port"] = c[1].lower(), int(c[2])

for f in ("fail2ban-squid.log", "beats-squid-access1-first40.log", "proxy-squid-native.log"):
    for line in lines(f):
        p = line.split()
        e = {"@timestamp": iso(dt.datetime.fromtimestamp(float(p[0]), dt.timezone.utc)), "source.ip": p[2],
             "url.original": p[6]}
        # squid writes status 000 when no reply was sent: no status code then
        if int(p[3].split("/")[1]): e["http.response.status_code"] = int(p[3].split("/")[1])
        if p[7] != "-": e["user.name"] = p[7]
        if f == "proxy-squid-native.log":
            e["event.action"] = p[3].split("/")[0]
            e["http.response.bytes"] = int(p[4])
            proxy_target(p[5], p[6], e)
        else:
            u = re.match(r"^[a-z]+://([^/:?#@]+)", p[6]) if "://" in p[6] else (re.match(r"^([A-Za-z0-9.-]+):\d+$", p[6]) if p[5] == "CONNECT" else None)
            if u: e["url.domain"] = u[1].lower()
        add("squid", line, e)

# squid.conf `logformat combined %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{Referer}>h"
# "%{User-Agent}>h" %Ss:%Sh` (squid 5 cf.data.pre); %<st is the whole reply size (headers included);
# a transaction that sent no request has method `-` and status 0. squid logs the URL without
# whitespace and escapes no quote anywhere: the request is `METHOD URL VERSION`, and the user
# agent runs from the first `" "` after the referrer to the quote before `%Ss:%Sh`.
SQUID_COMBINED = re.compile(r'^(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+) (?:HTTP/\d\.\d|NONE/0\.0)" (\d+) (\d+) "(.*)" ([A-Z_]+):[A-Z_]+$')
for line in lines("proxy-squid-combined.log"):
    w = SQUID_COMBINED.match(line)
    e = {"@timestamp": iso(dt.datetime.strptime(w[3], "%d/%b/%Y:%H:%M:%S %z")), "source.ip": w[1],
         "url.original": w[5], "http.response.bytes": int(w[7]), "event.action": w[9],
         "event.type": ["denied" if "DENIED" in w[9] else "access"]}
    ref, ua = w[8].split('" "', 1)
    if ua != "-": e["user_agent.original"] = ua
    if w[2] != "-": e["user.name"] = w[2]
    if w[4] != "-": e["http.request.method"] = w[4]
    if int(w[6]): e["http.response.status_code"] = int(w[6])
    proxy_target(w[4], w[5], e)
    add("squid", line, e)

# --- su / sudo / PAM tag form (Wazuh rule tests; a SLES journal in Microsoft's Azure docs) ----------
# sudo: plugins/sudoers/logging.c "USER : [REASON ; ]TTY=… ; PWD=… ; USER=… ; [TSID=… ; ]COMMAND=…";
# su: util-linux su "(to T) U on TTY", historic su "U to T on TTY" / "BAD SU U to T on TTY",
# "failed: TTY changing from U to T"; Linux-PAM pam_unix "authentication failure; … ruser=R … user=U",
# "session opened for user U by R(uid=N)" under the tag "pam_unix(SVC:…)" or the old "SVC(pam_unix)".
ANYSYS = re.compile(r"^(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d+) (?P<hms>\d\d:\d\d:\d\d)|(?P<ts>\d{4}-\d\d-\d\dT\S+)) (?P<host>\S+) (?P<prog>[^\s\[:]+)(?:\[\d+\])?: (?P<msg>.*)$")
for f in ("wazuh-ruletest-su-sudo.log", "msdocs-azure-sles-su.log"):
    for line in lines(f):
        m = ANYSYS.match(line)
        ts = bsd(m) if m["mon"] else iso(dt.datetime.fromisoformat(m["ts"]))
        e, msg, prog = {"@timestamp": ts, "host.name": m["host"]}, m["msg"], m["prog"]
        sd = re.match(r"^ *(\S+) : (?:([^;]*[^ ]) ; )?TTY=.* ; USER=(\S+) ; (?:TSID=\S+ ; )?COMMAND=(.*)$", msg)
        if prog == "sudo" and sd:
            e.update({"user.name": sd[1], "user.effective.name": sd[3], "process.command_line": sd[4],
                      "event.outcome": "failure" if sd[2] else "success"})
            add("sudo", line, e); continue
        if "pam_unix" in prog or msg.startswith("pam_unix("):
            u = re.search(r"(?:^| )user=(\S+)", msg) or re.search(r"session (?:opened|closed) for user ([^\s(]+)", msg)
            if u: e["user.name"] = u[1]
            r = re.search(r" ruser=(\S+)", msg) or re.search(r" by ([^\s(]+)\(uid=\d+\)", msg)
            if r: e["source.user.name"] = r[1]
            if "authentication failure" in msg: e["event.outcome"] = "failure"
            add("pam", line, e); continue
        if prog != "su":
            add("unparsed", line, {}); continue
        a = (re.match(r"^(FAILED SU )?\(to (\S+)\) (\S+) on ", msg))
        b = re.match(r"^(BAD SU )?(\S+) to (\S+) on ", msg)
        c = re.match(r"^failed: \S+ changing from (\S+) to (\S+)$", msg)
        if a: e.update({"user.name": a[2], "source.user.name": a[3], "event.outcome": "failure" if a[1] else "success"})
        elif c: e.update({"user.name": c[2], "source.user.name": c[1], "event.outcome": "failure"})
        elif b: e.update({"user.name": b[3], "source.user.name": b[2], "event.outcome": "failure" if b[1] else "success"})
        add("su", line, e)

# --- web access -----------------------------------------------------------
WEB = re.compile(r'^(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+)[^"]*" (\d{3}) ')
# nginx and Apache as forward proxies (proxy-*-forward.log, the real daemons on loopback): the
# request line names the site (absolute URI or CONNECT authority).
for f in ("elastic-examples-apache_logs-first150.log", "crowdsec-nginx_http-logs.log", "crowdsec-apache2-logs.log",
          "proxy-nginx-forward.log", "proxy-apache-forward.log"):
    for line in lines(f):
        w = WEB.match(line)
        if not w:
            continue
        t = dt.datetime.strptime(w[3], "%d/%b/%Y:%H:%M:%S %z")
        e = {"@timestamp": iso(t), "source.ip": w[1], "url.original": w[5], "http.response.status_code": int(w[6]), "http.request.method": w[4]}
        if w[2] != "-": e["user.name"] = w[2]
        if f == "proxy-apache-forward.log":  # mod_log_config writes a quote in %r as \"
            e["url.original"] = w[5].replace('\\"', '"')
        if f.startswith("proxy-"):
            proxy_target(w[4], w[5], e)
            # 407 Proxy Authentication Required is only ever the proxy's own refusal (RFC 9110 15.5.8)
            e["event.type"] = ["denied" if w[6] == "407" else "access"]
        add("web.access", line, e)

# --- netfilter ------------------------------------------------------------
for f in ("crowdsec-iptables-logs.log", "crowdsec-iptables-scan-multi-port.log", "crowdsec-unifi-logs.log", "crowdsec-proxmox-iptables.log"):
    for line in lines(f):
        if not re.search(r"(^| )(IN|OUT)=", line):
            add("sshd" if " sshd[" in line else "unparsed", line, {}); continue
        e = {}
        for k, fld in (("SRC", "source.ip"), ("DST", "destination.ip")):
            v = re.search(r" %s=(\S+)" % k, line); e[fld] = v[1]
        for k, fld in (("SPT", "source.port"), ("DPT", "destination.port")):
            v = re.search(r" %s=(\d+)" % k, line)
            if v: e[fld] = int(v[1])
        if re.search(r"policy DROP|REJECT:|-D-", line): e["event.action"] = "deny"
        elif re.search(r"ACCEPT:|-A-", line): e["event.action"] = "allow"
        add("netfilter", line, e)

# --- fortigate / asa ------------------------------------------------------
for line in lines("crowdsec-fortigate-sslvpn-event.log"):
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line)); kv = {k: v.strip('"') for k, v in kv.items()}
    tz = kv["tz"]; off = dt.timezone(dt.timedelta(hours=int(tz[:3]), minutes=int(tz[0] + tz[3:])))
    t = dt.datetime.strptime(kv["date"] + " " + kv["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=off)
    e = {"@timestamp": iso(t), "source.ip": kv["remip"], "event.outcome": "failure" if "fail" in kv["action"] else "success"}
    if kv.get("user", "N/A") != "N/A": e["user.name"] = kv["user"]
    add("fortigate", line, e)

# FortiOS native key=value (FortiOS Log Reference: `date`/`time` are the unit's local time, `tz` its
# offset, `eventtime` the epoch of the event in s or ns; traffic `action` accept/deny; web filter
# `hostname` + `url`; VPN `status` success / *_error). Lines arrive as `<PRI>` + payload.
def forti_epoch(v):
    secs, frac = (v[:10], v[10:]) if len(v) > 10 else (v, "")
    s = iso(dt.datetime.fromtimestamp(int(secs), dt.timezone.utc))
    frac = frac.rstrip("0")
    return s[:-1] + ("." + frac if frac else "") + "Z"

for line in lines("beats-fortinet-firewall-selected.log"):
    body = re.sub(r"^<\d+>", "", line)
    kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', body)); kv = {k: v.strip('"') for k, v in kv.items()}
    if "tz" in kv:
        tz = kv["tz"]; off = dt.timezone(dt.timedelta(hours=int(tz[:3]), minutes=int(tz[0] + tz[3:])))
        ts = iso(dt.datetime.strptime(kv["date"] + " " + kv["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=off))
    elif "eventtime" in kv:
        ts = forti_epoch(kv["eventtime"])
    else:  # neither: the unit's local time, read in the agent zone (UTC in this table)
        ts = iso(dt.datetime.strptime(kv["date"] + " " + kv["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc))
    e = {"@timestamp": ts, "event.code": kv["logid"]}
    if "devname" in kv: e["host.name"] = kv["devname"]
    for k, fld in (("srcip", "source.ip"), ("remip", "source.ip"), ("dstip", "destination.ip")):
        if k in kv: e[fld] = kv[k]
    for k, fld in (("srcport", "source.port"), ("dstport", "destination.port")):
        if k in kv: e[fld] = int(kv[k])
    if kv.get("user", "N/A") != "N/A": e["user.name"] = kv["user"]
    if kv["type"] == "traffic" and kv["action"] in ("accept", "deny"):
        e["event.action"] = {"accept": "allow", "deny": "deny"}[kv["action"]]
        e["rule.id"] = kv["policyid"]
    if kv.get("subtype") == "webfilter":
        e["event.action"] = kv["action"]; e["url.original"] = kv["hostname"] + kv["url"]
    if kv.get("subtype") == "vpn" and kv.get("status") in ("success", "negotiate_error"):
        e["event.outcome"] = "success" if kv["status"] == "success" else "failure"
    if kv.get("tunnelip", "N/A") != "N/A": e["fortinet.tunnelip"] = kv["tunnelip"]
    add("fortigate", line, e)

ASA_EP = r"(?:[\w-]+:)?(\d+\.\d+\.\d+\.\d+)(?:/(\d+))?"
for line in lines("wazuh-ruletest-cisco-asa.log"):
    m = re.match(r"%ASA-\d-(\d{6}):? (.*)", line)
    e = {"event.code": m[1]}
    x = re.search(r"(?:from|src) %s (?:.*?)(?:to|dst) %s" % (ASA_EP, ASA_EP), m[2])
    if x and m[1] in ("106001", "106006", "106023", "106015", "710003", "302013", "302014"):
        e.update({"source.ip": x[1], "destination.ip": x[3]})
        if x[2]: e["source.port"] = int(x[2])
        if x[4]: e["destination.port"] = int(x[4])
        e["event.action"] = "allow" if m[1] == "302013" else ("deny" if m[1] != "302014" else None)
        if e["event.action"] is None: del e["event.action"]
    u = re.search(r'for user "([^"]+)"', m[2])
    if u: e["user.name"] = u[1]; e["event.outcome"] = "success" if "permitted" in m[2] else "failure"
    add("cisco.asa", line, e)

# --- openvpn --------------------------------------------------------------
for f in ("crowdsec-openvpn__openvpn.log", "crowdsec-openvpn-bf__openvpn.log"):
    for line in lines(f):
        t = dt.datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        e = {"@timestamp": iso(t)}
        p = re.match(r"\S+ \S+ (?:(\w+)/)?(\d+\.\d+\.\d+\.\d+):(\d+)(?:/(\w+))? (.*)", line)
        if p:
            e["source.ip"] = p[2]
            if p[1] or p[4]: e["user.name"] = p[1] or p[4]
            if re.search(r"TLS Error|Auth Error|AUTH_FAILED|VERIFY ERROR", p[5]): e["event.outcome"] = "failure"
            elif re.search(r"Peer Connection Initiated|Authentication succeeded", p[5]): e["event.outcome"] = "success"
        add("openvpn", line, e)

# --- auditd ---------------------------------------------------------------
for f in ("go-libaudit-audit-rhel7.log", "go-libaudit-test3.log", "crowdsec-auditd.log"):
    for line in lines(f):
        a = re.match(r"type=\S+ msg=audit\((\d+)\.(\d+):(\d+)\)", line)
        if not a:
            add("unparsed", line, {}); continue
        e = {"@timestamp": iso(dt.datetime.fromtimestamp(int(a[1]), dt.timezone.utc) + dt.timedelta(milliseconds=int(a[2]))),
             "auditd.log.sequence": int(a[3])}
        ac = re.search(r' acct="([^"]+)"', line)
        if ac: e["user.name"] = ac[1]
        ad = re.search(r" addr=(\d+\.\d+\.\d+\.\d+) ", line)
        if ad: e["source.ip"] = ad[1]
        if line.startswith("type=EXECVE"):
            args = sorted((int(k), v) for k, v in re.findall(r" a(\d+)=(\"[^\"]*\"|\S+)", line))
            dec = [v[1:-1] if v.startswith('"') else bytes.fromhex(v).decode() for _, v in args]
            e["process.command_line"] = " ".join(dec)
        add("auditd", line, e)

# --- windows --------------------------------------------------------------
for line in lines("evtxrs-selected.xml"):
    eid = int(re.search(r'<EventID[^>]*>(\d+)<', line)[1])
    sysmon = "Microsoft-Windows-Sysmon" in line
    d = dict(re.findall(r'<Data Name="(\w+)">([^<]*)</Data>', line))
    t = re.search(r'SystemTime="([^"]+)"', line)[1]
    e = {"event.code": str(eid), "host.name": re.search(r"<Computer>([^<]*)<", line)[1],
         "@timestamp": iso(dt.datetime.fromisoformat(t.replace("Z", "+00:00")))}
    if not sysmon and eid in (4624, 4625, 4634):
        if d.get("TargetUserName", "-") not in ("-", ""): e["user.name"] = d["TargetUserName"]
        if re.match(r"^[\d.]+$|^[0-9a-f:]+:[0-9a-f:]*$", d.get("IpAddress", "-")): e["source.ip"] = d["IpAddress"]
        e["event.outcome"] = "failure" if eid == 4625 else "success"
    elif not sysmon and eid in (4648, 4672, 4688, 4720):
        if d.get("SubjectUserName", "-") not in ("-", ""): e["user.name"] = d["SubjectUserName"]
    if not sysmon and eid == 1102:  # payload only in the rendered Message (OTRF export)
        e["user.name"] = re.search(r"Account Name:\t(\S+)", j["Message"])[1]
    if sysmon and eid == 1:
        e["process.command_line"] = d["CommandLine"].replace("&quot;", '"').replace("&amp;", "&")
    add("windows.sysmon" if sysmon else "windows.security", line, e)

# Windows 4726/4740 as Microsoft documents them (one event per line; subject = who acted)
for line in lines("msdocs-windows-4726-4740.xml"):
    eid = int(re.search(r'<EventID[^>]*>(\d+)<', line)[1])
    d = dict(re.findall(r'<Data Name="(\w+)">([^<]*)</Data>', line))
    day, frac = re.search(r'SystemTime="([^".]+)\.?(\d*)Z"', line).groups()
    frac = frac.rstrip("0")
    add("windows.security", line, {"event.code": str(eid), "host.name": re.search(r"<Computer>([^<]*)<", line)[1],
        "@timestamp": day + ("." + frac if frac else "") + "Z", "user.name": d["SubjectUserName"],
        "user.target.name": d["TargetUserName"]})

# Sysmon 3 as Windows renders it (OSSEM data dictionary's "Event XML", one event per line)
for line in lines("ossem-sysmon-3.xml"):
    d = dict(re.findall(r'<Data Name="(\w+)">([^<]*)</Data>', line))
    day, frac = re.search(r'SystemTime="([^".]+)\.?(\d*)Z"', line).groups()
    frac = frac.rstrip("0")
    add("windows.sysmon", line, {"event.code": "3", "host.name": re.search(r"<Computer>([^<]*)<", line)[1],
        "@timestamp": day + ("." + frac if frac else "") + "Z", "source.ip": d["SourceIp"],
        "source.port": int(d["SourcePort"]), "destination.ip": d["DestinationIp"],
        "destination.port": int(d["DestinationPort"]), "network.transport": d["Protocol"]})

# --- OpenSMTPD (smtp_session.c log_info formats, "smtp-in: ...") -----------------------------------
for line in lines("wazuh-ruletest-opensmtpd.log"):
    m, ts = syslog_head(line)
    if not m or m["prog"] != "smtpd":
        continue
    e = {"@timestamp": ts, "host.name": m["host"]}
    a = re.match(r"smtp-in: Accepted message ([0-9a-f]{8}) on session [0-9a-f]{16}: from=<([^>]*)>, to=<([^>]*)>", m["msg"])
    if a:
        e.update({"email.from.address": a[2], "email.to.address": a[3]})
    if m["msg"].startswith("smtp-in: Failed command"):
        e["event.outcome"] = "failure"
    add("opensmtpd", line, e)

# --- pfSense / OPNsense filterlog (CSV layout from the pfSense "Filter Log Format" page) ----------
for line in lines("elastic-integrations-pfsense-filterlog.log"):
    if " filterlog" not in line:
        add("unparsed", line, {}); continue
    csv = re.search(r"(\d+,[^ ]*)$", line)[1].split(",")
    ver = csv[8]
    if ver == "4":
        proto, src, dst, ports = csv[16].lower(), csv[18], csv[19], csv[20:22]
    else:
        proto, src, dst, ports = csv[12].lower(), csv[15], csv[16], csv[17:19]
    e = {"source.ip": src, "destination.ip": dst, "network.transport": proto, "rule.id": csv[0],
         "event.action": {"pass": "allow", "block": "deny"}[csv[6]]}
    if proto in ("tcp", "udp"):
        e["source.port"], e["destination.port"] = int(ports[0]), int(ports[1])
    add("filterlog", line, e)

# --- dovecot (login process key=value list; auth worker `backend(user,ip)`) -------------------
for line in lines("fail2ban-dovecot-selected.log"):
    m, ts = syslog_head(line)
    if m is None:
        m = re.match(r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d+) (?P<hms>\S+) (?P<host>\S+) (?P<prog>[\w-]+): (?P<msg>.*)$", line); ts = bsd(m)
    msg, e = m["msg"], {"@timestamp": ts, "host.name": m["host"]}
    if msg.startswith("pam_unix("):
        e.update({"event.outcome": "failure", "source.ip": re.search(r"rhost=(\S+)", msg)[1]})
        add("pam", line, e); continue
    rip = re.search(r"rip=([^,\s]+)", msg)
    if rip:
        e["source.ip"] = rip[1]
        u = re.search(r"user=<([^>]+)>", msg)
        if u: e["user.name"] = u[1]
        if "(auth failed" in msg or "disabled plaintext auth" in msg: e["event.outcome"] = "failure"
    else:
        b = re.search(r"pam\(([^,]+),([^,)]+)", msg)
        e.update({"user.name": b[1], "source.ip": b[2], "event.outcome": "failure"})
    add("dovecot", line, e)

# --- strongSwan charon (`NN[GRP] [<sa>] text`; only facts stated on the line itself) --------
for line in lines("crowdsec-charon-ipsec-logs.log"):
    m = re.search(r"charon(?:\[\d+\]:| \d+ - \[meta [^\]]*\]) (\d+\[[A-Z]+\] )?(?:<[^>]*> )?(.*)$", line)
    if not m or not m[1]:
        add("unparsed", line, {}); continue
    text, e = m[2], {}
    x = re.match(r"XAuth authentication of '([^']*)' (failed|successful)", text)
    if x: e = {"user.name": x[1], "event.outcome": "failure" if x[2] == "failed" else "success"}
    if re.match(r"EAP-\S+ verification failed", text): e["event.outcome"] = "failure"
    u = re.match(r"EAP-\S+ username: '([^']*)'", text)
    if u: e["user.name"] = u[1]
    i = re.match(r"(\S+) is initiating an IKE_SA", text)
    if i: e["source.ip"] = i[1]
    add("strongswan", line, e)

# --- Palo Alto PAN-OS TRAFFIC CSV (field order from the PAN-OS "Traffic Log Fields" page) ------
for line in lines("beats-panw-traffic-selected.log"):
    c = line.split(" ", 4)[4].split(",")
    e = {"source.ip": c[7], "destination.ip": c[8], "rule.name": c[11], "network.transport": c[29],
         "@timestamp": c[6].replace("/", "-").replace(" ", "T") + "Z",
         "event.action": "allow" if c[30] == "allow" else "deny"}
    if c[29] in ("tcp", "udp"):
        e["source.port"], e["destination.port"] = int(c[24]), int(c[25])
    add("paloalto", line, e)

# --- Exchange message tracking CSV (column order from Microsoft's "Message tracking" docs) ------
import csv as _csv
for line in lines("elastic-integrations-exchange-messagetracking.log"):
    c = next(_csv.reader([line]))
    e = {"@timestamp": c[0], "event.action": c[8].lower()}
    if c[12]: e["email.to.address"] = c[12]
    if c[19].strip("<>"): e["email.from.address"] = c[19].strip("<>")
    if c[1]: e["source.ip"] = c[1]
    if c[18]: e["email.subject"] = c[18]
    add("exchange", line, e)

# --- Samba auth audit (auth/auth_log.c `log_authentication_event_human_readable` format) --------
SMB = re.compile(r"Auth: \[[^\]]*\] user \[([^\]]*)\]\\\[([^\]]*)\] at \[\w+, (\d+) (\w+) (\d{4}) "
                 r"(\d\d:\d\d:\d\d\.\d+) UTC\] with \[[^\]]*\] status \[(NT_STATUS_\w+)\] "
                 r"workstation \[[^\]]*\] remote host \[ipv4:([\d.]+):(\d+)\]")
for line in lines("crowdsec-smb-logs.log"):
    m = SMB.search(line)
    t = dt.datetime.strptime(f"{m[3]} {m[4]} {m[5]} {m[6]}", "%d %b %Y %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc)
    e = {"user.name": m[2], "source.ip": m[8], "source.port": int(m[9]), "@timestamp": iso(t),
         "event.outcome": "success" if m[7] == "NT_STATUS_OK" else "failure"}
    if m[1]: e["user.domain"] = m[1]
    if m[7] != "NT_STATUS_OK": e["event.reason"] = m[7]
    add("samba", line, e)

# --- Pulse/Ivanti Connect Secure "Standard" syslog format (PCS admin guide, syslog fields) ------
PCS = re.compile(r"(?:1 (\S+) \S+ )?PulseSecure: - - - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d - (\S+) - "
                 r"\[([^\]]+)\] (?:[^(]*::)?([^(]*)\(([^)]*)\)\S* - (.*)$")
for line in lines("elastic-integrations-pulse-vpn.log"):
    m = PCS.search(line)
    e = {"host.name": m[2], "source.ip": m[3]}
    if m[1]: e["@timestamp"] = iso(dt.datetime.fromisoformat(m[1]))
    user, realm, text = m[4], m[5], m[6]
    if not (user == "System" and realm == ""):
        if "@" in user:
            e["user.name"], e["user.domain"] = user.rsplit("@", 1)
        else:
            e["user.name"] = user
    if re.match(r"(Primary|Secondary) authentication successful|Agent login succeeded", text):
        e["event.outcome"] = "success"
    if re.match(r"Login failed|(Primary|Secondary) authentication failed", text):
        e["event.outcome"] = "failure"
    a = re.search(r"with IPv4 address ([\d.]+)|User with IP ([\d.]+)", text)
    if a: e["pulse_secure.assigned_ip"] = a[1] or a[2]
    add("pulse_secure", line, e)

# --- SoftEther VPN Server (Debian 12 package run on loopback, see README.md; fail2ban's lines) ---
# Written from SoftEther's log line layouts: file lines `YYYY-MM-DD hh:mm:ss.fff [[HUB "H"] ]MSG`,
# packet rows `YYYY-MM-DD,hh:mm:ss.fff,SRC_SESSION,…` and the syslog form
# `[HOST/VPN[/HUB]] (YYYY-MM-DD hh:mm:ss.fff) <KIND_LOG>: MSG`, with or without a relay header.
SE_SYS = re.compile(r"^(?:.{0,60}?\s)?\[([^/\]\s]+)/VPN(?:/([^\]]+))?\] \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\) <([A-Z_]+)>: (.*)$")
SE_FILE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (?:\[HUB \"([^\"]+)\"\] )?(.*)$")
SE_PKT = re.compile(r"^(?:(\d{4}-\d\d-\d\d),(\d\d:\d\d:\d\d\.\d{3}),)?(SID-[^,]+),[^,]*,[0-9A-F-]+,[0-9A-F-]+,0x[0-9A-F]+,\d+,[^,]*,[^,]*,([^,]*),([^,]*),([^,]*),([^,]*),")
SE_MSG = [
    (re.compile(r'^The connection "CID-\d+" \(IP address: ([^,]+), Host name: [^,]*, Port number: (\d+),.* the user name is "([^"]*)"\.$'),
     lambda m: {"source.ip": m[1], "source.port": int(m[2]), "user.name": m[3]}),
    (re.compile(r'^Connection "CID-\d+": User authentication failed\. The user name that has been provided was "(.*)", from ([\d.:a-f]+)\.$'),
     lambda m: {"user.name": m[1], "source.ip": m[2], "event.outcome": "failure"}),
    (re.compile(r'^Connection "CID-\d+": Successfully authenticated as user "(.*)"\.$'),
     lambda m: {"user.name": m[1], "event.outcome": "success"}),
    (re.compile(r'^Connection "CID-\d+": The new session "([^"]+)" has been created\. \(IP address: ([^,]+), Port number: (\d+),'),
     lambda m: {"softether.session": m[1], "source.ip": m[2], "source.port": int(m[3]), "event.outcome": "success"}),
    (re.compile(r'^Session "([^"]+)": The session has been terminated\.'), lambda m: {"softether.session": m[1]}),
    (re.compile(r'allocated, for host "(SID-[^"]+)" .*the new IP address ([\d.]+)\.$'),
     lambda m: {"softether.session": m[1], "softether.assigned_ip": m[2]}),
    (re.compile(r'^SecureNAT: The DHCP entry \d+ has been created\. .*IP address: ([\d.]+),'),
     lambda m: {"softether.assigned_ip": m[1]}),
    (re.compile(r'^Connection "CID-\d+" was unable to log in using administration mode\.'), lambda m: {"event.outcome": "failure"}),
    (re.compile(r'^Connection "CID-\d+" successfully logged in using administration mode\.$'), lambda m: {"event.outcome": "success"}),
    (re.compile(r'^On the TCP Listener \(Port (\d+)\), a Client \(IP address ([^,]+), Host name "[^"]*", Port number (\d+)\)'),
     lambda m: {"destination.port": int(m[1]), "source.ip": m[2], "source.port": int(m[3])}),
    (re.compile(r'^For the client \(IP address: ([^,]+), host name: "[^"]*", port number: (\d+)\), connection "(CID-\d+)"'),
     lambda m: {"source.ip": m[1], "source.port": int(m[2]), "softether.connection": m[3]}),
]

def se_ts(stamp):
    return iso(dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.timezone.utc))

def se_pkt(m):
    e = {"softether.session": m[3], "source.ip": m[4], "destination.ip": m[6]}
    for k, v in (("source.port", m[5]), ("destination.port", m[7])):
        p = re.search(r"(\d+)\)?$", v)
        if p: e[k] = int(p[1])
    return e

def se_msg(msg, e):
    for rx, f in SE_MSG:
        m = rx.search(msg)
        if m:
            e.update(f(m)); return True
    return False

for f in ("softether-security_log.log", "softether-server_log.log", "softether-packet_log.log",
          "softether-syslog-raw.log", "softether-syslog-rsyslog.log", "fail2ban-softethervpn.log"):
    for line in lines(f):
        m = SE_SYS.match(line)
        if m:
            e = {"host.name": m[1], "@timestamp": se_ts(m[3])}
            if m[2]: e["softether.hub"] = m[2]
            if m[4] == "PACKET_LOG":
                p = SE_PKT.match(m[5])
                if p: e.update(se_pkt(p))
            else:
                se_msg(m[5], e)
            add("softether", line, e); continue
        p = SE_PKT.match(line)
        if p and p[1]:
            e = se_pkt(p); e["@timestamp"] = se_ts(f"{p[1]} {p[2]}")
            add("softether", line, e); continue
        m = SE_FILE.match(line)
        if not m:
            continue
        e = {"@timestamp": se_ts(m[1])}
        if m[2]: e["softether.hub"] = m[2]
        # The hub's own security log is SoftEther's throughout; in the server log only lines
        # this oracle reads (or hub-prefixed ones) are labelled.
        if se_msg(m[3], e) or m[2] or f != "softether-server_log.log":
            add("softether", line, e)

def jtime(j):
    t = j.get("@timestamp") or j["TimeCreated"]
    d = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    return iso(d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc))

for line in lines("otrf-selected.json"):
    j = json.loads(line); eid = j["EventID"]; sysmon = j["SourceName"] == "Microsoft-Windows-Sysmon"
    e = {"event.code": str(eid), "host.name": j["Hostname"], "@timestamp": jtime(j)}
    if not sysmon and eid in (4624, 4625, 4634) and j.get("TargetUserName", "-") != "-":
        e["user.name"] = j["TargetUserName"]
    if not sysmon and eid == 4688:
        e["process.command_line"] = j["CommandLine"]
    if not sysmon and eid == 1102:  # payload only in the rendered Message (OTRF export)
        e["user.name"] = re.search(r"Account Name:\t(\S+)", j["Message"])[1]
    if sysmon and eid == 1:
        e["process.command_line"] = j["CommandLine"]
    if sysmon and eid == 3:
        e.update({"source.ip": j["SourceIp"], "destination.ip": j["DestinationIp"], "destination.port": int(j["DestinationPort"])})
    add("windows.sysmon" if sysmon else "windows.security", line, e)

for r in rows:
    print(json.dumps(r, ensure_ascii=False))
