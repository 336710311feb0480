//! Which Service cluster IPs (10.96.0.0/12) and node ports (30000-32767) are taken, and
//! the lowest free ones, kept up to date from the store's recorded changes: allocating
//! for a new Service costs what changed since the last allocation, not a scan of every
//! Service.
//!
//! Owns that bookkeeping. Must not decide what a Service gets (`verbs.rs` does) nor write
//! objects.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::resources::ResourceInfo;
use super::store::{EventType, Key, Store};
use super::verbs::{ApiError, ApiResult, Cluster, str_of};

/// The first address of the Service range; `.1` is the `kubernetes` Service's.
const IP_BASE: u32 = u32::from_be_bytes([10, 96, 0, 0]);
/// The lowest address handed out, and one past the highest (a /12).
const FIRST_IP: u32 = IP_BASE + 2;
const END_IP: u32 = IP_BASE + (1 << 20) - 1;
/// The node port range.
const FIRST_PORT: u64 = 30000;
const LAST_PORT: u64 = 32767;

/// What one Service holds.
#[derive(Debug, Default, Clone)]
struct Held {
    ip: Option<u32>,
    ports: Vec<u64>,
}

impl Held {
    fn of(service: &Value) -> Held {
        Held {
            ip: service["spec"]["clusterIP"]
                .as_str()
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
                .map(u32::from),
            ports: service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["nodePort"].as_u64())
                .collect(),
        }
    }
}

/// The taken addresses and ports, by holder.
#[derive(Debug, Default)]
pub struct Addresses {
    /// The resourceVersion whose changes are accounted for; 0 before the first look.
    seen: u64,
    by_service: HashMap<Key, Held>,
    ips: HashMap<u32, Key>,
    ports: HashMap<u64, Key>,
    /// Every address below this one is taken (the search for a free one starts here).
    free_ip_from: u32,
    /// Every node port below this one is taken.
    free_port_from: u64,
}

impl Addresses {
    /// Brings the bookkeeping up to date with `store`: the changes since the last look
    /// when the store still holds them, else every Service again.
    pub fn sync(&mut self, store: &Store) {
        let now = store.resource_version();
        if self.seen == now {
            return;
        }
        match store.changes_after(self.seen) {
            Some(changes) => {
                let services =
                    changes.filter(|e| e.key.group.is_empty() && e.key.resource == "services");
                for e in services {
                    self.release(&e.key);
                    if e.kind != EventType::Deleted {
                        self.hold(&e.key, Held::of(&e.object));
                    }
                }
            }
            None => {
                *self = Addresses::default();
                for (key, service) in store.list("", "services", None) {
                    self.hold(key, Held::of(service));
                }
            }
        }
        self.seen = now;
    }

    fn hold(&mut self, key: &Key, held: Held) {
        if let Some(ip) = held.ip {
            self.ips.insert(ip, key.clone());
        }
        for port in &held.ports {
            self.ports.insert(*port, key.clone());
        }
        self.by_service.insert(key.clone(), held);
    }

    fn release(&mut self, key: &Key) {
        let Some(held) = self.by_service.remove(key) else {
            return;
        };
        if let Some(ip) = held.ip
            && self.ips.get(&ip) == Some(key)
        {
            self.ips.remove(&ip);
            self.free_ip_from = self.free_ip_from.min(ip);
        }
        for port in held.ports {
            if self.ports.get(&port) == Some(key) {
                self.ports.remove(&port);
                self.free_port_from = self.free_port_from.min(port);
            }
        }
    }

    /// Whether `ip` is held by a Service other than `key`.
    pub fn ip_taken(&self, ip: &str, key: &Key) -> bool {
        ip.parse::<Ipv4Addr>()
            .ok()
            .and_then(|a| self.ips.get(&u32::from(a)))
            .is_some_and(|holder| holder != key)
    }

    /// Whether node port `port` is held by a Service other than `key`.
    pub fn port_taken(&self, port: u64, key: &Key) -> bool {
        self.ports.get(&port).is_some_and(|holder| holder != key)
    }

    /// The lowest address of the range no Service holds, if any is left.
    pub fn free_ip(&mut self) -> Option<Ipv4Addr> {
        let mut ip = self.free_ip_from.max(FIRST_IP);
        while self.ips.contains_key(&ip) {
            ip += 1;
        }
        self.free_ip_from = ip;
        (ip < END_IP).then(|| Ipv4Addr::from(ip))
    }

    /// The lowest node port that neither another Service (than `key`) nor `given` holds
    /// (the ports the Service being written got so far), if any is left.
    pub fn free_port(&mut self, key: &Key, given: &[u64]) -> Option<u64> {
        let mut from = self.free_port_from.max(FIRST_PORT);
        while self.ports.contains_key(&from) {
            from += 1;
        }
        self.free_port_from = from;
        // Below `from` every port is taken: only those of the Service itself may be free
        // for it.
        let mut own: Vec<u64> = self
            .by_service
            .get(key)
            .map(|h| h.ports.iter().copied().filter(|p| *p < from).collect())
            .unwrap_or_default();
        own.sort_unstable();
        own.into_iter()
            .chain(from..=LAST_PORT)
            .find(|p| !given.contains(p) && !self.port_taken(*p, key))
    }
}

impl Cluster {
    /// A Service's cluster IP (the lowest free one when it has none) and node ports,
    /// checked against those other Services hold; defaults for its type, session
    /// affinity, protocols and target ports. `old` is the stored Service on an update.
    pub(super) fn allocate_service(
        &self,
        info: &ResourceInfo,
        key: &Key,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let name = key.name.as_str();
        if !obj["spec"].is_object() {
            obj["spec"] = json!({});
        }
        let ty = str_of(obj, "/spec/type").to_string();
        let ty = if ty.is_empty() {
            "ClusterIP".to_string()
        } else {
            ty
        };
        obj["spec"]["type"] = json!(ty);
        let mut taken = self.addresses.borrow_mut();
        taken.sync(&self.store);
        if ty != "ExternalName" {
            let mut ip = str_of(obj, "/spec/clusterIP").to_string();
            let old_ip = old
                .map(|o| str_of(o, "/spec/clusterIP").to_string())
                .unwrap_or_default();
            if ip.is_empty() && !old_ip.is_empty() {
                ip = old_ip.clone();
            }
            if ip.is_empty() {
                ip = taken
                    .free_ip()
                    .ok_or_else(|| {
                        ApiError::new(
                            500,
                            "InternalError",
                            "the service IP range 10.96.0.0/12 is full",
                        )
                    })?
                    .to_string();
            } else if ip != "None" && ip != old_ip {
                let in_range = ip.parse::<Ipv4Addr>().is_ok_and(|a| {
                    u32::from(a) >> 20 == u32::from(Ipv4Addr::new(10, 96, 0, 0)) >> 20
                });
                if !in_range {
                    return Err(ApiError::invalid(
                        info,
                        name,
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: \"{ip}\": provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                        ),
                    ));
                }
                if taken.ip_taken(&ip, key) {
                    return Err(ApiError::invalid(
                        info,
                        name,
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: \"{ip}\": failed to allocate IP {ip}: provided IP is already allocated"
                        ),
                    ));
                }
            }
            obj["spec"]["clusterIP"] = json!(ip);
            obj["spec"]["clusterIPs"] = json!([ip]);
            if ip != "None" {
                obj["spec"]["ipFamilies"] = json!(["IPv4"]);
                obj["spec"]["ipFamilyPolicy"] = json!("SingleStack");
            }
        }
        if obj["spec"]["sessionAffinity"].is_null() {
            obj["spec"]["sessionAffinity"] = json!("None");
        }
        let wants_node_port = ty == "NodePort" || ty == "LoadBalancer";
        let old_ports: Vec<Value> = old
            .and_then(|o| o["spec"]["ports"].as_array().cloned())
            .unwrap_or_default();
        // The node ports this write gives the Service so far.
        let mut given: Vec<u64> = Vec::new();
        if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut() {
                let port = p["port"].as_u64().unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    return Err(ApiError::invalid(
                        info,
                        name,
                        "spec.ports.port",
                        format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
                    ));
                }
                if p["protocol"].is_null() {
                    p["protocol"] = json!("TCP");
                }
                if p["targetPort"].is_null() {
                    p["targetPort"] = json!(port);
                }
                if !wants_node_port {
                    continue;
                }
                match p["nodePort"].as_u64() {
                    Some(n) if !(30000..=32767).contains(&n) => {
                        return Err(ApiError::invalid(
                            info,
                            name,
                            "spec.ports.nodePort",
                            format!(
                                "Invalid value: {n}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                            ),
                        ));
                    }
                    Some(n) if given.contains(&n) || taken.port_taken(n, key) => {
                        return Err(ApiError::invalid(
                            info,
                            name,
                            "spec.ports.nodePort",
                            format!("Invalid value: {n}: provided port is already allocated"),
                        ));
                    }
                    Some(n) => given.push(n),
                    None => {
                        let kept = old_ports
                            .iter()
                            .find(|o| o["port"].as_u64() == Some(port))
                            .and_then(|o| o["nodePort"].as_u64());
                        let n = kept
                            .or_else(|| taken.free_port(key, &given))
                            .ok_or_else(|| {
                                ApiError::new(
                                    500,
                                    "InternalError",
                                    "no free node port in 30000-32767",
                                )
                            })?;
                        given.push(n);
                        p["nodePort"] = json!(n);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verbs::DeleteOptions;

    fn cluster() -> Cluster {
        Cluster::for_tests()
    }

    #[test]
    fn services_get_ips_and_node_ports() {
        let mut c = cluster();
        let svc = c.info("", "v1", "services").unwrap();
        let a = c
            .create(&svc, Some("default"), json!({"metadata": {"name": "a"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}))
            .unwrap();
        let ip = a["spec"]["clusterIP"].as_str().unwrap();
        assert!(ip.starts_with("10.96."));
        let np = a["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&np));
        let h = c
            .create(
                &svc,
                Some("default"),
                json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}}),
            )
            .unwrap();
        assert_eq!(h["spec"]["clusterIP"], "None");
        let e = c
            .create(
                &svc,
                Some("default"),
                json!({"metadata": {"name": "dup"}, "spec": {"clusterIP": ip}}),
            )
            .unwrap_err();
        assert_eq!(e.code, 422);
    }

    #[test]
    fn freed_addresses_are_given_again_lowest_first() {
        let mut c = cluster();
        let svc = c.info("", "v1", "services").unwrap();
        let create = |c: &mut Cluster, name: &str| {
            let s = c
                .create(&svc, Some("default"), json!({"metadata": {"name": name}, "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}))
                .unwrap();
            let ports: Vec<u64> = s["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["nodePort"].as_u64().unwrap())
                .collect();
            (s["spec"]["clusterIP"].as_str().unwrap().to_string(), ports)
        };
        // `kubernetes` holds 10.96.0.1.
        assert_eq!(
            create(&mut c, "a"),
            ("10.96.0.2".to_string(), vec![30000, 30001])
        );
        assert_eq!(
            create(&mut c, "b"),
            ("10.96.0.3".to_string(), vec![30002, 30003])
        );
        assert_eq!(
            create(&mut c, "c"),
            ("10.96.0.4".to_string(), vec![30004, 30005])
        );
        c.delete(&svc, Some("default"), "a", &DeleteOptions::default())
            .unwrap();
        assert_eq!(
            create(&mut c, "d"),
            ("10.96.0.2".to_string(), vec![30000, 30001])
        );
        assert_eq!(
            create(&mut c, "e"),
            ("10.96.0.5".to_string(), vec![30006, 30007])
        );
        // An update keeps what the Service holds.
        let b = c
            .get(&svc, Some("default"), "b", crate::verbs::Sub::Main)
            .unwrap();
        let mut b2 = b.clone();
        b2["spec"]["ports"] = json!([{"port": 80}, {"port": 81}, {"port": 82}]);
        let b2 = c
            .update(&svc, Some("default"), "b", crate::verbs::Sub::Main, b2)
            .unwrap();
        assert_eq!(b2["spec"]["clusterIP"], "10.96.0.3");
        assert_eq!(b2["spec"]["ports"][0]["nodePort"], 30002);
        assert_eq!(b2["spec"]["ports"][2]["nodePort"], 30008);
        // A state reloaded (no history to catch up from) is counted again.
        let reloaded = Cluster::new(c.store.scratch(), "t", "CA", std::path::Path::new("/x"));
        let mut taken = reloaded.addresses.borrow_mut();
        taken.sync(&reloaded.store);
        assert_eq!(taken.free_ip(), Some(Ipv4Addr::new(10, 96, 0, 6)));
    }
}
