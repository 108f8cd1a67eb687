//! The catalog of ECS fields the parsers emit, with one example value each: what
//! `logship-collector fields` prints and what `--where` accepts.
//!
//! Invariant: every field name any parser can emit is listed here (the test
//! `catalog_covers_every_emitted_field` runs the whole corpus through the parsers and checks), so
//! an unknown name in a filter is a typo, never a field that exists.

/// One known field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    /// ECS dotted name.
    pub name: &'static str,
    /// A value as the parsers write it (JSON text).
    pub example: &'static str,
}

const fn f(name: &'static str, example: &'static str) -> FieldInfo {
    FieldInfo { name, example }
}

/// Every field name a parser emits, in a stable order (by ECS group).
const FIELDS: &[FieldInfo] = &[
    f("@timestamp", "\"2026-11-25T09:10:21Z\""),
    f("event.dataset", "\"sshd\""),
    f("event.category", "[\"authentication\"]"),
    f("event.type", "[\"start\"]"),
    f("event.outcome", "\"failure\""),
    f("event.action", "\"ssh_login\""),
    f("event.code", "\"4625\""),
    f("event.reason", "\"Invalid user\""),
    f("event.count", "3"),
    f("event.provider", "\"Microsoft-Windows-Security-Auditing\""),
    f("host.name", "\"gw\""),
    f("user.name", "\"alice\""),
    f("user.id", "\"S-1-5-21-1004\""),
    f("user.domain", "\"CORP\""),
    f("user.effective.name", "\"root\""),
    f("user.target.name", "\"root\""),
    f("source.user.name", "\"alice\""),
    f("user.target.domain", "\"CORP\""),
    f("user.audit.id", "\"1000\""),
    f("group.name", "\"apache\""),
    f("group.id", "\"48\""),
    f("source.ip", "\"203.0.113.7\""),
    f("source.port", "40001"),
    f("source.domain", "\"ws-17.corp.example\""),
    f("destination.ip", "\"10.0.0.5\""),
    f("destination.port", "443"),
    f("destination.domain", "\"mail.example.com\""),
    f("network.transport", "\"tcp\""),
    f("network.application", "\"ssl\""),
    f("source.nat.ip", "\"192.168.1.63\""),
    f("destination.nat.ip", "\"203.0.113.9\""),
    f("observer.ingress.zone", "\"trust\""),
    f("observer.egress.zone", "\"untrust\""),
    f("observer.serial_number", "\"012801096514\""),
    f("panw.action", "\"reset-both\""),
    f("panw.subtype", "\"end\""),
    f("process.name", "\"sshd\""),
    f("process.pid", "811"),
    f("process.executable", "\"/usr/bin/passwd\""),
    f("process.command_line", "\"passwd alice\""),
    f("process.parent.pid", "1"),
    f(
        "process.parent.executable",
        "\"C:\\\\Windows\\\\explorer.exe\"",
    ),
    f("process.parent.command_line", "\"explorer.exe\""),
    f("url.original", "\"http://example.com/\""),
    f("url.domain", "\"example.com\""),
    f("url.scheme", "\"http\""),
    f("url.port", "443"),
    f("http.request.method", "\"GET\""),
    f("http.request.referrer", "\"-\""),
    f("http.response.status_code", "404"),
    f("http.response.bytes", "5120"),
    f("http.response.body.bytes", "4980"),
    f("http.version", "\"1.1\""),
    f("user_agent.original", "\"curl/8.5.0\""),
    f("email.from.address", "\"alice@example.com\""),
    f("email.to.address", "\"bob@example.com\""),
    f("email.message_id_queue", "\"4BPbrm0Bhzz3x\""),
    f(
        "email.message_id",
        "\"20240123200014.123F425E28@host01.example.com\"",
    ),
    f("email.subject", "\"backup successful\""),
    f("email.direction", "\"inbound\""),
    f("exchange.source", "\"SMTP\""),
    f("rule.id", "\"14\""),
    f("rule.uuid", "\"1000000103\""),
    f("network.direction", "\"ingress\""),
    f("network.iana_number", "6"),
    f("network.protocol", "\"imap\""),
    f("rule.name", "\"input\""),
    f("dovecot.auth_backend", "\"pam\""),
    f("observer.type", "\"firewall\""),
    f("observer.vendor", "\"Fortinet\""),
    f("observer.product", "\"FortiGate\""),
    f("observer.name", "\"FG100E\""),
    f("observer.ingress.interface.name", "\"eth0\""),
    f("observer.egress.interface.name", "\"eth1\""),
    f("log.syslog.severity.code", "4"),
    f("sshd.auth_method", "\"password\""),
    f("pam.module", "\"pam_unix\""),
    f("netfilter.prefix", "\"[UFW BLOCK]\""),
    f("fortinet.type", "\"event\""),
    f("fortinet.subtype", "\"vpn\""),
    f("fortinet.action", "\"ssl-login-fail\""),
    f("fortinet.tunnelip", "\"10.212.134.200\""),
    f("cisco.asa.assigned_ip", "\"192.168.50.5\""),
    f("strongswan.assigned_ip", "\"10.3.0.1\""),
    f("pulse_secure.assigned_ip", "\"172.22.27.209\""),
    f("pulse_secure.realm", "\"Users\""),
    f("softether.assigned_ip", "\"192.168.30.10\""),
    f("softether.hub", "\"SITE\""),
    f("softether.session", "\"SID-ALICE-3\""),
    f("softether.connection", "\"CID-14\""),
    f("strongswan.ike_sa_id", "\"85\""),
    f("auditd.log.record_type", "\"USER_AUTH\""),
    f("auditd.log.sequence", "1234"),
    f("winlog.logon.type", "\"3\""),
    f("winlog.event_data.Status", "\"0xc000006d\""),
    f("tags", "\"sshd_config\""),
];

/// The known fields.
pub fn known_fields() -> &'static [FieldInfo] {
    FIELDS
}

/// True when `name` is a field some parser emits.
pub fn is_known_field(name: &str) -> bool {
    FIELDS.iter().any(|f| f.name == name)
}
