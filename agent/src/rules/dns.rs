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
    names: Mutex<BTreeSet<Arc<str>>>,
    resolved: RwLock<Resolved>,
    learned: RwLock<HashMap<IpAddr, (Arc<str>, Instant)>>,
    resolver: OnceLock<()>,
}

/// Watched names and their addresses, both ways round. Each name is updated on its own, so a
/// slow or failing lookup of one name never hides or overwrites what another resolved to.
#[derive(Default)]
struct Resolved {
    addresses_of: HashMap<Arc<str>, Vec<IpAddr>>,
    names_of: HashMap<IpAddr, Vec<Arc<str>>>,
}

impl Resolved {
    fn replace(&mut self, name: &Arc<str>, addresses: Vec<IpAddr>) {
        if let Some(previous) = self.addresses_of.remove(name) {
            for ip in previous {
                if let Some(names) = self.names_of.get_mut(&ip) {
                    names.retain(|known| known != name);
                    if names.is_empty() {
                        self.names_of.remove(&ip);
                    }
                }
            }
        }
        for ip in &addresses {
            let names = self.names_of.entry(*ip).or_default();
            if !names.contains(name) {
                names.push(Arc::clone(name));
            }
        }
        self.addresses_of.insert(Arc::clone(name), addresses);
    }
}

static WATCH: OnceLock<Arc<DnsWatch>> = OnceLock::new();

/// The process-wide watch (field extractors are plain functions, so the cache is global).
pub fn global() -> &'static Arc<DnsWatch> {
    WATCH.get_or_init(|| Arc::new(DnsWatch::default()))
}

impl DnsWatch {
    /// Starts watching `name`: it is resolved at once in the background, then with every
    /// periodic refresh.
    pub fn watch(self: &Arc<Self>, name: &str) {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.parse::<IpAddr>().is_ok() {
            return;
        }
        let name: Arc<str> = Arc::from(name);
        let added = self
            .names
            .lock()
            .map(|mut names| names.insert(Arc::clone(&name)))
            .unwrap_or(false);
        if added {
            self.resolve_soon(name);
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
        if let Some(watched) = self
            .resolved
            .read()
            .ok()
            .and_then(|resolved| resolved.names_of.get(ip).cloned())
        {
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

    /// Resolves every watched name now, one at a time.
    pub fn refresh(&self) {
        let names: Vec<Arc<str>> = self
            .names
            .lock()
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default();
        for name in names {
            self.resolve(&name);
        }
    }

    /// Resolves `name` and replaces its addresses. A failed lookup keeps the addresses it had:
    /// a resolver hiccup must not make rules that name a server stop matching it.
    fn resolve(&self, name: &Arc<str>) {
        match (name.as_ref(), 0u16).to_socket_addrs() {
            Ok(addrs) => {
                let mut addresses: Vec<IpAddr> = addrs.map(|addr| addr.ip()).collect();
                addresses.sort_unstable();
                addresses.dedup();
                if let Ok(mut resolved) = self.resolved.write() {
                    resolved.replace(name, addresses);
                }
            }
            Err(error) => tracing::debug!(%name, %error, "watched name did not resolve"),
        }
    }

    /// Resolves a newly watched name on its own thread (so a slow lookup of another name
    /// cannot delay it), and starts the periodic refresh once.
    fn resolve_soon(self: &Arc<Self>, name: Arc<str>) {
        let watch = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("vigil-dns-now".into())
            .spawn(move || watch.resolve(&name));
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start a DNS lookup thread; the name resolves at the next refresh");
        }
        self.resolver.get_or_init(|| {
            let watch = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("vigil-dns".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(REFRESH);
                        watch.refresh();
                    }
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the DNS refresh thread; fd.*ip.name fields are not kept fresh");
            }
        });
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
    fn each_name_is_updated_on_its_own() {
        let watch = DnsWatch::default();
        let (alpha, beta): (Arc<str>, Arc<str>) = (Arc::from("alpha.test"), Arc::from("beta.test"));
        let shared: IpAddr = "192.0.2.1".parse().unwrap();
        let moved: IpAddr = "192.0.2.2".parse().unwrap();
        let fresh: IpAddr = "192.0.2.3".parse().unwrap();
        if let Ok(mut resolved) = watch.resolved.write() {
            resolved.replace(&alpha, vec![shared, moved]);
            resolved.replace(&beta, vec![shared]);
            // alpha moves: beta keeps the address they shared, alpha's old address is gone.
            resolved.replace(&alpha, vec![shared, fresh]);
        }
        let names = |ip: &IpAddr| -> Vec<String> {
            let mut names: Vec<String> =
                watch.names_for(ip).iter().map(|n| n.to_string()).collect();
            names.sort();
            names
        };
        assert_eq!(names(&shared), vec!["alpha.test", "beta.test"]);
        assert!(names(&moved).is_empty());
        assert_eq!(names(&fresh), vec!["alpha.test"]);
        // A lookup that fails keeps the addresses the name had.
        watch.resolve(&Arc::from("vigil-no-such-name.invalid"));
        watch.resolve(&alpha);
        assert_eq!(names(&fresh), vec!["alpha.test"]);
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
