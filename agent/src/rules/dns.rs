//! Domain names for `fd.*ip.name`, the way libsinsp provides them: the names that rules mention
//! are resolved in the background and kept fresh, and an address "has" a name when that name
//! currently resolves to it. No packets are inspected; only names the rules care about are ever
//! looked up.

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, ToSocketAddrs},
    sync::{Arc, Mutex, OnceLock, RwLock},
    time::{Duration, Instant},
};

/// How often watched names are resolved again.
pub const REFRESH: Duration = Duration::from_secs(30);

/// Most addresses whose names are kept from DNS answers the workloads received.
const MAX_LEARNED: usize = 65_536;

/// The names being watched and what they resolve to, plus the names learned from the DNS
/// answers workloads received (until their TTL runs out).
#[derive(Default)]
pub struct DnsWatch {
    names: Mutex<BTreeSet<String>>,
    by_ip: RwLock<HashMap<IpAddr, Vec<Arc<str>>>>,
    learned: RwLock<HashMap<IpAddr, (Arc<str>, Instant)>>,
    resolver: OnceLock<()>,
}

static WATCH: OnceLock<Arc<DnsWatch>> = OnceLock::new();

/// The process-wide watch (field extractors are plain functions, so the cache is global).
pub fn global() -> &'static Arc<DnsWatch> {
    WATCH.get_or_init(|| Arc::new(DnsWatch::default()))
}

impl DnsWatch {
    /// Starts watching `name` (resolution happens in the background thread).
    pub fn watch(self: &Arc<Self>, name: &str) {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.parse::<IpAddr>().is_ok() {
            return;
        }
        let added = self
            .names
            .lock()
            .map(|mut names| names.insert(name))
            .unwrap_or(false);
        if added {
            self.start_resolver();
        }
    }

    /// The names that currently resolve to `ip`: learned from an unexpired DNS answer first,
    /// then the watched names.
    pub fn names_for(&self, ip: &IpAddr) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self
            .learned
            .read()
            .ok()
            .and_then(|map| {
                map.get(ip)
                    .filter(|(_, expires)| *expires > Instant::now())
                    .map(|(name, _)| Arc::clone(name))
            })
            .into_iter()
            .collect();
        if let Some(watched) = self.by_ip.read().ok().and_then(|map| map.get(ip).cloned()) {
            for name in watched {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// Records that `name` resolved to `ip` in an answer valid for `ttl`.
    pub fn learn(&self, ip: IpAddr, name: &str, ttl: Duration) {
        let Ok(mut map) = self.learned.write() else {
            return;
        };
        let now = Instant::now();
        if map.len() >= MAX_LEARNED {
            map.retain(|_, (_, expires)| *expires > now);
            if map.len() >= MAX_LEARNED {
                // Still full of live answers: forget an arbitrary one rather than grow.
                if let Some(victim) = map.keys().next().copied() {
                    map.remove(&victim);
                }
            }
        }
        map.insert(ip, (Arc::from(name), now + ttl));
    }

    /// Resolves every watched name now and replaces the address map.
    pub fn refresh(&self) {
        let names: Vec<String> = self
            .names
            .lock()
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default();
        let mut by_ip: HashMap<IpAddr, Vec<Arc<str>>> = HashMap::new();
        for name in names {
            let shared: Arc<str> = Arc::from(name.as_str());
            match (name.as_str(), 0u16).to_socket_addrs() {
                Ok(addrs) => {
                    for addr in addrs {
                        let entry = by_ip.entry(addr.ip()).or_default();
                        if !entry.contains(&shared) {
                            entry.push(Arc::clone(&shared));
                        }
                    }
                }
                Err(error) => tracing::debug!(%name, %error, "watched name did not resolve"),
            }
        }
        if let Ok(mut map) = self.by_ip.write() {
            *map = by_ip;
        }
    }

    fn start_resolver(self: &Arc<Self>) {
        let mut started = false;
        self.resolver.get_or_init(|| {
            started = true;
            let watch = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("vigil-dns".into())
                .spawn(move || {
                    loop {
                        watch.refresh();
                        std::thread::sleep(REFRESH);
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the DNS watch thread; fd.*ip.name fields stay empty");
            }
        });
        if !started {
            // The periodic thread already ran; resolve the new name now rather than in 30 s.
            let watch = Arc::clone(self);
            let _ = std::thread::Builder::new()
                .name("vigil-dns-now".into())
                .spawn(move || watch.refresh());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_names_map_to_their_addresses() {
        let watch = Arc::new(DnsWatch::default());
        watch.watch("localhost");
        watch.watch("10.0.0.1");
        watch.refresh();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let names: Vec<String> = watch
            .names_for(&loopback)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec!["localhost"]);
        assert!(watch.names_for(&"10.0.0.1".parse().unwrap()).is_empty());
    }

    #[test]
    fn learned_names_expire_with_their_ttl() {
        let watch = DnsWatch::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        watch.learn(ip, "api.example.com", Duration::from_secs(60));
        assert_eq!(watch.names_for(&ip)[0].as_ref(), "api.example.com");
        watch.learn(ip, "api.example.com", Duration::ZERO);
        assert!(watch.names_for(&ip).is_empty());
    }
}
