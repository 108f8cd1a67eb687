//! The per-format parsers and the bounded correlation state they share.

pub(crate) mod account;
pub(crate) mod asa;
pub(crate) mod auditd;
pub(crate) mod dovecot;
pub(crate) mod exchange;
pub(crate) mod filterlog;
pub(crate) mod firewall;
pub(crate) mod mikrotik;
pub(crate) mod opensmtpd;
pub(crate) mod openvpn;
pub(crate) mod panos;
pub(crate) mod postfix;
pub(crate) mod pulse;
pub(crate) mod samba;
pub(crate) mod softether;
pub(crate) mod sshd;
pub(crate) mod strongswan;
pub(crate) mod sudo;
pub(crate) mod web;
pub(crate) mod windows;
mod windows_map;

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::STATE_CAP;

/// Correlation state of one stream.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) postfix_from: Bounded<String, String>,
    pub(crate) postfix_client: Bounded<String, String>,
    pub(crate) audit: Bounded<u64, AuditGroup>,
    /// OpenSMTPD session id → client IP.
    pub(crate) smtpd_client: Bounded<String, String>,
    /// sshd `host|pid` → client address announced by `Connection from`.
    pub(crate) sshd_client: Bounded<String, String>,
    /// strongSwan IKE_SA unique id → peer address and identity.
    pub(crate) ike_sa: Bounded<String, strongswan::Sa>,
    /// SoftEther `hub|CID-N` / `hub|SID-…` → client address and user.
    pub(crate) softether: Bounded<String, softether::Peer>,
}

/// Facts of one audit event (by serial) carried across its records.
#[derive(Debug, Default, Clone)]
pub(crate) struct AuditGroup {
    pub(crate) pid: String,
    pub(crate) ppid: String,
    pub(crate) uid: String,
    pub(crate) auid: String,
    pub(crate) exe: String,
    pub(crate) comm: String,
    pub(crate) cmdline: String,
    pub(crate) outcome: &'static str,
}

/// A map holding at most [`STATE_CAP`] keys; inserting a new key when full evicts the oldest.
#[derive(Debug)]
pub(crate) struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

// === impl Bounded ===

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    pub(crate) fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(k)
    }

    pub(crate) fn insert(&mut self, k: impl Into<K>, v: V) {
        let k = k.into();
        if self.map.insert(k.clone(), v).is_some() {
            return;
        }
        self.order.push_back(k);
        while self.order.len() > STATE_CAP {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounded_evicts_oldest() {
        let mut b = super::Bounded::<u64, u64>::default();
        for i in 0..(crate::STATE_CAP as u64 + 10) {
            b.insert(i, i);
        }
        assert_eq!(b.len(), crate::STATE_CAP);
        assert!(b.get(&0).is_none());
        assert!(b.get(&(crate::STATE_CAP as u64 + 9)).is_some());
    }
}
